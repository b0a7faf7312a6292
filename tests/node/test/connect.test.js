// Connection authentication: tokens, invalid tokens, expired tokens, refresh.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  useHerald, connToken, makeToken, nowSec,
  waitFor, waitForEither, expectNoEvent, safeJson,
} from './harness.js';

const { srv, pool } = useHerald({
  withoutNamespace: { allow_subscribe_for_client: true, presence: true },
});

test('connect with a valid HS256 token: connected event with a client id', async () => {
  const client = pool.create(srv, { token: connToken('42') });
  const connecting = waitFor(client, 'connecting', 2000);
  const connected = waitForEither(client, 'connected', 'disconnected', 5000);
  client.connect();
  await connecting;
  const ctx = await connected;
  assert.equal(typeof ctx.client, 'string');
  assert.ok(ctx.client.length > 0, 'client id must be non-empty');
  assert.equal(ctx.transport, 'websocket');
  assert.equal(client.state, 'connected');

  // The raw connect reply carries the same client id.
  const reply = client.wire.log.find(([dir, f]) => dir === 'in' && f.connect);
  assert.ok(reply, `no connect reply on the wire: ${safeJson(client.wire.log)}`);
  assert.equal(reply[1].connect.client, ctx.client);
});

test('HS384 and HS512 tokens are accepted too', async () => {
  for (const alg of ['HS384', 'HS512']) {
    const iat = nowSec();
    const token = makeToken({ sub: '43', iat, exp: iat + 600 }, { alg });
    const [client, ctx] = await pool.connected(srv, { token });
    assert.ok(ctx.client, `${alg}: client id`);
    client.disconnect();
  }
});

async function expectInvalidToken(token) {
  const client = pool.create(srv, { token });
  let connectedSeen = false;
  client.on('connected', () => { connectedSeen = true; });
  const disconnected = waitFor(client, 'disconnected', 5000);
  client.connect();
  const ctx = await disconnected;
  assert.equal(ctx.code, 3500, `disconnect code (ctx ${safeJson(ctx)})`);
  assert.equal(connectedSeen, false, 'must never be connected');
  // Terminal: the SDK must not try again (reconnect delay is 100-500 ms here).
  await expectNoEvent(client, 'connecting', 1500);
  assert.equal(client.state, 'disconnected');
  return { client, ctx };
}

test('token with a bad signature: disconnected with code 3500, no reconnect', async () => {
  const token = connToken('42', {}, { secret: 'not-the-secret' });
  const { client } = await expectInvalidToken(token);
  // One connection attempt only.
  const connects = client.wire.log.filter(([dir, f]) => dir === 'out' && f.connect);
  assert.equal(connects.length, 1, 'exactly one connect command must be sent');
});

test('alg:none token: disconnected with code 3500, no reconnect', async () => {
  const iat = nowSec();
  await expectInvalidToken(makeToken({ sub: '42', iat, exp: iat + 600 }, { alg: 'none' }));
});

test('malformed token: disconnected with code 3500, no reconnect', async () => {
  await expectInvalidToken('this.is-not-a.jwt');
});

test('expired token: SDK gets error 109, calls getToken and connects with the fresh token', async () => {
  const expired = makeToken({ sub: '42', iat: nowSec() - 7200, exp: nowSec() - 3600 });
  let getTokenCalls = 0;
  const client = pool.create(srv, {
    token: expired,
    getToken: async () => { getTokenCalls++; return connToken('42'); },
  });
  const connectErr = waitFor(client, 'error', 5000, (e) => e.type === 'connect');
  const connected = waitForEither(client, 'connected', 'disconnected', 8000);
  connected.catch(() => {}); // awaited below; avoid an unhandled rejection if connectErr fails first
  client.connect();
  const err = await connectErr;
  assert.equal(err.error.code, 109, `connect error should be 109 token expired: ${safeJson(err)}`);
  const ctx = await connected;
  assert.ok(ctx.client, 'client id');
  assert.ok(getTokenCalls >= 1, 'getToken must have been called');
  const connects = client.wire.log.filter(([d, f]) => d === 'out' && f.connect);
  assert.equal(connects[0][1].connect.token, expired, 'first attempt uses the expired token');
  assert.notEqual(connects.at(-1)[1].connect.token, expired, 'last attempt uses a fresh token');
});

test('short-lived token is refreshed via getToken (refresh command) while staying connected', async () => {
  const ttl = 3;
  const first = connToken('42', { ttl });
  const firstExp = nowSec() + ttl;
  let getTokenCalls = 0;
  const client = pool.create(srv, {
    token: first,
    getToken: async () => { getTokenCalls++; return connToken('42', { ttl: 3600 }); },
  });
  const lost = [];
  client.on('connecting', (c) => lost.push(['connecting', c]));
  client.on('disconnected', (c) => lost.push(['disconnected', c]));

  const connected = waitForEither(client, 'connected', 'disconnected', 5000);
  const connectReply = waitFor(client.wire, 'in', 5000, (f) => f.connect);
  connectReply.catch(() => {}); // awaited below
  client.connect();
  const ctx = await connected;
  const reply = (await connectReply).connect;
  assert.equal(reply.expires, true, `connect result must say expires: ${safeJson(reply)}`);
  assert.ok(reply.ttl > 0 && reply.ttl <= ttl, `connect ttl in (0, ${ttl}]: ${safeJson(reply)}`);
  lost.length = 0; // 'connecting' before the first connect is expected

  // SDK sends a refresh command with the new token; server answers it.
  const refreshCmd = await waitFor(client.wire, 'out', (ttl + 3) * 1000, (f) => f.refresh);
  assert.ok(getTokenCalls >= 1, 'getToken called for the refresh');
  assert.ok(refreshCmd.refresh.token && refreshCmd.refresh.token !== first, 'refresh carries a new token');
  const refreshReply = await waitFor(client.wire, 'in', 5000, (f) => f.id === refreshCmd.id);
  assert.equal(refreshReply.error, undefined, `refresh reply error: ${safeJson(refreshReply)}`);
  assert.ok(refreshReply.refresh, `refresh reply must carry a refresh result: ${safeJson(refreshReply)}`);

  // Stay connected well past the first token's expiry.
  const waitMs = Math.max(0, (firstExp - nowSec()) * 1000) + 2500;
  await expectNoEvent(client, 'disconnected', waitMs);
  assert.deepEqual(lost, [], `connection must not drop: ${safeJson(lost)}`);
  assert.equal(client.state, 'connected');
  // Same connection: the client id did not change and there was only one connect.
  const connects = client.wire.log.filter(([d, f]) => d === 'out' && f.connect);
  assert.equal(connects.length, 1, 'one connect command only');
  assert.ok(ctx.client);
});
