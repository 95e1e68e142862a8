//! `airlock serve`'s HTTP listener (`--listen`): what the outside world may
//! fetch from the host. Each capability that needs a URL adds its routes in
//! a module here:
//! - [`feeds`]: published artifacts at `/feeds/{tenant}/{installation}/{name}`;
//! - [`oauth`]: the OAuth2 authorization-code callback, `/oauth/callback`;
//! - [`hooks`]: inbound webhooks at
//!   `/hooks/{tenant}/{installation}/{webhook}/{secret}`;
//! - [`api`]: the admin HTTP API under `/api`, for admin tokens only;
//! - [`console`]: the web console under `/console` (login by admin token).
//!
//! Every route checks its own credential (a feed's access token, an
//! authorization's `state`, a webhook's secret, an admin token) and answers
//! a bare 404 to anything it does not recognise (the API: a 401 or 404
//! problem), so the listener tells a stranger nothing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::Airlock;
use crate::scheduler::EventSink;
use crate::webhooks::Deliveries;

pub mod api;
pub mod console;
pub mod feeds;
pub mod hooks;
pub mod oauth;

/// What every route handler may use.
#[derive(Clone)]
pub struct WebState {
    /// The host: its store, egress client and options.
    pub host: Arc<Airlock>,
    /// Webhook deliveries' rate limiters, locks and slots.
    pub deliveries: Arc<Deliveries>,
    /// Where a delivery's run is reported as it starts and ends, as the
    /// scheduler reports a feed's (`airlock serve` prints them).
    pub events: Option<EventSink>,
    /// The web console's sessions (in memory: a restart logs out).
    pub console: Arc<console::Sessions>,
}

impl WebState {
    /// The state of a listener for `host`.
    pub fn new(host: Arc<Airlock>) -> Self {
        Self {
            host,
            deliveries: Arc::default(),
            events: None,
            console: Arc::default(),
        }
    }

    /// The same, reporting deliveries' runs to `events`.
    pub fn with_events(mut self, events: EventSink) -> Self {
        self.events = Some(events);
        self
    }
}

/// All routes of the listener.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(feeds::routes())
        .merge(oauth::routes())
        .merge(hooks::routes())
        .merge(api::routes(state.clone()).layer(axum::middleware::map_response(private_headers)))
        .merge(console::routes().layer(axum::middleware::map_response(private_headers)))
        .with_state(state)
}

/// Headers on every answer of the admin API and the console: they may not
/// be framed by another site (clickjacking), nor kept by a cache (they hold
/// a tenant's data and the console's CSRF token), nor sniffed into another
/// type. A cache rule the handler set (the console's assets) is kept.
async fn private_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// How long a client may take to send a request's line and headers before
/// its connection is closed (so slow clients cannot hold connections open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What one listener gives its clients, so that slow or many connections
/// (a body sent a byte at a time, thousands held open) cannot take the
/// listener, or the process's file descriptors, from everyone else.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a request's line and headers may take to arrive.
    pub header_read_timeout: Duration,
    /// Connections served at once; past it a new one is closed at once.
    pub max_connections: usize,
    /// Connections served at once from one IP address (a reverse proxy in
    /// front counts as one client: it buffers slow clients itself).
    pub max_per_address: usize,
    /// How long one connection may stay open, however busy: a client that
    /// trickles a body is cut off here (keep-alive clients reconnect).
    pub max_lifetime: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: 1024,
            max_per_address: 64,
            max_lifetime: Duration::from_secs(10 * 60),
        }
    }
}

/// The connections open per address; a [`Held`] gives its place back.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PerAddress`].
struct Held {
    table: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    /// A place for one more connection from `address`, if it has fewer
    /// than `max`.
    fn hold(table: &Arc<Self>, address: IpAddr, max: usize) -> Option<Held> {
        let mut open = table.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(address).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Held {
            table: Arc::clone(table),
            address,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Serves `app` on `listener`, each connection on its own task (HTTP/1),
/// within `limits`, until the task is dropped or aborted. Shared by every
/// listener of the host.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors or a connection reset while queued:
            // pause, then keep listening.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over a limit: closed at once (dropped), nothing read.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let Some(held) = PerAddress::hold(&per_address, peer.ip(), limits.max_per_address) else {
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let connection = http.serve_connection(io, service);
            let _ = tokio::time::timeout(limits.max_lifetime, connection).await;
            drop((slot, held));
        });
    }
}

/// The listener, bound: [`WebServer::run`] serves until it is dropped.
pub struct WebServer {
    listener: TcpListener,
    state: WebState,
    limits: ConnectionLimits,
}

impl WebServer {
    /// Binds `addr` (port 0 for any free port).
    pub async fn bind(addr: SocketAddr, state: WebState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            state,
            limits: ConnectionLimits::default(),
        })
    }

    /// The same with another header read timeout (tests).
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.header_read_timeout = timeout;
        self
    }

    /// The address it listens on (with the port chosen for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves requests, each connection on its own task (HTTP/1, a request's
    /// head read within the timeout), until the task is dropped or aborted.
    pub async fn run(self) -> std::io::Result<()> {
        serve_connections(self.listener, router(self.state), self.limits).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A listener with `limits` serving `GET /` and a `POST /slow` that
    /// reads its whole body.
    async fn limited(limits: ConnectionLimits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "ok" })).route(
            "/slow",
            axum::routing::post(|body: String| async move { body }),
        );
        tokio::spawn(serve_connections(listener, app, limits));
        addr
    }

    /// A connection that sends a request head announcing a 100-byte body,
    /// then one byte of it, and waits.
    async fn trickling(addr: SocketAddr) -> tokio::net::TcpStream {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nx")
            .await
            .unwrap();
        stream
    }

    /// Whether the server closed `stream` (end of stream or reset), waiting
    /// for it at most `within` (a bound so a failure cannot hang the test).
    async fn closed(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 256];
        matches!(
            tokio::time::timeout(within, stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    async fn get_ok(addr: SocketAddr) -> bool {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        if stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .is_err()
        {
            return false;
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        answer.starts_with(b"HTTP/1.1 200")
    }

    #[tokio::test]
    async fn one_address_holds_at_most_its_share_and_a_trickled_body_is_cut_off() {
        let addr = limited(ConnectionLimits {
            max_per_address: 2,
            max_lifetime: Duration::from_millis(800),
            ..ConnectionLimits::default()
        })
        .await;
        let mut first = trickling(addr).await;
        let mut second = trickling(addr).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(
            closed(&mut third, Duration::from_secs(5)).await,
            "a third connection from the address is closed at once"
        );
        assert!(
            !closed(&mut first, Duration::from_millis(100)).await,
            "still served"
        );
        // The trickling ones are cut off at the connection's lifetime...
        assert!(closed(&mut first, Duration::from_secs(10)).await);
        assert!(closed(&mut second, Duration::from_secs(10)).await);
        // ...and their places are free again.
        assert!(get_ok(addr).await);
    }

    #[tokio::test]
    async fn the_api_and_the_console_may_not_be_framed_nor_cached() {
        let addr = server(Duration::from_secs(5)).await;
        for path in ["/console/login", "/api/whoami", "/api/nowhere"] {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            let head = answer
                .split("\r\n\r\n")
                .next()
                .unwrap()
                .to_ascii_lowercase();
            for expected in [
                "x-frame-options: deny",
                "content-security-policy: frame-ancestors 'none'",
                "cache-control: no-store",
                "x-content-type-options: nosniff",
            ] {
                assert!(head.contains(expected), "{path}: no {expected} in\n{head}");
            }
        }
    }

    #[tokio::test]
    async fn past_the_listeners_limit_a_new_connection_is_closed() {
        let addr = limited(ConnectionLimits {
            max_connections: 1,
            max_lifetime: Duration::from_secs(60),
            ..ConnectionLimits::default()
        })
        .await;
        let mut held = trickling(addr).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!get_ok(addr).await, "no second connection");
        held.shutdown().await.unwrap();
        drop(held);
        // Once the first is gone, connections are served again.
        let mut served = false;
        for _ in 0..50 {
            if get_ok(addr).await {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served);
    }

    async fn server(timeout: Duration) -> SocketAddr {
        let store = Arc::new(crate::SqliteStore::in_memory().unwrap());
        let host = Arc::new(crate::Airlock::new(store, crate::AirlockOptions::default()).unwrap());
        let server = WebServer::bind("127.0.0.1:0".parse().unwrap(), WebState::new(host))
            .await
            .unwrap()
            .with_header_read_timeout(timeout);
        let addr = server.local_addr().unwrap();
        tokio::spawn(server.run());
        addr
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_request_is_cut_off() {
        let addr = server(Duration::from_millis(300)).await;
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        // The server closes the connection (after a 408 or nothing): the
        // read ends instead of waiting for ever.
        let read = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut buf)).await;
        assert!(
            read.is_ok(),
            "the half-sent request still holds its connection"
        );
        let text = String::from_utf8_lossy(&buf);
        assert!(!text.contains("200 OK"), "{text}");

        // A whole request is served.
        let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        ok.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("ok\n"),
            "{answer}"
        );
    }
}
