// The long-lived Instagram token, without I/O: which token is current and
// whether it is due for a refresh.
//
// Instagram's long-lived tokens last 60 days and are refreshed with
// `GET /refresh_access_token?grant_type=ig_refresh_token` once they are at
// least 24 hours old. The host's [oauth] cannot express that grant (a GET
// with the token in the query, no client authentication), so the operator
// gives the first token as the secret config `access_token`, and each
// refreshed one is kept in the installation's private storage under
// `token`, with the fingerprint of the configured token it descends from:
// configuring a new token (reauthorisation) replaces the stored one.

export const DAY = 86400;
/** A refresh is refused until the token is this old. */
export const MIN_AGE = DAY;

/** FNV-1a (64 bits) of `text` as hex: tells configured tokens apart without keeping them. */
export function fingerprint(text) {
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

/** Seconds since the epoch of an RFC 3339 time, or undefined. */
export function parseTime(text) {
  if (typeof text !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(text)) {
    return undefined;
  }
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

/**
 * The current token: the stored one if it descends from the configured
 * token, else the configured one (issued at `issuedAt`, seconds, if known;
 * 60 days from then).
 */
export function currentToken(stored, configured, issuedAt) {
  const source = fingerprint(configured);
  if (stored && stored.source === source && typeof stored.token === 'string' && stored.token) {
    return { ...stored, fromStorage: true };
  }
  return {
    token: configured,
    refreshedAt: issuedAt ?? null,
    expiresAt: issuedAt === undefined || issuedAt === null ? null : issuedAt + 60 * DAY,
    source,
    fromStorage: false,
  };
}

/**
 * Whether to refresh at `now`: `fresh` (more than `marginDays` left),
 * `too-new` (under 24 h old: Instagram would refuse), or `due` (also when
 * the token's age is unknown).
 */
export function refreshDecision(state, now, marginDays) {
  if (state.refreshedAt !== null && state.refreshedAt !== undefined && now - state.refreshedAt < MIN_AGE) {
    return 'too-new';
  }
  if (state.expiresAt !== null && state.expiresAt !== undefined && state.expiresAt - now > marginDays * DAY) {
    return 'fresh';
  }
  return 'due';
}

/** The state after a refresh answered `{ access_token, expires_in }` at `now`. */
export function refreshed(state, answer, now) {
  if (!answer || typeof answer.access_token !== 'string' || !answer.access_token) {
    throw new Error('Instagram answered the refresh without an access_token');
  }
  const ttl = Number.isFinite(answer.expires_in) && answer.expires_in > 0 ? answer.expires_in : 60 * DAY;
  return { token: answer.access_token, refreshedAt: now, expiresAt: now + ttl, source: state.source };
}
