// The Google Store Reviews logic under Node, the host faked at the WIT
// boundary. Run: node --test plugins/google-store-reviews/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createSdk } from '../../sdk-js/airlock-sdk.js';
import { createFakeHost } from '../../sdk-js/test/fake-host.js';
import { build, day, describe, fingerprint, optInOf, readSettings, settingsProblems } from '../src/gcr.js';

const NOW = Date.parse('2026-11-25T12:00:00Z') / 1000;

function setup(config = {}) {
  const host = createFakeHost();
  host.state.config.set('merchant_id', '123456');
  for (const [k, v] of Object.entries(config)) host.state.config.set(k, v);
  const sdk = createSdk(host.bindings);
  return { host, sdk, settings: readSettings(sdk.config) };
}

const order = (id, status, placed, extra = {}) => ({
  id,
  number: `N-${id}`,
  status,
  placed_at: placed,
  currency: 'GBP',
  customer: { email: `${id}@example.com`, name: id },
  lines: [{ sku: 'SKU-1', description: 'x', quantity: 1, unit_price: '1.00' }],
  totals: { total: '1.00' },
  ...extra,
});

test('successful orders in the window get the snippet values; others are counted out', () => {
  const { host, sdk, settings } = setup({ delivery_days: '3' });
  host.add('products', { id: 'p1', sku: 'SKU-1', gtin: '5060123456789' });
  host.add('orders', order('a', 'processing', '2026-11-24T22:30:00Z', { shipping_address: { country: 'ie' } }));
  host.add('orders', order('b', 'completed', '2026-11-20T10:00:00Z'));
  host.add('orders', order('c', 'cancelled', '2026-11-24T10:00:00Z'));
  host.add('orders', order('d', 'pending_payment', '2026-11-24T10:00:00Z'));
  host.add('orders', order('e', 'despatched', '2026-10-01T10:00:00Z'));
  host.add('orders', order('f', 'processing', '2026-11-24T10:00:00Z', { customer: { name: 'no email' } }));
  const result = build(sdk, settings, NOW);
  const file = JSON.parse(result.text);
  assert.equal(file.merchant_id, 123456);
  assert.deepEqual(file.badge, { merchant_id: 123456, position: 'BOTTOM_RIGHT' });
  assert.deepEqual(Object.keys(file.orders), ['N-a', 'N-b']);
  assert.deepEqual(file.orders['N-a'], {
    merchant_id: 123456,
    order_id: 'N-a',
    email: 'a@example.com',
    delivery_country: 'IE',
    estimated_delivery_date: '2026-11-27',
    opt_in_style: 'CENTER_DIALOG',
    products: [{ gtin: '5060123456789' }],
  });
  assert.equal(file.orders['N-b'].delivery_country, 'GB', 'the default country');
  assert.equal(
    describe(result.skipped),
    '2 not a successful order, 1 outside the window, 1 no customer email',
  );
});

test('the same records give the same bytes; a change gives another fingerprint', () => {
  const { host, sdk, settings } = setup();
  host.add('orders', order('a', 'processing', '2026-11-24T10:00:00Z'));
  const one = build(sdk, settings, NOW).text;
  assert.equal(build(sdk, settings, NOW).text, one);
  host.add('orders', order('a', 'processing', '2026-11-24T10:00:00Z', { customer: { email: 'new@example.com' } }));
  assert.notEqual(fingerprint(build(sdk, settings, NOW).text), fingerprint(one));
});

test('settings are checked and lines without a GTIN give no products', () => {
  assert.deepEqual(settingsProblems(readSettings(() => undefined)), [
    '`merchant_id` must be the Merchant Center account id (a positive number)',
  ]);
  const bad = readSettings((k) => ({ merchant_id: '1', default_country: 'GBR', opt_in_style: 'POPUP', badge_position: 'TOP' })[k]);
  assert.equal(settingsProblems(bad).length, 3);
  const none = readSettings((k) => ({ merchant_id: '1', badge_position: 'none' })[k]);
  const { sdk } = setup();
  assert.equal(JSON.parse(build(sdk, none, NOW).text).badge, null);
  const s = readSettings((k) => ({ merchant_id: '1' })[k]);
  const { values } = optInOf(order('z', 'completed', '2026-11-24T00:00:00Z'), s, new Map());
  assert.equal(values.products, undefined);
  assert.equal(day(0), '1970-01-01');
});
