"""StoreFeeder: marketplace orders in, despatches, stock and prices out to
listings StoreFeeder already has (it never creates one). Python, built
with componentize-py.

Build: scripts/build-plugins.sh. Install (Test connection must run live:
StoreFeeder's token is a POST, which test mode does not send):

    airlock install plugins/storefeeder --tenant acme --mode live \\
        --config username=api@shop.example --config-file storefeeder.toml \\
        --check-mode live

Feeds (`feeds.py`): `orders` (inbound), `despatches` and `listings`
(outbound). The mapping is `mapping.py`, the API client `client.py`.
Every run's message says whether the StoreFeeder account is linked.
Docs: docs/integrations/storefeeder.md.
"""

import re

import airlock_sdk as sdk
import feeds
import wit_world
from client import NoTokenInTestMode, NotLinked, StoreFeeder
from componentize_py_types import Err

FEEDS = ("orders", "despatches", "listings")


class Settings:
    """The installation's config, checked."""

    def __init__(self):
        self.username = (sdk.config("username") or "").strip()
        self.password = sdk.secret("password") or ""
        self.api_key = sdk.secret("api_key") or ""
        self.order_status = (sdk.config("order_status") or "CompleteReadyToPick").strip()
        self.stock_location = (sdk.config("stock_location") or "").strip() or None
        self.prices_include_vat = sdk.config("prices_include_vat", "true") == "true"
        self.currency = (sdk.config("currency") or "GBP").strip()
        self.conflict_wait_raw = sdk.config("conflict_wait_seconds", "10")

    @property
    def conflict_wait_seconds(self):
        return int(self.conflict_wait_raw)

    def problems(self):
        out = []
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", self.username):
            out.append("`username` must be the StoreFeeder API user's email address")
        if not self.password:
            out.append("`password` is not set")
        if not self.api_key:
            out.append("`api_key` is not set")
        if not re.fullmatch(r"[A-Za-z0-9]{1,40}", self.order_status):
            out.append(f"`order_status` {self.order_status!r} is not a StoreFeeder status like CompleteReadyToPick")
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            out.append(f"`currency` {self.currency!r} is not an ISO 4217 code like GBP")
        if not re.fullmatch(r"\d{1,3}", str(self.conflict_wait_raw)) or int(self.conflict_wait_raw) > 120:
            out.append("`conflict_wait_seconds` must be a whole number from 0 to 120")
        return out


def summary(feed, tally):
    """What the run did, in one line."""
    if feed == "orders":
        parts = [f"{tally.imported} orders imported"]
        if tally.recovered:
            parts.append(f"{tally.recovered} kept from an interrupted run")
        if tally.known:
            parts.append(f"{tally.known} imported before")
        if tally.skipped:
            parts.append(f"{tally.skipped} set aside earlier (refused)")
    elif feed == "despatches":
        parts = [f"{tally.despatched} orders despatched"]
        if tally.already:
            parts.append(f"{tally.already} despatched before")
        if tally.not_ours:
            parts.append(f"{tally.not_ours} shipments of orders from other channels left alone")
    else:
        parts = [f"{tally.stock} stock levels and {tally.prices} prices sent"]
        if tally.unchanged:
            parts.append(f"{tally.unchanged} unchanged")
        if tally.unknown_skus:
            parts.append(f"{len(tally.unknown_skus)} SKUs without a StoreFeeder listing skipped "
                         f"(never created: {', '.join(tally.unknown_skus[:3])})")
        if tally.skipped:
            parts.append(f"{tally.skipped} not for listings (per-location stock, other currency)")
    return ", ".join(parts)


def outcome(feed, tally, username, calls):
    done = tally.imported + tally.despatched + tally.stock + tally.prices + tally.recovered
    message = f"StoreFeeder linked as {username}: {summary(feed, tally)} ({calls} calls)"
    if tally.refused:
        return sdk.fail(f"{message}; StoreFeeder refused {len(tally.refused)}: {tally.refused[0]}", done)
    if done:
        return sdk.ok(message, done)
    return sdk.info_outcome(message)


def run_feed(ctx, settings):
    if ctx.mode == wit_world.imports.types.Mode.TEST:
        return sdk.info_outcome(
            "test mode: StoreFeeder not contacted (its token is a POST, which test mode does not "
            f"send): {feeds.dry_run(ctx.feed, settings)}")
    sf = StoreFeeder(settings)
    tally = feeds.Tally()
    try:
        sf.connect()
        if ctx.feed == "orders":
            feeds.import_orders(sf, tally)
        elif ctx.feed == "despatches":
            feeds.push_despatches(sf, tally)
        else:
            feeds.push_listings(sf, settings, tally)
    except NotLinked as exc:
        return sdk.fail(f"StoreFeeder link broken: {exc}; change the credentials with "
                        f"`airlock reauthorise {ctx.tenant}/{ctx.installation} --config-file FILE "
                        "--check-mode live`")
    except Exception as exc:  # every failure becomes an outcome
        done = f"; before it: {summary(ctx.feed, tally)} ({sf.calls} calls)"
        failed = sdk.outcome_for(exc)
        failed.message = f"StoreFeeder linked as {settings.username}: {failed.message}{done}"
        return failed
    return outcome(ctx.feed, tally, settings.username, sf.calls)


class WitWorld(wit_world.WitWorld):
    def run(self, ctx):
        if ctx.feed not in FEEDS:
            return sdk.fail(f"unknown feed `{ctx.feed}` (feeds: {', '.join(FEEDS)})")
        settings = Settings()
        problems = settings.problems()
        if problems:
            return sdk.fail("; ".join(problems))
        return run_feed(ctx, settings)

    def check(self):
        """Test connection: the credentials get a token and the token reads
        one page of orders. Needs `--check-mode live` (see `run_feed`)."""
        settings = Settings()
        problems = settings.problems()
        if problems:
            raise Err("; ".join(problems))
        sf = StoreFeeder(settings)
        try:
            sf.connect()
            sf.first_ready_order()
        except NoTokenInTestMode as exc:
            raise Err(f"not linked: {exc}; run Test connection with `--check-mode live` "
                      "(getting a token changes nothing at StoreFeeder)") from None
        except NotLinked as exc:
            raise Err(f"not linked: {exc}") from None
        except (sdk.RetryLater, sdk.HttpFailure) as exc:
            raise Err(f"not linked: StoreFeeder could not be reached: {exc}") from None
