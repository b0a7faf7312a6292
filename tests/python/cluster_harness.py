"""A throwaway ``redis-server`` and a cluster of herald nodes on it, for the
scale-out suite.

``start_cluster(workdir, nodes=2, **overrides)`` starts Redis on a free port
(append-only file fsynced on every write, own temp dir) and ``nodes`` herald
processes (``start_herald`` with a ``[broker]`` section pointing at it), and
waits until every node's ``info`` lists all of them. ``stop_cluster`` stops
everything, also after a node or Redis was killed.

When ``redis-server`` is missing the calling test is skipped, or fails when
the environment variable CI is "true". No fixtures live here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import cent
import pytest

from herald_harness import Herald, start_herald, stop_proc

REDIS_START_TIMEOUT = 10.0
NODES_TIMEOUT = 10.0


def require_redis() -> str:
    """Path of ``redis-server``; skips the test when it is missing (fails it under CI=true)."""
    path = shutil.which("redis-server")
    if path:
        return path
    why = "redis-server is not on PATH (Debian: apt-get install redis-server)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; CI=true, so a missing redis-server fails the run", pytrace=False)
    pytest.skip(f"{why}; set CI=true to make this a failure")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_ping(port: int, timeout: float = 0.5) -> bool:
    """True if Redis on ``port`` answers PING with +PONG (not -LOADING)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A ``redis-server`` child process on its own port and directory."""

    workdir: Path
    appendonly: bool = True
    port: int = field(default_factory=free_port)
    proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def start(self) -> "RedisServer":
        binary = require_redis()
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no",
            "--save", "", "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always", "--dir", str(self.workdir), "--logfile", str(self.log_path),
        ]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while not redis_ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill9()
                pytest.fail(f"redis-server on {self.port} did not answer PING "
                            f"(exit {self.proc.returncode}):\n{self.log_tail()}", pytrace=False)
            time.sleep(0.02)
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Start again on the same port and directory (after kill9); returns on PONG."""
        self.kill9()
        self.start()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no redis log>"


def cluster_broker(redis_url: str, **extra: Any) -> Dict[str, Any]:
    """The [broker] section of a cluster node (fast failure detection for tests)."""
    return {"kind": "redis", "redis_url": redis_url, "heartbeat": "200ms",
            "presence_ttl": "2s", "timeout": "1s", **extra}


@dataclass
class Cluster:
    redis: RedisServer
    nodes: List[Herald] = field(default_factory=list)

    def log_tails(self) -> str:
        parts = [f"--- node-{i + 1} ({h.url}) stderr tail:\n{h.log_tail(40)}" for i, h in enumerate(self.nodes)]
        return "\n".join(parts + [f"--- redis ({self.redis.url}) log tail:\n{self.redis.log_tail()}"])


def _wait_for_nodes(h: Herald, count: int) -> None:
    deadline = time.monotonic() + NODES_TIMEOUT
    while True:
        try:
            listed = len(h.cent.info(cent.InfoRequest()).nodes)
        except cent.CentError as e:
            listed = f"error {e!r}"
        if listed == count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{h.url} info lists {listed} nodes, wanted {count}")
        time.sleep(0.05)


def start_cluster(workdir: Path, nodes: int = 2, broker: Optional[Dict[str, Any]] = None,
                  start: Callable[..., Herald] = start_herald, **overrides: Any) -> Cluster:
    """Redis plus ``nodes`` herald nodes, each started with ``start``
    (``overrides`` as for start_herald)."""
    redis = RedisServer(workdir / "redis").start()
    cluster = Cluster(redis)
    try:
        for i in range(1, nodes + 1):
            cluster.nodes.append(start(
                workdir / f"node-{i}", server_name=f"node-{i}",
                broker=cluster_broker(redis.url, **(broker or {})), **overrides,
            ))
        for h in cluster.nodes:
            _wait_for_nodes(h, nodes)
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    for h in cluster.nodes:
        h.cent.close()
        stop_proc(h.proc)
    cluster.redis.kill9()
