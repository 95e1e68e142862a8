// The Google Customer Reviews opt-in values, from the tenant's records. No
// `airlock:connector` import, so Node runs it in tests (test/gcr.test.js).
//
// A successful order is one paid and not undone: processing, despatched or
// completed. Each gets what GCR's `surveyoptin.render` takes (API notes
// §5c): merchant_id, order_id, email, delivery_country,
// estimated_delivery_date (YYYY-MM-DD) and, when its products have them,
// products[].gtin.

export const ARTIFACT = 'gcr-opt-ins.json';
export const CONTENT_TYPE = 'application/json';
export const STYLES = [
  'CENTER_DIALOG',
  'BOTTOM_RIGHT_DIALOG',
  'BOTTOM_LEFT_DIALOG',
  'TOP_RIGHT_DIALOG',
  'TOP_LEFT_DIALOG',
  'BOTTOM_TRAY',
];
export const BADGE_POSITIONS = ['BOTTOM_RIGHT', 'BOTTOM_LEFT', 'INLINE', 'none'];
const SUCCESSFUL = new Set(['processing', 'despatched', 'completed']);
const DAY = 86400;

/** The installation's config. */
export function readSettings(get) {
  const int = (key, fallback) => {
    const v = get(key);
    return v === undefined || v === null || v === '' ? fallback : Number(v);
  };
  return {
    merchantId: int('merchant_id', NaN),
    deliveryDays: int('delivery_days', 5),
    windowDays: int('window_days', 14),
    defaultCountry: (get('default_country') ?? 'GB').trim().toUpperCase(),
    style: get('opt_in_style') ?? 'CENTER_DIALOG',
    badge: get('badge_position') ?? 'BOTTOM_RIGHT',
  };
}

export function settingsProblems(s) {
  const problems = [];
  if (!Number.isSafeInteger(s.merchantId) || s.merchantId <= 0) {
    problems.push('`merchant_id` must be the Merchant Center account id (a positive number)');
  }
  if (!Number.isInteger(s.deliveryDays) || s.deliveryDays < 0 || s.deliveryDays > 90) {
    problems.push('`delivery_days` must be 0 to 90');
  }
  if (!Number.isInteger(s.windowDays) || s.windowDays < 1 || s.windowDays > 90) {
    problems.push('`window_days` must be 1 to 90');
  }
  if (!/^[A-Z]{2}$/.test(s.defaultCountry)) {
    problems.push('`default_country` must be a two-letter country code such as GB');
  }
  if (!BADGE_POSITIONS.includes(s.badge)) {
    problems.push(`\`badge_position\` must be one of ${BADGE_POSITIONS.join(', ')}`);
  }
  if (!STYLES.includes(s.style)) {
    problems.push(`\`opt_in_style\` must be one of ${STYLES.join(', ')}`);
  }
  return problems;
}

/** Unix seconds of an RFC 3339 time, or NaN. */
function seconds(time) {
  return typeof time === 'string' ? Math.floor(Date.parse(time) / 1000) : NaN;
}

/** YYYY-MM-DD of Unix seconds, UTC. */
export function day(secs) {
  return new Date(secs * 1000).toISOString().slice(0, 10);
}

/** The snippet's values for `order`, or the reason it has none. */
export function optInOf(order, settings, gtins) {
  if (!SUCCESSFUL.has(order.status)) return { skip: 'not a successful order' };
  const email = (order.customer?.email ?? '').trim();
  if (!email.includes('@')) return { skip: 'no customer email' };
  const placed = seconds(order.placed_at);
  if (Number.isNaN(placed)) return { skip: 'no order date' };
  const country = (order.shipping_address?.country ?? order.billing_address?.country ?? settings.defaultCountry)
    .trim()
    .toUpperCase();
  const products = [];
  for (const line of order.lines ?? []) {
    if (line.cancelled) continue;
    const gtin = gtins.get(line.sku) ?? gtins.get(line.product_id);
    if (gtin && !products.some((p) => p.gtin === gtin)) products.push({ gtin });
  }
  const values = {
    merchant_id: settings.merchantId,
    order_id: order.number ?? order.id,
    email,
    delivery_country: country,
    estimated_delivery_date: day(placed + settings.deliveryDays * DAY),
    opt_in_style: settings.style,
  };
  if (products.length) values.products = products;
  return { placed, values };
}

/** FNV-1a (32 bits) of a string's UTF-16 code units, with its length: a change check. */
export function fingerprint(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${text.length}:${h.toString(16)}`;
}

/**
 * Builds the file for orders placed within the window ending at `now`
 * (Unix seconds): `{ text, orders, skipped }`. Orders are keyed by the id
 * the storefront knows (the order number), in order, so the same records
 * give the same bytes.
 */
export function build(sdk, settings, now) {
  const gtins = new Map();
  for (const p of sdk.iterRecords('products')) {
    if (p.body.gtin) {
      if (p.body.sku) gtins.set(p.body.sku, p.body.gtin);
      gtins.set(p.id, p.body.gtin);
    }
  }
  const from = now - settings.windowDays * DAY;
  const entries = [];
  const skipped = {};
  for (const r of sdk.iterRecords('orders')) {
    const { skip, placed, values } = optInOf(r.body, settings, gtins);
    if (skip) {
      skipped[skip] = (skipped[skip] ?? 0) + 1;
    } else if (placed < from || placed > now) {
      skipped['outside the window'] = (skipped['outside the window'] ?? 0) + 1;
    } else {
      entries.push(values);
    }
  }
  entries.sort((a, b) => (a.order_id < b.order_id ? -1 : a.order_id > b.order_id ? 1 : 0));
  const orders = {};
  for (const e of entries) orders[e.order_id] = e;
  // The floating review badge the seed describes (gapi.ratingbadge), for
  // every page of the storefront; null when the operator wants none.
  const badge = settings.badge === 'none' ? null : { merchant_id: settings.merchantId, position: settings.badge };
  const text = `${JSON.stringify({ merchant_id: settings.merchantId, badge, orders }, null, 1)}\n`;
  return { text, orders: entries.length, skipped };
}

/** "2 not a successful order, 1 no customer email" */
export function describe(skipped) {
  const parts = Object.entries(skipped).map(([why, n]) => `${n} ${why}`);
  return parts.length ? parts.join(', ') : 'none left out';
}
