// Thin helpers for Airlock connectors written in JavaScript (componentize-js).
//
// The WIT (wit/connector.wit) stays the contract: a connector imports the
// interfaces it uses and hands them to `createSdk`, which wraps them in the
// patterns every connector repeats. Nothing here imports `airlock:connector`
// itself, so the same module runs under Node for unit tests with fakes.
//
//   import * as records from 'airlock:connector/records@0.1.0';
//   import * as artifacts from 'airlock:connector/artifacts@0.1.0';
//   import * as log from 'airlock:connector/log@0.1.0';
//   import * as config from 'airlock:connector/config@0.1.0';
//   import { createSdk } from '../../sdk-js/airlock-sdk.js';
//   const sdk = createSdk({ records, artifacts, log, config });
//
// - sdk.iterRecords(collection, { pending, pageSize, includeDeleted }): the
//   change feed (or pending set) page by page with the host's cursors; each
//   record's body parsed.
// - new sdk.ArtifactWriter(name, contentType): buffers text into ~64 KiB
//   chunks for artifacts.append (encoded once per chunk); `close()`
//   flushes, `discard()` drops.
// - sdk.requestJson(method, url, payload): JSON over http.send with the
//   answer classified: 429/500/502/503/504 and network failures throw
//   RetryLater (with Retry-After seconds), other 4xx and refusals HttpFailure.
// - sdk.debug/info/warn/error, and the outcomes ok/infoOutcome/retry/fail,
//   outcomeFor(error).
// Docs: docs/sdk.md.

/** The size of the chunks an ArtifactWriter appends, in bytes. */
export const CHUNK_BYTES = 64 * 1024;

/** Statuses worth trying again later. */
export const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);

/** A host call failed: `kind` is the WIT variant case (`not-granted`…). */
export class HostError extends Error {
  constructor(iface, kind, detail) {
    super(`${iface}: ${kind}${detail ? `: ${detail}` : ''}`);
    this.interface = iface;
    this.kind = kind;
    this.detail = detail;
  }

  /** Whether the run should end in `retry` (the host's store failed). */
  get retryable() {
    return this.kind === 'unavailable';
  }
}

/** A passing failure: end the run `retry`, after `retryAfter` seconds if known. */
export class RetryLater extends Error {
  constructor(message, retryAfter) {
    super(message);
    this.retryAfter = retryAfter;
  }
}

/** A failure that needs a person: a 4xx answer, or a request not sent. */
export class HttpFailure extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** The length of `text` in UTF-8, as TextEncoder would encode it (a lone surrogate as U+FFFD). */
export function utf8Length(text) {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i += 1;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** `{ kind, detail }` of what a WIT import threw for its `result`'s error. */
export function variantOf(thrown) {
  const value = thrown && typeof thrown === 'object' && 'payload' in thrown ? thrown.payload : thrown;
  if (value && typeof value === 'object' && 'tag' in value) {
    let detail = value.val;
    if (detail && typeof detail === 'object') {
      detail = detail.reason ?? JSON.stringify(detail);
    }
    return { kind: value.tag, detail: detail === undefined ? '' : String(detail) };
  }
  return { kind: 'error', detail: thrown instanceof Error ? thrown.message : String(thrown) };
}

function hostCall(iface, fn) {
  try {
    return fn();
  } catch (e) {
    const { kind, detail } = variantOf(e);
    throw new HostError(iface, kind, detail);
  }
}

/** `Retry-After` as whole seconds (capped at a day), or undefined. */
export function retryAfterSeconds(value) {
  if (value === undefined || value === null) return undefined;
  const text = String(value).trim();
  if (!/^[0-9]+$/.test(text)) return undefined;
  return Math.min(Number(text), 86400);
}

/** The response if it is a success; throws RetryLater or HttpFailure. */
export function classify(response) {
  const { status } = response;
  if (status < 400) return response;
  if (RETRY_STATUSES.has(status)) {
    const header = response.headers.find(([k]) => k === 'retry-after');
    throw new RetryLater(`HTTP ${status}, try again later`, retryAfterSeconds(header && header[1]));
  }
  throw new HttpFailure(`HTTP ${status}`, status, response.body);
}

const outcome = (status, message, items = 0, retryAfterSeconds = undefined) => ({
  status,
  message,
  items,
  retryAfterSeconds,
});

/** The work was done. */
export const ok = (message, items = 0) => outcome('ok', message, items);
/** Nothing to do, by a business rule. */
export const infoOutcome = (message, items = 0) => outcome('info', message, items);
/** A passing condition: the host tries again later. */
export const retry = (message, after, items = 0) => outcome('retry', message, items, after);
/** Needs a person: raises a notification. */
export const fail = (message, items = 0) => outcome('error', message, items);

/** The outcome for an error that escaped a feed. */
export function outcomeFor(e, items = 0) {
  if (e instanceof RetryLater) return retry(e.message, e.retryAfter, items);
  if (e instanceof HostError && e.retryable) return retry(e.message, undefined, items);
  return fail(e instanceof Error ? e.message : String(e), items);
}

/** The SDK bound to the connector's imported interfaces (any may be absent). */
export function createSdk({ records, artifacts, http, log, config } = {}) {
  const encoder = new TextEncoder();
  const write = (level) => (message) => log.write(level, String(message));

  function* iterPages(collection, { pending = false, pageSize = 500 } = {}) {
    let cursor;
    for (;;) {
      const page = hostCall('records', () =>
        pending ? records.pending(collection, cursor, pageSize) : records.changes(collection, cursor, pageSize),
      );
      yield page.records.map((r) => ({
        collection: r.collection,
        id: r.id,
        version: r.version,
        updatedAt: Number(r.updatedAt),
        writer: r.writer,
        body: r.body === undefined || r.body === null ? null : JSON.parse(r.body),
      }));
      cursor = page.nextCursor;
      if (cursor === undefined || cursor === null) return;
    }
  }

  function* iterRecords(collection, { pending = false, pageSize = 500, includeDeleted = false } = {}) {
    for (const page of iterPages(collection, { pending, pageSize })) {
      for (const record of page) {
        if (includeDeleted || record.body !== null) yield record;
      }
    }
  }

  class ArtifactWriter {
    constructor(name, contentType, chunkBytes = CHUNK_BYTES) {
      this.name = name;
      this.contentType = contentType;
      this.chunkBytes = chunkBytes;
      this.bytesWritten = 0;
      // Text is kept as strings and encoded once per chunk: encoding each
      // small write into its own Uint8Array costs componentize-js's engine
      // far more memory than the text itself.
      this.text = [];
      this.buffered = 0;
      this.open = false;
    }

    begin() {
      hostCall('artifacts', () => artifacts.begin(this.name, this.contentType));
      this.open = true;
      return this;
    }

    /** Appends text (UTF-8; `bytes` is its length if the caller knows it) or a Uint8Array. */
    write(data, bytes = undefined) {
      if (typeof data !== 'string') {
        this.flush();
        this.bytesWritten += data.length;
        hostCall('artifacts', () => artifacts.append(this.name, data));
        return;
      }
      const n = bytes ?? utf8Length(data);
      this.text.push(data);
      this.buffered += n;
      this.bytesWritten += n;
      if (this.buffered >= this.chunkBytes) this.flush();
    }

    flush() {
      if (this.buffered === 0) return;
      const chunk = encoder.encode(this.text.join(''));
      this.text = [];
      this.buffered = 0;
      hostCall('artifacts', () => artifacts.append(this.name, chunk));
    }

    close() {
      this.flush();
      this.open = false;
    }

    discard() {
      this.text = [];
      this.buffered = 0;
      if (this.open) {
        this.open = false;
        hostCall('artifacts', () => artifacts.discard(this.name));
      }
    }
  }

  /** Sends one request; network failures throw RetryLater, refusals HttpFailure. */
  function send(method, url, headers = [], body = undefined, timeoutMs = undefined) {
    try {
      return http.send({ method, url, headers, body, timeoutMs });
    } catch (e) {
      const { kind, detail } = variantOf(e);
      const text = `${method} ${kind}${detail ? `: ${detail}` : ''}`;
      if (kind === 'timeout' || kind === 'connection-failed') throw new RetryLater(text);
      throw new HttpFailure(text);
    }
  }

  /** JSON in and out; returns `{ status, headers, body, json() }` or throws. */
  function requestJson(method, url, payload = undefined, headers = []) {
    const all = [['accept', 'application/json'], ...headers];
    let body;
    if (payload !== undefined) {
      all.push(['content-type', 'application/json']);
      body = encoder.encode(JSON.stringify(payload));
    }
    const response = classify(send(method, url, all, body));
    return {
      ...response,
      json: () => (response.body.length ? JSON.parse(new TextDecoder().decode(response.body)) : null),
    };
  }

  return {
    iterPages,
    iterRecords,
    ArtifactWriter,
    send,
    requestJson,
    config: (key, fallback = undefined) => config.get(key) ?? fallback,
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
  };
}
