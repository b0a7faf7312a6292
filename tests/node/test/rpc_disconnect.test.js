// RPC and server-initiated disconnects through the server API.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  useHerald, connToken, subscribed,
  waitFor, expectNoEvent, rejection, safeJson,
} from './harness.js';

const { srv, pool } = useHerald({
  withoutNamespace: { allow_subscribe_for_client: true, presence: true },
});

test('rpc with an unknown method: error 104, connection stays up', async () => {
  const [client] = await pool.connected(srv, { token: connToken('42') });
  const err = await rejection(client.rpc('no.such.method', { a: 1 }), 5000, 'rpc');
  assert.equal(err.code, 104, `rpc error: ${safeJson(err)}`);
  assert.equal(client.state, 'connected');
});

test('API disconnect with code 3011 "force reconnect": client reconnects', async () => {
  const [client, first] = await pool.connected(srv, { token: connToken('77') });
  const sub = await subscribed(client, 'reconnect-room');
  const connecting = waitFor(client, 'connecting', 5000);
  const reconnected = waitFor(client, 'connected', 8000);
  let disconnectedSeen = null;
  client.on('disconnected', (c) => { disconnectedSeen = c; });

  const res = await srv.api('disconnect', { user: '77', disconnect: { code: 3011, reason: 'force reconnect' } });
  assert.equal(res.error, undefined, `API disconnect error: ${safeJson(res)}`);

  const c = await connecting;
  assert.equal(c.code, 3011, `connecting ctx: ${safeJson(c)}`);
  assert.equal(c.reason, 'force reconnect');
  const again = await reconnected;
  assert.ok(again.client, 'new client id');
  assert.notEqual(again.client, first.client, 'reconnect is a new connection');
  assert.equal(disconnectedSeen, null, 'must not reach the disconnected state');

  // The subscription is restored after the reconnect and works.
  if (sub.state !== 'subscribed') await waitFor(sub, 'subscribed', 5000);
  const got = waitFor(sub, 'publication', 5000);
  await srv.api('publish', { channel: 'reconnect-room', data: { after: 'reconnect' } });
  assert.deepEqual((await got).data, { after: 'reconnect' });
});

test('API disconnect without a disconnect object: disconnected with 3503, no reconnect', async () => {
  const [client] = await pool.connected(srv, { token: connToken('78') });
  const [bystander] = await pool.connected(srv, { token: connToken('79') });
  let bystanderLost = null;
  bystander.on('connecting', (c) => { bystanderLost = c; });
  const disconnected = waitFor(client, 'disconnected', 5000);

  const res = await srv.api('disconnect', { user: '78' });
  assert.equal(res.error, undefined, `API disconnect error: ${safeJson(res)}`);

  const ctx = await disconnected;
  assert.equal(ctx.code, 3503, `disconnected ctx: ${safeJson(ctx)}`);
  await expectNoEvent(client, 'connecting', 1500);
  assert.equal(client.state, 'disconnected');
  // Only user 78 was disconnected.
  assert.equal(bystanderLost, null, 'another user must not be disconnected');
  assert.equal(bystander.state, 'connected');
});

test('API disconnect of one client id leaves the user\'s other connection alone', async () => {
  const [c1, ctx1] = await pool.connected(srv, { token: connToken('80') });
  const [c2] = await pool.connected(srv, { token: connToken('80') });
  let c2Lost = null;
  c2.on('connecting', (c) => { c2Lost = c; });
  c2.on('disconnected', (c) => { c2Lost = c; });
  const disconnected = waitFor(c1, 'disconnected', 5000);
  await srv.api('disconnect', { user: '80', client: ctx1.client });
  assert.equal((await disconnected).code, 3503);
  // c2 stays: check it still answers a command.
  const err = await rejection(c2.rpc('still-there', {}), 5000, 'rpc');
  assert.equal(err.code, 104);
  assert.equal(c2Lost, null);
  assert.equal(c2.state, 'connected');
});

test('API send: the user\'s connection gets a client "message" event with the data', async () => {
  const [client] = await pool.connected(srv, { token: connToken('81') });
  const got = waitFor(client, 'message', 5000);
  const res = await srv.api('send', { user: '81', data: { note: 'direct' } });
  assert.equal(res.error, undefined, safeJson(res));
  assert.deepEqual((await got).data, { note: 'direct' });
});
