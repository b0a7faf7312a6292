"""Server pings ({}), client pongs ({}), and the no-pong disconnect (3012)."""

import asyncio
import json

import pytest
import websockets

from conftest import assert_server_healthy, decode_frame, unique, ws_connect_cmd, ws_open

PING = 1.0
PONG_TIMEOUT = 1.0


async def _wait_ping(ws, timeout):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await asyncio.wait_for(ws.recv(), max(0.01, deadline - loop.time()))
        if {} in decode_frame(frame):
            return


async def test_pings_answered_keep_connection(herald_factory, sdk):
    h = await herald_factory(ping_interval="1s", pong_timeout="1s")
    ws = await ws_open(h)
    reply = await ws_connect_cmd(ws, h.token("42"))
    connect = reply["connect"]
    assert connect.get("ping") == 1, f"connect result should announce ping interval 1: {connect}"
    assert connect.get("pong") is True, f"connect result should ask for pongs: {connect}"

    for _ in range(3):
        await _wait_ping(ws, PING + 2)
        await ws.send("{}")
    # Still open and usable after 3 ping/pong rounds.
    await ws.send(json.dumps({"id": 2, "subscribe": {"channel": unique("alive")}}))
    while True:
        got = decode_frame(await asyncio.wait_for(ws.recv(), 5))
        if {} in got:
            await ws.send("{}")
        r = [x for x in got if x.get("id") == 2]
        if r:
            assert "error" not in r[0], r[0]
            break
    await ws.close()

    # The SDK answers pings on its own and stays connected across several.
    c = sdk("42", server=h)
    await c.connect()
    s = await c.subscribe(unique("sdkping"))
    await _wait_for_n_pings_via_raw_observer(h)
    assert c.client.state.value == "connected", c.log.names()
    assert c.log.all("connecting", lambda x: x.code != 0) == [], c.log.events
    await assert_server_healthy(h, sdk)
    assert s.sub.state.value == "subscribed"


async def _wait_for_n_pings_via_raw_observer(h, n=3):
    """Bound the wait for the SDK check by observing pings on a second raw
    connection (answering them), instead of sleeping."""
    ws = await ws_open(h)
    await ws_connect_cmd(ws, h.token("77"))
    for _ in range(n):
        await _wait_ping(ws, PING + 2)
        await ws.send("{}")
    await ws.close()


async def test_no_pong_closes_3012(herald_factory, sdk):
    h = await herald_factory(ping_interval="1s", pong_timeout="1s")
    ws = await ws_open(h)
    await ws_connect_cmd(ws, h.token("42"))
    code = None
    pings = 0
    try:
        async with asyncio.timeout(PING + PONG_TIMEOUT + 5):
            while True:
                frame = await ws.recv()  # never answer
                pings += decode_frame(frame).count({})
    except websockets.ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd else None
    except TimeoutError:
        pytest.fail("server never closed a connection that did not answer pings")
    assert pings >= 1, "the server must send a ping ({}) before closing for a missing pong"
    assert code == 3012, f"expected close 3012 no pong, got {code}"
    await assert_server_healthy(h, sdk)
