// The browser scripts the server embeds (crates/herald-server/assets/vendor/) must be
// what `npm run bundle` builds now: the herald-client bundle from src/, and the
// centrifuge SDK's browser build at the version package-lock.json pins. So they
// cannot drift from the code and the SDK the other tests run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';

import { vendorFiles, VENDOR_DIR } from '../scripts/bundle.mjs';

test('the committed vendor files equal a fresh `npm run bundle`', async () => {
  const fresh = await vendorFiles();
  assert.deepEqual(Object.keys(fresh).sort(), ['centrifuge.js', 'centrifuge.js.map', 'herald-client.js']);
  for (const [name, text] of Object.entries(fresh)) {
    let committed = '';
    try { committed = readFileSync(path.join(VENDOR_DIR, name), 'utf8'); } catch { /* missing */ }
    assert.ok(committed === text, `assets/vendor/${name} is stale: run \`npm run bundle\` in clients/js and commit it`);
  }
});

test('the two scripts define the globals Centrifuge and HeraldClient', () => {
  const context = vm.createContext({ setTimeout, clearTimeout, console });
  context.globalThis = context;
  for (const name of ['centrifuge.js', 'herald-client.js']) {
    vm.runInContext(readFileSync(path.join(VENDOR_DIR, name), 'utf8'), context, { filename: name });
  }
  vm.runInContext('globalThis.HeraldClient = HeraldClient;', context);
  assert.equal(typeof context.Centrifuge, 'function', 'Centrifuge');
  const hc = context.HeraldClient;
  for (const name of ['Inbox', 'Chat', 'Conversation', 'Status', 'StatusWatch', 'HeraldError', 'Emitter']) {
    assert.equal(typeof hc[name], 'function', `HeraldClient.${name}`);
  }
});
