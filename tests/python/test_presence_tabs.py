"""Presence, presence_stats and join/leave with two users in two tabs each
(four centrifuge-python connections), on a channel with history."""

from typing import Dict, Tuple

import cent
import pytest

from conftest import SdkClient, SdkSub, eventually
from history_support import assert_received_exactly, channel_in, start_history_server

TABS = [("42", "a"), ("42", "b"), ("43", "a"), ("43", "b")]


@pytest.fixture
async def herald(herald_factory):
    return await start_history_server(herald_factory)


async def api_presence(h, channel: str) -> Tuple[Dict[str, str], Tuple[int, int]]:
    """{client id: user} and (num_clients, num_users) through cent."""
    pres = await h.acent.presence(cent.PresenceRequest(channel=channel))
    stats = await h.acent.presence_stats(cent.PresenceStatsRequest(channel=channel))
    assert all(cid == ci.client for cid, ci in pres.presence.items()), pres
    return {cid: ci.user for cid, ci in pres.presence.items()}, (stats.num_clients, stats.num_users)


async def sdk_presence(s: SdkSub) -> Tuple[Dict[str, str], Tuple[int, int]]:
    pres = await s.sub.presence()
    stats = await s.sub.presence_stats()
    return {cid: ci.user for cid, ci in pres.clients.items()}, (stats.num_clients, stats.num_users)


def expected_presence(tabs: Dict[tuple, Tuple[SdkClient, SdkSub]]):
    members = {c.client_id: user for (user, _), (c, _) in tabs.items()}
    return members, (len(members), len(set(members.values())))


async def test_two_users_two_tabs(herald, sdk):
    channel = channel_in("room")
    tabs: Dict[tuple, Tuple[SdkClient, SdkSub]] = {}
    for user, tab in TABS:
        c = sdk(user, info={"tab": f"{user}{tab}"})
        await c.connect()
        tabs[(user, tab)] = (c, await c.subscribe(channel))
    observer = tabs[("42", "a")][1]

    # The first tab sees a join for each later connection, same user included.
    for key in TABS[1:]:
        c = tabs[key][0]
        join = await observer.log.wait("join", lambda j, cid=c.client_id: j.info.client == cid)
        assert (join.info.user, join.info.conn_info) == (key[0], {"tab": "".join(key)}), join

    want = expected_presence(tabs)
    assert want[1] == (4, 2)
    assert await api_presence(herald, channel) == want
    for _, s in tabs.values():
        assert await sdk_presence(s) == want

    # One of 43's tabs goes away: 3 clients, still 2 users.
    # Then 43's other tab unsubscribes: 2 clients of one user.
    for key, leave_by in ((("43", "b"), "disconnect"), (("43", "a"), "unsubscribe")):
        c, s = tabs.pop(key)
        await (c.client.disconnect() if leave_by == "disconnect" else s.sub.unsubscribe())
        leave = await observer.log.wait("leave", lambda x, cid=c.client_id: x.info.client == cid)
        assert leave.info.user == key[0], leave
        want = expected_presence(tabs)
        await eventually(lambda: _is(api_presence(herald, channel), want), what=f"presence {want}")
        assert await sdk_presence(observer) == want
    assert want == ({tabs[("42", "a")][0].client_id: "42", tabs[("42", "b")][0].client_id: "42"}, (2, 1))

    # Joins and leaves are not publications: the history stream holds none,
    # and the next publication directly follows the stream's position.
    hist = await herald.acent.history(cent.HistoryRequest(channel=channel, limit=-1))
    assert hist.publications == [], hist
    results, datas = [], []
    await assert_received_exactly(herald, channel, observer.log, results, datas)
    assert (results[0].offset, results[0].epoch) == (hist.offset + 1, hist.epoch), (results, hist)


async def _is(awaitable, want) -> bool:
    return await awaitable == want
