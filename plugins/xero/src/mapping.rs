//! The shop's records as Xero documents: pure functions from a record body
//! (`schemas/*.v1.json`) to the JSON Xero's Accounting API takes. Nothing
//! here calls the host, so it is unit-tested natively.

use serde_json::{Map, Value, json};

/// Order statuses never exported (seed: "excluding draft, abandoned,
/// cancelled or quotes").
pub const ORDER_STATUSES_SKIPPED: [&str; 4] = ["draft", "quote", "abandoned", "cancelled"];

/// Return statuses exported: the goods are accepted back.
pub const RETURN_STATUSES_EXPORTED: [&str; 3] = ["authorised", "received", "refunded"];

/// Purchase order statuses exported: submitted to the supplier, or later.
pub const PURCHASE_ORDER_STATUSES_EXPORTED: [&str; 5] = [
    "submitted",
    "authorised",
    "part_received",
    "received",
    "billed",
];

/// Xero's longest item code.
pub const ITEM_CODE_MAX: usize = 30;
/// Xero's longest item name.
const ITEM_NAME_MAX: usize = 50;

/// Account codes the installation configured.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// Sales lines without a nominal code of their own.
    pub sales: String,
    /// The shipping line.
    pub shipping: String,
}

/// A string field, or "".
pub fn text<'a>(body: &'a Value, field: &str) -> &'a str {
    body.get(field).and_then(Value::as_str).unwrap_or("")
}

/// A money string ("12.50") as a JSON number; None if absent or malformed.
pub fn money(body: &Value, field: &str) -> Option<Value> {
    let raw = body.get(field)?.as_str()?;
    let n: f64 = raw.parse().ok()?;
    serde_json::Number::from_f64(n).map(Value::Number)
}

/// A money string as f64 (0 if absent).
pub fn amount(body: &Value, field: &str) -> f64 {
    text(body, field).parse().unwrap_or(0.0)
}

/// The date part (`YYYY-MM-DD`) of an RFC 3339 timestamp field.
pub fn date(body: &Value, field: &str) -> Option<String> {
    let t = text(body, field);
    (t.len() >= 10).then(|| t[..10].to_string())
}

/// True if the order's status is one Xero gets.
pub fn order_exportable(order: &Value) -> bool {
    !ORDER_STATUSES_SKIPPED.contains(&text(order, "status"))
}

/// True once every line not cancelled is completed (the seed's condition
/// for authorising a draft invoice).
pub fn order_completed(order: &Value) -> bool {
    let lines = order.get("lines").and_then(Value::as_array);
    let mut live = lines
        .into_iter()
        .flatten()
        .filter(|l| !l.get("cancelled").and_then(Value::as_bool).unwrap_or(false))
        .peekable();
    live.peek().is_some() && live.all(|l| l.get("completed").and_then(Value::as_bool) == Some(true))
}

/// The item code for a SKU, if it fits Xero's limit.
pub fn item_code(sku: &str) -> Option<&str> {
    let sku = sku.trim();
    (!sku.is_empty() && sku.len() <= ITEM_CODE_MAX).then_some(sku)
}

/// `s` cut to at most `max` characters.
pub fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A new sales item for an order line.
pub fn sales_item(code: &str, line: &Value, account: &str) -> Value {
    let mut item = json!({
        "Code": code,
        "Name": cut(text(line, "description"), ITEM_NAME_MAX),
        "Description": text(line, "description"),
        "IsSold": true,
        "SalesDetails": { "AccountCode": account },
    });
    if let Some(price) = money(line, "unit_price") {
        item["SalesDetails"]["UnitPrice"] = price;
    }
    item
}

/// A new purchased item for a purchase order line.
pub fn purchase_item(code: &str, line: &Value) -> Value {
    let mut item = json!({
        "Code": code,
        "Name": cut(text(line, "description"), ITEM_NAME_MAX),
        "Description": text(line, "description"),
        "IsPurchased": true,
        "PurchaseDetails": { "AccountCode": text(line, "nominal_code") },
    });
    if let Some(cost) = money(line, "unit_cost") {
        item["PurchaseDetails"]["UnitPrice"] = cost;
    }
    item
}

/// A contact for a party (`customer`, `supplier`): name, email, names, phone.
pub fn contact(party: &Value) -> Value {
    let mut c = Map::new();
    c.insert("Name".into(), json!(cut(text(party, "name"), 255)));
    for (from, to) in [
        ("email", "EmailAddress"),
        ("first_name", "FirstName"),
        ("last_name", "LastName"),
    ] {
        if !text(party, from).is_empty() {
            c.insert(to.into(), json!(text(party, from)));
        }
    }
    let id = text(party, "id");
    if !id.is_empty() && id.len() <= 50 {
        c.insert("ContactNumber".into(), json!(id));
    }
    if !text(party, "phone").is_empty() {
        c.insert(
            "Phones".into(),
            json!([{ "PhoneType": "DEFAULT", "PhoneNumber": text(party, "phone") }]),
        );
    }
    Value::Object(c)
}

fn line_amount_types(body: &Value) -> &'static str {
    match body.get("prices_include_tax").and_then(Value::as_bool) {
        Some(false) => "Exclusive",
        _ => "Inclusive",
    }
}

fn sale_line(line: &Value, accounts: &Accounts) -> Value {
    let mut l = json!({
        "Description": text(line, "description"),
        "Quantity": line.get("quantity").cloned().unwrap_or(json!(1)),
        "UnitAmount": money(line, "unit_price").unwrap_or(json!(0)),
        "AccountCode": nonempty(text(line, "nominal_code")).unwrap_or(&accounts.sales),
    });
    if let Some(code) = item_code(text(line, "sku")) {
        l["ItemCode"] = json!(code);
    }
    if let Some(discount) = money(line, "discount") {
        l["DiscountAmount"] = discount;
    }
    l
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// The sales invoice (ACCREC) for an order, lines not cancelled, plus a
/// shipping line. `status` is `DRAFT` or `AUTHORISED`.
pub fn invoice(order: &Value, contact_id: &str, status: &str, accounts: &Accounts) -> Value {
    let mut lines: Vec<Value> = order
        .get("lines")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|l| !l.get("cancelled").and_then(Value::as_bool).unwrap_or(false))
        .map(|l| sale_line(l, accounts))
        .collect();
    let totals = order.get("totals").cloned().unwrap_or(Value::Null);
    if amount(&totals, "shipping") > 0.0 {
        let method = text(order, "shipping_method");
        lines.push(json!({
            "Description": if method.is_empty() { "Shipping".to_string() } else { format!("Shipping: {method}") },
            "Quantity": 1,
            "UnitAmount": money(&totals, "shipping"),
            "AccountCode": accounts.shipping,
        }));
    }
    let number = nonempty(text(order, "number")).unwrap_or(text(order, "id"));
    let day = date(order, "placed_at");
    json!({
        "Type": "ACCREC",
        "Contact": { "ContactID": contact_id },
        "Date": day,
        "DueDate": day,
        "LineAmountTypes": line_amount_types(order),
        "Status": status,
        "InvoiceNumber": number,
        "Reference": text(order, "id"),
        "CurrencyCode": text(order, "currency"),
        "LineItems": lines,
    })
}

/// The credit note (ACCRECCREDIT) for a return. `order` (when found) gives
/// whether prices include tax.
pub fn credit_note(
    ret: &Value,
    order: Option<&Value>,
    contact_id: &str,
    status: &str,
    accounts: &Accounts,
) -> Value {
    let lines: Vec<Value> = ret
        .get("lines")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|l| sale_line(l, accounts))
        .collect();
    let day = date(ret, "received_at").or_else(|| date(ret, "created_at"));
    json!({
        "Type": "ACCRECCREDIT",
        "Contact": { "ContactID": contact_id },
        "Date": day,
        "LineAmountTypes": order.map(line_amount_types).unwrap_or("Inclusive"),
        "Status": status,
        "CreditNoteNumber": nonempty(text(ret, "number")).unwrap_or(text(ret, "id")),
        "Reference": text(ret, "order_id"),
        "CurrencyCode": text(ret, "currency"),
        "LineItems": lines,
    })
}

/// The purchase order for a submitted one: each line's nominal code is its
/// AccountCode (seed: "Purchase Order lines will inherit the IXO Commerce
/// Nominal Code as the Xero Account Code").
pub fn purchase_order(po: &Value, contact_id: &str) -> Value {
    let lines: Vec<Value> = po
        .get("lines")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|l| {
            let mut line = json!({
                "Description": text(l, "description"),
                "Quantity": l.get("quantity").cloned().unwrap_or(json!(1)),
                "UnitAmount": money(l, "unit_cost").unwrap_or(json!(0)),
                "AccountCode": text(l, "nominal_code"),
            });
            if let Some(code) = item_code(text(l, "sku")) {
                line["ItemCode"] = json!(code);
            }
            line
        })
        .collect();
    let status = if text(po, "status") == "submitted" {
        "SUBMITTED"
    } else {
        "AUTHORISED"
    };
    let mut doc = json!({
        "Contact": { "ContactID": contact_id },
        "Date": date(po, "submitted_at").or_else(|| date(po, "ordered_at")),
        "LineAmountTypes": line_amount_types(po),
        "Status": status,
        "PurchaseOrderNumber": nonempty(text(po, "number")).unwrap_or(text(po, "id")),
        "Reference": text(po, "reference"),
        "CurrencyCode": text(po, "currency"),
        "LineItems": lines,
    });
    if let Some(day) = date(po, "expected_at") {
        doc["DeliveryDate"] = json!(day);
    }
    if !text(po, "attention_to").is_empty() {
        doc["AttentionTo"] = json!(text(po, "attention_to"));
    }
    doc
}

/// A payment of `amount` against an invoice or credit note (`target` is
/// `{"Invoice": {"InvoiceID": …}}` or `{"CreditNote": {"CreditNoteID": …}}`).
pub fn payment(
    target: Value,
    account_code: &str,
    day: &str,
    amount: f64,
    reference: &str,
) -> Value {
    let mut p = target;
    p["Account"] = json!({ "Code": account_code });
    p["Date"] = json!(day);
    p["Amount"] = json!(round2(amount));
    p["Reference"] = json!(reference);
    p
}

/// Rounded to cents.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A stable Idempotency-Key (Xero allows 128 characters) for one document
/// of one record version: the same key every time the same export is
/// tried, so a retried or killed run never posts twice.
pub fn idempotency_key(installation: &str, kind: &str, id: &str, version: u64) -> String {
    let material = format!("{installation}\u{0}{kind}\u{0}{id}\u{0}{version}");
    format!(
        "airlock-{kind}-{:016x}{:016x}",
        fnv1a(material.as_bytes(), 0xcbf2_9ce4_8422_2325),
        fnv1a(material.as_bytes(), 0x8422_2325_cbf2_9ce4)
    )
}

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        Accounts {
            sales: "200".into(),
            shipping: "210".into(),
        }
    }

    fn order() -> Value {
        json!({
            "id": "R1", "number": "R1", "status": "processing", "placed_at": "2026-11-22T18:04:11Z",
            "currency": "GBP", "prices_include_tax": true,
            "customer": {"id": "c1", "email": "jo@example.com", "name": "Jo Bloggs"},
            "shipping_method": "Courier",
            "lines": [
                {"id": "1", "sku": "SOFA", "description": "Sofa", "quantity": 1, "unit_price": "749.00", "nominal_code": "201", "completed": true},
                {"id": "2", "sku": "CUSH", "description": "Cushion", "quantity": 2, "unit_price": "25.00", "discount": "5.00", "completed": false},
                {"id": "3", "sku": "GONE", "description": "Cancelled", "quantity": 1, "unit_price": "9.00", "cancelled": true}
            ],
            "totals": {"shipping": "10.00", "total": "804.00"}
        })
    }

    #[test]
    fn an_invoice_leaves_out_cancelled_lines_and_adds_shipping() {
        let inv = invoice(&order(), "C-1", "DRAFT", &accounts());
        let lines = inv["LineItems"].as_array().unwrap();
        assert_eq!(lines.len(), 3, "{inv}");
        assert_eq!(lines[0]["AccountCode"], "201");
        assert_eq!(lines[1]["AccountCode"], "200");
        assert_eq!(lines[1]["DiscountAmount"], 5.0);
        assert_eq!(lines[2]["AccountCode"], "210");
        assert_eq!(lines[2]["Description"], "Shipping: Courier");
        assert_eq!(inv["Type"], "ACCREC");
        assert_eq!(inv["Date"], "2026-11-22");
        assert_eq!(inv["LineAmountTypes"], "Inclusive");
        assert_eq!(inv["InvoiceNumber"], "R1");
        assert_eq!(inv["Status"], "DRAFT");
    }

    #[test]
    fn skipped_statuses_and_completion() {
        let mut o = order();
        assert!(order_exportable(&o));
        assert!(!order_completed(&o), "line 2 is not completed");
        o["lines"][1]["completed"] = json!(true);
        assert!(order_completed(&o), "the cancelled line does not count");
        for s in ORDER_STATUSES_SKIPPED {
            o["status"] = json!(s);
            assert!(!order_exportable(&o));
        }
    }

    #[test]
    fn purchase_order_lines_carry_the_nominal_code() {
        let po = json!({"id": "PO1", "number": "PO-1", "status": "submitted", "currency": "GBP",
            "supplier": {"name": "Acme"}, "submitted_at": "2026-11-20T09:00:00Z",
            "lines": [{"sku": "SOFA", "description": "Sofa", "quantity": 4, "unit_cost": "300.00", "nominal_code": "310"}]});
        let doc = purchase_order(&po, "S-1");
        assert_eq!(doc["LineItems"][0]["AccountCode"], "310");
        assert_eq!(doc["LineItems"][0]["UnitAmount"], 300.0);
        assert_eq!(doc["Status"], "SUBMITTED");
        assert_eq!(doc["PurchaseOrderNumber"], "PO-1");
    }

    #[test]
    fn idempotency_keys_are_stable_distinct_and_short() {
        let a = idempotency_key("xero", "invoice", "R1", 3);
        assert_eq!(a, idempotency_key("xero", "invoice", "R1", 3));
        assert_ne!(a, idempotency_key("xero", "invoice", "R1", 4));
        assert_ne!(a, idempotency_key("xero", "payment", "R1", 3));
        assert!(a.len() <= 128);
        let long = "x".repeat(256);
        assert!(idempotency_key(&long, "credit-note", &long, u64::MAX).len() <= 128);
    }

    #[test]
    fn contacts_and_codes_respect_xero_limits() {
        assert_eq!(item_code(" SOFA "), Some("SOFA"));
        assert_eq!(item_code(&"A".repeat(31)), None);
        let c =
            contact(&json!({"id": "c1", "name": "Jo", "email": "jo@example.com", "phone": "1"}));
        assert_eq!(c["EmailAddress"], "jo@example.com");
        assert_eq!(c["ContactNumber"], "c1");
        assert_eq!(c["Phones"][0]["PhoneNumber"], "1");
        assert_eq!(round2(0.1 + 0.2), 0.3);
    }
}
