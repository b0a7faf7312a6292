// Scale-out with the SDK: two herald nodes on one real redis-server (started by
// the test on a free port, append-only file fsynced on every write). A
// publication through one node reaches subscribers on the other; a client
// behind a "load balancer" whose node dies recovers on the other node; a
// Redis restart in the middle of a publish stream loses nothing acknowledged.
// Skipped when redis-server is missing, unless CI=true (then it fails).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';

import {
  connToken, startProxy, redisSkip, waitFor, safeJson, withCluster,
} from './harness.js';
import {
  historyNs, publishSeq, publishSentinel, oneEpoch, pairs, trackedSubscription,
} from './streams.js';

const skip = redisSkip();
const NAMESPACES = [historyNs('history', { history_size: 1000 })];

/** Poll `node`'s /health until it answers `status`; returns the last answer. */
async function healthBecomes(node, status, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try { last = await node.health(); } catch (e) { last = { error: String(e) }; }
    if (last.status === status) return last;
    if (Date.now() > deadline) throw new Error(`${node.url}/health not ${status} within ${timeoutMs} ms: ${safeJson(last)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Full retained history of `channel` as answered by `node`. */
async function fullHistory(node, channel) {
  const r = await node.api('history', { channel, limit: -1 });
  assert.ok(r.result, safeJson(r));
  return r.result;
}

/** Offsets must strictly increase (in order, no duplicate). */
function assertIncreasing(offsets, what) {
  for (let i = 1; i < offsets.length; i++) {
    assert.ok(offsets[i] > offsets[i - 1], `${what}: offsets not strictly increasing at ${i}: ${safeJson(offsets)}`);
  }
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test('a publication through node B reaches a subscriber on node A: offsets increase, epoch is the one B reports', { skip }, (t) => withCluster(t, NAMESPACES, async ({ nodes: [a, b] }, pool) => {
  const ch = 'history:cross';
  const [client] = await pool.connected(a, { token: connToken('x1') });
  const { log, ctx } = await trackedSubscription(client, ch);
  assert.equal(ctx.recoverable, true, safeJson(ctx));

  const sent = await publishSeq(b, ch, 5);
  const sentinel = await publishSentinel(b, [log], ch, 6);
  const all = [...sent, sentinel];
  assert.deepEqual(all.map((p) => p.offset), range(1, 6), 'offsets assigned through B');
  assert.deepEqual(pairs(log.pubs), pairs(all), 'A delivered each publication once, in order');
  assertIncreasing(log.pubs.map((p) => p.offset), 'received on A');

  const histB = await fullHistory(b, ch);
  assert.equal(oneEpoch(all), histB.epoch, 'publish answers and B history share the epoch');
  assert.equal(ctx.streamPosition?.epoch, histB.epoch, `A's subscribe position has B's epoch: ${safeJson(ctx)}`);
  assert.equal(histB.offset, 6);
  assert.deepEqual(pairs(histB.publications), pairs(all));
  const histA = await fullHistory(a, ch);
  assert.deepEqual([histA.epoch, histA.offset, pairs(histA.publications)], [histB.epoch, 6, pairs(all)],
    'A answers history like B');
}));

test('behind a load balancer: node A is killed, the SDK reconnects to node B and recovers every publication once, in order', { skip }, (t) => withCluster(t, NAMESPACES, async ({ nodes: [a, b] }, pool) => {
  const ch = 'history:lb';
  const N = 30;
  const proxy = await startProxy(a);
  try {
    const [client] = await pool.connected(proxy, { token: connToken('x2') });
    const { log, ctx: first } = await trackedSubscription(client, ch);
    assert.equal(first.recoverable, true, safeJson(first));
    const before = await publishSeq(b, ch, 3);
    await log.waitPubs(3);

    proxy.switchTo(b);
    proxy.hold(); // the first half is published while no reconnect can get through
    const connecting = waitFor(client, 'connecting', 5000);
    const exit = await a.kill9();
    assert.equal(exit.signal, 'SIGKILL', safeJson(exit));
    await connecting;
    const held = await publishSeq(b, ch, N / 2, 4);
    proxy.release(); // the second half races the SDK's reconnect to B
    const raced = await publishSeq(b, ch, N / 2, 4 + N / 2);
    const again = await log.waitSubscribed(2, 10000);
    const sentinel = await publishSentinel(b, [log], ch, N + 4, 10000);
    const during = [...held, ...raced];

    assert.equal(again.wasRecovering, true, safeJson(again));
    assert.equal(again.recovered, true, safeJson(again));
    const all = [...before, ...during, sentinel];
    const epoch = oneEpoch(all);
    assert.equal(again.streamPosition?.epoch, epoch, safeJson(again));
    assert.deepEqual(all.map((p) => p.offset), range(1, N + 4), 'API offsets');
    assert.deepEqual(pairs(log.pubs), pairs(all), 'every publication exactly once, in order');
    assert.equal(log.subscribes.length, 2, `one resubscribe: ${safeJson(log.subscribes)}`);
    const replies = client.wire.log.filter(([dir, f]) => dir === 'in' && f.subscribe).map(([, f]) => f.subscribe);
    const recovered = (replies.at(-1)?.publications || []).map((p) => p.offset);
    for (const p of held) assert.ok(recovered.includes(p.offset), `held ${p.offset} recovered on B: ${safeJson(recovered)}`);
    t.diagnostic(`recovered in the subscribe reply on B: ${safeJson(recovered)}`);
  } finally {
    await proxy.close();
  }
}));

test('Redis restarts in the middle of a publish stream: only temporary errors, every acknowledged publication reaches node A once, in order', { skip }, (t) => withCluster(t, NAMESPACES, async ({ redis, nodes: [a, b] }, pool) => {
  const ch = 'history:chaos';
  const [client] = await pool.connected(a, { token: connToken('x3') });
  const { log } = await trackedSubscription(client, ch);

  // backend loop: publish {n} through B one after another until told to stop
  const acked = [];
  const errors = [];
  const progress = new EventEmitter();
  let n = 0;
  let running = true;
  async function publisher() {
    while (running) {
      const k = ++n;
      let r;
      try {
        r = await b.apiRaw('publish', { channel: ch, data: { n: k } });
      } catch (e) {
        r = { thrown: String(e) };
      }
      const res = r.json?.result;
      if (r.status === 200 && res && Number.isInteger(res.offset)) {
        acked.push({ n: k, offset: res.offset, epoch: res.epoch });
      } else {
        errors.push({ n: k, status: r.status, body: r.json ?? r.text ?? r.thrown });
        await new Promise((resolve) => setTimeout(resolve, 10)); // pace retries while Redis is down
      }
      progress.emit('tick');
    }
  }
  const acks = (k, timeoutMs, what) => (acked.length >= k ? Promise.resolve()
    : waitFor(progress, 'tick', timeoutMs, () => acked.length >= k).catch((e) => {
      throw new Error(`${what}: ${acked.length} acked, errors ${safeJson(errors.slice(-3))} (${e.message})`);
    }));
  const loop = publisher();
  try {
    await acks(20, 10000, 'acks before the kill');
    const killed = await redis.kill9();
    assert.equal(killed.signal, 'SIGKILL', safeJson(killed));
    await healthBecomes(a, 503, 10000);
    await redis.restart();
    await healthBecomes(a, 200, 15000);
    await acks(acked.length + 20, 10000, 'acks after Redis came back');
  } finally {
    running = false;
    await loop;
  }
  const sentinel = await publishSentinel(b, [log], ch, n + 1, 10000);
  const all = [...acked, sentinel];

  assert.ok(errors.length > 0, 'publishes failed while Redis was down');
  for (const e of errors) {
    assert.ok(e.status === 200 && e.body?.error?.code === 100 && e.body.error.temporary === true,
      `every error is code 100 with temporary true: ${safeJson(e)}`);
  }
  oneEpoch(all); // the append-only file kept the stream: same epoch after the restart
  assertIncreasing(all.map((p) => p.offset), 'acknowledged offsets');

  const got = log.pubs.map((p) => p.offset);
  assertIncreasing(got, 'received on A');
  const received = new Map(log.pubs.map((p) => [p.offset, p.data?.n]));
  const missing = all.filter((p) => received.get(p.offset) !== p.n);
  assert.deepEqual(missing, [], `every acknowledged publication received with its data (received ${safeJson(got)})`);
  assert.deepEqual(got, range(1, sentinel.offset), 'no gap in what A delivered');
  const hist = await fullHistory(b, ch);
  assert.deepEqual(pairs(log.pubs), pairs(hist.publications), 'A delivered exactly the stream Redis holds');
  for (const ctx of log.subscribes.slice(1)) {
    assert.equal(ctx.recovered, true, `a resubscribe after the restart recovers: ${safeJson(ctx)}`);
  }
  t.diagnostic(`acked ${acked.length}, errors ${errors.length}, subscribes ${log.subscribes.length}`);
}));
