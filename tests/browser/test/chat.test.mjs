// The order chat between two roles in two browser contexts: the typing indicator,
// messages both ways, read receipts, online dots and paging back through history.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { useHerald, useBrowser, until, untilData, untilText, screenshot } from './harness.mjs';

const herald = useHerald();
const { openDemo } = useBrowser();

/** Waits until the open conversation is `order-<id>` and its first page is shown. */
async function chatReady(page, id) {
  await untilText(page, 'chat-title', `Order #${id} · chat`);
  await until(page, () => !document.querySelector('[data-testid="chat-input"]').disabled, null, 'the chat input is enabled');
}

const messageTexts = (page) => page.evaluate(() => [...document.querySelectorAll('[data-testid="chat-message"]')].map((m) => m.textContent));

test('typing indicator, messages and read receipts between a customer and a booster', async () => {
  const customer = await openDemo(herald.url, 'customer');
  const booster = await openDemo(herald.url, 'booster');
  for (const page of [customer, booster]) await chatReady(page, 1041);

  // Each sees the other online (status:<user> pushes).
  await untilData(customer, 'member-booster', 'online', 'true');
  await untilData(booster, 'member-customer', 'online', 'true');

  // The booster types: the customer sees it.
  await booster.getByTestId('chat-input').pressSequentially('On it, 2 wins left', { delay: 20 });
  await customer.getByTestId('typing-indicator').waitFor({ state: 'visible' });
  await untilText(customer, 'typing-indicator', 'Sam is typing…');
  await untilData(customer, 'typing-indicator', 'users', 'booster-1');

  // ... and sends: the message arrives and the indicator goes away at once.
  await booster.getByTestId('chat-input').press('Enter');
  await until(customer, () => [...document.querySelectorAll('[data-testid="chat-message"]')].some((m) => m.textContent.includes('On it, 2 wins left')),
    null, "the booster's message in the customer's window");
  await customer.getByTestId('typing-indicator').waitFor({ state: 'hidden' });

  // The customer's window was open, so it read the message: the booster sees the receipt.
  await untilText(booster, 'read-receipt', 'Seen by Alex');

  // The other way round, with a picture of the customer's chat while Sam types.
  await customer.getByTestId('chat-input').fill('Great, thank you! Ping me when it is done.');
  await customer.getByTestId('chat-send').click();
  await until(booster, () => [...document.querySelectorAll('[data-testid="chat-message"]')].some((m) => m.textContent.includes('Ping me when it is done')),
    null, "the customer's message in the booster's window");
  await untilText(customer, 'read-receipt', 'Seen by Sam');
  await booster.getByTestId('chat-input').pressSequentially('Will do', { delay: 20 });
  await customer.getByTestId('typing-indicator').waitFor({ state: 'visible' });
  await screenshot(customer.getByTestId('chat-panel'), 'demo-chat.png');
  await booster.getByTestId('chat-input').press('Enter');
  await until(customer, () => [...document.querySelectorAll('[data-testid="chat-message"]')].some((m) => m.textContent.includes('Will do')),
    null, 'the reply');

  // The same conversation from a third window shows the stored messages in order.
  const admin = await openDemo(herald.url, 'admin');
  await chatReady(admin, 1041);
  const texts = await messageTexts(admin);
  const order = ['On it, 2 wins left', 'Ping me when it is done', 'Will do'].map((t) => texts.findIndex((x) => x.includes(t)));
  assert.ok(order.every((i) => i >= 0), `all three messages shown: ${JSON.stringify(texts)}`);
  assert.deepEqual([...order].sort((a, b) => a - b), order, 'in the order they were sent');

  // Closing the booster's window turns the dot off for the others.
  await booster.context().close();
  await untilData(customer, 'member-booster', 'online', 'false');
});

test('a long conversation pages back with "load older"', async () => {
  const members = ['customer-1', 'booster-1', 'admin-1'];
  await herald.backend('chat_create', { conversation: 'order-1043', title: 'Order #1043', members });
  for (let i = 1; i <= 30; i++) {
    await herald.backend('chat_post', { conversation: 'order-1043', user: i % 2 ? 'customer-1' : 'booster-1', text: `line ${i}` });
  }
  const customer = await openDemo(herald.url, 'customer');
  await customer.getByTestId('order-row-1043').click();
  await chatReady(customer, 1043);
  await until(customer, () => document.querySelectorAll('[data-testid="chat-message"]').length === 20, null, 'the newest 20 messages');
  const first = await messageTexts(customer);
  assert.match(first.at(-1), /line 30/);
  assert.match(first[0], /line 11/);

  await customer.getByTestId('chat-load-older').click();
  await until(customer, () => document.querySelectorAll('[data-testid="chat-message"]').length === 30, null, 'all 30 messages');
  const all = await messageTexts(customer);
  assert.match(all[0], /line 1\b/);
  assert.match(all.at(-1), /line 30/);
  await customer.getByTestId('chat-load-older').waitFor({ state: 'hidden' });
});
