"""The affiliate product feed as CSV rows, without I/O: the common columns
of Awin's classic feed (THIRD-PARTY-APIS §9), quoted per RFC 4180.

`row(product, ...)` returns one line, CRLF-terminated; `HEADER` is the first.
"""

import re

#: The columns, in order (Awin's classic names; Awin maps them on import).
COLUMNS = [
    "product_id",
    "product_name",
    "description",
    "price",
    "currency",
    "deep_link",
    "image_url",
    "merchant_category",
    "brand_name",
    "ean",
    "mpn",
    "in_stock",
    "stock_quantity",
    "condition",
    "delivery_cost",
    "rrp_price",
    "parent_product_id",
    "last_updated",
]

_NEEDS_QUOTES = re.compile('[",\r\n]')
# Control characters other than tab, CR and LF make no sense in a feed.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def field(value):
    """One CSV field (RFC 4180): quoted when it holds a comma, a quote or a
    line break, quotes doubled; None is empty. Values are written as they
    are (no spreadsheet-formula mangling: affiliate networks import them)."""
    if value is None:
        return ""
    text = _CONTROL.sub("", str(value))
    if _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def line(values):
    """A CSV record, CRLF-terminated."""
    return ",".join(field(v) for v in values) + "\r\n"


HEADER = line(COLUMNS)


def row(product, *, link, category, quantity, in_stock, updated):
    """The row of one product (a products body); the caller gives its link,
    category path, stock quantity (None if unknown) and stock status."""
    images = product.get("image_urls") or [None]
    values = {
        "product_id": product["id"],
        "product_name": product["title"],
        "description": product.get("description") or product["title"],
        "price": product.get("sale_price") or product["price"],
        "currency": product["currency"],
        "deep_link": link,
        "image_url": images[0],
        "merchant_category": category,
        "brand_name": product.get("brand"),
        "ean": product.get("gtin"),
        "mpn": product.get("mpn"),
        "in_stock": "1" if in_stock else "0",
        "stock_quantity": quantity,
        "condition": product.get("condition") or "new",
        "delivery_cost": product.get("delivery_cost"),
        "rrp_price": product.get("rrp") or (product["price"] if product.get("sale_price") else None),
        "parent_product_id": product.get("parent_id"),
        "last_updated": updated,
    }
    return line(values[c] for c in COLUMNS)
