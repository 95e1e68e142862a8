// Unit tests of airlock-sdk.js under Node, the host faked at the WIT
// boundary (fake-host.js). Run: node --test plugins/sdk-js/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createSdk, HostError, HttpFailure, RetryLater, outcomeFor, retryAfterSeconds } from '../airlock-sdk.js';
import { createFakeHost, hostError } from './fake-host.js';

function setup() {
  const host = createFakeHost();
  return { host, sdk: createSdk(host.bindings) };
}

test('walks every page with the cursor and parses bodies', () => {
  const { host, sdk } = setup();
  for (let i = 0; i < 7; i++) host.add('products', { id: `p${i}`, n: i });
  host.add('products', { id: 'gone' }, { deleted: true });
  const seen = [...sdk.iterRecords('products', { pageSize: 3 })];
  assert.deepEqual(seen.map((r) => r.id), ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6']);
  assert.deepEqual(seen[4].body, { id: 'p4', n: 4 });
  assert.equal(seen[4].updatedAt, 1700000000);
  assert.equal(host.state.pageCalls, 3);
  const all = [...sdk.iterRecords('products', { includeDeleted: true })];
  assert.equal(all.at(-1).body, null);
});

test('host errors carry their case; unavailable is retryable', () => {
  const { host, sdk } = setup();
  host.state.failWith = 'not-granted';
  assert.throws(() => [...sdk.iterRecords('orders')], (e) => e instanceof HostError && e.kind === 'not-granted' && !e.retryable);
  host.state.failWith = 'unavailable';
  let caught;
  try {
    [...sdk.iterRecords('orders')];
  } catch (e) {
    caught = e;
  }
  assert.equal(outcomeFor(caught).status, 'retry');
});

test('the artifact writer buffers into chunks and flushes the rest', () => {
  const { host, sdk } = setup();
  const out = new sdk.ArtifactWriter('sitemap.xml', 'application/xml', 100).begin();
  for (let i = 0; i < 25; i++) out.write('0123456789');
  out.write('é');
  out.close();
  assert.equal(host.artifact('sitemap.xml'), '0123456789'.repeat(25) + 'é');
  assert.deepEqual(host.state.appends.map(([, n]) => n), [100, 100, 52]);
  assert.equal(out.bytesWritten, 252);
});

test('discard drops the artifact; a bad name is a host error', () => {
  const { host, sdk } = setup();
  const out = new sdk.ArtifactWriter('feed.xml', 'application/xml', 4).begin();
  out.write('partial');
  out.discard();
  assert.equal(host.state.begun.has('feed.xml'), false);
  assert.throws(() => new sdk.ArtifactWriter('a/b', 'text/plain').begin(), (e) => e.kind === 'invalid-name');
});

test('JSON requests and the classification of answers', () => {
  const { host, sdk } = setup();
  const enc = new TextEncoder();
  host.state.answers.push({ status: 200, headers: [], body: enc.encode('{"a":1}') });
  const got = sdk.requestJson('POST', 'https://api.example/x', { b: 'é' });
  assert.deepEqual(got.json(), { a: 1 });
  const sent = host.state.requests[0];
  assert.equal(new TextDecoder().decode(sent.body), '{"b":"é"}');
  assert.deepEqual(sent.headers, [['accept', 'application/json'], ['content-type', 'application/json']]);

  const cases = [
    [429, [['retry-after', '30']], RetryLater, 30],
    [503, [['retry-after', 'Wed, 21 Oct 2026 07:28:00 GMT']], RetryLater, undefined],
    [500, [], RetryLater, undefined],
    [400, [['retry-after', '5']], HttpFailure],
    [401, [], HttpFailure],
    [404, [], HttpFailure],
  ];
  for (const [status, headers, kind, after] of cases) {
    host.state.answers.push({ status, headers, body: new Uint8Array() });
    assert.throws(
      () => sdk.requestJson('GET', 'https://api.example/'),
      (e) => e instanceof kind && (kind === RetryLater ? e.retryAfter === after : e.status === status),
      `status ${status}`,
    );
  }
  host.state.answers.push({ status: 304, headers: [], body: new Uint8Array() });
  assert.equal(sdk.requestJson('GET', 'https://api.example/').status, 304);
});

test('network failures retry; refusals do not', () => {
  const { host, sdk } = setup();
  host.state.answers.push(hostError('timeout'));
  assert.throws(() => sdk.requestJson('GET', 'https://api.example/'), RetryLater);
  host.state.answers.push(hostError('connection-failed', 'reset'));
  assert.throws(() => sdk.requestJson('GET', 'https://api.example/'), RetryLater);
  host.state.answers.push(hostError('denied', { rule: 'no-matching-entry', reason: 'api.example is not granted' }));
  assert.throws(
    () => sdk.requestJson('GET', 'https://api.example/'),
    (e) => e instanceof HttpFailure && /denied: api.example is not granted/.test(e.message),
  );
});

test('Retry-After parsing', () => {
  for (const [value, expected] of [
    [undefined, undefined],
    ['0', 0],
    [' 120 ', 120],
    ['-1', undefined],
    ['1.5', undefined],
    ['9999999', 86400],
  ]) {
    assert.equal(retryAfterSeconds(value), expected, String(value));
  }
});

test('logging and config', () => {
  const { host, sdk } = setup();
  host.state.config.set('base_url', 'https://shop.example');
  assert.equal(sdk.config('base_url'), 'https://shop.example');
  assert.equal(sdk.config('missing', 'x'), 'x');
  sdk.warn('careful');
  assert.deepEqual(host.state.logs, [['warn', 'careful']]);
});

test('utf8Length agrees with TextEncoder', async () => {
  const { utf8Length } = await import('../airlock-sdk.js');
  for (const s of ['', 'abc', 'é', '中文', '🛋 sofa', '\ud800x', 'a\udc00', '\ud83d']) {
    assert.equal(utf8Length(s), new TextEncoder().encode(s).length, JSON.stringify(s));
  }
});

test('bytes are appended as they are, after the text before them', () => {
  const { host, sdk } = setup();
  const out = new sdk.ArtifactWriter('a.bin', 'application/octet-stream').begin();
  out.write('head;');
  out.write(new Uint8Array([0x41, 0x42]));
  out.close();
  assert.equal(host.artifact('a.bin'), 'head;AB');
  assert.equal(out.bytesWritten, 7);
});
