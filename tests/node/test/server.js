// Herald process control for the Node.js acceptance suite: renders the TOML
// config, spawns `herald serve`, waits for its "herald listening on" line and
// offers the server HTTP API, SIGTERM stop, SIGKILL and restart on the same
// port and storage dir. For scale-out: a throwaway redis-server, a cluster of
// herald nodes on it, and a switchable TCP proxy (a "load balancer").
// Re-exported by harness.js; contains no tests.

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const NODE_DIR = path.resolve(here, '..');
export const HERALD_BIN = process.env.HERALD_BIN
  ? path.resolve(process.env.HERALD_BIN)
  : path.resolve(NODE_DIR, '../../target/debug/herald');

export const SECRET = 'test-secret';
export const API_KEY = 'test-api-key';

// ---------------------------------------------------------------- TOML ----

function tomlValue(v) {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  throw new Error(`unsupported TOML value: ${JSON.stringify(v)}`);
}

function tomlTable(header, obj) {
  const lines = [header];
  for (const [k, v] of Object.entries(obj || {})) {
    if (v === undefined || v === null) continue;
    lines.push(`${k} = ${tomlValue(v)}`);
  }
  return lines.join('\n');
}

/**
 * Build a config file text.
 * opts: { server, auth, api, client, storage, broker, transports, withoutNamespace, namespaces: [{name, ...}] }
 * Sections are merged over sensible defaults from CONTRACT.md.
 */
export function renderConfig(opts = {}) {
  const server = { listen: '127.0.0.1:0', allowed_origins: [], ...(opts.server || {}) };
  const auth = { hmac_secret: SECRET, ...(opts.auth || {}) };
  const api = { key: API_KEY, ...(opts.api || {}) };
  const client = { allow_anonymous_connect_without_token: false, ...(opts.client || {}) };
  const parts = [
    tomlTable('[server]', server),
    tomlTable('[auth]', auth),
    tomlTable('[api]', api),
    tomlTable('[client]', client),
  ];
  if (opts.withoutNamespace) {
    parts.push(tomlTable('[channel.without_namespace]', opts.withoutNamespace));
  }
  if (opts.storage) parts.push(tomlTable('[storage]', opts.storage));
  if (opts.broker) parts.push(tomlTable('[broker]', opts.broker));
  if (opts.transports) parts.push(tomlTable('[transports]', opts.transports));
  for (const ns of opts.namespaces || []) {
    parts.push(tomlTable('[[channel.namespaces]]', ns));
  }
  return parts.join('\n\n') + '\n';
}

// -------------------------------------------------------------- server ----

/**
 * Waits for a spawned herald's "herald listening on" line (its stdout must be
 * set to utf8) and resolves with its URL. On a timeout (the process is killed)
 * or an early exit it rejects, with `describe()` appended to the message.
 */
export function listeningUrl(child, timeoutMs, describe) {
  let stdout = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      child.kill('SIGKILL');
      reject(new Error(`herald did not print "herald listening on" within ${timeoutMs} ms\nstdout:\n${stdout}\n${describe()}`));
    }, timeoutMs);
    const onData = (d) => {
      stdout += d;
      const m = stdout.match(/herald listening on (http:\/\/\S+)/);
      if (m) {
        cleanup();
        resolve(m[1].replace(/\/+$/, ''));
      }
    };
    const onExit = (code, signal) => {
      cleanup();
      reject(new Error(`herald exited before listening (code ${code}, signal ${signal})\n${describe()}`));
    };
    function cleanup() {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.off('exit', onExit);
    }
    child.stdout.on('data', onData);
    child.once('exit', onExit);
  });
}

/**
 * Spawn `herald serve --config configPath` in `cwd` and wait for its
 * "herald listening on" line. `log` ({ text }) collects stderr across restarts.
 * Resolves with { child, url, exited } (exited: promise of { code, signal }).
 */
async function launch({ configPath, cwd, env, startTimeoutMs, log, configText }) {
  const child = spawn(HERALD_BIN, ['serve', '--config', configPath], {
    cwd,
    env: { ...process.env, RUST_BACKTRACE: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    log.text += d;
    if (log.text.length > 200000) log.text = log.text.slice(-100000);
  });
  child.stdout.setEncoding('utf8');
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const url = await listeningUrl(child, startTimeoutMs,
    () => `config:\n${configText}\nstderr:\n${log.text.slice(-4000)}`);
  child.stdout.on('data', () => {}); // keep draining stdout
  return { child, url, exited };
}

const isRunning = (child) => child.exitCode === null && child.signalCode === null;

/**
 * Start herald with the given config options (see renderConfig).
 * `opts.storage` is merged over { path: <fresh temp dir>/data } so history
 * never lands in the cwd; pass `storage: { durable: false }` for in-memory
 * history (the server default is durable).
 * Returns { url, wsUrl, api, apiRaw, stop, kill9, restart, logs(), storageDir, ... }:
 *  kill9()   SIGKILL the process and wait for it to exit (storage dir kept)
 *  restart() start again (after kill9/stop, or SIGTERM first if running) on the
 *            SAME port with the SAME config and storage dir
 */
export async function startHerald(opts = {}, { startTimeoutMs = 15000, env = {} } = {}) {
  if (!existsSync(HERALD_BIN)) {
    throw new Error(`herald binary not found at ${HERALD_BIN} (set HERALD_BIN or build target/debug/herald)`);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-node-'));
  const configPath = path.join(dir, 'herald.toml');
  const storageDir = path.join(dir, 'data');
  const config = { ...opts, storage: { path: storageDir, ...(opts.storage || {}) } };
  const log = { text: '' };
  const run = (cfg) => {
    const configText = renderConfig(cfg);
    writeFileSync(configPath, configText);
    return launch({ configPath, cwd: dir, env, startTimeoutMs, log, configText });
  };

  let proc = await run(config);
  const url = proc.url;
  const wsUrl = url.replace(/^http/, 'ws') + '/connection/websocket';

  async function apiRaw(method, body, { key = API_KEY, headers = {}, rawBody } = {}) {
    const h = { 'Content-Type': 'application/json', ...headers };
    if (key !== null) h['X-API-Key'] = key;
    const res = await fetch(`${url}/api/${method}`, {
      method: 'POST',
      headers: h,
      body: rawBody !== undefined ? rawBody : JSON.stringify(body ?? {}),
      signal: AbortSignal.timeout(5000),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, text, json };
  }

  /** POST /api/<method>; throws unless HTTP 200 with a JSON body. Returns the parsed body. */
  async function api(method, body) {
    const r = await apiRaw(method, body);
    if (r.status !== 200 || r.json === undefined) {
      throw new Error(`API ${method} ${JSON.stringify(body)} -> HTTP ${r.status}: ${r.text}`);
    }
    return r.json;
  }

  async function terminate() {
    if (!isRunning(proc.child)) return;
    proc.child.kill('SIGTERM');
    const t = setTimeout(() => proc.child.kill('SIGKILL'), 5000);
    await proc.exited;
    clearTimeout(t);
  }

  async function kill9() {
    if (isRunning(proc.child)) proc.child.kill('SIGKILL');
    return proc.exited;
  }

  let stopped = false;
  async function restart() {
    if (stopped) throw new Error('restart after stop()');
    await terminate();
    const port = new URL(url).port;
    proc = await run({ ...config, server: { ...(config.server || {}), listen: `127.0.0.1:${port}` } });
    if (proc.url !== url) throw new Error(`restarted herald listens on ${proc.url}, expected ${url}`);
  }

  async function stop() {
    if (stopped) return;
    stopped = true;
    await terminate();
    try { rmSync(dir, { recursive: true, force: true }); } catch { /* ignore */ }
  }

  /** GET /health: { status, text } (200 healthy, 503 e.g. while Redis is down). */
  async function health() {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, text: await res.text() };
  }

  return {
    url, wsUrl, api, apiRaw, health, stop, kill9, restart, configPath, storageDir,
    port: Number(new URL(url).port),
    logs: () => log.text,
    get process() { return proc.child; },
  };
}

// --------------------------------------------------------------- redis ----

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function findOnPath(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

const REDIS_MISSING = 'redis-server is not on PATH (Debian: apt-get install redis-server)';

/**
 * For `test(name, { skip: redisSkip() }, ...)`: a skip message when
 * redis-server is missing, else false. With CI=true a missing redis-server is
 * never skipped: the tests run and startRedis fails them.
 */
export function redisSkip() {
  if (findOnPath('redis-server') || process.env.CI === 'true') return false;
  return `${REDIS_MISSING}; set CI=true to make this a failure`;
}

/** Resolve true if a Redis on `port` answers PING with +PONG (not LOADING). */
function redisPing(port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => done(false), timeoutMs);
    function done(ok) { clearTimeout(timer); sock.destroy(); resolve(ok); }
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => { buf += d; if (buf.includes('\r\n')) done(buf.startsWith('+PONG')); });
    sock.on('error', () => done(false));
  });
}

/** A port that was free a moment ago. */
/** A TCP port free right now on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

/**
 * A throwaway redis-server on a free port with its own temp dir and an
 * append-only file fsynced on every write (so every acknowledged write
 * survives kill9). Returns { port, url, dir, kill9, restart, stop, logs }:
 *  kill9()   SIGKILL and wait for the exit (data dir kept)
 *  restart() start again on the same port and dir; resolves on PONG (AOF loaded)
 */
export async function startRedis({ appendonly = true } = {}) {
  const bin = findOnPath('redis-server');
  if (!bin) throw new Error(`${REDIS_MISSING}; CI=true, so a missing redis-server fails the run`);
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-redis-'));
  const port = await freePort();
  const logFile = path.join(dir, 'redis.log');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--daemonize', 'no', '--save', '',
    '--appendonly', appendonly ? 'yes' : 'no', '--appendfsync', 'always', '--dir', dir, '--logfile', logFile];
  const logs = () => { try { return readFileSync(logFile, 'utf8').slice(-3000); } catch { return '<no redis log>'; } };
  let child;
  let exited;

  async function launchRedis() {
    child = spawn(bin, args, { stdio: 'ignore' });
    exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (error) => resolve({ error }));
    });
    const deadline = Date.now() + 10000;
    while (!(await redisPing(port))) {
      if (!isRunning(child)) throw new Error(`redis-server on ${port} exited before answering PING\n${logs()}`);
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} not answering PING in 10 s\n${logs()}`);
      await delay(20);
    }
  }

  async function kill9() {
    if (isRunning(child)) child.kill('SIGKILL');
    return exited;
  }

  async function stop() {
    await kill9();
    try { rmSync(dir, { recursive: true, force: true }); } catch { /* ignore */ }
  }

  try {
    await launchRedis();
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    port, dir, logs, kill9, stop,
    url: `redis://127.0.0.1:${port}`,
    async restart() { await kill9(); await launchRedis(); },
  };
}

// ------------------------------------------------------------- cluster ----

/** The [broker] section of a cluster node; `extra` overrides it. */
export const clusterBroker = (redisUrl, extra = {}) => ({
  kind: 'redis', redis_url: redisUrl, heartbeat: '200ms', presence_ttl: '2s', timeout: '1s', ...extra,
});

/**
 * Start a redis-server (see startRedis) and `nodes` herald processes on it
 * (config as for startHerald, plus the broker section; nodes named node-1...),
 * and wait until every node's `info` lists all of them.
 * Returns { redis, nodes: [srv...], stop(), logTails() }; stop() is safe to
 * call after a node or Redis was killed. Cleans up if start-up fails.
 */
export async function startCluster({ nodes = 2, broker = {}, redis: redisOpts, ...config } = {}) {
  const redis = await startRedis(redisOpts);
  const started = [];
  const stop = async () => {
    await Promise.all(started.map((n) => n.stop()));
    await redis.stop();
  };
  try {
    for (let i = 1; i <= nodes; i++) {
      started.push(await startHerald({
        ...config,
        server: { ...(config.server || {}), name: `node-${i}` },
        broker: clusterBroker(redis.url, broker),
      }));
    }
    const deadline = Date.now() + 10000;
    for (const node of started) {
      for (;;) {
        const r = await node.apiRaw('info', {});
        if (r.json?.result?.nodes?.length === nodes) break;
        if (Date.now() > deadline) throw new Error(`${node.url} info never listed ${nodes} nodes: ${r.text}`);
        await delay(50);
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  const logTails = () => [
    ...started.map((n, i) => `--- node-${i + 1} (${n.url}) stderr tail:\n${n.logs().slice(-3000)}`),
    `--- redis (${redis.url}) log tail:\n${redis.logs()}`,
  ].join('\n');
  return { redis, nodes: started, stop, logTails };
}

// --------------------------------------------------------------- proxy ----

/**
 * A tiny TCP "load balancer" on a free port: each accepted connection is piped
 * to the current target (a herald from startHerald, or a port). switchTo()
 * changes the target for new connections; open ones stay where they are.
 * While held (hold() until release()) new connections are dropped at once.
 * Has url/wsUrl so a ClientPool can connect through it.
 */
export async function startProxy(target) {
  const portOf = (t) => (typeof t === 'number' ? t : t.port);
  let targetPort = portOf(target);
  let held = false;
  const sockets = new Set();
  const server = net.createServer((down) => {
    if (held) { down.destroy(); return; }
    const up = net.connect(targetPort, '127.0.0.1');
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => { sockets.delete(s); down.destroy(); up.destroy(); });
    }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/connection/websocket`,
    switchTo(t) { targetPort = portOf(t); },
    hold() { held = true; },
    release() { held = false; },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
