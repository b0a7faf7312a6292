"""Webhooks (docs/webhooks.md) with the published clients: a centrifuge-python
connection and cent's API calls make events happen, and a local backend that
fails its first requests receives every event, signed, after Herald retries."""

import asyncio
import hashlib
import hmac
import json
from typing import Any, Dict, List

from apps_support import api, app_herald_factory, open_tab  # noqa: F401 (fixture)
from herald_harness import EVENT_TIMEOUT

SECRET = "hook-secret"


class Backend:
    """A minimal HTTP/1.1 receiver: answers 500 to the first ``fail_first``
    requests and 204 after, recording each request."""

    def __init__(self, fail_first: int):
        self.fail_first = fail_first
        self.requests: List[Dict[str, Any]] = []
        self.changed = asyncio.Condition()
        self.server = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hooks"

    async def _serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                async with self.changed:
                    self.requests.append({"headers": headers, "body": body})
                    failing = len(self.requests) <= self.fail_first
                    self.changed.notify_all()
                status = b"500 Internal Server Error" if failing else b"204 No Content"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def delivered(self) -> List[Dict[str, Any]]:
        """Events of the requests answered 204, with their signatures checked."""
        events = []
        for request in self.requests[self.fail_first:]:
            headers, body = request["headers"], request["body"]
            signed = headers["x-herald-timestamp"].encode() + b"." + body
            expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(expected, headers["x-herald-signature"]), headers
            event = json.loads(body)
            assert headers["x-herald-event"] == event["event"]
            assert headers["x-herald-delivery"] == event["id"]
            events.append(event)
        return events

    async def wait_for(self, name: str, **data: Any) -> Dict[str, Any]:
        def found():
            return next(
                (e for e in self.delivered()
                 if e["event"] == name and all(e["data"].get(k) == v for k, v in data.items())),
                None,
            )

        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(found), EVENT_TIMEOUT * 2)
            return found()


async def test_events_reach_a_failing_backend_signed_after_retries(app_herald_factory, sdk):
    backend = Backend(fail_first=3)
    url = await backend.start()
    h = await app_herald_factory(extra_toml=(
        f'[webhooks]\nurl = "{url}"\nsecret = "{SECRET}"\n'
        'retry_initial = "50ms"\nretry_max = "200ms"\n'
    ))
    tab = await open_tab(sdk, "42", server=h)
    online = await backend.wait_for("user.online", user="42")
    connected = await backend.wait_for("connect", user="42")
    assert connected["data"]["client"] == tab.c.client_id

    await api(h, "chat_create", conversation="hooked", members=["42"])
    await tab.rpc("chat.send", {"conversation": "hooked", "text": "ping"})
    message = await backend.wait_for("chat.message")
    assert message["data"]["message"]["text"] == "ping"

    ids = (await api(h, "notify", users=["42"], title="t"))["ids"]
    await tab.rpc("inbox.mark_read", {"ids": ids})
    read = await backend.wait_for("notification.read", user="42")
    assert read["data"]["ids"] == ids

    await tab.c.client.disconnect()
    offline = await backend.wait_for("user.offline", user="42")
    assert offline["time"] >= online["time"]

    retried = [r for r in backend.requests if int(r["headers"]["x-herald-attempt"]) > 1]
    assert len(retried) >= 3, "the three refused events were sent again"
    delivered_ids = [e["id"] for e in backend.delivered()]
    assert len(delivered_ids) == len(set(delivered_ids)), "each event accepted once"
    backend.server.close()
