// Inbox helper against a real herald: pushes, unread count, refetch on reconnect,
// the rpc methods and typed errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Inbox, HeraldError } from '../dist/index.js';
import { useHerald, once, unique, rejection } from './helpers.mjs';

const { api, connect } = useHerald();

/** A connected client of a new user and its Inbox, after the first unread_count. */
async function inboxOf(user) {
  const client = await connect(user);
  const inbox = new Inbox(client, user);
  // connected before the Inbox existed: it fetches the count at once
  const first = await once(inbox, 'unread_count');
  return { client, inbox, first };
}

test('a notify reaches the helper as a notification and an unread_count', async () => {
  const user = unique('ann');
  const { inbox, first } = await inboxOf(user);
  assert.equal(first, 0);

  const got = once(inbox, 'notification');
  const count = once(inbox, 'unread_count', { predicate: (n) => n === 1 });
  const { ids } = await api('notify', {
    users: [user], title: 'Order shipped', message: 'on its way', level: 'success',
    category: 'orders', data: { order: 1 },
  });
  const n = await got;
  assert.equal(n.id, ids[0]);
  assert.equal(n.user, user);
  assert.equal(n.title, 'Order shipped');
  assert.equal(n.message, 'on its way');
  assert.equal(n.level, 'success');
  assert.equal(n.category, 'orders');
  assert.deepEqual(n.data, { order: 1 });
  assert.equal(n.read, false);
  assert.equal(typeof n.created_at, 'number');
  assert.equal(await count, 1);
  assert.equal(inbox.unread, 1);
  assert.equal(await inbox.unreadCount(), 1);

  const page = await inbox.list({ limit: 10 });
  assert.deepEqual(page.notifications.map((x) => x.id), [ids[0]]);
  assert.equal(page.next_cursor, null);

  const zero = once(inbox, 'unread_count', { predicate: (c) => c === 0 });
  assert.equal(await inbox.markRead([ids[0]]), 1);
  assert.equal(await zero, 0);
  const one = once(inbox, 'unread_count', { predicate: (c) => c === 1 });
  assert.equal(await inbox.markUnread('all'), 1);
  assert.equal(await one, 1);
  assert.equal(await inbox.markRead('all'), 1);
  assert.equal(await inbox.unreadCount(), 0);
});

test('after a reconnect the helper refetches the unread count it missed', async () => {
  const user = unique('bob');
  const { client, inbox } = await inboxOf(user);
  const disconnected = once(client, 'disconnected');
  client.disconnect();
  await disconnected;
  await api('notify', { users: [user], title: 'while away' });
  await api('notify', { users: [user], title: 'while away 2' });

  const refetched = once(inbox, 'unread_count');
  client.connect();
  assert.equal(await refetched, 2);
  assert.equal(inbox.unread, 2);
});

test('archive, delete and preferences through the helper', async () => {
  const user = unique('cat');
  const { inbox } = await inboxOf(user);
  const { ids: [a] } = await api('notify', { users: [user], title: 'a' });
  const { ids: [b] } = await api('notify', { users: [user], title: 'b', category: 'promo' });

  assert.equal(await inbox.archive([a]), 1);
  assert.deepEqual((await inbox.list()).notifications.map((x) => x.id), [b]);
  const withArchived = await inbox.list({ include_archived: true });
  assert.deepEqual(withArchived.notifications.map((x) => x.id), [b, a]);
  assert.equal(withArchived.notifications[1].archived, true);
  assert.equal(await inbox.delete([b]), 1);
  assert.deepEqual((await inbox.list({ include_archived: true })).notifications.map((x) => x.id), [a]);

  assert.deepEqual(await inbox.preferences(), { muted_levels: [], muted_categories: [] });
  const set = await inbox.setPreferences({ muted_categories: ['promo'] });
  assert.deepEqual(set, { muted_levels: [], muted_categories: ['promo'] });
  const both = await inbox.setPreferences({ muted_levels: ['info'] });
  assert.deepEqual(both, { muted_levels: ['info'], muted_categories: ['promo'] });
  assert.deepEqual(await inbox.preferences(), both);
});

test('a server error surfaces as a HeraldError with its code', async () => {
  const user = unique('dan');
  const { inbox } = await inboxOf(user);
  const err = await rejection(inbox.list({ cursor: 'not-a-cursor' }));
  assert.ok(err instanceof HeraldError, String(err));
  assert.equal(err.code, 107);
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0);
  assert.equal(err.retryable, false);
});
