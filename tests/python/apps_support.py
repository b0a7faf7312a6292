"""Shared pieces of the inbox and chat suites (docs/inbox.md, docs/chat.md).

- ``api(h, method, **params)``: a server-API call the published ``cent`` client
  has no typed method for (``notify``, ``chat_create``, ...), made with cent.
- ``Tab``: a centrifuge-python connection of one signed-in user, which the
  server subscribes to ``inbox:#<user>``; waits on that channel's pushes.
- ``PostgresDatabase``: a fresh database on the local PostgreSQL per test.
- ``start_app_herald`` / ``start_app_cluster``: herald processes whose config
  also has ``[storage] url`` and extra sections (``[inbox]``, ``[chat]``).

No test lives here; the fixtures (``app_herald_factory``, ``pg_cluster``) are
picked up by the test modules that import them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import cent
import pytest
from centrifuge.exceptions import ReplyError

from cluster_harness import Cluster, start_cluster
from conftest import EventLog, SdkClient, SdkSub, heralds, serving
from herald_harness import (
    API_KEY, HMAC_SECRET, Herald, Tokens, _spawn, _sync_cent, render_config,
)

# --------------------------------------------------------------------------
# Server API methods cent has no typed call for
# --------------------------------------------------------------------------
#
# cent 5.2.0 offers no generic or raw request: every public method of
# cent.AsyncClient (publish, info, ...) is a typed wrapper that hands a
# CentRequest to AsyncClient._send, which posts it with cent's own aiohttp
# transport (X-API-Key header) and parses the answer into
# Response[<result type>], raising CentApiResponseError(code, message) for an
# {"error": ...} answer. CentRequest and CentResult are public, exported,
# extensible pydantic models (extra="allow"), so the inbox and chat methods
# are CentRequest subclasses naming their API method, and go through that same
# AsyncClient._send (the only private name used): same transport, same error
# mapping as every other cent call in the suite.


class ApiResult(cent.CentResult):
    """Any result object; cent keeps the unknown fields (extra="allow")."""


_REQUEST_CLASSES: Dict[str, type] = {}


def api_request(method: str, **params: Any) -> cent.CentRequest:
    """A cent request for ``POST /api/<method>`` with ``params`` as its body
    (cent drops None values: leave a field out instead of sending null)."""
    cls = _REQUEST_CLASSES.get(method)
    if cls is None:
        cls = type(
            f"HeraldApiRequest_{method}",
            (cent.CentRequest[ApiResult],),
            {"__returning__": ApiResult, "__api_method__": method, "__module__": __name__},
        )
        _REQUEST_CLASSES[method] = cls
    return cls(**params)


async def api(h: Herald, method: str, **params: Any) -> Dict[str, Any]:
    """Calls the server API of ``h`` through cent; the result object as a dict.
    An error answer raises cent.CentApiResponseError (``.code``, ``.message``)."""
    result = await h.acent._send(api_request(method, **params))
    return {} if result is None else result.model_dump()


async def api_error(h: Herald, method: str, **params: Any) -> cent.CentApiResponseError:
    """The error answer of a call that must fail."""
    try:
        answer = await api(h, method, **params)
    except cent.CentApiResponseError as e:
        return e
    raise AssertionError(f"API {method} {params!r} answered {answer!r}, expected an error")


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------


def inbox_channel(user: str) -> str:
    return f"inbox:#{user}"


async def rpc(c: SdkClient, method: str, data: Any = None) -> Any:
    """``rpc`` through centrifuge-python; the result's data."""
    return (await c.client.rpc(method, {} if data is None else data)).data


async def rpc_error(c: SdkClient, method: str, data: Any = None) -> ReplyError:
    """The error reply of an ``rpc`` that must fail."""
    try:
        answer = await rpc(c, method, data)
    except ReplyError as e:
        return e
    raise AssertionError(f"rpc {method} {data!r} answered {answer!r}, expected an error")


@dataclass
class Tab:
    """One connection (browser tab) of a signed-in user, with its server-side
    subscription to ``inbox:#<user>`` established."""

    c: SdkClient

    @property
    def user(self) -> str:
        return self.c.user

    @property
    def channel(self) -> str:
        return inbox_channel(self.user)

    @property
    def log(self) -> EventLog:
        return self.c.log

    def mark(self) -> int:
        """Position to wait from: only pushes recorded after it count."""
        return len(self.c.log.events)

    def _is(self, ctx: Any, kind: str) -> bool:
        data = ctx.pub.data
        return ctx.channel == self.channel and isinstance(data, dict) and data.get("type") == kind

    def pushes(self, kind: str, since: int = 0) -> List[Dict[str, Any]]:
        """Data of the ``kind`` pushes on the inbox channel recorded so far."""
        return [
            ctx.pub.data
            for n, ctx in self.c.log.events[since:]
            if n == "server_publication" and self._is(ctx, kind)
        ]

    async def push(
        self,
        kind: str,
        pred: Optional[Callable[[Dict[str, Any]], bool]] = None,
        *,
        since: int = 0,
    ) -> Dict[str, Any]:
        """Waits for a ``{"type": kind, ...}`` push on ``inbox:#<user>``."""
        ctx = await self.c.log.wait(
            "server_publication",
            lambda x: self._is(x, kind) and (pred is None or pred(x.pub.data)),
            since=since,
        )
        return ctx.pub.data

    async def unread_push(self, count: int, *, since: int) -> Dict[str, Any]:
        """Waits for an ``unread_count`` push carrying ``count`` after ``since``."""
        data = await self.push("unread_count", lambda d: d.get("count") == count, since=since)
        assert data == {"type": "unread_count", "count": count}, data
        return data

    def unread_counts(self) -> List[int]:
        """The counts pushed so far, repeats of the same number in a row folded
        (a push after a call that changed nothing is harmless)."""
        out: List[int] = []
        for p in self.pushes("unread_count"):
            if not out or out[-1] != p["count"]:
                out.append(p["count"])
        return out

    async def rpc(self, method: str, data: Any = None) -> Any:
        return await rpc(self.c, method, data)

    async def rpc_error(self, method: str, data: Any = None) -> ReplyError:
        return await rpc_error(self.c, method, data)


async def open_tab(sdk: Callable[..., SdkClient], user: str, server: Optional[Herald] = None) -> Tab:
    """Connects a client for ``user`` and waits until the server subscribed it
    to ``inbox:#<user>`` (that subscription comes with the connect reply)."""
    c = sdk(user, server=server) if server is not None else sdk(user)
    await c.connect()
    await c.log.wait("server_subscribed", lambda x: x.channel == inbox_channel(user))
    return Tab(c)


def sub_pushes(s: SdkSub, kind: str, since: int = 0) -> List[Dict[str, Any]]:
    """Data of the ``{"type": kind}`` publications a (chat) subscription delivered."""
    return [
        ctx.pub.data
        for n, ctx in s.log.events[since:]
        if n == "publication" and isinstance(ctx.pub.data, dict) and ctx.pub.data.get("type") == kind
    ]


async def sub_push(
    s: SdkSub,
    kind: str,
    pred: Optional[Callable[[Dict[str, Any]], bool]] = None,
    *,
    since: int = 0,
) -> Dict[str, Any]:
    """Waits for a ``{"type": kind, ...}`` publication on subscription ``s``."""

    def match(ctx: Any) -> bool:
        data = ctx.pub.data
        return isinstance(data, dict) and data.get("type") == kind and (pred is None or pred(data))

    ctx = await s.log.wait("publication", match, since=since)
    return ctx.pub.data


def now_ms() -> int:
    return int(time.time() * 1000)


def assert_recent_ms(value: Any, what: str = "created_at") -> None:
    """A timestamp in milliseconds since the epoch, within a minute of now."""
    assert isinstance(value, int) and not isinstance(value, bool), f"{what}={value!r}"
    assert abs(value - now_ms()) < 60_000, f"{what}={value} is not milliseconds near {now_ms()}"


# --------------------------------------------------------------------------
# A fresh PostgreSQL database per test
# --------------------------------------------------------------------------
#
# Like crates/herald-postgres/src/testing.rs: the server comes from
# HERALD_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres),
# which is used only to create and drop herald_test_<pid>_<random>. The suite
# has no PostgreSQL driver in requirements.txt, so this uses the `psql` client.
# When PostgreSQL (or psql) is missing the test is skipped, or fails with CI=true.

PG_URL_VARIABLE = "HERALD_TEST_POSTGRES_URL"
PG_DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/postgres"
PSQL_TIMEOUT = 20.0


def mask_password(url: str) -> str:
    """``url`` with the password (if any) shown as ***."""
    start = url.find("://") + 3 if "://" in url else 0
    at = url.rfind("@", start, url.find("?") if "?" in url else len(url))
    if at < 0:
        return url
    userinfo = url[start:at]
    if ":" not in userinfo:
        return url
    return url[:start] + userinfo.split(":", 1)[0] + ":***" + url[at:]


def with_database(url: str, name: str) -> str:
    """``url`` with its database (the path) replaced by ``name``."""
    authority_at = url.find("://") + 3 if "://" in url else 0
    query_at = url.find("?") if "?" in url else len(url)
    at = url.rfind("@", 0, query_at)
    host_at = at + 1 if at >= 0 else authority_at
    slash = url.find("/", host_at, query_at)
    path_at = slash if slash >= 0 else query_at
    return f"{url[:path_at]}/{name}{url[query_at:]}"


def postgres_unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; CI=true requires PostgreSQL (set {PG_URL_VARIABLE})", pytrace=False)
    pytest.skip(f"{why}; set CI=true to make this a failure")


def _psql(url: str, sql: str) -> subprocess.CompletedProcess:
    """Runs ``sql``; stdout holds the bare values (-t -A)."""
    env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
    return subprocess.run(
        ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True, text=True, timeout=PSQL_TIMEOUT, env=env, stdin=subprocess.DEVNULL,
    )


@dataclass
class PostgresDatabase:
    admin_url: str
    name: str

    @property
    def url(self) -> str:
        """The URL of the fresh database, for ``[storage] url``."""
        return with_database(self.admin_url, self.name)

    @classmethod
    def create(cls) -> "PostgresDatabase":
        admin_url = os.environ.get(PG_URL_VARIABLE) or PG_DEFAULT_URL
        place = mask_password(admin_url)
        if shutil.which("psql") is None:
            postgres_unavailable(f"psql is not on PATH (needed to create a test database on {place})")
        try:
            ping = _psql(admin_url, "SELECT 1")
        except subprocess.TimeoutExpired:
            postgres_unavailable(f"PostgreSQL at {place} did not answer within {PSQL_TIMEOUT}s")
        if ping.returncode != 0:
            postgres_unavailable(f"PostgreSQL not reachable at {place}: {ping.stderr.strip()}")
        # Built from numbers only, never from input.
        name = f"herald_test_{os.getpid()}_{secrets.token_hex(4)}"
        made = _psql(admin_url, f"CREATE DATABASE {name}")
        if made.returncode != 0:
            pytest.fail(f"CREATE DATABASE {name} on {place} failed: {made.stderr.strip()}", pytrace=False)
        return cls(admin_url, name)

    def table_count(self) -> int:
        """How many tables the database holds (herald creates its schema at start)."""
        done = _psql(self.url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert done.returncode == 0, done.stderr
        return int(done.stdout.strip())

    def drop(self) -> None:
        """Best effort; FORCE ends the sessions herald may still hold."""
        try:
            done = _psql(self.admin_url, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            if done.returncode != 0:
                print(f"note: could not drop test database {self.name}: {done.stderr.strip()}")
        except subprocess.TimeoutExpired:
            print(f"note: dropping test database {self.name} timed out")


# --------------------------------------------------------------------------
# Herald with [storage] url and extra config sections
# --------------------------------------------------------------------------


def app_config(storage_url: Optional[str] = None, extra_toml: str = "", **overrides: Any) -> str:
    """The suite's config (herald_harness.render_config) plus ``url`` in
    ``[storage]`` and ``extra_toml`` (whole sections such as ``[chat]``) at the end."""
    text = render_config(**overrides)
    if storage_url is not None:
        assert text.count("\n[storage]\n") == 1, text
        text = text.replace("\n[storage]\n", f'\n[storage]\nurl = "{storage_url}"\n', 1)
    if extra_toml:
        text += "\n" + extra_toml.strip("\n") + "\n"
    return text


def start_app_herald(
    workdir: Path, *, storage_url: Optional[str] = None, extra_toml: str = "", **overrides: Any
) -> Herald:
    """Like herald_harness.start_herald, with ``storage_url`` and ``extra_toml``
    (see app_config). Restarting it with restart_herald would drop them."""
    workdir.mkdir(parents=True, exist_ok=True)
    overrides.setdefault("storage_path", workdir / "storage")
    config_path = workdir / "herald.toml"
    config_path.write_text(app_config(storage_url, extra_toml, **overrides))
    log_path = workdir / "herald.stderr.log"
    proc, url, seen = _spawn(workdir, config_path, log_path)
    api_key = overrides.get("api_key", API_KEY)
    return Herald(
        proc=proc, url=url, config_path=config_path, log_path=log_path, api_key=api_key,
        tokens=Tokens(overrides.get("hmac_secret", HMAC_SECRET)), cent=_sync_cent(url, api_key),
        workdir=workdir, overrides=dict(overrides), stdout_lines=seen,
    )


@pytest.fixture
async def app_herald_factory(tmp_path):
    """``await app_herald_factory(extra_toml="[chat]\\nmax_text_length = 10")``."""
    async with heralds(lambda i, **kw: start_app_herald(tmp_path / f"app-herald-{i}", **kw)) as start:
        yield start


def start_app_cluster(workdir: Path, storage_url: str, nodes: int = 2, **overrides: Any) -> Cluster:
    """Redis plus ``nodes`` herald nodes sharing the PostgreSQL ``storage_url``."""
    return start_cluster(workdir, nodes, start=start_app_herald, storage_url=storage_url, **overrides)


@pytest.fixture
async def pg_cluster(tmp_path):
    """Two nodes on one redis-server, sharing one fresh PostgreSQL database."""
    db = PostgresDatabase.create()
    try:
        async with serving(start_app_cluster(tmp_path, db.url)) as c:
            # The nodes really use the fresh database (not their SQLite dirs).
            assert db.table_count() > 0, "herald created no table in the PostgreSQL database"
            yield c
    finally:
        db.drop()
