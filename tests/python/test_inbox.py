"""The notification inbox (docs/inbox.md) with the published clients: the
backend adds notifications through the server API (``notify`` and the
``notifications_*`` methods, sent with cent - see apps_support.api), and
centrifuge-python connections of the user (one per "tab") call ``inbox.*``
through ``rpc`` and receive ``notification`` / ``unread_count`` pushes on their
server-side channel ``inbox:#<user>``.

Single-node tests run on the suite's default server (SQLite storage); the
two-node tests run on Redis with one fresh PostgreSQL database shared by both.
"""

from typing import Any, Dict, List

import cent
import pytest
from centrifuge import ClientState

from apps_support import (
    Tab,
    api,
    api_error,
    app_herald_factory,  # noqa: F401 (fixture)
    assert_recent_ms,
    inbox_channel,
    open_tab,
    pg_cluster,  # noqa: F401 (fixture)
    rpc_error,
)
from conftest import unique

NOTIFICATION_FIELDS = {
    "id", "user", "title", "message", "level", "category", "data", "read", "archived", "created_at",
}


def user_id() -> str:
    return unique("u")


async def notify(h, users: List[str], title: str, **fields: Any) -> List[int]:
    """``notify`` through the API; the ids it answers, checked to be ints."""
    res = await api(h, "notify", users=users, title=title, **fields)
    ids = res["ids"]
    assert isinstance(ids, list) and len(ids) == len(users), res
    assert all(isinstance(i, int) and not isinstance(i, bool) for i in ids), res
    return ids


async def notify_one(h, user: str, title: str, **fields: Any) -> int:
    [nid] = await notify(h, [user], title, **fields)
    return nid


def ids_of(notifications: List[Dict[str, Any]]) -> List[int]:
    return [n["id"] for n in notifications]


async def list_all_rpc(tab: Tab, **query: Any) -> List[Dict[str, Any]]:
    """Every page of ``inbox.list`` (limit 100)."""
    out: List[Dict[str, Any]] = []
    cursor = None
    for _ in range(50):
        data = {"limit": 100, **query}
        if cursor is not None:
            data["cursor"] = cursor
        page = await tab.rpc("inbox.list", data)
        out += page["notifications"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("inbox.list never reached its last page")


# --------------------------------------------------------------------------
# notify and live pushes
# --------------------------------------------------------------------------


async def test_notify_reaches_both_tabs_of_the_user(herald, sdk):
    u, other = user_id(), user_id()
    tab_a, tab_b = await open_tab(sdk, u), await open_tab(sdk, u)
    other_tab = await open_tab(sdk, other)

    ids = await notify(
        herald, [u, other], "Order #1234 shipped",
        message="Your booster finished the order.", level="success", category="orders",
        data={"order": 1234, "nested": [1, {"a": None}]},
    )
    assert ids[0] != ids[1], ids

    for tab in (tab_a, tab_b):
        push = await tab.push("notification")
        n = push["notification"]
        assert set(push) == {"type", "notification"}, push
        assert NOTIFICATION_FIELDS <= set(n), n
        assert {k: n[k] for k in NOTIFICATION_FIELDS - {"created_at"}} == {
            "id": ids[0], "user": u, "title": "Order #1234 shipped",
            "message": "Your booster finished the order.", "level": "success",
            "category": "orders", "data": {"order": 1234, "nested": [1, {"a": None}]},
            "read": False, "archived": False,
        }, n
        assert_recent_ms(n["created_at"])
        await tab.unread_push(1, since=0)
        # Only the user's own channel, and only the user's own notification.
        assert {ctx.channel for ctx in tab.log.all("server_publication")} == {inbox_channel(u)}
        assert ids_of([p["notification"] for p in tab.pushes("notification")]) == [ids[0]]

    other_push = await other_tab.push("notification")
    assert other_push["notification"]["id"] == ids[1]
    assert other_push["notification"]["user"] == other
    await other_tab.unread_push(1, since=0)

    # What was pushed is what is stored.
    page = await tab_a.rpc("inbox.list", {})
    assert page["notifications"] == [tab_a.pushes("notification")[0]["notification"]], page
    assert page["next_cursor"] is None
    assert await tab_b.rpc("inbox.unread_count", {}) == {"count": 1}


async def test_notify_defaults_and_bad_input(herald, sdk):
    u = user_id()
    tab = await open_tab(sdk, u)
    nid = await notify_one(herald, u, "Just a title")
    n = (await tab.push("notification", lambda d: d["notification"]["id"] == nid))["notification"]
    assert (n["level"], n["category"], n["read"], n["archived"]) == ("info", "", False, False), n

    for bad in (
        {"users": [u], "title": "x" * 201},                       # title over 200 characters
        {"users": [u], "title": "ok", "level": "catastrophic"},  # unknown level
        {"users": [u], "message": "no title"},                   # title is required
        {"users": [], "title": "nobody"},                         # 1 to 1,000 users
        {"users": [u], "title": "ok", "message": "m" * 2001},     # message over 2,000 characters
        {"users": [u], "title": "ok", "category": "c" * 65},      # category over 64 characters
        {"users": [u], "title": "ok", "data": {"x": "y" * 9000}},  # data over 8 KiB
        {"users": [f"{u}-{i}" for i in range(1001)], "title": "too many"},  # over 1,000 users
    ):
        e = await api_error(herald, "notify", **bad)
        assert e.code == 107, (bad, e.code, e.message)
        assert e.message, bad

    # The largest allowed values are accepted.
    ok = await notify_one(herald, u, "t" * 200, message="m" * 2000, category="c" * 64)
    await tab.push("notification", lambda d: d["notification"]["id"] == ok)
    assert await api(herald, "notifications_unread_count", user=u) == {"count": 2}
    sized = await notify_one(herald, u, "7 KB of data", data={"x": "y" * 7000})
    pushed = await tab.push("notification", lambda d: d["notification"]["id"] == sized)
    assert pushed["notification"]["data"] == {"x": "y" * 7000}

    # 1,000 users in one call: one id each, in the order asked.
    many = [f"{u}-{i}" for i in range(1000)]
    ids = await notify(herald, many, "everyone")
    assert len(set(ids)) == 1000
    for i in (0, 499, 999):
        listed = (await api(herald, "notifications_list", user=many[i]))["notifications"]
        assert ids_of(listed) == [ids[i]] and listed[0]["user"] == many[i], listed


async def test_dedupe_key_notifies_once_per_user(herald, sdk):
    u, v = user_id(), user_id()
    tab = await open_tab(sdk, u)
    key = unique("order-shipped")

    first = await notify_one(herald, u, "Shipped", dedupe_key=key)
    assert await notify_one(herald, u, "Shipped again", dedupe_key=key) == first
    # The same key for another user is that user's first; u keeps its id.
    both = await notify(herald, [u, v], "Shipped", dedupe_key=key)
    assert both[0] == first and both[1] != first, both

    # A notification without a key is a barrier: pushes arrive in order, so a
    # duplicate push of `first` would have arrived before this one.
    barrier = await notify_one(herald, u, "Other")
    await tab.push("notification", lambda d: d["notification"]["id"] == barrier)
    assert ids_of([p["notification"] for p in tab.pushes("notification")]) == [first, barrier]
    assert tab.pushes("notification")[0]["notification"]["title"] == "Shipped"
    # The count follows its notification in a push of its own.
    await tab.unread_push(2, since=0)
    assert tab.unread_counts() == [1, 2]

    assert ids_of(await list_all_rpc(tab)) == [barrier, first]
    assert await api(herald, "notifications_unread_count", user=u) == {"count": 2}
    assert await api(herald, "notifications_unread_count", user=v) == {"count": 1}


# --------------------------------------------------------------------------
# inbox.* over rpc
# --------------------------------------------------------------------------


async def test_inbox_list_pages_newest_first_with_cursor(herald, sdk):
    u = user_id()
    tab = await open_tab(sdk, u)
    ids = [await notify_one(herald, u, f"n{i}") for i in range(1, 6)]
    await tab.unread_push(5, since=0)

    page1 = await tab.rpc("inbox.list", {"limit": 2})
    assert ids_of(page1["notifications"]) == [ids[4], ids[3]], page1
    assert [n["title"] for n in page1["notifications"]] == ["n5", "n4"]
    assert isinstance(page1["next_cursor"], str) and page1["next_cursor"], page1

    page2 = await tab.rpc("inbox.list", {"limit": 2, "cursor": page1["next_cursor"]})
    assert ids_of(page2["notifications"]) == [ids[2], ids[1]], page2
    assert isinstance(page2["next_cursor"], str) and page2["next_cursor"], page2

    page3 = await tab.rpc("inbox.list", {"limit": 2, "cursor": page2["next_cursor"]})
    assert ids_of(page3["notifications"]) == [ids[0]], page3
    assert page3["next_cursor"] is None, page3

    # Default limit (20) holds all five, newest first, on one page.
    whole = await tab.rpc("inbox.list", {})
    assert ids_of(whole["notifications"]) == ids[::-1] and whole["next_cursor"] is None, whole

    # Default limit 20: a 21st notification goes to the next page.
    ids += [await notify_one(herald, u, f"n{i}") for i in range(6, 22)]
    first = await tab.rpc("inbox.list", {})
    assert ids_of(first["notifications"]) == ids[:0:-1] and first["next_cursor"], first
    last = await tab.rpc("inbox.list", {"cursor": first["next_cursor"]})
    assert ids_of(last["notifications"]) == [ids[0]] and last["next_cursor"] is None, last

    for bad in ({"cursor": "not-a-cursor"}, {"cursor": "%%%"}, {"level": "loud"}, {"limit": 0}, {"limit": 101}):
        e = await tab.rpc_error("inbox.list", {"limit": 2, **bad})
        assert e.code == 107, (bad, e)
    assert tab.c.client.state == ClientState.CONNECTED


async def test_inbox_list_filters(herald, sdk):
    u = user_id()
    tab = await open_tab(sdk, u)
    a = await notify_one(herald, u, "a", level="error", category="billing")
    b = await notify_one(herald, u, "b", level="info", category="orders")
    c = await notify_one(herald, u, "c", level="error", category="orders")
    await tab.push("unread_count", lambda d: d["count"] == 3)

    assert ids_of(await list_all_rpc(tab, level="error")) == [c, a]
    assert ids_of(await list_all_rpc(tab, category="orders")) == [c, b]
    assert ids_of(await list_all_rpc(tab, level="error", category="orders")) == [c]

    assert await tab.rpc("inbox.mark_read", {"ids": [c]}) == {"updated": 1}
    assert ids_of(await list_all_rpc(tab, unread_only=True)) == [b, a]
    assert await tab.rpc("inbox.archive", {"ids": [a]}) == {"updated": 1}
    assert ids_of(await list_all_rpc(tab, unread_only=True)) == [b]
    assert ids_of(await list_all_rpc(tab)) == [c, b]
    listed = await list_all_rpc(tab, include_archived=True)
    assert ids_of(listed) == [c, b, a]
    assert [(n["read"], n["archived"]) for n in listed] == [(True, False), (False, False), (False, True)]


async def test_mark_read_in_one_tab_updates_the_other(herald, sdk):
    u = user_id()
    tab_a, tab_b = await open_tab(sdk, u), await open_tab(sdk, u)
    n1, n2, n3 = [await notify_one(herald, u, f"n{i}") for i in (1, 2, 3)]
    for tab in (tab_a, tab_b):
        await tab.push("unread_count", lambda d: d["count"] == 3)
    assert await tab_a.rpc("inbox.unread_count", {}) == {"count": 3}

    async def step(method: str, data: Dict[str, Any], updated: int, count: int) -> None:
        marks = (tab_a.mark(), tab_b.mark())
        assert await tab_a.rpc(method, data) == {"updated": updated}, (method, data)
        assert await tab_a.rpc("inbox.unread_count", {}) == {"count": count}
        await tab_b.unread_push(count, since=marks[1])
        await tab_a.unread_push(count, since=marks[0])

    await step("inbox.mark_read", {"ids": [n1]}, 1, 2)
    # Already read: nothing changes.
    assert await tab_a.rpc("inbox.mark_read", {"ids": [n1]}) == {"updated": 0}
    await step("inbox.mark_unread", {"ids": [n1]}, 1, 3)
    await step("inbox.mark_read", {"ids": [n1, n3]}, 2, 1)
    await step("inbox.mark_read", {"all": True}, 1, 0)
    assert [n["read"] for n in await list_all_rpc(tab_b)] == [True, True, True]
    await step("inbox.mark_unread", {"all": True}, 3, 3)
    await step("inbox.mark_read", {"ids": [n2]}, 1, 2)
    assert [(n["id"], n["read"]) for n in await list_all_rpc(tab_b)] == [(n3, False), (n2, True), (n1, False)]
    # Every tab saw every number, in order.
    assert tab_a.unread_counts() == tab_b.unread_counts() == [1, 2, 3, 2, 3, 1, 0, 3, 2]


async def test_archive_and_delete(herald, sdk):
    u, v = user_id(), user_id()
    tab_a, tab_b = await open_tab(sdk, u), await open_tab(sdk, u)
    n1, n2, n3 = [await notify_one(herald, u, f"n{i}") for i in (1, 2, 3)]
    theirs = await notify_one(herald, v, "not yours")
    await tab_b.push("unread_count", lambda d: d["count"] == 3)

    # Archived notifications do not count and are listed only on request.
    mark = tab_b.mark()
    assert await tab_a.rpc("inbox.archive", {"ids": [n1]}) == {"updated": 1}
    await tab_b.unread_push(2, since=mark)
    assert await tab_a.rpc("inbox.unread_count", {}) == {"count": 2}
    assert ids_of(await list_all_rpc(tab_b)) == [n3, n2]
    assert ids_of(await list_all_rpc(tab_b, include_archived=True)) == [n3, n2, n1]

    mark = tab_b.mark()
    assert await tab_a.rpc("inbox.delete", {"ids": [n2]}) == {"updated": 1}
    await tab_b.unread_push(1, since=mark)
    assert ids_of(await list_all_rpc(tab_b, include_archived=True)) == [n3, n1]
    assert await tab_a.rpc("inbox.delete", {"ids": [n2]}) == {"updated": 0}
    assert tab_b.unread_counts() == [1, 2, 3, 2, 1]

    # Another user's ids are ignored.
    for method in ("inbox.mark_read", "inbox.archive", "inbox.delete"):
        assert await tab_a.rpc(method, {"ids": [theirs]}) == {"updated": 0}, method
    assert await api(herald, "notifications_unread_count", user=v) == {"count": 1}
    assert ids_of((await api(herald, "notifications_list", user=v))["notifications"]) == [theirs]

    for method, bad in (
        ("inbox.mark_read", {}),                  # neither ids nor all
        ("inbox.mark_read", {"ids": "n1"}),      # not a list
        ("inbox.archive", {"ids": ["x"]}),       # not ids
        ("inbox.preferences", {"set": {"muted_levels": ["loud"]}}),  # unknown level
    ):
        e = await tab_a.rpc_error(method, bad)
        assert e.code == 107, (method, bad, e)
    e = await tab_a.rpc_error("inbox.nope", {})
    assert e.code == 104, e
    assert tab_a.c.client.state == ClientState.CONNECTED


async def test_preferences_muted_stored_read_not_pushed(herald, sdk):
    u, v = user_id(), user_id()
    tab = await open_tab(sdk, u)
    empty = {"muted_levels": [], "muted_categories": []}
    assert await tab.rpc("inbox.preferences", {"get": True}) == empty

    prefs = {"muted_levels": ["info"], "muted_categories": ["promo"]}
    assert await tab.rpc("inbox.preferences", {"set": prefs}) == prefs
    assert await tab.rpc("inbox.preferences", {"get": True}) == prefs
    # Per user: another user's preferences are untouched.
    other = await open_tab(sdk, v)
    assert await other.rpc("inbox.preferences", {"get": True}) == empty

    muted_level = await notify_one(herald, u, "muted by level", level="info", category="orders")
    muted_cat = await notify_one(herald, u, "muted by category", level="warning", category="promo")
    loud = await notify_one(herald, u, "loud", level="error", category="orders")
    # Barrier: pushes arrive in order, so muted ones would have come first.
    await tab.push("notification", lambda d: d["notification"]["id"] == loud)
    await tab.push("unread_count", lambda d: d["count"] == 1)
    assert ids_of([p["notification"] for p in tab.pushes("notification")]) == [loud]
    # The badge never rose for the muted ones.
    # (a push of an unchanged 0 for a muted one would be harmless)
    assert tab.unread_counts() in ([1], [0, 1]), tab.pushes("unread_count")

    listed = await list_all_rpc(tab)
    assert [(n["id"], n["read"]) for n in listed] == [(loud, False), (muted_cat, True), (muted_level, True)]
    assert await tab.rpc("inbox.unread_count", {}) == {"count": 1}
    assert await api(herald, "notifications_unread_count", user=u) == {"count": 1}

    # The same notification to the other user (not muted) is pushed as usual.
    theirs = await notify_one(herald, v, "info for v", level="info", category="promo")
    await other.push("notification", lambda d: d["notification"]["id"] == theirs)

    # Unmuting applies to later notifications.
    assert await tab.rpc("inbox.preferences", {"set": empty}) == empty
    later = await notify_one(herald, u, "now audible", level="info", category="promo")
    await tab.push("notification", lambda d: d["notification"]["id"] == later)
    await tab.push("unread_count", lambda d: d["count"] == 2)


async def test_anonymous_connection_has_no_inbox(herald, sdk):
    anon = sdk("")
    await anon.connect()
    for method, data in (
        ("inbox.list", {}), ("inbox.unread_count", {}), ("inbox.mark_read", {"all": True}),
        ("inbox.preferences", {"get": True}),
    ):
        e = await rpc_error(anon, method, data)
        assert e.code == 103, (method, e)
    assert anon.client.state == ClientState.CONNECTED
    assert [x.channel for x in anon.log.all("server_subscribed") if x.channel.startswith("inbox:")] == []


async def test_inbox_switched_off_answers_108(app_herald_factory, sdk):
    h = await app_herald_factory(extra_toml="[inbox]\nenabled = false\n")
    c = sdk("42", server=h)
    await c.connect()
    e = await rpc_error(c, "inbox.unread_count", {})
    assert e.code == 108, e
    e = await api_error(h, "notify", users=["42"], title="off")
    assert e.code == 108, (e.code, e.message)
    # (The connection may still be on inbox:#42: chat's chat_unread pushes use it.)


# --------------------------------------------------------------------------
# notifications_* through the server API
# --------------------------------------------------------------------------


async def test_api_list_update_and_unread_count(herald, sdk):
    u, v = user_id(), user_id()
    tab = await open_tab(sdk, u)
    n1 = await notify_one(herald, u, "n1", level="warning", category="billing")
    n2 = await notify_one(herald, u, "n2", level="info", category="orders")
    n3 = await notify_one(herald, u, "n3", level="warning", category="orders")
    theirs = await notify_one(herald, v, "v1")
    await tab.push("unread_count", lambda d: d["count"] == 3)

    page = await api(herald, "notifications_list", user=u, limit=2)
    assert ids_of(page["notifications"]) == [n3, n2] and page["next_cursor"], page
    assert all(n["user"] == u for n in page["notifications"])
    page2 = await api(herald, "notifications_list", user=u, limit=2, cursor=page["next_cursor"])
    assert ids_of(page2["notifications"]) == [n1] and page2["next_cursor"] is None, page2
    everything = await api(herald, "notifications_list", user=u)
    assert ids_of(everything["notifications"]) == [n3, n2, n1] and everything["next_cursor"] is None
    assert ids_of((await api(herald, "notifications_list", user=u, level="warning"))["notifications"]) == [n3, n1]
    assert ids_of((await api(herald, "notifications_list", user=u, category="orders"))["notifications"]) == [n3, n2]
    assert ids_of((await api(herald, "notifications_list", user=user_id()))["notifications"]) == []

    async def update(updated: int, count: int, **params: Any) -> None:
        mark = tab.mark()
        assert await api(herald, "notifications_update", user=u, **params) == {"updated": updated}, params
        assert await api(herald, "notifications_unread_count", user=u) == {"count": count}
        # A backend change reaches the user's tab too.
        await tab.unread_push(count, since=mark)

    assert await api(herald, "notifications_unread_count", user=u) == {"count": 3}
    await update(2, 1, action="read", ids=[n1, n3])
    unread = await api(herald, "notifications_list", user=u, unread_only=True)
    assert ids_of(unread["notifications"]) == [n2], unread
    await update(2, 3, action="unread", all=True)
    await update(1, 2, action="archive", ids=[n2])
    assert ids_of((await api(herald, "notifications_list", user=u))["notifications"]) == [n3, n1]
    archived = await api(herald, "notifications_list", user=u, include_archived=True)
    assert [(n["id"], n["archived"]) for n in archived["notifications"]] == [(n3, False), (n2, True), (n1, False)]
    await update(1, 1, action="delete", ids=[n3])
    assert ids_of((await api(herald, "notifications_list", user=u, include_archived=True))["notifications"]) == [n2, n1]

    # Another user's ids are ignored.
    assert await api(herald, "notifications_update", user=u, action="read", ids=[theirs]) == {"updated": 0}
    assert await api(herald, "notifications_unread_count", user=v) == {"count": 1}

    for bad in (
        {"user": u, "action": "explode", "ids": [n1]},   # unknown action
        {"user": u, "action": "read"},                   # neither ids nor all
        {"user": u, "action": "read", "ids": "n1"},      # not a list
        {"user": u, "action": "read", "ids": [n1], "all": True},  # not both
        {"user": u, "action": "read", "ids": list(range(1, 1002))},  # over 1,000 ids
    ):
        e = await api_error(herald, "notifications_update", **bad)
        assert e.code == 107, (bad, e.code, e.message)
    e = await api_error(herald, "notifications_list", user=u, cursor="garbage")
    assert e.code == 107, (e.code, e.message)

    # Delete everything the user has (nothing is archived any more but n2).
    mark = tab.mark()
    res = await api(herald, "notifications_update", user=u, action="delete", all=True)
    assert res == {"updated": 2}, res
    await tab.unread_push(0, since=mark)
    assert (await api(herald, "notifications_list", user=u, include_archived=True))["notifications"] == []
    assert tab.unread_counts() == [1, 2, 3, 1, 3, 2, 1, 0]


# --------------------------------------------------------------------------
# Two nodes on Redis, one PostgreSQL database
# --------------------------------------------------------------------------


class TestTwoNodes:
    @pytest.fixture
    def herald(self, pg_cluster):
        """``sdk`` clients connect to node A unless given ``server=``."""
        return pg_cluster.nodes[0]

    async def test_notify_on_node_a_reaches_user_on_node_b(self, pg_cluster, sdk):
        a, b = pg_cluster.nodes
        u = user_id()
        tab_b = await open_tab(sdk, u, server=b)
        tab_a = await open_tab(sdk, u, server=a)

        nid = await notify_one(a, u, "from node A", level="warning", data={"via": "A"})
        for tab in (tab_b, tab_a):
            n = (await tab.push("notification"))["notification"]
            assert (n["id"], n["user"], n["title"], n["data"]) == (nid, u, "from node A", {"via": "A"}), n
            await tab.unread_push(1, since=0)

        # Read on node B: the tab on node A shows the same number.
        marks = (tab_a.mark(), tab_b.mark())
        assert await tab_b.rpc("inbox.mark_read", {"ids": [nid]}) == {"updated": 1}
        await tab_a.unread_push(0, since=marks[0])
        await tab_b.unread_push(0, since=marks[1])
        assert await tab_a.rpc("inbox.unread_count", {}) == {"count": 0}
        for h in (a, b):
            assert await api(h, "notifications_unread_count", user=u) == {"count": 0}
            listed = (await api(h, "notifications_list", user=u))["notifications"]
            assert [(n["id"], n["read"]) for n in listed] == [(nid, True)], listed

        # And the other way round, from node B's API.
        marks = (tab_a.mark(), tab_b.mark())
        other = await notify_one(b, u, "from node B", dedupe_key="k-1")
        assert await notify_one(a, u, "again from node A", dedupe_key="k-1") == other
        for tab, mark in zip((tab_a, tab_b), marks):
            pushed = await tab.push("notification", since=mark)
            assert pushed["notification"]["id"] == other
            await tab.unread_push(1, since=mark)
        assert ids_of(await list_all_rpc(tab_a)) == ids_of(await list_all_rpc(tab_b)) == [other, nid]
