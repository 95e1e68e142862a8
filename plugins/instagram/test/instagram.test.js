// The Instagram connector's logic under Node, the host faked at the WIT
// boundary (plugins/sdk-js/test/fake-host.js, plus a storage fake here):
// the token refresh decision, paging, rendering, severities.
// Run: node --test plugins/instagram/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createSdk } from '../../sdk-js/airlock-sdk.js';
import { createFakeHost } from '../../sdk-js/test/fake-host.js';
import { runFeed } from '../src/connector.js';
import { withoutParam } from '../src/client.js';
import { escapeHtml, renderHtml, toItem } from '../src/feed.js';
import { DAY, currentToken, fingerprint, parseTime, refreshDecision } from '../src/token.js';

const NOW = 1_795_000_000;
const enc = (v) => new TextEncoder().encode(JSON.stringify(v));
const answer = (status, body) => ({ status, headers: [], body: enc(body) });
const media = (i) => ({
  id: `m${i}`, media_type: i % 3 === 2 ? 'VIDEO' : 'IMAGE', caption: `Post <${i}> & more`,
  media_url: `https://cdn.example/m${i}.jpg`, thumbnail_url: `https://cdn.example/t${i}.jpg`,
  permalink: `https://www.instagram.com/p/m${i}/`, timestamp: '2026-11-20T10:00:00+0000', username: 'acme_shop',
});

function setup({ config = {}, stored } = {}) {
  const host = createFakeHost();
  for (const [k, v] of Object.entries({ max_items: '3', ...config })) host.state.config.set(k, v);
  const kv = new Map();
  if (stored) kv.set('sealed/token', enc(stored));
  let checkpoints = 0;
  const storage = {
    get: (k) => kv.get(k),
    set: (k, v) => kv.set(k, v),
    checkpoint: () => { checkpoints += 1; },
  };
  const env = { sdk: createSdk(host.bindings), storage, secret: (k) => (k === 'access_token' ? 'IGAA-config-token' : undefined) };
  const ctx = (feed, mode = 'live') => ({ ...host.context(feed), mode, scheduledAt: BigInt(NOW) });
  const stored_ = (k) => (kv.has(k) ? JSON.parse(new TextDecoder().decode(kv.get(k))) : undefined);
  return { host, env, ctx, stored: stored_, checkpoints: () => checkpoints };
}

test('a token is refreshed when 24 h old and within the margin, never in test mode', () => {
  const state = (age, left) => ({ refreshedAt: NOW - age, expiresAt: NOW + left });
  assert.equal(refreshDecision(state(DAY - 1, 5 * DAY), NOW, 10), 'too-new');
  assert.equal(refreshDecision(state(50 * DAY, 10 * DAY + 1), NOW, 10), 'fresh');
  assert.equal(refreshDecision(state(51 * DAY, 9 * DAY), NOW, 10), 'due');
  assert.equal(refreshDecision({ refreshedAt: null, expiresAt: null }, NOW, 10), 'due');

  const { host, env, ctx, stored } = setup({ config: { token_issued_at: '2026-09-25T00:00:00Z' } });
  host.state.answers.push(answer(200, { access_token: 'IGAA-new', token_type: 'bearer', expires_in: 60 * DAY }));
  host.state.answers.push(answer(200, { data: [media(1)] }));
  const out = runFeed(env, ctx('media'));
  assert.equal(out.status, 'ok', out.message);
  assert.match(host.state.requests[0].url, /^https:\/\/graph\.instagram\.com\/refresh_access_token\?grant_type=ig_refresh_token&access_token=IGAA-config-token$/);
  assert.match(host.state.requests[1].url, /access_token=IGAA-new$/);
  assert.equal(stored('sealed/token').token, 'IGAA-new');
  assert.equal(stored('sealed/token').source, fingerprint('IGAA-config-token'));
  assert.ok(!host.state.logs.some(([, m]) => m.includes('IGAA')), 'no token in the log');

  const t = setup({ config: { token_issued_at: '2026-09-25T00:00:00Z' } });
  t.host.state.answers.push(answer(200, { data: [media(1)] }));
  const out2 = runFeed(t.env, t.ctx('media', 'test'));
  assert.match(out2.message, /token refresh due: not sent in test mode/);
  assert.equal(t.host.state.requests.length, 1, 'only the media read');
});

test('a newly configured token replaces the stored one', () => {
  const stored = { token: 'IGAA-old-refreshed', refreshedAt: NOW - DAY, expiresAt: NOW + 59 * DAY, source: fingerprint('IGAA-previous') };
  assert.equal(currentToken(stored, 'IGAA-config-token', undefined).token, 'IGAA-config-token');
  assert.equal(currentToken({ ...stored, source: fingerprint('IGAA-config-token') }, 'IGAA-config-token', undefined).token, 'IGAA-old-refreshed');
});

test('media are paged with the cursor up to max_items and rendered escaped', () => {
  const { host, env, ctx } = setup({ stored: { token: 'IGAA-s', refreshedAt: NOW - DAY * 2, expiresAt: NOW + 58 * DAY, source: fingerprint('IGAA-config-token') } });
  host.state.answers.push(answer(200, { data: [media(1), media(2)], paging: { cursors: { after: 'c1' }, next: 'https://graph.instagram.com/v21.0/me/media?fields=id&limit=3&access_token=IGAA-s&after=c1' } }));
  host.state.answers.push(answer(200, { data: [media(3), media(4)], paging: { next: 'https://graph.instagram.com/v21.0/me/media?after=c2' } }));
  const out = runFeed(env, ctx('media'));
  assert.equal(out.status, 'ok', out.message);
  assert.equal(out.items, 3);
  assert.equal(host.state.requests.length, 2, 'stops once max_items are in');
  assert.equal((host.state.requests[1].url.match(/access_token=/g) ?? []).length, 1);
  const feed = JSON.parse(host.artifact('instagram-feed.json'));
  assert.deepEqual(feed.items.map((i) => i.id), ['m1', 'm2', 'm3']);
  assert.equal(feed.items[1].image_url, 'https://cdn.example/t2.jpg', 'a video shows its thumbnail');
  const html = host.artifact('instagram-feed.html');
  assert.match(html, /alt="Post &lt;1&gt; &amp; more"/);
  assert.equal(toItem({ id: 'x' }), undefined);
  assert.equal(escapeHtml(`"'<>&`), '&quot;&#39;&lt;&gt;&amp;');
  assert.ok(renderHtml('a', []).startsWith('<ul class="instagram-feed"'));
  assert.equal(withoutParam('https://g/x?a=1&access_token=T&b=2', 'access_token'), 'https://g/x?a=1&b=2');
});

test('throttling is retry, 190 an error asking for a new token, bad config an error', () => {
  for (const code of [4, 17, 32, 613]) {
    const { host, env, ctx } = setup({ config: { token_issued_at: '2026-11-17T00:00:00Z' } });
    host.state.answers.push(answer(400, { error: { message: 'Application request limit reached', type: 'OAuthException', code } }));
    const out = runFeed(env, ctx('media'));
    assert.equal(out.status, 'retry', `${code}`);
    assert.equal(out.retryAfterSeconds, 900);
  }
  const { host, env, ctx } = setup({ config: { token_issued_at: '2026-11-17T00:00:00Z' } });
  host.state.answers.push(answer(400, { error: { message: 'Error validating access token', type: 'OAuthException', code: 190, error_subcode: 463 } }));
  const out = runFeed(env, ctx('media'));
  assert.equal(out.status, 'error');
  assert.match(out.message, /code 190\/463.*airlock reauthorise acme\/feeds --config-file FILE/);
  const bad = setup({ config: { max_items: '0', token_issued_at: 'yesterday' } });
  const o = runFeed(bad.env, bad.ctx('media'));
  assert.equal(o.status, 'error');
  assert.match(o.message, /max_items.*token_issued_at/s);
  assert.equal(parseTime('2026-11-20T10:00:00Z'), 1795168800);
});
