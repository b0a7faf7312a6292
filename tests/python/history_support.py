"""Shared pieces of the history / recovery / durability tests: the namespaces
those servers run with, publishing through cent, forcing a client drop while
publications continue, and checks of the publication sequence a subscriber saw.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import cent
import pytest

from conftest import EventLog, unique
from herald_harness import Herald

HISTORY_SIZE = 100
SHORT_HISTORY_SIZE = 3


def history_ns(name: str, size: int = HISTORY_SIZE, **opts: Any) -> Dict[str, Any]:
    """A namespace with history that subscribers may read."""
    return {
        "name": name,
        "history_size": size,
        "history_ttl": "10m",
        "allow_subscribe_for_client": True,
        "allow_history_for_subscriber": True,
        **opts,
    }


HISTORY_NAMESPACES = [
    # Every subscription is recoverable.
    history_ns("rec", force_recovery=True),
    # Recovery only for subscriptions that ask for it (SDK recoverable=True).
    history_ns("optin", allow_recovery=True),
    # Too little history to recover a longer outage.
    history_ns("short", SHORT_HISTORY_SIZE, force_recovery=True),
    # Cache mode: a subscribe reply carries the latest publication.
    history_ns("cache", force_recovery=True, force_recovery_mode="cache"),
    # Presence and join/leave on a history channel.
    history_ns("room", force_recovery=True, presence=True, join_leave=True,
               force_push_join_leave=True, allow_presence_for_subscriber=True),
]

# Storage modes the history tests run against (server default is durable).
DURABILITY = [True, False]
DURABILITY_IDS = ["durable", "memory"]


async def start_history_server(herald_factory, durable: bool = True, **overrides: Any) -> Herald:
    return await herald_factory(durable=durable, namespaces=HISTORY_NAMESPACES, **overrides)


@pytest.fixture(name="herald", params=DURABILITY, ids=DURABILITY_IDS)
async def history_herald(request, herald_factory) -> Herald:
    """Overrides the suite's ``herald`` (and so the server ``sdk`` clients use)
    in the modules that import it: a history server, durable and in memory."""
    return await start_history_server(herald_factory, durable=request.param)


def channel_in(namespace: str) -> str:
    return unique(f"{namespace}:ch")


def payloads(tag: str, first: int, last: int) -> List[Dict[str, Any]]:
    """Distinct publication bodies ``{"tag": tag, "n": first..last}``."""
    return [{"tag": tag, "n": n} for n in range(first, last + 1)]


async def publish_all(h: Herald, channel: str, datas: Sequence[Any]) -> List[cent.PublishResult]:
    """Publish one after another with the async cent client; returns the answers."""
    return [await h.acent.publish(cent.PublishRequest(channel=channel, data=d)) for d in datas]


def publish_all_blocking(h: Herald, channel: str, datas: Sequence[Any]) -> List[cent.PublishResult]:
    """Publish with the sync cent client. Called from a test coroutine this
    blocks the event loop - and so every SDK client in the test - until all are
    acknowledged: nothing the SDK does can interleave with these publishes."""
    return [h.cent.publish(cent.PublishRequest(channel=channel, data=d)) for d in datas]


def force_reconnect(h: Herald, user: str) -> None:
    """Drop ``user``'s connections with close code 3011 (the SDK reconnects).
    Blocking, like publish_all_blocking: with no await in between, whatever the
    test publishes next happens before the SDK can notice and resubscribe."""
    h.cent.disconnect(
        cent.DisconnectRequest(user=user, disconnect=cent.Disconnect(code=3011, reason="force reconnect"))
    )


def assert_acked_stream(results: Sequence[cent.PublishResult], first_offset: int = 1) -> str:
    """API answers carry consecutive offsets from ``first_offset`` under one
    non-empty epoch; returns that epoch."""
    offsets = [r.offset for r in results]
    assert offsets == list(range(first_offset, first_offset + len(results))), offsets
    epochs = {r.epoch for r in results}
    assert len(epochs) == 1 and "" not in epochs, epochs
    return epochs.pop()


def received(log: EventLog) -> List[tuple]:
    """(offset, data) of every publication a subscription delivered, in order."""
    return [(c.pub.offset, c.pub.data) for c in log.all("publication")]


def received_after_subscribe(log: EventLog, nth: int) -> List[Any]:
    """Data of the publications delivered after the nth "subscribed" event."""
    seen, out = 0, []
    for name, ctx in log.events:
        if name == "subscribed":
            seen += 1
        elif name == "publication" and seen >= nth:
            out.append(ctx.pub.data)
    return out


def expected(results: Sequence[cent.PublishResult], datas: Sequence[Any]) -> List[tuple]:
    assert len(results) == len(datas)
    return [(r.offset, d) for r, d in zip(results, datas)]


async def publish_marker(h: Herald, channel: str, log: EventLog) -> tuple:
    """Publish a marker and wait until the subscription delivered it; the
    server sends in order, so by then everything before it has arrived too.
    Returns (result, data)."""
    marker = {"marker": unique("m")}
    [result] = await publish_all(h, channel, [marker])
    await log.wait("publication", lambda c: c.pub.data == marker)
    return result, marker


async def assert_received_exactly(
    h: Herald, channel: str, log: EventLog, results: List[cent.PublishResult], datas: List[Any]
) -> None:
    """After a marker (publish_marker), the subscription must have delivered
    exactly the acked (offset, data) sequence, marker included: in order, no
    gap, no duplicate. Extends results/datas with the marker."""
    result, marker = await publish_marker(h, channel, log)
    results.append(result)
    datas.append(marker)
    assert received(log) == expected(results, datas), log.events
