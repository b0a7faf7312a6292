"""End-to-end check of a running peer: python selfcheck.py PORT

Two WebSocket clients join group "room", a third joins "other"; one POST to
/publish/room/ must reach both room clients as exactly the payload (one text
frame each, nothing else), and must not reach "other".
"""

import asyncio
import sys
import urllib.request

import websockets

PORT = int(sys.argv[1])
BASE = f"127.0.0.1:{PORT}"
QUIET_WINDOW = 0.5  # seconds in which no extra frame may arrive


def publish(group: str, payload: str) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://{BASE}/publish/{group}/", data=payload.encode("utf-8"), method="POST"
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, resp.read()


async def expect_silence(ws, name: str) -> None:
    try:
        extra = await asyncio.wait_for(ws.recv(), QUIET_WINDOW)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"{name}: unexpected extra frame {extra!r}")


async def main() -> None:
    a = await websockets.connect(f"ws://{BASE}/ws/room/")
    b = await websockets.connect(f"ws://{BASE}/ws/room/")
    other = await websockets.connect(f"ws://{BASE}/ws/other/")
    print("connected: 2 clients on /ws/room/, 1 on /ws/other/")

    # JSON-looking and non-ASCII on purpose: it must come back byte-for-byte,
    # not wrapped in an envelope or re-encoded.
    for payload in ['{"seq":1,"msg":"héllo ✓ from selfcheck"}', "plain text #2"]:
        status, body = await asyncio.to_thread(publish, "room", payload)
        assert (status, body) == (200, b"ok"), f"publish answered {status} {body!r}"
        print(f"POST /publish/room/ {payload!r} -> {status} {body.decode()}")
        for name, ws in (("client A", a), ("client B", b)):
            got = await asyncio.wait_for(ws.recv(), 5)
            assert isinstance(got, str), f"{name}: expected a text frame, got {type(got).__name__}"
            assert got == payload, f"{name}: got {got!r}, expected {payload!r}"
            print(f"{name} received exactly the payload")

    await asyncio.gather(
        expect_silence(a, "client A"), expect_silence(b, "client B"),
        expect_silence(other, "client on /ws/other/"),
    )
    print(f"no extra frames in {QUIET_WINDOW}s; /ws/other/ received nothing")
    for ws in (a, b, other):
        await ws.close()


asyncio.run(main())
print("selfcheck.py: OK")
