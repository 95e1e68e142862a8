"""Google Merchant Center feeds as text, without I/O: the RSS 2.0 product
feed with the `g:` namespace (THIRD-PARTY-APIS §5a) and the local inventory
feed (§5b), one item at a time, so the connector can stream them.

Every function takes plain dicts (record bodies) and returns `str`.
"""

import re
from decimal import Decimal, InvalidOperation

G_NS = "http://base.google.com/ns/1.0"

#: Google's length limits, in characters.
MAX_ID = 50
MAX_TITLE = 150
MAX_DESCRIPTION = 5000
MAX_URL = 2000

# Characters XML 1.0 does not allow, even escaped: C0 controls but tab,
# newline and carriage return; surrogates; U+FFFE and U+FFFF.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
_ESCAPE_RE = re.compile("[&<>\"']")


def escape(text):
    """`text` as XML character data or an attribute value: the five
    entities escaped, characters XML cannot carry dropped."""
    text = _INVALID_XML.sub("", str(text))
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], text)


def truncate(text, limit):
    """At most `limit` characters, cut at a word boundary when one is near."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"


def price(amount, currency):
    """`"15.00 GBP"`: the amount with at least two decimals, then the code."""
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError):
        raise ValueError(f"{amount!r} is not an amount") from None
    if value.as_tuple().exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return f"{value} {currency}"


def header(title, link, description):
    """The start of the feed, up to and including `<channel>`'s own elements."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<rss version="2.0" xmlns:g="{G_NS}">\n'
        "<channel>\n"
        f"<title>{escape(title)}</title>\n"
        f"<link>{escape(link)}</link>\n"
        f"<description>{escape(description)}</description>\n"
    )


FOOTER = "</channel>\n</rss>\n"


def _element(name, value):
    return f"<{name}>{escape(value)}</{name}>"


def product_item(product, *, link, availability, currency, google_category, product_type):
    """One `<item>` of the product feed. `product` is a products body; the
    caller has worked out its link, availability, the Google category (id
    or path) and our category path."""
    parts = [
        _element("g:id", product["id"]),
        _element("title", truncate(product["title"], MAX_TITLE)),
        _element(
            "description",
            truncate(product.get("description") or product["title"], MAX_DESCRIPTION),
        ),
        _element("link", link),
        _element("g:image_link", product["image_urls"][0]),
    ]
    parts += [_element("g:additional_image_link", u) for u in product["image_urls"][1:11]]
    parts.append(_element("g:availability", availability))
    if availability in ("preorder", "backorder") and product.get("availability_date"):
        parts.append(_element("g:availability_date", product["availability_date"]))
    parts.append(_element("g:price", price(product["price"], currency)))
    if product.get("sale_price"):
        parts.append(_element("g:sale_price", price(product["sale_price"], currency)))
    if product.get("brand"):
        parts.append(_element("g:brand", product["brand"]))
    if product.get("gtin"):
        parts.append(_element("g:gtin", product["gtin"]))
    if product.get("mpn"):
        parts.append(_element("g:mpn", product["mpn"]))
    if not product.get("gtin") and not product.get("mpn"):
        parts.append(_element("g:identifier_exists", "no"))
    parts.append(_element("g:condition", product.get("condition") or "new"))
    parts.append(_element("g:google_product_category", google_category))
    if product_type:
        parts.append(_element("g:product_type", product_type))
    if product.get("parent_id"):
        parts.append(_element("g:item_group_id", product["parent_id"]))
    if product.get("delivery_cost"):
        parts.append(
            "<g:shipping>"
            + _element("g:price", price(product["delivery_cost"], currency))
            + "</g:shipping>"
        )
    return "<item>\n" + "\n".join(parts) + "\n</item>\n"


def local_item(product_id, store_code, quantity, product_price, currency):
    """One `<item>` of the local inventory feed: a product at a store."""
    parts = [
        _element("g:id", product_id),
        _element("g:store_code", store_code),
        _element("g:availability", "in_stock" if quantity > 0 else "out_of_stock"),
        _element("g:quantity", str(quantity)),
        _element("g:price", price(product_price, currency)),
    ]
    return "<item>\n" + "\n".join(parts) + "\n</item>\n"
