//! A fake third-party API on loopback for the egress tests: plain answers,
//! redirects to wherever a test asks, and an echo of what arrived.
//!
//! Routes:
//! - `GET|POST /ok` → 200 `ok`
//! - `/redirect?to=URL&status=N` → N (default 302) with `Location: URL`
//! - `/loop` → 302 to `/loop`
//! - `/echo` → 200 with a JSON of the method, `authorization` header presence,
//!   the header names and body length
//! - `/big?bytes=N` → 200 with N bytes
//! - `/slow?ms=N` → 200 after N milliseconds
//!
//! Every request's path and header names are recorded ([`FakeApi::seen`]).
//!
//! [`Witness`] is a second, bare server: it records the address each
//! connection arrived at, the `Host` header and the request target, for the
//! egress oracle to compare with what the policy decided.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
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

/// One request as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The path.
    pub path: String,
    /// The header names, lower-case.
    pub headers: Vec<String>,
}

/// What the server records, shared by its handlers.
#[derive(Default)]
struct Record {
    seen: Mutex<Vec<Seen>>,
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
            .layer(axum::middleware::from_fn_with_state(hits.clone(), record))
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

    /// Every request that arrived (any path), in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.hits
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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

async fn record(State(hits): State<Hits>, request: Request, next: Next) -> Response {
    let seen = Seen {
        path: request.uri().path().to_string(),
        headers: request
            .headers()
            .keys()
            .map(|n| n.as_str().to_string())
            .collect(),
    };
    hits.seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(seen);
    next.run(request).await
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
        "headers": headers.keys().map(|n| n.as_str()).collect::<Vec<_>>(),
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

/// A request as the [`Witness`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    /// The address the connection arrived at (which of the witness's).
    pub local: SocketAddr,
    /// The `Host` header, if any.
    pub host: Option<String>,
    /// The request target (path and query).
    pub target: String,
}

/// A bare HTTP/1.1 server listening on the same port of 127.0.0.1 and
/// 127.0.0.2, answering `200 ok` to everything and recording where each
/// request arrived and what it named.
pub struct Witness {
    /// The port on both addresses.
    pub port: u16,
    seen: Arc<Mutex<Vec<Witnessed>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Witness {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Witness {
    /// Starts on a port free on both loopback addresses.
    pub async fn start() -> std::io::Result<Self> {
        let mut last_error = None;
        for _ in 0..20 {
            let first = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let port = first.local_addr()?.port();
            match tokio::net::TcpListener::bind(("127.0.0.2", port)).await {
                Ok(second) => {
                    let seen: Arc<Mutex<Vec<Witnessed>>> = Arc::default();
                    let tasks = [first, second]
                        .into_iter()
                        .map(|l| tokio::spawn(witness_loop(l, seen.clone())))
                        .collect();
                    return Ok(Self { port, seen, tasks });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("tried at least once"))
    }

    /// Takes the requests seen since the last call.
    pub fn take(&self) -> Vec<Witnessed> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

async fn witness_loop(listener: tokio::net::TcpListener, seen: Arc<Mutex<Vec<Witnessed>>>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(witness_one(stream, seen.clone()));
    }
}

/// Reads one request head, records it, answers `200 ok` and closes.
async fn witness_one(mut stream: tokio::net::TcpStream, seen: Arc<Mutex<Vec<Witnessed>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_default()
        .to_string();
    let host = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim().to_string());
    seen.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Witnessed {
            local,
            host,
            target,
        });
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        .await;
    let _ = stream.shutdown().await;
}
