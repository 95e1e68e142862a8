"""StoreFeeder's REST API (`https://rest.storefeeder.com`), as the connector
uses it: a password-grant token, JSON calls with the bearer token, paged
reads, and StoreFeeder's answers classified.

- The token: `POST /Token` with the API user's email and password and the
  API key as `client_id` (form-encoded). The host's `[oauth]` has no
  password grant, so the connector asks itself, once per run; the token is
  kept in memory only, never logged or stored.
- 409 (StoreFeeder's answer when what a call changes is locked by another
  operation) is waited out once (`conflict_wait_seconds`), then ends the
  run `retry`; 429 and 5xx end it `retry`; 401 once more after a new token
  means the link is broken (`NotLinked`); any other 4xx is `HttpFailure`
  with StoreFeeder's message.
"""

import json
import time
from urllib.parse import quote, urlencode

import airlock_sdk as sdk

BASE = "https://rest.storefeeder.com"
#: Orders and products asked for per page.
PAGE_SIZE = 100
#: StoreFeeder's cap on orders or products per bulk call.
BATCH = 50


class NotLinked(Exception):
    """StoreFeeder refused the credentials: the account is not linked."""


class NoTokenInTestMode(Exception):
    """The token request (a POST) is not sent in test mode."""


def _message(response):
    """StoreFeeder's error text (`Message`, `error_description`…), cut short."""
    try:
        body = json.loads(response.body or b"{}")
    except ValueError:
        return f"HTTP {response.status}"
    if isinstance(body, dict):
        for key in ("error_description", "Message", "message", "error"):
            if isinstance(body.get(key), str):
                return body[key][:300]
    return f"HTTP {response.status}"


class StoreFeeder:
    """One run's connection to StoreFeeder."""

    def __init__(self, settings):
        self.settings = settings
        self.calls = 0
        self._token = None

    # -- the token
    def connect(self):
        """Gets a token with the installation's credentials."""
        form = urlencode({
            "grant_type": "password",
            "username": self.settings.username,
            "password": self.settings.password,
            "client_id": self.settings.api_key,
        }).encode("ascii")
        headers = [("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")]
        self.calls += 1
        try:
            response = sdk.send("POST", f"{BASE}/Token", headers, form)
        except sdk.HttpFailure as exc:
            if "suppressed-in-test-mode" in str(exc):
                raise NoTokenInTestMode(
                    "StoreFeeder gives tokens only to a POST to /Token, which test mode does not send"
                ) from None
            raise
        if response.status in (400, 401):
            raise NotLinked(f"StoreFeeder refused the API user, password or API key: {_message(response)}")
        sdk.classify(response)
        token = (response.json() or {}).get("access_token")
        if not isinstance(token, str) or not token:
            raise sdk.RetryLater("StoreFeeder's /Token answer held no access_token")
        self._token = token

    # -- calls
    def _send(self, method, path, payload):
        headers = [("accept", "application/json"), ("authorization", f"Bearer {self._token}")]
        body = None
        if payload is not None:
            headers.append(("content-type", "application/json"))
            body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self.calls += 1
        return sdk.send(method, f"{BASE}{path}", headers, body)

    def call(self, method, path, payload=None, allow_404=False):
        """Sends one call and returns its parsed JSON (None for 404 when
        `allow_404`)."""
        if self._token is None:
            self.connect()
        response = self._send(method, path, payload)
        if response.status == 401:
            # The token may have expired mid-run: one new one.
            self.connect()
            response = self._send(method, path, payload)
            if response.status == 401:
                raise NotLinked("StoreFeeder refused a token it had just issued")
        if response.status == 409:
            wait = self.settings.conflict_wait_seconds
            sdk.info(f"StoreFeeder answered 409 (locked) to {method} {path}: trying again in {wait} s")
            time.sleep(wait)
            response = self._send(method, path, payload)
            if response.status == 409:
                raise sdk.RetryLater(f"StoreFeeder answered 409 (locked) twice to {method} {path}", 60)
        if response.status == 404 and allow_404:
            return None
        if response.status >= 400 and response.status not in sdk.RETRY_STATUSES:
            raise sdk.HttpFailure(f"StoreFeeder refused {method} {path}: {_message(response)}",
                                  response.status, response.body)
        parsed = sdk.classify(response).json()
        return {} if parsed is None else parsed

    def pages(self, path, params):
        """Every item of a paged listing (`{"Data": […], "TotalPages": n}`)."""
        page = 1
        while True:
            query = urlencode({**params, "PageSize": PAGE_SIZE, "Page": page})
            body = self.call("GET", f"{path}?{query}") or {}
            yield from body.get("Data") or []
            if page >= int(body.get("TotalPages") or 0):
                return
            page += 1

    # -- what the feeds use
    def ready_orders(self):
        """Orders in the configured status not downloaded yet."""
        params = {"Downloaded": "false", "OrderStatus": self.settings.order_status}
        return list(self.pages("/orders", params))

    def first_ready_order(self):
        """One page of one ready order (Test connection's read)."""
        params = {"Downloaded": "false", "OrderStatus": self.settings.order_status, "PageSize": 1, "Page": 1}
        return self.call("GET", f"/orders?{urlencode(params)}")

    def order(self, number):
        """One order by its number, or None."""
        return self.call("GET", f"/orders/{quote(str(number), safe='')}", allow_404=True)

    def mark_downloaded(self, numbers):
        """Marks up to 50 orders downloaded; the numbers StoreFeeder did not
        mark, with its reason."""
        results = self.call("PUT", "/orders/mark-orders-as-downloaded",
                            [{"OrderNumber": n} for n in numbers]) or []
        return {r.get("OrderNumber"): r.get("Error") or "refused"
                for r in results if not r.get("Success")}

    def despatch(self, items):
        """Despatches up to 50 orders: `{OrderNumber: error or None}` from
        StoreFeeder's per-order results (failures come inside HTTP 200)."""
        results = self.call("PUT", "/orders/despatch-orders", items) or []
        out = {}
        for r in results:
            out[r.get("OrderNumber")] = None if r.get("Success") else (r.get("Error") or "refused")
        return out

    def products(self):
        """SKU → ProductID of every product StoreFeeder has."""
        return {p["SKU"]: p["ProductID"] for p in self.pages("/products", {})
                if p.get("SKU") and p.get("ProductID") is not None}

    def set_stock(self, items):
        """Absolute stock adjustments of up to 50 products; StoreFeeder's
        tally (`TotalItemsProcessed`, `Successful`, `Failed`)."""
        return self.call("PUT", "/products/stocklocationinventory", items) or {}

    def set_price(self, product_id, body):
        """A product's pricing; False if StoreFeeder has no such product."""
        path = f"/products/{quote(str(product_id), safe='')}"
        return self.call("PUT", path, body, allow_404=True) is not None
