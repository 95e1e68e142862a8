//! A fake X-Cart 5.0–5.4 shop with the REST API add-on on loopback, written
//! from `../shared/THIRD-PARTY-APIS.md` §2, checking requests the way the
//! add-on does:
//!
//! - only `…/admin.php?target=RESTAPI` answers the API (anything else is
//!   the shop's HTML, 404 here);
//! - `_key` in the query: missing → 401, unknown → 403; the read-only key
//!   reads but any write with it → 403;
//! - `_path=ENTITY[/ID]`: `order`, `order/{id}`, `product`, `product/{id}`;
//!   anything else → 404 with a JSON error;
//! - `_cnd[dateRange][0|1]` (unix seconds, inclusive) on orders,
//!   `_cnd[paymentStatus]`, `_cnd[sku]` on products, paging by
//!   `_cnd[limit][0]` (offset) and `_cnd[limit][1]` (count: 1 to 100 in
//!   this fake, 400 otherwise; X-Cart's own cap is not documented);
//! - writes: the verb is `_method` when given (X-Cart tunnels it, on a GET
//!   too: that is why the connector never uses it) else the HTTP method;
//!   `PUT order/{id}` takes `model[shippingStatus]`, `model[paymentStatus]`
//!   and `model[trackingNumbers][N][value]` (each adds a tracking-number
//!   entity, as X-Cart creates one per write), `PUT product/{id}` takes
//!   `model[amount]` (a whole number ≥ 0) and `model[price]`; fields from
//!   an `application/x-www-form-urlencoded` body or the query; an unknown
//!   field → 400.
//!
//! Entity shapes (the add-on's `default` schema, [MEM]: to verify against a
//! shop): orders carry `order_id`, `orderNumber`, `date`, `lastRenewDate`,
//! `paymentStatus`/`shippingStatus` as `{"code": …}`, `currency.code`,
//! `profile.login`, `billingAddress`, `shippingAddress`,
//! `shipping_method_name`, `subtotal`, `total`, `items[]` (`item_id`,
//! `sku`, `name`, `price`, `amount`, `total`), `surcharges[]` (`type`
//! shipping/tax, `code`, `name`, `value`, `include`) and `trackingNumbers[]`;
//! products `product_id`, `sku`, `name`, `description`, `price`, `amount`
//! (stock), `enabled`, `updateDate`, and `images[]` (`url`) on a single
//! product only. Every request is recorded (without `_key`), and every
//! write it applied. It can stop answering after N writes (the write is
//! applied) or N reads, to stand in for a host killed mid-run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

/// The name the fake shop is reached at.
pub const SHOP_HOST: &str = "shop.example.com";
/// A second name (a moved shop, for reauthorisation).
pub const NEW_SHOP_HOST: &str = "new-shop.example.com";

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The HTTP method.
    pub method: String,
    /// `_path`.
    pub path: String,
    /// The query without `_key`, decoded.
    pub params: BTreeMap<String, String>,
    /// Whether `_key` was present and right.
    pub key_ok: bool,
    /// The status answered.
    pub status: u16,
    /// The raw query as received (to prove where the key travelled).
    pub raw_query: String,
    /// The `Host` header (which of the shop's names was asked).
    pub host: String,
}

/// One write the fake applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The HTTP method it came with.
    pub http_method: String,
    /// True when the verb came from `_method`.
    pub tunnelled: bool,
    /// `_path`.
    pub path: String,
    /// The `model[...]` fields, as `[...]` → value.
    pub fields: Vec<(String, String)>,
}

#[derive(Default)]
struct Shop {
    key: String,
    read_only_key: String,
    orders: Vec<Value>,
    products: Vec<Value>,
    seen: Vec<Seen>,
    writes: Vec<Write>,
    stall_after: Option<usize>,
    reads: usize,
    stall_reads_after: Option<usize>,
    inject: Vec<(u16, Option<u32>)>,
}

/// A running fake shop.
pub struct FakeXCart {
    /// Where it listens.
    pub addr: SocketAddr,
    shop: Arc<Mutex<Shop>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeXCart {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The fixture shop's shipping methods.
pub const METHODS: [&str; 2] = ["Courier", "Royal Mail 1st Class"];

/// The fixture products: 60, so a list takes two pages of 50.
pub fn fixture_products() -> Vec<Value> {
    (1..=60)
        .map(|i| {
            let images: Vec<Value> = if i % 5 == 0 {
                vec![]
            } else {
                vec![
                    json!({"url": format!("https://{SHOP_HOST}/images/SKU-{i:03}.jpg")}),
                    json!({"url": format!("https://{SHOP_HOST}/images/SKU-{i:03}-b.jpg")}),
                ]
            };
            json!({
                "product_id": 100 + i,
                "sku": format!("SKU-{i:03}"),
                "name": format!("Product {i} \"quoted\" & <tagged>"),
                "description": format!("Description of product {i}"),
                "price": 5.0 + f64::from(i) * 2.25,
                "amount": (i * 7) % 40,
                "enabled": i % 11 != 0,
                "updateDate": 1_790_000_000 + i64::from(i),
                "images": images,
            })
        })
        .collect()
}

/// One fixture order: `n` placed `hours_ago` before `base`.
pub fn order(n: u32, base: i64, hours_ago: i64, payment: &str, method: &str) -> Value {
    let products = fixture_products();
    let mut items = Vec::new();
    let mut subtotal = 0.0;
    for k in 0..(1 + n % 3) {
        let p = &products[((n + 7 * k) % 60) as usize];
        let qty = 1 + (n + k) % 2;
        let price = p["price"].as_f64().unwrap();
        subtotal += price * f64::from(qty);
        items.push(json!({
            "item_id": n * 10 + k, "sku": p["sku"], "name": p["name"],
            "price": price, "amount": qty, "total": price * f64::from(qty),
        }));
    }
    let shipping = if n % 2 == 1 { 4.95 } else { 0.0 };
    let tax = (subtotal * 0.2 * 100.0).round() / 100.0;
    let mut surcharges =
        vec![json!({"type": "tax", "code": "VAT", "name": "VAT", "value": tax, "include": false})];
    if shipping > 0.0 {
        surcharges.push(json!({"type": "shipping", "code": "SHIPPING", "name": "Shipping cost", "value": shipping, "include": false}));
        surcharges.push(json!({"type": "tax", "code": "SHIPPING_VAT", "name": "VAT on shipping", "value": 0.99, "include": false}));
    }
    let total = subtotal + tax + shipping + if shipping > 0.0 { 0.99 } else { 0.0 };
    let date = base - hours_ago * 3600;
    json!({
        "order_id": n,
        "orderNumber": format!("{}", 1000 + n),
        "date": date,
        "lastRenewDate": date,
        "paymentStatus": {"code": payment},
        "shippingStatus": {"code": "N"},
        "currency": {"code": "GBP"},
        "profile": {"login": format!("customer{:02}@example.com", n % 10)},
        "billingAddress": {"firstname": "Customer", "lastname": format!("No{}", n % 10), "street": "1 High St", "city": "Leeds", "zipcode": "LS1 1AA", "country_code": "GB"},
        "shippingAddress": {"firstname": "Customer", "lastname": format!("No{}", n % 10), "street": "1 High St", "city": "Leeds", "zipcode": "LS1 1AA", "country_code": "GB"},
        "shipping_method_name": method,
        "subtotal": (subtotal * 100.0).round() / 100.0,
        "total": (total * 100.0).round() / 100.0,
        "items": items,
        "surcharges": surcharges,
        "trackingNumbers": [],
    })
}

/// The fixture orders, placed in the 40 hours before `base`: 30 orders,
/// of which 3 cancelled (`C`), 1 declined (`D`), the rest paid (`P`) or
/// authorised (`A`).
pub fn fixture_orders(base: i64) -> Vec<Value> {
    (1..=30)
        .map(|n| {
            let payment = match n {
                4 | 13 | 22 => "C",
                17 => "D",
                n if n % 4 == 0 => "A",
                _ => "P",
            };
            order(
                n,
                base,
                41 - i64::from(n),
                payment,
                METHODS[(n % 2) as usize],
            )
        })
        .collect()
}

impl FakeXCart {
    /// Starts the shop on a free loopback port over TLS with `ca`'s
    /// certificate, accepting `key` (read/write) and `read_only_key`.
    pub async fn start(
        key: &str,
        read_only_key: &str,
        ca: &crate::tls::TestCa,
    ) -> std::io::Result<Self> {
        let shop = Arc::new(Mutex::new(Shop {
            key: key.into(),
            read_only_key: read_only_key.into(),
            ..Shop::default()
        }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(any(handle)).with_state(shop.clone());
        let task = ca.serve(listener, app);
        Ok(Self { addr, shop, task })
    }

    fn shop(&self) -> std::sync::MutexGuard<'_, Shop> {
        self.shop.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the orders.
    pub fn set_orders(&self, orders: Vec<Value>) {
        self.shop().orders = orders;
    }
    /// Adds an order.
    pub fn add_order(&self, order: Value) {
        self.shop().orders.push(order);
    }
    /// Replaces the products.
    pub fn set_products(&self, products: Vec<Value>) {
        self.shop().products = products;
    }
    /// Changes the keys accepted (the merchant regenerated them).
    pub fn set_keys(&self, key: &str, read_only_key: &str) {
        let mut shop = self.shop();
        shop.key = key.into();
        shop.read_only_key = read_only_key.into();
    }
    /// Sets an order's payment status letter, as the shop's staff would.
    pub fn set_payment_status(&self, order_id: u32, code: &str) {
        for o in &mut self.shop().orders {
            if o["order_id"] == order_id {
                o["paymentStatus"] = json!({ "code": code });
            }
        }
    }
    /// Sets a product's field, as the shop's staff would.
    pub fn set_product(&self, product_id: u32, field: &str, value: Value) {
        for p in &mut self.shop().products {
            if p["product_id"] == product_id {
                p[field] = value.clone();
            }
        }
    }
    /// After `writes` more writes, the next is applied but never answered.
    pub fn stall_after(&self, writes: usize) {
        let mut shop = self.shop();
        shop.stall_after = Some(shop.writes.len() + writes);
    }
    /// The next API calls (with a right key) answer these statuses, with
    /// `Retry-After` seconds when given, instead of being served: a shop
    /// in maintenance or overloaded.
    pub fn inject(&self, answers: &[(u16, Option<u32>)]) {
        self.shop().inject.extend(answers.iter().rev());
    }
    /// After `reads` more reads, the next ones are never answered.
    pub fn stall_reads_after(&self, reads: usize) {
        let mut shop = self.shop();
        shop.stall_reads_after = Some(shop.reads + reads);
    }
    /// Lets writes and reads be answered again.
    pub fn unstall(&self) {
        let mut shop = self.shop();
        shop.stall_after = None;
        shop.stall_reads_after = None;
    }
    /// The orders as they are now.
    pub fn orders(&self) -> Vec<Value> {
        self.shop().orders.clone()
    }
    /// The products as they are now.
    pub fn products(&self) -> Vec<Value> {
        self.shop().products.clone()
    }
    /// Every request answered, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shop().seen.clone()
    }
    /// Every write applied, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.shop().writes.clone()
    }
    /// Forgets the requests and writes seen so far.
    pub fn clear_seen(&self) {
        let mut shop = self.shop();
        shop.seen.clear();
        shop.writes.clear();
        shop.stall_after = None;
        shop.stall_reads_after = None;
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({ "error": message }).to_string(),
    )
        .into_response()
}

fn pairs(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn handle(
    State(shop): State<Arc<Mutex<Shop>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, stall) = respond(&shop, &method, &uri, &headers, &body);
    if stall {
        std::future::pending::<()>().await;
    }
    response
}

fn respond(
    shop: &Mutex<Shop>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, bool) {
    let mut shop = shop.lock().unwrap_or_else(|p| p.into_inner());
    let raw_query = uri.query().unwrap_or("").to_string();
    let query = pairs(&raw_query);
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let path = param("_path").unwrap_or_default();
    let key = param("_key");
    let key_ok = key.as_deref() == Some(shop.key.as_str());
    let read_only = !key_ok && key.as_deref() == Some(shop.read_only_key.as_str());
    let params: BTreeMap<String, String> =
        query.iter().filter(|(k, _)| k != "_key").cloned().collect();
    let mut seen = Seen {
        method: method.to_string(),
        path: path.clone(),
        params,
        key_ok,
        status: 0,
        raw_query,
        host: headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| uri.authority().map(|a| a.to_string()))
            .unwrap_or_default(),
    };
    let verb = param("_method")
        .map(|m| m.to_ascii_uppercase())
        .unwrap_or_else(|| method.to_string());
    let writes = verb != "GET" && verb != "HEAD";
    let (response, status, stall) =
        if !uri.path().ends_with("/admin.php") || param("target").as_deref() != Some("RESTAPI") {
            (error(StatusCode::NOT_FOUND, "Page not found"), 404, false)
        } else if key.is_none() {
            (
                error(StatusCode::UNAUTHORIZED, "API key is required"),
                401,
                false,
            )
        } else if !key_ok && !read_only {
            (error(StatusCode::FORBIDDEN, "Access denied"), 403, false)
        } else if let Some((status, after)) = shop.inject.pop() {
            let mut r = error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "Service temporarily unavailable",
            );
            if let Some(after) = after {
                r.headers_mut()
                    .insert("retry-after", after.to_string().parse().unwrap());
            }
            (r, status, false)
        } else if writes && read_only {
            (
                error(StatusCode::FORBIDDEN, "The read-only key cannot write"),
                403,
                false,
            )
        } else if writes {
            let form = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
            let body_pairs = if form {
                pairs(&String::from_utf8_lossy(body))
            } else {
                Vec::new()
            };
            let fields: Vec<(String, String)> = query
                .iter()
                .chain(&body_pairs)
                .filter_map(|(k, v)| k.strip_prefix("model").map(|f| (f.to_string(), v.clone())))
                .collect();
            match write(&mut shop, &verb, &path, &fields) {
                Ok(answer) => {
                    shop.writes.push(Write {
                        http_method: method.to_string(),
                        tunnelled: param("_method").is_some(),
                        path: path.clone(),
                        fields,
                    });
                    let stall = shop.stall_after.is_some_and(|n| shop.writes.len() > n);
                    (axum::Json(answer).into_response(), 200, stall)
                }
                Err((status, message)) => (error(status, &message), status.as_u16(), false),
            }
        } else {
            shop.reads += 1;
            let stall = shop.stall_reads_after.is_some_and(|n| shop.reads > n);
            match read(&shop, &path, &query) {
                Ok(answer) => (axum::Json(answer).into_response(), 200, stall),
                Err((status, message)) => (error(status, &message), status.as_u16(), false),
            }
        };
    seen.status = status;
    shop.seen.push(seen);
    (response, stall)
}

type Failed = (StatusCode, String);

/// Whether an entity's numeric id is the `id` of a `_path`.
fn same_id(value: &Value, id: &str) -> bool {
    value.as_i64().is_some() && value.as_i64() == id.parse::<i64>().ok()
}

fn bad(message: impl Into<String>) -> Failed {
    (StatusCode::BAD_REQUEST, message.into())
}

fn cnd(query: &[(String, String)], name: &str) -> Option<String> {
    query
        .iter()
        .find(|(k, _)| k == &format!("_cnd[{name}]"))
        .map(|(_, v)| v.clone())
}

fn read(shop: &Shop, path: &str, query: &[(String, String)]) -> Result<Value, Failed> {
    let (entity, id) = match path.split_once('/') {
        Some((e, id)) => (e, Some(id)),
        None => (path, None),
    };
    let (items, id_field) = match entity {
        "order" => (&shop.orders, "order_id"),
        "product" => (&shop.products, "product_id"),
        _ => return Err((StatusCode::NOT_FOUND, format!("Unknown entity `{entity}`"))),
    };
    if let Some(id) = id {
        return items
            .iter()
            .find(|e| same_id(&e[id_field], id))
            .cloned()
            .ok_or((StatusCode::NOT_FOUND, format!("No {entity} {id}")));
    }
    let number = |name: &str| -> Result<Option<i64>, Failed> {
        cnd(query, name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| bad(format!("_cnd[{name}] must be a number")))
            })
            .transpose()
    };
    let (from, to) = (number("dateRange][0")?, number("dateRange][1")?);
    let offset = number("limit][0")?.unwrap_or(0).max(0) as usize;
    let count = match number("limit][1")? {
        None => usize::MAX,
        Some(c) if (1..=100).contains(&c) => c as usize,
        Some(c) => return Err(bad(format!("_cnd[limit] count {c} is not 1 to 100"))),
    };
    let payment = cnd(query, "paymentStatus");
    let sku = cnd(query, "sku");
    let found: Vec<Value> = items
        .iter()
        .filter(|e| from.is_none_or(|f| e["date"].as_i64().unwrap_or(0) >= f))
        .filter(|e| to.is_none_or(|t| e["date"].as_i64().unwrap_or(0) <= t))
        .filter(|e| {
            payment
                .as_ref()
                .is_none_or(|p| e["paymentStatus"]["code"].as_str() == Some(p.as_str()))
        })
        .filter(|e| {
            sku.as_ref()
                .is_none_or(|s| e["sku"].as_str() == Some(s.as_str()))
        })
        .skip(offset)
        .take(count)
        .map(|e| {
            let mut e = e.clone();
            if entity == "product" {
                // The list leaves out images; a single product has them.
                if let Some(o) = e.as_object_mut() {
                    o.remove("images");
                }
            }
            e
        })
        .collect();
    Ok(Value::Array(found))
}

fn write(
    shop: &mut Shop,
    verb: &str,
    path: &str,
    fields: &[(String, String)],
) -> Result<Value, Failed> {
    if verb != "PUT" {
        return Err(bad(format!("{verb} {path} is not supported by this fake")));
    }
    let Some((entity, id)) = path.split_once('/') else {
        return Err(bad("PUT needs an id: _path=ENTITY/ID"));
    };
    if fields.is_empty() {
        return Err(bad("no model[...] fields to write"));
    }
    match entity {
        "order" => {
            let order = shop
                .orders
                .iter_mut()
                .find(|o| same_id(&o["order_id"], id))
                .ok_or((StatusCode::NOT_FOUND, format!("No order {id}")))?;
            for (field, value) in fields {
                match field.as_str() {
                    "[shippingStatus]" | "[paymentStatus]" => {
                        const CODES: [&str; 10] =
                            ["N", "P", "S", "D", "WND", "R", "WFA", "A", "PP", "C"];
                        if !CODES.contains(&value.as_str()) && value != "Q" {
                            return Err(bad(format!("unknown status `{value}`")));
                        }
                        let name = field.trim_matches(['[', ']']);
                        order[name] = json!({ "code": value });
                    }
                    f if f.starts_with("[trackingNumbers][") && f.ends_with("][value]") => {
                        if value.trim().is_empty() {
                            return Err(bad("an empty tracking number"));
                        }
                        order["trackingNumbers"]
                            .as_array_mut()
                            .expect("a list")
                            .push(json!({ "value": value }));
                    }
                    other => return Err(bad(format!("unknown order field `model{other}`"))),
                }
            }
            Ok(order.clone())
        }
        "product" => {
            let product = shop
                .products
                .iter_mut()
                .find(|p| same_id(&p["product_id"], id))
                .ok_or((StatusCode::NOT_FOUND, format!("No product {id}")))?;
            for (field, value) in fields {
                match field.as_str() {
                    "[amount]" => {
                        let n: u32 = value.parse().map_err(|_| {
                            bad(format!("amount `{value}` is not a whole number ≥ 0"))
                        })?;
                        product["amount"] = json!(n);
                    }
                    "[price]" => {
                        let p: f64 = value
                            .parse()
                            .map_err(|_| bad(format!("price `{value}` is not a number")))?;
                        product["price"] = json!(p);
                    }
                    other => return Err(bad(format!("unknown product field `model{other}`"))),
                }
            }
            Ok(product.clone())
        }
        _ => Err((StatusCode::NOT_FOUND, format!("Unknown entity `{entity}`"))),
    }
}
