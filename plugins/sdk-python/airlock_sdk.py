"""Thin helpers for Airlock connectors written in Python (componentize-py).

The WIT (`wit/connector.wit`) stays the contract: this module only wraps the
generated bindings (`wit_world.imports.*`) in the few patterns every
connector repeats. `scripts/build-plugins.sh` puts it on the component's
Python path (`componentize-py … -p plugins/sdk-python`), so a plugin just
does `import airlock_sdk as sdk`. Docs: `docs/sdk.md`.

- Records: `iter_records("products")` walks the change feed (or the pending
  set) page by page with the host's cursors and yields `Record`s whose body
  is parsed JSON.
- Artifacts: `ArtifactWriter` buffers text or bytes into chunks of about
  64 KiB and appends them; used as a context manager it discards the
  artifact when the block raises, so a failed feed never publishes half a
  file.
- HTTP: `request_json` sends JSON over `http.send` and classifies the
  answer: 429, 500, 502, 503, 504 and network failures raise `RetryLater`
  (with the `Retry-After` seconds when given), other 4xx and refusals raise
  `HttpFailure`.
- Storage and record writes: `load_json`/`save_json`/`forget`/`stored_keys`
  and `checkpoint` over the installation's private storage; `put_record`,
  `annotations` and `annotate` for the tenant's records.
- Logging and outcomes: `debug`/`info`/`warn`/`error`, and `ok`, `info_outcome`,
  `retry`, `fail` to build the `Outcome` a feed returns; `outcome_for` maps
  the errors above to one.
"""

import json

from componentize_py_types import Err
from wit_world.imports import artifacts as _artifacts
from wit_world.imports import config as _config
from wit_world.imports import http as _http
from wit_world.imports import log as _log
from wit_world.imports import records as _records
from wit_world.imports import storage as _storage
from wit_world.imports import types as _types

#: The size of the chunks an `ArtifactWriter` appends, in bytes.
CHUNK_BYTES = 64 * 1024

#: Statuses worth trying again later (with `Retry-After` when given).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


# ---------------------------------------------------------------- errors


def _variant(err):
    """`(kind, message)` of a WIT variant error: `RecordsError_NotGranted(value='…')`
    gives `("not-granted", "…")`."""
    value = err.value if isinstance(err, Err) else err
    name = type(value).__name__
    kind = name.split("_", 1)[1] if "_" in name else name
    kind = "".join("-" + c.lower() if c.isupper() else c for c in kind).lstrip("-")
    message = getattr(value, "value", None)
    if message is not None and not isinstance(message, str):
        message = getattr(message, "reason", None) or str(message)
    return kind, message or kind


class HostError(Exception):
    """A host call failed: `kind` is the WIT variant case (`not-granted`,
    `unavailable`…), `message` its text. `retryable` when the case says
    the run should end in `retry`."""

    def __init__(self, interface, kind, message):
        super().__init__(f"{interface}: {kind}: {message}")
        self.interface = interface
        self.kind = kind
        self.message = message

    @property
    def retryable(self):
        return self.kind == "unavailable"


def _host_call(interface, fn, *args):
    try:
        return fn(*args)
    except Err as err:
        kind, message = _variant(err)
        raise HostError(interface, kind, message) from None


# ---------------------------------------------------------------- config and log


def config(key, default=None):
    """The installation's value for a non-secret config field, or `default`."""
    value = _config.get(key)
    return default if value is None else value


def secret(key):
    """A secret config field's value, or None. Never log it."""
    return _config.get_secret(key)


def _write(level, message):
    _log.write(level, str(message))


def debug(message):
    """Logs at debug level."""
    _write(_log.Level.DEBUG, message)


def info(message):
    """Logs at info level."""
    _write(_log.Level.INFO, message)


def warn(message):
    """Logs at warn level."""
    _write(_log.Level.WARN, message)


def error(message):
    """Logs at error level."""
    _write(_log.Level.ERROR, message)


# ---------------------------------------------------------------- outcomes


def _outcome(status, message, items=0, retry_after=None):
    return _types.Outcome(
        status=status, message=message, items=items, retry_after_seconds=retry_after
    )


def ok(message, items=0):
    """The work was done."""
    return _outcome(_types.Status.OK, message, items)


def info_outcome(message, items=0):
    """Nothing to do, by a business rule."""
    return _outcome(_types.Status.INFO, message, items)


def retry(message, after_seconds=None, items=0):
    """A passing condition: the host tries again later."""
    return _outcome(_types.Status.RETRY, message, items, after_seconds)


def fail(message, items=0):
    """Needs a person: raises a notification."""
    return _outcome(_types.Status.ERROR, message, items)


def outcome_for(exc, items=0):
    """The outcome a feed ends with when `exc` escapes it: `retry` for
    `RetryLater` and a host store that is unavailable, `error` otherwise."""
    if isinstance(exc, RetryLater):
        return retry(str(exc), exc.retry_after, items)
    if isinstance(exc, HostError) and exc.retryable:
        return retry(str(exc), None, items)
    return fail(str(exc), items)


# ---------------------------------------------------------------- records


class Record:
    """A record as the host gave it, with its body parsed (None once deleted)."""

    __slots__ = ("collection", "id", "version", "updated_at", "writer", "body")

    def __init__(self, raw):
        self.collection = raw.collection
        self.id = raw.id
        self.version = raw.version
        self.updated_at = raw.updated_at
        self.writer = raw.writer
        self.body = None if raw.body is None else json.loads(raw.body)

    @property
    def deleted(self):
        return self.body is None

    def __repr__(self):
        return f"Record({self.collection}/{self.id} v{self.version})"


def iter_pages(collection, pending=False, page_size=500):
    """Pages (lists of `Record`) of the change feed of `collection`, or of
    what is pending for this installation, following the host's cursors."""
    fetch = _records.pending if pending else _records.changes
    cursor = None
    while True:
        page = _host_call("records", fetch, collection, cursor, page_size)
        yield [Record(r) for r in page.records]
        cursor = page.next_cursor
        if cursor is None:
            return


def iter_records(collection, pending=False, page_size=500, include_deleted=False):
    """Every record of `collection` (or every pending one), one page in
    memory at a time; deleted records only with `include_deleted`."""
    for page in iter_pages(collection, pending, page_size):
        for record in page:
            if include_deleted or not record.deleted:
                yield record


def stock_by_sku(page_size=500):
    """Units available by SKU from the `stock` collection: the SKU's total
    record (one without a `location`) if it has one, else the sum over its
    locations."""
    totals, summed = {}, {}
    for record in iter_records("stock", page_size=page_size):
        body = record.body
        if body.get("location"):
            summed[body["sku"]] = summed.get(body["sku"], 0) + body["quantity"]
        else:
            totals[body["sku"]] = body["quantity"]
    summed.update(totals)
    return summed


def get_record(collection, id):
    """The record, or None."""
    raw = _host_call("records", _records.get, collection, id)
    return None if raw is None else Record(raw)


def acknowledge(record):
    """Acknowledges the version of `record` that was read."""
    _host_call("records", _records.acknowledge, record.collection, record.id, record.version)


# ---------------------------------------------------------------- artifacts


class ArtifactWriter:
    """Writes artifact `name` in chunks of about `chunk_bytes`.

    `write` takes `str` (encoded UTF-8) or bytes. As a context manager it
    begins the artifact on entry, appends what is left on a clean exit, and
    discards the artifact when the block raises (the exception goes on).
    `bytes_written` counts what was written so far."""

    def __init__(self, name, content_type, chunk_bytes=CHUNK_BYTES):
        self.name = name
        self.content_type = content_type
        self.chunk_bytes = chunk_bytes
        self.bytes_written = 0
        self._parts = []
        self._buffered = 0
        self._open = False

    def begin(self):
        _host_call("artifacts", _artifacts.begin, self.name, self.content_type)
        self._open = True
        return self

    def write(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._parts.append(data)
        self._buffered += len(data)
        self.bytes_written += len(data)
        if self._buffered >= self.chunk_bytes:
            self.flush()

    def flush(self):
        if not self._buffered:
            return
        chunk = b"".join(self._parts)
        self._parts = []
        self._buffered = 0
        _host_call("artifacts", _artifacts.append, self.name, chunk)

    def discard(self):
        self._parts = []
        self._buffered = 0
        if self._open:
            self._open = False
            _host_call("artifacts", _artifacts.discard, self.name)

    def close(self):
        self.flush()
        self._open = False

    def __enter__(self):
        return self.begin()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            try:
                self.discard()
            except HostError:
                pass
        return False


# ---------------------------------------------------------------- HTTP


class RetryLater(Exception):
    """A passing failure: end the run `retry`, after `retry_after` seconds
    if the third party said."""

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


class HttpFailure(Exception):
    """A failure that needs a person: a 4xx answer, or a refused request.
    `status` is the HTTP status, or None when nothing was sent."""

    def __init__(self, message, status=None, body=b""):
        super().__init__(message)
        self.status = status
        self.body = body


class Response:
    """An HTTP response: `status`, `headers` (lower-case names), `body`."""

    def __init__(self, raw):
        self.status = raw.status
        self.headers = list(raw.headers)
        self.body = raw.body

    def header(self, name):
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def json(self):
        return json.loads(self.body) if self.body else None


def retry_after_seconds(value):
    """`Retry-After` as whole seconds, or None if absent or not a number of
    seconds (an HTTP date is left to the host's backoff)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(int(value), 86_400)
    return None


def classify(response):
    """Returns `response` if it is a success (1xx–3xx); raises `RetryLater`
    for 429 and 5xx worth retrying, `HttpFailure` for the rest."""
    status = response.status
    if status < 400:
        return response
    if status in RETRY_STATUSES:
        after = retry_after_seconds(response.header("retry-after"))
        raise RetryLater(f"HTTP {status}, try again later", after)
    raise HttpFailure(f"HTTP {status}", status, response.body)


def send(method, url, headers=(), body=None, timeout_ms=None):
    """Sends one request; network failures raise `RetryLater`, refusals
    `HttpFailure`. The answer is not classified (see `classify`)."""
    request = _http.Request(
        method=method, url=url, headers=list(headers), body=body, timeout_ms=timeout_ms
    )
    try:
        return Response(_http.send(request))
    except Err as err:
        kind, message = _variant(err)
        if kind in ("timeout", "connection-failed"):
            raise RetryLater(f"{method} failed: {kind}: {message}") from None
        raise HttpFailure(f"{method} not sent: {kind}: {message}") from None


def request_json(method, url, payload=None, headers=(), timeout_ms=None):
    """Sends `payload` (if any) as JSON, asks for JSON, and returns the
    classified `Response` (`.json()` parses its body)."""
    headers = [("accept", "application/json"), *headers]
    body = None
    if payload is not None:
        headers.append(("content-type", "application/json"))
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return classify(send(method, url, headers, body, timeout_ms))


# ---------------------------------------------------------------- storage


def load_json(key, default=None):
    """The JSON value stored under `key` in the installation's private
    storage (this run's writes included), or `default`."""
    raw = _host_call("storage", _storage.get, key)
    return default if raw is None else json.loads(raw)


def save_json(key, value):
    """Stores `value` as JSON under `key`: kept if the run ends ok/info, or
    at once by `checkpoint`."""
    data = json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")
    _host_call("storage", _storage.set, key, data)


def forget(key):
    """Removes `key` (a missing key is not an error)."""
    _host_call("storage", _storage.delete, key)


def stored_keys(prefix, page_size=500):
    """Every stored key starting with `prefix`, in byte order."""
    cursor = None
    while True:
        page = _host_call("storage", _storage.list_keys, prefix, cursor, page_size)
        yield from page.keys
        cursor = page.next_cursor
        if cursor is None:
            return


def checkpoint():
    """Commits the run's storage writes so far (not its record changes):
    what must be remembered even if the run is killed next."""
    _host_call("storage", _storage.checkpoint)


# ---------------------------------------------------------------- record writes and annotations


def put_record(collection, id, body):
    """Creates or replaces a record; `body` (a dict) is sent as compact JSON
    and checked against the collection's schema at once (`HostError`
    `invalid` names the field)."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    _host_call("records", _records.put, collection, id, text)


def annotations(collection, id):
    """This installation's annotations on a record: `external_ref`, `notes`
    (oldest first) and `flag`, as this run left them."""
    return _host_call("records", _records.annotations, collection, id)


def annotate_note(collection, id, note):
    """Appends a note to this installation's annotations on the record."""
    change = _records.AnnotationChange_Note(note)
    _host_call("records", _records.annotate, collection, id, change)


def annotate_flag(collection, id, flag):
    """Sets (None: clears) this installation's flag on the record."""
    change = _records.AnnotationChange_Flag(flag)
    _host_call("records", _records.annotate, collection, id, change)


def annotate_external_ref(collection, id, ref):
    """Sets (None: clears) the record's reference at the third party."""
    change = _records.AnnotationChange_ExternalRef(ref)
    _host_call("records", _records.annotate, collection, id, change)
