// Notification inbox (docs/inbox.md) with the published centrifuge SDK and the
// server HTTP API: notify, list with cursor and filters, update actions, unread
// count, preferences, live pushes on inbox:#<user> to every tab, and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  useHerald, startHerald, connToken, waitFor, expectNoEvent, rejection, safeJson,
} from './harness.js';
import { appsHelpers } from './apps_helpers.js';

const { srv, pool } = useHerald({
  // anonymous connections exist (and have no inbox)
  client: { allow_anonymous_connect_without_token: true },
});

let seq = 0;
/** A user id unique in this run. */
const newUser = (p = 'u') => `${p}-${process.pid}-${++seq}`;

const { api, apiError, rpc, rpcError, tab } = appsHelpers(srv, pool);

/** Wait for a push of `type` on the user's inbox channel, optionally matching `pred(data)`. */
function push(client, user, type, pred = () => true, timeoutMs = 5000) {
  return waitFor(client, 'publication', timeoutMs,
    (p) => p.channel === `inbox:#${user}` && p.data?.type === type && pred(p.data)).then((p) => p.data);
}

/** Wait for an unread_count push with `count`. */
const countPush = (client, user, count) => push(client, user, 'unread_count', (d) => d.count === count);

/** notify one notification for `user`; returns its id. */
async function notifyOne(user, fields = {}) {
  const { ids } = await api('notify', { users: [user], title: 'hello', ...fields });
  assert.equal(ids.length, 1);
  return ids[0];
}

test('notify reaches both tabs of each user with the notification and the new unread count', async () => {
  const ann = newUser('ann');
  const bob = newUser('bob');
  const eve = newUser('eve');
  const [ann1, ann2, bob1, eve1] = await Promise.all([tab(ann), tab(ann), tab(bob), tab(eve)]);

  const notes = [push(ann1, ann, 'notification'), push(ann2, ann, 'notification'), push(bob1, bob, 'notification')];
  const counts = [countPush(ann1, ann, 1), countPush(ann2, ann, 1), countPush(bob1, bob, 1)];
  const evePubs = expectNoEvent(eve1, 'publication', 800);

  const res = await api('notify', {
    users: [ann, bob],
    title: 'Order #1234 shipped',
    message: 'Your booster finished the order.',
    level: 'success',
    category: 'orders',
    data: { order: 1234, nested: [1, { a: null }] },
  });
  assert.equal(res.ids.length, 2, safeJson(res));
  assert.ok(res.ids.every(Number.isInteger), safeJson(res));
  assert.notEqual(res.ids[0], res.ids[1]);

  const [a1, a2, b1] = await Promise.all(notes);
  for (const [n, user, id] of [[a1, ann, res.ids[0]], [a2, ann, res.ids[0]], [b1, bob, res.ids[1]]]) {
    const { created_at: createdAt, ...rest } = n.notification;
    assert.deepEqual(rest, {
      id, user, title: 'Order #1234 shipped', message: 'Your booster finished the order.',
      level: 'success', category: 'orders', data: { order: 1234, nested: [1, { a: null }] },
      read: false, archived: false,
    });
    assert.ok(Number.isInteger(createdAt) && Math.abs(createdAt - Date.now()) < 60000, `created_at ${createdAt}`);
  }
  await Promise.all(counts);
  await evePubs;

  // The listed notification is the pushed one.
  const { notifications } = await rpc(ann2, 'inbox.list', {});
  assert.deepEqual(notifications, [a1.notification]);
  assert.deepEqual(await rpc(bob1, 'inbox.unread_count'), { count: 1 });
  assert.deepEqual(await rpc(eve1, 'inbox.unread_count'), { count: 0 });
});

test('defaults: level info, category "", message "", data null; ids keep the order of users', async () => {
  const users = [newUser('d'), newUser('d'), newUser('d')];
  const { ids } = await api('notify', { users, title: 'just a title' });
  assert.equal(ids.length, 3);
  for (const [i, user] of users.entries()) {
    const { notifications } = await api('notifications_list', { user });
    assert.equal(notifications.length, 1, safeJson(notifications));
    const n = notifications[0];
    assert.equal(n.id, ids[i], 'ids follow the order of users');
    assert.equal(n.user, user);
    assert.equal(n.level, 'info');
    assert.equal(n.category, '');
    assert.ok(n.message === '' || n.message === null, `message ${safeJson(n.message)}`);
    assert.equal(n.data ?? null, null);
  }
});

test('two tabs stay consistent: read, unread, archive and delete in one tab push the same count to the other', async () => {
  const user = newUser('tabs');
  const [t1, t2] = await Promise.all([tab(user), tab(user)]);
  const ids = [];
  for (let i = 0; i < 4; i++) {
    const both = Promise.all([countPush(t1, user, i + 1), countPush(t2, user, i + 1)]);
    ids.push(await notifyOne(user, { title: `n${i}` }));
    await both;
  }

  // mark_read of one in tab 1: tab 2 gets unread_count 3, the same number tab 1 now reads
  let other = countPush(t2, user, 3);
  let own = countPush(t1, user, 3);
  assert.deepEqual(await rpc(t1, 'inbox.mark_read', { ids: [ids[0]] }), { updated: 1 });
  assert.equal((await other).count, 3);
  await own;
  assert.deepEqual(await rpc(t1, 'inbox.unread_count'), { count: 3 });
  assert.deepEqual(await rpc(t2, 'inbox.unread_count'), { count: 3 });

  // marking it read again changes nothing
  assert.deepEqual(await rpc(t2, 'inbox.mark_read', { ids: [ids[0]] }), { updated: 0 });

  // mark_unread in tab 2 -> tab 1 sees 4
  other = countPush(t1, user, 4);
  assert.deepEqual(await rpc(t2, 'inbox.mark_unread', { ids: [ids[0]] }), { updated: 1 });
  await other;

  // mark_read all in tab 1 -> tab 2 sees 0
  other = countPush(t2, user, 0);
  assert.deepEqual(await rpc(t1, 'inbox.mark_read', { all: true }), { updated: 4 });
  await other;

  // mark_unread all in tab 2 -> tab 1 sees 4
  other = countPush(t1, user, 4);
  assert.deepEqual(await rpc(t2, 'inbox.mark_unread', { all: true }), { updated: 4 });
  await other;

  // archive in tab 1 (archived ones do not count) -> tab 2 sees 3
  other = countPush(t2, user, 3);
  assert.deepEqual(await rpc(t1, 'inbox.archive', { ids: [ids[1]] }), { updated: 1 });
  await other;

  // delete in tab 2 -> tab 1 sees 2
  other = countPush(t1, user, 2);
  assert.deepEqual(await rpc(t2, 'inbox.delete', { ids: [ids[2]] }), { updated: 1 });
  await other;
  assert.deepEqual(await rpc(t1, 'inbox.unread_count'), { count: 2 });
  assert.deepEqual(await api('notifications_unread_count', { user }), { count: 2 });

  // a backend update pushes to both tabs as well
  const both = Promise.all([countPush(t1, user, 0), countPush(t2, user, 0)]);
  assert.deepEqual(await api('notifications_update', { user, action: 'read', ids: [ids[0], ids[3]] }), { updated: 2 });
  await both;
  assert.deepEqual(await rpc(t2, 'inbox.unread_count'), { count: 0 });
});

test('dedupe_key: a second notify with the same key adds nothing and answers the first id', async () => {
  const user = newUser('dd');
  const other = newUser('dd');
  const t = await tab(user);
  const first = push(t, user, 'notification');
  const { ids: [id1] } = await api('notify', { users: [user], title: 'shipped', dedupe_key: 'order-1-shipped' });
  assert.equal((await first).notification.id, id1);

  const noSecond = expectNoEvent(t, 'publication', 800, (p) => p.data?.type === 'notification');
  const { ids: [id2] } = await api('notify', { users: [user], title: 'shipped again', dedupe_key: 'order-1-shipped' });
  assert.equal(id2, id1);
  await noSecond;
  const { notifications } = await rpc(t, 'inbox.list', {});
  assert.deepEqual(notifications.map((n) => [n.id, n.title]), [[id1, 'shipped']]);
  assert.deepEqual(await rpc(t, 'inbox.unread_count'), { count: 1 });

  // the key is per user: another user (and the same user in one call) gets its own
  const { ids } = await api('notify', { users: [other, user], title: 'shipped', dedupe_key: 'order-1-shipped' });
  assert.notEqual(ids[0], id1);
  assert.equal(ids[1], id1);

  // a different key is a different notification
  const { ids: [id3] } = await api('notify', { users: [user], title: 'delivered', dedupe_key: 'order-1-delivered' });
  assert.notEqual(id3, id1);
  assert.deepEqual(await api('notifications_unread_count', { user }), { count: 2 });
});

test('list pages newest first with next_cursor; the last page has next_cursor null; a bad cursor is 107', async () => {
  const user = newUser('page');
  const t = await tab(user);
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(await notifyOne(user, { title: `n${i}` }));
  const newestFirst = [...ids].reverse();

  const seen = [];
  let cursor = null;
  const pages = [];
  do {
    const page = await rpc(t, 'inbox.list', { limit: 2, cursor });
    pages.push(page.notifications.map((n) => n.id));
    seen.push(...page.notifications.map((n) => n.title));
    cursor = page.next_cursor;
    assert.ok(cursor === null || typeof cursor === 'string', safeJson(page));
    assert.ok(pages.length <= 3, `too many pages: ${safeJson(pages)}`);
  } while (cursor !== null);
  assert.deepEqual(pages, [newestFirst.slice(0, 2), newestFirst.slice(2, 4), newestFirst.slice(4)]);
  assert.deepEqual(seen, ['n4', 'n3', 'n2', 'n1', 'n0']);

  // one page holding everything ends with a null cursor; the default limit is 20
  const all = await rpc(t, 'inbox.list', {});
  assert.deepEqual(all.notifications.map((n) => n.id), newestFirst);
  assert.equal(all.next_cursor, null);

  // the same pages from the server API
  const p1 = await api('notifications_list', { user, limit: 3 });
  assert.deepEqual(p1.notifications.map((n) => n.id), newestFirst.slice(0, 3));
  assert.equal(typeof p1.next_cursor, 'string');
  const p2 = await api('notifications_list', { user, limit: 3, cursor: p1.next_cursor });
  assert.deepEqual(p2.notifications.map((n) => n.id), newestFirst.slice(3));
  assert.equal(p2.next_cursor, null);

  for (const bad of ['not-a-cursor', '!!!', 'eyJ4IjoxfQ']) {
    const err = await rpcError(t, 'inbox.list', { cursor: bad });
    assert.equal(err.code, 107, `rpc cursor ${bad}: ${safeJson(err)}`);
    assert.ok(err.message.length > 0, 'the reason is in message');
    const apiErr = await apiError('notifications_list', { user, cursor: bad });
    assert.equal(apiErr.code, 107, `API cursor ${bad}: ${safeJson(apiErr)}`);
  }
});

test('filters: level, category, unread_only and include_archived, alone and together', async () => {
  const user = newUser('filt');
  const t = await tab(user);
  const a = await notifyOne(user, { title: 'a', level: 'error', category: 'billing' });
  const b = await notifyOne(user, { title: 'b', level: 'warning', category: 'orders' });
  const c = await notifyOne(user, { title: 'c', level: 'error', category: 'orders' });
  const d = await notifyOne(user, { title: 'd', category: 'orders' });
  await rpc(t, 'inbox.mark_read', { ids: [c] });
  await rpc(t, 'inbox.archive', { ids: [d] });

  const ids = async (data) => (await rpc(t, 'inbox.list', data)).notifications.map((n) => n.id);
  assert.deepEqual(await ids({}), [c, b, a]);
  assert.deepEqual(await ids({ level: 'error' }), [c, a]);
  assert.deepEqual(await ids({ category: 'orders' }), [c, b]);
  assert.deepEqual(await ids({ level: 'error', category: 'orders' }), [c]);
  assert.deepEqual(await ids({ unread_only: true }), [b, a]);
  assert.deepEqual(await ids({ unread_only: true, level: 'error' }), [a]);
  assert.deepEqual(await ids({ include_archived: true }), [d, c, b, a]);
  assert.deepEqual(await ids({ include_archived: true, category: 'orders', level: 'info' }), [d]);
  assert.deepEqual(await ids({ level: 'success' }), []);
  assert.deepEqual(await ids({ level: null, category: null, cursor: null, unread_only: false }), [c, b, a]);

  const api1 = await api('notifications_list', { user, category: 'orders', include_archived: true });
  assert.deepEqual(api1.notifications.map((n) => n.id), [d, c, b]);

  const err = await rpcError(t, 'inbox.list', { level: 'fatal' });
  assert.equal(err.code, 107, safeJson(err));
  assert.equal((await apiError('notifications_list', { user, level: 'fatal' })).code, 107);
});

test('preferences: muted levels and categories are stored read and not pushed as notifications', async () => {
  const user = newUser('mute');
  const [t1, t2] = await Promise.all([tab(user), tab(user)]);
  assert.deepEqual(await rpc(t1, 'inbox.preferences', { get: true }), { muted_levels: [], muted_categories: [] });
  const set = await rpc(t1, 'inbox.preferences', { set: { muted_levels: ['info'], muted_categories: ['promo'] } });
  assert.deepEqual(set, { muted_levels: ['info'], muted_categories: ['promo'] });
  assert.deepEqual(await rpc(t2, 'inbox.preferences', { get: true }), set, 'the other tab reads the same');

  const toasts = [];
  t1.on('publication', (p) => { if (p.data?.type === 'notification') toasts.push(p.data.notification); });
  const noToast = expectNoEvent(t2, 'publication', 1000, (p) => p.data?.type === 'notification');
  const noBadge = expectNoEvent(t2, 'publication', 1000, (p) => p.data?.type === 'unread_count' && p.data.count > 0);
  const mutedLevel = await notifyOne(user, { title: 'fyi', level: 'info', category: 'orders' });
  const mutedCategory = await notifyOne(user, { title: 'sale', level: 'warning', category: 'promo' });
  await Promise.all([noToast, noBadge]);
  assert.deepEqual(await rpc(t1, 'inbox.unread_count'), { count: 0 });
  const { notifications } = await rpc(t1, 'inbox.list', {});
  assert.deepEqual(notifications.map((n) => [n.id, n.read]), [[mutedCategory, true], [mutedLevel, true]]);

  // an unmuted one is pushed and counted, in both tabs
  const toast = Promise.all([push(t1, user, 'notification'), push(t2, user, 'notification')]);
  const badge = Promise.all([countPush(t1, user, 1), countPush(t2, user, 1)]);
  const loud = await notifyOne(user, { title: 'broken', level: 'error', category: 'orders' });
  for (const p of await toast) assert.equal(p.notification.id, loud);
  await badge;
  // (pushes keep their order per connection: a muted toast would have come first)
  assert.deepEqual(toasts.map((n) => n.id), [loud], 'no muted toast in tab 1');

  // unmute: the next info notification is pushed again
  assert.deepEqual(await rpc(t2, 'inbox.preferences', { set: { muted_levels: [], muted_categories: [] } }),
    { muted_levels: [], muted_categories: [] });
  const again = push(t1, user, 'notification', (d) => d.notification.title === 'fyi 2');
  const info = await notifyOne(user, { title: 'fyi 2', level: 'info' });
  assert.equal((await again).notification.id, info);

  const err = await rpcError(t1, 'inbox.preferences', { set: { muted_levels: ['loud'], muted_categories: [] } });
  assert.equal(err.code, 107, safeJson(err));
});

test('archive and delete: archived ones leave the list and the count, deleted ones are gone; other users\' ids are ignored', async () => {
  const user = newUser('arch');
  const other = newUser('arch');
  const t = await tab(user);
  const [n1, n2, n3] = [await notifyOne(user), await notifyOne(user), await notifyOne(user)];
  const foreign = await notifyOne(other);

  assert.deepEqual(await rpc(t, 'inbox.archive', { ids: [n1, foreign] }), { updated: 1 });
  assert.deepEqual(await rpc(t, 'inbox.unread_count'), { count: 2 });
  assert.deepEqual((await rpc(t, 'inbox.list', {})).notifications.map((n) => n.id), [n3, n2]);
  const withArchived = (await rpc(t, 'inbox.list', { include_archived: true })).notifications;
  assert.deepEqual(withArchived.map((n) => [n.id, n.archived]), [[n3, false], [n2, false], [n1, true]]);

  assert.deepEqual(await rpc(t, 'inbox.delete', { ids: [n2, foreign, 999999999] }), { updated: 1 });
  assert.deepEqual((await rpc(t, 'inbox.list', { include_archived: true })).notifications.map((n) => n.id), [n3, n1]);
  assert.deepEqual(await rpc(t, 'inbox.unread_count'), { count: 1 });

  // the other user's notification is untouched
  const theirs = (await api('notifications_list', { user: other })).notifications;
  assert.deepEqual(theirs.map((n) => [n.id, n.read, n.archived]), [[foreign, false, false]]);

  // the backend's actions: archive, delete, unread
  assert.deepEqual(await api('notifications_update', { user, action: 'archive', ids: [n3] }), { updated: 1 });
  assert.deepEqual(await api('notifications_unread_count', { user }), { count: 0 });
  assert.deepEqual(await api('notifications_update', { user, action: 'delete', ids: [n3] }), { updated: 1 });
  const left = await api('notifications_list', { user, include_archived: true });
  assert.deepEqual(left.notifications.map((n) => n.id), [n1]);
  assert.equal(left.next_cursor, null);
});

test('inbox methods are the connection user\'s own: the API sees what the tab did', async () => {
  const user = newUser('own');
  const t = await tab(user);
  const id = await notifyOne(user, { title: 'x' });
  await rpc(t, 'inbox.mark_read', { ids: [id] });
  const [n] = (await api('notifications_list', { user })).notifications;
  assert.equal(n.read, true);
  assert.deepEqual(await api('notifications_list', { user, unread_only: true }), { notifications: [], next_cursor: null });

  // and the tab sees what the API did: action unread pushes the new count
  const counted = countPush(t, user, 1);
  assert.deepEqual(await api('notifications_update', { user, action: 'unread', ids: [id] }), { updated: 1 });
  await counted;
  assert.deepEqual((await rpc(t, 'inbox.list', { unread_only: true })).notifications.map((x) => x.id), [id]);
});

test('bad input: anonymous 103, unknown method 104, malformed fields and too-long text 107', async () => {
  const [anon] = await pool.connected(srv, {});
  for (const method of ['inbox.list', 'inbox.unread_count', 'inbox.mark_read', 'inbox.preferences']) {
    const err = await rpcError(anon, method, method === 'inbox.mark_read' ? { all: true } : {});
    assert.equal(err.code, 103, `${method} anonymous: ${safeJson(err)}`);
  }
  assert.equal(anon.state, 'connected');

  const user = newUser('bad');
  const t = await tab(user);
  assert.equal((await rpcError(t, 'inbox.nope', {})).code, 104);
  assert.equal((await rpcError(t, 'inbox.mark_read', { ids: 'all' })).code, 107);
  assert.equal((await rpcError(t, 'inbox.mark_read', {})).code, 107, 'neither ids nor all');
  assert.equal((await rpcError(t, 'inbox.archive', { ids: ['x'] })).code, 107);
  assert.equal((await rpcError(t, 'inbox.list', { limit: 'ten' })).code, 107);
  assert.equal((await rpcError(t, 'inbox.list', { limit: 0 })).code, 107, 'limit is 1–100');
  assert.equal((await rpcError(t, 'inbox.list', { limit: 101 })).code, 107, 'limit is 1–100');
  assert.equal((await apiError('notifications_list', { user, limit: 101 })).code, 107);
  assert.equal((await rpc(t, 'inbox.list', { limit: 100 })).next_cursor, null);
  assert.equal(t.state, 'connected');

  const title201 = 't'.repeat(201);
  let e = await apiError('notify', { users: [user], title: title201 });
  assert.equal(e.code, 107, safeJson(e));
  assert.ok(e.message.length > 0);
  assert.ok(await api('notify', { users: [user], title: 't'.repeat(200) }));
  e = await apiError('notify', { users: [user], title: 'x', message: 'm'.repeat(2001) });
  assert.equal(e.code, 107, safeJson(e));
  e = await apiError('notify', { users: [user] });
  assert.equal(e.code, 107, `missing title: ${safeJson(e)}`);
  e = await apiError('notify', { users: [], title: 'x' });
  assert.equal(e.code, 107, `no users: ${safeJson(e)}`);
  e = await apiError('notify', { users: Array.from({ length: 1001 }, (_, i) => `u${i}`), title: 'x' });
  assert.equal(e.code, 107, `1001 users: ${safeJson(e)}`);
  e = await apiError('notify', { users: [user], title: 'x', level: 'critical' });
  assert.equal(e.code, 107, `unknown level: ${safeJson(e)}`);
  e = await apiError('notify', { users: [user], title: 'x', category: 'c'.repeat(65) });
  assert.equal(e.code, 107, `category 65: ${safeJson(e)}`);
  e = await apiError('notify', { users: [user], title: 'x', data: { blob: 'b'.repeat(9000) } });
  assert.equal(e.code, 107, `data over 8 KiB: ${safeJson(e)}`);
  e = await apiError('notifications_update', { user, action: 'explode', all: true });
  assert.equal(e.code, 107, `unknown action: ${safeJson(e)}`);
  e = await apiError('notifications_update', { user, action: 'read' });
  assert.equal(e.code, 107, `neither ids nor all: ${safeJson(e)}`);
  // nothing was stored by the refused calls: one notification (the 200-character title)
  assert.deepEqual(await api('notifications_unread_count', { user }), { count: 1 });
});

test('with the inbox switched off, inbox.* and the API answer 108', async () => {
  const off = await startHerald({}, { env: { HERALD_INBOX_ENABLED: 'false' } });
  try {
    const [c] = await pool.connected(off, { token: connToken('42') });
    const err = await rpcError(c, 'inbox.unread_count', {});
    assert.equal(err.code, 108, safeJson(err));
    const r = await off.apiRaw('notify', { users: ['42'], title: 'x' });
    assert.equal(r.json?.error?.code, 108, r.text);
  } finally {
    pool.closeAll();
    await off.stop();
  }
});
