"""Fixtures for the Python external-client acceptance suite.

Every test gets its own Herald process (``herald serve --config FILE`` with
``listen = "127.0.0.1:0"``), started from ``$HERALD_BIN`` or
``<repo>/target/debug/herald``, and stopped with SIGTERM at teardown.

The clients under test are the published ones: ``centrifuge-python`` (import
``centrifuge``) for the WebSocket client protocol and ``cent`` for the server
HTTP API. ``websockets`` is used directly only for deliberately bad input.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest
import requests
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

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "target" / "debug" / "herald"

HMAC_SECRET = "test-secret"
API_KEY = "test-api-key"

# How long any single expected event may take to show up.
EVENT_TIMEOUT = 5.0
# How long the server may take to start and print its listening line.
STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 10.0

LISTEN_RE = re.compile(r"herald listening on (http://\S+)")


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------

CONFIG_TEMPLATE = """\
[server]
listen = "127.0.0.1:0"
allowed_origins = {allowed_origins}

[auth]
hmac_secret = "{hmac_secret}"

[api]
key = "{api_key}"

[client]
allow_anonymous_connect_without_token = false
ping_interval = "{ping_interval}"
pong_timeout = "{pong_timeout}"
channel_limit = {channel_limit}
user_connection_limit = {user_connection_limit}
max_message_bytes = {max_message_bytes}

[channel.without_namespace]
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_publish_for_client = false
allow_presence_for_subscriber = true
presence = true
join_leave = true
force_push_join_leave = true

[[channel.namespaces]]
name = "dm"
allow_subscribe_for_client = true
allow_user_limited_channels = true

[[channel.namespaces]]
name = "private"
"""

CONFIG_DEFAULTS: Dict[str, Any] = {
    "allowed_origins": "[]",
    "hmac_secret": HMAC_SECRET,
    "api_key": API_KEY,
    "ping_interval": "25s",
    "pong_timeout": "10s",
    "channel_limit": 128,
    "user_connection_limit": 0,
    "max_message_bytes": 65536,
}


def render_config(**overrides: Any) -> str:
    unknown = set(overrides) - set(CONFIG_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config override(s): {sorted(unknown)}")
    values = dict(CONFIG_DEFAULTS)
    values.update(overrides)
    return CONFIG_TEMPLATE.format(**values)


# --------------------------------------------------------------------------
# JWT minting (HS256/384/512 and alg:none), no PyJWT needed
# --------------------------------------------------------------------------

_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def jwt_encode(claims: Dict[str, Any], secret: str, alg: str = "HS256") -> str:
    header = {"alg": alg, "typ": "JWT"}
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    if alg.lower() == "none":
        return signing_input + "."
    digest = _DIGESTS[alg]
    sig = hmac.new(secret.encode(), signing_input.encode("ascii"), digest).digest()
    return signing_input + "." + _b64url(sig)


class Tokens:
    """Mints connection and subscription tokens for one server's secret."""

    def __init__(self, secret: str):
        self.secret = secret

    def connection(
        self,
        user: str = "42",
        ttl: Optional[int] = 3600,
        *,
        info: Any = None,
        channels: Optional[List[str]] = None,
        subs: Optional[Dict[str, Any]] = None,
        alg: str = "HS256",
        secret: Optional[str] = None,
        **extra: Any,
    ) -> str:
        now = int(time.time())
        claims: Dict[str, Any] = {"sub": user, "iat": now}
        if ttl is not None:
            claims["exp"] = now + ttl
        if info is not None:
            claims["info"] = info
        if channels is not None:
            claims["channels"] = channels
        if subs is not None:
            claims["subs"] = subs
        claims.update(extra)
        return jwt_encode(claims, self.secret if secret is None else secret, alg)

    def subscription(self, user: str, channel: str, ttl: int = 3600, **extra: Any) -> str:
        now = int(time.time())
        claims = {"sub": user, "channel": channel, "iat": now, "exp": now + ttl}
        claims.update(extra)
        return jwt_encode(claims, self.secret)

    def expired(self, user: str = "42") -> str:
        now = int(time.time())
        return jwt_encode({"sub": user, "iat": now - 7200, "exp": now - 3600}, self.secret)

    def bad_signature(self, user: str = "42") -> str:
        return self.connection(user, secret=self.secret + "-but-wrong")

    def alg_none(self, user: str = "42") -> str:
        return self.connection(user, alg="none")


# --------------------------------------------------------------------------
# Herald process
# --------------------------------------------------------------------------


@dataclass
class Herald:
    proc: subprocess.Popen
    url: str
    config_path: Path
    log_path: Path
    api_key: str
    tokens: Tokens
    cent: cent.Client
    acent: Optional[cent.AsyncClient] = None
    stdout_lines: List[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/connection/websocket"

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    def token(self, user: str = "42", **kw: Any) -> str:
        return self.tokens.connection(user, **kw)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "<no log>"
        return "\n".join(lines[-n:])


def herald_binary() -> Path:
    return Path(os.environ.get("HERALD_BIN") or DEFAULT_BIN)


def _start_herald(workdir: Path, **overrides: Any) -> Herald:
    binary = herald_binary()
    if not binary.exists():
        pytest.fail(
            f"herald binary not found at {binary}: build it (target/debug/herald) "
            f"or set HERALD_BIN",
            pytrace=False,
        )
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "herald.toml"
    config_path.write_text(render_config(**overrides))
    log_path = workdir / "herald.stderr.log"
    log_file = open(log_path, "wb")

    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.setdefault("RUST_LOG", "info")
    env.setdefault("RUST_BACKTRACE", "1")
    proc = subprocess.Popen(
        [str(binary), "serve", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=log_file,
        stdin=subprocess.DEVNULL,
        cwd=str(workdir),
        env=env,
    )
    log_file.close()

    lines: "queue.Queue[Optional[str]]" = queue.Queue()
    seen: List[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            seen.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()

    deadline = time.monotonic() + STARTUP_TIMEOUT
    url = None
    while url is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:
            break
        m = LISTEN_RE.search(line)
        if m:
            url = m.group(1).rstrip("/")
    if url is None:
        _stop_proc(proc)
        tail = log_path.read_text(errors="replace")[-4000:]
        pytest.fail(
            f"herald did not print 'herald listening on http://...' within "
            f"{STARTUP_TIMEOUT}s (exit code {proc.poll()}); stdout={seen!r}\n"
            f"stderr tail:\n{tail}",
            pytrace=False,
        )

    session = requests.Session()
    session.trust_env = False
    sync_client = cent.Client(url + "/api", API_KEY if "api_key" not in overrides else overrides["api_key"],
                              timeout=5.0, session=session)
    return Herald(
        proc=proc,
        url=url,
        config_path=config_path,
        log_path=log_path,
        api_key=overrides.get("api_key", API_KEY),
        tokens=Tokens(overrides.get("hmac_secret", HMAC_SECRET)),
        cent=sync_client,
        stdout_lines=seen,
    )


def _stop_proc(proc: subprocess.Popen) -> Optional[int]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


@pytest.fixture
async def herald_factory(tmp_path):
    """Start Herald with config overrides: ``await herald_factory(channel_limit=4)``."""
    started: List[Herald] = []

    async def start(**overrides: Any) -> Herald:
        h = _start_herald(tmp_path / f"herald-{len(started)}", **overrides)
        h.acent = cent.AsyncClient(h.api_url, h.api_key, timeout=5.0)
        started.append(h)
        return h

    yield start

    for h in started:
        if h.acent is not None:
            await h.acent.close()
        h.cent.close()
        alive_before_stop = h.alive()
        _stop_proc(h.proc)
        if not alive_before_stop:
            # Shows up only when the test failed (captured teardown output).
            print(f"herald exited early with code {h.proc.returncode}; stderr tail:\n{h.log_tail()}")


@pytest.fixture
async def herald(herald_factory) -> Herald:
    return await herald_factory()


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

    def all(self, name: str, pred: Optional[Callable[[Any], bool]] = None) -> List[Any]:
        return [c for n, c in self.events if n == name and (pred is None or pred(c))]

    def names(self) -> List[str]:
        return [n for n, _ in self.events]

    async def wait(
        self,
        name: str,
        pred: Optional[Callable[[Any], bool]] = None,
        *,
        count: int = 1,
        timeout: float = EVENT_TIMEOUT,
    ) -> Any:
        """Wait until ``count`` events ``name`` matching ``pred`` were recorded;
        returns the count-th one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            matches = self.all(name, pred)
            if len(matches) >= count:
                return matches[count - 1]
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"[{self.label}] timed out after {timeout}s waiting for {count} "
                    f"'{name}' event(s); recorded: {self.events!r}"
                )
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


class RecordingClientEvents(ClientEventHandler):
    def __init__(self, log: EventLog):
        self.log = log

    async def on_connecting(self, ctx):
        self.log.record("connecting", ctx)

    async def on_connected(self, ctx):
        self.log.record("connected", ctx)

    async def on_disconnected(self, ctx):
        self.log.record("disconnected", ctx)

    async def on_error(self, ctx):
        self.log.record("error", ctx)

    async def on_subscribed(self, ctx):
        self.log.record("server_subscribed", ctx)

    async def on_subscribing(self, ctx):
        self.log.record("server_subscribing", ctx)

    async def on_unsubscribed(self, ctx):
        self.log.record("server_unsubscribed", ctx)

    async def on_publication(self, ctx):
        self.log.record("server_publication", ctx)

    async def on_join(self, ctx):
        self.log.record("server_join", ctx)

    async def on_leave(self, ctx):
        self.log.record("server_leave", ctx)


class RecordingSubEvents(SubscriptionEventHandler):
    def __init__(self, log: EventLog):
        self.log = log

    async def on_subscribing(self, ctx):
        self.log.record("subscribing", ctx)

    async def on_subscribed(self, ctx):
        self.log.record("subscribed", ctx)

    async def on_unsubscribed(self, ctx):
        self.log.record("unsubscribed", ctx)

    async def on_publication(self, ctx):
        self.log.record("publication", ctx)

    async def on_join(self, ctx):
        self.log.record("join", ctx)

    async def on_leave(self, ctx):
        self.log.record("leave", ctx)

    async def on_error(self, ctx):
        self.log.record("error", ctx)


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
