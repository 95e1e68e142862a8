//! eBay's documents and the shop's records, one into the other, without
//! I/O: an eBay order as an `orders` record, a `shipments` record as a
//! shipping fulfilment, a product and its stock as a price-and-quantity
//! update, the category tree as the list an operator maps against.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::time;

/// The record id of eBay order `order_id`.
pub fn order_record_id(order_id: &str) -> String {
    format!("ebay-{order_id}")
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// An amount as records write it (`"12.50"`): eBay's `value` checked.
pub fn money(amount: &Value) -> Option<String> {
    let value = amount.get("value").and_then(Value::as_str)?.trim();
    to_units(value).map(|_| value.to_string())
}

/// An amount in ten-thousandths ("12.5" → 125000); None unless it is
/// digits with at most four decimals.
pub fn to_units(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 15 || !digits(whole) || !digits(frac) || frac.len() > 4 {
        return None;
    }
    if text.contains('.') && frac.is_empty() {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = format!("{frac:0<4}").parse().ok()?;
    Some(whole * 10_000 + frac)
}

/// Ten-thousandths as an amount with at least two decimals ("12.50").
pub fn from_units(units: i64) -> String {
    let text = format!("{}.{:04}", units / 10_000, units % 10_000);
    let trimmed = text.trim_end_matches('0');
    match trimmed.len() - trimmed.find('.').unwrap_or(0) {
        1 => format!("{trimmed}00"),
        2 => format!("{trimmed}0"),
        _ => trimmed.to_string(),
    }
}

/// The record's status for an eBay order: cancelled, refunded, despatched
/// once fulfilled, processing once paid, else pending payment.
pub fn order_status(order: &Value) -> &'static str {
    let cancel = order["cancelStatus"]["cancelState"].as_str().unwrap_or("");
    if cancel == "CANCELED" {
        return "cancelled";
    }
    match (
        s(order, "orderPaymentStatus"),
        s(order, "orderFulfillmentStatus"),
    ) {
        ("FULLY_REFUNDED", _) => "refunded",
        (_, "FULFILLED") => "despatched",
        ("PAID" | "PARTIALLY_REFUNDED", _) => "processing",
        _ => "pending_payment",
    }
}

fn payment_status(order: &Value) -> &'static str {
    match s(order, "orderPaymentStatus") {
        "PAID" => "paid",
        "FULLY_REFUNDED" => "refunded",
        "PARTIALLY_REFUNDED" => "partially_refunded",
        _ => "unpaid",
    }
}

fn address(ship_to: &Value) -> Value {
    let a = &ship_to["contactAddress"];
    let mut out = Map::new();
    for (field, value) in [
        ("name", s(ship_to, "fullName")),
        ("line1", s(a, "addressLine1")),
        ("line2", s(a, "addressLine2")),
        ("town", s(a, "city")),
        ("county", s(a, "stateOrProvince")),
        ("postcode", s(a, "postalCode")),
        ("country", s(a, "countryCode")),
        ("phone", s(&ship_to["primaryPhone"], "phoneNumber")),
    ] {
        if !value.is_empty() {
            out.insert(field.into(), json!(value));
        }
    }
    Value::Object(out)
}

/// The `orders` record for an eBay order, or why it cannot be one.
pub fn order_record(order: &Value) -> Result<Value, String> {
    let id = s(order, "orderId");
    if id.is_empty() {
        return Err("an order without orderId".into());
    }
    let total = &order["pricingSummary"]["total"];
    let currency = s(total, "currency");
    let placed = s(order, "creationDate");
    if time::parse(placed).is_none() {
        return Err(format!("order {id}: creationDate `{placed}` is not a time"));
    }
    let ship_to = &order["fulfillmentStartInstructions"][0]["shippingStep"]["shipTo"];
    let buyer = &order["buyer"];
    let registration = &buyer["buyerRegistrationAddress"];
    let email = [s(registration, "email"), s(ship_to, "email")]
        .into_iter()
        .find(|e| e.contains('@'))
        .ok_or_else(|| format!("order {id}: eBay gave no buyer email"))?;
    let name = [
        s(registration, "fullName"),
        s(ship_to, "fullName"),
        s(buyer, "username"),
    ]
    .into_iter()
    .find(|n| !n.trim().is_empty())
    .unwrap_or("eBay buyer");
    let mut lines = Vec::new();
    for item in order["lineItems"].as_array().into_iter().flatten() {
        let quantity = item["quantity"].as_u64().unwrap_or(0);
        let cost = money(&item["lineItemCost"])
            .and_then(|m| to_units(&m))
            .ok_or_else(|| format!("order {id}: a line without a lineItemCost"))?;
        let unit = if quantity > 0 {
            (cost + quantity as i64 / 2) / quantity as i64
        } else {
            cost
        };
        let mut line = json!({
            "id": s(item, "lineItemId"),
            "description": if s(item, "title").is_empty() { "eBay item" } else { s(item, "title") },
            "quantity": quantity,
            "unit_price": from_units(unit),
        });
        if !s(item, "sku").is_empty() {
            line["sku"] = json!(s(item, "sku"));
        }
        if let Some(t) = money(&item["total"]) {
            line["total"] = json!(t);
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Err(format!("order {id}: no line items"));
    }
    let pricing = &order["pricingSummary"];
    let mut totals = json!({
        "total": money(total).ok_or_else(|| format!("order {id}: no total"))?,
    });
    for (field, key) in [
        ("subtotal", "priceSubtotal"),
        ("shipping", "deliveryCost"),
        ("tax", "tax"),
    ] {
        if let Some(m) = money(&pricing[key]) {
            totals[field] = json!(m);
        }
    }
    let mut record = json!({
        "id": order_record_id(id),
        "number": id,
        "channel": "ebay",
        "channel_order_ref": id,
        "status": order_status(order),
        "placed_at": placed,
        "currency": currency,
        "customer": { "email": email, "name": name },
        "lines": lines,
        "totals": totals,
        "payment_status": payment_status(order),
    });
    if time::parse(s(order, "lastModifiedDate")).is_some() {
        record["updated_at"] = json!(s(order, "lastModifiedDate"));
    }
    if ship_to.is_object() {
        record["shipping_address"] = address(ship_to);
    }
    if !s(buyer, "username").is_empty() {
        record["customer"]["id"] = json!(format!("ebay-buyer-{}", s(buyer, "username")));
    }
    Ok(record)
}

/// `Royal Mail=RoyalMail; DPD=DPD` as a map (names compared case-blind).
pub fn carrier_codes(config: &str) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for pair in config.split([';', '\n']).filter(|p| !p.trim().is_empty()) {
        let (name, code) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{}` is not `carrier=code`", pair.trim()))?;
        let (name, code) = (name.trim(), code.trim());
        if name.is_empty() || code.is_empty() || code.contains(char::is_whitespace) {
            return Err(format!("`{}` is not `carrier=code`", pair.trim()));
        }
        map.insert(name.to_lowercase(), code.to_string());
    }
    Ok(map)
}

/// The shipping carrier code for a shipment's carrier.
pub fn carrier_code(carrier: &str, codes: &BTreeMap<String, String>) -> String {
    codes
        .get(&carrier.trim().to_lowercase())
        .cloned()
        .unwrap_or_else(|| carrier.split_whitespace().collect())
}

/// The shipping fulfilment for `shipment` of `order` (a record of ours):
/// the shipment's lines, or every line of the order when it has none.
pub fn fulfilment(
    shipment: &Value,
    order: &Value,
    codes: &BTreeMap<String, String>,
) -> Result<Value, String> {
    let despatched = s(shipment, "despatched_at");
    let at = time::parse(despatched)
        .ok_or_else(|| format!("despatched_at `{despatched}` is not a time"))?;
    let order_lines = order["lines"].as_array().cloned().unwrap_or_default();
    let mut lines = Vec::new();
    match shipment["lines"].as_array() {
        Some(shipped) => {
            for l in shipped {
                let line_id = if !s(l, "order_line_id").is_empty() {
                    s(l, "order_line_id").to_string()
                } else {
                    order_lines
                        .iter()
                        .find(|o| !s(l, "sku").is_empty() && s(o, "sku") == s(l, "sku"))
                        .map(|o| s(o, "id").to_string())
                        .unwrap_or_default()
                };
                if line_id.is_empty() {
                    return Err("a shipped line names no order line the order has".into());
                }
                lines.push(json!({ "lineItemId": line_id, "quantity": l["quantity"] }));
            }
        }
        None => {
            for o in &order_lines {
                if o["cancelled"] != true && !s(o, "id").is_empty() {
                    lines.push(json!({ "lineItemId": s(o, "id"), "quantity": o["quantity"] }));
                }
            }
        }
    }
    if lines.is_empty() {
        return Err("nothing to fulfil".into());
    }
    let mut body = json!({ "lineItems": lines, "shippedDate": time::format(at) });
    let tracking = s(shipment, "tracking_number").trim();
    if !tracking.is_empty() {
        body["trackingNumber"] = json!(tracking);
        body["shippingCarrierCode"] = json!(carrier_code(s(shipment, "carrier"), codes));
    }
    Ok(body)
}

/// Whether one of the order's fulfilments on eBay (from `GET
/// /order/{id}/shipping_fulfillment`) is already `body`: the same tracking
/// number, or, untracked, the same line items.
pub fn already_fulfilled(existing: &Value, body: &Value) -> Option<String> {
    let line_ids = |v: &Value| -> BTreeSet<String> {
        v["lineItems"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| s(l, "lineItemId").to_string())
            .collect()
    };
    let wanted = s(body, "trackingNumber");
    existing["fulfillments"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| {
            if wanted.is_empty() {
                s(f, "shipmentTrackingNumber").is_empty() && line_ids(f) == line_ids(body)
            } else {
                s(f, "shipmentTrackingNumber") == wanted
            }
        })
        .map(|f| s(f, "fulfillmentId").to_string())
}

/// What eBay should show for one SKU: the quantity available and the price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The SKU.
    pub sku: String,
    /// Units available.
    pub quantity: u64,
    /// The price, as an amount ("12.50").
    pub price: String,
    /// Its currency.
    pub currency: String,
}

impl Listing {
    /// What is remembered of a push, to compare the next with.
    pub fn memo(&self) -> Value {
        json!({ "quantity": self.quantity, "price": self.price, "currency": self.currency })
    }

    /// The `bulk_update_price_quantity` body for this SKU's offers.
    pub fn request(&self, offer_ids: &[String]) -> Value {
        let offers: Vec<Value> = offer_ids
            .iter()
            .map(|id| {
                json!({
                    "offerId": id,
                    "availableQuantity": self.quantity,
                    "price": { "value": self.price, "currency": self.currency },
                })
            })
            .collect();
        json!({ "requests": [{
            "sku": self.sku,
            "shipToLocationAvailability": { "quantity": self.quantity },
            "offers": offers,
        }]})
    }
}

/// The listing for a product (a record body) if it is in one of the
/// `mapped` categories and has a stock count: price is the sale price when
/// set.
pub fn listing(
    product: &Value,
    mapped: &BTreeSet<String>,
    stock: &BTreeMap<String, u64>,
) -> Option<Listing> {
    let in_mapped = product["category_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|c| mapped.contains(c));
    if !in_mapped || product["status"] == "archived" {
        return None;
    }
    let sku = match s(product, "sku") {
        "" => s(product, "id"),
        sku => sku,
    };
    let quantity = *stock.get(sku)?;
    let price = match s(product, "sale_price") {
        "" => s(product, "price"),
        sale => sale,
    };
    Some(Listing {
        sku: sku.to_string(),
        quantity,
        price: price.to_string(),
        currency: s(product, "currency").to_string(),
    })
}

/// eBay's category tree (`GET /category_tree/{id}`) flattened: one entry
/// per category with its id, name, parent, path from the root and whether
/// it is a leaf (only leaves take listings).
pub fn flatten_tree(tree: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack: Vec<(&Value, Option<String>, String)> =
        vec![(&tree["rootCategoryNode"], None, String::new())];
    while let Some((node, parent, path)) = stack.pop() {
        let cat = &node["category"];
        let (id, name) = (s(cat, "categoryId"), s(cat, "categoryName"));
        let is_root = parent.is_none();
        let here = if is_root || path.is_empty() {
            name.to_string()
        } else {
            format!("{path} > {name}")
        };
        if !is_root {
            out.push(json!({
                "id": id,
                "name": name,
                "parent_id": parent,
                "path": here,
                "leaf": node["leafCategoryTreeNode"] == true,
            }));
        }
        let children = node["childCategoryTreeNodes"].as_array();
        for child in children.into_iter().flatten().rev() {
            let child_path = if is_root { String::new() } else { here.clone() };
            stack.push((child, Some(id.to_string()), child_path));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ebay_order() -> Value {
        json!({
            "orderId": "12-00001-00001",
            "creationDate": "2026-11-20T10:00:00.000Z",
            "lastModifiedDate": "2026-11-20T11:00:00.000Z",
            "orderFulfillmentStatus": "NOT_STARTED",
            "orderPaymentStatus": "PAID",
            "buyer": { "username": "jo_b", "buyerRegistrationAddress": { "fullName": "Jo Bloggs", "email": "jo@example.com" } },
            "pricingSummary": {
                "priceSubtotal": { "value": "30.00", "currency": "GBP" },
                "deliveryCost": { "value": "3.99", "currency": "GBP" },
                "total": { "value": "33.99", "currency": "GBP" }
            },
            "fulfillmentStartInstructions": [{ "shippingStep": { "shipTo": {
                "fullName": "Jo Bloggs",
                "contactAddress": { "addressLine1": "1 High St", "city": "York", "postalCode": "YO1 1AA", "countryCode": "GB" }
            }}}],
            "lineItems": [{ "lineItemId": "L1", "sku": "MUG-1", "title": "Mug", "quantity": 3,
                "lineItemCost": { "value": "30.00", "currency": "GBP" }, "total": { "value": "30.00", "currency": "GBP" } }]
        })
    }

    #[test]
    fn an_ebay_order_becomes_an_orders_record() {
        let r = order_record(&ebay_order()).unwrap();
        assert_eq!(r["id"], "ebay-12-00001-00001");
        assert_eq!(r["channel"], "ebay");
        assert_eq!(r["status"], "processing");
        assert_eq!(r["lines"][0]["unit_price"], "10.00");
        assert_eq!(r["lines"][0]["id"], "L1");
        assert_eq!(r["totals"]["shipping"], "3.99");
        assert_eq!(r["customer"]["email"], "jo@example.com");
        assert_eq!(r["shipping_address"]["town"], "York");
    }

    #[test]
    fn statuses_follow_payment_fulfilment_and_cancellation() {
        let check = |patch: Value, want: &str| {
            let mut o = ebay_order();
            for (k, v) in patch.as_object().unwrap() {
                o[k] = v.clone();
            }
            assert_eq!(order_status(&o), want, "{patch}");
        };
        check(json!({}), "processing");
        check(
            json!({ "orderPaymentStatus": "PENDING" }),
            "pending_payment",
        );
        check(
            json!({ "orderFulfillmentStatus": "FULFILLED" }),
            "despatched",
        );
        check(
            json!({ "orderPaymentStatus": "FULLY_REFUNDED" }),
            "refunded",
        );
        check(
            json!({ "cancelStatus": { "cancelState": "CANCELED" } }),
            "cancelled",
        );
    }

    #[test]
    fn an_order_without_an_email_is_refused_with_its_id() {
        let mut o = ebay_order();
        o["buyer"]["buyerRegistrationAddress"]["email"] = json!("");
        assert_eq!(
            order_record(&o).unwrap_err(),
            "order 12-00001-00001: eBay gave no buyer email"
        );
    }

    #[test]
    fn amounts_are_exact() {
        assert_eq!(to_units("12.5"), Some(125_000));
        assert_eq!(to_units("0"), Some(0));
        for bad in ["", "-1", "1.", "1.23456", "1,00", "x"] {
            assert_eq!(to_units(bad), None, "{bad}");
        }
        assert_eq!(from_units(125_000), "12.50");
        assert_eq!(from_units(123_456), "12.3456");
        assert_eq!(from_units(0), "0.00");
    }

    #[test]
    fn a_shipment_becomes_a_fulfilment_with_the_carriers_code() {
        let order = order_record(&ebay_order()).unwrap();
        let codes = carrier_codes("Royal Mail=RoyalMail; DPD = DPD").unwrap();
        let shipment = json!({ "id": "S1", "order_id": "ebay-12-00001-00001", "carrier": "royal mail",
            "tracking_number": "RM123", "despatched_at": "2026-11-21T09:00:00+01:00" });
        let body = fulfilment(&shipment, &order, &codes).unwrap();
        assert_eq!(
            body,
            json!({ "lineItems": [{ "lineItemId": "L1", "quantity": 3 }],
                "shippedDate": "2026-11-21T08:00:00.000Z",
                "trackingNumber": "RM123", "shippingCarrierCode": "RoyalMail" })
        );
        let existing = json!({ "fulfillments": [{ "fulfillmentId": "F9", "shipmentTrackingNumber": "RM123" }] });
        assert_eq!(already_fulfilled(&existing, &body).as_deref(), Some("F9"));
        assert_eq!(
            already_fulfilled(&json!({ "fulfillments": [] }), &body),
            None
        );
        assert!(carrier_codes("Royal Mail").is_err());
        assert_eq!(carrier_code("Parcel Force", &codes), "ParcelForce");
    }

    #[test]
    fn only_products_in_mapped_categories_with_stock_are_listed() {
        let mapped: BTreeSet<String> = ["C1".to_string()].into();
        let stock: BTreeMap<String, u64> = [("MUG-1".to_string(), 7)].into();
        let p = json!({ "id": "p1", "sku": "MUG-1", "title": "Mug", "price": "10.00", "sale_price": "8.00", "currency": "GBP", "category_ids": ["C1"] });
        let l = listing(&p, &mapped, &stock).unwrap();
        assert_eq!((l.quantity, l.price.as_str()), (7, "8.00"));
        let mut elsewhere = p.clone();
        elsewhere["category_ids"] = json!(["C2"]);
        assert_eq!(listing(&elsewhere, &mapped, &stock), None);
        let mut unstocked = p.clone();
        unstocked["sku"] = json!("OTHER");
        assert_eq!(listing(&unstocked, &mapped, &stock), None);
        assert_eq!(
            l.request(&["O1".into()])["requests"][0]["offers"][0],
            json!({ "offerId": "O1", "availableQuantity": 7, "price": { "value": "8.00", "currency": "GBP" } })
        );
    }

    #[test]
    fn the_tree_is_flattened_with_paths() {
        let tree = json!({ "rootCategoryNode": { "category": { "categoryId": "0", "categoryName": "Root" },
            "childCategoryTreeNodes": [
                { "category": { "categoryId": "11700", "categoryName": "Home" },
                  "childCategoryTreeNodes": [
                    { "category": { "categoryId": "20469", "categoryName": "Mugs" }, "leafCategoryTreeNode": true }
                  ] },
                { "category": { "categoryId": "293", "categoryName": "Electronics" }, "leafCategoryTreeNode": true }
            ] } });
        let flat = flatten_tree(&tree);
        let paths: Vec<&str> = flat.iter().map(|c| c["path"].as_str().unwrap()).collect();
        assert_eq!(paths, ["Home", "Home > Mugs", "Electronics"]);
        assert_eq!(flat[1]["parent_id"], "11700");
        assert_eq!(flat[1]["leaf"], true);
        assert_eq!(flat[0]["parent_id"], "0");
    }
}
