"""Herald process, config and token helpers for the Python acceptance suite.

No fixtures live here (they are in conftest.py); this module only knows how to
render a config file, mint JWTs and start/stop one ``herald serve --config
FILE`` process (``listen = "127.0.0.1:0"``), from ``$HERALD_BIN`` or
``<repo>/target/debug/herald``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import requests

import cent

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
listen = "{listen}"
name = "{server_name}"
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

[storage]
durable = {durable}
path = {storage_path}
sync = "{storage_sync}"
{broker}{namespaces}{extra_toml}"""

CONFIG_DEFAULTS: Dict[str, Any] = {
    "listen": "127.0.0.1:0",
    # The server's own default is durable = true; the path is always a
    # per-server temp dir (set by start_herald), never ./herald-data.
    "durable": True,
    "storage_path": None,
    "storage_sync": "normal",
    # Extra [[channel.namespaces]]: a list of {"name": ..., option: value} dicts.
    "namespaces": (),
    # A [broker] section ({"kind": "redis", ...}); None keeps the in-memory broker.
    "broker": None,
    "server_name": "",
    "allowed_origins": "[]",
    "hmac_secret": HMAC_SECRET,
    "api_key": API_KEY,
    "ping_interval": "25s",
    "pong_timeout": "10s",
    "channel_limit": 128,
    "user_connection_limit": 0,
    "max_message_bytes": 65536,
    # Raw TOML appended at the end (tables such as [client.proxy.connect]).
    "extra_toml": "",
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"unsupported TOML value {value!r}")


def render_namespaces(namespaces: Any) -> str:
    blocks = []
    for ns in namespaces:
        lines = ["", "[[channel.namespaces]]"]
        lines += [f"{key} = {toml_value(value)}" for key, value in ns.items()]
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + ("\n" if blocks else "")


def render_config(**overrides: Any) -> str:
    unknown = set(overrides) - set(CONFIG_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config override(s): {sorted(unknown)}")
    values = dict(CONFIG_DEFAULTS)
    values.update(overrides)
    if values["storage_path"] is None:
        raise ValueError("storage_path must be set (a per-server temp dir)")
    values["durable"] = toml_value(bool(values["durable"]))
    values["storage_path"] = toml_value(str(values["storage_path"]))
    values["namespaces"] = render_namespaces(values["namespaces"])
    broker = values["broker"] or {}
    values["broker"] = "".join(f"{k} = {toml_value(v)}\n" for k, v in broker.items())
    if broker:
        values["broker"] = "\n[broker]\n" + values["broker"]
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
    workdir: Path
    overrides: Dict[str, Any]
    acent: Optional[cent.AsyncClient] = None
    stdout_lines: List[str] = field(default_factory=list)
    # How many times the process was restarted (restart_herald).
    restarts: int = 0

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/connection/websocket"

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    @property
    def listen(self) -> str:
        return self.url.split("://", 1)[1]

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


def _wait_for_binary(binary: Path, timeout: float = 60.0) -> None:
    """The binary may be briefly missing while it is being rebuilt."""
    deadline = time.monotonic() + timeout
    while not binary.exists():
        if time.monotonic() > deadline:
            pytest.fail(
                f"herald binary not found at {binary}: build it (target/debug/herald) "
                f"or set HERALD_BIN",
                pytrace=False,
            )
        time.sleep(0.5)


def _spawn(workdir: Path, config_path: Path, log_path: Path) -> "tuple[subprocess.Popen, str, List[str]]":
    """Start ``herald serve`` and wait for its listening line; returns
    (process, base url, stdout lines)."""
    binary = herald_binary()
    _wait_for_binary(binary)
    log_file = open(log_path, "ab")
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
        stop_proc(proc)
        tail = log_path.read_text(errors="replace")[-4000:]
        pytest.fail(
            f"herald did not print 'herald listening on http://...' within "
            f"{STARTUP_TIMEOUT}s (exit code {proc.poll()}); stdout={seen!r}\n"
            f"stderr tail:\n{tail}",
            pytrace=False,
        )
    return proc, url, seen


def _sync_cent(url: str, api_key: str) -> cent.Client:
    session = requests.Session()
    session.trust_env = False
    return cent.Client(url + "/api", api_key, timeout=5.0, session=session)


def start_herald(workdir: Path, **overrides: Any) -> Herald:
    """Start a server in ``workdir``; its SQLite storage is ``workdir/storage``
    unless ``storage_path`` is given."""
    workdir.mkdir(parents=True, exist_ok=True)
    overrides.setdefault("storage_path", workdir / "storage")
    config_path = workdir / "herald.toml"
    config_path.write_text(render_config(**overrides))
    log_path = workdir / "herald.stderr.log"
    proc, url, seen = _spawn(workdir, config_path, log_path)
    api_key = overrides.get("api_key", API_KEY)
    return Herald(
        proc=proc,
        url=url,
        config_path=config_path,
        log_path=log_path,
        api_key=api_key,
        tokens=Tokens(overrides.get("hmac_secret", HMAC_SECRET)),
        cent=_sync_cent(url, api_key),
        workdir=workdir,
        overrides=dict(overrides),
        stdout_lines=seen,
    )


def kill_herald(h: Herald) -> int:
    """SIGKILL the process (no shutdown path runs) and reap it."""
    if h.proc.poll() is None:
        h.proc.send_signal(signal.SIGKILL)
    return h.proc.wait(timeout=SHUTDOWN_TIMEOUT)


def restart_herald(h: Herald) -> None:
    """Start the server again on the SAME port with the SAME config and storage
    dir (the old process must be gone, e.g. after kill_herald). Updates ``h`` in
    place, with a fresh sync cent client; the caller replaces ``h.acent``."""
    assert not h.alive(), "restart_herald needs the old process to have exited"
    listen = h.listen
    h.config_path.write_text(render_config(**{**h.overrides, "listen": listen}))
    h.restarts += 1
    with open(h.log_path, "ab") as log:
        log.write(f"\n----- restart #{h.restarts} on {listen} -----\n".encode())
    proc, url, seen = _spawn(h.workdir, h.config_path, h.log_path)
    if url != h.url:
        stop_proc(proc)
        raise AssertionError(f"restarted herald listens on {url}, expected {h.url}")
    h.cent.close()
    h.proc, h.stdout_lines, h.cent = proc, seen, _sync_cent(url, h.api_key)


def stop_proc(proc: subprocess.Popen) -> Optional[int]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode
