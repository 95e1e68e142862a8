// The sitemap feed's logic over the SDK: settings, which records become
// URLs, and the walk. No `airlock:connector` import, so Node runs it in tests.

import { SitemapSet, lastmod, locationOf } from './sitemap.js';

export const CONTENT_TYPE = 'application/xml';

/** The installation's config. */
export function readSettings(get) {
  const base = (get('base_url') ?? '').replace(/\/+$/, '');
  return {
    base,
    partsUrl: get('parts_url') ?? `${base}/{name}`,
    categories: (get('include_categories') ?? 'true') === 'true',
  };
}

export function settingsProblems(settings) {
  const problems = [];
  if (!/^https?:\/\/[^/\s?#]+/i.test(settings.base)) {
    problems.push("`base_url` must be the shop's absolute http(s) address");
  } else if (!/^https?:\/\//i.test(settings.partsUrl)) {
    problems.push('`parts_url` must be an absolute http(s) URL');
  }
  return problems;
}

/** Where part `name` is fetched: parts_url with `{name}` replaced, else `/name` appended. */
export function partUrl(template, name) {
  return template.includes('{name}') ? template.replace('{name}', name) : `${template.replace(/\/+$/, '')}/${name}`;
}

/**
 * Walks categories (if enabled) then products and writes the sitemap.
 * `limits` ({ maxUrls, maxBytes }) is for tests.
 * Returns `{ urls, parts, summary }`.
 */
export function publish(sdk, settings, limits = {}) {
  const writers = [];
  const set = new SitemapSet({
    open: (name) => {
      const w = new sdk.ArtifactWriter(name, CONTENT_TYPE).begin();
      writers.push(w);
      return w;
    },
    partUrl: (name) => partUrl(settings.partsUrl, name),
    ...limits,
  });
  const skipped = { inactive: 0, 'on another host': 0 };
  const add = (record, url, fallbackPath) => {
    const loc = locationOf(settings.base, url, fallbackPath);
    if (loc === null) {
      skipped['on another host'] += 1;
      return;
    }
    set.add(loc, lastmod(record.body.updated_at, record.updatedAt));
  };
  try {
    if (settings.categories) {
      for (const record of sdk.iterRecords('categories')) {
        if (record.body.active === false) {
          skipped.inactive += 1;
          continue;
        }
        add(record, record.body.url, `/categories/${encodeURIComponent(record.id)}`);
      }
    }
    for (const record of sdk.iterRecords('products')) {
      if ((record.body.status ?? 'active') !== 'active') {
        skipped.inactive += 1;
        continue;
      }
      add(record, record.body.url, `/products/${encodeURIComponent(record.id)}`);
    }
  } catch (e) {
    set.abandon();
    throw e;
  }
  const parts = Object.entries(skipped).filter(([, n]) => n > 0);
  const summary = parts.length ? `left out: ${parts.map(([k, n]) => `${n} ${k}`).join(', ')}` : 'none left out';
  if (set.urls === 0) {
    set.abandon();
    return { urls: 0, parts: 0, summary };
  }
  const result = set.finish();
  sdk.info(`sitemap: ${result.urls} URLs, ${result.parts} parts, ${summary}`);
  return { ...result, summary };
}
