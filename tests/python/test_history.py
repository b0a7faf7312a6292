"""History through centrifuge-python (sub.history) and cent (HistoryRequest),
history_remove, idempotent and concurrent publishes and cache mode, against a
durable (SQLite in a temp dir) and an in-memory server."""

import asyncio

import cent
import pytest
from centrifuge import ReplyError, StreamPosition

from conftest import unique
from history_support import (
    history_herald,  # noqa: F401  (the "herald" fixture of this module)
    assert_acked_stream,
    assert_received_exactly,
    channel_in,
    expected,
    payloads,
    publish_all,
    received,
)


def pairs(history) -> list:
    """(offset, data) of the publications of an SDK or cent history result."""
    return [(p.offset, p.data) for p in history.publications]


async def both_histories(h, sub, channel, **kw):
    """The same history query through the subscribed SDK client and cent."""
    via_sdk = await sub.history(**kw)
    since = kw.pop("since", None)
    if since is not None:
        kw["since"] = cent.StreamPosition(offset=since.offset, epoch=since.epoch)
    via_api = await h.acent.history(cent.HistoryRequest(channel=channel, **kw))
    return via_sdk, via_api


async def subscribed_reader(sdk, channel: str, user: str = "42"):
    c = sdk(user)
    await c.connect()
    return await c.subscribe(channel)


async def test_history_both_orders_match_publish_answers(herald, sdk):
    channel = channel_in("rec")
    datas = payloads("order", 1, 5)
    results = await publish_all(herald, channel, datas)
    epoch = assert_acked_stream(results)
    acked = expected(results, datas)
    top = results[-1].offset

    s = await subscribed_reader(sdk, channel)
    ctx = s.log.all("subscribed")[0]
    assert ctx.recoverable is True
    assert (ctx.stream_position.offset, ctx.stream_position.epoch) == (top, epoch)

    cases = [
        ({"limit": -1}, acked),
        ({"limit": -1, "reverse": True}, acked[::-1]),
        ({"limit": 2}, acked[:2]),
        ({"limit": 3, "reverse": True}, acked[::-1][:3]),
        ({"limit": 0}, []),
        ({"limit": -1, "since": StreamPosition(offset=results[1].offset, epoch=epoch)}, acked[2:]),
    ]
    for query, want in cases:
        for via, hist in zip(("sdk", "api"), await both_histories(herald, s.sub, channel, **dict(query))):
            assert pairs(hist) == want, (via, query, hist)
            assert (hist.offset, hist.epoch) == (top, epoch), (via, query, hist)


async def test_history_errors(herald, sdk):
    channel = channel_in("rec")
    results = await publish_all(herald, channel, payloads("err", 1, 2))
    stranger = sdk("7")
    await stranger.connect()
    s = await subscribed_reader(sdk, channel)

    # Another epoch in `since`: unrecoverable position (112), SDK and API.
    wrong = StreamPosition(offset=1, epoch=results[0].epoch + "x")
    with pytest.raises(ReplyError) as sdk_err:
        await s.sub.history(limit=-1, since=wrong)
    assert sdk_err.value.code == 112
    with pytest.raises(cent.CentApiResponseError) as api_err:
        await herald.acent.history(cent.HistoryRequest(
            channel=channel, limit=-1, since=cent.StreamPosition(offset=1, epoch=wrong.epoch)))
    assert api_err.value.code == 112

    # allow_history_for_subscriber only: a client that is not subscribed is refused.
    with pytest.raises(ReplyError) as denied:
        await stranger.client.history(channel, limit=-1)
    assert denied.value.code == 103

    # A namespace without history: publish answers no position, history is 108.
    plain = unique("plain")
    res = await herald.acent.publish(cent.PublishRequest(channel=plain, data={"x": 1}))
    assert (res.offset, res.epoch) == (0, ""), res
    with pytest.raises(cent.CentApiResponseError) as na:
        await herald.acent.history(cent.HistoryRequest(channel=plain, limit=-1))
    assert na.value.code == 108


async def test_skip_history_is_delivered_but_not_kept(herald, sdk):
    channel = channel_in("rec")
    kept = await publish_all(herald, channel, [{"kept": 1}])
    s = await subscribed_reader(sdk, channel)
    await herald.acent.publish(cent.PublishRequest(channel=channel, data={"skipped": 1}, skip_history=True))
    assert (await s.log.wait("publication")).pub.data == {"skipped": 1}

    hist = await herald.acent.history(cent.HistoryRequest(channel=channel, limit=-1))
    assert pairs(hist) == [(kept[0].offset, {"kept": 1})], hist
    assert (hist.offset, hist.epoch) == (kept[0].offset, kept[0].epoch), hist


async def test_history_remove_empties_and_changes_epoch(herald, sdk):
    channel = channel_in("rec")
    datas = payloads("rm", 1, 3)
    results = await publish_all(herald, channel, datas)
    old_epoch = assert_acked_stream(results)
    s = await subscribed_reader(sdk, channel)

    assert isinstance(
        await herald.acent.history_remove(cent.HistoryRemoveRequest(channel=channel)), cent.HistoryRemoveResult
    )
    via_sdk, via_api = await both_histories(herald, s.sub, channel, limit=-1)
    for hist in (via_sdk, via_api):
        assert hist.publications == [], hist
        assert hist.epoch not in ("", old_epoch), hist
    assert (via_sdk.offset, via_sdk.epoch) == (via_api.offset, via_api.epoch)

    # The stream goes on under the new epoch, after the reported position.
    after = await publish_all(herald, channel, [{"rm": "after"}])
    assert (after[0].epoch, after[0].offset) == (via_api.epoch, via_api.offset + 1), after
    hist = await herald.acent.history(cent.HistoryRequest(channel=channel, limit=-1))
    assert pairs(hist) == [(after[0].offset, {"rm": "after"})], hist


async def test_idempotent_publish_once(herald, sdk):
    channel, other = channel_in("rec"), channel_in("rec")
    s = await subscribed_reader(sdk, channel)
    data = {"idem": unique("d")}
    key = unique("key")

    first, repeat = [
        await herald.acent.publish(cent.PublishRequest(channel=channel, data=data, idempotency_key=key))
        for _ in range(2)
    ]
    assert first.offset > 0 and first.epoch, first
    assert (repeat.offset, repeat.epoch) == (first.offset, first.epoch)
    # Delivered once: the next publication directly follows it.
    await assert_received_exactly(herald, channel, s.log, [first], [data])
    hist = await herald.acent.history(cent.HistoryRequest(channel=channel, limit=-1))
    assert [p.data for p in hist.publications].count(data) == 1, hist

    # The key acts per channel.
    elsewhere = await herald.acent.publish(cent.PublishRequest(channel=other, data=data, idempotency_key=key))
    hist = await herald.acent.history(cent.HistoryRequest(channel=other, limit=-1))
    assert pairs(hist) == [(elsewhere.offset, data)], hist


async def test_sixty_concurrent_publishes(herald, sdk):
    channel = channel_in("rec")
    s = await subscribed_reader(sdk, channel)
    datas = payloads("conc", 1, 60)
    results = await asyncio.gather(
        *(herald.acent.publish(cent.PublishRequest(channel=channel, data=d)) for d in datas)
    )
    assert len({r.epoch for r in results}) == 1, results
    offset_of = {d["n"]: r.offset for d, r in zip(datas, results)}
    assert len(set(offset_of.values())) == 60, offset_of

    await s.log.wait("publication", count=60)
    got = received(s.log)
    offsets = [o for o, _ in got]
    assert all(a < b for a, b in zip(offsets, offsets[1:])), offsets
    assert set(offsets) == set(offset_of.values())
    assert all(offset_of[d["n"]] == o for o, d in got), got

    hist = await herald.acent.history(cent.HistoryRequest(channel=channel, limit=-1))
    assert pairs(hist) == got
    # Nothing more arrives after the 60: the next one is the marker.
    await assert_received_exactly(herald, channel, s.log, sorted(results, key=lambda r: r.offset),
                                  [d for _, d in got])


async def test_cache_mode_latest_then_live(herald, sdk):
    channel = channel_in("cache")
    datas = payloads("cache", 1, 3)
    results = await publish_all(herald, channel, datas)
    assert_acked_stream(results)

    s = await subscribed_reader(sdk, channel)
    # Right after subscribing: the latest publication, and only that one.
    first = await s.log.wait("publication")
    assert (first.pub.offset, first.pub.data) == (results[-1].offset, datas[-1])

    live = payloads("cache-live", 1, 2)
    live_results = await publish_all(herald, channel, live)
    await assert_received_exactly(herald, channel, s.log, [results[-1], *live_results], [datas[-1], *live])

    # A second subscriber gets the newest publication at that time.
    late = await subscribed_reader(sdk, channel, user="43")
    latest = await late.log.wait("publication")
    assert received(late.log) == [received(s.log)[-1]]
    assert latest.pub.offset == max(o for o, _ in received(s.log))


async def test_cache_mode_empty_channel_sends_nothing(herald, sdk):
    channel = channel_in("cache")
    s = await subscribed_reader(sdk, channel)
    await assert_received_exactly(herald, channel, s.log, [], [])
