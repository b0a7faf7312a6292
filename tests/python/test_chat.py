"""Chat (docs/chat.md) with the published clients: the backend creates
conversations and posts through the server API (``chat_*``, sent with cent -
see apps_support.api); members' centrifuge-python connections call ``chat.*``
through ``rpc``, subscribe to ``chat:<conversation>`` for ``message``,
``typing``, ``read`` and ``members`` pushes, and get ``chat_unread`` pushes on
their server-side channel ``inbox:#<user>``.

Single-node tests run on the suite's default server (SQLite storage); the
two-node test runs on Redis with one fresh PostgreSQL database shared by both.
"""

import asyncio
from typing import Any, Dict, List, Optional, Tuple

import pytest
from centrifuge import ClientState, SubscriptionState

from apps_support import (
    Tab,
    api,
    api_error,
    app_herald_factory,  # noqa: F401 (fixture)
    assert_recent_ms,
    now_ms,
    open_tab,
    pg_cluster,  # noqa: F401 (fixture)
    rpc_error,
    sub_push,
    sub_pushes,
)
from conftest import SdkSub, eventually, unique

MAX_TEXT = 4000  # the default chat.max_text_length


def user_id() -> str:
    return unique("u")


def conversation_id() -> str:
    return unique("order")


async def create(h, conversation: str, members: List[str], **fields: Any) -> Dict[str, Any]:
    res = await api(h, "chat_create", conversation=conversation, members=members, **fields)
    return res["conversation"]


async def member(sdk, user: str, conversation: str, server=None) -> Tuple[Tab, SdkSub]:
    """A connection of ``user`` (with its inbox channel) subscribed to the
    conversation's channel."""
    tab = await open_tab(sdk, user, server=server)
    return tab, await tab.c.subscribe(f"chat:{conversation}")


async def two_members(h, sdk, **fields: Any) -> Tuple[str, Tuple[str, Tab, SdkSub], Tuple[str, Tab, SdkSub]]:
    """A new conversation of two new users, each with a tab subscribed to it:
    ``cid, (a, tab_a, sub_a), (b, tab_b, sub_b)``."""
    cid = conversation_id()
    a, b = user_id(), user_id()
    await create(h, cid, [a, b], **fields)
    return cid, (a, *await member(sdk, a, cid)), (b, *await member(sdk, b, cid))


async def send(tab: Tab, conversation: str, text: str, **fields: Any) -> Dict[str, Any]:
    res = await tab.rpc("chat.send", {"conversation": conversation, "text": text, **fields})
    return res["message"]


def msg_ids(messages: List[Dict[str, Any]]) -> List[int]:
    return [m["id"] for m in messages]


def assert_message(m: Dict[str, Any], **want: Any) -> None:
    got = {k: m.get(k) for k in want}
    assert got == want, m
    assert {"id", "conversation", "user", "kind", "text", "data", "client_msg_id", "created_at"} <= set(m), m
    assert_recent_ms(m["created_at"])


async def listed(tab: Tab, conversation: str) -> Optional[Dict[str, Any]]:
    """``conversation`` as ``chat.list`` shows it to ``tab``'s user (None if absent)."""
    convs = (await tab.rpc("chat.list", {"limit": 100}))["conversations"]
    found = [c for c in convs if c["id"] == conversation]
    assert len(found) <= 1, convs
    return found[0] if found else None


async def read_seen_everywhere(
    tab: Tab, other_tab: Tab, sender_sub: SdkSub, conversation: str, user: str, message_id: int, unread: int
) -> None:
    """``tab`` (of ``user``) reads up to ``message_id`` and is answered its new
    unread count; the sender's subscription gets the receipt, and ``other_tab``
    (the same user's) gets the count pushed and lists it."""
    mark = other_tab.mark()
    read = {"conversation": conversation, "message_id": message_id}
    assert await tab.rpc("chat.read", read) == {"unread": unread}
    assert await sub_push(sender_sub, "read") == {"type": "read", "user": user, "message_id": message_id}
    pushed = await other_tab.push("chat_unread", lambda d: d["conversation"] == conversation, since=mark)
    assert pushed == {"type": "chat_unread", "conversation": conversation, "unread": unread}, pushed
    assert (await listed(other_tab, conversation))["unread"] == unread


# --------------------------------------------------------------------------
# Conversations, messages and their pushes
# --------------------------------------------------------------------------


async def test_create_send_and_post_reach_members(herald, sdk):
    cid = conversation_id()
    a, b, c = user_id(), user_id(), user_id()
    conv = await create(herald, cid, [a, b], title="Order #1234", data={"order": 1234})
    assert (conv["id"], conv["title"], conv["data"]) == (cid, "Order #1234", {"order": 1234}), conv
    assert sorted(conv["members"]) == sorted([a, b]), conv
    assert_recent_ms(conv["created_at"])

    ta, sa = await member(sdk, a, cid)
    tb, sb = await member(sdk, b, cid)

    m1 = await send(ta, cid, "Hello", data={"x": 1}, client_msg_id="c-1")
    assert_message(m1, id=1, conversation=cid, user=a, kind="message", text="Hello",
                   data={"x": 1}, client_msg_id="c-1")
    for s in (sa, sb):
        assert await sub_push(s, "message", lambda d: d["message"]["id"] == 1) == {"type": "message", "message": m1}

    system = (await api(herald, "chat_post", conversation=cid, kind="system", text="Order status: shipped"))["message"]
    assert_message(system, id=2, conversation=cid, kind="system", text="Order status: shipped")
    on_behalf = (await api(herald, "chat_post", conversation=cid, user=b, text="I'm on it", data={}))["message"]
    assert_message(on_behalf, id=3, conversation=cid, user=b, kind="message", text="I'm on it", data={})
    default_kind = (await api(herald, "chat_post", conversation=cid, text="no user, so system"))["message"]
    assert_message(default_kind, id=4, kind="system", text="no user, so system")

    for s in (sa, sb):
        await sub_push(s, "message", lambda d: d["message"]["id"] == 4)
        assert [p["message"] for p in sub_pushes(s, "message")] == [m1, system, on_behalf, default_kind]

    # Ids count from 1 in every conversation.
    other = conversation_id()
    await create(herald, other, [a])
    assert (await api(herald, "chat_post", conversation=other, text="first"))["message"]["id"] == 1

    # Creating again updates title and data and adds members, never removes.
    again = await create(herald, cid, [c], title="Order #1234 (rush)", data={"order": 1234, "rush": True})
    assert (again["id"], again["title"], again["data"]) == (cid, "Order #1234 (rush)", {"order": 1234, "rush": True})
    assert sorted(again["members"]) == sorted([a, b, c]), again
    assert again["created_at"] == conv["created_at"], again
    # The added member may now subscribe and send.
    tc, sc = await member(sdk, c, cid)
    m5 = await send(tc, cid, "joined")
    assert m5["id"] == 5
    assert (await sub_push(sa, "message", lambda d: d["message"]["id"] == 5))["message"] == m5


async def test_conversation_channel_has_presence_and_join_leave(herald, sdk):
    cid, (a, ta, sa), (b, tb, sb) = await two_members(herald, sdk)
    join = await sa.log.wait("join", lambda j: j.info.user == b)
    assert join.info.client == tb.c.client_id
    pres = await sa.sub.presence()
    assert {ci.user for ci in pres.clients.values()} == {a, b}, pres
    await tb.c.client.disconnect()
    leave = await sa.log.wait("leave", lambda j: j.info.user == b)
    assert leave.info.client == join.info.client


async def test_non_members_and_unknown_conversations(herald, sdk):
    cid = conversation_id()
    a, outsider = user_id(), user_id()
    await create(herald, cid, [a])
    ta, sa = await member(sdk, a, cid)
    await send(ta, cid, "members only")
    to = await open_tab(sdk, outsider)

    for method, data in (
        ("chat.send", {"conversation": cid, "text": "let me in"}),
        ("chat.history", {"conversation": cid}),
        ("chat.typing", {"conversation": cid}),
        ("chat.read", {"conversation": cid, "message_id": 1}),
    ):
        e = await to.rpc_error(method, data)
        assert e.code == 103, (method, e)

    denied = to.c.new_sub(f"chat:{cid}")
    await denied.sub.subscribe()
    ctx = await denied.log.wait("unsubscribed")
    assert ctx.code == 103, ctx
    assert denied.log.all("subscribed") == [] and denied.sub.state == SubscriptionState.UNSUBSCRIBED
    assert (await listed(to, cid)) is None

    # Nothing the outsider tried was stored or delivered.
    later = await send(ta, cid, "still members only")
    assert later["id"] == 2
    await sub_push(sa, "message", lambda d: d["message"]["id"] == 2)
    assert [m["text"] for m in (await ta.rpc("chat.history", {"conversation": cid}))["messages"]] == [
        "members only", "still members only",
    ]

    unknown = conversation_id()
    for method, data in (
        ("chat.send", {"conversation": unknown, "text": "hello?"}),
        ("chat.history", {"conversation": unknown}),
        ("chat.read", {"conversation": unknown, "message_id": 1}),
        ("chat.typing", {"conversation": unknown}),
    ):
        e = await ta.rpc_error(method, data)
        assert (e.code, e.message) == (102, f"unknown conversation: {unknown}"), (method, e)
    for method, params in (
        ("chat_post", {"conversation": unknown, "text": "hello?"}),
        ("chat_history", {"conversation": unknown}),
        ("chat_add_members", {"conversation": unknown, "members": [a]}),
    ):
        e = await api_error(herald, method, **params)
        assert (e.code, e.message) == (102, f"unknown conversation: {unknown}"), (method, e.code, e.message)

    e = await ta.rpc_error("chat.nope", {})
    assert e.code == 104, e
    assert ta.c.client.state == ClientState.CONNECTED and to.c.client.state == ClientState.CONNECTED


async def test_anonymous_connection_gets_103(herald, sdk):
    cid = conversation_id()
    await create(herald, cid, [user_id()])
    anon = sdk("")
    await anon.connect()
    for method, data in (
        ("chat.list", {}),
        ("chat.send", {"conversation": cid, "text": "hi"}),
        ("chat.history", {"conversation": cid}),
    ):
        e = await rpc_error(anon, method, data)
        assert e.code == 103, (method, e)
    denied = anon.new_sub(f"chat:{cid}")
    await denied.sub.subscribe()
    assert (await denied.log.wait("unsubscribed")).code == 103


async def test_text_length_and_malformed_input(herald, sdk):
    cid = conversation_id()
    a = user_id()
    await create(herald, cid, [a])
    ta, sa = await member(sdk, a, cid)

    for bad in ("x" * (MAX_TEXT + 1), ""):
        e = await ta.rpc_error("chat.send", {"conversation": cid, "text": bad})
        assert e.code == 107 and e.message, (len(bad), e)
    e = await api_error(herald, "chat_post", conversation=cid, text="x" * (MAX_TEXT + 1))
    assert e.code == 107, (e.code, e.message)
    for bad in ({"text": "no conversation"}, {"conversation": cid}, {"conversation": cid, "text": 42}):
        e = await ta.rpc_error("chat.send", bad)
        assert e.code == 107, (bad, e)

    # The limit is in characters: 4000 two-byte characters fit.
    longest = await send(ta, cid, "x" * MAX_TEXT)
    accented = await send(ta, cid, "é" * MAX_TEXT)
    assert (longest["id"], len(longest["text"])) == (1, MAX_TEXT)
    assert (accented["id"], accented["text"]) == (2, "é" * MAX_TEXT)
    await sub_push(sa, "message", lambda d: d["message"]["id"] == 2)
    assert msg_ids([p["message"] for p in sub_pushes(sa, "message")]) == [1, 2]

    for bad_id in ("has space", "x" * 129, "", "slash/no", "colon:no"):
        e = await api_error(herald, "chat_create", conversation=bad_id, members=[a])
        assert e.code == 107, (bad_id, e.code, e.message)
    ok = "Aa0-_." + "x" * 122
    assert (await create(herald, ok, [a]))["id"] == ok
    e = await api_error(herald, "chat_create", conversation=conversation_id(), members="not-a-list")
    assert e.code == 107, (e.code, e.message)


async def test_configured_text_limit_and_switched_off(app_herald_factory, sdk):
    h = await app_herald_factory(extra_toml="[chat]\nenabled = true\nmax_text_length = 10\n")
    cid = conversation_id()
    await create(h, cid, ["42"])
    c = sdk("42", server=h)
    await c.connect()
    e = await rpc_error(c, "chat.send", {"conversation": cid, "text": "x" * 11})
    assert e.code == 107, e
    assert (await c.client.rpc("chat.send", {"conversation": cid, "text": "x" * 10})).data["message"]["id"] == 1

    off = await app_herald_factory(extra_toml="[chat]\nenabled = false\n")
    d = sdk("42", server=off)
    await d.connect()
    e = await rpc_error(d, "chat.list", {})
    assert e.code == 108, e
    e = await api_error(off, "chat_create", conversation=cid, members=["42"])
    assert e.code == 108, (e.code, e.message)


async def test_send_is_idempotent_on_client_msg_id(herald, sdk):
    cid, (a, ta, sa), (b, tb, sb) = await two_members(herald, sdk)

    first = await send(ta, cid, "only once", client_msg_id="c-1")
    assert await send(ta, cid, "only once", client_msg_id="c-1") == first
    # Even with another text, the stored message is the answer.
    assert await send(ta, cid, "edited retry", client_msg_id="c-1") == first
    second = await send(ta, cid, "next", client_msg_id="c-2")
    assert (first["id"], second["id"]) == (1, 2)

    # Pushes arrive in order: by the second message, a duplicate would be here.
    await sub_push(sb, "message", lambda d: d["message"]["id"] == 2)
    assert [p["message"] for p in sub_pushes(sb, "message")] == [first, second]
    hist = await tb.rpc("chat.history", {"conversation": cid})
    assert hist == {"messages": [first, second], "has_more": False}, hist
    assert (await listed(tb, cid))["unread"] == 2


async def test_typing_reaches_the_other_member(herald, sdk):
    cid, (a, ta, sa), (b, tb, sb) = await two_members(herald, sdk)

    assert await ta.rpc("chat.typing", {"conversation": cid}) == {}
    assert await sub_push(sb, "typing") == {"type": "typing", "user": a}
    # Never stored.
    assert await tb.rpc("chat.history", {"conversation": cid}) == {"messages": [], "has_more": False}


async def test_read_receipts_and_unread_counts(herald, sdk):
    cid, (a, ta, sa), (b, tb, sb) = await two_members(herald, sdk, title="Order #9")
    tb2 = await open_tab(sdk, b)  # b's second tab: not on the chat channel

    sent = [await send(ta, cid, f"m{i}") for i in (1, 2, 3)]
    assert msg_ids(sent) == [1, 2, 3]
    want = {"type": "chat_unread", "conversation": cid, "unread": 3}
    assert await tb2.push("chat_unread", lambda d: d["unread"] == 3) == want

    seen_b = await listed(tb, cid)
    assert (seen_b["unread"], seen_b["last_message"], seen_b["title"]) == (3, sent[2], "Order #9"), seen_b
    # Sending marks everything up to the new message read for the sender.
    assert (await listed(ta, cid))["unread"] == 0

    await read_seen_everywhere(tb, tb2, sa, cid, b, message_id=2, unread=1)

    # The read mark never moves back.
    assert await tb.rpc("chat.read", {"conversation": cid, "message_id": 1}) == {"unread": 1}
    assert (await listed(tb, cid))["unread"] == 1

    # b answers: b has read everything, a has one unread.
    mark_a, mark_b = ta.mark(), tb2.mark()
    reply = await send(tb, cid, "thanks")
    assert reply["id"] == 4
    await tb2.push("chat_unread", lambda d: d["conversation"] == cid and d["unread"] == 0, since=mark_b)
    await ta.push("chat_unread", lambda d: d["conversation"] == cid and d["unread"] == 1, since=mark_a)
    seen_a = await listed(ta, cid)
    assert (seen_a["unread"], seen_a["last_message"]) == (1, reply), seen_a
    assert (await listed(tb2, cid))["unread"] == 0

    assert await ta.rpc("chat.read", {"conversation": cid, "message_id": 4}) == {"unread": 0}
    assert await sub_push(sb, "read", lambda d: d["user"] == a) == {"type": "read", "user": a, "message_id": 4}
    assert (await listed(ta, cid))["unread"] == 0


async def test_list_is_most_recent_first(herald, sdk):
    first, second = conversation_id(), conversation_id()
    a, b = user_id(), user_id()
    await create(herald, first, [a, b], title="first")
    await create(herald, second, [a], title="second")
    ta = await open_tab(sdk, a)
    tb = await open_tab(sdk, b)

    async def order(tab: Tab) -> List[str]:
        convs = (await tab.rpc("chat.list", {"limit": 100}))["conversations"]
        return [c["id"] for c in convs if c["id"] in (first, second)]

    async def post(conversation: str, text: str) -> None:
        m = (await api(herald, "chat_post", conversation=conversation, text=text))["message"]
        # The next post gets a later millisecond, so "most recent" is unambiguous.
        while now_ms() <= m["created_at"]:
            await asyncio.sleep(0.001)

    await post(first, "1")
    await post(second, "2")
    assert await order(ta) == [second, first]
    await post(first, "3")
    assert await order(ta) == [first, second]
    assert await order(tb) == [first]  # only mine
    top = (await ta.rpc("chat.list", {"limit": 1}))["conversations"]
    assert [c["id"] for c in top] == [first], top
    assert top[0]["last_message"]["text"] == "3" and top[0]["unread"] == 2, top


async def test_history_pages_oldest_first(herald, sdk):
    cid = conversation_id()
    a = user_id()
    await create(herald, cid, [a])
    ta = await open_tab(sdk, a)
    sent = [await send(ta, cid, f"m{i}") for i in range(1, 8)]
    assert msg_ids(sent) == list(range(1, 8))

    async def page(**q: Any) -> Tuple[List[int], bool]:
        res = await ta.rpc("chat.history", {"conversation": cid, **q})
        # The API answers the same page.
        assert await api(herald, "chat_history", conversation=cid, **q) == res, q
        for m in res["messages"]:
            assert m == sent[m["id"] - 1], m
        return msg_ids(res["messages"]), res["has_more"]

    assert await page(limit=3) == ([5, 6, 7], True)
    assert await page(limit=3, before=5) == ([2, 3, 4], True)
    assert await page(limit=3, before=2) == ([1], False)
    assert await page(limit=3, before=4) == ([1, 2, 3], False)
    assert await page() == ([1, 2, 3, 4, 5, 6, 7], False)
    assert await page(before=1) == ([], False)
    for bad in (0, 101):
        e = await ta.rpc_error("chat.history", {"conversation": cid, "limit": bad})
        assert e.code == 107, (bad, e)

    # Default limit 50.
    busy = conversation_id()
    await create(herald, busy, [a])
    for i in range(1, 52):
        await api(herald, "chat_post", conversation=busy, text=f"s{i}")
    res = await ta.rpc("chat.history", {"conversation": busy})
    assert msg_ids(res["messages"]) == list(range(2, 52)) and res["has_more"] is True, msg_ids(res["messages"])


async def test_add_and_remove_members(herald, sdk):
    cid = conversation_id()
    a, b, c = user_id(), user_id(), user_id()
    await create(herald, cid, [a, b])
    ta, sa = await member(sdk, a, cid)

    res = await api(herald, "chat_add_members", conversation=cid, members=[c])
    assert sorted(res["members"]) == sorted([a, b, c]), res
    push = await sub_push(sa, "members")
    assert (sorted(push["members"]), push["added"], push["removed"]) == (sorted([a, b, c]), [c], []), push

    tc, sc = await member(sdk, c, cid)
    m1 = await send(tc, cid, "hi, I'm new")
    assert (await sub_push(sa, "message"))["message"] == m1

    mark = len(sa.log.events)
    res = await api(herald, "chat_remove_members", conversation=cid, members=[c])
    assert sorted(res["members"]) == sorted([a, b]), res
    push = await sub_push(sa, "members", since=mark)
    assert (sorted(push["members"]), push["added"], push["removed"]) == (sorted([a, b]), [], [c]), push

    # c's connection loses the channel, and c can no longer read or send.
    await sc.log.wait("unsubscribed")
    await eventually(lambda: sc.sub.state == SubscriptionState.UNSUBSCRIBED, what="c unsubscribed")
    for method, data in (
        ("chat.send", {"conversation": cid, "text": "still here?"}),
        ("chat.history", {"conversation": cid}),
        ("chat.read", {"conversation": cid, "message_id": 1}),
    ):
        e = await tc.rpc_error(method, data)
        assert e.code == 103, (method, e)
    tc.c.client.remove_subscription(sc.sub)
    again = tc.c.new_sub(f"chat:{cid}")
    await again.sub.subscribe()
    assert (await again.log.wait("unsubscribed")).code == 103
    assert (await listed(tc, cid)) is None
    m2 = await send(ta, cid, "after c left")
    await sub_push(sa, "message", lambda d: d["message"]["id"] == m2["id"])
    assert [p["message"]["id"] for p in sub_pushes(sc, "message")] == [m1["id"]]


# --------------------------------------------------------------------------
# Two nodes on Redis, one PostgreSQL database
# --------------------------------------------------------------------------


class TestTwoNodes:
    @pytest.fixture
    def herald(self, pg_cluster):
        """``sdk`` clients connect to node A unless given ``server=``."""
        return pg_cluster.nodes[0]

    async def test_chat_across_nodes(self, pg_cluster, sdk):
        node_a, node_b = pg_cluster.nodes
        cid = conversation_id()
        a, b, outsider = user_id(), user_id(), user_id()
        await create(node_a, cid, [a, b], title="two nodes")

        ta, sa = await member(sdk, a, cid, server=node_a)
        tb, sb = await member(sdk, b, cid, server=node_b)
        tb_on_a = await open_tab(sdk, b, server=node_a)  # b's second tab, on node A

        # A non-member is refused on node B too (the check reads the shared database).
        to = await open_tab(sdk, outsider, server=node_b)
        denied = to.c.new_sub(f"chat:{cid}")
        await denied.sub.subscribe()
        assert (await denied.log.wait("unsubscribed")).code == 103

        m1 = await send(ta, cid, "from node A", client_msg_id="x-1")
        assert (await sub_push(sb, "message"))["message"] == m1
        m2 = (await api(node_b, "chat_post", conversation=cid, kind="system", text="posted on node B"))["message"]
        assert m2["id"] == 2
        for s in (sa, sb):
            await sub_push(s, "message", lambda d: d["message"]["id"] == 2)
        # a's second tab, on node B, retries with the same client_msg_id: the stored message.
        ta_on_b = await open_tab(sdk, a, server=node_b)
        assert await send(ta_on_b, cid, "from node A", client_msg_id="x-1") == m1

        await tb_on_a.push("chat_unread", lambda d: d["conversation"] == cid and d["unread"] == 2)
        assert (await listed(tb_on_a, cid))["unread"] == 2

        # b reads on node B: a (node A) gets the receipt; b's tab on node A agrees.
        await read_seen_everywhere(tb, tb_on_a, sa, cid, b, message_id=1, unread=1)
        assert (await listed(tb, cid))["unread"] == 1

        history_b = await tb.rpc("chat.history", {"conversation": cid})
        history_a = await ta.rpc("chat.history", {"conversation": cid})
        assert history_a == history_b and msg_ids(history_a["messages"]) == [1, 2], history_a
