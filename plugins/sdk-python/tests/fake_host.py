"""A fake of the host's side of the connector world, for unit tests under
plain CPython: it installs modules named as componentize-py's bindings
(`wit_world.imports.records`, `…artifacts`, `…http`, `…log`, `…config`,
`…types`, and `componentize_py_types`) whose functions act on a `FakeHost`.
Only the boundary is faked: the SDK and the connectors run unchanged.

    host = fake_host.install()          # before importing airlock_sdk
    host.add("products", {"id": "p1", ...})
    outcome = app.WitWorld().run(host.context("products"))
    host.artifact("google-shopping.xml")
"""

import enum
import sys
import types as pytypes
from dataclasses import dataclass
from typing import Generic, Optional, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Err(Generic[T], Exception):
    value: T


@dataclass
class Ok(Generic[T]):
    value: T


@dataclass
class Some(Generic[T]):
    value: T


def _variants(prefix, names):
    """Dataclasses `Prefix_Name(value)` for each case, as the bindings have."""
    out = {}
    for name in names:
        cls_name = f"{prefix}_{name}"
        out[cls_name] = dataclass(type(cls_name, (), {"__annotations__": {"value": object}}))
    return out


class Mode(enum.Enum):
    TEST = 0
    LIVE = 1


class Trigger(enum.Enum):
    SCHEDULE = 0
    MANUAL = 1
    RETRY = 2


class Status(enum.Enum):
    OK = 0
    INFO = 1
    RETRY = 2
    ERROR = 3


@dataclass
class RunContext:
    tenant: str
    installation: str
    feed: str
    mode: Mode
    trigger: Trigger
    scheduled_at: int
    attempt: int
    last_success_at: Optional[int]


@dataclass
class Outcome:
    status: Status
    message: str
    items: int
    retry_after_seconds: Optional[int]


class Level(enum.Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


@dataclass
class Record:
    collection: str
    id: str
    version: int
    updated_at: int
    writer: str
    body: Optional[str]


@dataclass
class RecordPage:
    records: list
    next_cursor: Optional[str]


@dataclass
class Request:
    method: str
    url: str
    headers: list
    body: Optional[bytes]
    timeout_ms: Optional[int]


@dataclass
class Response:
    status: int
    headers: list
    body: bytes


@dataclass
class Denial:
    rule: str
    reason: str


RECORDS_ERRORS = _variants(
    "RecordsError",
    ["UnknownCollection", "NotGranted", "Invalid", "InvalidArgument", "QuotaExceeded", "Unavailable"],
)
ARTIFACT_ERRORS = _variants(
    "ArtifactError", ["InvalidName", "InvalidArgument", "QuotaExceeded", "NotAllowed", "Unavailable"]
)
STORAGE_ERRORS = _variants("StorageError", ["InvalidKey", "QuotaExceeded", "Unavailable"])
ANNOTATION_CHANGES = _variants("AnnotationChange", ["ExternalRef", "Note", "Flag"])


@dataclass
class RecordAnnotations:
    external_ref: Optional[str]
    notes: list
    flag: Optional[str]


@dataclass
class KeyPage:
    keys: list
    next_cursor: Optional[str]


HTTP_ERRORS = _variants(
    "HttpError",
    ["Denied", "SuppressedInTestMode", "InvalidRequest", "Timeout", "ConnectionFailed", "ResponseTooLarge"],
)


class FakeHost:
    """What the fake host holds: records by collection (in version order),
    config, artifacts begun and published, log lines, HTTP answers queued
    and requests seen."""

    def __init__(self):
        self.collections = {}
        self.version = 0
        self.config = {}
        self.secrets = {}
        self.granted = None  # None: every collection; else a set
        self.begun = {}  # name -> [content type, bytearray]
        self.published = {}  # name -> (content type, bytes)
        self.appends = []  # (name, chunk length)
        self.logs = []
        self.answers = []  # HTTP responses or Err values, in order
        self.requests = []
        self.page_calls = 0
        self.max_page = 1000
        self.fail_with = None  # a records error case name to raise
        self.storage = {}  # key -> bytes (the run's view)
        self.checkpointed = {}  # what the last checkpoint committed
        self.checkpoints = 0
        self.puts = []  # (collection, id, body text) written by the guest
        self.acked = {}  # (collection, id) -> version
        self.notes = {}  # (collection, id) -> RecordAnnotations

    # -- set-up
    def add(self, collection, body, updated_at=1_700_000_000, deleted=False):
        """Writes a record (as the platform) at the next version."""
        self.version += 1
        rows = self.collections.setdefault(collection, {})
        rows.pop(body["id"], None)
        import json

        rows[body["id"]] = Record(
            collection, body["id"], self.version, updated_at, "platform",
            None if deleted else json.dumps(body),
        )

    def context(self, feed, mode=Mode.LIVE):
        return RunContext("acme", "feeds", feed, mode, Trigger.MANUAL, 1_700_000_000, 1, None)

    def publish(self):
        """What the real host does when a run ends ok/info."""
        for name, (content_type, data) in self.begun.items():
            self.published[name] = (content_type, bytes(data))
        self.begun = {}

    def artifact(self, name):
        """The text of an artifact begun in the run."""
        return bytes(self.begun[name][1]).decode("utf-8")

    # -- records
    def _page(self, collection, cursor, limit):
        self.page_calls += 1
        if self.fail_with:
            raise Err(RECORDS_ERRORS[f"RecordsError_{self.fail_with}"]("store down"))
        if self.granted is not None and collection not in self.granted:
            raise Err(RECORDS_ERRORS["RecordsError_NotGranted"](f"{collection} not granted"))
        rows = sorted(self.collections.get(collection, {}).values(), key=lambda r: r.version)
        after = int(cursor) if cursor else 0
        rows = [r for r in rows if r.version > after]
        limit = max(1, min(limit, self.max_page))
        page = rows[:limit]
        more = len(rows) > limit
        return RecordPage(page, str(page[-1].version) if more else None)

    def _get(self, collection, id):
        record = self.collections.get(collection, {}).get(id)
        return None if record is None or record.body is None else record

    def _put(self, collection, id, body):
        import json

        self.puts.append((collection, id, body))
        rows = self.collections.setdefault(collection, {})
        rows[id] = Record(collection, id, 0, 1_700_000_000, "guest", body)
        json.loads(body)

    def _annotations(self, collection, id):
        return self.notes.setdefault((collection, id), RecordAnnotations(None, [], None))

    def _annotate(self, collection, id, change):
        notes = self._annotations(collection, id)
        kind = type(change).__name__.split("_", 1)[1]
        if kind == "Note":
            notes.notes.append(change.value)
        elif kind == "Flag":
            notes.flag = change.value
        else:
            notes.external_ref = change.value

    # -- storage
    def _list_keys(self, prefix, cursor, limit):
        keys = sorted(k for k in self.storage if k.startswith(prefix) and (cursor is None or k > cursor))
        page = keys[: max(1, limit)]
        return KeyPage(page, page[-1] if len(keys) > len(page) else None)

    def _checkpoint(self):
        self.checkpoints += 1
        self.checkpointed = dict(self.storage)

    # -- artifacts
    def _begin(self, name, content_type):
        if not name or "/" in name:
            raise Err(ARTIFACT_ERRORS["ArtifactError_InvalidName"](name))
        self.begun[name] = [content_type, bytearray()]

    def _append(self, name, chunk):
        if name not in self.begun:
            raise Err(ARTIFACT_ERRORS["ArtifactError_InvalidArgument"](f"{name} not begun"))
        self.begun[name][1].extend(chunk)
        self.appends.append((name, len(chunk)))

    def _discard(self, name):
        if name not in self.begun:
            raise Err(ARTIFACT_ERRORS["ArtifactError_InvalidArgument"](f"{name} not begun"))
        del self.begun[name]

    # -- http
    def _send(self, request):
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Err):
            raise answer
        return answer


def install():
    """Installs the fake modules and returns a fresh `FakeHost` they act on.
    Calling it again replaces the host (modules stay)."""
    host = FakeHost()
    state = sys.modules.get("fake_host_state")
    if state is None:
        state = pytypes.ModuleType("fake_host_state")
        sys.modules["fake_host_state"] = state
        _install_modules(state)
    state.host = host
    return host


def _module(name, **attrs):
    module = pytypes.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def _install_modules(state):
    h = lambda: state.host  # noqa: E731
    _module("componentize_py_types", Err=Err, Ok=Ok, Some=Some)
    wit_world = _module("wit_world")
    imports = _module("wit_world.imports")
    wit_world.imports = imports
    mods = {
        "types": dict(
            Mode=Mode, Trigger=Trigger, Status=Status, RunContext=RunContext, Outcome=Outcome
        ),
        "log": dict(Level=Level, write=lambda level, message: h().logs.append((level, message))),
        "config": dict(
            get=lambda key: h().config.get(key), get_secret=lambda key: h().secrets.get(key)
        ),
        "records": dict(
            Record=Record,
            RecordPage=RecordPage,
            changes=lambda c, cur, lim: h()._page(c, cur, lim),
            pending=lambda c, cur, lim: h()._page(c, cur, lim),
            get=lambda c, i: h()._get(c, i),
            acknowledge=lambda c, i, v: h().acked.__setitem__((c, i), v),
            put=lambda c, i, b: h()._put(c, i, b),
            annotations=lambda c, i: h()._annotations(c, i),
            annotate=lambda c, i, ch: h()._annotate(c, i, ch),
            RecordAnnotations=RecordAnnotations,
            **ANNOTATION_CHANGES,
            **RECORDS_ERRORS,
        ),
        "storage": dict(
            get=lambda k: h().storage.get(k),
            set=lambda k, v: h().storage.__setitem__(k, bytes(v)),
            delete=lambda k: h().storage.pop(k, None) and None,
            list_keys=lambda p, c, n: h()._list_keys(p, c, n),
            checkpoint=lambda: h()._checkpoint(),
            KeyPage=KeyPage,
            **STORAGE_ERRORS,
        ),
        "artifacts": dict(
            begin=lambda n, t: h()._begin(n, t),
            append=lambda n, c: h()._append(n, c),
            discard=lambda n: h()._discard(n),
            **ARTIFACT_ERRORS,
        ),
        "http": dict(
            Request=Request,
            Response=Response,
            Denial=Denial,
            send=lambda r: h()._send(r),
            **HTTP_ERRORS,
        ),
    }
    for short, attrs in mods.items():
        setattr(imports, short, _module(f"wit_world.imports.{short}", **attrs))

    class WitWorld:  # the Protocol connectors subclass
        pass

    wit_world.WitWorld = WitWorld
