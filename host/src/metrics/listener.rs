//! `airlock serve --metrics-listen`: a listener of its own that answers
//! `GET /metrics` (the host's [`Metrics`](super::Metrics), the store's
//! gauges read at that moment) and a bare 404 to anything else. It is
//! apart from the public `--listen` so that it can be bound to an internal
//! interface only: what it tells (plugins installed, how often they fail)
//! is the operator's.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::Airlock;

/// The metrics routes: `GET /metrics` only.
pub fn router(host: Arc<Airlock>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(host)
}

async fn scrape(State(host): State<Arc<Airlock>>) -> Response {
    let now = chrono::Utc::now().timestamp();
    match host.metrics().scrape(&**host.store(), now).await {
        Ok(text) => ([(header::CONTENT_TYPE, super::CONTENT_TYPE)], text).into_response(),
        // The store could not be read: no partial page (a scraper would
        // take missing gauges for zero).
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The metrics listener, bound: [`MetricsServer::run`] serves until its
/// task is dropped or aborted.
pub struct MetricsServer {
    listener: TcpListener,
    host: Arc<Airlock>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 for any free port) for `host`'s metrics.
    pub async fn bind(addr: SocketAddr, host: Arc<Airlock>) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            host,
        })
    }

    /// The address it listens on (with the port chosen for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves scrapes, each connection on its own task (HTTP/1, a request's
    /// head read within a timeout, as the public listener does).
    pub async fn run(self) -> std::io::Result<()> {
        crate::web::serve_connections(
            self.listener,
            router(self.host),
            crate::web::ConnectionLimits::default(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn metrics_are_served_at_their_path_and_nothing_else_is() {
        let store = Arc::new(crate::SqliteStore::in_memory().unwrap());
        let host = Arc::new(Airlock::new(store, crate::AirlockOptions::default()).unwrap());
        host.metrics().egress_decision("allowed");
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), host)
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let serving = tokio::spawn(server.run());
        let client = reqwest::Client::new();
        let response = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            crate::metrics::CONTENT_TYPE
        );
        let text = response.text().await.unwrap();
        assert!(
            text.contains("airlock_egress_decisions_total{verdict=\"allowed\"} 1"),
            "{text}"
        );
        assert!(text.contains("\nairlock_queue_depth 0\n"), "{text}");
        for path in ["/", "/healthz", "/metrics/x", "/feeds/a/b/c"] {
            let response = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 404, "{path}");
            assert_eq!(response.text().await.unwrap(), "", "{path}");
        }
        let posted = client.post(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(posted.status(), 405);
        serving.abort();
    }
}
