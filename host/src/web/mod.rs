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

use std::net::SocketAddr;
use std::sync::Arc;
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
        .merge(api::routes(state.clone()))
        .merge(console::routes())
        .with_state(state)
}

/// How long a client may take to send a request's line and headers before
/// its connection is closed (so slow clients cannot hold connections open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener`, each connection on its own task (HTTP/1, a
/// request's head read within `header_read_timeout`), until the task is
/// dropped or aborted. Shared by every listener of the host.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors or a connection reset while queued:
            // pause, then keep listening.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = http.serve_connection(io, service).await;
        });
    }
}

/// The listener, bound: [`WebServer::run`] serves until it is dropped.
pub struct WebServer {
    listener: TcpListener,
    state: WebState,
    header_read_timeout: Duration,
}

impl WebServer {
    /// Binds `addr` (port 0 for any free port).
    pub async fn bind(addr: SocketAddr, state: WebState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            state,
            header_read_timeout: HEADER_READ_TIMEOUT,
        })
    }

    /// The same with another header read timeout (tests).
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The address it listens on (with the port chosen for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves requests, each connection on its own task (HTTP/1, a request's
    /// head read within the timeout), until the task is dropped or aborted.
    pub async fn run(self) -> std::io::Result<()> {
        serve_connections(self.listener, router(self.state), self.header_read_timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
