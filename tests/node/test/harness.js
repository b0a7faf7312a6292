// Test harness for the Herald Node.js acceptance suite.
//
// - re-exports server.js: startHerald (temp TOML config + storage dir, spawns
//   `herald serve`; { url, wsUrl, api, apiRaw, health, stop, kill9, restart }),
//   and for scale-out startRedis, startCluster({ nodes }), startProxy, redisSkip
// - mints HS256 JWTs with node:crypto (also bad-signature and alg:none tokens)
// - creates `centrifuge` clients over `ws` with a wire spy (every frame in/out)
// - waitFor(emitter, event, timeoutMs, predicate) / expectNoEvent(...) helpers
// - useHerald(config): the per-file server + client pool with its test hooks
//
// This module contains no tests; it is only imported by *.test.js files.

import { createHmac } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { before, after, afterEach } from 'node:test';

import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge';

import { startHerald, startCluster, SECRET } from './server.js';

export {
  NODE_DIR, HERALD_BIN, SECRET, API_KEY, renderConfig, startHerald,
  startRedis, startCluster, startProxy, redisSkip,
} from './server.js';

/**
 * One herald and one ClientPool for the calling *.test.js file. Registers the
 * file's hooks: start herald with `config` (see renderConfig) before the first
 * test, close every pool client after each test, stop herald after the last.
 * Returns { srv, pool }. `srv` forwards to the running server ({ url, wsUrl,
 * api, apiRaw, stop, kill9, restart, logs, ... }), so it may only be used inside tests.
 */
export function useHerald(config = {}) {
  const pool = new ClientPool();
  let current;
  before(async () => { current = await startHerald(config); });
  afterEach(() => pool.closeAll());
  after(async () => { pool.closeAll(); await current?.stop(); });
  const srv = new Proxy({}, {
    get(_, prop) {
      if (!current) throw new Error(`herald is not running (srv.${String(prop)} used outside a test)`);
      return current[prop];
    },
  });
  return { srv, pool };
}

/**
 * Runs `fn(cluster, pool)` against a fresh Redis and two nodes with `namespaces`;
 * always stops them and closes the clients. On failure the node and Redis log
 * tails, and the last frames of each client's wire log, are test diagnostics.
 */
export async function withCluster(t, namespaces, fn) {
  const cluster = await startCluster({ nodes: 2, namespaces });
  const pool = new ClientPool();
  try {
    await fn(cluster, pool);
  } catch (e) {
    t.diagnostic(cluster.logTails());
    for (const c of pool.clients) if (c.wire) t.diagnostic(`wire: ${safeJson(c.wire.log?.slice(-30))}`);
    throw e;
  } finally {
    pool.closeAll();
    await cluster.stop();
  }
}

// ---------------------------------------------------------------- JWT -----

const b64url = (buf) => Buffer.from(buf).toString('base64url');
export const nowSec = () => Math.floor(Date.now() / 1000);

/**
 * Mint a JWT.
 *  opts.secret   HMAC secret (default SECRET); use a wrong one for bad-signature tokens
 *  opts.alg      'HS256' (default), 'HS384', 'HS512' or 'none' (unsigned)
 */
export function makeToken(claims, { secret = SECRET, alg = 'HS256' } = {}) {
  const header = { alg, typ: 'JWT' };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  if (alg === 'none') return `${signingInput}.`;
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  if (!hash) throw new Error(`unsupported alg ${alg}`);
  const sig = createHmac(hash, secret).update(signingInput).digest();
  return `${signingInput}.${b64url(sig)}`;
}

/** Connection token for `user`, valid `ttl` seconds (default 1 h). Extra claims merged in. */
export function connToken(user, { ttl = 3600, ...extra } = {}, signOpts = {}) {
  const iat = nowSec();
  return makeToken({ sub: String(user), iat, exp: iat + ttl, ...extra }, signOpts);
}

// ------------------------------------------------------------- events -----

/**
 * Resolve with the first argument of the first `event` emitted by `emitter`
 * for which `predicate(arg)` is truthy; reject after `timeoutMs`.
 * Register it BEFORE triggering the action that causes the event.
 */
function waitForRaw(emitter, event, timeoutMs = 5000, predicate = () => true) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      const shown = seen.length ? ` (saw non-matching: ${safeJson(seen.slice(-5))})` : '';
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'${shown}`));
    }, timeoutMs);
    function handler(arg) {
      let ok;
      try { ok = predicate(arg); } catch (e) { ok = false; }
      if (!ok) { seen.push(arg); return; }
      clearTimeout(timer);
      emitter.off(event, handler);
      resolve(arg);
    }
    emitter.on(event, handler);
  });
}

/**
 * Resolve with the payload of `okEvent`; reject if `failEvent` comes first
 * (error message carries its payload) or after timeoutMs.
 */
function waitForEitherRaw(emitter, okEvent, failEvent, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${okEvent}'`));
    }, timeoutMs);
    function onOk(arg) { done(); resolve(arg); }
    function onFail(arg) { done(); reject(new Error(`got '${failEvent}' instead of '${okEvent}': ${safeJson(arg)}`)); }
    function done() {
      clearTimeout(timer);
      emitter.off(okEvent, onOk);
      emitter.off(failEvent, onFail);
    }
    emitter.on(okEvent, onOk);
    emitter.on(failEvent, onFail);
  });
}

/**
 * Resolve if `event` is NOT emitted within `ms`; reject (with the event payload) if it is.
 */
function expectNoEventRaw(emitter, event, ms, predicate = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { emitter.off(event, handler); resolve(); }, ms);
    function handler(arg) {
      if (!predicate(arg)) return;
      clearTimeout(timer);
      emitter.off(event, handler);
      reject(new Error(`unexpected '${event}' event: ${safeJson(arg)}`));
    }
    emitter.on(event, handler);
  });
}

// The exported helpers mark their promise as handled: a test that fails on one
// awaited promise must not also produce unhandled rejections from sibling waits
// that time out later. Awaiting the returned promise still throws.
function handled(p) { p.catch(() => {}); return p; }
export const waitFor = (...a) => handled(waitForRaw(...a));
export const waitForEither = (...a) => handled(waitForEitherRaw(...a));
export const expectNoEvent = (...a) => handled(expectNoEventRaw(...a));

/** Reject after ms if the promise has not settled. */
export function withTimeout(promise, ms, what = 'operation') {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/** Await a promise expected to reject; returns the rejection value. */
export async function rejection(promise, ms = 5000, what = 'call') {
  let value;
  try {
    value = await withTimeout(promise, ms, what);
  } catch (e) {
    return e;
  }
  throw new Error(`${what} was expected to fail but resolved with ${safeJson(value)}`);
}

export function safeJson(v) {
  try { return JSON.stringify(v); } catch { return String(v); }
}

// ------------------------------------------------------------- clients ----

/**
 * A `ws` WebSocket subclass that reports every frame on `wire`:
 *   wire.emit('out', obj) for each command the SDK sends (one per JSON line)
 *   wire.emit('in', obj)  for each reply/push the server sends
 *   wire.emit('close', {code, reason})
 * All are also appended to wire.log; wire.socket is the latest WebSocket.
 * While wire.offline is true every new WebSocket fails before it opens.
 */
function spyWebSocketClass(wire) {
  return class SpyWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      wire.socket = this;
      // simulated network outage: the connection attempt fails at once
      if (wire.offline) this.terminate();
      this.on('message', (data) => {
        for (const obj of parseLines(data.toString())) {
          wire.log.push(['in', obj]);
          wire.emit('in', obj);
        }
      });
      this.on('close', (code, reason) => {
        const ev = { code, reason: reason.toString() };
        wire.log.push(['close', ev]);
        wire.emit('close', ev);
      });
    }
    send(data, ...rest) {
      if (typeof data === 'string') {
        const lines = parseLines(data);
        wire.log.push(['out-frame', lines.length]);
        wire.emit('out-frame', lines);
        for (const obj of lines) {
          wire.log.push(['out', obj]);
          wire.emit('out', obj);
        }
      }
      return super.send(data, ...rest);
    }
  };
}

function parseLines(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try { out.push(JSON.parse(line)); } catch { out.push({ __unparsed: line }); }
  }
  return out;
}

/**
 * Track clients so a test file can close all of them in afterEach.
 */
export class ClientPool {
  constructor() { this.clients = new Set(); }

  /**
   * New (not yet connected) Centrifuge client for server `srv`.
   * `client.wire` is an EventEmitter with 'in'/'out'/'close' frame events.
   */
  create(srv, opts = {}) {
    const wire = new EventEmitter();
    wire.log = [];
    wire.setMaxListeners(100);
    const client = new Centrifuge(srv.wsUrl, {
      websocket: spyWebSocketClass(wire),
      minReconnectDelay: 100,
      maxReconnectDelay: 500,
      timeout: 5000,
      ...opts,
    });
    client.setMaxListeners?.(100);
    client.wire = wire;
    // keep unhandled 'error' events from being thrown by the emitter
    client.on('error', () => {});
    this.clients.add(client);
    return client;
  }

  /** Create, connect and wait for 'connected'. Returns [client, connectedCtx]. */
  async connected(srv, opts = {}, timeoutMs = 5000) {
    const client = this.create(srv, opts);
    const p = waitForEither(client, 'connected', 'disconnected', timeoutMs);
    client.connect();
    const ctx = await p;
    return [client, ctx];
  }

  closeAll() {
    for (const c of this.clients) {
      try { c.disconnect(); } catch { /* ignore */ }
    }
    this.clients.clear();
  }
}

/**
 * Subscribe `client` to `channel` (client-side subscription) and wait for 'subscribed'.
 * Rejects with the unsubscribe context if the subscription fails.
 */
export async function subscribed(client, channel, opts = {}, timeoutMs = 5000) {
  const sub = client.newSubscription(channel, opts);
  sub.on('error', () => {});
  const p = waitForEither(sub, 'subscribed', 'unsubscribed', timeoutMs);
  sub.subscribe();
  await p;
  return sub;
}

/**
 * Subscribe `client` to `channel` expecting the server to refuse it: waits for
 * the subscription's 'unsubscribed' event and returns [sub, unsubscribedCtx].
 */
export async function refusedSubscription(client, channel, opts = {}, timeoutMs = 5000) {
  const sub = client.newSubscription(channel, opts);
  sub.on('error', () => {});
  const unsub = waitFor(sub, 'unsubscribed', timeoutMs);
  sub.subscribe();
  return [sub, await unsub];
}

/**
 * Simulated network loss: cut the client's current WebSocket without a close
 * handshake and keep every reconnect attempt failing until goOnline(client).
 * `cut` may drop the connection another way (e.g. an API disconnect with
 * code 3011); by default the socket is terminated. Resolves once the SDK is
 * in 'connecting'.
 */
export async function goOffline(client, cut = () => client.wire.socket.terminate(), timeoutMs = 5000) {
  const connecting = waitFor(client, 'connecting', timeoutMs);
  client.wire.offline = true;
  await cut();
  return connecting;
}

/** End goOffline: the SDK's next reconnect attempt succeeds; waits for 'connected'. */
export async function goOnline(client, timeoutMs = 5000) {
  const connected = waitForEither(client, 'connected', 'disconnected', timeoutMs);
  client.wire.offline = false;
  return connected;
}

/** Remove a subscription from the client registry (after unsubscribe). */
export function dropSubscription(client, sub) {
  try { sub.unsubscribe(); } catch { /* ignore */ }
  try { client.removeSubscription(sub); } catch { /* ignore */ }
}
