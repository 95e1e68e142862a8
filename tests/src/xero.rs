//! A fake of Xero's Accounting API (`api.xero.com`) on loopback, written
//! from `../shared/THIRD-PARTY-APIS.md` §1 and Xero's OpenAPI, checking
//! requests the way the real service does:
//!
//! - every call needs `Authorization: Bearer` with a token the identity
//!   server issued (401 otherwise) and `xero-tenant-id` naming the
//!   organisation (403 otherwise);
//! - a fixed window of calls per tenant (60 a minute by default) and a day
//!   limit: past them, 429 with `Retry-After` (seconds) and
//!   `X-Rate-Limit-Problem`; every answer carries `X-MinLimit-Remaining`
//!   and `X-DayLimit-Remaining`;
//! - `Idempotency-Key` on PUT/POST: the same key with the same request
//!   gets the first answer again and creates nothing; the same key with a
//!   different request is refused (Xero does not document this case; a
//!   400 is this fake's choice);
//! - validation as Xero words it, summarised (one invalid element → 400
//!   `ValidationException` with `Elements[].ValidationErrors`): unique
//!   contact names, item codes and ACCREC invoice numbers; payments only on
//!   AUTHORISED documents, to a bank account, never above what is due.
//!
//! Tax is not modelled: a document's total is the sum of its lines
//! (quantity × unit amount − discount). Tests read the organisation's state
//! ([`FakeXero::invoices`]…) and the requests it saw.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

/// Decides whether a bearer token is valid (wired to the identity fake).
pub type TokenCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How the fake organisation behaves.
#[derive(Clone)]
pub struct XeroSettings {
    /// The organisation's id (`xero-tenant-id`).
    pub tenant_id: String,
    /// Calls allowed per window (Xero: 60 a minute).
    pub calls_per_window: u32,
    /// The rate-limit window (Xero: a minute).
    pub window: Duration,
    /// Calls allowed per day (Xero: 5,000).
    pub calls_per_day: u32,
    /// Which bearer tokens are valid.
    pub token_ok: TokenCheck,
}

impl XeroSettings {
    /// An organisation accepting exactly these tokens, with Xero's limits.
    pub fn accepting(tokens: &[&str]) -> Self {
        let tokens: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
        Self {
            tenant_id: "6b2b1f4e-0b8c-4a53-9d1e-7f3c2a9e5d01".into(),
            calls_per_window: 60,
            window: Duration::from_secs(60),
            calls_per_day: 5000,
            token_ok: Arc::new(move |t| tokens.iter().any(|x| x == t)),
        }
    }
}

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// The method.
    pub method: String,
    /// The path (no query).
    pub path: String,
    /// The query, if any.
    pub query: String,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// The status answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
    /// True if the answer was replayed from the idempotency cache.
    pub replayed: bool,
    /// The request body (empty for reads).
    pub body: Bytes,
}

#[derive(Default)]
struct Org {
    contacts: Vec<Value>,
    items: Vec<Value>,
    invoices: Vec<Value>,
    credit_notes: Vec<Value>,
    purchase_orders: Vec<Value>,
    payments: Vec<Value>,
    idempotency: HashMap<String, (String, u16, Value)>,
    window_start: Option<Instant>,
    window_calls: u32,
    day_calls: u32,
    seen: Vec<SeenRequest>,
    inject: Vec<u16>,
    next_id: u64,
    /// Writes to answer before the fake stops answering (see `stall_after`).
    stall_after: Option<usize>,
    writes_done: usize,
}

struct Shared {
    settings: Mutex<XeroSettings>,
    org: Mutex<Org>,
}

/// A running fake Xero.
pub struct FakeXero {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeXero {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeXero {
    /// Starts the fake on a free loopback port, serving https with a
    /// certificate of `ca` when given (as `api.xero.com`).
    pub async fn start(
        settings: XeroSettings,
        ca: Option<&crate::tls::TestCa>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            settings: Mutex::new(settings),
            org: Mutex::new(Org::default()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .fallback(any(handle))
            .with_state(shared.clone());
        let task = match ca {
            Some(ca) => ca.serve(listener, app),
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
        };
        Ok(Self { addr, shared, task })
    }

    fn org(&self) -> std::sync::MutexGuard<'_, Org> {
        self.shared.org.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the rate limit: `calls` per `window`.
    pub fn set_rate_limit(&self, calls: u32, window: Duration) {
        let mut s = self.shared.settings.lock().unwrap();
        s.calls_per_window = calls;
        s.window = window;
    }

    /// The next calls to the Accounting API answer these statuses (e.g.
    /// 503) instead of being served, in order.
    pub fn inject(&self, statuses: &[u16]) {
        self.org().inject.extend(statuses.iter().rev());
    }

    /// After `writes` more successful writes, the next one is applied but
    /// its answer never comes: the connection hangs, as when a run is
    /// killed after Xero acted and before the connector heard.
    pub fn stall_after(&self, writes: usize) {
        let mut org = self.org();
        org.stall_after = Some(org.writes_done + writes);
    }

    /// Writes applied so far (PUT/POST answered 200, replays excluded).
    pub fn writes_done(&self) -> usize {
        self.org().writes_done
    }

    /// Adds an item as if created in Xero (e.g. with a cost price).
    pub fn add_item(&self, code: &str, cost: f64) {
        let mut org = self.org();
        let id = next_id(&mut org, 1);
        org.items.push(json!({
            "ItemID": id, "Code": code, "Name": code, "IsSold": true, "IsPurchased": true,
            "PurchaseDetails": {"UnitPrice": cost, "AccountCode": "300"},
            "SalesDetails": {"AccountCode": "200"},
        }));
    }

    /// Marks a document AUTHORISED, as a bookkeeper would in Xero.
    pub fn authorise_credit_note(&self, number: &str) {
        let mut org = self.org();
        for c in &mut org.credit_notes {
            if c["CreditNoteNumber"] == number {
                c["Status"] = json!("AUTHORISED");
            }
        }
    }

    /// Sales and purchase invoices, as stored.
    pub fn invoices(&self) -> Vec<Value> {
        self.org().invoices.clone()
    }
    /// Credit notes.
    pub fn credit_notes(&self) -> Vec<Value> {
        self.org().credit_notes.clone()
    }
    /// Purchase orders.
    pub fn purchase_orders(&self) -> Vec<Value> {
        self.org().purchase_orders.clone()
    }
    /// Contacts.
    pub fn contacts(&self) -> Vec<Value> {
        self.org().contacts.clone()
    }
    /// Items.
    pub fn items(&self) -> Vec<Value> {
        self.org().items.clone()
    }
    /// Payments (on invoices and credit notes).
    pub fn payments(&self) -> Vec<Value> {
        self.org().payments.clone()
    }
    /// When each request to the Accounting API (not `/connections`) arrived.
    pub fn arrivals(&self) -> Vec<Instant> {
        let org = self.org();
        org.seen
            .iter()
            .filter(|r| r.path.starts_with("/api.xro/"))
            .map(|r| r.at)
            .collect()
    }

    /// Every request answered, in order.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.org().seen.clone()
    }
}

fn next_id(org: &mut Org, kind: u32) -> String {
    org.next_id += 1;
    format!("{kind:08x}-0000-4000-8000-{:012x}", org.next_id)
}

fn ms_date() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("/Date({ms}+0000)/")
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"Type": null, "Title": title, "Status": status.as_u16(), "Detail": detail})
            .to_string(),
    )
        .into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, stall) = respond(&shared, method, uri, headers, body);
    if stall {
        std::future::pending::<()>().await;
    }
    response
}

/// The answer, and whether to withhold it (`FakeXero::stall_after`).
fn respond(
    shared: &Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (Response, bool) {
    let settings = shared.settings.lock().unwrap().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let key = header("idempotency-key");
    let mut org = shared.org.lock().unwrap_or_else(|p| p.into_inner());
    let record = |org: &mut Org, status: u16, replayed: bool| {
        org.seen.push(SeenRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            idempotency_key: key.clone(),
            status,
            at: Instant::now(),
            replayed,
            body: body.clone(),
        })
    };

    let token = header("authorization")
        .and_then(|a| a.strip_prefix("Bearer ").map(str::to_string))
        .unwrap_or_default();
    if token.is_empty() || !(settings.token_ok)(&token) {
        record(&mut org, 401, false);
        let mut r = problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "TokenExpired: token expired or not valid",
        );
        r.headers_mut().insert(
            "www-authenticate",
            "Bearer error=\"invalid_token\"".parse().unwrap(),
        );
        return (r, false);
    }
    if path.eq_ignore_ascii_case("/connections") && method == Method::GET {
        record(&mut org, 200, false);
        let list = json!([{
            "id": "b1c2d3e4-0000-4000-8000-000000000001",
            "tenantId": settings.tenant_id,
            "tenantType": "ORGANISATION",
            "tenantName": "Airlock Demo Ltd",
        }]);
        return (axum::Json(list).into_response(), false);
    }
    let Some(resource) = path.strip_prefix("/api.xro/2.0/") else {
        record(&mut org, 404, false);
        return (
            problem(
                StatusCode::NOT_FOUND,
                "NotFound",
                "The resource you're looking for cannot be found",
            ),
            false,
        );
    };
    if header("xero-tenant-id").as_deref() != Some(settings.tenant_id.as_str()) {
        record(&mut org, 403, false);
        return (
            problem(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "AuthenticationUnsuccessful",
            ),
            false,
        );
    }

    // Rate limits: a fixed window per tenant, and the day's allowance.
    let now = Instant::now();
    let start = *org.window_start.get_or_insert(now);
    if now.duration_since(start) >= settings.window {
        org.window_start = Some(now);
        org.window_calls = 0;
    }
    let window_left = settings
        .window
        .saturating_sub(now.duration_since(org.window_start.unwrap_or(now)));
    if org.window_calls >= settings.calls_per_window || org.day_calls >= settings.calls_per_day {
        let day = org.day_calls >= settings.calls_per_day;
        record(&mut org, 429, false);
        let retry = if day {
            86_400
        } else {
            window_left.as_secs_f64().ceil().max(1.0) as u64
        };
        let which = if day { "day" } else { "minute" };
        let headers = [
            ("retry-after", retry.to_string()),
            ("x-rate-limit-problem", which.to_string()),
        ];
        return (
            (StatusCode::TOO_MANY_REQUESTS, headers, "").into_response(),
            false,
        );
    }
    org.window_calls += 1;
    org.day_calls += 1;
    let limits = [
        (
            "x-minlimit-remaining",
            (settings.calls_per_window - org.window_calls).to_string(),
        ),
        (
            "x-daylimit-remaining",
            (settings.calls_per_day - org.day_calls).to_string(),
        ),
    ];
    if let Some(status) = org.inject.pop() {
        record(&mut org, status, false);
        return (
            (StatusCode::from_u16(status).unwrap(), limits, "").into_response(),
            false,
        );
    }

    let writes = method == Method::PUT || method == Method::POST;
    let fingerprint = format!(
        "{method} {path}?{query}\n{}",
        String::from_utf8_lossy(&body)
    );
    if writes && let Some(key) = &key {
        if key.len() > 128 {
            record(&mut org, 400, false);
            return (validation(vec![json!({"ValidationErrors": [{"Message": "Idempotency-Key is longer than 128 characters"}]})]).into_response(), false);
        }
        if let Some((seen, status, answer)) = org.idempotency.get(key).cloned() {
            if seen == fingerprint {
                record(&mut org, status, true);
                return (
                    (
                        StatusCode::from_u16(status).unwrap(),
                        limits,
                        axum::Json(answer),
                    )
                        .into_response(),
                    false,
                );
            }
            record(&mut org, 400, false);
            return (validation(vec![json!({"ValidationErrors": [{"Message": "This Idempotency-Key was used with a different request"}]})]).into_response(), false);
        }
    }
    let parsed: Value = if writes {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                record(&mut org, 400, false);
                return (
                    (
                        StatusCode::BAD_REQUEST,
                        format!("{{\"Message\":\"invalid JSON: {e}\"}}"),
                    )
                        .into_response(),
                    false,
                );
            }
        }
    } else {
        Value::Null
    };
    let params: HashMap<String, String> = url_params(&query);
    let (status, answer) = serve(&mut org, &method, resource, &params, parsed);
    if writes && let Some(key) = &key {
        org.idempotency
            .insert(key.clone(), (fingerprint, status.as_u16(), answer.clone()));
    }
    record(&mut org, status.as_u16(), false);
    let mut stall = false;
    if writes && status == StatusCode::OK {
        org.writes_done += 1;
        stall = org.stall_after.is_some_and(|n| org.writes_done > n);
    }
    ((status, limits, axum::Json(answer)).into_response(), stall)
}

fn url_params(query: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn validation(elements: Vec<Value>) -> (StatusCode, axum::Json<Value>) {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "ErrorNumber": 10,
            "Type": "ValidationException",
            "Message": "A validation exception occurred",
            "Elements": elements,
        })),
    )
}

fn envelope(collection: &str, docs: Vec<Value>) -> Value {
    json!({
        "Id": "00000000-0000-4000-8000-000000000000",
        "Status": "OK",
        "ProviderName": "Airlock fake Xero",
        "DateTimeUTC": ms_date(),
        collection: docs,
    })
}

fn serve(
    org: &mut Org,
    method: &Method,
    resource: &str,
    params: &HashMap<String, String>,
    body: Value,
) -> (StatusCode, Value) {
    let segments: Vec<&str> = resource.split('/').collect();
    let name = segments[0].to_ascii_lowercase();
    match (method.as_str(), name.as_str(), segments.len()) {
        ("GET", "items", 1) => (StatusCode::OK, envelope("Items", org.items.clone())),
        ("GET", "contacts", 1) => {
            let term = params.get("searchTerm").map(|t| t.to_lowercase());
            let found: Vec<Value> = org
                .contacts
                .iter()
                .filter(|c| match &term {
                    None => true,
                    Some(t) => [
                        "Name",
                        "FirstName",
                        "LastName",
                        "ContactNumber",
                        "EmailAddress",
                    ]
                    .iter()
                    .any(|f| c[*f].as_str().is_some_and(|v| v.to_lowercase().contains(t))),
                })
                .cloned()
                .collect();
            (StatusCode::OK, envelope("Contacts", page(found, params)))
        }
        ("GET", "invoices", 1) => list(&org.invoices, "Invoices", params),
        ("GET", "creditnotes", 1) => list(&org.credit_notes, "CreditNotes", params),
        ("GET", "purchaseorders", 1) => list(&org.purchase_orders, "PurchaseOrders", params),
        ("PUT" | "POST", "contacts", 1) => create(org, body, "Contacts", create_contact),
        ("PUT" | "POST", "items", 1) => create(org, body, "Items", create_item),
        ("PUT", "invoices", 1) => create(org, body, "Invoices", create_invoice),
        ("PUT", "creditnotes", 1) => create(org, body, "CreditNotes", create_credit_note),
        ("PUT", "purchaseorders", 1) => create(org, body, "PurchaseOrders", create_purchase_order),
        ("PUT", "payments", 1) => create(org, body, "Payments", create_payment),
        ("POST", "invoices", 2) => update_invoice(org, segments[1], body),
        _ => (
            StatusCode::NOT_FOUND,
            json!({"Title": "NotFound", "Detail": format!("no {method} /{resource} in this fake")}),
        ),
    }
}

fn page(docs: Vec<Value>, params: &HashMap<String, String>) -> Vec<Value> {
    match params.get("page").and_then(|p| p.parse::<usize>().ok()) {
        Some(p) if p >= 1 => docs.into_iter().skip((p - 1) * 100).take(100).collect(),
        _ => docs,
    }
}

/// Filters by `Statuses` and a `where` of `Field=="text"` / `Field>number`
/// clauses joined by ` AND ` (what the connector uses); anything else is
/// refused as Xero refuses a where it cannot parse.
fn list(docs: &[Value], collection: &str, params: &HashMap<String, String>) -> (StatusCode, Value) {
    let statuses: Option<Vec<&str>> = params.get("Statuses").map(|s| s.split(',').collect());
    let mut clauses = Vec::new();
    if let Some(w) = params.get("where") {
        for clause in w.split(" AND ") {
            let clause = clause.trim();
            if let Some((f, v)) = clause.split_once("==") {
                clauses.push((
                    f.trim().to_string(),
                    "==",
                    v.trim().trim_matches('"').to_string(),
                ));
            } else if let Some((f, v)) = clause.split_once('>') {
                clauses.push((f.trim().to_string(), ">", v.trim().to_string()));
            } else {
                return validation(vec![json!({"ValidationErrors": [{"Message": format!("cannot parse where clause `{clause}`")}]})]).into_inner_pair();
            }
        }
    }
    let found: Vec<Value> = docs
        .iter()
        .filter(|d| {
            statuses
                .as_ref()
                .is_none_or(|s| s.contains(&d["Status"].as_str().unwrap_or("")))
        })
        .filter(|d| {
            clauses.iter().all(|(f, op, v)| match *op {
                "==" => d[f.as_str()].as_str() == Some(v.as_str()),
                _ => d[f.as_str()].as_f64().unwrap_or(0.0) > v.parse::<f64>().unwrap_or(0.0),
            })
        })
        .cloned()
        .collect();
    (StatusCode::OK, envelope(collection, page(found, params)))
}

trait Pair {
    fn into_inner_pair(self) -> (StatusCode, Value);
}
impl Pair for (StatusCode, axum::Json<Value>) {
    fn into_inner_pair(self) -> (StatusCode, Value) {
        (self.0, self.1.0)
    }
}

type Creator = fn(&mut Org, Value) -> Result<Value, String>;

/// Creates each element; any invalid one makes the answer a summarised 400
/// (the valid ones are still created, as Xero does).
fn create(org: &mut Org, body: Value, collection: &str, creator: Creator) -> (StatusCode, Value) {
    let elements = body[collection].as_array().cloned().unwrap_or_default();
    if elements.is_empty() {
        return validation(vec![
            json!({"ValidationErrors": [{"Message": format!("No {collection} were provided")}]}),
        ])
        .into_inner_pair();
    }
    let mut created = Vec::new();
    let mut errors = Vec::new();
    for element in elements {
        match creator(org, element.clone()) {
            Ok(doc) => created.push(doc),
            Err(message) => {
                let mut e = element;
                e["ValidationErrors"] = json!([{ "Message": message }]);
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        (StatusCode::OK, envelope(collection, created))
    } else {
        validation(errors).into_inner_pair()
    }
}

fn create_contact(org: &mut Org, mut c: Value) -> Result<Value, String> {
    let name = c["Name"].as_str().unwrap_or("").trim().to_string();
    if name.is_empty() {
        return Err("The contact name must be specified.".into());
    }
    if name.chars().count() > 255 {
        return Err("The contact name must not exceed 255 characters.".into());
    }
    if org.contacts.iter().any(|x| {
        x["Name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(&name))
    }) {
        return Err(format!(
            "The contact name {name} is already assigned to another contact. The contact name must be unique across all active contacts."
        ));
    }
    c["ContactID"] = json!(next_id(org, 2));
    c["ContactStatus"] = json!("ACTIVE");
    org.contacts.push(c.clone());
    Ok(c)
}

fn create_item(org: &mut Org, mut item: Value) -> Result<Value, String> {
    let code = item["Code"].as_str().unwrap_or("").to_string();
    if code.is_empty() || code.chars().count() > 30 {
        return Err("Item Code must be specified and at most 30 characters.".into());
    }
    if org.items.iter().any(|i| i["Code"] == code) {
        return Err(format!(
            "Item code '{code}' already exists. Item Code must be unique."
        ));
    }
    if item["Name"]
        .as_str()
        .is_some_and(|n| n.chars().count() > 50)
    {
        return Err("Item Name must not exceed 50 characters.".into());
    }
    item["ItemID"] = json!(next_id(org, 3));
    org.items.push(item.clone());
    Ok(item)
}

/// Checks the contact and lines of a document and sets its totals.
fn totals(org: &Org, doc: &mut Value, status: &str) -> Result<f64, String> {
    let contact = doc["Contact"]["ContactID"].as_str().unwrap_or("");
    if !org.contacts.iter().any(|c| c["ContactID"] == contact) {
        return Err("A Contact must be specified for this type of transaction".into());
    }
    if !["DRAFT", "SUBMITTED", "AUTHORISED"].contains(&status) {
        return Err(format!("Status {status} is not valid for a new document"));
    }
    let lines = doc["LineItems"].as_array_mut();
    let lines = match lines {
        Some(l) if !l.is_empty() => l,
        _ if status == "DRAFT" => return Ok(0.0),
        _ => return Err("At least one line item must be specified".into()),
    };
    let mut total = 0.0;
    for line in lines.iter_mut() {
        if line["Description"].as_str().unwrap_or("").is_empty() && line["ItemCode"].is_null() {
            return Err("Description is required when an item is not specified".into());
        }
        if let Some(code) = line["ItemCode"].as_str()
            && !org.items.iter().any(|i| i["Code"] == code)
        {
            return Err(format!("Item code '{code}' is not valid"));
        }
        if status == "AUTHORISED" && line["AccountCode"].as_str().unwrap_or("").is_empty() {
            return Err("Account code must be specified".into());
        }
        let qty = line["Quantity"].as_f64().unwrap_or(1.0);
        let unit = line["UnitAmount"].as_f64().unwrap_or(0.0);
        let discount = line["DiscountAmount"].as_f64().unwrap_or(0.0);
        let rate = line["DiscountRate"].as_f64().unwrap_or(0.0);
        let amount = round2(qty * unit * (1.0 - rate / 100.0) - discount);
        line["LineAmount"] = json!(amount);
        total += amount;
    }
    let total = round2(total);
    doc["SubTotal"] = json!(total);
    doc["TotalTax"] = json!(0.0);
    doc["Total"] = json!(total);
    Ok(total)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn create_invoice(org: &mut Org, mut inv: Value) -> Result<Value, String> {
    let kind = inv["Type"].as_str().unwrap_or("").to_string();
    if kind != "ACCREC" && kind != "ACCPAY" {
        return Err("Invoice Type must be specified (ACCREC or ACCPAY)".into());
    }
    let status = inv["Status"].as_str().unwrap_or("DRAFT").to_string();
    let total = totals(org, &mut inv, &status)?;
    let number = inv["InvoiceNumber"].as_str().unwrap_or("").to_string();
    if kind == "ACCREC"
        && !number.is_empty()
        && org
            .invoices
            .iter()
            .any(|i| i["Type"] == "ACCREC" && i["InvoiceNumber"] == number)
    {
        return Err("Invoice # must be unique.".into());
    }
    inv["InvoiceID"] = json!(next_id(org, 4));
    inv["Status"] = json!(status);
    inv["AmountPaid"] = json!(0.0);
    inv["AmountDue"] = json!(total);
    inv["UpdatedDateUTC"] = json!(ms_date());
    org.invoices.push(inv.clone());
    Ok(inv)
}

fn update_invoice(org: &mut Org, id: &str, body: Value) -> (StatusCode, Value) {
    let change = body["Invoices"][0].clone();
    let Some(index) = org.invoices.iter().position(|i| i["InvoiceID"] == id) else {
        return (
            StatusCode::NOT_FOUND,
            json!({"Title": "NotFound", "Detail": "Invoice not found"}),
        );
    };
    let current = org.invoices[index]["Status"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if let Some(status) = change["Status"].as_str() {
        let allowed = matches!(
            (current.as_str(), status),
            ("DRAFT", "SUBMITTED" | "AUTHORISED" | "DRAFT")
                | ("SUBMITTED", "AUTHORISED")
                | ("AUTHORISED", "AUTHORISED")
        );
        if !allowed {
            let mut e = change.clone();
            e["ValidationErrors"] = json!([{ "Message": format!("Cannot change the status of a {current} invoice to {status}") }]);
            return validation(vec![e]).into_inner_pair();
        }
        org.invoices[index]["Status"] = json!(status);
    }
    org.invoices[index]["UpdatedDateUTC"] = json!(ms_date());
    (
        StatusCode::OK,
        envelope("Invoices", vec![org.invoices[index].clone()]),
    )
}

fn create_credit_note(org: &mut Org, mut note: Value) -> Result<Value, String> {
    if note["Type"] != "ACCRECCREDIT" && note["Type"] != "ACCPAYCREDIT" {
        return Err("CreditNote Type must be ACCRECCREDIT or ACCPAYCREDIT".into());
    }
    let status = note["Status"].as_str().unwrap_or("DRAFT").to_string();
    let total = totals(org, &mut note, &status)?;
    note["CreditNoteID"] = json!(next_id(org, 5));
    note["Status"] = json!(status);
    note["RemainingCredit"] = json!(total);
    org.credit_notes.push(note.clone());
    Ok(note)
}

fn create_purchase_order(org: &mut Org, mut po: Value) -> Result<Value, String> {
    let status = po["Status"].as_str().unwrap_or("DRAFT").to_string();
    totals(org, &mut po, &status)?;
    po["PurchaseOrderID"] = json!(next_id(org, 6));
    org.purchase_orders.push(po.clone());
    Ok(po)
}

/// The bank accounts of the fake organisation's chart.
const BANK_ACCOUNTS: [&str; 2] = ["090", "091"];

fn create_payment(org: &mut Org, mut p: Value) -> Result<Value, String> {
    let code = p["Account"]["Code"].as_str().unwrap_or("");
    if !BANK_ACCOUNTS.contains(&code) {
        return Err(format!(
            "Account code '{code}' is not a bank account: payments must be made to a bank account"
        ));
    }
    if p["Date"].as_str().unwrap_or("").is_empty() {
        return Err("Payment Date must be specified".into());
    }
    let amount = p["Amount"].as_f64().unwrap_or(0.0);
    if amount <= 0.0 {
        return Err("Payment amount must be greater than zero".into());
    }
    let (docs, id_field, due_field, id) = if let Some(id) = p["Invoice"]["InvoiceID"].as_str() {
        (&mut org.invoices, "InvoiceID", "AmountDue", id.to_string())
    } else if let Some(id) = p["CreditNote"]["CreditNoteID"].as_str() {
        (
            &mut org.credit_notes,
            "CreditNoteID",
            "RemainingCredit",
            id.to_string(),
        )
    } else {
        return Err("An Invoice or CreditNote must be specified".into());
    };
    let Some(doc) = docs.iter_mut().find(|d| d[id_field] == id) else {
        return Err(format!("{id_field} {id} could not be found"));
    };
    if doc["Status"] != "AUTHORISED" {
        return Err("Payments can only be made against Authorised documents".into());
    }
    let due = doc[due_field].as_f64().unwrap_or(0.0);
    if amount > due + 0.001 {
        return Err("Payment amount exceeds the amount outstanding on this document".into());
    }
    let left = round2(due - amount);
    doc[due_field] = json!(left);
    if due_field == "AmountDue" {
        doc["AmountPaid"] = json!(round2(doc["AmountPaid"].as_f64().unwrap_or(0.0) + amount));
    }
    if left <= 0.0 {
        doc["Status"] = json!("PAID");
    }
    p["PaymentID"] = json!(next_id(org, 7));
    p["PaymentType"] = json!(if id_field == "InvoiceID" {
        "ACCRECPAYMENT"
    } else {
        "ARCREDITPAYMENT"
    });
    p["Status"] = json!("AUTHORISED");
    org.payments.push(p.clone());
    Ok(p)
}
