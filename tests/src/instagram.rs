//! A fake of the Instagram API with Instagram Login (`graph.instagram.com`)
//! on loopback over TLS, written from `../shared/THIRD-PARTY-APIS.md` §6:
//!
//! - every call needs a live long-lived token in `access_token` (query) or
//!   `Authorization: Bearer`; an unknown, expired or revoked one gets 400
//!   with Graph's error body, code 190 (`OAuthException`);
//! - `GET /refresh_access_token?grant_type=ig_refresh_token`: the token
//!   must be at least 24 hours old and unexpired; the answer is a new token
//!   valid 60 days (`{access_token, token_type: "bearer", expires_in}`).
//!   Refusing a token under 24 h with code 100 is this fake's choice (the
//!   notes do not say which code Instagram uses);
//! - `GET /{version}/me` and `/{version}/me/media?fields=…&limit=…&after=…`:
//!   `fields` required, `limit` at most 100 (code 100 otherwise), cursor
//!   paging with `paging.cursors` and a `next` URL that carries the token,
//!   as Graph's do;
//! - faults on demand: throttling (codes 4, 17, 32, 613), revoked tokens,
//!   media requests that never answer (a run killed mid-read).
//!
//! Every request is recorded with the token it used.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

/// The name the fake answers for.
pub const NAME: &str = "graph.instagram.com";
const DAY: i64 = 86_400;

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The path.
    pub path: String,
    /// The token it carried.
    pub token: String,
    /// The status answered.
    pub status: u16,
}

#[derive(Default)]
struct Account {
    username: String,
    tokens: HashMap<String, (i64, i64)>,
    media: Vec<Value>,
    seen: Vec<Seen>,
    refreshes: u32,
    issued: Vec<String>,
    throttle: Vec<u32>,
    hold_media: bool,
    seq: u64,
}

/// A running fake Instagram.
pub struct FakeInstagram {
    /// Where it listens.
    pub addr: SocketAddr,
    account: Arc<Mutex<Account>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeInstagram {
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

impl FakeInstagram {
    /// Serves https for [`NAME`] with a certificate of `ca`.
    pub async fn start(username: &str, ca: &crate::tls::TestCa) -> std::io::Result<Self> {
        let account = Arc::new(Mutex::new(Account {
            username: username.into(),
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

    /// A long-lived token issued `age_secs` ago (valid 60 days from then).
    pub fn add_token(&self, token: &str, age_secs: i64) {
        let issued = now() - age_secs;
        let mut a = self.account();
        a.tokens.insert(token.into(), (issued, issued + 60 * DAY));
        a.issued.push(token.into());
    }

    /// The account's media, newest first.
    pub fn set_media(&self, media: Vec<Value>) {
        self.account().media = media;
    }

    /// The next `n` calls fail with Graph throttling error `code`.
    pub fn throttle(&self, code: u32, n: usize) {
        self.account().throttle.extend(std::iter::repeat_n(code, n));
    }

    /// Every token stops working (190).
    pub fn revoke_all(&self) {
        self.account().tokens.clear();
    }

    /// Media requests are held (never answered) until released.
    pub fn hold_media(&self, hold: bool) {
        self.account().hold_media = hold;
    }

    /// Tokens given by refresh.
    pub fn refreshes(&self) -> u32 {
        self.account().refreshes
    }

    /// Every token this fake knows of or issued.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.account().issued.clone()
    }

    /// Every request answered (held ones too, status 0), in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.account().seen.clone()
    }
}

fn graph_error(code: u32, subcode: Option<u32>, message: &str) -> Response {
    let mut error = json!({ "message": message, "type": "OAuthException", "code": code,
        "fbtrace_id": "AbCdEfGh123" });
    if let Some(s) = subcode {
        error["error_subcode"] = json!(s);
    }
    let status = if code == 190 {
        StatusCode::BAD_REQUEST
    } else if [4, 17, 32, 613].contains(&code) {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::BAD_REQUEST
    };
    (
        status,
        [("content-type", "application/json")],
        json!({ "error": error }).to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
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
) -> Response {
    let (response, hold) = {
        let mut a = lock(&account);
        respond(&mut a, &method, &uri, &headers)
    };
    if hold {
        std::future::pending::<()>().await;
    }
    response
}

fn respond(a: &mut Account, method: &Method, uri: &Uri, headers: &HeaderMap) -> (Response, bool) {
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let token = q.get("access_token").cloned().unwrap_or_else(|| {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .to_string()
    });
    let path = uri.path().to_string();
    let hold = a.hold_media && path.ends_with("/me/media");
    let response = if hold {
        (StatusCode::GATEWAY_TIMEOUT).into_response()
    } else {
        answer(a, method, &path, &q, &token)
    };
    a.seen.push(Seen {
        path,
        token,
        status: if hold { 0 } else { response.status().as_u16() },
    });
    (response, hold)
}

fn answer(
    a: &mut Account,
    method: &Method,
    path: &str,
    q: &HashMap<String, String>,
    token: &str,
) -> Response {
    if method != Method::GET {
        return graph_error(100, None, "Unsupported request - method type");
    }
    let Some(&(issued, expires)) = a.tokens.get(token) else {
        return graph_error(
            190,
            Some(463),
            "Error validating access token: Session has expired or the token is invalid.",
        );
    };
    if expires <= now() {
        return graph_error(
            190,
            Some(463),
            "Error validating access token: Session has expired.",
        );
    }
    if let Some(code) = a.throttle.pop() {
        return graph_error(code, None, "Application request limit reached");
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["refresh_access_token"] => {
            if q.get("grant_type").map(String::as_str) != Some("ig_refresh_token") {
                return graph_error(100, None, "Invalid parameter: grant_type");
            }
            if now() - issued < DAY {
                return graph_error(
                    100,
                    None,
                    "The access token must be at least 24 hours old to be refreshed.",
                );
            }
            a.seq += 1;
            let new = format!(
                "IGAAR{:04}x{:016x}",
                a.seq,
                now() as u64 ^ 0x5f3a_9c1b_77d2_0e41
            );
            a.tokens.insert(new.clone(), (now(), now() + 60 * DAY));
            a.issued.push(new.clone());
            a.refreshes += 1;
            ok(json!({ "access_token": new, "token_type": "bearer", "expires_in": 60 * DAY }))
        }
        [version, "me"] if version.starts_with('v') => {
            ok(json!({ "id": "17841400000000001", "username": a.username }))
        }
        [version, "me", "media"] if version.starts_with('v') => media_page(a, version, q, token),
        _ => graph_error(100, Some(33), "Unsupported get request."),
    }
}

fn media_page(a: &Account, version: &str, q: &HashMap<String, String>, token: &str) -> Response {
    let Some(fields) = q.get("fields") else {
        return graph_error(100, None, "The parameter fields is required");
    };
    let fields: Vec<&str> = fields.split(',').collect();
    let limit: usize = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 25,
        Some(Ok(l)) if (1..=100).contains(&l) => l,
        _ => return graph_error(100, None, "Invalid parameter: limit must be 1 to 100"),
    };
    let start: usize = match q.get("after") {
        None => 0,
        Some(c) => match c.strip_prefix("cur-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return graph_error(100, None, "Invalid cursor"),
        },
    };
    let page: Vec<Value> = a
        .media
        .iter()
        .skip(start)
        .take(limit)
        .map(|m| {
            let mut out = serde_json::Map::new();
            for f in &fields {
                if let Some(v) = m.get(*f) {
                    out.insert((*f).to_string(), v.clone());
                }
            }
            if fields.contains(&"username") {
                out.insert("username".into(), json!(a.username));
            }
            Value::Object(out)
        })
        .collect();
    let end = start + page.len();
    let mut body = json!({ "data": page, "paging": { "cursors": {
        "before": format!("cur-{start}"), "after": format!("cur-{end}") } } });
    if end < a.media.len() {
        let next: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("fields", &fields.join(","))
            .append_pair("limit", &limit.to_string())
            .append_pair("access_token", token)
            .append_pair("after", &format!("cur-{end}"))
            .finish();
        body["paging"]["next"] = json!(format!("https://{NAME}/{version}/me/media?{next}"));
    }
    ok(body)
}
