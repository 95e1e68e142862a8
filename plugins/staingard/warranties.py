"""The `warranties` feed: pending orders → Staingard, once each.

An order is submitted when a line of it is delivered and a line has cover
(`mapping.decide`); never again after (no update or cancel exists). What
must outlive the run is in the installation's storage, checkpointed as soon
as Staingard answers:

- `submitted/{order}`: the warranty number. A run killed before it stored
  the answer submits again next time; Staingard answers 409 with the first
  warranty number, which is reused.
- `failed/{order}`: why the upload failed and the order's version. The run
  ends `error` (a notification). The host keeps no annotation of a run that
  ends `error`, so the order is flagged `awaiting-action` by the next run
  (`settle`); it is not submitted again until the order changes.

Annotations and acknowledgements commit only with a run that ends ok/info,
so `settle` re-applies, at the end of every run and after its last
checkpoint, what storage says: the note with the warranty number (once),
the flag, the acknowledgement; then forgets `submitted/`, in the same
commit: from then on the order's annotations (its external reference) are
what says it was submitted, so storage does not grow with every order.
"""

import json

import airlock_sdk as sdk
import mapping

FLAG = "awaiting-action"
PAGE = 200


class KeyRefused(Exception):
    """Staingard refused the API key (401/403)."""


class Tally:
    """What a run did, for its message."""

    def __init__(self):
        self.submitted = 0
        self.reused = 0
        self.before = 0
        self.later = 0
        self.never = 0
        self.awaiting = 0
        self.failed = []
        self.would = []
        self.flagged = 0


def _errors(response):
    """Staingard's validation errors as one line."""
    try:
        body = json.loads(response.body or b"{}")
    except ValueError:
        return f"HTTP {response.status}"
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors:
        parts = [f"{e.get('field', '?')}: {e.get('message', '?')}" for e in errors[:5] if isinstance(e, dict)]
        return f"HTTP {response.status}: " + "; ".join(parts)
    message = body.get("message") or body.get("error") if isinstance(body, dict) else None
    return f"HTTP {response.status}: {message}" if message else f"HTTP {response.status}"


class Staingard:
    """The assumed API: `POST {endpoint}/orders`, `GET {endpoint}/orders/{ref}`."""

    def __init__(self, endpoint, api_key):
        self.endpoint = endpoint.rstrip("/")
        self.api_key = api_key
        self.calls = 0

    def _headers(self):
        return [("accept", "application/json"), ("authorization", f"Bearer {self.api_key}")]

    def submit(self, body):
        """The warranty number (and whether it was the first submission's,
        reused after a 409), or raises: `HttpFailure` for a refused upload,
        `KeyRefused`, `RetryLater`."""
        headers = self._headers() + [("content-type", "application/json")]
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self.calls += 1
        response = sdk.send("POST", f"{self.endpoint}/orders", headers, data)
        if response.status in (401, 403):
            raise KeyRefused(f"Staingard refused the API key (HTTP {response.status})")
        if response.status in (200, 201, 409):
            number = (response.json() or {}).get("warrantyNumber")
            if isinstance(number, str) and number.strip():
                return number.strip(), response.status == 409
            raise sdk.RetryLater(f"Staingard answered {response.status} without a warrantyNumber")
        if response.status in sdk.RETRY_STATUSES:
            sdk.classify(response)
        raise sdk.HttpFailure(_errors(response), response.status, response.body)

    def probe(self):
        """Test connection: a read of an order that does not exist proves
        the key (404), a refused key is 401/403."""
        self.calls += 1
        response = sdk.send("GET", f"{self.endpoint}/orders/airlock-connection-check", self._headers())
        if response.status in (401, 403):
            raise KeyRefused(f"Staingard refused the API key (HTTP {response.status})")
        if response.status not in (200, 404):
            sdk.classify(response)
            raise sdk.HttpFailure(_errors(response), response.status)


def _note(record_id, warranty):
    """Notes the warranty number once, clears the flag, sets the reference."""
    ann = sdk.annotations("orders", record_id)
    if warranty not in ann.notes:
        sdk.annotate_note("orders", record_id, warranty)
    if ann.external_ref != warranty:
        sdk.annotate_external_ref("orders", record_id, warranty)
    if ann.flag == FLAG:
        sdk.annotate_flag("orders", record_id, None)


def settle(tally):
    """Applies what storage says to annotations and acknowledgements; call
    after the run's last checkpoint (see the module's doc)."""
    for key in list(sdk.stored_keys("submitted/")):
        order_id = key[len("submitted/"):]
        entry = sdk.load_json(key)
        record = sdk.get_record("orders", order_id)
        if record is not None:  # a deleted order keeps no annotations
            _note(order_id, entry["warranty"])
            sdk.acknowledge(record)
        sdk.forget(key)
    for key in list(sdk.stored_keys("failed/")):
        order_id = key[len("failed/"):]
        if sdk.get_record("orders", order_id) is None:
            continue
        if sdk.annotations("orders", order_id).flag != FLAG:
            sdk.annotate_flag("orders", order_id, FLAG)
            sdk.annotate_note("orders", order_id, f"Staingard upload failed: {sdk.load_json(key)['reason']}"[:1000])
            tally.flagged += 1


def _submit(staingard, settings, record, tally):
    order = record.body
    try:
        warranty, reused = staingard.submit(mapping.submission(order, settings.retailer_id))
    except sdk.HttpFailure as exc:
        if exc.status is None:
            raise  # not sent (egress refused…): the run's failure, not the order's
        reason = str(exc)
        sdk.save_json(f"failed/{record.id}", {"reason": reason, "version": record.version})
        sdk.checkpoint()
        tally.failed.append(f"order {mapping.reference(order)}: {reason}")
        sdk.error(f"Staingard refused order {mapping.reference(order)}: {reason}; it is marked {FLAG}")
        return
    sdk.save_json(f"submitted/{record.id}", {"warranty": warranty, "reference": mapping.reference(order)})
    sdk.forget(f"failed/{record.id}")
    sdk.checkpoint()
    if reused:
        tally.reused += 1
        sdk.info(f"order {mapping.reference(order)} was submitted before: warranty {warranty} kept")
    else:
        tally.submitted += 1


def submit_pending(staingard, settings, tally, live):
    """Walks the pending orders; submits each due one (only counts them in
    test mode)."""
    for record in sdk.iter_records("orders", pending=True, page_size=PAGE):
        verdict, why = mapping.decide(record.body)
        if verdict == mapping.NEVER:
            sdk.acknowledge(record)
            tally.never += 1
            continue
        if verdict == mapping.LATER:
            tally.later += 1  # stays pending: looked at again when it changes
            continue
        if sdk.load_json(f"submitted/{record.id}") or sdk.annotations("orders", record.id).external_ref:
            sdk.acknowledge(record)  # no update exists: a change is not sent
            tally.before += 1
            continue
        failed = sdk.load_json(f"failed/{record.id}")
        if failed is not None and failed["version"] == record.version:
            tally.awaiting += 1  # unchanged since Staingard refused it
            continue
        if not live:
            tally.would.append(mapping.reference(record.body))
            continue
        _submit(staingard, settings, record, tally)
