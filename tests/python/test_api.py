"""The server HTTP API through the published `cent` client (sync and async),
observed by centrifuge-python subscribers."""

import cent
import pytest
import requests

from conftest import eventually, unique


async def test_broadcast_to_three_channels(herald, sdk):
    channels = [unique(f"bc{i}") for i in range(3)]
    subs = []
    for i, ch in enumerate(channels):
        c = sdk(str(100 + i))
        await c.connect()
        subs.append(await c.subscribe(ch))

    res = await herald.acent.broadcast(cent.BroadcastRequest(channels=channels, data={"bc": "all"}))
    assert isinstance(res, cent.BroadcastResult)
    assert len(res.responses) == 3, res
    for r in res.responses:
        assert r.error is None, r
        assert r.result is not None, r

    for s in subs:
        pub = await s.log.wait("publication")
        assert pub.pub.data == {"bc": "all"}


async def test_broadcast_sync_client_reports_per_channel_error(herald, sdk):
    good = unique("bcok")
    c = sdk("42")
    await c.connect()
    s = await c.subscribe(good)
    res = herald.cent.broadcast(cent.BroadcastRequest(channels=[good, "nope:" + unique("x")], data={"x": 1}))
    assert len(res.responses) == 2, res
    assert res.responses[0].error is None and res.responses[0].result is not None
    assert res.responses[1].error is not None and res.responses[1].error.code == 102, res.responses[1]
    assert (await s.log.wait("publication")).pub.data == {"x": 1}


async def test_batch_two_publishes(herald, sdk):
    ch1, ch2 = unique("batch1"), unique("batch2")
    c = sdk("42")
    await c.connect()
    s1 = await c.subscribe(ch1)
    s2 = await c.subscribe(ch2)

    res = await herald.acent.batch(
        cent.BatchRequest(
            requests=[
                cent.PublishRequest(channel=ch1, data={"b": 1}),
                cent.PublishRequest(channel=ch2, data={"b": 2}),
            ]
        )
    )
    assert isinstance(res, cent.BatchResult)
    assert len(res.replies) == 2, res
    assert all(isinstance(r, cent.PublishResult) for r in res.replies), res.replies

    assert (await s1.log.wait("publication")).pub.data == {"b": 1}
    assert (await s2.log.wait("publication")).pub.data == {"b": 2}

    # Sync client, parallel flag.
    res = herald.cent.batch(
        cent.BatchRequest(
            requests=[
                cent.PublishRequest(channel=ch1, data={"b": 3}),
                cent.PublishRequest(channel=ch2, data={"b": 4}),
            ],
            parallel=True,
        )
    )
    assert len(res.replies) == 2
    assert (await s1.log.wait("publication", count=2)).pub.data == {"b": 3}
    assert (await s2.log.wait("publication", count=2)).pub.data == {"b": 4}


async def test_info_counts_live_connections(herald, sdk):
    res = await herald.acent.info(cent.InfoRequest())
    assert len(res.nodes) == 1, res
    assert res.nodes[0].num_clients == 0, res.nodes[0]

    a = sdk("42")
    b = sdk("43")
    a2 = sdk("42")
    for c in (a, b, a2):
        await c.connect()
    await a.subscribe(unique("info"))

    res = herald.cent.info(cent.InfoRequest())
    assert len(res.nodes) == 1, res
    node = res.nodes[0]
    assert node.uid and node.name
    assert node.num_clients == 3, node
    assert node.num_users == 2, node

    await b.client.disconnect()

    async def two_left():
        r = await herald.acent.info(cent.InfoRequest())
        return r.nodes[0].num_clients == 2 and r.nodes[0].num_users == 1

    await eventually(two_left, what="info.num_clients == 2 after a disconnect")


async def test_channels_lists_active_channels(herald, sdk):
    ch_a, ch_b, ch_gone = unique("cha"), unique("chb"), unique("chgone")
    c1 = sdk("42")
    c2 = sdk("43")
    await c1.connect()
    await c2.connect()
    await c1.subscribe(ch_a)
    await c2.subscribe(ch_a)
    await c1.subscribe(ch_b)
    gone = await c2.subscribe(ch_gone)

    await gone.sub.unsubscribe()

    async def listing_ok():
        r = await herald.acent.channels(cent.ChannelsRequest())
        return r if ch_gone not in r.channels else None

    res = await eventually(listing_ok, what=f"{ch_gone} gone from channels")
    assert ch_a in res.channels and ch_b in res.channels, res.channels
    assert res.channels[ch_a].num_clients == 2
    assert res.channels[ch_b].num_clients == 1

    # Pattern filter.
    res = herald.cent.channels(cent.ChannelsRequest(pattern=ch_a))
    assert set(res.channels) == {ch_a}, res.channels


async def test_wrong_api_key_unauthorized(herald):
    bad = cent.Client(herald.api_url, "wrong-key", timeout=5.0)
    try:
        with pytest.raises(cent.CentUnauthorizedError):
            bad.publish(cent.PublishRequest(channel="news", data={"x": 1}))
    finally:
        bad.close()

    async with cent.AsyncClient(herald.api_url, "wrong-key", timeout=5.0) as abad:
        with pytest.raises(cent.CentUnauthorizedError):
            await abad.info(cent.InfoRequest())


async def test_api_error_unknown_namespace_102(herald):
    with pytest.raises(cent.CentApiResponseError) as e:
        await herald.acent.publish(cent.PublishRequest(channel="nope:" + unique("x"), data={"x": 1}))
    assert e.value.code == 102, e.value

    with pytest.raises(cent.CentApiResponseError) as e:
        herald.cent.publish(cent.PublishRequest(channel="nope:" + unique("x"), data={"x": 1}))
    assert e.value.code == 102, e.value


async def test_api_raw_http_auth_header_and_malformed_json(herald):
    """Same API without cent: `Authorization: apikey KEY`, 401 without a key,
    400 for malformed JSON."""
    s = requests.Session()
    s.trust_env = False
    r = s.post(herald.api_url + "/info", data="{}", headers={"Authorization": f"apikey {herald.api_key}"}, timeout=5)
    assert r.status_code == 200, r.text
    assert len(r.json()["result"]["nodes"]) == 1

    r = s.post(herald.api_url + "/info", data="{}", timeout=5)
    assert r.status_code == 401, r.text

    r = s.post(herald.api_url + "/publish", data='{"channel": "x", "data": ', headers={"X-API-Key": herald.api_key}, timeout=5)
    assert r.status_code == 400, (r.status_code, r.text)

