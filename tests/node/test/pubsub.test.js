// Subscriptions, publications and channel permissions.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  useHerald, connToken, subscribed, refusedSubscription,
  waitFor, rejection, safeJson,
} from './harness.js';

const { srv, pool } = useHerald({
  withoutNamespace: { allow_subscribe_for_client: true, allow_publish_for_subscriber: true, presence: true },
  namespaces: [
    // clients may subscribe and publish (as subscribers)
    { name: 'talk', allow_subscribe_for_client: true, allow_publish_for_subscriber: true },
    // clients may subscribe but not publish
    { name: 'news', allow_subscribe_for_client: true },
    // user-limited channels dm:#42,43
    { name: 'dm', allow_subscribe_for_client: true, allow_user_limited_channels: true },
  ],
});

test('subscribe and receive a server API publish with equal data', async () => {
  const [client] = await pool.connected(srv, { token: connToken('42') });
  const sub = await subscribed(client, 'news:sports');
  assert.equal(sub.state, 'subscribed');

  const data = { text: 'hello', n: 1, nested: { list: [1, 2, 3], flag: true, none: null }, s: 'ünïcødé ✓' };
  const got = waitFor(sub, 'publication', 5000);
  const res = await srv.api('publish', { channel: 'news:sports', data });
  assert.equal(res.error, undefined, `API publish error: ${safeJson(res)}`);
  assert.ok(res.result, `API publish result: ${safeJson(res)}`);
  const pub = await got;
  assert.equal(pub.channel, 'news:sports');
  assert.deepEqual(pub.data, data);
});

test('API publish reaches every subscriber, and only subscribers of that channel', async () => {
  const [a] = await pool.connected(srv, { token: connToken('1') });
  const [b] = await pool.connected(srv, { token: connToken('2') });
  const subA = await subscribed(a, 'news:x');
  const subB = await subscribed(b, 'news:x');
  const subOther = await subscribed(b, 'news:y');
  const otherGot = [];
  subOther.on('publication', (p) => { otherGot.push(p.data); });
  const gotA = waitFor(subA, 'publication', 5000);
  const gotB = waitFor(subB, 'publication', 5000);
  await srv.api('publish', { channel: 'news:x', data: { v: 7 } });
  assert.deepEqual((await gotA).data, { v: 7 });
  assert.deepEqual((await gotB).data, { v: 7 });
  // a later publication to news:y arrives, so anything for news:y was not still in flight
  const gotY = waitFor(subOther, 'publication', 5000);
  await srv.api('publish', { channel: 'news:y', data: { v: 8 } });
  assert.deepEqual((await gotY).data, { v: 8 });
  assert.deepEqual(otherGot, [{ v: 8 }], 'news:y subscriber received only its own publication');
});

test('client publish is allowed in a namespace with allow_publish_for_subscriber', async () => {
  const [client] = await pool.connected(srv, { token: connToken('42') });
  const sub = await subscribed(client, 'talk:room1');
  const got = waitFor(sub, 'publication', 5000);
  const res = await sub.publish({ msg: 'hi from client' });
  assert.deepEqual(res, {});
  const pub = await got;
  assert.deepEqual(pub.data, { msg: 'hi from client' });
});

test('client publish is rejected with 103 where not allowed', async () => {
  const [client] = await pool.connected(srv, { token: connToken('42') });
  const sub = await subscribed(client, 'news:readonly');
  const received = [];
  sub.on('publication', (p) => { received.push(p.data); });
  const err = await rejection(sub.publish({ msg: 'nope' }), 5000, 'publish');
  assert.equal(err.code, 103, `error: ${safeJson(err)}`);
  // the connection and the subscription survive a permission error
  assert.equal(client.state, 'connected');
  assert.equal(sub.state, 'subscribed');
  // and nothing was delivered: a later API publish is the first thing the sub sees
  const got = waitFor(sub, 'publication', 5000);
  await srv.api('publish', { channel: 'news:readonly', data: { from: 'api' } });
  assert.deepEqual((await got).data, { from: 'api' });
  assert.deepEqual(received, [{ from: 'api' }], 'the rejected publication must not be delivered');
});

test('client publish to a subscriber-only channel without subscribing is 103', async () => {
  const [client] = await pool.connected(srv, { token: connToken('42') });
  const err = await rejection(client.publish('talk:notsubscribed', { x: 1 }), 5000, 'publish');
  assert.equal(err.code, 103, `error: ${safeJson(err)}`);
});

test('subscribe to an unknown namespace: unsubscribed with error 102', async () => {
  const [client] = await pool.connected(srv, { token: connToken('42') });
  const [sub, ctx] = await refusedSubscription(client, 'nosuchns:abc');
  assert.equal(ctx.code, 102, `unsubscribed ctx: ${safeJson(ctx)}`);
  assert.equal(sub.state, 'unsubscribed');
  assert.equal(client.state, 'connected', 'connection must survive');
  // The raw subscribe reply is an error 102.
  const cmd = client.wire.log.find(([d, f]) => d === 'out' && f.subscribe && f.subscribe.channel === 'nosuchns:abc');
  const reply = client.wire.log.find(([d, f]) => d === 'in' && f.id === cmd[1].id);
  assert.equal(reply?.[1]?.error?.code, 102, `raw reply: ${safeJson(reply)}`);
});

test('user-limited channel dm:#42,43 works for user 42', async () => {
  const [c42] = await pool.connected(srv, { token: connToken('42') });
  const [c43] = await pool.connected(srv, { token: connToken('43') });
  const sub42 = await subscribed(c42, 'dm:#42,43');
  const sub43 = await subscribed(c43, 'dm:#42,43');
  assert.equal(sub42.state, 'subscribed');
  const got42 = waitFor(sub42, 'publication', 5000);
  const got43 = waitFor(sub43, 'publication', 5000);
  await srv.api('publish', { channel: 'dm:#42,43', data: { dm: 'secret' } });
  assert.deepEqual((await got42).data, { dm: 'secret' });
  assert.deepEqual((await got43).data, { dm: 'secret' });
});

test('user-limited channel dm:#42,43 is 103 for user 7', async () => {
  const [c7] = await pool.connected(srv, { token: connToken('7') });
  const [sub, ctx] = await refusedSubscription(c7, 'dm:#42,43');
  assert.equal(ctx.code, 103, `unsubscribed ctx: ${safeJson(ctx)}`);
  assert.equal(sub.state, 'unsubscribed');
  assert.equal(c7.state, 'connected');
});

test('publication info carries the publisher user, client and conn info when a client publishes', async () => {
  const [pubClient, pubCtx] = await pool.connected(srv, { token: connToken('42', { info: { name: 'alice' } }) });
  const [subClient] = await pool.connected(srv, { token: connToken('43') });
  const subOfReader = await subscribed(subClient, 'talk:info');
  const subOfWriter = await subscribed(pubClient, 'talk:info');
  const got = waitFor(subOfReader, 'publication', 5000);
  await subOfWriter.publish({ text: 'signed' });
  const pub = await got;
  assert.deepEqual(pub.data, { text: 'signed' });
  assert.ok(pub.info, `publication must carry info: ${safeJson(pub)}`);
  assert.equal(pub.info.user, '42');
  assert.equal(pub.info.client, pubCtx.client);
  assert.deepEqual(pub.info.connInfo, { name: 'alice' });
});

test('API publish carries no client info', async () => {
  const [client] = await pool.connected(srv, { token: connToken('42') });
  const sub = await subscribed(client, 'talk:api');
  const got = waitFor(sub, 'publication', 5000);
  await srv.api('publish', { channel: 'talk:api', data: 1 });
  const pub = await got;
  assert.equal(pub.data, 1);
  assert.equal(pub.info, undefined);
});
