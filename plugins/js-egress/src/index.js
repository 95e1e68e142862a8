// A JavaScript Airlock connector that reaches third parties with the
// language's ordinary HTTP client, `fetch` (wasi:http under the hood). The
// host applies the same egress policy, test-mode suppression and audit as
// to airlock:connector/http.
//
// Build with `scripts/build-plugins.sh` (componentize-js, through plugins/js-tools/build.mjs).
//
// Feed `probe` makes four requests named by config and logs each result:
//   allowed_url  (GET, should be allowed)
//   denied_url   (GET, to a host the installation was not granted)
//   redirect_url (GET, answered by a redirect to a host not granted)
//   post_url     (POST, suppressed when the installation is in test mode)
//
// Feed `headers` fetches allowed_url once per forwarding, proxy or hop-by-hop
// header, then once without; wasi:http refuses to set any of them (the same
// list airlock:connector/http refuses), and the fake server records what
// arrived.

import { write } from 'airlock:connector/log@0.1.0';
import { get } from 'airlock:connector/config@0.1.0';

async function attempt(label, url, init) {
  try {
    const response = await fetch(url, init);
    const text = await response.text();
    write('info', `${label} -> status ${response.status} (${text.length} bytes)`);
    return true;
  } catch (e) {
    write('info', `${label} -> error: ${e && e.message ? e.message : e}`);
    return false;
  }
}

const FORWARDING = [
  'Forwarded',
  'X-Forwarded-For',
  'X-Forwarded-Host',
  'X-Real-IP',
  'Via',
  'Proxy-Authorization',
  'Connection',
  'Upgrade',
];

async function headers() {
  const url = get('allowed_url');
  for (const name of FORWARDING) {
    await attempt(name, url, { method: 'GET', headers: { [name]: '203.0.113.9' } });
  }
  await attempt('plain', url, { method: 'GET' });
  return { status: 'ok', message: 'headers probed', items: 0 };
}

export async function run(ctx) {
  if (ctx.feed === 'headers') {
    return headers();
  }
  if (ctx.feed !== 'probe') {
    return { status: 'error', message: `unknown feed \`${ctx.feed}\``, items: 0 };
  }
  let sent = 0;
  for (const [label, key, init] of [
    ['allowed', 'allowed_url', { method: 'GET' }],
    ['denied', 'denied_url', { method: 'GET' }],
    ['redirect', 'redirect_url', { method: 'GET' }],
    ['post', 'post_url', { method: 'POST', body: 'stock=5' }],
  ]) {
    const url = get(key);
    if (url && (await attempt(label, url, init))) {
      sent += 1;
    }
  }
  return { status: 'ok', message: `${sent} of 4 requests answered`, items: sent };
}

export function check() {
  // `result<_, string>`: returning is ok; throwing a string is err.
  if (!get('allowed_url')) {
    throw 'config `allowed_url` is not set';
  }
}
