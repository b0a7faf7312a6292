"""Connection life cycle with centrifuge-python: tokens, refresh, server
disconnects, limits and shutdown."""

import asyncio
import signal
import time

import pytest
import websockets

import cent
from centrifuge import ClientState, ReplyError

from conftest import EVENT_TIMEOUT, assert_server_healthy, unique


async def test_connect_with_token(herald, sdk):
    a = sdk("42", info={"name": "Alice"})
    b = sdk("43")
    await a.connect()
    await b.connect()

    ctx_a = await a.log.wait("connected")
    ctx_b = await b.log.wait("connected")
    assert isinstance(ctx_a.client, str) and ctx_a.client, ctx_a
    assert isinstance(ctx_b.client, str) and ctx_b.client, ctx_b
    assert ctx_a.client != ctx_b.client, "each connection must get its own client id"
    assert a.client.state == ClientState.CONNECTED
    # No errors on the way.
    assert a.log.all("error") == [] and b.log.all("error") == []


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_connect_with_hs_algorithms(herald, sdk, alg):
    c = sdk("42", alg=alg)
    await c.connect()
    assert c.client.state == ClientState.CONNECTED


async def test_bad_signature_disconnects_3500_no_reconnect(herald, sdk):
    calls = []

    async def get_token():
        calls.append(1)
        return herald.token("42")

    c = sdk("42", token=herald.tokens.bad_signature("42"), get_token=get_token)
    await c.connect(expect_connected=False)

    ctx = await c.log.wait("disconnected")
    assert ctx.code == 3500, f"expected disconnect code 3500 (invalid token), got {ctx}"
    # Terminal: the SDK is disconnected and has no reconnect scheduled.
    assert c.client.state == ClientState.DISCONNECTED
    assert c.log.all("connected") == []
    assert calls == [], "3500 is terminal: the SDK must not ask for a new token"


async def test_alg_none_token_disconnects_3500(herald, sdk):
    c = sdk("42", token=herald.tokens.alg_none("42"))
    await c.connect(expect_connected=False)
    ctx = await c.log.wait("disconnected")
    assert ctx.code == 3500, ctx
    assert c.client.state == ClientState.DISCONNECTED
    assert c.log.all("connected") == []


async def test_expired_token_get_token_called_then_connects(herald, sdk):
    calls = []

    async def get_token():
        calls.append(time.time())
        return herald.token("42")

    c = sdk("42", token=herald.tokens.expired("42"), get_token=get_token)
    await c.connect(expect_connected=False)

    await c.log.wait("connected")
    assert c.client.state == ClientState.CONNECTED
    assert len(calls) >= 1, "SDK must have called get_token after error 109"
    # The SDK reports the server's 109 through on_error before retrying.
    errs = [e for e in c.log.all("error") if isinstance(e.error, ReplyError)]
    assert errs and errs[0].error.code == 109, f"expected ReplyError 109, got {c.log.all('error')}"
    assert c.log.all("disconnected") == []


async def test_token_refresh_before_expiry(herald, sdk):
    """Connect result carries expires/ttl for a token with exp: the SDK calls
    get_token and sends `refresh`; the connection stays up."""
    refreshed = asyncio.Event()
    calls = []

    async def get_token():
        calls.append(1)
        refreshed.set()
        return herald.token("42", ttl=3600)

    c = sdk("42", token=herald.token("42", ttl=2), get_token=get_token)
    await c.connect()
    client_id = c.client_id
    await asyncio.wait_for(refreshed.wait(), 2 + EVENT_TIMEOUT)

    # The refreshed connection keeps working: same connection, still receives.
    s = await c.subscribe(unique("refresh"))
    await herald.acent.publish(cent.PublishRequest(channel=s.sub.channel, data={"after": "refresh"}))
    pub = await s.log.wait("publication")
    assert pub.pub.data == {"after": "refresh"}
    assert c.client.state == ClientState.CONNECTED
    assert c.client_id == client_id, "refresh must not have needed a reconnect"
    assert c.log.all("disconnected") == []
    assert c.log.all("connecting", lambda x: x.code != 0) == [], f"unexpected reconnect: {c.log.names()}"
    assert c.log.all("error") == [], c.log.all("error")


async def test_api_disconnect_3011_client_reconnects(herald, sdk):
    c = sdk("42")
    await c.connect()
    first_id = c.client_id
    channel = unique("reconn")
    s = await c.subscribe(channel)

    await herald.acent.disconnect(
        cent.DisconnectRequest(user="42", disconnect=cent.Disconnect(code=3011, reason="force reconnect"))
    )

    connecting = await c.log.wait("connecting", lambda x: x.code == 3011)
    assert connecting.reason, connecting
    await c.log.wait("connected", count=2)
    assert c.client.state == ClientState.CONNECTED
    assert c.client_id != first_id, "a reconnect is a new connection with a new client id"
    assert c.log.all("disconnected") == []

    # The client-side subscription was re-established and receives again.
    await s.log.wait("subscribed", count=2)
    await herald.acent.publish(cent.PublishRequest(channel=channel, data={"n": "after-reconnect"}))
    pub = await s.log.wait("publication")
    assert pub.pub.data == {"n": "after-reconnect"}


async def test_api_disconnect_default_3503_no_reconnect(herald, sdk):
    target = sdk("42")
    bystander = sdk("43")
    await target.connect()
    await bystander.connect()
    channel = unique("bystander")
    bs = await bystander.subscribe(channel)

    herald.cent.disconnect(cent.DisconnectRequest(user="42"))

    ctx = await target.log.wait("disconnected")
    assert ctx.code == 3503, f"expected 3503 force disconnect, got {ctx}"
    assert target.client.state == ClientState.DISCONNECTED
    assert len(target.log.all("connected")) == 1

    # Other users are unaffected.
    assert bystander.client.state == ClientState.CONNECTED
    await herald.acent.publish(cent.PublishRequest(channel=channel, data={"still": "here"}))
    assert (await bs.log.wait("publication")).pub.data == {"still": "here"}
    assert bystander.log.all("connecting", lambda x: x.code != 0) == []


async def test_user_connection_limit_3504(herald_factory, sdk):
    h = await herald_factory(user_connection_limit=1)
    first = sdk("42", server=h)
    await first.connect()
    second = sdk("42", server=h)
    await second.connect(expect_connected=False)
    ctx = await second.log.wait("disconnected")
    assert ctx.code == 3504, ctx
    assert second.client.state == ClientState.DISCONNECTED
    # Another user is not limited, and the first connection is fine.
    other = sdk("43", server=h)
    await other.connect()
    assert first.client.state == ClientState.CONNECTED


async def test_sigterm_shutdown_3001_and_clean_exit(herald, sdk):
    c = sdk("42")
    await c.connect()
    herald.proc.send_signal(signal.SIGTERM)
    ctx = await c.log.wait("connecting", lambda x: x.code != 0)
    assert ctx.code == 3001, f"expected close 3001 shutdown, got {ctx}"
    # 3001 is not terminal: the SDK keeps trying to reconnect.
    assert c.client.state == ClientState.CONNECTING
    rc = await asyncio.get_running_loop().run_in_executor(None, lambda: herald.proc.wait(10))
    assert rc == 0, f"herald exited with {rc} on SIGTERM"


async def test_api_disconnect_single_client(herald, sdk):
    a = sdk("42")
    b = sdk("42")
    await a.connect()
    await b.connect()
    await herald.acent.disconnect(cent.DisconnectRequest(user="42", client=a.client_id))
    ctx = await a.log.wait("disconnected")
    assert ctx.code == 3503, ctx
    # The other connection of the same user stays.
    s = await b.subscribe(unique("still"))
    await herald.acent.publish(cent.PublishRequest(channel=s.sub.channel, data={"b": "ok"}))
    assert (await s.log.wait("publication")).pub.data == {"b": "ok"}
    assert b.client.state == ClientState.CONNECTED
    assert b.log.all("disconnected") == []


async def test_api_refresh_expired_closes_3005_and_client_comes_back(herald, sdk):
    calls = []

    async def get_token():
        calls.append(1)
        return herald.token("42")

    c = sdk("42", token=herald.token("42"), get_token=get_token)
    await c.connect()
    first = c.client_id
    await herald.acent.refresh(cent.RefreshRequest(user="42", expired=True))
    ctx = await c.log.wait("connecting", lambda x: x.code != 0)
    assert ctx.code == 3005, f"expected 3005 connection expired, got {ctx}"
    await c.log.wait("connected", count=2)
    assert c.client_id != first


async def test_origin_check(herald_factory, sdk):
    h = await herald_factory(allowed_origins='["http://good.example"]')

    with pytest.raises(websockets.InvalidStatus) as e:
        await websockets.connect(h.ws_url, origin="http://evil.example", proxy=None, open_timeout=EVENT_TIMEOUT)
    assert e.value.response.status_code == 403, e.value.response.status_code

    ws = await websockets.connect(h.ws_url, origin="http://good.example", proxy=None, open_timeout=EVENT_TIMEOUT)
    await ws.close()

    # The SDK with an allowed Origin header works end to end.
    c = sdk("42", server=h, headers={"Origin": "http://good.example"})
    await c.connect()
    s = await c.subscribe(unique("origin"))
    await h.acent.publish(cent.PublishRequest(channel=s.sub.channel, data={"o": 1}))
    assert (await s.log.wait("publication")).pub.data == {"o": 1}
