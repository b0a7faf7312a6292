// Server-side subscriptions (token `channels` claim, API subscribe) and API unsubscribe.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  useHerald, connToken, makeToken, nowSec, subscribed, refusedSubscription,
  waitFor, expectNoEvent, safeJson,
} from './harness.js';

const { srv, pool } = useHerald({
  withoutNamespace: { allow_subscribe_for_client: true, presence: true },
  namespaces: [
    // nothing allowed for clients: only server-side subscriptions get in
    { name: 'private' },
  ],
});

test('server-side subscription from the token channels claim: subscribed, then publication', async () => {
  const client = pool.create(srv, { token: connToken('42', { channels: ['private:feed-42'] }) });
  const subscribedEv = waitFor(client, 'subscribed', 5000, (c) => c.channel === 'private:feed-42');
  const connected = waitFor(client, 'connected', 5000);
  client.connect();
  await connected;
  const s = await subscribedEv;
  assert.equal(s.channel, 'private:feed-42');

  const got = waitFor(client, 'publication', 5000);
  const res = await srv.api('publish', { channel: 'private:feed-42', data: { server: 'side' } });
  assert.equal(res.error, undefined, safeJson(res));
  const pub = await got;
  assert.equal(pub.channel, 'private:feed-42');
  assert.deepEqual(pub.data, { server: 'side' });

  // The connect reply listed the subscription.
  const reply = client.wire.log.find(([d, f]) => d === 'in' && f.connect);
  assert.ok(reply[1].connect.subs && reply[1].connect.subs['private:feed-42'] !== undefined,
    `connect.subs: ${safeJson(reply[1].connect)}`);
});

test('server-side subscription from API subscribe on a live connection: subscribed, then publication', async () => {
  const [client] = await pool.connected(srv, { token: connToken('55') });
  const subscribedEv = waitFor(client, 'subscribed', 5000, (c) => c.channel === 'private:pushed-55');
  const res = await srv.api('subscribe', { user: '55', channel: 'private:pushed-55' });
  assert.equal(res.error, undefined, `API subscribe error: ${safeJson(res)}`);
  const s = await subscribedEv;
  assert.equal(s.channel, 'private:pushed-55');

  const got = waitFor(client, 'publication', 5000);
  await srv.api('publish', { channel: 'private:pushed-55', data: ['a', 'b'] });
  const pub = await got;
  assert.equal(pub.channel, 'private:pushed-55');
  assert.deepEqual(pub.data, ['a', 'b']);
});

test('API unsubscribe of a server-side subscription: client unsubscribed event, no more publications', async () => {
  const [client] = await pool.connected(srv, { token: connToken('56', { channels: ['private:gone-56'] }) });
  // connect reply already contained the sub; make sure it is known
  const pubs = [];
  client.on('publication', (p) => pubs.push(p));
  const unsub = waitFor(client, 'unsubscribed', 5000, (c) => c.channel === 'private:gone-56');
  const res = await srv.api('unsubscribe', { user: '56', channel: 'private:gone-56' });
  assert.equal(res.error, undefined, safeJson(res));
  await unsub;
  // The server must stop delivering: no publication push for the channel on the wire.
  const isPub = (f) => f.push && f.push.pub && f.push.channel === 'private:gone-56';
  const onWire = expectNoEvent(client.wire, 'in', 700, isPub);
  await srv.api('publish', { channel: 'private:gone-56', data: 1 });
  await onWire;
  assert.deepEqual(pubs, []);
});

test('API unsubscribe of a client-side subscription: code 2000 (< 2500) -> unsubscribed, no resubscribe', async () => {
  const [client] = await pool.connected(srv, { token: connToken('57') });
  const sub = await subscribed(client, 'unsubme');
  const unsub = waitFor(sub, 'unsubscribed', 5000);
  const res = await srv.api('unsubscribe', { user: '57', channel: 'unsubme' });
  assert.equal(res.error, undefined, safeJson(res));
  const ctx = await unsub;
  // centrifuge-js: unsubscribe push code < 2500 is terminal -> 'unsubscribed' state
  assert.equal(ctx.code, 2000, `unsubscribed ctx: ${safeJson(ctx)}`);
  assert.equal(ctx.channel, 'unsubme');
  assert.equal(sub.state, 'unsubscribed');
  await expectNoEvent(sub, 'subscribing', 800);
  assert.equal(sub.state, 'unsubscribed');
  assert.equal(client.state, 'connected');

  // The raw push on the wire was an unsubscribe with code 2000.
  const push = client.wire.log.find(([d, f]) => d === 'in' && f.push && f.push.unsubscribe);
  assert.ok(push, 'unsubscribe push on the wire');
  // (channel may be compacted to a subscription id if the server supports that flag)
  if (push[1].push.id === undefined) assert.equal(push[1].push.channel, 'unsubme');
  assert.equal(push[1].push.unsubscribe.code, 2000);

  // The server really dropped it: an API publish does not arrive.
  const isPub = (f) => f.push && f.push.pub && f.push.channel === 'unsubme';
  const onWire = expectNoEvent(client.wire, 'in', 700, isPub);
  await srv.api('publish', { channel: 'unsubme', data: 'late' });
  await onWire;
});

test('private namespace refuses a client-side subscribe without a subscription token (103)', async () => {
  const [client] = await pool.connected(srv, { token: connToken('58') });
  const [, ctx] = await refusedSubscription(client, 'private:feed-58');
  assert.equal(ctx.code, 103);
});

test('private namespace accepts a client-side subscribe with a valid subscription token', async () => {
  const [client] = await pool.connected(srv, { token: connToken('59') });
  const iat = nowSec();
  const subToken = makeToken({ sub: '59', channel: 'private:feed-59', iat, exp: iat + 600 });
  const sub = await subscribed(client, 'private:feed-59', { token: subToken });
  const got = waitFor(sub, 'publication', 5000);
  await srv.api('publish', { channel: 'private:feed-59', data: { ok: true } });
  assert.deepEqual((await got).data, { ok: true });
});

test('subscription token for another channel is rejected', async () => {
  const [client] = await pool.connected(srv, { token: connToken('60') });
  const iat = nowSec();
  const subToken = makeToken({ sub: '60', channel: 'private:other', iat, exp: iat + 600 });
  const [, ctx] = await refusedSubscription(client, 'private:feed-60', { token: subToken });
  // Centrifugo answers a channel mismatch in a subscription token with 103 permission denied.
  assert.equal(ctx.code, 103, `unsubscribed ctx: ${safeJson(ctx)}`);
});
