// SIGTERM: connected clients get close code 3001 "shutdown" and the SDK tries to reconnect.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { startHerald, ClientPool, connToken, waitFor, safeJson } from './harness.js';

const pool = new ClientPool();
after(() => pool.closeAll());

test('server shutdown: close 3001, SDK goes to connecting (reconnect)', async () => {
  const srv = await startHerald({ withoutNamespace: { allow_subscribe_for_client: true } });
  try {
    const [client] = await pool.connected(srv, { token: connToken('42') });
    const connecting = waitFor(client, 'connecting', 8000);
    const closed = waitFor(client.wire, 'close', 8000);
    const stopping = srv.stop();
    const ctx = await connecting;
    const close = await closed;
    assert.equal(close.code, 3001, `ws close: ${safeJson(close)}`);
    assert.equal(ctx.code, 3001, `connecting ctx: ${safeJson(ctx)}`);
    await stopping;
    assert.equal(srv.process.exitCode, 0, `herald exit code after SIGTERM (signal ${srv.process.signalCode})`);
  } finally {
    pool.closeAll();
    await srv.stop();
  }
});
