// A browser behind a proxy that blocks WebSocket: the demo falls back to HTTP
// streaming (docs/transports.md) and works as well as a window on WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { useHerald, useBrowser, until, untilData, untilText } from './harness.mjs';

const herald = useHerald();
const { context, openDemo } = useBrowser();

/**
 * A browser context in which every WebSocket handshake fails before it opens, as
 * behind a proxy that refuses upgrades: sockets go to a port nothing listens on.
 */
async function withoutWebSocket() {
  const ctx = await context();
  await ctx.addInitScript(() => {
    const Real = window.WebSocket;
    window.WebSocket = class extends Real {
      constructor(url, protocols) {
        super('ws://127.0.0.1:9/blocked-by-proxy', protocols);
      }
    };
  });
  return ctx;
}

test('with WebSocket blocked, the demo connects over HTTP streaming and chats with a WebSocket window', async () => {
  const customer = await openDemo(herald.url, 'customer', await withoutWebSocket());
  const booster = await openDemo(herald.url, 'booster');
  await untilData(customer, 'conn-indicator', 'transport', 'http_stream');
  await untilData(booster, 'conn-indicator', 'transport', 'websocket');

  // Subscriptions and presence over the fallback: each sees the other online.
  await untilText(customer, 'chat-title', 'Order #1041 · chat');
  await untilData(customer, 'member-booster', 'online', 'true');
  await untilData(booster, 'member-customer', 'online', 'true');

  // A command from the fallback window (chat.send rpc through /emulation) ...
  await until(customer, () => !document.querySelector('[data-testid="chat-input"]').disabled, null, 'the chat input is enabled');
  await customer.getByTestId('chat-input').fill('Sent over HTTP streaming');
  await customer.getByTestId('chat-send').click();
  await until(booster, () => [...document.querySelectorAll('[data-testid="chat-message"]')].some((m) => m.textContent.includes('Sent over HTTP streaming')),
    null, "the fallback window's message in the WebSocket window");

  // ... and a push to it: an order update made from the WebSocket window.
  await booster.getByTestId('order-row-1042').click();
  await untilText(booster, 'order-selected', 'Selected: #1042');
  const before = await customer.getByTestId('order-status-1042').getAttribute('data-status');
  await booster.getByTestId('backend-advance-status').click();
  await until(customer, (b) => document.querySelector('[data-testid="order-status-1042"]').dataset.status !== b, before,
    'the order update in the fallback window');
  assert.equal(
    await customer.getByTestId('order-status-1042').getAttribute('data-status'),
    await booster.getByTestId('order-status-1042').getAttribute('data-status'),
  );
});
