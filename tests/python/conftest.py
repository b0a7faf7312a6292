"""Fixtures for the Python external-client acceptance suite.

Every test gets its own Herald process (``herald serve --config FILE`` with
``listen = "127.0.0.1:0"``), started from ``$HERALD_BIN`` or
``<repo>/target/debug/herald``, and stopped with SIGTERM at teardown. The
process, config and token helpers are in ``herald_harness.py``; this file holds
the fixtures and the client-side helpers the tests import.

The clients under test are the published ones: ``centrifuge-python`` (import
``centrifuge``) for the WebSocket client protocol and ``cent`` for the server
HTTP API. ``websockets`` is used directly only for deliberately bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import pytest
import websockets

import cent
from centrifuge import (
    Client as CentrifugeClient,
    ClientEventHandler,
    ClientState,
    Subscription,
    SubscriptionEventHandler,
    SubscriptionState,
)

from herald_harness import EVENT_TIMEOUT, Herald, restart_herald, start_herald, stop_proc


# --------------------------------------------------------------------------
# Herald fixtures
# --------------------------------------------------------------------------


@pytest.fixture
async def herald_factory(tmp_path):
    """Start Herald with config overrides: ``await herald_factory(channel_limit=4)``."""
    async with heralds(lambda i, **kw: start_herald(tmp_path / f"herald-{i}", **kw)) as start:
        yield start


@contextlib.asynccontextmanager
async def heralds(start_one: Callable[..., Herald]):
    """Yields ``start(**kw)``, which starts the i-th Herald with
    ``start_one(i, **kw)``; stops every one started on the way out."""
    started: List[Herald] = []

    async def start(**overrides: Any) -> Herald:
        h = start_one(len(started), **overrides)
        await renew_acent(h)
        started.append(h)
        return h

    try:
        yield start
    finally:
        for h in started:
            if h.acent is not None:
                await h.acent.close()
            h.cent.close()
            alive_before_stop = h.alive()
            stop_proc(h.proc)
            if not alive_before_stop:
                # Shows up only when the test failed (captured teardown output).
                print(f"herald exited early with code {h.proc.returncode}; stderr tail:\n{h.log_tail()}")


@pytest.fixture
async def herald(herald_factory) -> Herald:
    return await herald_factory()


async def renew_acent(h: Herald) -> None:
    """A fresh async cent client, after ``restart_herald`` (pooled connections
    went with the old process)."""
    if h.acent is not None:
        await h.acent.close()
    h.acent = cent.AsyncClient(h.api_url, h.api_key, timeout=5.0)


@contextlib.asynccontextmanager
async def serving(cluster: Any):
    """A started cluster with async cent clients, stopped on the way out; its
    nodes' log tails are printed (captured, shown when the test failed)."""
    from cluster_harness import stop_cluster

    try:
        for h in cluster.nodes:
            await renew_acent(h)
        yield cluster
    finally:
        print(cluster.log_tails())
        for h in cluster.nodes:
            if h.acent is not None:
                await h.acent.close()
        stop_cluster(cluster)


# --------------------------------------------------------------------------
# Event recording for centrifuge-python handlers
# --------------------------------------------------------------------------


class EventLog:
    """Records SDK events (name, ctx) and lets tests wait for them."""

    def __init__(self, label: str = ""):
        self.label = label
        self.events: List[tuple] = []
        self._changed = asyncio.Event()

    def record(self, name: str, ctx: Any) -> None:
        self.events.append((name, ctx))
        self._changed.set()

    def all(
        self, name: str, pred: Optional[Callable[[Any], bool]] = None, *, since: int = 0
    ) -> List[Any]:
        return [c for n, c in self.events[since:] if n == name and (pred is None or pred(c))]

    def names(self) -> List[str]:
        return [n for n, _ in self.events]

    async def wait(
        self,
        name: str,
        pred: Optional[Callable[[Any], bool]] = None,
        *,
        count: int = 1,
        since: int = 0,
        timeout: float = EVENT_TIMEOUT,
    ) -> Any:
        """Wait until ``count`` events ``name`` matching ``pred`` were recorded
        at index ``since`` or later; returns the count-th one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            matches = self.all(name, pred, since=since)
            if len(matches) >= count:
                return matches[count - 1]
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"[{self.label}] timed out after {timeout}s waiting for {count} "
                    f"'{name}' event(s) from #{since}; recorded: {self.events[since:]!r}"
                )
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


def _recorder(recorded_as: str):
    async def handler(self, ctx: Any) -> None:
        self.log.record(recorded_as, ctx)

    return handler


def _recording_handler(name: str, base: type, events: Dict[str, str]) -> type:
    """Subclass of the SDK handler ``base`` whose ``on_<event>`` methods record
    each callback in ``self.log`` as ``events[event]``."""
    unknown = [e for e in events if not hasattr(base, f"on_{e}")]
    if unknown:
        raise TypeError(f"{base.__name__} has no handler for {unknown}")

    def __init__(self, log: EventLog):
        self.log = log

    methods = {f"on_{event}": _recorder(recorded_as) for event, recorded_as in events.items()}
    return type(name, (base,), {"__init__": __init__, **methods})


# Connection-level events keep their name; the client's server-side
# subscription events are recorded with a "server_" prefix.
RecordingClientEvents = _recording_handler(
    "RecordingClientEvents",
    ClientEventHandler,
    {
        **{e: e for e in ("connecting", "connected", "disconnected", "error")},
        **{e: f"server_{e}" for e in ("subscribed", "subscribing", "unsubscribed", "publication", "join", "leave")},
    },
)

RecordingSubEvents = _recording_handler(
    "RecordingSubEvents",
    SubscriptionEventHandler,
    {e: e for e in ("subscribing", "subscribed", "unsubscribed", "publication", "join", "leave", "error")},
)


@dataclass
class SdkClient:
    client: CentrifugeClient
    log: EventLog
    user: str

    @property
    def client_id(self) -> str:
        return self.client.client_id

    async def connect(self, *, expect_connected: bool = True) -> None:
        await asyncio.wait_for(self.client.connect(), EVENT_TIMEOUT + 1)
        if expect_connected:
            await self.log.wait("connected")
            assert self.client.state == ClientState.CONNECTED, self.log.events

    def new_sub(self, channel: str, **kw: Any) -> "SdkSub":
        slog = EventLog(f"{self.user}:{channel}")
        sub = self.client.new_subscription(channel, events=RecordingSubEvents(slog), **kw)
        return SdkSub(sub, slog)

    async def subscribe(self, channel: str, **kw: Any) -> "SdkSub":
        """Subscribe and wait until subscribed."""
        s = self.new_sub(channel, **kw)
        await s.sub.subscribe()
        await s.wait_subscribed()
        return s


@dataclass
class SdkSub:
    sub: Subscription
    log: EventLog

    async def wait_subscribed(self) -> Any:
        # Fail fast and explicitly when the server denied the subscription.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + EVENT_TIMEOUT
        while True:
            subscribed = self.log.all("subscribed")
            if subscribed:
                assert self.sub.state == SubscriptionState.SUBSCRIBED
                return subscribed[0]
            unsub = self.log.all("unsubscribed")
            if unsub:
                raise AssertionError(
                    f"subscription to {self.sub.channel} was refused: "
                    f"code={unsub[0].code} reason={unsub[0].reason!r}; events={self.log.events!r}"
                )
            if loop.time() > deadline:
                raise AssertionError(
                    f"timed out subscribing to {self.sub.channel}; events={self.log.events!r}"
                )
            self.log._changed.clear()
            try:
                await asyncio.wait_for(self.log._changed.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                pass


@pytest.fixture
async def sdk(herald):
    """Factory of centrifuge-python clients bound to the per-test server.

    ``c = sdk(user="42", info={...})`` builds a client with a fresh token;
    pass ``token=`` / ``get_token=`` to control auth. All are disconnected at
    teardown."""
    made: List[SdkClient] = []

    def make(
        user: str = "42",
        *,
        token: Optional[str] = None,
        get_token=None,
        server: Optional[Herald] = None,
        headers: Optional[Dict[str, str]] = None,
        **token_kw: Any,
    ) -> SdkClient:
        srv = server or herald
        if token is None and get_token is None:
            token = srv.token(user, **token_kw)
        log = EventLog(f"client:{user}")
        client = CentrifugeClient(
            srv.ws_url,
            events=RecordingClientEvents(log),
            token=token or "",
            get_token=get_token,
            timeout=EVENT_TIMEOUT,
            min_reconnect_delay=0.05,
            max_reconnect_delay=0.5,
            proxy=None,
            headers=headers,
        )
        c = SdkClient(client, log, user)
        made.append(c)
        return c

    yield make

    for c in made:
        try:
            await asyncio.wait_for(c.client.disconnect(), 5)
        except Exception:
            pass


async def eventually(
    check: Callable[[], Any],
    *,
    timeout: float = EVENT_TIMEOUT,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value, or fail.
    Used only for state the server updates asynchronously (e.g. counts after a
    client went away), never as a substitute for an event."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")
        await asyncio.sleep(interval)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------
# Raw WebSocket helpers (bad input)
# --------------------------------------------------------------------------


async def ws_open(h: Herald):
    return await websockets.connect(
        h.ws_url, max_size=None, proxy=None, open_timeout=EVENT_TIMEOUT, close_timeout=2,
        ping_interval=None,
    )


def decode_frame(frame: Any) -> List[Dict[str, Any]]:
    if isinstance(frame, bytes):
        frame = frame.decode()
    return [json.loads(line) for line in frame.split("\n") if line.strip()]


async def ws_read_until(ws, pred: Callable[[Dict[str, Any]], bool], timeout: float = EVENT_TIMEOUT):
    """Read replies (answering server pings) until one matches ``pred``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError("timed out waiting for a matching reply")
        frame = await asyncio.wait_for(ws.recv(), remaining)
        for reply in decode_frame(frame):
            if reply == {}:
                await ws.send("{}")
                continue
            if pred(reply):
                return reply


async def ws_collect(ws, ids, timeout: float = EVENT_TIMEOUT) -> Dict[int, Dict[str, Any]]:
    """Read replies (answering pings) until every id in ``ids`` has one."""
    want = set(ids)
    got: Dict[int, Dict[str, Any]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not want.issubset(got):
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"no reply for ids {sorted(want - set(got))}; got {got!r}")
        frame = await asyncio.wait_for(ws.recv(), remaining)
        for reply in decode_frame(frame):
            if reply == {}:
                await ws.send("{}")
            elif reply.get("id") in want:
                got[reply["id"]] = reply
    return got


async def ws_connect_cmd(ws, token: str, cmd_id: int = 1) -> Dict[str, Any]:
    await ws.send(json.dumps({"id": cmd_id, "connect": {"token": token, "name": "raw-test"}}))
    return await ws_read_until(ws, lambda r: r.get("id") == cmd_id)


async def ws_expect_close(ws, timeout: float = EVENT_TIMEOUT):
    """Read until the server closes; returns (code, reason, replies_seen)."""
    seen: List[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                frame = await ws.recv()
                seen.extend(decode_frame(frame))
    except websockets.ConnectionClosed as e:
        if e.rcvd is None:
            return None, None, seen
        return e.rcvd.code, e.rcvd.reason, seen
    except TimeoutError:
        raise AssertionError(
            f"server did not close the connection within {timeout}s; replies seen: {seen!r}"
        )


async def assert_server_healthy(h: Herald, sdk_factory) -> None:
    """A separate, well-behaved client still connects, subscribes and receives
    a publication made with cent."""
    assert h.alive(), f"herald died (exit {h.proc.returncode}); stderr:\n{h.log_tail()}"
    c = sdk_factory("99", server=h)
    await c.connect()
    channel = unique("health")
    s = await c.subscribe(channel)
    payload = {"health": uuid.uuid4().hex}
    await h.acent.publish(cent.PublishRequest(channel=channel, data=payload))
    pub = await s.log.wait("publication")
    assert pub.pub.data == payload
    await c.client.disconnect()
