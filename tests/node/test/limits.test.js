// Limits from the [client] config section, as the SDK sees them.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  useHerald, connToken, subscribed, refusedSubscription,
  waitFor, waitForEither, expectNoEvent, safeJson,
} from './harness.js';

const { srv, pool } = useHerald({
  client: { channel_limit: 2, user_connection_limit: 1, max_message_bytes: 4096 },
  withoutNamespace: { allow_subscribe_for_client: true, allow_publish_for_subscriber: true },
});

test('channel_limit: subscribing over the limit is error 106 (subscription unsubscribed, connection kept)', async () => {
  const [client] = await pool.connected(srv, { token: connToken('1') });
  await subscribed(client, 'lim-a');
  await subscribed(client, 'lim-b');
  const [, ctx] = await refusedSubscription(client, 'lim-c');
  assert.equal(ctx.code, 106, `unsubscribed ctx: ${safeJson(ctx)}`);
  assert.equal(client.state, 'connected');
});

test('user_connection_limit: a second connection of the same user is closed with 3504, no reconnect', async () => {
  const [first] = await pool.connected(srv, { token: connToken('2') });
  const second = pool.create(srv, { token: connToken('2') });
  const disconnected = waitForEither(second, 'disconnected', 'connected', 5000);
  second.connect();
  const ctx = await disconnected;
  assert.equal(ctx.code, 3504, `disconnected ctx: ${safeJson(ctx)}`);
  await expectNoEvent(second, 'connecting', 1000);
  assert.equal(first.state, 'connected', 'the first connection is kept');
  // another user is not affected
  const [other] = await pool.connected(srv, { token: connToken('3') });
  assert.equal(other.state, 'connected');
});

test('max_message_bytes: an oversized message closes the connection (1009 -> SDK "message size limit exceeded", no reconnect)', async () => {
  const [client] = await pool.connected(srv, { token: connToken('4') });
  const sub = await subscribed(client, 'big');
  const disconnected = waitFor(client, 'disconnected', 5000);
  sub.publish({ blob: 'x'.repeat(10000) }).catch(() => {});
  const ctx = await disconnected;
  // centrifuge-js maps close code 1009 to its own disconnected code 3 (messageSizeLimit).
  assert.equal(ctx.code, 3, `disconnected ctx: ${safeJson(ctx)}`);
  const close = client.wire.log.find(([d]) => d === 'close');
  assert.equal(close?.[1]?.code, 1009, `ws close: ${safeJson(close)}`);
  assert.equal(client.state, 'disconnected');
});

test('subscriptions created before connect are sent batched after connect and all succeed', async () => {
  const client = pool.create(srv, { token: connToken('5') });
  const subs = ['batch-1', 'batch-2'].map((ch) => {
    const s = client.newSubscription(ch);
    s.on('error', () => {});
    s.subscribe();
    return s;
  });
  const all = Promise.all(subs.map((s) => waitForEither(s, 'subscribed', 'unsubscribed', 5000)));
  client.connect();
  await all;
  // The SDK put both subscribe commands into one WebSocket frame (newline-delimited).
  const frames = client.wire.log.filter(([d]) => d === 'out-frame').map(([, n]) => n);
  assert.ok(frames.some((n) => n >= 2), `expected a multi-command frame, frame sizes: ${safeJson(frames)}`);
});
