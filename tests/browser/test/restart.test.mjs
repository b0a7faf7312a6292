// A server restart under an open demo window: the process is killed and started
// again on the same port and data directory; the window reconnects by itself, the
// indicator goes reconnecting → recovered, and every panel is live again.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { useHerald, useBrowser, until, untilData, untilText, dataOf } from './harness.mjs';

const herald = useHerald();
const { openDemo } = useBrowser();

const state = (page) => dataOf(page, 'conn-indicator', 'state');

test('after a restart the window reconnects, recovers and stays live', async () => {
  const page = await openDemo(herald.url, 'customer');
  await untilData(page, 'conn-indicator', 'state', 'connected');
  await untilText(page, 'conn-indicator', 'Live');
  await untilText(page, 'chat-title', 'Order #1041 · chat');
  await untilText(page, 'order-progress-1041', '60%');

  // Kill the server (no goodbye to the clients) and watch the window notice.
  await herald.stop('SIGKILL');
  await until(page, () => ['reconnecting', 'disconnected'].includes(
    document.querySelector('[data-testid="conn-indicator"]').dataset.state), null, 'the indicator leaves "connected"');
  assert.notEqual(await state(page), 'connected');

  // Same binary, same port, same herald-data: the window comes back by itself.
  const url = await herald.start();
  assert.equal(new URL(url).port, String(herald.port));
  await untilData(page, 'conn-indicator', 'state', 'recovered', 'the indicator shows recovered');
  await untilText(page, 'conn-indicator', 'Recovered');
  await until(page, () => Number(document.querySelector('[data-testid="conn-indicator"]').dataset.recoveries) >= 1, null, 'a recovery counted');
  await until(page, () => [...document.querySelectorAll('[data-testid="toast"]')].some((t) => t.textContent.includes('Back online')),
    null, 'a "Back online" toast');

  // The orders kept their state across the restart (durable history, cache mode) ...
  await untilText(page, 'order-progress-1041', '60%');
  // ... and the window is live again: a publication after the restart arrives.
  const { publications } = await herald.backend('history', { channel: 'orders:1041', limit: 1, reverse: true });
  const current = publications[0].data;
  await herald.backend('publish', {
    channel: 'orders:1041',
    data: { ...current, rev: current.rev + 1, progress: 90, updated_at: Date.now(), updated_by: 'admin-1', change: { field: 'progress', from: current.progress, to: 90 } },
  });
  await untilText(page, 'order-progress-1041', '90%');

  // The bell and the chat work on the new connection too.
  await page.getByTestId('backend-notify-customer').click();
  await untilData(page, 'bell', 'count', '1');
  await until(page, () => !document.querySelector('[data-testid="chat-input"]').disabled, null, 'chat input enabled');
  await page.getByTestId('chat-input').fill('Still there after the restart?');
  await page.getByTestId('chat-send').click();
  await until(page, () => [...document.querySelectorAll('[data-testid="chat-message"]')].some((m) => m.textContent.includes('after the restart')),
    null, 'the message sent after the restart');
  const { messages } = await herald.backend('chat_history', { conversation: 'order-1041', limit: 5 });
  assert.ok(messages.some((m) => m.text === 'Still there after the restart?' && m.user === 'customer-1'), 'stored by the new process');
});
