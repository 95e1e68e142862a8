// The feeds, over the host's interfaces handed in (`sdk`, `storage`, a
// `secret` reader), so the same code runs under Node with fakes.

import { HostError, fail, infoOutcome, ok, outcomeFor, variantOf } from '../../sdk-js/airlock-sdk.js';
import { GRAPH, Instagram, TokenRefused } from './client.js';
import { HTML_NAME, JSON_NAME, fetchMedia, readSettings, renderHtml, renderJson, settingsProblems } from './feed.js';
import { currentToken, fingerprint, parseTime, refreshDecision, refreshed } from './token.js';

// Under `sealed/`: the host seals the value with its master key at rest.
const TOKEN_KEY = 'sealed/token';
const PUBLISHED_KEY = 'published';

function hostCall(fn) {
  try {
    return fn();
  } catch (e) {
    const { kind, detail } = variantOf(e);
    throw new HostError('storage', kind, detail);
  }
}

function recall(storage, key) {
  const bytes = hostCall(() => storage.get(key));
  if (!bytes) return undefined;
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
}

function remember(storage, key, value, now) {
  hostCall(() => storage.set(key, new TextEncoder().encode(JSON.stringify(value))));
  if (now) hostCall(() => storage.checkpoint());
}

const iso = (seconds) => new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');

/** Settings, the configured token and the current token state, or a problem. */
function prepare(env) {
  const settings = readSettings(env.sdk.config);
  const problems = settingsProblems(settings, parseTime);
  const configured = env.secret('access_token');
  if (!configured) problems.push('config `access_token` is not set');
  if (problems.length) return { problem: problems.join('; ') };
  const issuedAt = settings.issuedAt ? parseTime(settings.issuedAt) : undefined;
  const state = currentToken(recall(env.storage, TOKEN_KEY), configured, issuedAt);
  return { settings, state };
}

/** "Test connection": the token reads the account. A problem, or undefined. */
export function connect(env) {
  const { problem, settings, state } = prepare(env);
  if (problem) return problem;
  try {
    const ig = new Instagram(env.sdk, state.token, { throttleWait: settings.throttleWait });
    const me = ig.get(`${GRAPH}/${settings.apiVersion}/me?fields=id,username`);
    if (!me || !me.id) return 'Instagram did not say which account the token is for';
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Refreshes the token when due (never in test mode); the state to use. */
function maybeRefresh(env, state, now, settings, live, notes) {
  const decision = refreshDecision(state, now, settings.marginDays);
  if (decision === 'fresh') return state;
  if (decision === 'too-new') {
    notes.push('token under 24 h old: not refreshed yet');
    return state;
  }
  if (!live) {
    notes.push('token refresh due: not sent in test mode');
    return state;
  }
  const ig = new Instagram(env.sdk, state.token, { throttleWait: settings.throttleWait });
  let answer;
  try {
    answer = ig.get(`${GRAPH}/refresh_access_token?grant_type=ig_refresh_token`);
  } catch (e) {
    if (state.refreshedAt === null && !(e instanceof TokenRefused) && e.status >= 400 && e.status < 500) {
      // A token of unknown age may be under 24 h old: Instagram refuses
      // to refresh it yet. It is still good; the next run tries again.
      env.sdk.warn(`token refresh refused (${e.message}): using the current token`);
      notes.push('token refresh refused: its age is unknown');
      return state;
    }
    throw e;
  }
  const next = refreshed(state, answer, now);
  // Kept at once: the run may still fail, the new token must not be lost.
  remember(env.storage, TOKEN_KEY, next, true);
  notes.push(`token refreshed, valid until ${iso(next.expiresAt)}`);
  env.sdk.info(`long-lived token refreshed; it expires ${iso(next.expiresAt)}`);
  return next;
}

/** One run of `ctx.feed`. */
export function runFeed(env, ctx) {
  const { sdk } = env;
  if (ctx.feed !== 'media' && ctx.feed !== 'token') return fail(`unknown feed \`${ctx.feed}\``);
  try {
    const { problem, settings, state: initial } = prepare(env);
    if (problem) return fail(problem);
    const now = Number(ctx.scheduledAt);
    const notes = [];
    const state = maybeRefresh(env, initial, now, settings, ctx.mode === 'live', notes);
    const note = notes.length ? `; ${notes.join('; ')}` : '';
    if (ctx.feed === 'token') {
      const until = state.expiresAt ? `, valid until ${iso(state.expiresAt)}` : '';
      return notes.some((n) => n.startsWith('token refreshed'))
        ? ok(`Instagram token refreshed${until}`, 1)
        : infoOutcome(`Instagram token not due for a refresh${until}${note}`);
    }
    const ig = new Instagram(sdk, state.token, { throttleWait: settings.throttleWait });
    const { username, items, pages } = fetchMedia(ig, settings);
    const json = renderJson(username, items);
    const html = renderHtml(username, items);
    const digest = fingerprint(json + html);
    const summary = `${items.length} media of @${username || '?'} in ${pages} pages`;
    if (recall(env.storage, PUBLISHED_KEY)?.digest === digest) {
      return infoOutcome(`feed unchanged: ${summary}${note}`);
    }
    for (const [name, type, text] of [
      [JSON_NAME, 'application/json', json],
      [HTML_NAME, 'text/html; charset=utf-8', html],
    ]) {
      const out = new sdk.ArtifactWriter(name, type).begin();
      out.write(text);
      out.close();
    }
    // Committed with the artifacts, when the run ends ok.
    remember(env.storage, PUBLISHED_KEY, { digest, items: items.length }, false);
    return ok(`published ${JSON_NAME} and ${HTML_NAME}: ${summary}${note}`, items.length);
  } catch (e) {
    if (e instanceof TokenRefused) {
      return fail(
        `${e.message}: the installation needs a new long-lived token: ` +
          `\`airlock reauthorise ${ctx.tenant}/${ctx.installation} --config-file FILE\` ` +
          'with access_token (and token_issued_at)',
      );
    }
    return outcomeFor(e);
  }
}
