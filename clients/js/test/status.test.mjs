// Status helper against a real herald with a `status` namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Status } from '../dist/index.js';
import { useHerald, once, none, unique } from './helpers.mjs';

const { connect } = useHerald({ namespaces: [{ name: 'status', allow_subscribe_for_client: true }] });

test('watching a user reports their first tab opening and last tab closing', async () => {
  const target = unique('t');
  const watcher = await connect(unique('w'));
  const status = new Status(watcher);
  const w = status.watch(target);
  assert.equal(status.watch(target), w, 'watching twice answers the same watch');
  await w.ready();

  const online = once(status, 'change', { predicate: (s) => s.online });
  const tab1 = await connect(target);
  const on = await online;
  assert.equal(on.user, target);
  assert.equal(on.online, true);
  assert.equal(typeof on.last_seen, 'number');
  assert.deepEqual(w.last, on);

  const tab2 = await connect(target);
  const offline = once(w, 'change', { predicate: (s) => !s.online });
  tab1.disconnect();
  await none(w, 'change', 500); // one tab closing of two changes nothing
  tab2.disconnect();
  const off = await offline;
  assert.equal(off.user, target);
  assert.equal(off.online, false);
  assert.equal(typeof off.last_seen, 'number');

  w.unwatch();
  assert.deepEqual(status.watched, []);
});
