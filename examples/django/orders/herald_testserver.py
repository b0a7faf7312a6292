"""Test support: a real ``herald`` process, and centrifuge-python clients that
synchronous Django tests can drive.

``HeraldServer`` runs ``herald serve`` with the config this example ships
(examples/django/herald.toml) from ``$HERALD_BIN`` or
``<repo>/target/debug/herald``, changed only where a test must differ: the
proxies point at the test's live Django server and carry a fresh secret, the
outbox consumer reads the test database, Herald listens on a free port
(``127.0.0.1:0``; it prints the address it got) and keeps its data in a
temporary directory. It can be stopped and started again on that directory.

``SdkThread`` runs one asyncio loop in a thread for the published
``centrifuge`` client; ``LiveClient`` records its events and lets a test block
until an expected one arrives, with a timeout.
"""

import asyncio
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

from centrifuge import Client, ClientEventHandler, SubscriptionEventHandler

EXAMPLE = Path(__file__).resolve().parents[1]
REPO = EXAMPLE.parents[1]
CONFIG = EXAMPLE / "herald.toml"
# What herald.toml says for a laptop, and a test replaces.
DEV_DJANGO_URL = "http://127.0.0.1:8001"
DEV_PROXY_SECRET = "dev-only-proxy-secret-change-me"
# HERALD_CONSUMERS_<name>_POSTGRESQL_DSN replaces the DSN of the consumer
# named "django-outbox" (docs/config.md).
OUTBOX_DSN_VARIABLE = "HERALD_CONSUMERS_DJANGO_OUTBOX_POSTGRESQL_DSN"

# How long any one expected event may take.
TIMEOUT = 5.0
STARTUP_TIMEOUT = 20.0
LISTENING = re.compile(r"herald listening on (http://\S+)")


def herald_binary():
    return Path(os.environ.get("HERALD_BIN") or REPO / "target" / "debug" / "herald")


def config_for_test(django_url, proxy_secret):
    """herald.toml with the proxies sent to ``django_url`` with ``proxy_secret``."""
    text = CONFIG.read_text()
    endpoints = text.count(f'endpoint = "{DEV_DJANGO_URL}/')
    dev_secrets = text.count(f'"{DEV_PROXY_SECRET}"')
    if (endpoints, dev_secrets) != (2, 2):
        raise RuntimeError(
            f"{CONFIG} no longer has the two proxies this harness rewrites "
            f"({endpoints} endpoints at {DEV_DJANGO_URL}, {dev_secrets} secrets)"
        )
    text = text.replace(f'endpoint = "{DEV_DJANGO_URL}/', f'endpoint = "{django_url}/')
    return text.replace(f'"{DEV_PROXY_SECRET}"', f'"{proxy_secret}"')


class HeraldServer:
    def __init__(self, django_url, proxy_secret, outbox_dsn):
        self.outbox_dsn = outbox_dsn
        self.workdir = Path(tempfile.mkdtemp(prefix="herald-django-"))
        self.config = self.workdir / "herald.toml"
        self.config.write_text(config_for_test(django_url, proxy_secret))
        self.log_path = self.workdir / "herald.log"
        self.proc = None
        self.url = None

    @property
    def ws_url(self):
        return self.url.replace("http://", "ws://", 1) + "/connection/websocket"

    def start(self):
        """Starts Herald (again); ``url`` is then where it listens."""
        binary = herald_binary()
        if not binary.exists():
            raise RuntimeError(
                f"no herald binary at {binary}: run `cargo build -p herald-server` "
                "in the repository or set HERALD_BIN"
            )
        # No HERALD_* from the caller's shell: Herald reads them as config
        # overrides.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(
            {
                "HERALD_SERVER_LISTEN": "127.0.0.1:0",
                "HERALD_STORAGE_PATH": str(self.workdir / "storage"),
                "HERALD_STORAGE_DURABLE": "false",
                OUTBOX_DSN_VARIABLE: self.outbox_dsn,
            }
        )
        self.url = None
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(binary), "serve", "--config", str(self.config)],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=env,
            )
        lines = queue.Queue()
        stdout = self.proc.stdout

        def pump():  # reads stdout to the end, so Herald never blocks on it
            for raw in stdout:
                lines.put(raw.decode(errors="replace"))
            lines.put(None)

        threading.Thread(target=pump, name="herald-stdout", daemon=True).start()
        seen = []
        while self.url is None:
            try:
                line = lines.get(timeout=STARTUP_TIMEOUT)
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise RuntimeError(
                    f"herald printed no 'herald listening on' line (stdout: {seen!r});"
                    f" its log:\n{self.log_tail()}"
                )
            seen.append(line)
            match = LISTENING.search(line)
            if match:
                self.url = match[1].rstrip("/")
        return self

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def stop(self):
        """Stops Herald as a deployment would (SIGTERM), keeping its directory."""
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            print(f"\nherald had exited with code {self.proc.returncode}:\n{self.log_tail()}")
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class SdkThread:
    """An asyncio loop in a daemon thread; ``run`` executes a coroutine on it
    and returns its result to the calling (test) thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="centrifuge", daemon=True)
        self.thread.start()
        self.clients = []

    def run(self, coro, timeout=TIMEOUT + 1):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def client(self, ws_url, headers=None):
        async def make():
            return LiveClient(self, ws_url, headers)

        live = self.run(make())
        self.clients.append(live)
        return live

    def close(self):
        async def shut_down():
            for live in self.clients:
                try:
                    await asyncio.wait_for(live.client.disconnect(), TIMEOUT)
                except Exception:
                    pass
            # Let the SDK's closing handshakes finish, then cancel what is left.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others:
                _, pending = await asyncio.wait(others, timeout=TIMEOUT)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            self.run(shut_down(), timeout=2 * TIMEOUT)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(TIMEOUT)
            self.loop.close()


class Events:
    """What the SDK reported, in order; ``wait`` blocks the test thread until a
    matching event is there or the timeout passes (then fails the test)."""

    def __init__(self, label):
        self.label = label
        self.recorded = []
        self.changed = threading.Condition()

    def record(self, name, ctx):
        with self.changed:
            self.recorded.append((name, ctx))
            self.changed.notify_all()

    def all(self, name, pred=None):
        with self.changed:
            return [c for n, c in self.recorded if n == name and (pred is None or pred(c))]

    def wait(self, name, pred=None, timeout=TIMEOUT):
        with self.changed:
            if self.changed.wait_for(lambda: self.all(name, pred), timeout):
                return self.all(name, pred)[0]
            raise AssertionError(
                f"{self.label}: no '{name}' event within {timeout}s; recorded: {self.recorded!r}"
            )


class _ClientEvents(ClientEventHandler):
    def __init__(self, events):
        self.events = events

    async def on_connected(self, ctx):
        self.events.record("connected", ctx)

    async def on_disconnected(self, ctx):
        self.events.record("disconnected", ctx)

    async def on_error(self, ctx):
        self.events.record("error", ctx)

    # Server-side subscriptions, such as Herald's inbox:#<user>.
    async def on_subscribed(self, ctx):
        self.events.record("server_subscribed", ctx)

    async def on_publication(self, ctx):
        self.events.record("server_publication", ctx)


class _SubEvents(SubscriptionEventHandler):
    def __init__(self, events):
        self.events = events

    async def on_subscribed(self, ctx):
        self.events.record("subscribed", ctx)

    async def on_unsubscribed(self, ctx):
        self.events.record("unsubscribed", ctx)

    async def on_publication(self, ctx):
        self.events.record("publication", ctx)

    async def on_error(self, ctx):
        self.events.record("error", ctx)


class LiveClient:
    """One centrifuge-python connection (made on the SDK thread's loop), with
    no token: ``headers`` go with its WebSocket request, as a browser's
    cookies do."""

    def __init__(self, sdk, ws_url, headers):
        self.sdk = sdk
        self.events = Events("client")
        self.client = Client(
            ws_url,
            events=_ClientEvents(self.events),
            headers=headers,
            timeout=TIMEOUT,
            max_reconnect_delay=0.5,
            proxy=None,
        )

    def connect(self):
        """Starts connecting; wait for "connected" or "disconnected" on ``events``."""
        self.sdk.run(self.client.connect())

    def subscribe(self, channel):
        """Starts a subscription; its events (subscribed, unsubscribed,
        publication) are recorded on the returned ``Events``."""
        events = Events(channel)

        async def start():
            sub = self.client.new_subscription(channel, events=_SubEvents(events))
            await sub.subscribe()

        self.sdk.run(start())
        return events
