// The SDK's HTTP fallback transports with bidirectional emulation: an
// http_stream (POST /connection/http_stream) or SSE (GET /connection/sse)
// stream carries replies and pushes, every later command goes as
// POST /emulation {session, node, data}. Covers the basic flow over both,
// fallback from a failing WebSocket, recovery after a reconnect, disconnect
// codes, /emulation answers to bad input, forwarding of commands between
// nodes through Redis, and the [transports] / allowed_origins config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';

import WebSocket from 'ws';
import { EventSource } from 'eventsource';
import { Centrifuge } from 'centrifuge';

import {
  useHerald, startHerald, redisSkip, ClientPool, connToken, subscribed,
  waitFor, waitForEither, expectNoEvent, safeJson, withCluster,
} from './harness.js';
import { historyNs, publishSeq, publishSentinel, oneEpoch, pairs, trackedSubscription } from './streams.js';

const TALK = {
  name: 'talk',
  allow_subscribe_for_client: true,
  allow_publish_for_subscriber: true,
  presence: true,
  allow_presence_for_subscriber: true,
};
const NAMESPACES = [TALK, historyNs('rec')];
const EMULATED = ['http_stream', 'sse'];

const { srv, pool } = useHerald({ storage: { durable: false }, namespaces: NAMESPACES });

// ------------------------------------------------------------- wire spy ----

function parseLines(text) {
  const out = [];
  for (const line of String(text).split('\n')) {
    if (!line.trim()) continue;
    try { out.push(JSON.parse(line)); } catch { out.push({ __unparsed: line }); }
  }
  return out;
}

/** Read a byte stream to its end, calling onLine(obj) for each JSON line. */
async function readLines(body, onLine) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      for (const obj of parseLines(line)) onLine(obj);
    }
  }
}

const isEmulation = (url) => new URL(String(url)).pathname === '/emulation';

/**
 * A fetch for the SDK reporting on `wire` (an EventEmitter like client.wire of
 * the WebSocket clients): 'out' per command sent (stream body, /emulation
 * data), 'in' per JSON line of an http_stream response (parseStream), and
 * 'emulation' {url, node, status} per /emulation answer. While wire.offline
 * is true a stream request fails like a network error.
 */
function wireFetch(wire, parseStream) {
  const record = (kind, obj) => { wire.log.push([kind, obj]); wire.emit(kind, obj); };
  return async (url, opts = {}) => {
    const emulation = isEmulation(url);
    let req;
    if (emulation) {
      req = JSON.parse(opts.body);
      for (const c of parseLines(req.data)) record('out', c);
    } else if (typeof opts.body === 'string') {
      for (const c of parseLines(opts.body)) record('out', c);
    }
    if (wire.offline && !emulation) throw new TypeError('fetch failed (simulated network loss)');
    if (emulation) {
      wire.pending += 1;
      try {
        const res = await fetch(url, opts);
        record('emulation', { url: String(url), node: req.node, status: res.status });
        return res;
      } catch (e) {
        record('emulation', { url: String(url), node: req.node, error: String(e) });
        throw e;
      } finally {
        wire.pending -= 1;
        wire.emit('settled');
      }
    }
    const res = await fetch(url, opts);
    if (!parseStream || !res.ok || !res.body) return res;
    // Lines are logged as the SDK reads them, before it handles them.
    const decoder = new TextDecoder();
    let buf = '';
    const spy = new TransformStream({
      transform(chunk, ctrl) {
        buf += decoder.decode(chunk, { stream: true });
        const end = buf.lastIndexOf('\n');
        if (end >= 0) {
          for (const obj of parseLines(buf.slice(0, end))) record('in', obj);
          buf = buf.slice(end + 1);
        }
        ctrl.enqueue(chunk);
      },
    });
    return new Response(res.body.pipeThrough(spy), { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/** EventSource class for the SDK whose stream goes through wireFetch and whose events are logged 'in'. */
function spyEventSource(wire) {
  return class SpyEventSource extends EventSource {
    constructor(url, init = {}) {
      super(url, { ...init, fetch: wireFetch(wire, false) });
      this.addEventListener('message', (e) => {
        for (const obj of parseLines(e.data)) { wire.log.push(['in', obj]); wire.emit('in', obj); }
      });
    }
  };
}

// -------------------------------------------------------------- clients ----

const endpoint = (node, transport) => ({ transport, endpoint: `${node.url}/connection/${transport}` });

/**
 * New emulation client on `node` (not connected), tracked by `clients` (a
 * ClientPool) so it is closed after the test. `transports`: a transport name
 * or the SDK's array of {transport, endpoint}. `emulation` is the node whose
 * /emulation endpoint the SDK posts commands to (default: `node`).
 */
function emuClient(clients, node, transports, { emulation = node, ...opts } = {}) {
  const wire = new EventEmitter();
  wire.log = [];
  wire.pending = 0;
  wire.setMaxListeners(100);
  const list = typeof transports === 'string' ? [endpoint(node, transports)] : transports;
  const client = new Centrifuge(list, {
    emulationEndpoint: `${emulation.url}/emulation`,
    fetch: wireFetch(wire, true),
    eventsource: spyEventSource(wire),
    websocket: WebSocket,
    minReconnectDelay: 100,
    maxReconnectDelay: 500,
    timeout: 5000,
    ...opts,
  });
  client.wire = wire;
  client.errors = [];
  client.on('error', (e) => client.errors.push(e));
  clients.clients.add(client);
  return client;
}

/** emuClient, connected: resolves [client, connectedCtx]. */
async function emuConnected(clients, node, transports, opts = {}, timeoutMs = 8000) {
  const client = emuClient(clients, node, transports, opts);
  const connected = waitForEither(client, 'connected', 'disconnected', timeoutMs);
  client.connect();
  return [client, await connected];
}

/** The /emulation answers the client got so far: [{url, node, status}]. */
const emulationAnswers = (client) => client.wire.log.filter(([k]) => k === 'emulation').map(([, e]) => e);

/**
 * Once every /emulation request sent so far is answered (a reply may come over
 * the stream before the request's answer): each one was answered 200.
 */
async function assertEmulationOk(client) {
  if (client.wire.pending > 0) await waitFor(client.wire, 'settled', 5000, () => client.wire.pending === 0);
  const answers = emulationAnswers(client);
  assert.ok(answers.length > 0, 'commands went through /emulation');
  assert.deepEqual(answers.filter((a) => a.status !== 200), [], `every /emulation answer is 200: ${safeJson(answers)}`);
}

/** The connect reply the client received last (from the wire). */
function connectReply(client) {
  const replies = client.wire.log.filter(([k, f]) => k === 'in' && f.connect).map(([, f]) => f.connect);
  assert.ok(replies.length > 0, `a connect reply on the wire: ${safeJson(client.wire.log.slice(0, 5))}`);
  return replies.at(-1);
}

/** Run fn; on failure report the server log tail and the clients' wire logs. */
async function diagnosed(t, node, clients, fn) {
  try {
    await fn();
  } catch (e) {
    t.diagnostic(`herald stderr tail:\n${node.logs().slice(-3000)}`);
    for (const c of clients.clients) t.diagnostic(`wire: ${safeJson(c.wire?.log?.slice(-30))}`);
    throw e;
  }
}

// ------------------------------------------------------------ raw HTTP ----

const connectBody = (user) => JSON.stringify({ id: 1, connect: { token: connToken(user), name: 'raw' } });
const sseUrl = (node, user) => `${node.url}/connection/sse?cf_connect=${encodeURIComponent(connectBody(user))}`;

/**
 * A raw http_stream connection of `user` read by the test itself.
 * Returns { res, log, until(pred), done, close }: until() resolves with the
 * first line matching pred (already received or next); done resolves 'end'
 * when the server ends the stream.
 */
async function rawStream(node, user, { headers = {} } = {}) {
  const ctrl = new AbortController();
  const res = await fetch(`${node.url}/connection/http_stream`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: connectBody(user),
    signal: ctrl.signal,
  });
  const lines = new EventEmitter();
  const log = [];
  const done = res.ok && res.body
    ? readLines(res.body, (obj) => { log.push(obj); lines.emit('line', obj); }).then(() => 'end', (e) => `error: ${e}`)
    : res.text().then(() => 'no stream');
  async function until(pred, timeoutMs = 5000) {
    const seen = log.find(pred);
    if (seen) return seen;
    try {
      return await waitFor(lines, 'line', timeoutMs, pred);
    } catch (e) {
      throw new Error(`${e.message}; stream so far: ${safeJson(log)}`);
    }
  }
  return { res, log, until, done, close: () => ctrl.abort() };
}

/** How a raw stream ended: 'end' when the server ended it within `ms`. */
function streamEnd(raw, ms = 5000) {
  let timer;
  const late = new Promise((ok) => { timer = setTimeout(() => ok(`still open after ${ms} ms`), ms); });
  return Promise.race([raw.done, late]).finally(() => clearTimeout(timer));
}

/** POST /emulation with a raw body (object → JSON). Returns { status, type, text }. */
async function postEmulation(node, body, headers = {}) {
  const res = await fetch(`${node.url}/emulation`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

/** GET/POST an endpoint, read only the status and headers, then abort. */
async function statusOf(url, { method = 'GET', body, headers = {} } = {}) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), 5000);
  try {
    const res = await fetch(url, { method, body, headers, signal: ctrl.signal });
    return { status: res.status, type: res.headers.get('content-type') };
  } finally {
    clearTimeout(timer);
    ctrl.abort();
  }
}


/** {code, reason} of a disconnect push; its deprecated `reconnect`, if sent, must agree with the code. */
function disconnectOf({ code, reason, reconnect, ...rest }) {
  const noReconnect = (code >= 3500 && code < 4000) || (code >= 4500 && code < 5000);
  if (reconnect !== undefined) assert.equal(reconnect, !noReconnect, `reconnect flag of code ${code}`);
  return { code, reason, ...rest };
}

// ---------------------------------------------------------------- tests ----

/** Connect, subscribe, API publication, client publish, rpc and presence over `transport`. */
async function basicFlow(t, transport, user) {
  await diagnosed(t, srv, pool, async () => {
    const [client, ctx] = await emuConnected(pool, srv, transport, { token: connToken(user) });
    assert.equal(ctx.transport, transport, safeJson(ctx));
    assert.ok(ctx.client, safeJson(ctx));
    const reply = connectReply(client);
    assert.ok(reply.session && reply.node, `connect reply has session and node: ${safeJson(reply)}`);

    const ch = `talk:${transport}`;
    const sub = await subscribed(client, ch);

    const fromApi = waitFor(sub, 'publication', 5000);
    const res = await srv.api('publish', { channel: ch, data: { from: 'api', via: transport } });
    assert.equal(res.error, undefined, safeJson(res));
    assert.deepEqual((await fromApi).data, { from: 'api', via: transport });

    const own = waitFor(sub, 'publication', 5000, (p) => p.data?.from === 'client');
    assert.deepEqual(await sub.publish({ from: 'client' }), {});
    const pub = await own;
    assert.equal(pub.info?.client, ctx.client, `publisher info: ${safeJson(pub)}`);

    const { data } = await client.rpc('inbox.unread_count', {});
    assert.deepEqual(data, { count: 0 });

    const pres = await sub.presence();
    assert.deepEqual(Object.keys(pres.clients), [ctx.client], safeJson(pres));
    assert.equal(pres.clients[ctx.client].user, user);

    await assertEmulationOk(client);
    const nodes = new Set(emulationAnswers(client).map((a) => a.node));
    assert.deepEqual([...nodes], [reply.node], 'commands carry the node of the connect reply');
  });
}

test('http_stream: connect, subscribe, API publication, client publish, rpc and presence', (t) => basicFlow(t, 'http_stream', 'hs1'));

test('sse: connect, subscribe, API publication, client publish, rpc and presence', (t) => basicFlow(t, 'sse', 'sse1'));

test('fallback: a WebSocket endpoint whose upgrade fails moves the SDK on to http_stream', (t) => diagnosed(t, srv, pool, async () => {
  const badWs = `${srv.url.replace(/^http/, 'ws')}/connection/no-such-endpoint`;
  const [client, ctx] = await emuConnected(pool, srv,
    [{ transport: 'websocket', endpoint: badWs }, endpoint(srv, 'http_stream')], { token: connToken('fb1') });
  assert.equal(ctx.transport, 'http_stream', safeJson(ctx));
  assert.ok(client.errors.some((e) => e.type === 'transport' && e.transport === 'websocket'),
    `the WebSocket attempt failed first: ${safeJson(client.errors)}`);
  const { data } = await client.rpc('inbox.unread_count', {});
  assert.deepEqual(data, { count: 0 });
  await assertEmulationOk(client);
}));

for (const transport of EMULATED) {
  test(`${transport}: recovery after an API disconnect 3011, missed publications once, in order`, (t) => diagnosed(t, srv, pool, async () => {
    const ch = `rec:${transport}`;
    const user = `rec-${transport}`;
    const [client, connCtx] = await emuConnected(pool, srv, transport, { token: connToken(user) });
    const { log, ctx: first } = await trackedSubscription(client, ch);
    assert.equal(first.recoverable, true, safeJson(first));
    const live = await publishSeq(srv, ch, 3);
    await log.waitPubs(3);

    // Reconnect attempts fail until the missed publications are in.
    const connecting = waitFor(client, 'connecting', 5000);
    client.wire.offline = true;
    const res = await srv.api('disconnect', {
      user, client: connCtx.client, disconnect: { code: 3011, reason: 'force reconnect' },
    });
    assert.equal(res.error, undefined, safeJson(res));
    const lost = await connecting;
    assert.deepEqual([lost.code, lost.reason], [3011, 'force reconnect'], `the disconnect push reached the SDK: ${safeJson(lost)}`);
    const missed = await publishSeq(srv, ch, 5, 4);
    assert.equal(client.state, 'connecting', 'still offline while the missed ones were published');

    const back = waitForEither(client, 'connected', 'disconnected', 8000);
    client.wire.offline = false;
    const again = await back;
    assert.equal(again.transport, transport, safeJson(again));
    assert.notEqual(again.client, connCtx.client, 'a new connection');
    const resub = await log.waitSubscribed(2, 8000);
    const sentinel = await publishSentinel(srv, [log], ch, 9);
    const all = [...live, ...missed, sentinel];
    oneEpoch(all);

    assert.equal(resub.wasRecovering, true, safeJson(resub));
    assert.equal(resub.recovered, true, safeJson(resub));
    assert.equal(resub.streamPosition?.epoch, sentinel.epoch, safeJson(resub));
    assert.deepEqual(all.map((p) => p.offset), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'API offsets');
    assert.deepEqual(pairs(log.pubs), pairs(all), 'every publication once, in order');
    assert.deepEqual(log.events.map(([k]) => k), [
      'subscribed', 'publication', 'publication', 'publication', 'subscribed',
      ...Array(6).fill('publication'),
    ], 'missed publications come after the resubscribe');
    const subReplies = client.wire.log.filter(([k, f]) => k === 'in' && f.subscribe).map(([, f]) => f.subscribe);
    assert.deepEqual((subReplies.at(-1)?.publications || []).map((p) => p.offset), [4, 5, 6, 7, 8],
      'recovered in the subscribe reply');
    await assertEmulationOk(client);
  }));

  test(`${transport}: API disconnect with code 4501 ends the connection for good`, (t) => diagnosed(t, srv, pool, async () => {
    const user = `gone-${transport}`;
    const [client] = await emuConnected(pool, srv, transport, { token: connToken(user) });
    const disconnected = waitFor(client, 'disconnected', 5000);
    const res = await srv.api('disconnect', { user, disconnect: { code: 4501, reason: 'go away' } });
    assert.equal(res.error, undefined, safeJson(res));
    const ctx = await disconnected;
    assert.deepEqual([ctx.code, ctx.reason], [4501, 'go away'], safeJson(ctx));
    const pushes = client.wire.log.filter(([k, f]) => k === 'in' && f.push?.disconnect).map(([, f]) => f.push.disconnect);
    assert.deepEqual(pushes.map(disconnectOf), [{ code: 4501, reason: 'go away' }], `sent as a disconnect push: ${safeJson(pushes)}`);
    await expectNoEvent(client, 'connecting', 1500);
    assert.equal(client.state, 'disconnected');
  }));
}

test('/emulation: 200 to a live session, 400 on a malformed body, 404 unknown node, 204 gone session, 413 too large', (t) => diagnosed(t, srv, pool, async () => {
  const raw = await rawStream(srv, 'raw1');
  try {
    assert.equal(raw.res.status, 200);
    const { connect } = await raw.until((o) => o.id === 1);
    assert.ok(connect?.session && connect?.node && connect?.client, `connect reply: ${safeJson(connect)}`);
    const { session, node } = connect;
    const rpc = (id, data = {}) => JSON.stringify({ id, rpc: { method: 'inbox.unread_count', data } });

    // A live session: 200, the reply comes over the stream.
    let r = await postEmulation(srv, { session, node, data: rpc(2) });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual((await raw.until((o) => o.id === 2)).rpc?.data, { count: 0 });

    // Malformed bodies: 400 with a message naming the problem.
    r = await postEmulation(srv, 'this is not json');
    assert.equal(r.status, 400, r.text);
    assert.ok(r.text.trim().length > 0 && /^text\/plain/.test(r.type || ''), `a plain-text message: ${safeJson(r)}`);
    for (const field of ['session', 'node', 'data']) {
      const body = { session, node, data: rpc(3) };
      delete body[field];
      r = await postEmulation(srv, body);
      assert.equal(r.status, 400, `without ${field}: ${r.text}`);
      assert.match(r.text, new RegExp(`missing\\W+(field\\W+)?${field}\\b`, 'i'), `the message names the missing ${field}`);
    }

    r = await postEmulation(srv, { session, node: 'no-such-node', data: rpc(4) });
    assert.equal(r.status, 404, `unknown node: ${r.text}`);
    r = await postEmulation(srv, { session: 'no-such-session', node, data: rpc(5) });
    assert.equal(r.status, 204, `unknown session on this node: ${r.text}`);

    const big = { session, node, data: rpc(6, { pad: 'x'.repeat(70000) }) };
    r = await postEmulation(srv, big);
    assert.equal(r.status, 413, `body of ${JSON.stringify(big).length} bytes: ${r.text}`);
    // ... which rejects that request only: the session still answers.
    r = await postEmulation(srv, { session, node, data: rpc(7) });
    assert.equal(r.status, 200, r.text);
    await raw.until((o) => o.id === 7);
    assert.equal(raw.log.some((o) => o.id === 3 || o.id === 4 || o.id === 5 || o.id === 6), false,
      `no reply to a refused command: ${safeJson(raw.log)}`);

    // A server-side disconnect: a disconnect push, then the stream ends; the session is gone.
    const res = await srv.api('disconnect', { user: 'raw1', disconnect: { code: 4501, reason: 'bye' } });
    assert.equal(res.error, undefined, safeJson(res));
    const push = await raw.until((o) => o.push?.disconnect);
    assert.deepEqual(disconnectOf(push.push.disconnect), { code: 4501, reason: 'bye' }, safeJson(push));
    assert.equal(await streamEnd(raw), 'end');
    r = await postEmulation(srv, { session, node, data: rpc(8) });
    assert.equal(r.status, 204, `session of a closed stream: ${r.text}`);
  } finally {
    raw.close();
  }
}));

test('sse: the raw endpoint answers text/event-stream with the connect reply as a data event', (t) => diagnosed(t, srv, pool, async () => {
  const ctrl = new AbortController();
  const res = await fetch(sseUrl(srv, 'raw2'), { signal: ctrl.signal });
  try {
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') || '', /^text\/event-stream/);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const deadline = Date.now() + 5000;
    while (!text.includes('\n\n') && Date.now() < deadline) {
      const { done, value } = await Promise.race([reader.read(),
        new Promise((_, rej) => setTimeout(() => rej(new Error(`no SSE event in 5 s: ${safeJson(text)}`)), 5000))]);
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const event = text.slice(0, text.indexOf('\n\n'));
    const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart());
    const reply = parseLines(data.join('\n')).find((o) => o.id === 1);
    assert.ok(reply?.connect?.session && reply.connect.node, `connect reply in the first event: ${safeJson(text)}`);
  } finally {
    ctrl.abort();
  }
}));

const skip = redisSkip();

const unreadRpc = (id) => JSON.stringify({ id, rpc: { method: 'inbox.unread_count', data: {} } });

test('scale-out: the stream on node A, commands posted to node B reach it through Redis', { skip }, (t) => withCluster(t, NAMESPACES, async ({ nodes: [a, b] }, clients) => {
  const [client, ctx] = await emuConnected(clients, a, 'http_stream', { token: connToken('x1'), emulation: b });
  assert.equal(ctx.transport, 'http_stream', safeJson(ctx));
  const { node } = connectReply(client);
  const info = await a.api('info', {});
  const nodeA = info.result?.nodes?.find((n) => n.name === 'node-1');
  assert.ok(nodeA && [nodeA.uid, nodeA.name].includes(node), `connect reply node ${node} is node A: ${safeJson(info)}`);

  const sub = await subscribed(client, 'talk:cross');
  const got = waitFor(sub, 'publication', 5000);
  const res = await b.api('publish', { channel: 'talk:cross', data: { via: 'node B' } });
  assert.equal(res.error, undefined, safeJson(res));
  assert.deepEqual((await got).data, { via: 'node B' });

  const { data } = await client.rpc('inbox.unread_count', {});
  assert.deepEqual(data, { count: 0 });
  const own = waitFor(sub, 'publication', 5000, (p) => p.data?.from === 'client');
  await sub.publish({ from: 'client' });
  await own;

  await assertEmulationOk(client);
  const answers = emulationAnswers(client);
  assert.deepEqual([...new Set(answers.map((x) => new URL(x.url).origin))], [b.url], 'every command went to node B');
}));

// B cannot tell whether A still has a session: it hands the commands to live node A
// through Redis and answers 200 (A drops them if the session is gone, whose stream
// has ended anyway). Only the node holding a session answers 204 for it.
test('scale-out: /emulation on node B for node A: 200 handed over (live or gone session), 404 unknown node, 404 once A is dead', { skip }, (t) => withCluster(t, NAMESPACES, async ({ nodes: [a, b] }) => {
  const raw = await rawStream(a, 'x2');
  const got = {};
  try {
    const { connect } = await raw.until((o) => o.id === 1);
    const { session, node } = connect;
    got.live = (await postEmulation(b, { session, node, data: unreadRpc(2) })).status;
    assert.deepEqual((await raw.until((o) => o.id === 2)).rpc?.data, { count: 0 }, 'the reply comes over the stream on A');
    got.unknownNode = (await postEmulation(b, { session, node: 'no-such-node', data: unreadRpc(3) })).status;
    got.unknownSession = (await postEmulation(b, { session: 'no-such-session', node, data: unreadRpc(4) })).status;

    const res = await a.api('disconnect', { user: 'x2', disconnect: { code: 4501, reason: 'bye' } });
    assert.equal(res.error, undefined, safeJson(res));
    assert.equal(await streamEnd(raw), 'end');
    got.goneSession = (await postEmulation(b, { session, node, data: unreadRpc(5) })).status;

    // Node A dies: once B no longer lists it, B answers 404 for it (the SDK then reconnects).
    await a.kill9();
    const deadline = Date.now() + 10000;
    while ((await b.api('info', {})).result?.nodes?.length !== 1) {
      assert.ok(Date.now() < deadline, 'B still lists node A 10 s after its death');
      await new Promise((r) => setTimeout(r, 50));
    }
    got.deadNode = (await postEmulation(b, { session, node, data: unreadRpc(6) })).status;
    assert.equal(raw.log.some((o) => o.id >= 3), false, `no reply to a refused command: ${safeJson(raw.log)}`);
  } finally {
    raw.close();
  }
  assert.deepEqual(got, { live: 200, unknownNode: 404, unknownSession: 200, goneSession: 200, deadNode: 404 },
    'answers of node B');
}));

test('config: [transports] http_stream = false / sse = false answer 404; allowed_origins guards both endpoints', async (t) => {
  const allowed = 'http://allowed.test';
  const noStream = await startHerald({ transports: { http_stream: false }, server: { allowed_origins: [allowed] } });
  const noSse = await startHerald({ transports: { sse: false }, server: { allowed_origins: [allowed] } });
  const clients = new ClientPool();
  try {
    const post = { method: 'POST', headers: { 'Content-Type': 'application/json' } };
    assert.equal((await statusOf(`${noStream.url}/connection/http_stream`, { ...post, body: connectBody('c1') })).status, 404,
      'http_stream off');
    assert.equal((await statusOf(sseUrl(noSse, 'c2'))).status, 404, 'sse off');

    // The other transports of those servers still work.
    const [, wsCtx] = await clients.connected(noStream, { token: connToken('c3') });
    assert.equal(wsCtx.transport, 'websocket', safeJson(wsCtx));
    const [, sseCtx] = await emuConnected(clients, noStream, 'sse', { token: connToken('c4') });
    assert.equal(sseCtx.transport, 'sse', safeJson(sseCtx));
    const [, hsCtx] = await emuConnected(clients, noSse, 'http_stream', { token: connToken('c5') });
    assert.equal(hsCtx.transport, 'http_stream', safeJson(hsCtx));

    // Origin: a disallowed one is refused with 403, the allowed one streams.
    const evil = { Origin: 'http://evil.test' };
    assert.equal((await statusOf(`${noSse.url}/connection/http_stream`, { ...post, headers: { ...post.headers, ...evil }, body: connectBody('c6') })).status, 403,
      'http_stream from a disallowed origin');
    assert.equal((await statusOf(sseUrl(noStream, 'c7'), { headers: evil })).status, 403, 'sse from a disallowed origin');
    const ok = await rawStream(noSse, 'c8', { headers: { Origin: allowed } });
    try {
      assert.equal(ok.res.status, 200);
      assert.ok((await ok.until((o) => o.id === 1)).connect?.session, 'the allowed origin connects');
    } finally {
      ok.close();
    }
    const sseOk = await statusOf(sseUrl(noStream, 'c9'), { headers: { Origin: allowed } });
    assert.deepEqual([sseOk.status, /^text\/event-stream/.test(sseOk.type || '')], [200, true], safeJson(sseOk));
  } catch (e) {
    t.diagnostic(`http_stream-off server:\n${noStream.logs().slice(-2000)}\nsse-off server:\n${noSse.logs().slice(-2000)}`);
    throw e;
  } finally {
    clients.closeAll();
    await noStream.stop();
    await noSse.stop();
  }
});
