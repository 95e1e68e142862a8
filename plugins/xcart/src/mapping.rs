//! X-Cart's entities as the tenant's records, without I/O: what an order's
//! status letters mean, whether a new order is imported (and if not, with
//! which severity), and the `orders`, `products` and `stock` bodies.
//!
//! The status letters' meanings are not in X-Cart's published API
//! reference (`THIRD-PARTY-APIS.md` marks them [MEM]); this is the mapping
//! the connector uses, and `docs/integrations/xcart.md` repeats it:
//!
//! | payment | meaning | new order | record `status` / `payment_status` |
//! | --- | --- | --- | --- |
//! | `P` | paid | imported | by shipping status / `paid` |
//! | `A` | authorised (valid) | imported | by shipping status / `paid` |
//! | `PP` | partially paid | put aside (retry hourly) | `pending_payment` / `partially_paid` |
//! | `Q` | queued, awaiting payment | put aside (retry hourly) | `pending_payment` / `unpaid` |
//! | `D` | declined | skipped (info) | `cancelled` / `unpaid` |
//! | `C` | cancelled | skipped (info) | `cancelled` / `unpaid` |
//! | `R` | refunded | skipped (info) | `refunded` / `refunded` |
//!
//! | shipping | meaning | record `status` (when paid) |
//! | --- | --- | --- |
//! | `N` new, `P` processing, `WFA` waiting for approval | | `processing` |
//! | `S` | shipped | `despatched` |
//! | `D` | delivered | `completed` |
//! | `WND` | will not deliver | `on_hold` |
//! | `R` | returned | `refunded` |

use serde_json::{Map, Value, json};

/// The settings that shape the records.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Orders carry X-Cart's tax (`totals.tax`, `prices_include_tax`).
    pub use_xcart_tax: bool,
    /// The shipping total includes X-Cart's tax on shipping.
    pub use_xcart_tax_for_shipping: bool,
    /// The name of the shipping surcharge in orders.
    pub shipping_surcharge_name: String,
    /// Shipping methods the warehouse knows (lower case); empty: any.
    pub shipping_methods: Vec<String>,
    /// The shop's currency, for products.
    pub currency: String,
    /// The installation: the prefix of order ids, written on each record.
    pub installation: String,
}

/// What to do with an order not imported yet.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Paid or valid: import this body.
    Import(Value),
    /// A business rule says no (cancelled, declined, refunded): `info`.
    Skip(String),
    /// Not paid yet: put aside, re-checked hourly (`retry`).
    PendingPayment(String),
    /// Needs a person (an unknown shipping method…): `error`.
    Problem(String),
}

/// A status letter, whether X-Cart gives it as `"P"` or `{"code": "P"}`.
pub fn code(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_ascii_uppercase(),
        Value::Object(o) => o.get("code").map(code).unwrap_or_default(),
        _ => String::new(),
    }
}

/// The order's number as customers see it.
pub fn order_number(order: &Value) -> String {
    match &order["orderNumber"] {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => id_text(&order["order_id"]),
    }
}

/// X-Cart's numeric id as text.
pub fn id_text(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// The record id of an X-Cart order of this installation.
pub fn order_record_id(installation: &str, order: &Value) -> String {
    format!("{installation}-{}", order_number(order))
}

/// The record `status` and `payment_status` for the status letters.
pub fn statuses(payment: &str, shipping: &str) -> (&'static str, &'static str) {
    let paid = match payment {
        "P" | "A" => "paid",
        "PP" => "partially_paid",
        "R" => "refunded",
        _ => "unpaid",
    };
    let status = match payment {
        "C" | "D" => "cancelled",
        "R" => "refunded",
        "Q" | "PP" => "pending_payment",
        _ => match shipping {
            "S" => "despatched",
            "D" => "completed",
            "WND" => "on_hold",
            "R" => "refunded",
            _ => "processing",
        },
    };
    (status, paid)
}

/// Whether and how to import a new order.
pub fn decide(order: &Value, rules: &Rules) -> Decision {
    let number = order_number(order);
    let payment = code(&order["paymentStatus"]);
    match payment.as_str() {
        "C" => return Decision::Skip(format!("order {number} not imported: cancelled")),
        "D" => return Decision::Skip(format!("order {number} not imported: payment declined")),
        "R" => return Decision::Skip(format!("order {number} not imported: refunded")),
        "Q" | "PP" => {
            return Decision::PendingPayment(format!(
                "order {number} is pending payment ({payment}): put aside, re-checked hourly"
            ));
        }
        "P" | "A" => {}
        other => {
            return Decision::Problem(format!("order {number}: unknown payment status `{other}`"));
        }
    }
    let method = text(order, "shipping_method_name").trim().to_string();
    if method.is_empty() {
        return Decision::Problem(format!("order {number}: no shipping method"));
    }
    if !rules.shipping_methods.is_empty()
        && !rules.shipping_methods.contains(&method.to_lowercase())
    {
        return Decision::Problem(format!(
            "order {number}: unknown shipping method `{method}` (known: {}): add it to config \
             `shipping_methods` once the warehouse ships with it",
            rules.shipping_methods.join(", ")
        ));
    }
    match order_body(order, rules) {
        Ok(body) => Decision::Import(body),
        Err(why) => Decision::Problem(format!("order {number}: {why}")),
    }
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or("")
}

/// An amount as the records' money string: at most 4 decimals, at least 2.
pub fn money(v: &Value) -> Option<String> {
    let x = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let mut s = format!("{:.4}", (x * 10_000.0).round() / 10_000.0);
    while s.ends_with('0') && s.len() - s.find('.').unwrap_or(0) > 3 {
        s.pop();
    }
    Some(s)
}

fn sum(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |a, b| a + b)
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn iso(seconds: i64) -> Option<String> {
    if !(0..=253_402_300_799).contains(&seconds) {
        return None;
    }
    chrono::DateTime::<chrono::Utc>::from_timestamp(seconds, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// An X-Cart timestamp (unix seconds) as RFC 3339.
pub fn time(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => iso(n.as_i64()?),
        Value::String(s) => iso(s.trim().parse().ok()?),
        _ => None,
    }
}

fn address(a: &Value) -> Option<Value> {
    if !a.is_object() {
        return None;
    }
    let mut out = Map::new();
    let name = format!("{} {}", text(a, "firstname"), text(a, "lastname"))
        .trim()
        .to_string();
    let country = text(a, "country_code").trim().to_ascii_uppercase();
    if country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()) {
        out.insert("country".into(), json!(country));
    }
    for (to, value) in [
        ("name", name.as_str()),
        ("line1", text(a, "street")),
        ("town", text(a, "city")),
        ("postcode", text(a, "zipcode")),
        ("phone", text(a, "phone")),
    ] {
        if !value.is_empty() {
            out.insert(to.into(), json!(value));
        }
    }
    Some(Value::Object(out))
}

fn surcharges<'a>(order: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    order["surcharges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |s| text(s, "type").eq_ignore_ascii_case(kind))
}

/// A tax surcharge on shipping (the fake's and this connector's
/// assumption: its code starts with `SHIPPING`).
fn on_shipping(s: &Value) -> bool {
    text(s, "code").to_ascii_uppercase().starts_with("SHIPPING")
}

/// The order's customer: its login email and billing name.
fn customer(order: &Value) -> Result<Value, String> {
    let billing = &order["billingAddress"];
    let email = text(&order["profile"], "login").trim().to_string();
    if !email.contains('@') {
        return Err("no customer email".into());
    }
    let name = format!(
        "{} {}",
        text(billing, "firstname"),
        text(billing, "lastname")
    );
    let name = match name.trim() {
        "" => email.clone(),
        n => n.to_string(),
    };
    let mut customer = json!({ "email": email, "name": name });
    for (to, from) in [("first_name", "firstname"), ("last_name", "lastname")] {
        if !text(billing, from).is_empty() {
            customer[to] = json!(text(billing, from));
        }
    }
    Ok(customer)
}

/// The order's lines from its items (at least one).
fn lines(order: &Value) -> Result<Vec<Value>, String> {
    let mut lines = Vec::new();
    for (i, item) in order["items"].as_array().into_iter().flatten().enumerate() {
        let n = i + 1;
        let description = match (text(item, "name"), text(item, "sku")) {
            ("", "") => return Err(format!("line {n}: no name or sku")),
            ("", sku) => sku,
            (name, _) => name,
        };
        let mut line = json!({
            "id": match id_text(&item["item_id"]).as_str() { "" => n.to_string(), id => id.to_string() },
            "sku": text(item, "sku"),
            "description": description,
            "quantity": item["amount"].as_u64().ok_or(format!("line {n}: no quantity"))?,
            "unit_price": money(&item["price"]).ok_or(format!("line {n}: no price"))?,
        });
        if let Some(total) = money(&item["total"]) {
            line["total"] = json!(total);
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Err("no lines".into());
    }
    Ok(lines)
}

/// The order's totals, with shipping and tax as the rules say; and
/// whether its prices include X-Cart's tax (None: X-Cart's tax not used).
fn totals(order: &Value, rules: &Rules) -> Result<(Value, Option<bool>), String> {
    let named = |s: &&Value| text(s, "name") == rules.shipping_surcharge_name;
    let others: Vec<&str> = surcharges(order, "shipping")
        .filter(|s| !named(s))
        .map(|s| text(s, "name"))
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "a shipping surcharge named `{}`, not `{}` as config `shipping_surcharge_name` says",
            others.join("`, `"),
            rules.shipping_surcharge_name
        ));
    }
    let shipping = sum(surcharges(order, "shipping")
        .filter(named)
        .map(|s| number(&s["value"])));
    let taxes = |on: bool| {
        sum(surcharges(order, "tax")
            .filter(|s| on_shipping(s) == on)
            .map(|s| number(&s["value"])))
    };
    let (goods_tax, shipping_tax) = (taxes(false), taxes(true));
    let with_shipping_tax = rules.use_xcart_tax_for_shipping;
    let amount = |x: f64| money(&json!(x)).unwrap_or_else(|| "0".into());
    let mut totals = json!({
        "total": money(&order["total"]).ok_or("no total")?,
        "shipping": amount(if with_shipping_tax { shipping + shipping_tax } else { shipping }),
    });
    if let Some(subtotal) = money(&order["subtotal"]) {
        totals["subtotal"] = json!(subtotal);
    }
    if !rules.use_xcart_tax {
        return Ok((totals, None));
    }
    let tax = if with_shipping_tax {
        goods_tax + shipping_tax
    } else {
        goods_tax
    };
    totals["tax"] = json!(amount(tax));
    let included = surcharges(order, "tax")
        .filter(|s| !on_shipping(s))
        .any(|s| s["include"] == true);
    Ok((totals, Some(included)))
}

/// The `orders` body of a paid X-Cart order.
pub fn order_body(order: &Value, rules: &Rules) -> Result<Value, String> {
    let order_no = order_number(order);
    let placed_at = time(&order["date"]).ok_or("no order date")?;
    let currency = match &order["currency"] {
        Value::Object(c) => c.get("code").and_then(Value::as_str).unwrap_or(""),
        Value::String(s) => s.as_str(),
        _ => "",
    }
    .trim()
    .to_ascii_uppercase();
    if currency.len() != 3 {
        return Err("no currency".into());
    }
    let (totals, prices_include_tax) = totals(order, rules)?;
    let (status, paid) = statuses(
        &code(&order["paymentStatus"]),
        &code(&order["shippingStatus"]),
    );
    let mut body = json!({
        "id": order_record_id(&rules.installation, order),
        "number": order_no,
        "status": status,
        "payment_status": paid,
        "channel": "xcart",
        "channel_order_ref": order_no,
        "placed_at": placed_at,
        "currency": currency,
        "customer": customer(order)?,
        "shipping_method": text(order, "shipping_method_name"),
        "lines": lines(order)?,
        "totals": totals,
        "shipping_includes_tax": rules.use_xcart_tax_for_shipping,
        "xcart_order_id": id_text(&order["order_id"]),
        "xcart_installation": rules.installation,
    });
    if let Some(included) = prices_include_tax {
        body["prices_include_tax"] = json!(included);
    }
    if let Some(updated) = time(&order["lastRenewDate"]) {
        body["updated_at"] = json!(updated);
    }
    for (to, from) in [
        ("billing_address", "billingAddress"),
        ("shipping_address", "shippingAddress"),
    ] {
        if let Some(a) = address(&order[from]) {
            body[to] = a;
        }
    }
    Ok(body)
}

/// An imported order's body with X-Cart's current statuses (nothing else
/// changes: lines and addresses are never updated); None if they are the
/// same already.
pub fn order_status_update(current: &Value, order: &Value) -> Option<Value> {
    let (status, paid) = statuses(
        &code(&order["paymentStatus"]),
        &code(&order["shippingStatus"]),
    );
    if current["status"] == status && current["payment_status"] == paid {
        return None;
    }
    let mut body = current.clone();
    body["status"] = json!(status);
    body["payment_status"] = json!(paid);
    if let Some(updated) = time(&order["lastRenewDate"]) {
        body["updated_at"] = json!(updated);
    }
    Some(body)
}

/// The `products` body of an X-Cart product (no images: the images feed
/// adds them), keeping what another feed set on `current`.
pub fn product_body(
    product: &Value,
    rules: &Rules,
    current: Option<&Value>,
) -> Result<Value, String> {
    let sku = text(product, "sku").trim();
    if sku.is_empty() || sku.len() > 50 {
        return Err(format!(
            "product {}: a SKU of 1 to 50 characters is needed",
            id_text(&product["product_id"])
        ));
    }
    let mut body = current.cloned().unwrap_or_else(|| json!({}));
    body["id"] = json!(sku);
    body["sku"] = json!(sku);
    body["title"] = json!(match text(product, "name").trim() {
        "" => sku,
        n => n,
    });
    body["price"] = json!(money(&product["price"]).ok_or(format!("product {sku}: no price"))?);
    body["currency"] = json!(rules.currency);
    body["status"] = json!(if product["enabled"] == false {
        "inactive"
    } else {
        "active"
    });
    body["xcart_product_id"] = json!(id_text(&product["product_id"]));
    if !text(product, "description").is_empty() {
        body["description"] = json!(text(product, "description"));
    }
    if let Some(updated) = time(&product["updateDate"]) {
        body["updated_at"] = json!(updated);
    }
    Ok(body)
}

/// The image URLs of a product as X-Cart gives them (`images[].url`).
pub fn image_urls(product: &Value) -> Vec<String> {
    product["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["url"].as_str().or(i.as_str()))
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_string)
        .collect()
}

/// The `stock` body of an X-Cart product (its `amount`).
pub fn stock_body(product: &Value) -> Option<Value> {
    let sku = text(product, "sku").trim();
    if sku.is_empty() {
        return None;
    }
    Some(json!({
        "id": sku,
        "sku": sku,
        "product_id": sku,
        "quantity": product["amount"].as_i64().unwrap_or(0).max(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            use_xcart_tax: true,
            use_xcart_tax_for_shipping: false,
            shipping_surcharge_name: "Shipping cost".into(),
            shipping_methods: vec!["courier".into()],
            currency: "GBP".into(),
            installation: "xcart".into(),
        }
    }

    fn order(payment: &str, method: &str) -> Value {
        json!({
            "order_id": 7, "orderNumber": "1007", "date": 1_795_000_000,
            "paymentStatus": {"code": payment}, "shippingStatus": "N",
            "currency": {"code": "GBP"}, "profile": {"login": "ada@example.com"},
            "billingAddress": {"firstname": "Ada", "lastname": "Lovelace"},
            "shipping_method_name": method, "subtotal": 20.0, "total": 28.95,
            "items": [{"item_id": 1, "sku": "S1", "name": "Cushion", "price": 10.0, "amount": 2, "total": 20.0}],
            "surcharges": [
                {"type": "shipping", "code": "SHIPPING", "name": "Shipping cost", "value": 4.95},
                {"type": "tax", "code": "VAT", "name": "VAT", "value": 3.0, "include": false},
                {"type": "tax", "code": "SHIPPING_VAT", "name": "VAT on shipping", "value": 1.0},
            ],
        })
    }

    fn check(payment: &str, method: &str, expected: &str) {
        let got = match decide(&order(payment, method), &rules()) {
            Decision::Import(_) => "import".to_string(),
            Decision::Skip(m) => format!("info: {m}"),
            Decision::PendingPayment(m) => format!("retry: {m}"),
            Decision::Problem(m) => format!("error: {m}"),
        };
        assert!(got.starts_with(expected), "{payment}/{method}: {got}");
    }

    #[test]
    fn each_payment_status_has_its_severity() {
        check("P", "Courier", "import");
        check("A", "courier", "import");
        check("C", "Courier", "info: order 1007 not imported: cancelled");
        check(
            "D",
            "Courier",
            "info: order 1007 not imported: payment declined",
        );
        check("R", "Courier", "info: order 1007 not imported: refunded");
        check("Q", "Courier", "retry: order 1007 is pending payment");
        check("PP", "Courier", "retry: order 1007 is pending payment");
        check(
            "P",
            "Pigeon",
            "error: order 1007: unknown shipping method `Pigeon`",
        );
        check("P", "", "error: order 1007: no shipping method");
        check("ZZ", "Courier", "error: order 1007: unknown payment status");
        // A cancelled order with an unknown method is still only info.
        check("C", "Pigeon", "info:");
    }

    #[test]
    fn statuses_map_as_documented() {
        assert_eq!(statuses("P", "N"), ("processing", "paid"));
        assert_eq!(statuses("A", "S"), ("despatched", "paid"));
        assert_eq!(statuses("P", "D"), ("completed", "paid"));
        assert_eq!(statuses("P", "WND"), ("on_hold", "paid"));
        assert_eq!(statuses("C", "S"), ("cancelled", "unpaid"));
        assert_eq!(statuses("R", "R"), ("refunded", "refunded"));
        assert_eq!(statuses("Q", "N"), ("pending_payment", "unpaid"));
    }

    #[test]
    fn an_order_body_takes_tax_and_shipping_as_configured() {
        let body = order_body(&order("P", "Courier"), &rules()).unwrap();
        assert_eq!(body["id"], "xcart-1007");
        assert_eq!(body["placed_at"], "2026-11-18T11:06:40Z");
        assert_eq!(time(&json!(0)).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            time(&json!(951_782_400)).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(body["totals"]["shipping"], "4.95");
        assert_eq!(body["totals"]["tax"], "3.00");
        assert_eq!(body["prices_include_tax"], false);
        assert_eq!(body["lines"][0]["unit_price"], "10.00");
        assert_eq!(body["customer"]["name"], "Ada Lovelace");
        let mut r = rules();
        r.use_xcart_tax_for_shipping = true;
        let body = order_body(&order("P", "Courier"), &r).unwrap();
        assert_eq!(body["totals"]["shipping"], "5.95");
        assert_eq!(body["totals"]["tax"], "4.00");
        r.use_xcart_tax = false;
        let body = order_body(&order("P", "Courier"), &r).unwrap();
        assert!(body["totals"].get("tax").is_none());
        assert!(body.get("prices_include_tax").is_none());
        r.shipping_surcharge_name = "Delivery".into();
        let err = order_body(&order("P", "Courier"), &r).unwrap_err();
        assert!(err.contains("`Shipping cost`, not `Delivery`"), "{err}");
    }

    #[test]
    fn money_is_a_decimal_string() {
        assert_eq!(money(&json!(12.5)).as_deref(), Some("12.50"));
        assert_eq!(money(&json!(0)).as_deref(), Some("0.00"));
        assert_eq!(money(&json!(1.23456)).as_deref(), Some("1.2346"));
        assert_eq!(money(&json!("3.1")).as_deref(), Some("3.10"));
        assert_eq!(money(&json!(-1)), None);
        assert_eq!(money(&Value::Null), None);
    }

    #[test]
    fn only_status_changes_update_an_order() {
        let body = order_body(&order("P", "Courier"), &rules()).unwrap();
        assert_eq!(order_status_update(&body, &order("P", "Courier")), None);
        let mut cancelled = order("C", "Courier");
        cancelled["items"] = json!([]);
        let updated = order_status_update(&body, &cancelled).unwrap();
        assert_eq!(updated["status"], "cancelled");
        assert_eq!(updated["lines"], body["lines"], "lines are never updated");
    }
}
