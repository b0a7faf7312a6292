"""Deliberately bad input over a raw WebSocket (the `websockets` library that
centrifuge-python depends on). Each case checks the precise protocol answer,
then that a separate well-behaved client is unaffected."""

import asyncio
import json

import pytest
import websockets

from conftest import (
    EVENT_TIMEOUT,
    assert_server_healthy,
    decode_frame,
    unique,
    ws_collect,
    ws_connect_cmd,
    ws_expect_close,
    ws_open,
    ws_read_until,
)


async def _connected_ws(h, user="42"):
    ws = await ws_open(h)
    reply = await ws_connect_cmd(ws, h.token(user))
    assert "error" not in reply, reply
    assert reply.get("connect", {}).get("client"), reply
    return ws


@pytest.mark.parametrize("when", ["after_connect", "first_frame"])
@pytest.mark.parametrize("payload", ["this is not json", '{"id": 2, "subscribe": {"channel": "x"}', "[1,2,"])
async def test_invalid_json_closes_3501(herald, sdk, when, payload):
    if when == "after_connect":
        ws = await _connected_ws(herald)
    else:
        ws = await ws_open(herald)
    await ws.send(payload)
    code, reason, seen = await ws_expect_close(ws)
    assert code == 3501, f"sent {payload!r} ({when}): expected close 3501, got {code} {reason!r}; replies {seen!r}"
    await assert_server_healthy(herald, sdk)


async def test_unknown_command(herald, sdk):
    """A command with an id but no method Herald knows answers error 104
    "method not found" (docs/protocol.md) and the connection stays usable."""
    ws = await _connected_ws(herald)
    await ws.send(json.dumps({"id": 2, "foo": {}}))
    reply = await ws_read_until(ws, lambda r: r.get("id") == 2)
    assert reply.get("error", {}).get("code") == 104, f"unknown command: unexpected reply {reply!r}"
    await ws.send(json.dumps({"id": 3, "subscribe": {"channel": unique("after-unknown")}}))
    ok = await ws_read_until(ws, lambda r: r.get("id") == 3)
    assert "error" not in ok, ok
    await assert_server_healthy(herald, sdk)


async def test_oversize_frame_closes_1009(herald, sdk):
    ws = await _connected_ws(herald)
    channel = unique("big")
    await ws.send(json.dumps({"id": 2, "subscribe": {"channel": channel}}))
    sub = await ws_read_until(ws, lambda r: r.get("id") == 2)
    assert "error" not in sub, sub

    # Just under max_message_bytes (65536) is fine.
    near = json.dumps({"id": 3, "publish": {"channel": channel, "data": {"blob": "x" * 60000}}})
    assert len(near) < 65536
    await ws.send(near)
    rep = await ws_read_until(ws, lambda r: r.get("id") == 3)
    assert "error" not in rep, rep

    big = json.dumps({"id": 4, "publish": {"channel": channel, "data": {"blob": "y" * 70000}}})
    assert len(big) > 65536
    await ws.send(big)
    code, reason, seen = await ws_expect_close(ws)
    assert code == 1009, f"expected close 1009 (message too big), got {code} {reason!r}"
    assert all(r.get("id") != 4 for r in seen), "the oversize command must not be executed"
    await assert_server_healthy(herald, sdk)


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda tokens: tokens.bad_signature("42"), id="bad_signature"),
        pytest.param(lambda tokens: "not.a.jwt", id="malformed"),
        pytest.param(lambda tokens: tokens.alg_none("42"), id="alg_none"),
    ],
)
async def test_invalid_token_closes_3500(herald, sdk, make_token):
    ws = await ws_open(herald)
    await ws.send(json.dumps({"id": 1, "connect": {"token": make_token(herald.tokens)}}))
    code, reason, seen = await ws_expect_close(ws)
    assert code == 3500, f"got close {code} {reason!r}, replies {seen!r}"
    await assert_server_healthy(herald, sdk)


async def test_expired_token_error_109(herald, sdk):
    ws = await ws_open(herald)
    reply = await ws_connect_cmd(ws, herald.tokens.expired("42"))
    assert reply.get("error", {}).get("code") == 109, reply
    assert "connect" not in reply, reply
    await ws.close()
    await assert_server_healthy(herald, sdk)


async def test_no_token_rejected(herald, sdk):
    """allow_anonymous_connect_without_token = false: a connect without a token
    is refused (Centrifugo: close 3500 invalid token / 101 unauthorized)."""
    ws = await ws_open(herald)
    await ws.send(json.dumps({"id": 1, "connect": {}}))
    try:
        reply = await ws_read_until(ws, lambda r: r.get("id") == 1)
        assert reply.get("error", {}).get("code") == 101, reply
    except Exception as e:
        if not isinstance(e, websockets.ConnectionClosed):
            raise
        code = e.rcvd.code if e.rcvd else None
        assert code in (3500, 3501, 3507), f"no token: got close {code}"
    await assert_server_healthy(herald, sdk)


async def test_2000_subscribes_in_one_frame(herald_factory, sdk):
    # The frame is ~90 KB: raise max_message_bytes so only channel_limit matters.
    h = await herald_factory(channel_limit=128, max_message_bytes=1048576)
    ws = await _connected_ws(h)
    n = 2000
    ids = list(range(2, 2 + n))
    frame = "\n".join(
        json.dumps({"id": i, "subscribe": {"channel": f"flood-{i}"}}) for i in ids
    )
    await ws.send(frame)

    replies = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while len(replies) < n:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            f = await asyncio.wait_for(ws.recv(), remaining)
        except asyncio.TimeoutError:
            break
        for r in decode_frame(f):
            if r == {}:
                await ws.send("{}")
            elif r.get("id"):
                assert r["id"] not in replies, f"duplicate reply for id {r['id']}"
                replies[r["id"]] = r
    missing = [i for i in ids if i not in replies]
    assert not missing, f"{len(missing)} ids got no reply (first: {missing[:5]}); got {len(replies)}"

    first, rest = ids[:128], ids[128:]
    bad_first = [replies[i] for i in first if "error" in replies[i] or "subscribe" not in replies[i]]
    assert not bad_first, f"the first 128 subscribes must succeed; failures: {bad_first[:3]}"
    not_106 = [replies[i] for i in rest if replies[i].get("error", {}).get("code") != 106]
    assert not not_106, f"{len(not_106)} of the remaining {len(rest)} did not get error 106: {not_106[:3]}"

    # The connection survived and is still usable (unsubscribe frees a slot).
    await ws.send(json.dumps({"id": 5000, "unsubscribe": {"channel": "flood-2"}}))
    r = await ws_read_until(ws, lambda r: r.get("id") == 5000)
    assert "error" not in r, r
    await ws.send(json.dumps({"id": 5001, "subscribe": {"channel": "flood-after"}}))
    r = await ws_read_until(ws, lambda r: r.get("id") == 5001)
    assert "error" not in r and "subscribe" in r, r
    await ws.close()
    await assert_server_healthy(h, sdk)


async def test_double_subscribe_105(herald, sdk):
    ws = await _connected_ws(herald)
    ch = unique("twice")
    await ws.send(
        json.dumps({"id": 2, "subscribe": {"channel": ch}}) + "\n" + json.dumps({"id": 3, "subscribe": {"channel": ch}})
    )
    got = await ws_collect(ws, [2, 3])
    r2, r3 = got[2], got[3]
    assert "error" not in r2 and "subscribe" in r2, r2
    assert r3.get("error", {}).get("code") == 105, r3
    await ws.close()
    await assert_server_healthy(herald, sdk)
