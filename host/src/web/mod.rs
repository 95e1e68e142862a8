//! `airlock serve`'s HTTP listener (`--listen`): what the outside world may
//! fetch from the host. Each capability that needs a URL adds its routes in
//! a module here:
//! - [`feeds`]: published artifacts at `/feeds/{tenant}/{installation}/{name}`;
//! - [`oauth`]: the OAuth2 authorization-code callback, `/oauth/callback`.
//!
//! The listener serves nothing else: no admin API, no listing of tenants.
//! Every route checks its own credential (a feed's access token, an
//! authorization's `state`) and answers a bare 404 to anything it does not
//! recognise, so the listener tells a stranger nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::Airlock;

pub mod feeds;
pub mod oauth;

/// What every route handler may use.
#[derive(Clone)]
pub struct WebState {
    /// The host: its store, egress client and options.
    pub host: Arc<Airlock>,
}

/// All routes of the listener.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(feeds::routes())
        .merge(oauth::routes())
        .with_state(state)
}

/// The listener, bound: [`WebServer::run`] serves until it is dropped.
pub struct WebServer {
    listener: TcpListener,
    state: WebState,
}

impl WebServer {
    /// Binds `addr` (port 0 for any free port).
    pub async fn bind(addr: SocketAddr, state: WebState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self { listener, state })
    }

    /// The address it listens on (with the port chosen for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves requests until the task is dropped or aborted.
    pub async fn run(self) -> std::io::Result<()> {
        axum::serve(self.listener, router(self.state)).await
    }
}
