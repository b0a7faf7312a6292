"""Subscriptions, publications, permissions, presence, join/leave, rpc and
server-side subscriptions, driven through centrifuge-python (and cent for the
server side)."""

import cent
import pytest
from centrifuge import ReplyError, SubscriptionState

from conftest import eventually, unique


async def _alice_and_bob(sdk):
    """Connected clients for users 42 (Alice) and 43 (Bob), each with conn info."""
    alice = sdk("42", info={"name": "Alice"})
    bob = sdk("43", info={"name": "Bob"})
    await alice.connect()
    await bob.connect()
    return alice, bob


async def test_subscribe_and_receive_cent_publish(herald, sdk):
    c = sdk("42")
    await c.connect()
    channel = unique("news")
    s = await c.subscribe(channel)

    res = await herald.acent.publish(cent.PublishRequest(channel=channel, data={"n": 1, "text": "hello"}))
    assert isinstance(res, cent.PublishResult)
    pub = await s.log.wait("publication")
    assert pub.pub.data == {"n": 1, "text": "hello"}

    # The sync cent client works the same way; order is preserved.
    herald.cent.publish(cent.PublishRequest(channel=channel, data={"n": 2}))
    pub2 = await s.log.wait("publication", count=2)
    assert pub2.pub.data == {"n": 2}
    assert [p.pub.data["n"] for p in s.log.all("publication")] == [1, 2]


async def test_publication_only_reaches_subscribers_of_that_channel(herald, sdk):
    c = sdk("42")
    await c.connect()
    a = await c.subscribe(unique("iso-a"))
    b = await c.subscribe(unique("iso-b"))
    await herald.acent.publish(cent.PublishRequest(channel=b.sub.channel, data={"to": "b"}))
    await b.log.wait("publication")
    # A marker publication into a, published after, arrives after b's: if a had
    # received b's publication it would be before the marker.
    await herald.acent.publish(cent.PublishRequest(channel=a.sub.channel, data={"to": "a"}))
    await a.log.wait("publication")
    assert [p.pub.data for p in a.log.all("publication")] == [{"to": "a"}]


async def test_client_publish_allowed_for_subscriber(herald, sdk):
    alice = sdk("42", info={"name": "Alice"})
    bob = sdk("43")
    await alice.connect()
    await bob.connect()
    channel = unique("chat")
    sa = await alice.subscribe(channel)
    sb = await bob.subscribe(channel)

    await sa.sub.publish({"text": "hi from alice"})

    for s in (sa, sb):
        pub = await s.log.wait("publication")
        assert pub.pub.data == {"text": "hi from alice"}
        assert pub.pub.info is not None, "client publications carry the publisher's info"
        assert pub.pub.info.user == "42"
        assert pub.pub.info.client == alice.client_id
        assert pub.pub.info.conn_info == {"name": "Alice"}


async def test_client_publish_denied_103(herald, sdk):
    c = sdk("42")
    await c.connect()
    # Not subscribed, and allow_publish_for_client = false.
    with pytest.raises(ReplyError) as e:
        await c.client.publish(unique("chat"), {"text": "nope"})
    assert e.value.code == 103, e.value
    # private namespace: nothing allowed for clients.
    with pytest.raises(ReplyError) as e:
        await c.client.publish("private:" + unique("room"), {"text": "nope"})
    assert e.value.code == 103, e.value


async def test_unknown_namespace_102(herald, sdk):
    c = sdk("42")
    await c.connect()
    s = c.new_sub("nope:" + unique("x"))
    await s.sub.subscribe()
    ctx = await s.log.wait("unsubscribed")
    assert ctx.code == 102, ctx
    assert s.sub.state == SubscriptionState.UNSUBSCRIBED

    with pytest.raises(ReplyError) as e:
        await c.client.publish("nope:" + unique("x"), {"a": 1})
    assert e.value.code == 102, e.value
    # The connection itself is unaffected.
    ok = await c.subscribe(unique("fine"))
    assert ok.sub.state == SubscriptionState.SUBSCRIBED


async def test_user_limited_channel(herald, sdk):
    channel = "dm:#42,43"
    u42 = sdk("42")
    u43 = sdk("43")
    u7 = sdk("7")
    for c in (u42, u43, u7):
        await c.connect()

    s42 = await u42.subscribe(channel)
    s43 = await u43.subscribe(channel)

    s7 = u7.new_sub(channel)
    await s7.sub.subscribe()
    ctx = await s7.log.wait("unsubscribed")
    assert ctx.code == 103, ctx
    assert s7.log.all("subscribed") == []

    await herald.acent.publish(cent.PublishRequest(channel=channel, data={"dm": True}))
    assert (await s42.log.wait("publication")).pub.data == {"dm": True}
    assert (await s43.log.wait("publication")).pub.data == {"dm": True}


async def test_private_namespace_needs_subscription_token(herald, sdk):
    channel = "private:" + unique("room")
    c = sdk("42")
    await c.connect()

    denied = c.new_sub(channel)
    await denied.sub.subscribe()
    ctx = await denied.log.wait("unsubscribed")
    assert ctx.code == 103, ctx
    c.client.remove_subscription(denied.sub)

    s = await c.subscribe(channel, token=herald.tokens.subscription("42", channel))
    await herald.acent.publish(cent.PublishRequest(channel=channel, data={"secret": 1}))
    assert (await s.log.wait("publication")).pub.data == {"secret": 1}


async def test_presence_and_stats_two_users(herald, sdk):
    channel = unique("room")
    alice, bob = await _alice_and_bob(sdk)
    sa = await alice.subscribe(channel)
    await bob.subscribe(channel)

    # Client side (allow_presence_for_subscriber).
    pres = await sa.sub.presence()
    by_client = pres.clients
    assert set(by_client) == {alice.client_id, bob.client_id}, by_client
    assert by_client[alice.client_id].user == "42"
    assert by_client[alice.client_id].client == alice.client_id
    assert by_client[alice.client_id].conn_info == {"name": "Alice"}
    assert by_client[bob.client_id].user == "43"
    assert by_client[bob.client_id].conn_info == {"name": "Bob"}

    stats = await sa.sub.presence_stats()
    assert (stats.num_clients, stats.num_users) == (2, 2)

    # Server API through cent.
    api_pres = await herald.acent.presence(cent.PresenceRequest(channel=channel))
    assert set(api_pres.presence) == {alice.client_id, bob.client_id}
    assert {ci.user for ci in api_pres.presence.values()} == {"42", "43"}
    assert api_pres.presence[alice.client_id].conn_info == {"name": "Alice"}
    api_stats = herald.cent.presence_stats(cent.PresenceStatsRequest(channel=channel))
    assert (api_stats.num_clients, api_stats.num_users) == (2, 2)

    # A second connection of user 42 counts as a client, not as a user.
    alice2 = sdk("42")
    await alice2.connect()
    await alice2.subscribe(channel)
    api_stats = await herald.acent.presence_stats(cent.PresenceStatsRequest(channel=channel))
    assert (api_stats.num_clients, api_stats.num_users) == (3, 2)

    # Bob leaves: presence follows.
    await bob.client.disconnect()

    async def bob_gone():
        p = await herald.acent.presence(cent.PresenceRequest(channel=channel))
        return bob.client_id not in p.presence and len(p.presence) == 2

    await eventually(bob_gone, what="bob removed from presence")
    stats = await sa.sub.presence_stats()
    assert (stats.num_clients, stats.num_users) == (2, 1)


async def test_presence_denied_for_non_subscriber(herald, sdk):
    c = sdk("42")
    await c.connect()
    with pytest.raises(ReplyError) as e:
        await c.client.presence(unique("room"))
    assert e.value.code == 103, e.value


async def test_join_leave_events(herald, sdk):
    channel = unique("lobby")
    alice, bob = await _alice_and_bob(sdk)
    sa = await alice.subscribe(channel, join_leave=True)

    sb = await bob.subscribe(channel)
    join = await sa.log.wait("join", lambda j: j.info.user == "43")
    assert join.info.client == bob.client_id
    assert join.info.conn_info == {"name": "Bob"}

    await sb.sub.unsubscribe()
    leave = await sa.log.wait("leave", lambda j: j.info.user == "43")
    assert leave.info.client == bob.client_id

    # Leaving by disconnecting also produces a leave.
    await sb.sub.subscribe()
    await sa.log.wait("join", lambda j: j.info.user == "43", count=2)
    await bob.client.disconnect()
    leave2 = await sa.log.wait("leave", lambda j: j.info.user == "43", count=2)
    assert leave2.info.client == bob.client_id


async def test_rpc_unknown_method_104(herald, sdk):
    c = sdk("42")
    await c.connect()
    with pytest.raises(ReplyError) as e:
        await c.client.rpc("no_such_method", {"x": 1})
    assert e.value.code == 104, e.value
    # Still connected and usable.
    s = await c.subscribe(unique("after-rpc"))
    assert s.sub.state == SubscriptionState.SUBSCRIBED


async def test_server_side_subscription_from_token_channels(herald, sdk):
    channel = unique("srv")
    c = sdk("42", channels=[channel])
    await c.connect()
    ctx = await c.log.wait("server_subscribed", lambda x: x.channel == channel)
    assert ctx.channel == channel

    await herald.acent.publish(cent.PublishRequest(channel=channel, data={"srv": 1}))
    pub = await c.log.wait("server_publication")
    assert pub.channel == channel
    assert pub.pub.data == {"srv": 1}


async def test_server_side_subscription_from_token_subs_claim(herald, sdk):
    channel = unique("srvsubs")
    c = sdk("42", subs={channel: {}})
    await c.connect()
    await c.log.wait("server_subscribed", lambda x: x.channel == channel)
    await herald.acent.publish(cent.PublishRequest(channel=channel, data={"subs": 1}))
    pub = await c.log.wait("server_publication")
    assert (pub.channel, pub.pub.data) == (channel, {"subs": 1})


async def test_server_side_subscription_via_cent_subscribe(herald, sdk):
    channel = unique("srvapi")
    c = sdk("42")
    other = sdk("43")
    await c.connect()
    await other.connect()

    await herald.acent.subscribe(cent.SubscribeRequest(user="42", channel=channel))
    ctx = await c.log.wait("server_subscribed", lambda x: x.channel == channel)
    assert ctx.channel == channel

    await herald.acent.publish(cent.PublishRequest(channel=channel, data={"api": 1}))
    pub = await c.log.wait("server_publication")
    assert (pub.channel, pub.pub.data) == (channel, {"api": 1})
    # Only user 42 was subscribed (each user also has its own inbox channel).
    assert [x.channel for x in other.log.all("server_subscribed")] == ["inbox:#43"]

    await herald.acent.unsubscribe(cent.UnsubscribeRequest(user="42", channel=channel))
    await c.log.wait("server_unsubscribed", lambda x: x.channel == channel)


async def test_api_unsubscribe_client_side_sub_code_2000(herald, sdk):
    channel = unique("kick")
    c = sdk("42")
    await c.connect()
    s = await c.subscribe(channel)
    await herald.acent.unsubscribe(cent.UnsubscribeRequest(user="42", channel=channel))
    ctx = await s.log.wait("unsubscribed")
    assert ctx.code == 2000, ctx
    assert s.sub.state == SubscriptionState.UNSUBSCRIBED


async def test_publication_tags_delivered(herald, sdk):
    c = sdk("42")
    await c.connect()
    s = await c.subscribe(unique("tags"))
    await herald.acent.publish(
        cent.PublishRequest(channel=s.sub.channel, data={"t": 1}, tags={"kind": "order", "id": "7"})
    )
    pub = await s.log.wait("publication")
    assert pub.pub.data == {"t": 1}
    assert pub.pub.tags == {"kind": "order", "id": "7"}, pub.pub
