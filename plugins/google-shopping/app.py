"""Google Shopping: the tenant's products in categories mapped to Google,
published as a Merchant Center feed (RSS 2.0 with the `g:` namespace) and,
if enabled, a local inventory feed. Python, built with componentize-py.

Build: scripts/build-plugins.sh (componentize-py, with plugins/sdk-python on
the path). Try it on a tenant's records:

    airlock run plugins/google-shopping --feed products --tenant acme \
        --config store_url=https://shop.example --grant-data

What it reads: categories, category-mappings (channel `google`), stock, then
products, page by page; only the lookups (categories, mappings, stock levels
by SKU) are held in memory, never the feed. See README.md.
"""

import re

import airlock_sdk as sdk
import shopping_feed as feed
import wit_world
from componentize_py_types import Err

FEED_NAME = "google-shopping.xml"
LOCAL_NAME = "local-inventory.xml"
CONTENT_TYPE = "application/rss+xml"
PAGE = 500


class Settings:
    """The installation's config, checked."""

    def __init__(self):
        self.store_url = (sdk.config("store_url") or "").rstrip("/")
        self.currency = sdk.config("currency", "GBP")
        self.title = sdk.config("feed_title", "Products")
        self.local_inventory = sdk.config("local_inventory", "false") == "true"

    def problems(self):
        out = []
        if not re.match(r"^https?://[^/\s]+", self.store_url):
            out.append("`store_url` must be the shop's absolute http(s) address")
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            out.append(f"`currency` {self.currency!r} is not an ISO 4217 code like GBP")
        return out


def load_categories():
    """Category id → (name, parent id, path or None)."""
    out = {}
    for record in sdk.iter_records("categories", page_size=PAGE):
        body = record.body
        out[record.id] = (body.get("name", record.id), body.get("parent_id"), body.get("path"))
    return out


def category_path(categories, category_id):
    """Our category's path, "Living room > Sofas": its `path` if it has one,
    else the names up its parents (a cycle stops the walk)."""
    entry = categories.get(category_id)
    if entry is None:
        return ""
    if entry[2]:
        return " > ".join(entry[2])
    names, seen = [], set()
    while entry is not None and category_id not in seen:
        seen.add(category_id)
        names.append(entry[0])
        category_id = entry[1]
        entry = categories.get(category_id) if category_id else None
    return " > ".join(reversed(names))


def load_google_mappings():
    """Our category id → Google's category (its id, else its path)."""
    out = {}
    for record in sdk.iter_records("category-mappings", page_size=PAGE):
        body = record.body
        if body.get("channel") != "google":
            continue
        target = body.get("channel_category_id") or body.get("channel_category_path")
        if target:
            out[body["category_id"]] = target
    return out




def availability(product, stock):
    """Stock decides when the SKU has any: in_stock when units are
    available, else the product's preorder/backorder or out_of_stock.
    Without stock records, the product's own availability, else
    out_of_stock (nothing is advertised that cannot be confirmed)."""
    own = product.get("availability")
    quantity = stock.get(product.get("sku") or product["id"])
    if quantity is None:
        return own or "out_of_stock"
    if quantity > 0:
        return "in_stock"
    return own if own in ("preorder", "backorder") else "out_of_stock"


class Counts:
    """Why products were left out, for the log and the outcome."""

    def __init__(self):
        self.written = 0
        self.skipped = {}

    def skip(self, reason, product_id):
        n = self.skipped.get(reason, 0) + 1
        self.skipped[reason] = n
        if n <= 3:
            sdk.debug(f"product {product_id!r} left out: {reason}")

    def summary(self):
        if not self.skipped:
            return "none left out"
        parts = [f"{n} {reason}" for reason, n in sorted(self.skipped.items())]
        return "left out: " + ", ".join(parts)


def select(product, settings, mappings):
    """The product's Google category and our category id, or the reason it
    is left out."""
    if product.get("status", "active") != "active":
        return None, "not active"
    mapped = next((c for c in product.get("category_ids", []) if c in mappings), None)
    if mapped is None:
        return None, "in no category mapped to Google"
    if product["currency"] != settings.currency:
        return None, f"priced in another currency than {settings.currency}"
    if not product.get("image_urls"):
        return None, "without an image"
    if len(product["id"]) > feed.MAX_ID:
        return None, f"with an id over {feed.MAX_ID} characters"
    return mapped, None


def link(product, settings):
    """The product's page: its `url`, else the shop's /products/{id}."""
    if product.get("url"):
        return product["url"]
    from urllib.parse import quote

    return f"{settings.store_url}/products/{quote(product['id'], safe='')}"


def write_products(out, settings, categories, mappings, stock, counts, published):
    out.write(feed.header(settings.title, settings.store_url, f"{settings.title} from {settings.store_url}"))
    for record in sdk.iter_records("products", page_size=PAGE):
        product = record.body
        mapped, reason = select(product, settings, mappings)
        if reason:
            counts.skip(reason, record.id)
            continue
        out.write(
            feed.product_item(
                product,
                link=link(product, settings),
                availability=availability(product, stock),
                currency=settings.currency,
                google_category=mappings[mapped],
                product_type=category_path(categories, product["category_ids"][0]),
            )
        )
        counts.written += 1
        if published is not None:
            published[product.get("sku") or product["id"]] = (product["id"], product["price"])
    out.write(feed.FOOTER)


def write_local_inventory(out, settings, published):
    """Every stock record with a `location` of a published product."""
    out.write(feed.header(f"{settings.title}: local inventory", settings.store_url, "Local inventory"))
    written = 0
    for record in sdk.iter_records("stock", page_size=PAGE):
        body = record.body
        entry = published.get(body["sku"])
        if not body.get("location") or entry is None:
            continue
        out.write(feed.local_item(entry[0], body["location"], body["quantity"], entry[1], settings.currency))
        written += 1
    out.write(feed.FOOTER)
    return written


def publish(settings):
    categories = load_categories()
    mappings = load_google_mappings()
    stock = sdk.stock_by_sku(page_size=PAGE)
    counts = Counts()
    published = {} if settings.local_inventory else None
    if not mappings:
        return sdk.info_outcome("nothing to publish: no category is mapped to Google")
    with sdk.ArtifactWriter(FEED_NAME, CONTENT_TYPE) as out:
        write_products(out, settings, categories, mappings, stock, counts, published)
        if counts.written == 0:
            out.discard()
    sdk.info(f"{FEED_NAME}: {counts.written} products, {counts.summary()}")
    if counts.written == 0:
        return sdk.info_outcome(f"nothing to publish: no product qualifies ({counts.summary()}); the previous feed stays")
    message = f"published {FEED_NAME}: {counts.written} products ({counts.summary()})"
    if published is not None:
        with sdk.ArtifactWriter(LOCAL_NAME, CONTENT_TYPE) as out:
            local = write_local_inventory(out, settings, published)
        message += f"; {LOCAL_NAME}: {local} store entries"
    return sdk.ok(message, counts.written)


class WitWorld(wit_world.WitWorld):
    def run(self, ctx):
        if ctx.feed != "products":
            return sdk.fail(f"unknown feed `{ctx.feed}`")
        settings = Settings()
        problems = settings.problems()
        if problems:
            return sdk.fail("; ".join(problems))
        try:
            return publish(settings)
        except Exception as exc:  # every failure becomes an outcome
            return sdk.outcome_for(exc)

    def check(self):
        problems = Settings().problems()
        if problems:
            raise Err("; ".join(problems))
