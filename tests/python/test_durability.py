"""kill -9 against the real binary: a durable server answers a publish only
once it is committed, so after SIGKILL and a restart on the same port and
storage dir the history, offsets and epoch go on, and a centrifuge-python client
that reconnects by itself recovers with no gap and no duplicate. An in-memory
server starts a new epoch instead, and the client is told recovered=False."""

import cent
import pytest

from conftest import renew_acent
from herald_harness import kill_herald, restart_herald
from history_support import (
    assert_acked_stream,
    assert_received_exactly,
    channel_in,
    expected,
    payloads,
    publish_all,
    publish_all_blocking,
    publish_marker,
    received,
    received_after_subscribe,
    start_history_server,
)


@pytest.fixture(
    params=[(True, "normal"), (True, "full"), (False, "normal")],
    ids=["durable-sync-normal", "durable-sync-full", "memory"],
)
async def herald(request, herald_factory):
    durable, sync = request.param
    return await start_history_server(herald_factory, durable=durable, storage_sync=sync)


def durable(h) -> bool:
    return bool(h.overrides["durable"])


async def subscribed_client(h, sdk, channel):
    c = sdk("42")
    await c.connect()
    return c, await c.subscribe(channel)


async def check_after_restart(h, c, s, channel, before, after, seen_before_kill):
    """``before``/``after``: (results, datas) published before the kill and
    after the restart (the client had no chance to resubscribe in between);
    ``seen_before_kill``: how many publications the SDK had delivered then."""
    (res_before, data_before), (res_after, data_after) = before, after
    ctx = await s.log.wait("subscribed", count=2)
    assert len(c.log.all("connected")) == 2, c.log.events
    assert ctx.was_recovering is True, ctx

    if durable(h):
        # The stream went on: same epoch, the next offset after the acked ones,
        # and the client gets every publication exactly once.
        epoch = assert_acked_stream(res_before + res_after)
        assert ctx.recovered is True, ctx
        assert ctx.stream_position.epoch == epoch
        kept = (res_before + res_after, data_before + data_after)
        await assert_received_exactly(h, channel, s.log, *map(list, kept))
    else:
        # Memory: a new stream under a new epoch; nothing recovered from it.
        new_epoch = assert_acked_stream(res_after)
        assert new_epoch != assert_acked_stream(res_before)
        assert ctx.recovered is False, ctx
        assert ctx.stream_position.epoch == new_epoch
        kept = (res_after, data_after)
        # What arrived live before the kill (possibly read from the socket only
        # after it), then nothing but what is published after resubscribing.
        marker = await publish_marker(h, channel, s.log)
        live = received(s.log)[:-1]
        assert len(live) >= seen_before_kill
        assert received(s.log) == expected(res_before, data_before)[: len(live)] + expected(*zip(marker))

    hist = await h.acent.history(cent.HistoryRequest(channel=channel, limit=-1))
    assert [(p.offset, p.data) for p in hist.publications][: len(kept[0])] == expected(*kept), hist
    assert hist.epoch == kept[0][0].epoch, hist


async def test_kill9_client_reconnects_and_recovers(herald, sdk):
    channel = channel_in("rec")
    c, s = await subscribed_client(herald, sdk, channel)
    before = payloads("before", 1, 20)
    res_before = await publish_all(herald, channel, before)
    assert_acked_stream(res_before)
    await s.log.wait("publication", count=len(before))

    connecting, seen = len(c.log.all("connecting")), len(received(s.log))
    assert kill_herald(herald) == -9
    # The SDK notices and keeps trying to reconnect while nothing listens.
    await c.log.wait("connecting", count=connecting + 1)
    restart_herald(herald)
    after = payloads("after", 1, 5)
    res_after = publish_all_blocking(herald, channel, after)
    await renew_acent(herald)

    await check_after_restart(herald, c, s, channel, (res_before, before), (res_after, after), seen)
    # What was published after the restart came with the resubscribe (then the marker).
    assert received_after_subscribe(s.log, 2)[:-1] == (after if durable(herald) else []), s.log.events


async def test_kill9_right_after_acks_keeps_them(herald, sdk):
    """The kill comes straight after the last acknowledgement, before the SDK
    could even read those publications: every acked one must survive."""
    channel = channel_in("rec")
    c, s = await subscribed_client(herald, sdk, channel)

    before = payloads("acked", 1, 30)
    res_before = publish_all_blocking(herald, channel, before)
    seen = len(received(s.log))
    assert kill_herald(herald) == -9
    restart_herald(herald)
    after = payloads("after", 1, 3)
    res_after = publish_all_blocking(herald, channel, after)
    await renew_acent(herald)

    await check_after_restart(herald, c, s, channel, (res_before, before), (res_after, after), seen)
