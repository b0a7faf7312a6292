// Helpers for the history / recovery / durability tests: namespace configs with
// history, API publishing that checks the answers, and a log of what a
// subscription receives. Contains no tests; imported by *.test.js files.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';

import { waitFor, waitForEither, safeJson } from './harness.js';

/** Storage modes the history tests run under (the server default is durable). */
export const STORAGE_MODES = [
  { name: 'in-memory history', storage: { durable: false } },
  { name: 'durable (SQLite) history', storage: { durable: true } },
];

/** A namespace with history and forced recovery; `extra` overrides/extends it. */
export function historyNs(name, extra = {}) {
  return {
    name,
    allow_subscribe_for_client: true,
    allow_history_for_subscriber: true,
    history_size: 100,
    history_ttl: '10m',
    force_recovery: true,
    ...extra,
  };
}

/** API publish that must answer with an offset and an epoch. Returns { offset, epoch }. */
export async function publish(srv, channel, data, extra = {}) {
  const r = await srv.api('publish', { channel, data, ...extra });
  const res = r.result;
  assert.ok(res && Number.isInteger(res.offset) && res.offset > 0, `publish answer has an offset: ${safeJson(r)}`);
  assert.ok(typeof res.epoch === 'string' && res.epoch.length > 0, `publish answer has an epoch: ${safeJson(r)}`);
  return { offset: res.offset, epoch: res.epoch };
}

/**
 * Publish data {n: from}, {n: from+1}, ... one after another (each awaited).
 * Returns [{ n, offset, epoch }] in publish order.
 */
export async function publishSeq(srv, channel, count, from = 1) {
  const out = [];
  for (let n = from; n < from + count; n++) {
    out.push({ n, ...(await publish(srv, channel, { n })) });
  }
  return out;
}

/** Assert that every answer has the same epoch; returns it. */
export function oneEpoch(answers) {
  const epochs = new Set(answers.map((a) => a.epoch));
  assert.equal(epochs.size, 1, `one epoch across the answers: ${safeJson(answers)}`);
  return answers[0].epoch;
}

/** [offset, n] pairs of publications (SDK contexts or API answers) for deepEqual. */
export const pairs = (list) => list.map((p) => [p.offset, p.n ?? p.data?.n]);

/**
 * Records, in order, the 'subscribed' contexts and publications of a
 * subscription; emits 'change' after each so tests can wait on counts.
 */
export class StreamLog extends EventEmitter {
  constructor(sub) {
    super();
    this.sub = sub;
    this.pubs = [];
    this.subscribes = [];
    this.events = [];
    sub.on('publication', (ctx) => this.#record('publication', ctx, this.pubs));
    sub.on('subscribed', (ctx) => this.#record('subscribed', ctx, this.subscribes));
  }

  #record(kind, ctx, list) {
    list.push(ctx);
    this.events.push([kind, ctx]);
    this.emit('change');
  }

  /** Wait until `cond()` holds (checked now and after every event). */
  async waitUntil(cond, what, timeoutMs = 5000) {
    if (cond()) return;
    try {
      await waitFor(this, 'change', timeoutMs, cond);
    } catch (e) {
      throw new Error(`${what}; received: ${safeJson(this.events)} (${e.message})`);
    }
  }

  waitPubs(n, timeoutMs = 5000) {
    return this.waitUntil(() => this.pubs.length >= n, `wanted ${n} publications`, timeoutMs);
  }

  /** Wait for the n-th 'subscribed' (1-based) and return its context. */
  async waitSubscribed(n, timeoutMs = 5000) {
    await this.waitUntil(() => this.subscribes.length >= n, `wanted 'subscribed' #${n}`, timeoutMs);
    return this.subscribes[n - 1];
  }
}

/**
 * New subscription with a StreamLog attached before subscribing (so
 * publications delivered with the subscribe reply are recorded), subscribed.
 * Returns { sub, log, ctx } (ctx: the 'subscribed' context).
 */
export async function trackedSubscription(client, channel, opts = {}, timeoutMs = 5000) {
  const sub = client.newSubscription(channel, opts);
  sub.on('error', () => {});
  const log = new StreamLog(sub);
  const done = waitForEither(sub, 'subscribed', 'unsubscribed', timeoutMs);
  sub.subscribe();
  const ctx = await done;
  return { sub, log, ctx };
}

/**
 * Publish a sentinel {n} and wait until every log in `logs` has received it.
 * Everything published before it on the channel has been delivered by then
 * (one ordered connection), so a log can be compared exactly, duplicates
 * included. Returns the sentinel's { n, offset, epoch }.
 */
export async function publishSentinel(srv, logs, channel, n, timeoutMs = 5000) {
  const ans = await publish(srv, channel, { n });
  for (const log of logs) {
    const got = () => log.pubs.some((p) => p.data?.n === n && p.offset === ans.offset);
    await log.waitUntil(got, `sentinel ${safeJson(ans)} not received`, timeoutMs);
  }
  return { n, ...ans };
}
