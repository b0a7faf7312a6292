// Herald process control for the Node.js acceptance suite: renders the TOML
// config, spawns `herald serve`, waits for its "herald listening on" line and
// offers the server HTTP API, SIGTERM stop, SIGKILL and restart on the same
// port and storage dir. Re-exported by harness.js; contains no tests.

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
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
 * opts: { server, auth, api, client, storage, withoutNamespace, namespaces: [{name, ...}] }
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
  for (const ns of opts.namespaces || []) {
    parts.push(tomlTable('[[channel.namespaces]]', ns));
  }
  return parts.join('\n\n') + '\n';
}

// -------------------------------------------------------------- server ----

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
  let stdout = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    log.text += d;
    if (log.text.length > 200000) log.text = log.text.slice(-100000);
  });
  child.stdout.setEncoding('utf8');
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      child.kill('SIGKILL');
      reject(new Error(`herald did not print "herald listening on" within ${startTimeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${log.text.slice(-4000)}`));
    }, startTimeoutMs);
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
      reject(new Error(`herald exited before listening (code ${code}, signal ${signal})\nconfig:\n${configText}\nstderr:\n${log.text.slice(-4000)}`));
    };
    function cleanup() {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.off('exit', onExit);
    }
    child.stdout.on('data', onData);
    child.once('exit', onExit);
  });
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

  return {
    url, wsUrl, api, apiRaw, stop, kill9, restart, configPath, storageDir,
    logs: () => log.text,
    get process() { return proc.child; },
  };
}
