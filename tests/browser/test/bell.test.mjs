// The notification bell (herald-client Inbox): the unread count goes up on notify and
// down on mark read, the same in two tabs of the same user.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { useHerald, useBrowser, until, untilData, screenshot, VIEWPORT } from './harness.mjs';

const herald = useHerald();
const { context, openDemo } = useBrowser();

const items = (page) => page.evaluate(() => [...document.querySelectorAll('[data-testid="notification-item"]')]
  .map((n) => ({ id: Number(n.dataset.id), read: n.dataset.read === 'true', text: n.textContent })));

test('the bell count follows notify and mark read in two tabs', async () => {
  const ctx = await context();
  const tab1 = await openDemo(herald.url, 'customer', ctx);
  const tab2 = await openDemo(herald.url, 'customer', ctx);
  const tabs = [tab1, tab2];
  for (const tab of tabs) await untilData(tab, 'bell', 'count', '0');

  // The backend notifies the customer three times: both tabs count up, with a toast each.
  for (let n = 1; n <= 3; n++) {
    await tab1.getByTestId('backend-notify-customer').click();
    for (const tab of tabs) await untilData(tab, 'bell', 'count', String(n), `bell shows ${n}`);
  }
  for (const tab of tabs) {
    await until(tab, () => document.querySelectorAll('[data-testid="toast"]').length >= 3, null, 'three toasts');
    assert.equal((await tab.getByTestId('bell-count').textContent()).trim(), '3');
  }

  // A notification for someone else changes nothing here.
  await herald.backend('notify', { users: ['booster-1'], title: 'Not for the customer' });

  // Tab 2 opens the list and reads one: both tabs go down to 2.
  await tab2.getByTestId('bell').click();
  await until(tab2, () => document.querySelectorAll('[data-testid="notification-item"]').length === 3, null, 'three notifications listed');
  const listed = await items(tab2);
  assert.ok(listed.every((n) => !n.read), 'all unread at first');
  assert.ok(listed.every((n) => !n.text.includes('Not for the customer')));
  await tab1.getByTestId('bell').click();
  await until(tab1, () => document.querySelectorAll('[data-testid="notification-item"]').length === 3, null, 'tab 1 lists three too');
  await tab1.evaluate(() => window.scrollTo(0, 0));
  await screenshot(tab1, 'demo-bell.png', { clip: { x: VIEWPORT.width - 720, y: 0, width: 720, height: 440 } });

  await tab2.locator(`[data-testid="notification-item"][data-id="${listed[0].id}"]`).click();
  for (const tab of tabs) await untilData(tab, 'bell', 'count', '2', 'bell shows 2 after one read');
  // Tab 1's open list follows: the same notification shows as read there.
  await until(tab1, (id) => document.querySelector(`[data-testid="notification-item"][data-id="${id}"]`)?.dataset.read === 'true',
    listed[0].id, 'the read notification shows read in the other tab');

  // Mark all read from tab 1: zero everywhere and the badge hides.
  await tab1.getByTestId('bell-mark-all').click();
  for (const tab of tabs) {
    await untilData(tab, 'bell', 'count', '0', 'bell shows 0 after mark all read');
    await tab.getByTestId('bell-count').waitFor({ state: 'hidden' });
  }
  await until(tab2, () => [...document.querySelectorAll('[data-testid="notification-item"]')].every((n) => n.dataset.read === 'true'),
    null, 'every notification read in tab 2');

  // A tab opened now starts from the stored count, not from zero.
  await tab1.getByTestId('backend-notify-customer').click();
  const tab3 = await openDemo(herald.url, 'customer', ctx);
  await untilData(tab3, 'bell', 'count', '1', 'a new tab shows the stored count');
});
