"""Proxies to the backend (docs/proxy.md) with the published clients, as a
new user would try them: a centrifuge-python client that sends only its
session cookie connects through the connect proxy, and a publish the
publish proxy rejects answers the client with the backend's own code."""

import asyncio
import json
from typing import Any, Dict, List

import pytest
from centrifuge import ReplyError

from conftest import unique


class Backend:
    """A minimal application backend: answers Herald's proxy requests from
    the session cookie, as a Django view would, and records each request."""

    def __init__(self):
        self.requests: List[Dict[str, Any]] = []
        self.server = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def answer(self, path: str, headers: Dict[str, str], body: Dict[str, Any]) -> Dict[str, Any]:
        if path == "/connect":
            cookie = headers.get("cookie", "")
            user = next((c.split("=", 1)[1] for c in cookie.split("; ") if c.startswith("sessionid=")), None)
            if user is None:
                return {"error": {"code": 1401, "message": "login required"}}
            return {"result": {"user": user, "info": {"name": user.title()}}}
        if path == "/subscribe":
            return {"result": {}}
        if path == "/publish":
            if "spam" in json.dumps(body.get("data")):
                return {"error": {"code": 1403, "message": "spam is not allowed"}}
            return {"result": {"data": {"text": body["data"]["text"].upper()}}}
        return {"error": {"code": 1404, "message": "unknown"}}

    async def _serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
                body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))))
                self.requests.append({"path": path, "headers": headers, "body": body})
                answer = json.dumps(self.answer(path, headers, body)).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(answer)).encode() + b"\r\n\r\n" + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def proxy_config(base: str) -> Dict[str, Any]:
    return {
        "extra_toml": f"""
[client.proxy.connect]
endpoint = "{base}/connect"
http_headers = ["Cookie"]

[channel.proxy.subscribe]
endpoint = "{base}/subscribe"

[channel.proxy.publish]
endpoint = "{base}/publish"
""",
        "namespaces": [{"name": "orders", "subscribe_proxy_enabled": True, "publish_proxy_enabled": True}],
    }


@pytest.fixture
async def backend():
    b = Backend()
    base = await b.start()
    yield b, base
    b.server.close()


async def test_a_client_with_only_a_session_cookie_connects_through_the_connect_proxy(herald_factory, sdk, backend):
    b, base = backend
    server = await herald_factory(**proxy_config(base))
    client = sdk("alice", server=server, token="", headers={"Cookie": "sessionid=alice"})
    await client.connect()
    connect = next(r for r in b.requests if r["path"] == "/connect")
    assert connect["headers"]["cookie"] == "sessionid=alice"
    assert connect["headers"]["x-herald-proxy-kind"] == "connect"
    assert connect["body"]["client"] == client.client_id
    assert connect["body"]["transport"] == "websocket"
    presence_channel = unique("lobby")
    await client.subscribe(presence_channel)
    presence = await server.acent.presence(__import__("cent").PresenceRequest(channel=presence_channel))
    users = {info.user for info in presence.presence.values()}
    assert users == {"alice"}, "the backend's user id is the connection's user"


async def test_a_connect_without_a_session_is_refused_with_the_backends_code(herald_factory, sdk, backend):
    _, base = backend
    server = await herald_factory(**proxy_config(base))
    client = sdk("nobody", server=server, token="")
    await client.connect(expect_connected=False)
    # The SDK treats a connect error that is not temporary as final.
    disconnected = await client.log.wait("disconnected")
    assert (disconnected.code, disconnected.reason) == (1401, "login required"), disconnected


async def test_a_publish_the_backend_rejects_answers_with_its_code(herald_factory, sdk, backend):
    b, base = backend
    server = await herald_factory(**proxy_config(base))
    client = sdk("alice", server=server, token="", headers={"Cookie": "sessionid=alice"})
    await client.connect()
    channel = "orders:" + unique("o")
    s = await client.subscribe(channel)
    with pytest.raises(ReplyError) as e:
        await s.sub.publish({"text": "buy spam"})
    assert e.value.code == 1403, e.value
    assert e.value.message == "spam is not allowed"
    await s.sub.publish({"text": "shipped"})
    publication = await s.log.wait("publication")
    assert publication.pub.data == {"text": "SHIPPED"}, "subscribers get the data as the backend rewrote it"
