// Server pings ({}) are answered by the SDK ({} pong) and the connection stays up.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { useHerald, connToken, waitFor, expectNoEvent, safeJson } from './harness.js';

const { srv, pool } = useHerald({
  client: { ping_interval: '1s', pong_timeout: '1s' },
  withoutNamespace: { allow_subscribe_for_client: true },
});

const isPing = (f) => f && typeof f === 'object' && Object.keys(f).length === 0;

test('server pings every ping_interval, SDK pongs, connection stays up', async () => {
  const client = pool.create(srv, { token: connToken('42') });
  const connectReply = waitFor(client.wire, 'in', 5000, (f) => f.connect);
  const connected = waitFor(client, 'connected', 5000);
  client.connect();
  const reply = (await connectReply).connect;
  await connected;
  assert.equal(reply.ping, 1, `connect result ping: ${safeJson(reply)}`);
  assert.equal(reply.pong, true, `connect result pong: ${safeJson(reply)}`);

  await expectNoEvent(client, 'connecting', 4500);
  assert.equal(client.state, 'connected');
  const pings = client.wire.log.filter(([d, f]) => d === 'in' && isPing(f)).length;
  const pongs = client.wire.log.filter(([d, f]) => d === 'out' && isPing(f)).length;
  assert.ok(pings >= 3, `expected >= 3 pings in 4.5 s, got ${pings}`);
  assert.ok(pongs >= 3, `expected >= 3 pongs in 4.5 s, got ${pongs}`);
});
