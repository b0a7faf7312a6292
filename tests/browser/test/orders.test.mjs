// The orders board and the tenant dashboard: two people in two browser contexts see
// the same update at once, and a window opened later gets the current state first
// (the orders namespace runs in cache mode).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  useHerald, useBrowser, until, untilData, untilText, dataOf, screenshot,
} from './harness.mjs';

const herald = useHerald();
const { openDemo } = useBrowser();

test('the role picker links to each role', async () => {
  const res = await fetch(`${herald.url}/`);
  assert.equal(res.status, 200);
  const html = await res.text();
  for (const role of ['customer', 'booster', 'admin']) assert.match(html, new RegExp(`data-testid="role-${role}"`));
  for (const asset of ['/assets/vendor/centrifuge.js', '/assets/vendor/herald-client.js', '/assets/demo/js/main.js', '/assets/demo/demo.css']) {
    const r = await fetch(`${herald.url}${asset}`);
    assert.equal(r.status, 200, asset);
    assert.equal(r.headers.get('cache-control'), 'no-cache', asset);
  }
});

test('two windows see the same order update at once', async () => {
  const customer = await openDemo(herald.url, 'customer');
  const booster = await openDemo(herald.url, 'booster');
  for (const page of [customer, booster]) {
    for (const id of [1041, 1042, 1043]) await page.getByTestId(`order-row-${id}`).waitFor();
  }

  // The customer's window plays the backend: order 1042 goes from paid to in progress.
  await customer.getByTestId('order-row-1042').click();
  await untilText(customer, 'order-selected', 'Selected: #1042');
  assert.equal(await dataOf(customer, 'order-status-1042', 'status'), 'paid');
  await customer.getByTestId('backend-advance-status').click();
  for (const page of [customer, booster]) {
    await untilData(page, 'order-status-1042', 'status', 'in_progress');
    await untilText(page, 'order-status-1042', 'In progress');
  }
  // The booster, who did nothing, was told with a toast.
  await until(booster, () => [...document.querySelectorAll('[data-testid="toast"]')].some((t) => t.textContent.includes('Order #1042')),
    null, 'a toast about order #1042 in the booster window');

  // Progress and price, from the booster's window this time.
  await booster.getByTestId('order-row-1042').click();
  await untilText(booster, 'order-selected', 'Selected: #1042');
  await booster.getByTestId('backend-progress').click();
  await booster.getByTestId('backend-progress').click();
  for (const page of [customer, booster]) await untilText(page, 'order-progress-1042', '20%');
  const before = (await customer.getByTestId('order-price-1042').textContent()).trim();
  await booster.getByTestId('backend-price').click();
  for (const page of [customer, booster]) {
    await until(page, (b) => document.querySelector('[data-testid="order-price-1042"]').textContent.trim() !== b, before, 'the new price');
  }
  const price = (await customer.getByTestId('order-price-1042').textContent()).trim();
  assert.equal((await booster.getByTestId('order-price-1042').textContent()).trim(), price);

  // Two new orders (two quick clicks) appear in both windows.
  await booster.getByTestId('backend-create-order').click();
  await booster.getByTestId('backend-create-order').click();
  for (const page of [customer, booster]) {
    await page.getByTestId('order-row-1044').waitFor();
    await page.getByTestId('order-row-1045').waitFor();
  }
  await untilData(customer, 'order-status-1044', 'status', 'pending');
  await until(customer, () => [...document.querySelectorAll('[data-testid="toast"]')].some((t) => t.textContent.includes('New order #1044')),
    null, 'a "New order #1044" toast in the customer window');

  // A window opened now gets the current state of every order first.
  const admin = await openDemo(herald.url, 'admin');
  await admin.getByTestId('order-row-1044').waitFor();
  await untilData(admin, 'order-status-1042', 'status', 'in_progress');
  await untilText(admin, 'order-progress-1042', '20%');
  await untilText(admin, 'order-price-1042', price);
});

test('the tenant dashboard updates in every window, with a toast', async () => {
  const customer = await openDemo(herald.url, 'customer');
  const admin = await openDemo(herald.url, 'admin');
  await until(admin, () => /^\d/.test(document.querySelector('[data-testid="dash-bookings"]').textContent), null, 'dashboard loaded');
  await until(customer, () => /^\d/.test(document.querySelector('[data-testid="dash-bookings"]').textContent), null, 'dashboard loaded');
  const count = async (page) => Number((await page.getByTestId('dash-bookings').textContent()).replace(/,/g, ''));
  const start = await count(admin);
  assert.equal(await count(customer), start);

  await customer.getByTestId('backend-new-booking').click();
  await customer.getByTestId('backend-new-booking').click();
  for (const page of [customer, admin]) {
    await until(page, (n) => Number(document.querySelector('[data-testid="dash-bookings"]').textContent.replace(/,/g, '')) === n,
      start + 2, `bookings ${start + 2}`);
  }
  await until(admin, () => [...document.querySelectorAll('[data-testid="toast"]')].some((t) => t.textContent.includes('New booking')),
    null, 'a "New booking" toast in the admin window');

  // A picture for docs/demo.md and the README: the customer's window with some life
  // in it, the booster online too.
  const booster = await openDemo(herald.url, 'booster');
  await untilData(customer, 'member-booster', 'online', 'true');
  await customer.getByTestId('order-row-1041').click();
  await untilText(customer, 'order-selected', 'Selected: #1041');
  await customer.evaluate(() => document.querySelectorAll('[data-testid="toast"]').forEach((t) => t.remove()));
  await customer.getByTestId('backend-progress').click();
  await untilText(customer, 'order-progress-1041', '70%');
  await untilText(booster, 'order-progress-1041', '70%');
  await customer.evaluate(() => window.scrollTo(0, 0));
  await screenshot(customer, 'demo-overview.png');
});
