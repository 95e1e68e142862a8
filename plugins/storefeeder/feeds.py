"""The three feeds, each safe to kill and run again.

What must survive a run killed half-way is kept in the installation's
private storage and checkpointed before StoreFeeder is changed; record
writes and acknowledgements commit with the run:

- `orders`: each downloaded order is stored (`downloaded/{number}`) and
  checkpointed *before* StoreFeeder marks it downloaded; the record is
  written and the stored copy dropped in the same commit. A run killed
  after the marking leaves the copy, and the next run writes it first, so
  an order marked downloaded is never lost; records are keyed by order
  number, so nothing is imported twice.
- `despatches`: a batch's shipments are stored as `despatching/{id}` and
  checkpointed before the call, and each order despatched as
  `despatched-order/{n}` after it. A run killed in between finds
  `despatching/` next time and asks StoreFeeder for the order
  (`GET /orders/{n}`): one already despatched is not sent again. At the
  end of a run (after its last checkpoint) `despatched-order/` becomes a
  note on the order (`DESPATCHED_NOTE`), committed with the run, so
  storage does not grow with every order.
- `listings`: stock and prices are absolute; what was sent is remembered
  per SKU (`stock/`, `price/`) and checkpointed per call, so a retry sends
  only what StoreFeeder does not have yet, and a second run sends nothing.
"""

import airlock_sdk as sdk
import mapping
from client import BATCH

PAGE = 200
#: The note on an order despatched at StoreFeeder.
DESPATCHED_NOTE = "despatched at StoreFeeder"


class Tally:
    """What a run did, for its message."""

    def __init__(self):
        self.imported = 0
        self.recovered = 0
        self.known = 0
        self.despatched = 0
        self.not_ours = 0
        self.already = 0
        self.stock = 0
        self.prices = 0
        self.unchanged = 0
        self.unknown_skus = []
        self.skipped = 0
        self.refused = []

    def refuse(self, what, why):
        self.refused.append(f"{what}: {why}")
        sdk.error(f"{what}: {why}")

    def unknown(self, sku):
        self.unknown_skus.append(sku)
        if len(self.unknown_skus) <= 5:
            sdk.info(f"SKU {sku!r} has no StoreFeeder listing: skipped (listings are never created)")


def chunks(items, size=BATCH):
    for start in range(0, len(items), size):
        yield items[start:start + size]


# ---------------------------------------------------------------- orders


def write_order(order, tally):
    """Writes the order's record unless it was imported before."""
    body = mapping.order_record(order)
    if sdk.get_record("orders", body["id"]) is not None:
        tally.known += 1
        return
    sdk.put_record("orders", body["id"], body)
    tally.imported += 1


def import_orders(sf, tally):
    """Orders left by an interrupted run first, then the ready ones.

    The stored copies are dropped only after the last checkpoint, so they
    go in the same commit as the records written from them."""
    written = []
    for key in list(sdk.stored_keys("downloaded/")):
        write_order(sdk.load_json(key), tally)
        written.append(key)
        tally.recovered += 1
    ready = []
    for order in sf.ready_orders():
        try:
            mapping.order_record(order)
        except mapping.MappingError as exc:
            # Reported once (an error needs a person), then left aside, not
            # downloaded, so it does not hold up the other orders' imports.
            key = f"refused/{order.get('OrderNumber')}"
            if sdk.load_json(key) is None:
                sdk.save_json(key, str(exc))
                sdk.checkpoint()
                tally.refuse(f"StoreFeeder order {order.get('OrderNumber')}", f"{exc}; left not downloaded")
            else:
                tally.skipped += 1
            continue
        ready.append(order)
    for batch in chunks(ready):
        for order in batch:
            sdk.save_json(f"downloaded/{order['OrderNumber']}", order)
        sdk.checkpoint()
        unmarked = sf.mark_downloaded([o["OrderNumber"] for o in batch])
        for number, why in unmarked.items():
            sdk.warn(f"StoreFeeder did not mark order {number} downloaded ({why}); it is imported once")
        for order in batch:
            write_order(order, tally)
            written.append(f"downloaded/{order['OrderNumber']}")
    for key in written:
        sdk.forget(key)


# ---------------------------------------------------------------- despatches


def _finish_despatch(shipment, number, tally):
    sdk.save_json(f"despatched-order/{number}", shipment.body["order_id"])
    sdk.forget(f"despatching/{shipment.id}")
    sdk.acknowledge(shipment)
    tally.despatched += 1


def _send_despatches(sf, batch, tally):
    """Sends one batch (≤ 50 orders), after settling any a killed run sent."""
    to_send = []
    for shipment, number in batch:
        if sdk.load_json(f"despatching/{shipment.id}") is not None:
            order = sf.order(number)
            if order and str(order.get("OrderStatus", "")).lower() in ("despatched", "7"):
                _finish_despatch(shipment, number, tally)
                continue
        to_send.append((shipment, number))
    if not to_send:
        return
    for shipment, number in to_send:
        sdk.save_json(f"despatching/{shipment.id}", number)
    sdk.checkpoint()
    results = sf.despatch([mapping.despatch_item(n, s.body) for s, n in to_send])
    for shipment, number in to_send:
        error = results.get(number, "no result for this order")
        if error is None:
            _finish_despatch(shipment, number, tally)
        else:
            sdk.forget(f"despatching/{shipment.id}")
            tally.refuse(f"despatch of StoreFeeder order {number} (shipment {shipment.id})", error)
    sdk.checkpoint()


def pending_despatches(tally):
    """(shipment, StoreFeeder order number) of each pending shipment to
    send; others are acknowledged and counted."""
    out, numbers = [], set()
    for shipment in sdk.iter_records("shipments", pending=True, page_size=PAGE):
        order = sdk.get_record("orders", shipment.body["order_id"])
        number = mapping.storefeeder_number(order.body if order else None)
        if number is None:
            sdk.acknowledge(shipment)
            tally.not_ours += 1
            continue
        if number in numbers or _despatched(order.id, number):
            # StoreFeeder despatches an order once: a second shipment of it
            # has nothing to add there.
            sdk.acknowledge(shipment)
            tally.already += 1
            continue
        numbers.add(number)
        out.append((shipment, number))
    return out


def _despatched(order_id, number):
    """Whether StoreFeeder order `number` was despatched by this installation."""
    if sdk.load_json(f"despatched-order/{number}") is not None:
        return True
    return DESPATCHED_NOTE in sdk.annotations("orders", order_id).notes


def settle_despatches():
    """Turns `despatched-order/` into notes on the orders; call after the
    run's last checkpoint (both commit with the run, or neither)."""
    for key in list(sdk.stored_keys("despatched-order/")):
        order_id = sdk.load_json(key)
        if DESPATCHED_NOTE not in sdk.annotations("orders", order_id).notes:
            sdk.annotate_note("orders", order_id, DESPATCHED_NOTE)
        sdk.forget(key)


def push_despatches(sf, tally):
    for batch in chunks(pending_despatches(tally)):
        _send_despatches(sf, batch, tally)
    settle_despatches()


# ---------------------------------------------------------------- listings


def push_stock(sf, settings, catalogue, tally):
    """Pending stock totals (records without a location) of listed SKUs."""
    todo = []
    for record in sdk.iter_records("stock", pending=True, page_size=PAGE):
        body = record.body
        if body.get("location"):
            sdk.acknowledge(record)  # per-location counts are not the listing's
            tally.skipped += 1
            continue
        if body["sku"] not in catalogue:
            tally.unknown(body["sku"])
            sdk.acknowledge(record)
            continue
        if sdk.load_json(f"stock/{body['sku']}") == body["quantity"]:
            sdk.acknowledge(record)
            tally.unchanged += 1
            continue
        todo.append(record)
    for batch in chunks(todo):
        items = [mapping.stock_item(r.body["sku"], r.body["quantity"], settings.stock_location) for r in batch]
        result = sf.set_stock(items)
        failed = int(result.get("Failed") or 0)
        if failed:
            tally.refuse(f"stock of {len(batch)} SKUs ({batch[0].body['sku']}…)",
                         f"StoreFeeder failed {failed} of them; the batch is sent again next run")
            continue
        for record in batch:
            sdk.save_json(f"stock/{record.body['sku']}", record.body["quantity"])
            sdk.acknowledge(record)
            tally.stock += 1
        sdk.checkpoint()


def push_prices(sf, settings, catalogue, tally):
    """Pending products' prices, to listed SKUs in the listings' currency."""
    for record in sdk.iter_records("products", pending=True, page_size=PAGE):
        product = record.body
        sku = mapping.product_sku(product)
        if product["currency"] != settings.currency:
            sdk.acknowledge(record)
            tally.skipped += 1
            continue
        if sku not in catalogue:
            tally.unknown(sku)
            sdk.acknowledge(record)
            continue
        if sdk.load_json(f"price/{sku}") == product["price"]:
            sdk.acknowledge(record)
            tally.unchanged += 1
            continue
        if not sf.set_price(catalogue[sku], mapping.price_update(product, settings.prices_include_vat)):
            tally.unknown(sku)  # removed from StoreFeeder meanwhile: never re-created
            sdk.acknowledge(record)
            continue
        sdk.save_json(f"price/{sku}", product["price"])
        sdk.checkpoint()
        sdk.acknowledge(record)
        tally.prices += 1


def _has_pending(collection):
    return bool(next(sdk.iter_pages(collection, pending=True, page_size=1), []))


def push_listings(sf, settings, tally):
    if not (_has_pending("stock") or _has_pending("products")):
        return  # StoreFeeder's catalogue is read only when there is something to send
    catalogue = sf.products()
    sdk.info(f"StoreFeeder lists {len(catalogue)} products")
    push_stock(sf, settings, catalogue, tally)
    push_prices(sf, settings, catalogue, tally)


# ---------------------------------------------------------------- test mode


def dry_run(feed, settings):
    """What a run would do, from the records alone: test mode cannot get a
    token (a POST), so nothing is read from or sent to StoreFeeder."""
    if feed == "orders":
        return "nothing downloaded"
    if feed == "despatches":
        n = sum(1 for _ in sdk.iter_records("shipments", pending=True, page_size=PAGE))
        return f"{n} pending shipments would be checked and sent, 50 orders a call"
    stock = sum(1 for _ in sdk.iter_records("stock", pending=True, page_size=PAGE))
    prices = sum(1 for _ in sdk.iter_records("products", pending=True, page_size=PAGE))
    return f"{stock} pending stock levels and {prices} pending prices would be matched to existing listings"
