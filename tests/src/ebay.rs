//! A fake of eBay on loopback (`auth.ebay.com` and `api.ebay.com`, one TLS
//! server for both names), written from `../shared/THIRD-PARTY-APIS.md` §4,
//! checking requests the way eBay does:
//!
//! - **OAuth**: the consent page `GET /oauth2/authorize` (client id,
//!   `response_type=code`, the redirect URI, which may be a registered
//!   RuName standing for its accept URL, as eBay's is) sends the browser
//!   back with a code; the token endpoint `POST /identity/v1/oauth2/token`
//!   takes Basic client authentication and a form: `authorization_code`
//!   (single use, the same `redirect_uri`) gives a 7,200 s access token and
//!   an 18-month refresh token; `refresh_token` gives a new access token
//!   and **no new refresh token** (eBay does not rotate it), for scopes no
//!   wider than those consented.
//! - **Every API call** needs `Authorization: Bearer` with a live access
//!   token whose scopes cover the API (`sell.fulfillment` for orders,
//!   `sell.inventory` for offers; Taxonomy takes any), else 401 / 403
//!   with eBay's error body (`{"errors":[{errorId, domain, category,
//!   message}]}`).
//! - **Fulfillment**: `GET /order?filter=lastmodifieddate:[a..b]` with
//!   `limit` (≤ 200) and `offset` paging and a `next` URI;
//!   `GET|POST /order/{id}/shipping_fulfillment` (201 + `Location`; the
//!   lines must be the order's, once each, quantities within the line's,
//!   `shippedDate` a time, a tracking number needs a carrier code; no
//!   idempotency: a repeat creates a second fulfilment).
//! - **Inventory**: `GET /offer?sku=` (404 25713 when the SKU has none);
//!   `POST /bulk_update_price_quantity` (`Content-Type: application/json`,
//!   ≤ 25 requests, each SKU and offer known, prices as decimal strings in
//!   the offer's currency): 200, or 207 with a status per item.
//! - **Taxonomy**: `get_default_category_tree_id?marketplace_id=` and
//!   `category_tree/{id}`.
//! - Injected faults: 429 with `Retry-After`, 500 with 25001 per SKU, a
//!   withheld answer after a write (a run killed after eBay acted).
//!
//! Everything that changed eBay is recorded ([`FakeEbay::fulfilments`],
//! [`FakeEbay::price_quantity_updates`]) with every request seen.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use serde_json::{Value, json};

/// The names the fake answers for.
pub const NAMES: [&str; 2] = ["api.ebay.com", "auth.ebay.com"];
/// The Fulfillment API's base, as `next` URIs give it.
pub const FULFILLMENT: &str = "https://api.ebay.com/sell/fulfillment/v1";
const SCOPE_ROOT: &str = "https://api.ebay.com/oauth/api_scope";

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct EbaySettings {
    /// The app's client id (App ID).
    pub client_id: String,
    /// Its secret (Cert ID).
    pub client_secret: String,
    /// Access-token lifetime (eBay: 7,200 s).
    pub access_ttl_secs: i64,
    /// The token response's `token_type`: `User Access Token`, as eBay
    /// answers (the host takes it as a bearer token).
    pub token_type: String,
    /// RuName → the accept URL eBay sends the browser to.
    pub ru_names: BTreeMap<String, String>,
}

impl Default for EbaySettings {
    fn default() -> Self {
        Self {
            client_id: "Shop-Airlock-PRD-0123456789-abcdef".into(),
            client_secret: "PRD-ebay-cert-secret-9876".into(),
            access_ttl_secs: 7200,
            token_type: "User Access Token".into(),
            ru_names: BTreeMap::new(),
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
    /// The query (decoded).
    pub query: String,
    /// `Content-Language`, if sent.
    pub content_language: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// A `bulk_update_price_quantity` item eBay applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceQuantity {
    /// The SKU.
    pub sku: String,
    /// The offer.
    pub offer_id: String,
    /// Quantity set.
    pub quantity: u64,
    /// Price set.
    pub price: String,
    /// Its currency.
    pub currency: String,
}

#[derive(Default)]
struct Account {
    settings: EbaySettings,
    codes: HashMap<String, (String, String, bool)>,
    refresh: HashMap<String, String>,
    access: HashMap<String, (i64, String)>,
    issued: Vec<String>,
    seq: u64,
    orders: Vec<Value>,
    fulfilments: Vec<(String, Value)>,
    offers: Vec<Value>,
    updates: Vec<PriceQuantity>,
    tree: Value,
    tree_version: String,
    seen: Vec<Seen>,
    token_requests: Vec<String>,
    throttle: Vec<u32>,
    sku_errors: HashMap<String, (u16, u64)>,
    refuse_fulfilments: Option<u64>,
    stall_after: Option<usize>,
    writes: usize,
}

impl Account {
    fn next(&mut self, prefix: &str) -> String {
        self.seq += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let token = format!("{prefix}^1.1#i^1#{}#{nanos:08x}", self.seq);
        self.issued.push(token.clone());
        token
    }
}

/// A running fake eBay.
pub struct FakeEbay {
    /// Where it listens.
    pub addr: SocketAddr,
    account: Arc<Mutex<Account>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeEbay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn lock(a: &Arc<Mutex<Account>>) -> std::sync::MutexGuard<'_, Account> {
    a.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeEbay {
    /// Serves https with a certificate of `ca` (made for [`NAMES`]).
    pub async fn start(settings: EbaySettings, ca: &crate::tls::TestCa) -> std::io::Result<Self> {
        let account = Arc::new(Mutex::new(Account {
            settings,
            tree_version: "119".into(),
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
        lock(&self.account)
    }

    /// Changes the settings.
    pub fn set(&self, change: impl FnOnce(&mut EbaySettings)) {
        change(&mut self.account().settings);
    }

    /// Adds (or replaces) an order in the seller's account.
    pub fn put_order(&self, order: Value) {
        let mut a = self.account();
        a.orders.retain(|o| o["orderId"] != order["orderId"]);
        a.orders.push(order);
    }

    /// The seller's orders as eBay holds them.
    pub fn orders(&self) -> Vec<Value> {
        self.account().orders.clone()
    }

    /// Lists `sku` with one fixed-price offer on `marketplace`; its id.
    pub fn add_offer(&self, sku: &str, marketplace: &str, price: &str, currency: &str) -> String {
        let mut a = self.account();
        let id = format!("50{:010}", a.offers.len() + 1);
        a.offers.push(json!({
            "offerId": id, "sku": sku, "marketplaceId": marketplace, "format": "FIXED_PRICE",
            "availableQuantity": 0, "pricingSummary": { "price": { "value": price, "currency": currency } },
        }));
        id
    }

    /// The category tree the Taxonomy API serves, and its version.
    pub fn set_category_tree(&self, tree: Value, version: &str) {
        let mut a = self.account();
        a.tree = tree;
        a.tree_version = version.into();
    }

    /// The next `n` API calls answer 429 with `Retry-After: retry_after`.
    pub fn throttle(&self, n: usize, retry_after: u32) {
        self.account()
            .throttle
            .extend(std::iter::repeat_n(retry_after, n));
    }

    /// Updates of `sku` fail with `status` and eBay error `error_id`
    /// (500 25001: retryable; 400 25002: permanent) until cleared.
    pub fn fail_sku(&self, sku: &str, status: u16, error_id: u64) {
        self.account()
            .sku_errors
            .insert(sku.to_string(), (status, error_id));
    }

    /// Clears every injected fault.
    pub fn clear_faults(&self) {
        let mut a = self.account();
        a.sku_errors.clear();
        a.throttle.clear();
        a.refuse_fulfilments = None;
        a.stall_after = None;
    }

    /// Fulfilment posts answer 400 with this error id (32300: invalid
    /// tracking number or carrier).
    pub fn refuse_fulfilments(&self, error_id: u64) {
        self.account().refuse_fulfilments = Some(error_id);
    }

    /// After `writes` more writes, the next one is applied but its answer
    /// is withheld (the connection hangs).
    pub fn stall_after(&self, writes: usize) {
        let mut a = self.account();
        a.stall_after = Some(a.writes + writes);
    }

    /// Writes applied (fulfilments created, SKUs updated).
    pub fn writes(&self) -> usize {
        self.account().writes
    }

    /// Revokes the user's consent (as when the seller removes the app):
    /// every refresh token gets `invalid_grant`, every access token 401;
    /// only a new consent gives new ones.
    pub fn revoke_all(&self) {
        let mut a = self.account();
        a.refresh.clear();
        a.access.clear();
    }

    /// Ages every access token out, so the next call needs a refresh.
    pub fn expire_access_tokens(&self) {
        for (exp, _) in self.account().access.values_mut() {
            *exp = 0;
        }
    }

    /// Each fulfilment created: (eBay order id, the fulfilment).
    pub fn fulfilments(&self) -> Vec<(String, Value)> {
        self.account().fulfilments.clone()
    }

    /// Each offer's price and quantity update applied, in order.
    pub fn price_quantity_updates(&self) -> Vec<PriceQuantity> {
        self.account().updates.clone()
    }

    /// Every API request answered (not the token endpoint), in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.account().seen.clone()
    }

    /// The grant type of each token request, in order.
    pub fn token_requests(&self) -> Vec<String> {
        self.account().token_requests.clone()
    }

    /// Every token issued (codes, access and refresh tokens).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.account().issued.clone()
    }
}

/// eBay's error body.
fn error(status: StatusCode, error_id: u64, message: &str) -> Response {
    let category = if status.is_server_error() {
        "APPLICATION"
    } else {
        "REQUEST"
    };
    (
        status,
        [("content-type", "application/json")],
        json!({ "errors": [{ "errorId": error_id, "domain": "API_FAKE", "category": category,
            "message": message }] })
        .to_string(),
    )
        .into_response()
}

fn ok(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(
    State(account): State<Arc<Mutex<Account>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, stall) = {
        let mut a = lock(&account);
        respond(&mut a, &method, &uri, &headers, &body)
    };
    if stall {
        std::future::pending::<()>().await;
    }
    response
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn respond(
    a: &mut Account,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, bool) {
    let path = uri.path().to_string();
    if path == "/oauth2/authorize" && method == Method::GET {
        return (authorize(a, &query_map(uri)), false);
    }
    if path == "/identity/v1/oauth2/token" && method == Method::POST {
        return (token(a, headers, body), false);
    }
    let (response, stall) = api(a, method, uri, headers, body);
    let q: Vec<String> = query_map(uri)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    a.seen.push(Seen {
        method: method.to_string(),
        path,
        query: q.join("&"),
        content_language: header(headers, "content-language").map(str::to_string),
        status: response.status().as_u16(),
    });
    (response, stall)
}

fn authorize(a: &mut Account, q: &HashMap<String, String>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let redirect = get("redirect_uri");
    let accept = a
        .settings
        .ru_names
        .get(&redirect)
        .cloned()
        .unwrap_or_else(|| redirect.clone());
    if get("client_id") != a.settings.client_id
        || get("response_type") != "code"
        || url::Url::parse(&accept).is_err()
    {
        return (StatusCode::BAD_REQUEST, "invalid authorize request").into_response();
    }
    let scope = get("scope");
    if scope.split(' ').any(|s| !s.starts_with(SCOPE_ROOT)) {
        return (StatusCode::BAD_REQUEST, "invalid_scope").into_response();
    }
    let code = a.next("v");
    a.codes.insert(code.clone(), (redirect, scope, false));
    let mut target = url::Url::parse(&accept).expect("checked");
    target
        .query_pairs_mut()
        .append_pair("state", &get("state"))
        .append_pair("code", &code)
        .append_pair("expires_in", "299");
    (
        StatusCode::FOUND,
        [(axum::http::header::LOCATION, target.to_string())],
    )
        .into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    ok(
        status,
        json!({ "error": error, "error_description": description }),
    )
}

fn token(a: &mut Account, headers: &HeaderMap, body: &Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    a.token_requests.push(grant.clone());
    if !header(headers, "content-type")
        .unwrap_or("")
        .starts_with("application/x-www-form-urlencoded")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "form body required",
        );
    }
    let basic = header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let expected = format!("{}:{}", a.settings.client_id, a.settings.client_secret);
    if basic.as_deref() != Some(expected.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let ttl = a.settings.access_ttl_secs;
    let token_type = a.settings.token_type.clone();
    match grant.as_str() {
        "authorization_code" => {
            let Some((redirect, scope, used)) = a.codes.get_mut(&get("code")) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown code");
            };
            if *used || *redirect != get("redirect_uri") {
                *used = true;
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the code was used or the redirect_uri differs",
                );
            }
            *used = true;
            let scope = scope.clone();
            let access = a.next("v");
            let refresh = a.next("v");
            a.access
                .insert(access.clone(), (now() + ttl, scope.clone()));
            a.refresh.insert(refresh.clone(), scope);
            ok(
                StatusCode::OK,
                json!({ "access_token": access, "expires_in": ttl, "refresh_token": refresh,
                    "refresh_token_expires_in": 47_304_000, "token_type": token_type }),
            )
        }
        "refresh_token" => {
            let Some(consented) = a.refresh.get(&get("refresh_token")).cloned() else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the provided authorization refresh token is invalid or was issued to another client",
                );
            };
            let asked = get("scope");
            let scope = if asked.is_empty() {
                consented.clone()
            } else {
                asked
            };
            if scope
                .split(' ')
                .any(|s| !consented.split(' ').any(|c| c == s))
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "the requested scope is invalid, unknown, malformed, or exceeds the scope granted",
                );
            }
            let access = a.next("v");
            a.access.insert(access.clone(), (now() + ttl, scope));
            ok(
                StatusCode::OK,
                json!({ "access_token": access, "expires_in": ttl, "token_type": token_type }),
            )
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", &grant),
    }
}

/// The scope an API path needs (None: any user token).
fn scope_for(path: &str) -> Option<&'static str> {
    if path.starts_with("/sell/fulfillment/") {
        Some("sell.fulfillment")
    } else if path.starts_with("/sell/inventory/") {
        Some("sell.inventory")
    } else {
        None
    }
}

fn api(
    a: &mut Account,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, bool) {
    let path = uri.path();
    let bearer = header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let Some((expiry, scope)) = a.access.get(bearer).cloned() else {
        return (
            error(StatusCode::UNAUTHORIZED, 1001, "Invalid access token"),
            false,
        );
    };
    if expiry <= now() {
        return (
            error(StatusCode::UNAUTHORIZED, 1001, "Invalid access token"),
            false,
        );
    }
    if let Some(needed) = scope_for(path) {
        let full = format!("{SCOPE_ROOT}/{needed}");
        if !scope.split(' ').any(|s| s == full) {
            return (
                error(
                    StatusCode::FORBIDDEN,
                    1100,
                    "Insufficient permissions to fulfill the request.",
                ),
                false,
            );
        }
    }
    if let Some(after) = a.throttle.pop() {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            2001,
            "Too many requests. The request limit has been reached for the resource.",
        );
        r.headers_mut()
            .insert("retry-after", after.to_string().parse().expect("digits"));
        return (r, false);
    }
    if method == Method::POST
        && !header(headers, "content-type")
            .unwrap_or("")
            .starts_with("application/json")
    {
        return (
            error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                2004,
                "Unsupported Media Type",
            ),
            false,
        );
    }
    let q = query_map(uri);
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["sell", "fulfillment", "v1", "order"]) => (get_orders(a, &q), false),
        (
            "GET",
            [
                "sell",
                "fulfillment",
                "v1",
                "order",
                id,
                "shipping_fulfillment",
            ],
        ) => (get_fulfilments(a, id), false),
        (
            "POST",
            [
                "sell",
                "fulfillment",
                "v1",
                "order",
                id,
                "shipping_fulfillment",
            ],
        ) => post_fulfilment(a, id, body),
        ("GET", ["sell", "inventory", "v1", "offer"]) => (get_offers(a, &q), false),
        ("POST", ["sell", "inventory", "v1", "bulk_update_price_quantity"]) => {
            bulk_update(a, headers, body)
        }
        ("GET", ["commerce", "taxonomy", "v1", "get_default_category_tree_id"]) => {
            let market = q.get("marketplace_id").cloned().unwrap_or_default();
            if !market.starts_with("EBAY_") {
                return (
                    error(
                        StatusCode::BAD_REQUEST,
                        62004,
                        "The marketplace ID is invalid.",
                    ),
                    false,
                );
            }
            let id = if market == "EBAY_GB" { "3" } else { "77" };
            (
                ok(
                    StatusCode::OK,
                    json!({ "categoryTreeId": id, "categoryTreeVersion": a.tree_version }),
                ),
                false,
            )
        }
        ("GET", ["commerce", "taxonomy", "v1", "category_tree", id]) => {
            if a.tree.is_null() {
                return (
                    error(
                        StatusCode::NOT_FOUND,
                        62005,
                        "The category tree ID is invalid.",
                    ),
                    false,
                );
            }
            let mut tree = a.tree.clone();
            tree["categoryTreeId"] = json!(id);
            tree["categoryTreeVersion"] = json!(a.tree_version);
            (ok(StatusCode::OK, tree), false)
        }
        _ => (
            error(StatusCode::NOT_FOUND, 2002, "Resource not found"),
            false,
        ),
    }
}

/// `lastmodifieddate:[a..b]` (or `creationdate:`) → the field and bounds.
fn parse_filter(filter: &str) -> Option<(&'static str, i64, Option<i64>)> {
    let (field, range) = filter.split_once(':')?;
    let field = match field {
        "lastmodifieddate" => "lastModifiedDate",
        "creationdate" => "creationDate",
        _ => return None,
    };
    let range = range.strip_prefix('[')?.strip_suffix(']')?;
    let (from, to) = range.split_once("..")?;
    let at = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|d| d.timestamp())
    };
    let from = at(from)?;
    let to = if to.is_empty() { None } else { Some(at(to)?) };
    Some((field, from, to))
}

fn get_orders(a: &Account, q: &HashMap<String, String>) -> Response {
    let limit: usize = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 50,
        Some(Ok(l)) if (1..=200).contains(&l) => l,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                30700,
                "The 'limit' value must be from 1 to 200.",
            );
        }
    };
    let offset: usize = match q.get("offset").map(|o| o.parse::<usize>()) {
        None => 0,
        Some(Ok(o)) => o,
        _ => return error(StatusCode::BAD_REQUEST, 30700, "Invalid offset"),
    };
    let filter = q.get("filter").cloned().unwrap_or_default();
    // Without a filter eBay returns the orders created in the last 90 days.
    let parsed = if filter.is_empty() {
        Some(("creationDate", now() - 90 * 86_400, None))
    } else {
        parse_filter(&filter)
    };
    let Some((field, from, to)) = parsed else {
        return error(StatusCode::BAD_REQUEST, 30800, "Invalid filter");
    };
    let mut matching: Vec<&Value> = a
        .orders
        .iter()
        .filter(|o| {
            let t = chrono::DateTime::parse_from_rfc3339(o[field].as_str().unwrap_or(""))
                .map(|d| d.timestamp())
                .unwrap_or(i64::MIN);
            t >= from && to.is_none_or(|to| t <= to)
        })
        .collect();
    matching.sort_by_key(|o| o["orderId"].as_str().unwrap_or("").to_string());
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .cloned()
        .collect();
    let link = |offset: usize| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if !filter.is_empty() {
            query.append_pair("filter", &filter);
        }
        let query = query
            .append_pair("limit", &limit.to_string())
            .append_pair("offset", &offset.to_string())
            .finish();
        format!("{FULFILLMENT}/order?{query}")
    };
    let mut body = json!({ "href": link(offset), "limit": limit, "offset": offset,
        "total": total, "orders": page });
    if offset + limit < total {
        body["next"] = json!(link(offset + limit));
    }
    ok(StatusCode::OK, body)
}

fn get_fulfilments(a: &Account, order_id: &str) -> Response {
    if !a.orders.iter().any(|o| o["orderId"] == order_id) {
        return error(StatusCode::NOT_FOUND, 32100, "Invalid order ID");
    }
    let list: Vec<&Value> = a
        .fulfilments
        .iter()
        .filter(|(o, _)| o == order_id)
        .map(|(_, f)| f)
        .collect();
    ok(
        StatusCode::OK,
        json!({ "total": list.len(), "fulfillments": list }),
    )
}

fn post_fulfilment(a: &mut Account, order_id: &str, body: &Bytes) -> (Response, bool) {
    let Some(order) = a.orders.iter().find(|o| o["orderId"] == order_id).cloned() else {
        return (
            error(StatusCode::NOT_FOUND, 32100, "Invalid order ID"),
            false,
        );
    };
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return (
            error(StatusCode::BAD_REQUEST, 32000, "Malformed JSON"),
            false,
        );
    };
    if let Some(id) = a.refuse_fulfilments {
        return (
            error(
                StatusCode::BAD_REQUEST,
                id,
                "Invalid shipment tracking number or carrier",
            ),
            false,
        );
    }
    let lines = req["lineItems"].as_array().cloned().unwrap_or_default();
    if lines.is_empty() {
        return (
            error(StatusCode::BAD_REQUEST, 32200, "Invalid line item ID"),
            false,
        );
    }
    let mut ids = Vec::new();
    for l in &lines {
        let id = l["lineItemId"].as_str().unwrap_or("");
        let Some(item) = order["lineItems"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["lineItemId"] == id)
        else {
            return (
                error(StatusCode::BAD_REQUEST, 32200, "Invalid line item ID"),
                false,
            );
        };
        if ids.contains(&id) {
            return (
                error(
                    StatusCode::BAD_REQUEST,
                    32210,
                    "Duplicate line item in the request",
                ),
                false,
            );
        }
        ids.push(id);
        let q = l["quantity"].as_u64().unwrap_or(0);
        if q == 0 || q > item["quantity"].as_u64().unwrap_or(0) {
            return (
                error(StatusCode::BAD_REQUEST, 32200, "Invalid line item quantity"),
                false,
            );
        }
    }
    if let Some(d) = req["shippedDate"].as_str()
        && chrono::DateTime::parse_from_rfc3339(d).is_err()
    {
        return (
            error(StatusCode::BAD_REQUEST, 32500, "Invalid shipped date"),
            false,
        );
    }
    let tracking = req["trackingNumber"].as_str().unwrap_or("");
    let carrier = req["shippingCarrierCode"].as_str().unwrap_or("");
    if !tracking.is_empty() && carrier.is_empty() {
        return (
            error(
                StatusCode::BAD_REQUEST,
                32300,
                "Invalid shipment tracking number or carrier",
            ),
            false,
        );
    }
    a.seq += 1;
    let fid = format!("{:04}-{:011}", a.seq, a.fulfilments.len() + 1);
    a.fulfilments.push((
        order_id.to_string(),
        json!({ "fulfillmentId": fid, "lineItems": lines, "shipmentTrackingNumber": tracking,
            "shippingCarrierCode": carrier, "shippedDate": req["shippedDate"] }),
    ));
    a.writes += 1;
    if let Some(o) = a.orders.iter_mut().find(|o| o["orderId"] == order_id) {
        o["orderFulfillmentStatus"] = json!("FULFILLED");
        o["lastModifiedDate"] = json!(
            chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        );
    }
    let stall = a.stall_after.is_some_and(|n| a.writes > n);
    let location = format!("{FULFILLMENT}/order/{order_id}/shipping_fulfillment/{fid}");
    (
        (
            StatusCode::CREATED,
            [(axum::http::header::LOCATION, location)],
        )
            .into_response(),
        stall,
    )
}

fn get_offers(a: &Account, q: &HashMap<String, String>) -> Response {
    let sku = q.get("sku").cloned().unwrap_or_default();
    if sku.is_empty() || sku.len() > 50 {
        return error(
            StatusCode::BAD_REQUEST,
            25707,
            "This is an invalid value for a SKU.",
        );
    }
    let market = q.get("marketplace_id");
    let offers: Vec<&Value> = a
        .offers
        .iter()
        .filter(|o| {
            o["sku"] == sku.as_str() && market.is_none_or(|m| o["marketplaceId"] == m.as_str())
        })
        .collect();
    if offers.is_empty() {
        return error(StatusCode::NOT_FOUND, 25713, "This Offer is not available.");
    }
    ok(
        StatusCode::OK,
        json!({ "total": offers.len(), "size": offers.len(), "offers": offers }),
    )
}

fn bulk_update(a: &mut Account, headers: &HeaderMap, body: &Bytes) -> (Response, bool) {
    if let Some(lang) = header(headers, "content-language")
        && !lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return (
            error(
                StatusCode::BAD_REQUEST,
                25709,
                "Invalid value for header Content-Language.",
            ),
            false,
        );
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return (
            error(StatusCode::BAD_REQUEST, 25709, "Invalid request body"),
            false,
        );
    };
    let requests = req["requests"].as_array().cloned().unwrap_or_default();
    if requests.is_empty() || requests.len() > 25 {
        return (
            error(
                StatusCode::BAD_REQUEST,
                25709,
                "Invalid number of requests: 1 to 25",
            ),
            false,
        );
    }
    let mut responses = Vec::new();
    let mut all_ok = true;
    for r in &requests {
        let sku = r["sku"].as_str().unwrap_or("").to_string();
        if let Some(&(status, id)) = a.sku_errors.get(&sku) {
            all_ok = false;
            responses.push(json!({ "statusCode": status, "sku": sku,
                "errors": [{ "errorId": id, "message": if id == 25001 { "A system error has occurred." } else { "Invalid request." } }] }));
            continue;
        }
        for offer in r["offers"].as_array().into_iter().flatten() {
            let oid = offer["offerId"].as_str().unwrap_or("");
            let known = a
                .offers
                .iter()
                .position(|o| o["offerId"] == oid && o["sku"] == sku.as_str());
            let price = &offer["price"];
            let valid_price = price["value"].as_str().is_some_and(|v| {
                let (w, f) = v.split_once('.').unwrap_or((v, "00"));
                !w.is_empty()
                    && w.bytes().all(|b| b.is_ascii_digit())
                    && f.len() <= 2
                    && f.bytes().all(|b| b.is_ascii_digit())
            });
            let Some(i) = known else {
                all_ok = false;
                responses.push(json!({ "statusCode": 404, "sku": sku, "offerId": oid,
                    "errors": [{ "errorId": 25713, "message": "This Offer is not available." }] }));
                continue;
            };
            let currency = a.offers[i]["pricingSummary"]["price"]["currency"].clone();
            if !valid_price || price["currency"] != currency || !offer["availableQuantity"].is_u64()
            {
                all_ok = false;
                responses.push(json!({ "statusCode": 400, "sku": sku, "offerId": oid,
                    "errors": [{ "errorId": 25709, "message": "Invalid value for price or availableQuantity." }] }));
                continue;
            }
            let quantity = offer["availableQuantity"].as_u64().unwrap_or(0);
            a.offers[i]["availableQuantity"] = json!(quantity);
            a.offers[i]["pricingSummary"]["price"] = price.clone();
            a.updates.push(PriceQuantity {
                sku: sku.clone(),
                offer_id: oid.to_string(),
                quantity,
                price: price["value"].as_str().unwrap_or("").to_string(),
                currency: price["currency"].as_str().unwrap_or("").to_string(),
            });
            a.writes += 1;
            responses.push(json!({ "statusCode": 200, "sku": sku, "offerId": oid }));
        }
    }
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    let stall = a.stall_after.is_some_and(|n| a.writes > n);
    (ok(status, json!({ "responses": responses })), stall)
}
