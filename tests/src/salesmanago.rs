//! A fake of SALESmanago's legacy API (`https://app2.salesmanago.pl/api/…`)
//! on loopback, written from `../shared/THIRD-PARTY-APIS.md` §7, checking
//! requests the way the real service does:
//!
//! - every call is `POST` with a JSON body (`Content-Type: application/json`),
//!   else 405 / 415;
//! - the body authenticates: `clientId` of the account, `owner` its user's
//!   email, `requestTime` within ten minutes of now (milliseconds, or the
//!   seconds the official SDKs send), `sha` = SHA1(`apiKey` + `clientId` +
//!   API secret) in lower-case hex. Anything else gets HTTP 200 with
//!   `{"success": false, "message": ["Not authenticated"]}`, as SALESmanago
//!   answers business errors;
//! - `contact/upsert` and `contact/batchupsert` (≤ 100 entries) upsert by
//!   email: tags added, opt-in / opt-out forced by the flags;
//!   `contact/hasContact`; `v2/contact/addContactExtEvent` adds an event and
//!   returns its `eventId` (SALESmanago does not deduplicate events: two
//!   adds are two events, which is what the tests look for).
//!
//! Tests read the account ([`FakeSalesmanago::contacts`],
//! [`FakeSalesmanago::events`]) and the calls it took.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use sha1::{Digest as _, Sha1};

/// The account the fake holds.
#[derive(Debug, Clone)]
pub struct SalesmanagoAccount {
    /// Its client id.
    pub client_id: String,
    /// Its API secret.
    pub api_secret: String,
    /// Its user's email (the contacts' owner).
    pub owner: String,
}

/// A contact as the fake keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    /// Its name.
    pub name: String,
    /// Its tags.
    pub tags: BTreeSet<String>,
    /// Opted in to email (true), out (false), or never said.
    pub opted_in: Option<bool>,
    /// Its `externalId`.
    pub external_id: String,
}

#[derive(Default)]
struct Data {
    contacts: BTreeMap<String, Contact>,
    events: Vec<Value>,
    calls: Vec<String>,
    inject: Vec<u16>,
    stall_events_after: Option<usize>,
}

struct Shared {
    account: SalesmanagoAccount,
    data: Mutex<Data>,
}

/// A running fake SALESmanago.
pub struct FakeSalesmanago {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSalesmanago {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSalesmanago {
    /// Starts on a free loopback port, over TLS with `ca`'s certificate.
    pub async fn start(
        account: SalesmanagoAccount,
        ca: &crate::tls::TestCa,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            account,
            data: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .fallback(any(handle))
            .with_state(shared.clone());
        let task = ca.serve(listener, app);
        Ok(Self { addr, shared, task })
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.shared.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The contacts, by email (lower case).
    pub fn contacts(&self) -> BTreeMap<String, Contact> {
        self.data().contacts.clone()
    }

    /// The events added, in order (the `contactEvent` bodies, with `email`).
    pub fn events(&self) -> Vec<Value> {
        self.data().events.clone()
    }

    /// The paths of the calls it answered, in order (authenticated or not).
    pub fn calls(&self) -> Vec<String> {
        self.data().calls.clone()
    }

    /// The next calls answer these HTTP statuses instead, in order.
    pub fn inject(&self, statuses: &[u16]) {
        self.data().inject.extend(statuses.iter().rev());
    }

    /// After `events` more events, the next event request hangs without
    /// being applied (as when a run is killed while SALESmanago is slow).
    pub fn stall_events_after(&self, events: usize) {
        let mut data = self.data();
        data.stall_events_after = Some(data.events.len() + events);
    }
}

fn fail(message: &str) -> Response {
    axum::Json(json!({ "success": false, "message": [message] })).into_response()
}

fn ok(mut extra: Value) -> Response {
    extra["success"] = json!(true);
    extra["message"] = json!([]);
    axum::Json(extra).into_response()
}

/// Whether `body` authenticates as `account` at `now_ms`.
fn authenticated(body: &Value, account: &SalesmanagoAccount, now_ms: i64) -> bool {
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    let time = body.get("requestTime").and_then(Value::as_i64).unwrap_or(0);
    let time_ms = if time < 100_000_000_000 {
        time * 1000
    } else {
        time
    };
    let expected = hex::encode(Sha1::digest(
        format!(
            "{}{}{}",
            text("apiKey"),
            account.client_id,
            account.api_secret
        )
        .as_bytes(),
    ));
    !text("apiKey").is_empty()
        && text("clientId") == account.client_id
        && text("owner") == account.owner
        && (now_ms - time_ms).abs() <= 600_000
        && text("sha") == expected
}

fn upsert(data: &mut Data, detail: &Value) -> Option<String> {
    let email = detail["contact"]["email"].as_str()?.trim().to_lowercase();
    if !email.contains('@') {
        return None;
    }
    let contact = data.contacts.entry(email.clone()).or_default();
    if let Some(name) = detail["contact"]["name"].as_str().filter(|n| !n.is_empty()) {
        contact.name = name.to_string();
    }
    if let Some(id) = detail["contact"]["externalId"]
        .as_str()
        .filter(|n| !n.is_empty())
    {
        contact.external_id = id.to_string();
    }
    for tag in detail["tags"].as_array().into_iter().flatten() {
        if let Some(tag) = tag.as_str() {
            contact.tags.insert(tag.to_string());
        }
    }
    if detail["forceOptIn"] == json!(true) {
        contact.opted_in = Some(true);
    } else if detail["forceOptOut"] == json!(true) {
        contact.opted_in = Some(false);
    }
    Some(email)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let stall = {
        let mut data = shared.data.lock().unwrap_or_else(|p| p.into_inner());
        data.calls.push(path.clone());
        if let Some(status) = data.inject.pop() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return status.into_response();
        }
        path == "/api/v2/contact/addContactExtEvent"
            && data
                .stall_events_after
                .is_some_and(|n| data.events.len() >= n)
    };
    if stall {
        std::future::pending::<()>().await;
    }
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed JSON").into_response();
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    if !authenticated(&request, &shared.account, now_ms) {
        return fail("Not authenticated");
    }
    let mut data = shared.data.lock().unwrap_or_else(|p| p.into_inner());
    match path.as_str() {
        "/api/contact/hasContact" => {
            let email = request["email"].as_str().unwrap_or_default().to_lowercase();
            ok(json!({ "result": data.contacts.contains_key(&email) }))
        }
        "/api/contact/upsert" => match upsert(&mut data, &request) {
            Some(email) => ok(json!({ "contactId": format!("c-{email}") })),
            None => fail("Invalid email"),
        },
        "/api/contact/batchupsert" => {
            let Some(details) = request["upsertDetails"].as_array() else {
                return fail("upsertDetails is required");
            };
            if details.len() > 100 {
                return fail("Too many contacts in one request (at most 100)");
            }
            let mut ids = serde_json::Map::new();
            for detail in details {
                match upsert(&mut data, detail) {
                    Some(email) => {
                        ids.insert(email.clone(), json!(format!("c-{email}")));
                    }
                    None => return fail("Invalid email"),
                }
            }
            ok(json!({ "contactIds": ids }))
        }
        "/api/v2/contact/addContactExtEvent" => {
            let email = request["email"].as_str().unwrap_or_default().to_lowercase();
            if !data.contacts.contains_key(&email) {
                return fail("Contact not found");
            }
            let mut event = request["contactEvent"].clone();
            if event["contactExtEventType"].as_str().is_none() || event["date"].as_i64().is_none() {
                return fail("contactEvent needs contactExtEventType and date");
            }
            event["email"] = json!(email);
            data.events.push(event);
            ok(json!({ "eventId": format!("ev-{}", data.events.len()) }))
        }
        _ => (StatusCode::NOT_FOUND, "no such API method").into_response(),
    }
}
