// A fake of the host's side of the connector world for unit tests under
// Node: objects shaped as componentize-js gives the imported interfaces
// (`records`, `artifacts`, `log`, `config`, `http`), acting on plain state.
// Errors are thrown as componentize-js throws a `result`'s error: an Error
// whose `payload` is the variant `{ tag, val }`.

export function hostError(tag, val) {
  const e = new Error(`${tag}`);
  e.payload = { tag, val };
  return e;
}

export function createFakeHost() {
  const state = {
    collections: new Map(),
    version: 0n,
    config: new Map(),
    begun: new Map(),
    appends: [],
    logs: [],
    answers: [],
    requests: [],
    pageCalls: 0,
    failWith: undefined,
  };

  const add = (collection, body, { updatedAt = 1700000000, deleted = false } = {}) => {
    state.version += 1n;
    if (!state.collections.has(collection)) state.collections.set(collection, new Map());
    const rows = state.collections.get(collection);
    rows.delete(body.id);
    rows.set(body.id, {
      collection,
      id: body.id,
      version: state.version,
      updatedAt: BigInt(updatedAt),
      writer: 'platform',
      body: deleted ? undefined : JSON.stringify(body),
    });
  };

  const page = (collection, cursor, limit) => {
    state.pageCalls += 1;
    if (state.failWith) throw hostError(state.failWith, 'store down');
    const after = cursor ? BigInt(cursor) : 0n;
    const rows = [...(state.collections.get(collection) ?? new Map()).values()]
      .filter((r) => r.version > after)
      .sort((a, b) => (a.version < b.version ? -1 : 1));
    const n = Math.max(1, Math.min(limit, 1000));
    const records = rows.slice(0, n);
    return { records, nextCursor: rows.length > n ? String(records.at(-1).version) : undefined };
  };

  const records = { changes: page, pending: page };
  const artifacts = {
    begin(name, contentType) {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw hostError('invalid-name', name);
      state.begun.set(name, { contentType, chunks: [] });
    },
    append(name, chunk) {
      if (!state.begun.has(name)) throw hostError('invalid-argument', `${name} not begun`);
      if (!(chunk instanceof Uint8Array)) throw new TypeError('chunk must be a Uint8Array');
      state.begun.get(name).chunks.push(Uint8Array.from(chunk));
      state.appends.push([name, chunk.length]);
    },
    discard(name) {
      if (!state.begun.has(name)) throw hostError('invalid-argument', `${name} not begun`);
      state.begun.delete(name);
    },
  };
  const log = { write: (level, message) => state.logs.push([level, message]) };
  const config = { get: (key) => state.config.get(key), getSecret: () => undefined };
  const http = {
    send(request) {
      state.requests.push(request);
      const answer = state.answers.shift();
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
  const artifact = (name) => {
    const entry = state.begun.get(name);
    return entry ? Buffer.concat(entry.chunks.map((c) => Buffer.from(c))).toString('utf8') : undefined;
  };
  const context = (feed) => ({
    tenant: 'acme',
    installation: 'feeds',
    feed,
    mode: 'live',
    trigger: 'manual',
    scheduledAt: 1700000000n,
    attempt: 1,
    lastSuccessAt: undefined,
  });
  return { state, add, artifact, context, bindings: { records, artifacts, log, config, http } };
}
