// The storefront's Instagram feed, without I/O of its own: the latest
// media read page by page (`GET /me/media`, cursor paging through
// `paging.next`), turned into items and rendered as JSON and as an HTML
// fragment (escaped), published only when they changed.

import { GRAPH, withoutParam } from './client.js';

export const FIELDS = 'id,caption,media_type,media_url,permalink,thumbnail_url,timestamp,username';
export const JSON_NAME = 'instagram-feed.json';
export const HTML_NAME = 'instagram-feed.html';

/** The settings from config, with their problems. */
export function readSettings(config) {
  const int = (key, fallback) => {
    const raw = config(key);
    return raw === undefined || raw === null || raw === '' ? fallback : Number(String(raw).trim());
  };
  return {
    apiVersion: String(config('api_version') ?? 'v21.0').trim(),
    maxItems: int('max_items', 24),
    marginDays: int('refresh_margin_days', 10),
    throttleWait: int('throttle_wait_seconds', 900),
    issuedAt: config('token_issued_at'),
  };
}

export function settingsProblems(s, parseTime) {
  const problems = [];
  const range = (name, v, lo, hi) => {
    if (!Number.isInteger(v) || v < lo || v > hi) problems.push(`config \`${name}\` must be a whole number from ${lo} to ${hi}`);
  };
  if (!/^v\d+\.\d+$/.test(s.apiVersion)) problems.push(`config \`api_version\` is \`${s.apiVersion}\`: it must look like v21.0`);
  range('max_items', s.maxItems, 1, 500);
  range('refresh_margin_days', s.marginDays, 1, 59);
  range('throttle_wait_seconds', s.throttleWait, 1, 86400);
  if (s.issuedAt !== undefined && s.issuedAt !== null && s.issuedAt !== '' && parseTime(s.issuedAt) === undefined) {
    problems.push(`config \`token_issued_at\` is \`${s.issuedAt}\`: it must be an RFC 3339 time like 2026-11-20T10:00:00Z`);
  }
  return problems;
}

/** One storefront item from a media object, or undefined (nothing to show). */
export function toItem(media) {
  const image = media.media_type === 'VIDEO' ? media.thumbnail_url : media.media_url;
  if (!media.id || !image || !media.permalink) return undefined;
  return {
    id: String(media.id),
    type: String(media.media_type ?? 'IMAGE'),
    caption: typeof media.caption === 'string' ? media.caption : '',
    image_url: String(image),
    permalink: String(media.permalink),
    timestamp: String(media.timestamp ?? ''),
  };
}

/** The latest `max` media, following the cursor; `{ username, items, pages }`. */
export function fetchMedia(ig, settings) {
  const limit = Math.min(settings.maxItems, 100);
  let url = `${GRAPH}/${settings.apiVersion}/me/media?fields=${FIELDS}&limit=${limit}`;
  const items = [];
  const seen = new Set();
  let username = '';
  let pages = 0;
  while (url && items.length < settings.maxItems) {
    const page = ig.get(url);
    pages += 1;
    for (const media of page.data ?? []) {
      username ||= media.username ?? '';
      const item = toItem(media);
      if (item && !seen.has(item.id) && items.length < settings.maxItems) {
        seen.add(item.id);
        items.push(item);
      }
    }
    const next = page.paging && page.paging.next;
    // `next` carries the token: it is dropped here and added again per call.
    url = typeof next === 'string' && next.startsWith(`${GRAPH}/`) ? withoutParam(next, 'access_token') : undefined;
  }
  return { username, items, pages };
}

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);

export function renderJson(username, items) {
  return `${JSON.stringify({ username, items })}\n`;
}

/** A fragment the storefront includes: a list of linked images. */
export function renderHtml(username, items) {
  const lines = [`<ul class="instagram-feed" data-username="${escapeHtml(username)}">`];
  for (const i of items) {
    const alt = i.caption.split('\n')[0].slice(0, 200);
    lines.push(
      `  <li class="instagram-feed__item instagram-feed__item--${escapeHtml(i.type.toLowerCase())}">` +
        `<a href="${escapeHtml(i.permalink)}" rel="noopener" target="_blank">` +
        `<img src="${escapeHtml(i.image_url)}" alt="${escapeHtml(alt)}" loading="lazy"></a></li>`,
    );
  }
  lines.push('</ul>');
  return `${lines.join('\n')}\n`;
}
