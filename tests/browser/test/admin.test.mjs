// The admin page: HTTP Basic auth, the live counts of the demo windows' connections,
// channels with their presence, and a publish that reaches a demo window.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { useHerald, useBrowser, until, untilText, screenshot, ADMIN_PASSWORD } from './harness.mjs';

const herald = useHerald();
const { context, openDemo } = useBrowser();

const basic = (user, password) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

test('the admin page and its API need the admin password', async () => {
  for (const path of ['/admin', '/admin/api/overview', '/admin/api/stats', '/admin/api/presence?channel=news']) {
    const none = await fetch(`${herald.url}${path}`);
    assert.equal(none.status, 401, `${path} without credentials`);
    assert.match(none.headers.get('www-authenticate') || '', /^Basic/, `${path} asks for Basic auth`);
    const wrong = await fetch(`${herald.url}${path}`, { headers: { Authorization: basic('admin', 'wrong') } });
    assert.equal(wrong.status, 401, `${path} with a wrong password`);
  }
  const publish = await fetch(`${herald.url}/admin/api/publish`, {
    method: 'POST', body: JSON.stringify({ channel: 'news', data: { text: 'x' } }),
  });
  assert.equal(publish.status, 401, 'publish without credentials');
  const ok = await fetch(`${herald.url}/admin`, { headers: { Authorization: basic('anyone', ADMIN_PASSWORD) } });
  assert.equal(ok.status, 200, 'any user name with the password');
  assert.match(await ok.text(), /data-testid="admin-chart"/);

  // In the browser: no credentials, no page (chromium gives up on the challenge).
  const ctx = await context();
  const page = await ctx.newPage();
  const res = await page.goto(`${herald.url}/admin`).catch((e) => e);
  if (res instanceof Error) assert.match(res.message, /ERR_INVALID_AUTH_CREDENTIALS/);
  else assert.equal(res.status(), 401);
  assert.equal(await page.locator('[data-testid="admin-chart"]').count(), 0);
});

test('the admin page shows the connections and a live chart, and its publish reaches a demo window', async () => {
  const ctx = await context({ httpCredentials: { username: 'admin', password: ADMIN_PASSWORD } });
  const admin = await ctx.newPage();
  const res = await admin.goto(`${herald.url}/admin`);
  assert.equal(res.status(), 200);
  await untilText(admin, 'admin-stat-connections', '0');

  const customer = await openDemo(herald.url, 'customer');
  await untilText(admin, 'admin-stat-connections', '1');
  const booster = await openDemo(herald.url, 'booster');

  // Two demo windows: two connections, two users, on the one node.
  await untilText(admin, 'admin-stat-connections', '2');
  await untilText(admin, 'admin-stat-users', '2');
  await until(admin, () => document.querySelectorAll('[data-testid="admin-node-row"]').length === 1, null, 'one node listed');
  await untilText(admin, 'admin-node-clients', '2');
  await until(admin, () => /^\d+ node/.test(document.querySelector('[data-testid="admin-node-line"]').textContent), null, 'the node line');

  // Channels: the order channels both windows follow, with 2 clients each.
  const row = admin.locator('[data-testid="admin-channel-row"][data-channel="orders:1041"]');
  await row.waitFor();
  await until(admin, () => document.querySelector('[data-testid="admin-channel-row"][data-channel="orders:1041"] td:last-child')?.textContent === '2',
    null, 'orders:1041 has 2 clients');

  // (Its presence is the next test; here it fills the picture.)
  await row.click();

  // The chart gets a point per second; some traffic gives it a bump.
  for (let i = 0; i < 3; i++) {
    await customer.getByTestId('backend-new-booking').click();
    await booster.getByTestId('backend-notify-customer').click();
  }
  await until(admin, () => Number(document.querySelector('[data-testid="admin-stat-messages"]').textContent) > 0, null, 'a non-zero messages/s');

  // A bad publish says why.
  await admin.getByTestId('admin-publish-channel').fill('nosuchnamespace:x');
  await admin.getByTestId('admin-publish-data').fill('{"a": 1}');
  await admin.getByTestId('admin-publish-submit').click();
  await until(admin, () => document.querySelector('[data-testid="admin-publish-result"]').dataset.state === 'error', null, 'the publish answered an error');
  assert.match(await admin.getByTestId('admin-publish-result').textContent(), /error 102/);

  // Publish from the admin page to `news`: the demo windows show it.
  await admin.getByTestId('admin-publish-channel').fill('news');
  await admin.getByTestId('admin-publish-data').fill('{"text": "Maintenance tonight at 22:00 UTC"}');
  await admin.getByTestId('admin-publish-submit').click();
  await until(admin, () => document.querySelector('[data-testid="admin-publish-result"]').dataset.state === 'ok', null, 'the publish answered ok');
  assert.match(await admin.getByTestId('admin-publish-result').textContent(), /published/);
  for (const page of [customer, booster]) {
    await untilText(page, 'news-text', 'Maintenance tonight at 22:00 UTC');
    await until(page, () => [...document.querySelectorAll('[data-testid="toast"]')].some((t) => t.textContent.includes('Maintenance tonight')),
      null, 'a news toast');
  }

  // The picture, once the chart has a dozen points.
  await until(admin, () => Number(document.querySelector('[data-testid="admin-chart"]').dataset.points) >= 12, null, 'twelve seconds of chart');
  await screenshot(admin, 'admin.png', { fullPage: true });
});

test('a click on a channel shows who is subscribed', async () => {
  await openDemo(herald.url, 'customer');
  await openDemo(herald.url, 'booster');
  const ctx = await context({ httpCredentials: { username: 'admin', password: ADMIN_PASSWORD } });
  const admin = await ctx.newPage();
  await admin.goto(`${herald.url}/admin`);
  const row = admin.locator('[data-testid="admin-channel-row"][data-channel="chat:order-1041"]');
  await row.waitFor();
  await row.click();
  await until(admin, () => {
    const users = [...document.querySelectorAll('[data-testid="admin-presence-row"]')].map((r) => r.dataset.user).sort();
    return users.join(',') === 'booster-1,customer-1';
  }, null, 'the presence of chat:order-1041 lists customer-1 and booster-1');

  // A channel without presence says so instead of an empty list.
  await admin.locator('[data-testid="admin-channel-row"][data-channel="inbox:#customer-1"]').click();
  await until(admin, () => /No presence for inbox:#customer-1/.test(document.getElementById('presence-empty').textContent)
    || document.querySelectorAll('[data-testid="admin-presence-row"]').length === 1, null, 'the inbox channel answered');
});
