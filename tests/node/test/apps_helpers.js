// What the inbox and chat suites share: server API calls and rpc calls that
// answer their result or their error, and connected tabs of a user.
import assert from 'node:assert/strict';

import { connToken, rejection, safeJson } from './harness.js';

/** Helpers bound to one suite's server and client pool. */
export function appsHelpers(srv, pool) {
  /** API call answering `result`; fails the test on an error answer. */
  async function api(method, body) {
    const r = await srv.api(method, body);
    assert.ok(r.result !== undefined && r.error === undefined, `${method} ${safeJson(body)} -> ${safeJson(r)}`);
    return r.result;
  }

  /** API call expected to answer an error; returns it ({code, message}). */
  async function apiError(method, body) {
    const r = await srv.apiRaw(method, body);
    assert.equal(r.status, 200, `${method}: HTTP ${r.status} ${r.text}`);
    assert.ok(r.json?.error, `${method} ${safeJson(body)} should fail: ${r.text}`);
    return r.json.error;
  }

  /** client.rpc answering its data. */
  async function rpc(client, method, data = {}) {
    const { data: result } = await client.rpc(method, data);
    return result;
  }

  /** client.rpc expected to fail; returns the error ({code, message}). */
  const rpcError = (client, method, data = {}) => rejection(client.rpc(method, data), 5000, method);

  /** A connected tab of `user`. */
  async function tab(user) {
    const [client] = await pool.connected(srv, { token: connToken(user) });
    return client;
  }

  return { api, apiError, rpc, rpcError, tab };
}
