//! A fake third-party API on loopback for the egress tests: plain answers,
//! redirects to wherever a test asks, and an echo of what arrived.
//!
//! Routes:
//! - `GET|POST /ok` → 200 `ok`
//! - `/redirect?to=URL&status=N` → N (default 302) with `Location: URL`
//! - `/loop` → 302 to `/loop`
//! - `/echo` → 200 with a JSON of the method, `authorization` header presence and body length
//! - `/big?bytes=N` → 200 with N bytes
//! - `/slow?ms=N` → 200 after N milliseconds

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::json;

/// A running fake API that counts the requests it answered.
pub struct FakeApi {
    /// Where it listens.
    pub addr: SocketAddr,
    hits: Hits,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the server records, shared by its handlers.
#[derive(Default)]
struct Record {
    hits: Mutex<Vec<(String, std::time::Instant)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

type Hits = Arc<Record>;

impl FakeApi {
    /// Starts on `127.0.0.1` on a free port.
    pub async fn start() -> std::io::Result<Self> {
        let hits: Hits = Arc::default();
        let app = Router::new()
            .route("/ok", any(ok))
            .route("/redirect", any(redirect))
            .route("/loop", any(redirect_loop))
            .route("/echo", any(echo))
            .route("/big", any(big))
            .route("/slow", any(slow))
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, hits, task })
    }

    /// The paths requested so far, in order.
    pub fn hits(&self) -> Vec<String> {
        let hits = self.hits.hits.lock().unwrap_or_else(|p| p.into_inner());
        hits.iter().map(|(p, _)| p.clone()).collect()
    }

    /// When each request to `path` arrived, in order.
    pub fn arrivals(&self, path: &str) -> Vec<std::time::Instant> {
        let hits = self.hits.hits.lock().unwrap_or_else(|p| p.into_inner());
        hits.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, t)| *t)
            .collect()
    }

    /// The most `/slow` requests that were being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.hits.max_in_flight.load(Ordering::SeqCst)
    }
}

fn hit(hits: &Hits, path: &str) {
    hits.hits
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((path.to_string(), std::time::Instant::now()));
}

async fn ok(State(hits): State<Hits>) -> &'static str {
    hit(&hits, "/ok");
    "ok"
}

async fn redirect(State(hits): State<Hits>, Query(q): Query<HashMap<String, String>>) -> Response {
    hit(&hits, "/redirect");
    let status = q
        .get("status")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::FOUND);
    let to = q.get("to").cloned().unwrap_or_else(|| "/ok".into());
    (status, [(header::LOCATION, to)]).into_response()
}

async fn redirect_loop(State(hits): State<Hits>) -> Response {
    hit(&hits, "/loop");
    (StatusCode::FOUND, [(header::LOCATION, "/loop")]).into_response()
}

async fn echo(
    State(hits): State<Hits>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Json<serde_json::Value> {
    hit(&hits, "/echo");
    Json(json!({
        "method": method.as_str(),
        "authorization": headers.contains_key(header::AUTHORIZATION),
        "body_bytes": body.len(),
    }))
}

async fn big(State(hits): State<Hits>, Query(q): Query<HashMap<String, String>>) -> Vec<u8> {
    hit(&hits, "/big");
    let n = q.get("bytes").and_then(|s| s.parse().ok()).unwrap_or(0);
    vec![b'x'; n]
}

async fn slow(State(hits): State<Hits>, Query(q): Query<HashMap<String, String>>) -> &'static str {
    hit(&hits, "/slow");
    let now = hits.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    hits.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let ms = q.get("ms").and_then(|s| s.parse().ok()).unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    hits.in_flight.fetch_sub(1, Ordering::SeqCst);
    "slow"
}
