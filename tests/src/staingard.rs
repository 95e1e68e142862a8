//! A fake of Staingard's warranty API on loopback, over TLS. Staingard
//! publishes no API: this fake implements the contract **assumed** in
//! `../shared/THIRD-PARTY-APIS.md` §8, to be replaced with the private
//! "Staingard Warranty System API Documentation v1":
//!
//! - every call needs `Authorization: Bearer <api key>` (401 otherwise);
//! - `POST {base}/orders` with `retailerId` (must be the account's; 403
//!   otherwise), `orderReference`, `orderDate` and `deliveryDate` (RFC
//!   3339), `customer` (`firstName`, `lastName`, `email`, `address` with
//!   `line1`, `postcode`, `country`) and `items` (at least one, each with
//!   `sku`, `description`, `quantity` ≥ 1, `unitPrice` ≥ 0, and, when
//!   covered, `coverType` in fabric/leather/wood, `planCode`, `planPrice`;
//!   at least one item covered): `201 {"warrantyNumber":"SG-…"}`;
//!   validation errors are `422 {"errors":[{"field","message"}]}`;
//! - a second submission of an `orderReference` is `409` with the first
//!   `warrantyNumber`: nothing is created;
//! - no update or cancel: any other method on an order is `405`;
//! - `GET {base}/orders/{reference}`: the warranty, or 404 (the connector's
//!   Test connection reads one that does not exist);
//! - [`FakeStaingard::inject`] answers the next calls with a status (503,
//!   429…); [`FakeStaingard::stall_after`] creates a warranty and withholds
//!   the answer, as when a run is killed before it heard.
//!
//! Every request is recorded with its body ([`FakeStaingard::seen`]).

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

/// The path every call is under (`{base}` is `https://NAME/v1`).
pub const BASE_PATH: &str = "/v1";

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The body, as text.
    pub body: String,
    /// The status answered.
    pub status: u16,
}

struct Account {
    api_key: String,
    retailer_id: String,
    /// orderReference → (warranty number, the submission).
    warranties: BTreeMap<String, (String, Value)>,
    seen: Vec<Seen>,
    inject: Vec<u16>,
    stall_after: Option<usize>,
    created: usize,
}

/// A running fake Staingard.
pub struct FakeStaingard {
    /// Where it listens.
    pub addr: SocketAddr,
    account: Arc<Mutex<Account>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStaingard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStaingard {
    /// Starts the fake for the account (`api_key`, `retailer_id`) on a free
    /// loopback port, over TLS with a certificate of `ca`.
    pub async fn start(
        api_key: &str,
        retailer_id: &str,
        ca: &crate::tls::TestCa,
    ) -> std::io::Result<Self> {
        let account = Arc::new(Mutex::new(Account {
            api_key: api_key.to_string(),
            retailer_id: retailer_id.to_string(),
            warranties: BTreeMap::new(),
            seen: Vec::new(),
            inject: Vec::new(),
            stall_after: None,
            created: 0,
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

    /// A warranty registered before (by another system): its submission
    /// is a duplicate.
    pub fn preload(&self, reference: &str, warranty: &str) {
        self.account().warranties.insert(
            reference.to_string(),
            (warranty.to_string(), json!({ "orderReference": reference })),
        );
    }

    /// orderReference → warranty number of every warranty held.
    pub fn warranties(&self) -> BTreeMap<String, String> {
        self.account()
            .warranties
            .iter()
            .map(|(r, (w, _))| (r.clone(), w.clone()))
            .collect()
    }

    /// The submission accepted for `reference`.
    pub fn submission(&self, reference: &str) -> Option<Value> {
        self.account()
            .warranties
            .get(reference)
            .map(|(_, s)| s.clone())
    }

    /// The key Staingard accepts from now on (a key rotated there).
    pub fn set_api_key(&self, key: &str) {
        self.account().api_key = key.to_string();
    }

    /// The next calls (after authentication) answer these statuses.
    pub fn inject(&self, statuses: &[u16]) {
        self.account().inject.extend(statuses.iter().rev());
    }

    /// After `n` more warranties created, the next is created and its
    /// answer withheld.
    pub fn stall_after(&self, n: usize) {
        let mut a = self.account();
        a.stall_after = Some(a.created + n);
    }

    /// Warranties created so far (duplicates excluded).
    pub fn created(&self) -> usize {
        self.account().created
    }

    /// Every request answered, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.account().seen.clone()
    }

    /// The submissions received (`POST`), whatever their answer.
    pub fn posts(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == "POST")
            .collect()
    }
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
        let (response, stall) = respond(&mut a, &method, uri.path(), &headers, &body);
        a.seen.push(Seen {
            method: method.to_string(),
            path: uri.path().to_string(),
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

fn error(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "error": text }))).into_response()
}

fn respond(
    a: &mut Account,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, bool) {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(a.api_key.as_str()) {
        return (error(StatusCode::UNAUTHORIZED, "invalid API key"), false);
    }
    if let Some(status) = a.inject.pop() {
        let status = StatusCode::from_u16(status).unwrap();
        return (error(status, "try again later"), false);
    }
    let Some(rest) = path.strip_prefix(BASE_PATH) else {
        return (error(StatusCode::NOT_FOUND, "not found"), false);
    };
    match (method.clone(), rest.trim_end_matches('/')) {
        (Method::POST, "/orders") => submit(a, body),
        (Method::GET, r) if r.starts_with("/orders/") => {
            let reference = &r["/orders/".len()..];
            let found = a.warranties.get(reference);
            let response = match found {
                Some((w, _)) => {
                    axum::Json(json!({ "orderReference": reference, "warrantyNumber": w }))
                        .into_response()
                }
                None => error(StatusCode::NOT_FOUND, "no such order"),
            };
            (response, false)
        }
        (_, r) if r.starts_with("/orders") => (
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "a warranty cannot be updated or cancelled",
            ),
            false,
        ),
        _ => (error(StatusCode::NOT_FOUND, "not found"), false),
    }
}

/// The validation errors of a submission, as `(field, message)`.
fn validate(s: &Value) -> Vec<(String, &'static str)> {
    let mut errors = Vec::new();
    let mut need = |field: &str, ok: bool, message: &'static str| {
        if !ok {
            errors.push((field.to_string(), message));
        }
    };
    let text = |v: &Value| v.as_str().is_some_and(|s| !s.trim().is_empty());
    let date = |v: &Value| {
        v.as_str()
            .is_some_and(|d| chrono::DateTime::parse_from_rfc3339(d).is_ok())
    };
    need("orderReference", text(&s["orderReference"]), "is required");
    need(
        "orderDate",
        date(&s["orderDate"]),
        "must be a date and time",
    );
    need(
        "deliveryDate",
        date(&s["deliveryDate"]),
        "must be a date and time",
    );
    let c = &s["customer"];
    need("customer.firstName", text(&c["firstName"]), "is required");
    need("customer.lastName", text(&c["lastName"]), "is required");
    need(
        "customer.email",
        c["email"].as_str().is_some_and(|e| e.contains('@')),
        "must be an email address",
    );
    for f in ["line1", "postcode", "country"] {
        need(
            &format!("customer.address.{f}"),
            text(&c["address"][f]),
            "is required",
        );
    }
    let items = s["items"].as_array().cloned().unwrap_or_default();
    need("items", !items.is_empty(), "at least one item is required");
    let mut covered = false;
    for (i, item) in items.iter().enumerate() {
        need(
            &format!("items[{i}].sku"),
            text(&item["sku"]),
            "is required",
        );
        need(
            &format!("items[{i}].description"),
            text(&item["description"]),
            "is required",
        );
        need(
            &format!("items[{i}].quantity"),
            item["quantity"].as_u64().is_some_and(|q| q >= 1),
            "must be 1 or more",
        );
        need(
            &format!("items[{i}].unitPrice"),
            item["unitPrice"].as_f64().is_some_and(|p| p >= 0.0),
            "must be an amount",
        );
        if !item["coverType"].is_null() {
            covered = true;
            let kind = item["coverType"].as_str().unwrap_or("");
            need(
                &format!("items[{i}].coverType"),
                ["fabric", "leather", "wood"].contains(&kind),
                "must be fabric, leather or wood",
            );
            need(
                &format!("items[{i}].planCode"),
                text(&item["planCode"]),
                "is required with cover",
            );
            need(
                &format!("items[{i}].planPrice"),
                item["planPrice"].as_f64().is_some_and(|p| p >= 0.0),
                "is required with cover",
            );
        }
    }
    need("items", covered, "no item has warranty cover");
    errors
}

fn submit(a: &mut Account, body: &Bytes) -> (Response, bool) {
    let Ok(s) = serde_json::from_slice::<Value>(body) else {
        return (
            error(StatusCode::BAD_REQUEST, "the body is not JSON"),
            false,
        );
    };
    if s["retailerId"].as_str() != Some(a.retailer_id.as_str()) {
        return (
            error(StatusCode::FORBIDDEN, "unknown retailer for this key"),
            false,
        );
    }
    let errors = validate(&s);
    if !errors.is_empty() {
        let list: Vec<Value> = errors
            .iter()
            .map(|(f, m)| json!({ "field": f, "message": m }))
            .collect();
        return (
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({ "errors": list })),
            )
                .into_response(),
            false,
        );
    }
    let reference = s["orderReference"].as_str().unwrap().to_string();
    if let Some((w, _)) = a.warranties.get(&reference) {
        let body = json!({ "error": "duplicate orderReference", "warrantyNumber": w });
        return (
            (StatusCode::CONFLICT, axum::Json(body)).into_response(),
            false,
        );
    }
    let number = format!("SG-{:06}", 100_001 + a.warranties.len());
    a.warranties.insert(reference, (number.clone(), s));
    a.created += 1;
    let stall = a.stall_after.is_some_and(|n| a.created > n);
    let created = (
        StatusCode::CREATED,
        axum::Json(json!({ "warrantyNumber": number })),
    );
    (created.into_response(), stall)
}
