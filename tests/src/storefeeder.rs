//! A fake of StoreFeeder's REST API (`rest.storefeeder.com`) on loopback,
//! written from `../shared/THIRD-PARTY-APIS.md` §3 and checking requests
//! the way the real service is documented to:
//!
//! - `POST /Token`: the password grant, form-encoded (`grant_type=password`,
//!   `username`, `password`, `client_id` = the API key). A wrong user or
//!   password is `400 {"error":"invalid_grant"}`, a wrong key `400
//!   {"error":"invalid_client"}` (OAuth2's error body; neither echoes what
//!   was sent). A token is random and valid until [`FakeStoreFeeder::revoke_tokens`].
//! - Every other call needs `Authorization: Bearer` with an issued token
//!   (401 `{"Message":"Authorization has been denied for this request."}`,
//!   ASP.NET Web API's wording).
//! - `GET /orders?Downloaded=&OrderStatus=&PageSize=&Page=` in the paged
//!   envelope (`TotalItems`, `PagingInfo`, `TotalPages`, `Data`), page
//!   size 1 to 100; `GET /orders/{number}`.
//! - `PUT /orders/mark-orders-as-downloaded` (the counterpart of the
//!   documented `mark-orders-as-not-downloaded`; its body here is
//!   `[{"OrderNumber":n}]`, an assumption), `PUT /orders/despatch-orders`
//!   and `PUT /products/stocklocationinventory`: at most 50 items (400
//!   with StoreFeeder's sentence otherwise), each item's shape checked
//!   (400); per-item results inside HTTP 200 (`Success:false` with
//!   `Error`) for despatches and markings. An order is despatched once: a
//!   second despatch of it fails (`Success:false`).
//! - Stock: `AbsoluteAdjustment` sets, `RelativeAdjustment` adds, at the
//!   location given (`null` = unspecified); an unknown product counts as
//!   `Failed` and is never created. Prices: `PUT /products/{id}` with
//!   `PricingInformation`; an unknown id is 404, never created.
//! - [`FakeStoreFeeder::inject`] answers the next calls with a status (409
//!   "locked", 503…); [`FakeStoreFeeder::stall_after`] applies a write and
//!   withholds its answer, as when a run is killed before it heard.
//!
//! Every request is recorded ([`FakeStoreFeeder::seen`]) with its body, so
//! tests assert exactly what changed at StoreFeeder.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use sha2::Digest;

/// The account's credentials.
#[derive(Clone, Debug)]
pub struct StoreFeederSettings {
    /// The API user's email.
    pub username: String,
    /// Its password.
    pub password: String,
    /// The API key StoreFeeder issued (`client_id` at `/Token`).
    pub api_key: String,
}

impl Default for StoreFeederSettings {
    fn default() -> Self {
        Self {
            username: "api@shop.example".into(),
            password: "sf-pass-9Xq!w3".into(),
            api_key: "sfkey-7c1d2e3f4a5b".into(),
        }
    }
}

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The query.
    pub query: String,
    /// The body, as text.
    pub body: String,
    /// The status answered.
    pub status: u16,
}

#[derive(Default)]
struct Account {
    settings: Option<StoreFeederSettings>,
    orders: BTreeMap<u64, Value>,
    products: Vec<Value>,
    /// (product id, location or "") → units.
    stock: BTreeMap<(u64, String), i64>,
    despatch_items: Vec<Value>,
    refuse_despatch: HashMap<u64, String>,
    tokens: Vec<String>,
    revoked: BTreeSet<String>,
    seen: Vec<Seen>,
    inject: Vec<u16>,
    stall_after: Option<usize>,
    writes_done: usize,
}

/// A running fake StoreFeeder.
pub struct FakeStoreFeeder {
    /// Where it listens.
    pub addr: SocketAddr,
    account: Arc<Mutex<Account>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStoreFeeder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStoreFeeder {
    /// Starts the fake on a free loopback port, over TLS with a certificate
    /// of `ca` (for `rest.storefeeder.com`).
    pub async fn start(
        settings: StoreFeederSettings,
        ca: &crate::tls::TestCa,
    ) -> std::io::Result<Self> {
        let account = Arc::new(Mutex::new(Account {
            settings: Some(settings),
            ..Account::default()
        }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .fallback(any(handle))
            .with_state(account.clone());
        let task = ca.serve(listener, app);
        Ok(Self {
            addr,
            account,
            task,
        })
    }

    fn account(&self) -> std::sync::MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds orders as StoreFeeder holds them (with `Downloaded` and
    /// `OrderStatus`).
    pub fn add_orders(&self, orders: &[Value]) {
        let mut a = self.account();
        for o in orders {
            a.orders
                .insert(o["OrderNumber"].as_u64().unwrap(), o.clone());
        }
    }

    /// Adds listed products (`ProductID`, `SKU`, `Price`…).
    pub fn add_products(&self, products: &[Value]) {
        self.account().products.extend(products.iter().cloned());
    }

    /// Order `number` as StoreFeeder holds it now.
    pub fn order(&self, number: u64) -> Option<Value> {
        self.account().orders.get(&number).cloned()
    }

    /// The numbers of the orders marked downloaded.
    pub fn downloaded(&self) -> BTreeSet<u64> {
        let a = self.account();
        a.orders
            .iter()
            .filter(|(_, o)| o["Downloaded"] == true)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Every despatch item received (accepted or not), in order.
    pub fn despatch_items(&self) -> Vec<Value> {
        self.account().despatch_items.clone()
    }

    /// Despatches of `number` fail with `error` (inside HTTP 200).
    pub fn refuse_despatch(&self, number: u64, error: &str) {
        self.account()
            .refuse_despatch
            .insert(number, error.to_string());
    }

    /// Despatches are no longer refused (the hold was lifted).
    pub fn clear_refusals(&self) {
        self.account().refuse_despatch.clear();
    }

    /// A listed product by SKU: its price and stock by location (`""`:
    /// unspecified).
    pub fn product(&self, sku: &str) -> Option<(Value, BTreeMap<String, i64>)> {
        let a = self.account();
        let p = a.products.iter().find(|p| p["SKU"] == sku)?.clone();
        let id = p["ProductID"].as_u64().unwrap();
        let stock = a
            .stock
            .iter()
            .filter(|((pid, _), _)| *pid == id)
            .map(|((_, loc), n)| (loc.clone(), *n))
            .collect();
        Some((p, stock))
    }

    /// The SKUs listed.
    pub fn skus(&self) -> BTreeSet<String> {
        let a = self.account();
        a.products
            .iter()
            .map(|p| p["SKU"].as_str().unwrap().to_string())
            .collect()
    }

    /// Tokens issued so far.
    pub fn tokens(&self) -> Vec<String> {
        self.account().tokens.clone()
    }

    /// Every token issued so far stops working.
    pub fn revoke_tokens(&self) {
        let mut a = self.account();
        let issued = a.tokens.clone();
        a.revoked.extend(issued);
    }

    /// Changes the credentials StoreFeeder accepts (a password changed
    /// there).
    pub fn set_credentials(&self, settings: StoreFeederSettings) {
        self.account().settings = Some(settings);
    }

    /// The next calls (after authentication) answer these statuses, in
    /// order.
    pub fn inject(&self, statuses: &[u16]) {
        self.account().inject.extend(statuses.iter().rev());
    }

    /// After `writes` more applied writes, the next is applied but never
    /// answered.
    pub fn stall_after(&self, writes: usize) {
        let mut a = self.account();
        a.stall_after = Some(a.writes_done + writes);
    }

    /// Writes (PUT) applied so far.
    pub fn writes_done(&self) -> usize {
        self.account().writes_done
    }

    /// Every request answered, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.account().seen.clone()
    }

    /// The requests that change something (PUT, POST other than /Token).
    pub fn writes(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method != "GET" && s.path != "/Token")
            .collect()
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "Message": text }))).into_response()
}

async fn handle(
    State(account): State<Arc<Mutex<Account>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, stall) = {
        let mut a = account.lock().unwrap_or_else(|p| p.into_inner());
        let (response, stall) = respond(&mut a, &method, &uri, &headers, &body);
        a.seen.push(Seen {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or("").to_string(),
            body: String::from_utf8_lossy(&body).into_owned(),
            status: response.status().as_u16(),
        });
        (response, stall)
    };
    if stall {
        std::future::pending::<()>().await;
    }
    response
}

fn respond(
    a: &mut Account,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, bool) {
    let path = uri.path();
    if path == "/Token" && method == Method::POST {
        return (token(a, headers, body), false);
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !a.tokens.iter().any(|t| t == bearer) || a.revoked.contains(bearer) {
        let denied = message(
            StatusCode::UNAUTHORIZED,
            "Authorization has been denied for this request.",
        );
        return (denied, false);
    }
    if let Some(status) = a.inject.pop() {
        let status = StatusCode::from_u16(status).unwrap();
        let text = if status == StatusCode::CONFLICT {
            "The resource is locked by another operation, try again shortly"
        } else {
            "The service is unavailable"
        };
        return (message(status, text), false);
    }
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
            .collect();
    let writes = *method == Method::PUT;
    if writes {
        let is_json = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            let refused = message(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "The request entity's media type is not supported for this resource.",
            );
            return (refused, false);
        }
    }
    let parsed: Option<Value> = if writes {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    if writes && parsed.is_none() {
        return (
            message(StatusCode::BAD_REQUEST, "The request is invalid."),
            false,
        );
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let response = match (method.clone(), segments.as_slice()) {
        (Method::GET, ["orders"]) => list_orders(a, &query),
        (Method::GET, ["orders", number]) => {
            match number.parse::<u64>().ok().and_then(|n| a.orders.get(&n)) {
                Some(o) => axum::Json(o.clone()).into_response(),
                None => message(StatusCode::NOT_FOUND, "Order not found"),
            }
        }
        (Method::PUT, ["orders", "mark-orders-as-downloaded"]) => mark(a, parsed.unwrap()),
        (Method::PUT, ["orders", "despatch-orders"]) => despatch(a, parsed.unwrap()),
        (Method::GET, ["products"]) => list_products(a, &query),
        (Method::PUT, ["products", "stocklocationinventory"]) => stock(a, parsed.unwrap()),
        (Method::PUT, ["products", id]) => price(a, id, parsed.unwrap()),
        _ => message(
            StatusCode::NOT_FOUND,
            "No HTTP resource was found that matches the request URI.",
        ),
    };
    let mut stall = false;
    if writes && response.status() == StatusCode::OK {
        a.writes_done += 1;
        stall = a.stall_after.is_some_and(|n| a.writes_done > n);
    }
    (response, stall)
}

fn token(a: &mut Account, headers: &HeaderMap, body: &Bytes) -> Response {
    let form_encoded = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let error = |code: &str, text: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": code, "error_description": text })),
        )
            .into_response()
    };
    if !form_encoded {
        return error("invalid_request", "The request must be form-encoded.");
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let settings = a.settings.clone().unwrap_or_default();
    if form.get("grant_type").map(String::as_str) != Some("password") {
        return error("unsupported_grant_type", "The grant type is not supported.");
    }
    if form.get("client_id") != Some(&settings.api_key) {
        return error("invalid_client", "The client is not registered.");
    }
    if form.get("username") != Some(&settings.username)
        || form.get("password") != Some(&settings.password)
    {
        return error("invalid_grant", "The user name or password is incorrect.");
    }
    let seed = format!(
        "{}:{:?}:{}",
        a.tokens.len(),
        std::time::SystemTime::now(),
        settings.password
    );
    let token: String = sha2::Sha256::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    a.tokens.push(token.clone());
    axum::Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": 1_209_599,
        "userName": settings.username,
    }))
    .into_response()
}

/// The paged envelope of `items`, or a 400 for a bad page size.
fn paged(items: Vec<Value>, query: &HashMap<String, String>) -> Response {
    let size: usize = query
        .get("pagesize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let page: usize = query.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    if !(1..=100).contains(&size) || page == 0 {
        return message(
            StatusCode::BAD_REQUEST,
            "PageSize must be 1 to 100 and Page 1 or more",
        );
    }
    let total = items.len();
    let data: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    axum::Json(json!({
        "TotalItems": total,
        "PagingInfo": { "PageSize": size, "Page": page },
        "TotalPages": total.div_ceil(size),
        "Data": data,
    }))
    .into_response()
}

fn list_orders(a: &Account, query: &HashMap<String, String>) -> Response {
    let downloaded = query
        .get("downloaded")
        .map(|v| v.eq_ignore_ascii_case("true"));
    let status = query.get("orderstatus");
    let items = a
        .orders
        .values()
        .filter(|o| downloaded.is_none_or(|d| o["Downloaded"] == d))
        .filter(|o| {
            status.is_none_or(|s| {
                o["OrderStatus"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(s))
            })
        })
        .cloned()
        .collect();
    paged(items, query)
}

fn list_products(a: &Account, query: &HashMap<String, String>) -> Response {
    paged(a.products.clone(), query)
}

/// The items of a bulk call, or the sentence of StoreFeeder's 400.
fn batch(body: Value, what: &str) -> Result<Vec<Value>, String> {
    match body {
        Value::Array(items) if items.is_empty() => Err("The request is invalid.".into()),
        Value::Array(items) if items.len() > 50 => Err(format!(
            "You can only {what} a maximum of 50 orders at once"
        )),
        Value::Array(items) => Ok(items),
        _ => Err("The request is invalid.".into()),
    }
}

fn mark(a: &mut Account, body: Value) -> Response {
    let items = match batch(body, "mark") {
        Ok(items) => items,
        Err(e) => return message(StatusCode::BAD_REQUEST, &e),
    };
    let mut results = Vec::new();
    for item in items {
        let Some(number) = item["OrderNumber"].as_u64() else {
            return message(StatusCode::BAD_REQUEST, "OrderNumber is required");
        };
        match a.orders.get_mut(&number) {
            Some(o) => {
                o["Downloaded"] = json!(true);
                results.push(json!({ "OrderNumber": number, "Success": true }));
            }
            None => results.push(
                json!({ "OrderNumber": number, "Success": false, "Error": "Order not found" }),
            ),
        }
    }
    axum::Json(results).into_response()
}

fn despatch(a: &mut Account, body: Value) -> Response {
    let items = match batch(body, "despatch") {
        Ok(items) => items,
        Err(e) => return message(StatusCode::BAD_REQUEST, &e),
    };
    for item in &items {
        let date_ok = item["DespatchDate"]
            .as_str()
            .is_some_and(|d| chrono::DateTime::parse_from_rfc3339(d).is_ok());
        let via_ok = item["ShippedVia"].as_str().is_some_and(|s| !s.is_empty());
        if item["OrderNumber"].as_u64().is_none() || !date_ok || !via_ok {
            return message(
                StatusCode::BAD_REQUEST,
                "Each order needs an OrderNumber, a DespatchDate (UTC) and ShippedVia",
            );
        }
    }
    let mut results = Vec::new();
    for item in items {
        let number = item["OrderNumber"].as_u64().unwrap();
        a.despatch_items.push(item.clone());
        let error = match a.orders.get(&number) {
            None => Some("Order not found".to_string()),
            Some(o) if o["OrderStatus"] == "Despatched" => {
                Some("Order has already been despatched".to_string())
            }
            Some(_) => a.refuse_despatch.get(&number).cloned(),
        };
        match error {
            Some(e) => results.push(json!({ "OrderNumber": number, "Success": false, "Error": e })),
            None => {
                let o = a.orders.get_mut(&number).unwrap();
                o["OrderStatus"] = json!("Despatched");
                o["ShippedVia"] = item["ShippedVia"].clone();
                o["ShippingTrackingNumber"] = item["TrackingNumber"].clone();
                o["DespatchDate"] = item["DespatchDate"].clone();
                results.push(json!({ "OrderNumber": number, "Success": true }));
            }
        }
    }
    axum::Json(results).into_response()
}

fn stock(a: &mut Account, body: Value) -> Response {
    let items = match batch(body, "update") {
        Ok(items) => items,
        Err(_) => {
            return message(
                StatusCode::BAD_REQUEST,
                "You can only update a maximum of 50 products at once",
            );
        }
    };
    let (mut ok, mut failed) = (0, 0);
    for item in &items {
        let id_type = item["ProductIDType"]["IDType"].as_str();
        let value = &item["ProductIDType"]["Value"];
        let kind = item["AdjustmentType"].as_str();
        let amount = item["AdjustmentAmount"].as_i64();
        let location = match &item["StockLocationID"] {
            Value::Null => Some(String::new()),
            l if l["IDType"] == "StockLocationReference" || l["IDType"] == "ID" => l["Value"]
                .as_str()
                .map(str::to_string)
                .or(l["Value"].as_u64().map(|n| n.to_string())),
            _ => None,
        };
        let (Some(id_type), Some(kind), Some(amount), Some(location)) =
            (id_type, kind, amount, location)
        else {
            return message(
                StatusCode::BAD_REQUEST,
                "Each item needs ProductIDType, AdjustmentType, AdjustmentAmount and StockLocationID",
            );
        };
        if !["SKU", "ID"].contains(&id_type)
            || !["AbsoluteAdjustment", "RelativeAdjustment"].contains(&kind)
        {
            return message(StatusCode::BAD_REQUEST, "Unknown IDType or AdjustmentType");
        }
        let product = a.products.iter().find(|p| {
            if id_type == "SKU" {
                p["SKU"] == *value
            } else {
                p["ProductID"] == *value
            }
        });
        let Some(id) = product.and_then(|p| p["ProductID"].as_u64()) else {
            failed += 1; // never created
            continue;
        };
        let units = a.stock.entry((id, location)).or_insert(0);
        if kind == "AbsoluteAdjustment" {
            *units = amount;
        } else {
            *units += amount;
        }
        ok += 1;
    }
    axum::Json(json!({ "TotalItemsProcessed": items.len(), "Successful": ok, "Failed": failed }))
        .into_response()
}

fn price(a: &mut Account, id: &str, body: Value) -> Response {
    let pricing = &body["PricingInformation"];
    let Some(price) = pricing["Price"].as_f64().filter(|p| *p >= 0.0) else {
        return message(
            StatusCode::BAD_REQUEST,
            "PricingInformation.Price is required",
        );
    };
    if !pricing["IncludesVAT"].is_boolean() && !pricing["IncludesVAT"].is_null() {
        return message(
            StatusCode::BAD_REQUEST,
            "PricingInformation.IncludesVAT must be true or false",
        );
    }
    let Some(product) = a
        .products
        .iter_mut()
        .find(|p| p["ProductID"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
    else {
        return message(StatusCode::NOT_FOUND, "Product not found");
    };
    product["Price"] = json!(price);
    if pricing["IncludesVAT"].is_boolean() {
        product["IncludesVAT"] = pricing["IncludesVAT"].clone();
    }
    axum::Json(json!({ "ProductID": product["ProductID"], "Success": true })).into_response()
}
