"""StoreFeeder's documents ↔ the tenant's records, without I/O.

- `order_record`: a StoreFeeder order (`GET /orders`) → an `orders` record
  (`schemas/orders.v1.json`); `MappingError` names what is missing.
- `despatch_item`: a `shipments` record → one item of
  `PUT /orders/despatch-orders`.
- `stock_item`: a `stock` record → one item of
  `PUT /products/stocklocationinventory` (an absolute adjustment).
- `price_update`: a `products` record → the body of `PUT /products/{id}`.

Unit-tested under plain CPython (`tests/test_storefeeder.py`).
"""

from decimal import Decimal, InvalidOperation

#: The prefix of the ids of orders this connector writes.
ORDER_ID_PREFIX = "storefeeder-"


class MappingError(Exception):
    """A document that cannot be mapped; the message names the field."""


def money(value, field):
    """A StoreFeeder amount (a JSON number or string) as a records amount:
    a decimal string with 2 to 4 decimals, never a float's rounding."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise MappingError(f"{field}: {value!r} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise MappingError(f"{field}: {value!r} is not an amount of 0 or more")
    amount = amount.quantize(Decimal("0.0001"))
    text = format(amount, "f").rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def timestamp(value, field):
    """StoreFeeder's UTC dates (`2016-05-01T00:00:00Z`, sometimes without
    the `Z` or with fractions) as RFC 3339 with an offset."""
    if not isinstance(value, str) or len(value) < 19 or value[10] != "T":
        raise MappingError(f"{field}: {value!r} is not a date and time")
    text = value
    if text.endswith("Z") or text[-6] in "+-":
        return text
    return text + "Z"


def _text(doc, *keys):
    for key in keys:
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _address(doc):
    """StoreFeeder's address → the records' address (absent fields left out)."""
    if not isinstance(doc, dict):
        return None
    name = " ".join(p for p in (_text(doc, "FirstName"), _text(doc, "LastName")) if p)
    out = {
        "name": _text(doc, "Name") or name or None,
        "company": _text(doc, "Company"),
        "line1": _text(doc, "AddressLine1"),
        "line2": _text(doc, "AddressLine2"),
        "town": _text(doc, "Town"),
        "county": _text(doc, "County"),
        "postcode": _text(doc, "Postcode"),
        "country": (_text(doc, "CountryCode") or "").upper() or None,
        "phone": _text(doc, "Phone"),
    }
    out = {k: v for k, v in out.items() if v}
    if "country" in out and len(out["country"]) != 2:
        del out["country"]
    return out or None


def channel_name(order):
    """The order's channel in lower case (`amazon`, `ebay`): StoreFeeder's
    channel type, else its channel name."""
    channel = order.get("Channel") or {}
    name = _text(channel, "ChannelType", "ChannelName") or "storefeeder"
    return name.lower()


def order_id(order_number):
    """The record id of StoreFeeder order `order_number`."""
    return f"{ORDER_ID_PREFIX}{order_number}"


def order_record(order):
    """The `orders` record of a StoreFeeder order."""
    number = order.get("OrderNumber")
    if not isinstance(number, int) or number <= 0:
        raise MappingError(f"OrderNumber: {number!r} is not an order number")
    where = f"order {number}"
    customer = order.get("Customer") or {}
    email = _text(customer, "Email")
    if not email:
        raise MappingError(f"{where}: Customer.Email is missing")
    first, last = _text(customer, "FirstName"), _text(customer, "LastName")
    name = " ".join(p for p in (first, last) if p) or _text(customer, "Name") or email
    totals = order.get("OrderTotals") or {}
    currency = (_text(order, "Currency") or _text(totals, "Currency") or "").upper()
    if len(currency) != 3 or not currency.isalpha():
        raise MappingError(f"{where}: Currency {currency!r} is not an ISO 4217 code")
    lines = []
    for i, line in enumerate(order.get("OrderLines") or [], start=1):
        quantity = line.get("Quantity")
        if not isinstance(quantity, int) or quantity < 0:
            raise MappingError(f"{where}: OrderLines[{i}].Quantity {quantity!r} is not a quantity")
        sku = _text(line, "SKU")
        entry = {
            "id": str(line.get("OrderLineID") or i),
            "description": _text(line, "ProductName", "Name") or sku or f"line {i}",
            "quantity": quantity,
            "unit_price": money(line.get("UnitPrice", 0), f"{where}: OrderLines[{i}].UnitPrice"),
        }
        if sku:
            entry["sku"] = sku
        if line.get("LineTotal") is not None:
            entry["total"] = money(line["LineTotal"], f"{where}: OrderLines[{i}].LineTotal")
        lines.append(entry)
    if not lines:
        raise MappingError(f"{where}: the order has no lines")
    body = {
        "id": order_id(number),
        "number": _text(order, "ChannelOrderRef") or str(number),
        "status": "processing",
        "channel": channel_name(order),
        "placed_at": timestamp(order.get("OrderDate"), f"{where}: OrderDate"),
        "currency": currency,
        "customer": {k: v for k, v in {
            "email": email, "name": name, "first_name": first, "last_name": last,
            "phone": _text(customer, "Phone"),
        }.items() if v},
        "lines": lines,
        "totals": {"total": money(totals.get("Total", 0), f"{where}: OrderTotals.Total")},
        "payment_status": "paid",
        "storefeeder": {"order_number": number},
    }
    for field, key in (("subtotal", "Subtotal"), ("shipping", "ShippingTotal"),
                       ("discount", "DiscountTotal"), ("tax", "TaxTotal")):
        if totals.get(key) is not None:
            body["totals"][field] = money(totals[key], f"{where}: OrderTotals.{key}")
    if _text(order, "ChannelOrderRef"):
        body["channel_order_ref"] = order["ChannelOrderRef"].strip()
    if _text(order, "OrderGuid"):
        body["storefeeder"]["order_guid"] = order["OrderGuid"]
    if _text(order.get("Channel") or {}, "ChannelName"):
        body["storefeeder"]["channel_name"] = order["Channel"]["ChannelName"]
    if _text(order, "ShippingMethod"):
        body["shipping_method"] = order["ShippingMethod"].strip()
    for field, key in (("billing_address", "BillingAddress"), ("shipping_address", "Shippingaddress")):
        address = _address(order.get(key) or order.get(key[:-7] + "Address"))
        if address:
            body[field] = address
    return body


def storefeeder_number(order_body):
    """StoreFeeder's order number of an `orders` record this connector
    wrote, or None for an order from another channel."""
    if not order_body or not order_body.get("id", "").startswith(ORDER_ID_PREFIX):
        return None
    number = (order_body.get("storefeeder") or {}).get("order_number")
    return number if isinstance(number, int) else None


def despatch_item(order_number, shipment):
    """One item of `PUT /orders/despatch-orders` for a `shipments` record."""
    item = {
        "OrderNumber": order_number,
        "DespatchDate": shipment["despatched_at"],
        "ShippedVia": shipment["carrier"],
    }
    if shipment.get("tracking_number"):
        item["TrackingNumber"] = shipment["tracking_number"]
    return item


def stock_item(sku, quantity, location_reference):
    """An absolute stock adjustment of `sku` to `quantity`, at the stock
    location `location_reference` (None: StoreFeeder's unspecified one)."""
    return {
        "ProductIDType": {"IDType": "SKU", "Value": sku},
        "AdjustmentType": "AbsoluteAdjustment",
        "AdjustmentAmount": quantity,
        "StockLocationID": None if location_reference is None
        else {"IDType": "StockLocationReference", "Value": location_reference},
        "Reason": "Stock level from the shop (Airlock)",
    }


def price_number(amount):
    """A records amount (a decimal string) as the JSON number StoreFeeder
    takes; up to 4 decimals survive the float's round trip."""
    return float(Decimal(amount))


def price_update(product, includes_vat):
    """The body of `PUT /products/{id}`: its pricing only."""
    return {"PricingInformation": {"Price": price_number(product["price"]), "IncludesVAT": includes_vat}}


def product_sku(product):
    """The SKU a product is listed under: its `sku`, else its id."""
    return product.get("sku") or product["id"]
