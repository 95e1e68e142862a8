// The sitemap connector's logic under Node, the host faked at the WIT
// boundary (plugins/sdk-js/test/fake-host.js): the split at exactly 50,000
// URLs, the byte limit, the index, escaping. Run: node --test plugins/sitemap/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createSdk } from '../../sdk-js/airlock-sdk.js';
import { createFakeHost } from '../../sdk-js/test/fake-host.js';
import { escapeXml, encodeUrl, lastmod } from '../src/sitemap.js';
import { publish, readSettings, settingsProblems, partUrl } from '../src/feed.js';

function setup(products, { categories = [], config = {} } = {}) {
  const host = createFakeHost();
  host.state.config.set('base_url', 'https://shop.example/');
  for (const [k, v] of Object.entries(config)) host.state.config.set(k, v);
  for (const c of categories) host.add('categories', c);
  for (let i = 0; i < products; i++) host.add('products', { id: `p${i}`, updated_at: '2026-11-20T16:42:10Z' });
  const sdk = createSdk(host.bindings);
  return { host, sdk, settings: readSettings(sdk.config) };
}

const locs = (xml) => [...xml.matchAll(/<loc>([^<]*)<\/loc>/g)].map((m) => m[1]);
const unescape = (s) =>
  s.replace(/&(amp|lt|gt|quot|apos);/g, (_, e) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e]);

function assertUrlset(xml, count) {
  assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<urlset xmlns="http:\/\/www.sitemaps.org\/schemas\/sitemap\/0.9">\n/);
  assert.ok(xml.endsWith('</urlset>\n'));
  assert.equal((xml.match(/<url>/g) ?? []).length, count);
  assert.equal((xml.match(/<\/url>/g) ?? []).length, count);
}

test('50,000 URLs are one sitemap.xml; no part is kept', () => {
  const { host, sdk, settings } = setup(50000);
  const result = publish(sdk, settings);
  assert.deepEqual([result.urls, result.parts], [50000, 0]);
  const xml = host.artifact('sitemap.xml');
  assertUrlset(xml, 50000);
  assert.equal(locs(xml)[49999], 'https://shop.example/products/p49999');
  assert.equal(host.state.begun.has('sitemap-1.xml'), false);
  assert.equal(host.state.begun.get('sitemap.xml').contentType, 'application/xml');
});

test('50,001 URLs are an index of two parts: 50,000 and 1', () => {
  const { host, sdk, settings } = setup(50001);
  const result = publish(sdk, settings);
  assert.deepEqual([result.urls, result.parts], [50001, 2]);
  const index = host.artifact('sitemap.xml');
  assert.match(index, /<sitemapindex xmlns="http:\/\/www.sitemaps.org\/schemas\/sitemap\/0.9">/);
  assert.deepEqual(locs(index), ['https://shop.example/sitemap-1.xml', 'https://shop.example/sitemap-2.xml']);
  assert.equal((index.match(/<lastmod>2026-11-20T16:42:10Z<\/lastmod>/g) ?? []).length, 2);
  assertUrlset(host.artifact('sitemap-1.xml'), 50000);
  const second = host.artifact('sitemap-2.xml');
  assertUrlset(second, 1);
  assert.deepEqual(locs(second), ['https://shop.example/products/p50000']);
});

test('a part ends before it would pass the byte limit', () => {
  const { host, sdk, settings } = setup(100);
  // Each entry is 99 bytes; head and tail ~ 110: 10 entries fit in 1,100 bytes.
  const result = publish(sdk, settings, { maxBytes: 1100 });
  assert.equal(result.urls, 100);
  let total = 0;
  for (let n = 1; n <= result.parts; n++) {
    const part = host.artifact(`sitemap-${n}.xml`);
    assert.ok(Buffer.byteLength(part) <= 1100, `part ${n} is ${Buffer.byteLength(part)} bytes`);
    total += locs(part).length;
  }
  assert.equal(total, 100);
  assert.ok(result.parts >= 10);
});

test('parts_url places the parts (a template with {name})', () => {
  const { host, sdk, settings } = setup(5, { config: { parts_url: 'https://feeds.example/f/acme/sitemap/{name}?token=a&b' } });
  publish(sdk, settings, { maxUrls: 2 });
  assert.deepEqual(locs(host.artifact('sitemap.xml')), [
    'https://feeds.example/f/acme/sitemap/sitemap-1.xml?token=a&amp;b',
    'https://feeds.example/f/acme/sitemap/sitemap-2.xml?token=a&amp;b',
    'https://feeds.example/f/acme/sitemap/sitemap-3.xml?token=a&amp;b',
  ]);
  assert.equal(partUrl('https://x.example/s', 'sitemap-1.xml'), 'https://x.example/s/sitemap-1.xml');
});

test('categories, own URLs, inactive and off-host records, escaping', () => {
  const { host, sdk, settings } = setup(0, {
    categories: [
      { id: 'sofas', name: 'Sofas', url: "https://shop.example/c/sofas?a=1&b='2'", updated_at: '2026-10-01T08:00:00+01:00' },
      { id: 'hidden', name: 'Hidden', active: false },
      { id: 'tables & chairs', name: 'T' },
    ],
  });
  host.add('products', { id: 'p1', url: 'https://shop.example/p/café <1>' }, { updatedAt: 1764000000 });
  host.add('products', { id: 'p2', url: 'https://elsewhere.example/p2' });
  host.add('products', { id: 'p3', status: 'archived' });
  const result = publish(sdk, settings);
  assert.equal(result.urls, 3);
  assert.match(result.summary, /1 on another host/);
  assert.match(result.summary, /2 inactive/);
  const xml = host.artifact('sitemap.xml');
  assert.deepEqual(locs(xml).map(unescape), [
    "https://shop.example/c/sofas?a=1&b='2'",
    'https://shop.example/categories/tables%20%26%20chairs',
    'https://shop.example/p/caf%C3%A9%20%3C1%3E',
  ]);
  assert.match(xml, /<lastmod>2026-10-01T08:00:00\+01:00<\/lastmod>/);
  assert.match(xml, /<lastmod>2025-11-24T16:00:00Z<\/lastmod>/);
  assert.doesNotMatch(xml, /<loc>[^<]*[<>"'][^<]*<\/loc>/);
});

test('nothing to publish begins nothing that stays', () => {
  const { host, sdk, settings } = setup(0);
  const result = publish(sdk, settings);
  assert.equal(result.urls, 0);
  assert.equal(host.state.begun.size, 0);
});

test('a store failure mid-walk leaves nothing begun', () => {
  const { host, sdk, settings } = setup(1200);
  let calls = 0;
  const changes = host.bindings.records.changes;
  host.bindings.records.changes = (...args) => {
    if (++calls === 2) {
      const e = new Error('unavailable');
      e.payload = { tag: 'unavailable', val: 'store down' };
      throw e;
    }
    return changes(...args);
  };
  assert.throws(() => publish(sdk, settings), (e) => e.retryable);
  assert.equal(host.state.begun.size, 0);
});

test('settings and helpers', () => {
  assert.deepEqual(settingsProblems(readSettings(() => undefined)), ["`base_url` must be the shop's absolute http(s) address"]);
  assert.equal(escapeXml('a&b<c>"d\'\u0001'), 'a&amp;b&lt;c&gt;&quot;d&apos;');
  assert.equal(encodeUrl('https://x.example/a b/é'), 'https://x.example/a%20b/%C3%A9');
  assert.equal(lastmod(undefined, 0n), '1970-01-01T00:00:00Z');
  assert.equal(lastmod('2026-01-02', 0), '2026-01-02');
});
