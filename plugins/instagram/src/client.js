// Instagram's Graph API (graph.instagram.com) as the connector calls it:
// the token in the `access_token` query parameter, as Instagram documents;
// errors read from Instagram's body `{ error: { message, type, code,
// error_subcode } }`: throttling (codes 4, 17, 32, 613) and 5xx are passing
// (`retry`), 190 (the token expired or was revoked) needs a person.
// URLs with the token are never logged: messages carry the path only.

import { HttpFailure, RetryLater } from '../../sdk-js/airlock-sdk.js';

export const GRAPH = 'https://graph.instagram.com';
export const THROTTLE_CODES = new Set([4, 17, 32, 613]);

/** The token was refused (190): the installation needs a new one. */
export class TokenRefused extends Error {}

/** The URL without its query (which holds the token). */
export const pathOf = (url) => url.split(/[?#]/)[0];

/** `url` without query parameter `name` (no URL class: the engine may lack one). */
export function withoutParam(url, name) {
  const at = url.indexOf('?');
  if (at < 0) return url;
  const base = url.slice(0, at);
  const query = url.slice(at + 1);
  const kept = query.split('&').filter((p) => p && p.split('=')[0] !== name);
  return kept.length ? `${base}?${kept.join('&')}` : base;
}

/** Instagram's error in a body, or undefined. */
export function graphError(bytes) {
  try {
    const body = JSON.parse(new TextDecoder().decode(bytes));
    return body && typeof body.error === 'object' ? body.error : undefined;
  } catch {
    return undefined;
  }
}

/** The exception for a failed answer. */
export function failureFor(status, error, url, throttleWait) {
  const code = error && Number(error.code);
  const what = error ? `${error.message ?? 'error'} (code ${code}${error.error_subcode ? `/${error.error_subcode}` : ''})` : `HTTP ${status}`;
  if (THROTTLE_CODES.has(code)) {
    return new RetryLater(`Instagram throttled the app: ${what}`, throttleWait);
  }
  if (code === 190) {
    return new TokenRefused(`Instagram refused the access token: ${what}`);
  }
  if (status === 429 || status >= 500) {
    return new RetryLater(`Instagram answered ${status} to ${pathOf(url)}: ${what}`);
  }
  return new HttpFailure(`Instagram refused ${pathOf(url)}: ${what}`, status);
}

/** GETs on the Graph API with one token. */
export class Instagram {
  constructor(sdk, token, { throttleWait = 900 } = {}) {
    this.sdk = sdk;
    this.token = token;
    this.throttleWait = throttleWait;
    this.calls = 0;
  }

  /** GET `url` (absolute, on graph.instagram.com) with the token added; the JSON. */
  get(url) {
    if (!url.startsWith(`${GRAPH}/`)) {
      throw new HttpFailure(`not an Instagram Graph URL: ${pathOf(url)}`);
    }
    const base = withoutParam(url, 'access_token');
    const full = `${base}${base.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(this.token)}`;
    this.calls += 1;
    const response = this.sdk.send('GET', full, [['accept', 'application/json']]);
    if (response.status >= 200 && response.status < 300) {
      return JSON.parse(new TextDecoder().decode(response.body));
    }
    throw failureFor(response.status, graphError(response.body), url, this.throttleWait);
  }
}
