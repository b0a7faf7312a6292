// Presence, presence stats and join/leave from the client SDK.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  useHerald, connToken, subscribed, dropSubscription,
  waitFor, rejection, safeJson,
} from './harness.js';

const { srv, pool } = useHerald({
  withoutNamespace: {
    allow_subscribe_for_client: true,
    allow_publish_for_subscriber: true,
    allow_presence_for_subscriber: true,
    presence: true,
    join_leave: true,
    force_push_join_leave: true,
  },
  namespaces: [
    // presence kept but clients may not query it
    { name: 'nopres', allow_subscribe_for_client: true, presence: true },
    // join_leave enabled, but only pushed when the client asks for it
    { name: 'jl', allow_subscribe_for_client: true, presence: true, join_leave: true },
  ],
});

test('presence and presence_stats from the client with two users', async () => {
  const [a1, ctxA1] = await pool.connected(srv, { token: connToken('1', { info: { name: 'ann' } }) });
  const [a2, ctxA2] = await pool.connected(srv, { token: connToken('1', { info: { name: 'ann' } }) });
  const [b, ctxB] = await pool.connected(srv, { token: connToken('2', { info: { name: 'bob' } }) });
  const subA1 = await subscribed(a1, 'room');
  await subscribed(a2, 'room');
  const subB = await subscribed(b, 'room');

  const pres = await subA1.presence();
  const clients = pres.clients;
  assert.deepEqual(
    Object.keys(clients).sort(),
    [ctxA1.client, ctxA2.client, ctxB.client].sort(),
    `presence keys: ${safeJson(pres)}`,
  );
  for (const [id, entry] of Object.entries(clients)) {
    assert.equal(entry.client, id, `entry.client matches key: ${safeJson(entry)}`);
  }
  assert.equal(clients[ctxA1.client].user, '1');
  assert.equal(clients[ctxA2.client].user, '1');
  assert.equal(clients[ctxB.client].user, '2');
  assert.deepEqual(clients[ctxA1.client].connInfo, { name: 'ann' });
  assert.deepEqual(clients[ctxB.client].connInfo, { name: 'bob' });

  const stats = await subB.presenceStats();
  assert.deepEqual(stats, { numClients: 3, numUsers: 2 });

  // Leaving updates presence.
  const left = waitFor(subB, 'leave', 5000, (l) => l.info.client === ctxA2.client);
  a2.disconnect();
  await left;
  const stats2 = await subB.presenceStats();
  assert.deepEqual(stats2, { numClients: 2, numUsers: 2 });
  const pres2 = await subB.presence();
  assert.deepEqual(Object.keys(pres2.clients).sort(), [ctxA1.client, ctxB.client].sort());
});

test('presence from a client that is not subscribed is 103 (allow_presence_for_subscriber)', async () => {
  const [c] = await pool.connected(srv, { token: connToken('3') });
  const err = await rejection(c.presence('room-not-joined'), 5000, 'presence');
  assert.equal(err.code, 103, safeJson(err));
});

test('presence where the namespace does not allow it for clients is 103', async () => {
  const [c] = await pool.connected(srv, { token: connToken('3') });
  const sub = await subscribed(c, 'nopres:a');
  const err = await rejection(sub.presence(), 5000, 'presence');
  assert.equal(err.code, 103, safeJson(err));
});

test('join and leave events seen by one subscriber when another joins and leaves', async () => {
  const [a, ctxA] = await pool.connected(srv, { token: connToken('10', { info: { name: 'watcher' } }) });
  const [b, ctxB] = await pool.connected(srv, { token: connToken('11', { info: { name: 'visitor' } }) });
  const subA = await subscribed(a, 'lobby');

  // (the subscriber may see its own join first: match on the other client's id)
  const isB = (x) => x.info && x.info.client === ctxB.client;
  const joined = waitFor(subA, 'join', 5000, isB);
  const subB = await subscribed(b, 'lobby');
  const j = await joined;
  assert.equal(j.channel, 'lobby');
  assert.equal(j.info.user, '11');
  assert.equal(j.info.client, ctxB.client);
  assert.deepEqual(j.info.connInfo, { name: 'visitor' });

  const left = waitFor(subA, 'leave', 5000, isB);
  dropSubscription(b, subB);
  const l = await left;
  assert.equal(l.channel, 'lobby');
  assert.equal(l.info.user, '11');
  assert.equal(l.info.client, ctxB.client);

  // Joining again and then disconnecting also produces join, then leave.
  const joined2 = waitFor(subA, 'join', 5000, (x) => x.info.client === ctxB.client);
  await subscribed(b, 'lobby');
  await joined2;
  const left2 = waitFor(subA, 'leave', 5000, (x) => x.info.client === ctxB.client);
  b.disconnect();
  await left2;
  assert.ok(ctxA.client);
});

test('join/leave on request: joinLeave subscription option in a join_leave namespace', async () => {
  const [a] = await pool.connected(srv, { token: connToken('20') });
  const [b, ctxB] = await pool.connected(srv, { token: connToken('21') });
  const subA = await subscribed(a, 'jl:room', { joinLeave: true });
  const isB = (x) => x.info && x.info.client === ctxB.client;
  const joined = waitFor(subA, 'join', 5000, isB);
  const subB = await subscribed(b, 'jl:room');
  assert.equal((await joined).info.client, ctxB.client);
  const left = waitFor(subA, 'leave', 5000, isB);
  dropSubscription(b, subB);
  assert.equal((await left).info.client, ctxB.client);
});

test('two users with two tabs each: presence stats 4/2 and a join and leave for every tab', async () => {
  const tabs = [];
  for (const user of ['31', '31', '32', '32']) {
    const [client, ctx] = await pool.connected(srv, { token: connToken(user) });
    tabs.push({ user, client, id: ctx.client });
  }
  const [watcher, ...others] = tabs;
  const watch = await subscribed(watcher.client, 'tabs');
  const seen = (event, tab) => waitFor(watch, event, 5000, (x) => x.info?.client === tab.id);

  const joins = Promise.all(others.map((t) => seen('join', t)));
  for (const t of others) t.sub = await subscribed(t.client, 'tabs');
  const joined = await joins;
  assert.deepEqual(joined.map((j) => [j.channel, j.info.user]), others.map((t) => ['tabs', t.user]));

  const stats = async (numClients, numUsers) => {
    assert.deepEqual(await watch.presenceStats(), { numClients, numUsers }, 'SDK presenceStats');
    const api = await srv.api('presence_stats', { channel: 'tabs' });
    assert.deepEqual(api, { result: { num_clients: numClients, num_users: numUsers } }, 'API presence_stats');
  };
  await stats(4, 2);
  const pres = await watch.presence();
  assert.deepEqual(Object.keys(pres.clients).sort(), tabs.map((t) => t.id).sort(), safeJson(pres));

  // user 32 closes both tabs, then user 31 its second one
  const [second31, ...user32] = others;
  const leaves32 = Promise.all(user32.map((t) => seen('leave', t)));
  for (const t of user32) t.client.disconnect();
  const left = await leaves32;
  assert.deepEqual(left.map((l) => l.info.user), ['32', '32']);
  await stats(2, 1);
  const leave31 = seen('leave', second31);
  dropSubscription(second31.client, second31.sub);
  assert.equal((await leave31).info.user, '31');
  await stats(1, 1);
});
