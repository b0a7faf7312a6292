// Shared test helpers: a real herald (started with tests/node/test/server.js),
// connection tokens, connected `centrifuge` clients over `ws`, and waits with
// timeouts. Contains no tests.
import { createHmac } from 'node:crypto';
import { before, after, afterEach } from 'node:test';

import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge';

import { startHerald, SECRET } from '../../../tests/node/test/server.js';

export { API_KEY } from '../../../tests/node/test/server.js';

/** Connection token (HS256) for `user`, valid one hour. */
export function connToken(user) {
  const iat = Math.floor(Date.now() / 1000);
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: String(user), iat, exp: iat + 3600 })}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

/**
 * One herald for the calling test file, started before the first test and
 * stopped after the last; clients made with `connect` are closed after each test.
 */
export function useHerald(config = {}) {
  let current;
  const clients = new Set();
  before(async () => { current = await startHerald(config); });
  afterEach(() => {
    for (const c of clients) c.disconnect();
    clients.clear();
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await current?.stop();
  });

  /** POST /api/<method>; answers `result`, throws on an `error` answer. */
  async function api(method, body) {
    const res = await current.api(method, body);
    if (res.error) throw new Error(`API ${method} ${JSON.stringify(body)} -> ${JSON.stringify(res.error)}`);
    return res.result;
  }

  /** A Centrifuge client for `user` (null: anonymous), not yet connected. */
  function client(user) {
    const c = new Centrifuge(current.wsUrl, {
      websocket: WebSocket,
      minReconnectDelay: 100,
      maxReconnectDelay: 500,
      timeout: 5000,
      ...(user === null ? {} : { token: connToken(user) }),
    });
    c.on('error', () => {});
    clients.add(c);
    return c;
  }

  /** A connected Centrifuge client for `user`. */
  async function connect(user) {
    const c = client(user);
    const connected = once(c, 'connected');
    c.connect();
    await connected;
    return c;
  }

  return { api, client, connect, srv: () => current };
}

/**
 * The next `event` of `emitter` (a centrifuge client or subscription, or one of
 * the helpers) for which `predicate` holds; rejects after `timeoutMs`.
 * Register it before causing the event.
 */
export function once(emitter, event, { timeoutMs = 5000, predicate = () => true } = {}) {
  const p = new Promise((resolve, reject) => {
    let off;
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    const handler = (value) => {
      let ok = false;
      try { ok = predicate(value); } catch { ok = false; }
      if (!ok) return;
      clearTimeout(timer);
      off();
      resolve(value);
    };
    const ret = emitter.on(event, handler);
    off = typeof ret === 'function' ? ret : () => emitter.off(event, handler);
  });
  p.catch(() => {});
  return p;
}

/** Resolves if `event` does not come within `ms`; rejects with it if it does. */
export function none(emitter, event, ms, predicate = () => true) {
  return new Promise((resolve, reject) => {
    let off;
    const timer = setTimeout(() => { off(); resolve(); }, ms);
    const handler = (value) => {
      if (!predicate(value)) return;
      clearTimeout(timer);
      off();
      reject(new Error(`unexpected '${event}': ${JSON.stringify(value)}`));
    };
    const ret = emitter.on(event, handler);
    off = typeof ret === 'function' ? ret : () => emitter.off(event, handler);
  });
}

/** Awaits a promise expected to reject; answers the rejection. */
export async function rejection(promise) {
  try {
    const value = await promise;
    throw Object.assign(new Error(`expected a rejection, got ${JSON.stringify(value)}`), { unexpected: true });
  } catch (e) {
    if (e && e.unexpected) throw e;
    return e;
  }
}

let seq = 0;
/** A name unique within this run (users, conversations). */
export const unique = (prefix) => `${prefix}-${process.pid}-${++seq}`;
