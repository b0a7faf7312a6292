"""Recovery with centrifuge-python: a subscriber is dropped (API disconnect
with code 3011, the SDK reconnects by itself) while publications continue; on
resubscribe it must recover exactly the missed ones, or be told recovered=False
and get none of them."""

import cent
import pytest
from centrifuge import StreamPosition

from history_support import (
    history_herald,  # noqa: F401  (the "herald" fixture of this module)
    SHORT_HISTORY_SIZE,
    assert_acked_stream,
    assert_received_exactly,
    channel_in,
    force_reconnect,
    payloads,
    publish_all,
    publish_all_blocking,
    received_after_subscribe,
)


async def live_subscriber(h, sdk, channel: str, n: int, **sub_kw):
    """Client "42" subscribed to ``channel`` that got ``n`` live publications
    (and a marker); returns (client, subscription, results, datas)."""
    c = sdk("42")
    await c.connect()
    s = await c.subscribe(channel, **sub_kw)
    datas = payloads("live", 1, n)
    results = await publish_all(h, channel, datas)
    await assert_received_exactly(h, channel, s.log, results, datas)
    return c, s, results, datas


async def resubscribed(c, s):
    """The subscribed context of the resubscribe after a forced reconnect."""
    ctx = await s.log.wait("subscribed", count=2)
    connecting = c.log.all("connecting")
    assert [x.code for x in connecting][-1] == 3011, c.log.events
    return ctx


@pytest.mark.parametrize(
    "namespace, sub_kw", [("rec", {}), ("optin", {"recoverable": True})], ids=["forced", "opt-in"]
)
async def test_recovers_missed_publications_in_order(herald, sdk, namespace, sub_kw):
    channel = channel_in(namespace)
    c, s, results, datas = await live_subscriber(herald, sdk, channel, 3, **sub_kw)
    first = s.log.all("subscribed")[0]
    assert first.recoverable is True and first.was_recovering is False

    force_reconnect(herald, "42")
    missed = payloads("missed", 1, 5)
    results += publish_all_blocking(herald, channel, missed)
    datas += missed

    ctx = await resubscribed(c, s)
    assert (ctx.was_recovering, ctx.recovered) == (True, True), ctx
    epoch = assert_acked_stream(results)
    assert ctx.stream_position.epoch == epoch
    # Every missed publication exactly once, in order, then live ones again;
    # the missed ones came with the resubscribe, not on the dropped connection.
    await assert_received_exactly(herald, channel, s.log, results, datas)
    assert_acked_stream(results)
    assert received_after_subscribe(s.log, 2) == missed + datas[-1:], s.log.events


async def test_no_recovery_without_opt_in(herald, sdk):
    channel = channel_in("optin")
    c, s, results, datas = await live_subscriber(herald, sdk, channel, 2)
    assert s.log.all("subscribed")[0].recoverable is False

    force_reconnect(herald, "42")
    publish_all_blocking(herald, channel, payloads("missed", 1, 2))

    ctx = await resubscribed(c, s)
    assert (ctx.recoverable, ctx.was_recovering, ctx.recovered) == (False, False, False), ctx
    await assert_received_exactly(herald, channel, s.log, results, datas)


@pytest.mark.parametrize(
    "missed_count, recovers",
    [(SHORT_HISTORY_SIZE, True), (SHORT_HISTORY_SIZE + 1, False), (SHORT_HISTORY_SIZE + 5, False)],
    ids=["all-retained", "one-trimmed", "many-trimmed"],
)
async def test_recovery_refused_when_history_trimmed(herald, sdk, missed_count, recovers):
    channel = channel_in("short")
    c, s, results, datas = await live_subscriber(herald, sdk, channel, 2)

    force_reconnect(herald, "42")
    missed = payloads("missed", 1, missed_count)
    missed_results = publish_all_blocking(herald, channel, missed)

    ctx = await resubscribed(c, s)
    assert (ctx.was_recovering, ctx.recovered) == (True, recovers), ctx
    # Recovered: the reply's position is the client's, the missed publications
    # follow. Refused: it is the stream top, and nothing follows.
    position = results[-1] if recovers else missed_results[-1]
    assert (ctx.stream_position.offset, ctx.stream_position.epoch) == (position.offset, position.epoch)
    if recovers:
        results += missed_results
        datas += missed
    # Refused: nothing from the gap, only what comes live after resubscribing.
    await assert_received_exactly(herald, channel, s.log, results, datas)


async def test_recovery_refused_after_epoch_change(herald, sdk):
    channel = channel_in("rec")
    c, s, results, datas = await live_subscriber(herald, sdk, channel, 2)
    old_epoch = assert_acked_stream(results)

    force_reconnect(herald, "42")
    herald.cent.history_remove(cent.HistoryRemoveRequest(channel=channel))
    after = publish_all_blocking(herald, channel, payloads("new-epoch", 1, 2))

    ctx = await resubscribed(c, s)
    assert (ctx.was_recovering, ctx.recovered) == (True, False), ctx
    assert ctx.stream_position.epoch == after[-1].epoch != old_epoch
    await assert_received_exactly(herald, channel, s.log, results, datas)

    # The SDK follows the new stream: a second drop recovers within it.
    force_reconnect(herald, "42")
    missed = payloads("missed", 1, 2)
    results += publish_all_blocking(herald, channel, missed)
    datas += missed
    ctx = await s.log.wait("subscribed", count=3)
    assert (ctx.was_recovering, ctx.recovered) == (True, True), ctx
    await assert_received_exactly(herald, channel, s.log, results, datas)


async def test_get_state_reloads_when_position_unrecoverable(herald, sdk):
    """With get_state the SDK asks for error 112 instead of recovered=False
    (subscribe flag bit 2) and loads its state again from the new position."""
    channel = channel_in("short")
    positions = []

    async def get_state(ch: str) -> StreamPosition:
        top = await herald.acent.history(cent.HistoryRequest(channel=ch, limit=0))
        positions.append((top.offset, top.epoch))
        return StreamPosition(offset=top.offset, epoch=top.epoch)

    c, s, results, datas = await live_subscriber(herald, sdk, channel, 2, get_state=get_state)
    # Loaded once, before anything was published, in the epoch the stream kept.
    assert positions == [(0, results[0].epoch)], positions

    force_reconnect(herald, "42")
    gap = publish_all_blocking(herald, channel, payloads("gap", 1, SHORT_HISTORY_SIZE + 2))

    ctx = await resubscribed(c, s)
    # The state was loaded again, at the stream top after the gap.
    assert positions[1:] == [(gap[-1].offset, gap[-1].epoch)], positions
    assert (ctx.was_recovering, ctx.recovered) == (True, True), ctx
    assert s.log.all("error") == [], s.log.events
    await assert_received_exactly(herald, channel, s.log, results, datas)
