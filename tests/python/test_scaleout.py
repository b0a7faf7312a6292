"""Scale-out with the published clients: two herald nodes on one real
redis-server (started by the test on a free port). Presence is shared across
nodes, and server-API actions sent to node B with ``cent`` reach a
centrifuge-python client connected to node A.

Skipped when redis-server is missing, unless CI=true (then it fails).
"""

from typing import Dict, Tuple

import cent
import pytest
from centrifuge import ClientState

from cluster_harness import Cluster, start_cluster
from conftest import SdkSub, eventually, serving, unique
from herald_harness import Herald

# The suite config's default namespace has presence and join/leave (pushed to
# every subscriber); "history" adds them on a channel with history.
NAMESPACES = [{
    "name": "history", "allow_subscribe_for_client": True, "history_size": 100,
    "history_ttl": "10m", "force_recovery": True, "presence": True, "join_leave": True,
    "force_push_join_leave": True, "allow_presence_for_subscriber": True,
}]


@pytest.fixture
async def cluster(tmp_path):
    async with serving(start_cluster(tmp_path, nodes=2, namespaces=NAMESPACES)) as c:
        yield c


@pytest.fixture
async def herald(cluster) -> Herald:
    """``sdk`` clients connect to node A (the first node) unless given ``server=``."""
    return cluster.nodes[0]


async def api_presence(h: Herald, channel: str) -> Tuple[Dict[str, str], Tuple[int, int]]:
    """{client id: user} and (num_clients, num_users) through cent on node ``h``."""
    pres = await h.acent.presence(cent.PresenceRequest(channel=channel))
    stats = await h.acent.presence_stats(cent.PresenceStatsRequest(channel=channel))
    return {cid: ci.user for cid, ci in pres.presence.items()}, (stats.num_clients, stats.num_users)


async def sdk_presence(s: SdkSub) -> Tuple[Dict[str, str], Tuple[int, int]]:
    pres = await s.sub.presence()
    stats = await s.sub.presence_stats()
    return {cid: ci.user for cid, ci in pres.clients.items()}, (stats.num_clients, stats.num_users)


async def presence_is(cluster: Cluster, channel: str, want) -> None:
    """Wait (polling with a deadline) until presence on every node is ``want``."""
    for i, h in enumerate(cluster.nodes, 1):
        async def check(h=h):
            got = await api_presence(h, channel)
            return got == want or None

        try:
            await eventually(check, what=f"presence on node-{i} == {want}")
        except AssertionError as e:
            raise AssertionError(f"{e}; node-{i} answers {await api_presence(h, channel)}") from None


@pytest.mark.parametrize("channel_prefix", ["", "history:"], ids=["presence-ns", "history-ns"])
async def test_scaleout_presence_across_nodes(cluster, sdk, channel_prefix):
    a, b = cluster.nodes
    channel = channel_prefix + unique("room")
    alice, bob = sdk("alice", server=a), sdk("bob", server=b)
    await alice.connect()
    await bob.connect()
    sa = await alice.subscribe(channel)
    sb = await bob.subscribe(channel)

    # bob joined on node B; alice on node A hears it
    join = await sa.log.wait("join", lambda j: j.info.client == bob.client_id)
    assert join.info.user == "bob", join

    both = ({alice.client_id: "alice", bob.client_id: "bob"}, (2, 2))
    await presence_is(cluster, channel, both)
    assert await sdk_presence(sa) == both
    assert await sdk_presence(sb) == both

    await bob.client.disconnect()
    leave = await sa.log.wait("leave", lambda x: x.info.client == bob.client_id)
    assert leave.info.user == "bob", leave
    only_alice = ({alice.client_id: "alice"}, (1, 1))
    await presence_is(cluster, channel, only_alice)
    assert await sdk_presence(sa) == only_alice


async def test_scaleout_server_api_on_node_b_reaches_client_on_node_a(cluster, sdk):
    a, b = cluster.nodes
    carol = sdk("carol", server=a)
    await carol.connect()
    channel = unique("pushed")

    await b.acent.subscribe(cent.SubscribeRequest(user="carol", channel=channel))
    sub = await carol.log.wait("server_subscribed", lambda x: x.channel == channel)
    assert sub.channel == channel

    res = await b.acent.publish(cent.PublishRequest(channel=channel, data={"via": "node-2"}))
    assert res is not None
    pub = await carol.log.wait("server_publication", lambda x: x.channel == channel)
    assert pub.pub.data == {"via": "node-2"}, pub

    await b.acent.unsubscribe(cent.UnsubscribeRequest(user="carol", channel=channel))
    await carol.log.wait("server_unsubscribed", lambda x: x.channel == channel)
    assert carol.client.state == ClientState.CONNECTED

    await b.acent.disconnect(cent.DisconnectRequest(
        user="carol", disconnect=cent.Disconnect(code=4501, reason="bye from node-2"),
    ))
    gone = await carol.log.wait("disconnected")
    assert (gone.code, gone.reason) == (4501, "bye from node-2"), gone
    assert carol.client.state == ClientState.DISCONNECTED
    # node A really dropped it: its info counts no client any more
    async def no_clients():
        info = await a.acent.info(cent.InfoRequest())
        return all(n.num_clients == 0 for n in info.nodes)

    await eventually(no_clients, what="no client left on either node")
