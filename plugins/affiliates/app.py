"""Affiliates: the tenant's active products as a CSV feed with the common
affiliate columns (Awin's), published as `affiliates.csv` at a live URL.
Python, built with componentize-py, sharing plugins/sdk-python.

Build: scripts/build-plugins.sh. Try it on a tenant's records:

    airlock run plugins/affiliates --feed products --tenant acme \
        --config store_url=https://shop.example --grant-data

It reads categories and stock into lookups, then streams products page by
page into the CSV in ~64 KiB chunks. See README.md.
"""

import re
from urllib.parse import quote

import affiliate_feed as feed
import airlock_sdk as sdk
import wit_world
from componentize_py_types import Err

FEED_NAME = "affiliates.csv"
CONTENT_TYPE = "text/csv; charset=utf-8"
PAGE = 500


def settings_problems(store_url):
    if not re.match(r"^https?://[^/\s]+", store_url or ""):
        return ["`store_url` must be the shop's absolute http(s) address"]
    return []


def load_category_paths():
    """Category id → its path, "Living room > Sofas" (its `path`, else its name)."""
    out = {}
    for record in sdk.iter_records("categories", page_size=PAGE):
        body = record.body
        out[record.id] = " > ".join(body.get("path") or [body.get("name", record.id)])
    return out




def publish(store_url):
    categories = load_category_paths()
    stock = sdk.stock_by_sku(page_size=PAGE)
    written = skipped = 0
    with sdk.ArtifactWriter(FEED_NAME, CONTENT_TYPE) as out:
        out.write(feed.HEADER)
        for record in sdk.iter_records("products", page_size=PAGE):
            product = record.body
            if product.get("status", "active") != "active":
                skipped += 1
                continue
            quantity = stock.get(product.get("sku") or product["id"])
            if quantity is None:
                in_stock = product.get("availability", "in_stock") == "in_stock"
            else:
                in_stock = quantity > 0
            ids = product.get("category_ids") or []
            out.write(
                feed.row(
                    product,
                    link=product.get("url") or f"{store_url}/products/{quote(product['id'], safe='')}",
                    category=categories.get(ids[0], "") if ids else "",
                    quantity=quantity,
                    in_stock=in_stock,
                    updated=product.get("updated_at"),
                )
            )
            written += 1
        if written == 0:
            out.discard()
    if written == 0:
        return sdk.info_outcome(f"nothing to publish: no active product ({skipped} inactive); the previous feed stays")
    sdk.info(f"{FEED_NAME}: {written} products, {skipped} inactive left out, {out.bytes_written} bytes")
    return sdk.ok(f"published {FEED_NAME}: {written} products ({skipped} inactive left out)", written)


class WitWorld(wit_world.WitWorld):
    def run(self, ctx):
        if ctx.feed != "products":
            return sdk.fail(f"unknown feed `{ctx.feed}`")
        store_url = (sdk.config("store_url") or "").rstrip("/")
        problems = settings_problems(store_url)
        if problems:
            return sdk.fail("; ".join(problems))
        try:
            return publish(store_url)
        except Exception as exc:  # every failure becomes an outcome
            return sdk.outcome_for(exc)

    def check(self):
        problems = settings_problems(sdk.config("store_url"))
        if problems:
            raise Err("; ".join(problems))
