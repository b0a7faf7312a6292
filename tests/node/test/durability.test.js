// Durable history against the real binary: kill -9 (SIGKILL) the server,
// restart it on the same port and storage dir; acknowledged publications,
// offsets and the epoch survive, and SDK clients recover by themselves.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { useHerald, connToken, goOffline, goOnline, safeJson } from './harness.js';
import {
  historyNs, publish, publishSeq, publishSentinel, oneEpoch, pairs, trackedSubscription,
} from './streams.js';

const { srv, pool } = useHerald({
  storage: { durable: true, sync: 'normal' },
  namespaces: [historyNs('dur', { history_size: 1000 })],
});

/** SIGKILL the server (asserting it died of it) and start it again on the same port and storage. */
async function killAndRestart() {
  const exit = await srv.kill9();
  assert.equal(exit.signal, 'SIGKILL', `herald exit: ${safeJson(exit)}`);
  await srv.restart();
}

/** The whole retained stream of `channel` through the API. */
async function fullHistory(channel) {
  const r = await srv.api('history', { channel, limit: -1 });
  assert.ok(r.result, safeJson(r));
  return r.result;
}

test('kill -9: acked publications, offsets and epoch survive; SDK clients recover with no gap and no duplicate', async () => {
  const ch = 'dur:stream';
  const N = 20;
  // `steady` stays online and loses its connection only to the kill; `flaky`
  // is offline for the second half of the publications and the kill.
  const [steady] = await pool.connected(srv, { token: connToken('d1') });
  const [flaky] = await pool.connected(srv, { token: connToken('d2') });
  const s = await trackedSubscription(steady, ch);
  const f = await trackedSubscription(flaky, ch);

  const firstHalf = await publishSeq(srv, ch, N / 2);
  await f.log.waitPubs(N / 2);
  await goOffline(flaky);
  const sent = [...firstHalf, ...(await publishSeq(srv, ch, N / 2, N / 2 + 1))];
  assert.deepEqual(sent.map((p) => p.offset), Array.from({ length: N }, (_, i) => i + 1), 'API offsets');
  const epoch = oneEpoch(sent);

  await killAndRestart();
  await goOnline(flaky, 10000);
  const again = [await s.log.waitSubscribed(2, 10000), await f.log.waitSubscribed(2, 10000)];
  for (const ctx of again) {
    assert.equal(ctx.wasRecovering, true, safeJson(ctx));
    assert.equal(ctx.recovered, true, safeJson(ctx));
    assert.equal(ctx.streamPosition?.epoch, epoch, `same epoch after restart: ${safeJson(ctx)}`);
  }

  const next = await publishSentinel(srv, [s.log, f.log], ch, N + 1, 10000);
  assert.equal(next.offset, N + 1, 'a new publish continues the stream');
  assert.equal(next.epoch, epoch);
  const expected = pairs([...sent, next]);
  assert.deepEqual(pairs(s.log.pubs), expected, 'steady client: every publication once, in order');
  assert.deepEqual(pairs(f.log.pubs), expected, 'flaky client: every publication once, in order');

  const hist = await fullHistory(ch);
  assert.deepEqual(pairs(hist.publications), expected, safeJson(hist));
  assert.equal(hist.epoch, epoch);
  assert.equal(hist.offset, N + 1);
});

test('kill -9 under a stream of concurrent publishes: every acked publication survives, no holes', async () => {
  const ch = 'dur:burst';
  const workers = 8;
  const killAfter = 100;
  const acked = [];
  let attempted = 0;
  let killed;
  // each worker publishes until a publish fails, which the kill makes happen
  async function worker() {
    for (;;) {
      const n = attempted++;
      acked.push({ n, ...(await publish(srv, ch, { n })) });
      if (acked.length === killAfter) killed = srv.kill9();
    }
  }
  const results = await Promise.allSettled(Array.from({ length: workers }, worker));
  assert.ok(killed, `${killAfter} publishes acked before the workers stopped: ${safeJson(results.map((r) => String(r.reason)))}`);
  assert.equal((await killed).signal, 'SIGKILL');
  const epoch = oneEpoch(acked);
  await srv.restart();

  const hist = await fullHistory(ch);
  assert.equal(hist.epoch, epoch, 'same epoch after restart');
  const offsets = hist.publications.map((p) => p.offset);
  assert.deepEqual(offsets, Array.from({ length: hist.offset }, (_, i) => i + 1),
    `history is 1..top with no holes: ${safeJson(offsets)}`);
  const stored = new Map(hist.publications.map((p) => [p.offset, p.data.n]));
  for (const a of acked) {
    assert.equal(stored.get(a.offset), a.n, `acked ${safeJson(a)} is in history: ${safeJson(hist.publications)}`);
  }
  assert.ok(hist.publications.every((p) => p.data.n < attempted), 'only attempted publications are stored');
  const after = await publish(srv, ch, { n: attempted });
  assert.deepEqual(after, { offset: hist.offset + 1, epoch }, 'the stream continues after the last stored offset');
});

test('history_remove starts the stream again under a new epoch; a recovering client is told it could not recover', async () => {
  const ch = 'dur:removed';
  const [c] = await pool.connected(srv, { token: connToken('d3') });
  const { log } = await trackedSubscription(c, ch);
  const old = await publishSeq(srv, ch, 3);
  await log.waitPubs(3);
  await goOffline(c);
  assert.deepEqual(await srv.api('history_remove', { channel: ch }), { result: {} });
  const fresh = await publish(srv, ch, { n: 4 });
  assert.equal(fresh.offset, 1, 'offsets restart');
  assert.notEqual(fresh.epoch, oneEpoch(old), 'a new epoch');
  // the restart of the server keeps the new epoch
  await killAndRestart();
  await goOnline(c, 10000);
  const again = await log.waitSubscribed(2, 10000);
  assert.equal(again.wasRecovering, true, safeJson(again));
  assert.equal(again.recovered, false, safeJson(again));
  assert.deepEqual(again.streamPosition, { offset: 1, epoch: fresh.epoch }, safeJson(again));
  const next = await publishSentinel(srv, [log], ch, 5);
  assert.deepEqual(next.offset, 2);
  assert.deepEqual(pairs(log.pubs), pairs([...old, next]), 'nothing replayed from the other epoch');
});
