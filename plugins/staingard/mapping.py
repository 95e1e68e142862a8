"""An `orders` record → Staingard's submission, without I/O.

The contract is **assumed** (`../shared/THIRD-PARTY-APIS.md` §8: no public
API exists): `POST {endpoint}/orders` with `retailerId`, `orderReference`,
`orderDate`, `deliveryDate`, `customer` (with `address`) and `items`, each
with its cover (`coverType`, `planCode`, `planPrice`).

- `decide(order)`: whether the order is to be submitted now, later, or never.
- `submission(order, retailer_id)`: the request body: the whole order (every
  line not cancelled), delivered on the first line's delivery date.
"""

from decimal import Decimal

#: Order statuses never submitted.
NOT_SUBMITTED = frozenset({"draft", "quote", "abandoned", "cancelled", "refunded"})

SUBMIT, LATER, NEVER = "submit", "later", "never"


def live_lines(order):
    return [line for line in order.get("lines", []) if not line.get("cancelled")]


def decide(order):
    """(`SUBMIT` | `LATER` | `NEVER`, why)."""
    if order.get("status") in NOT_SUBMITTED:
        return NEVER, f"the order is {order.get('status')}"
    lines = live_lines(order)
    if not any(line.get("warranty") for line in lines):
        return NEVER, "no line has warranty cover"
    if not any(line.get("delivered") for line in lines):
        return LATER, "no line delivered yet"
    return SUBMIT, "a line is delivered"


def delivery_date(order):
    """When the first line was delivered (the earliest `delivered_at` of a
    delivered line), else when the order last changed, else when placed."""
    dates = sorted(line["delivered_at"] for line in live_lines(order)
                   if line.get("delivered") and line.get("delivered_at"))
    return dates[0] if dates else order.get("updated_at") or order["placed_at"]


def number(amount):
    """A records amount as the JSON number the contract shows (`0`)."""
    return float(Decimal(amount))


def _customer(order):
    customer = order["customer"]
    address = order.get("shipping_address") or order.get("billing_address") or {}
    name = customer.get("name", "").split()
    out = {
        "firstName": customer.get("first_name") or (name[0] if name else ""),
        "lastName": customer.get("last_name") or (" ".join(name[1:]) if len(name) > 1 else ""),
        "email": customer["email"],
        "address": {k: address[f] for k, f in (
            ("line1", "line1"), ("line2", "line2"), ("town", "town"),
            ("county", "county"), ("postcode", "postcode"), ("country", "country"),
        ) if address.get(f)},
    }
    phone = customer.get("phone") or address.get("phone")
    if phone:
        out["phone"] = phone
    return out


def _item(line):
    item = {
        "sku": line.get("sku") or line.get("id") or "",
        "description": line["description"],
        "quantity": line["quantity"],
        "unitPrice": number(line["unit_price"]),
    }
    cover = line.get("warranty")
    if cover:
        item["coverType"] = cover.get("cover_type")
        item["planCode"] = cover.get("plan_code")
        item["planPrice"] = number(cover.get("price", "0"))
    return {k: v for k, v in item.items() if v is not None}


def reference(order):
    """The order's reference at Staingard: its number, else its id."""
    return order.get("number") or order["id"]


def submission(order, retailer_id):
    """The body of `POST {endpoint}/orders`."""
    return {
        "retailerId": retailer_id,
        "orderReference": reference(order),
        "orderDate": order["placed_at"],
        "deliveryDate": delivery_date(order),
        "customer": _customer(order),
        "items": [_item(line) for line in live_lines(order)],
    }
