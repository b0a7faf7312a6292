// Shared helpers of the browser suite: the real `herald` binary on dev defaults
// (no config file), Debian's chromium driven by playwright-core, pages of the demo
// opened as a role, waits on page state with timeouts, and screenshots.
// Contains no tests.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { HERALD_BIN, freePort, listeningUrl } from '../../node/test/server.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../../..');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const SHOTS_DIR = process.env.HERALD_SCREENSHOTS_DIR
  ? path.resolve(process.env.HERALD_SCREENSHOTS_DIR)
  : path.join(ROOT, 'docs/img');
export const ADMIN_PASSWORD = 'browser-suite-admin';
export const VIEWPORT = { width: 1440, height: 900 };
/** How long a wait on page state may take before the test fails. */
export const WAIT_MS = 15000;

/**
 * `herald serve --listen 127.0.0.1:<port>` with no config (dev defaults: the demo
 * and the admin page on), run in its own working directory so its `herald-data`
 * survives a restart on the same port.
 */
export class Herald {
  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'herald-browser-'));
    this.port = null;
    this.child = null;
    this.url = null;
    this.stderr = '';
  }

  async start() {
    if (this.port === null) this.port = await freePort();
    const child = spawn(HERALD_BIN, ['serve', '--listen', `127.0.0.1:${this.port}`], {
      cwd: this.dir,
      env: { ...process.env, HERALD_ADMIN_PASSWORD: ADMIN_PASSWORD, HERALD_LOG: process.env.HERALD_LOG || 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-20000);
    });
    child.stdout.setEncoding('utf8');
    this.url = await listeningUrl(child, 15000, () => `stderr:\n${this.stderr}`);
    child.stdout.on('data', () => {}); // keep draining
    return this.url;
  }

  /** Stops the process (SIGKILL: a crash; SIGTERM: a clean shutdown) and waits for it. */
  async stop(signal = 'SIGTERM') {
    if (!this.child) return;
    const child = this.child;
    this.child = null;
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(timer);
  }

  /** The same binary, port and data directory again. */
  async restart(signal = 'SIGKILL') {
    await this.stop(signal);
    return this.start();
  }

  /** POST /demo/backend/<method>: the server API through the demo's backend stand-in. */
  async backend(method, params) {
    const res = await fetch(`${this.url}/demo/backend/${method}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(params),
    });
    const body = await res.json();
    if (body.error) throw new Error(`backend ${method}: ${JSON.stringify(body.error)}`);
    return body.result;
  }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One herald per test file: started before the first test, stopped after the last. */
export function useHerald() {
  const herald = new Herald();
  before(async () => { await herald.start(); });
  after(async () => {
    await herald.stop();
    herald.cleanup();
  });
  return herald;
}

/**
 * One headless chromium per test file. Every page opened through `open` is
 * watched for uncaught errors, which fail the test that opened it.
 */
export function useBrowser() {
  const state = { browser: null, contexts: new Set(), errors: [] };
  before(async () => {
    state.browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    });
  });
  afterEach(async () => {
    for (const ctx of state.contexts) await ctx.close().catch(() => {});
    state.contexts.clear();
    const errors = state.errors.splice(0);
    if (errors.length) throw new Error(`uncaught errors in the page:\n${errors.join('\n')}`);
  });
  after(async () => {
    await state.browser?.close();
  });

  /** A fresh browser context (its own cookies and storage: another "person"). */
  async function context(options = {}) {
    const ctx = await state.browser.newContext({ viewport: VIEWPORT, ...options });
    ctx.setDefaultTimeout(WAIT_MS);
    state.contexts.add(ctx);
    ctx.on('page', (page) => watch(page));
    return ctx;
  }

  function watch(page) {
    page.on('pageerror', (e) => state.errors.push(`${page.url()}: ${e.message}`));
  }

  /**
   * The demo at `url` as `role` (customer, booster, admin), in `ctx` or a new
   * context; resolves once it is connected and the orders board is filled.
   */
  async function openDemo(url, role, ctx) {
    const c = ctx || (await context());
    const page = await c.newPage();
    await page.goto(`${url}/?as=${role}`);
    await until(page, () => ['connected', 'recovered'].includes(document.querySelector('[data-testid="conn-indicator"]').dataset.state),
      null, `${role}: the connection indicator says connected`);
    await page.locator('[data-testid^="order-row-"]').first().waitFor({ timeout: WAIT_MS });
    return page;
  }

  return { context, openDemo, browser: () => state.browser };
}

/**
 * Polls `fn(arg)` in the page until it is truthy; fails with `what` after WAIT_MS.
 * Answers what `fn` answered.
 */
export async function until(page, fn, arg, what, timeout = WAIT_MS) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout, polling: 100 });
    return await handle.jsonValue();
  } catch (e) {
    if (e && e.name === 'TimeoutError') throw new Error(`timed out after ${timeout} ms waiting for: ${what}`);
    throw e;
  }
}

/** The `data-<key>` of the element with data-testid `id`, or null. */
export async function dataOf(page, id, key) {
  return page.evaluate(([i, k]) => document.querySelector(`[data-testid="${i}"]`)?.dataset[k] ?? null, [id, key]);
}

/** Waits until the element with data-testid `id` has `data-<key>` equal to `value`. */
export function untilData(page, id, key, value, what) {
  return until(page, ([i, k, v]) => document.querySelector(`[data-testid="${i}"]`)?.dataset[k] === v,
    [id, key, String(value)], what || `[data-testid=${id}] data-${key} = ${value}`);
}

/** Waits until the element with data-testid `id` shows `text` (trimmed, exact or RegExp source). */
export function untilText(page, id, text, what) {
  const pattern = text instanceof RegExp ? text.source : null;
  return until(page, ([i, t, p]) => {
    const node = document.querySelector(`[data-testid="${i}"]`);
    if (!node) return false;
    const s = node.textContent.trim();
    return p ? new RegExp(p).test(s) : s === t;
  }, [id, pattern ? null : String(text), pattern], what || `[data-testid=${id}] shows ${text}`);
}

/** Saves a PNG under docs/img/ (or $HERALD_SCREENSHOTS_DIR): a page, or one element. */
export async function screenshot(target, name, options = {}) {
  mkdirSync(SHOTS_DIR, { recursive: true });
  const file = path.join(SHOTS_DIR, name);
  await target.screenshot({ path: file, animations: 'disabled', ...options });
  return file;
}
