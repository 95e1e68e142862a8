//! A fake "custom store" shop API on loopback, standing in for a merchant's
//! site in tests and the demo: basic-auth `/authenticatetowebservice` and
//! `/orders?date_modified_min=…&date_modified_max=…`, plus `/_admin/*` routes
//! the tests and demo use to add orders and make the shop fail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

/// One order in the shop.
#[derive(Debug, Clone, Deserialize)]
pub struct FakeOrder {
    /// The order number.
    #[serde(rename = "OrderNumber")]
    pub number: String,
    /// When it was last modified.
    #[serde(rename = "ModifiedDate")]
    pub modified: DateTime<Utc>,
    /// The order total.
    #[serde(rename = "Total", default)]
    pub total: f64,
}

/// How the shop answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Normally.
    Normal,
    /// 503 to everything.
    Unavailable,
    /// Malformed JSON from /orders.
    Garbage,
}

#[derive(Debug)]
struct Shop {
    username: String,
    password: String,
    orders: Vec<FakeOrder>,
    behaviour: Behaviour,
    /// `(path, query)` of every API request, in order.
    requests: Vec<(String, HashMap<String, String>)>,
}

type Shared = Arc<Mutex<Shop>>;

/// A running fake store.
pub struct FakeStore {
    /// Where it listens.
    pub addr: SocketAddr,
    shop: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStore {
    /// Starts a shop on `127.0.0.1:port` (0: any free port) accepting these
    /// credentials.
    pub async fn start(port: u16, username: &str, password: &str) -> std::io::Result<Self> {
        Self::start_on(port, username, password, None).await
    }

    /// [`FakeStore::start`] serving https with a certificate of `ca`.
    pub async fn start_tls(
        username: &str,
        password: &str,
        ca: &crate::tls::TestCa,
    ) -> std::io::Result<Self> {
        Self::start_on(0, username, password, Some(ca)).await
    }

    async fn start_on(
        port: u16,
        username: &str,
        password: &str,
        tls: Option<&crate::tls::TestCa>,
    ) -> std::io::Result<Self> {
        let shop = Arc::new(Mutex::new(Shop {
            username: username.to_string(),
            password: password.to_string(),
            orders: Vec::new(),
            behaviour: Behaviour::Normal,
            requests: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let app = router(shop.clone());
        let task = match tls {
            Some(ca) => ca.serve(listener, app),
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
        };
        Ok(Self { addr, shop, task })
    }

    fn shop(&self) -> std::sync::MutexGuard<'_, Shop> {
        self.shop.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces) an order.
    pub fn put_order(&self, number: &str, modified: DateTime<Utc>) {
        put(
            &mut self.shop(),
            FakeOrder {
                number: number.to_string(),
                modified,
                total: 10.0,
            },
        );
    }

    /// Changes how the shop answers.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.shop().behaviour = behaviour;
    }

    /// The `/orders` requests so far, as (min, max) query values.
    pub fn order_windows(&self) -> Vec<(String, String)> {
        self.shop()
            .requests
            .iter()
            .filter(|(path, _)| path == "orders")
            .map(|(_, q)| {
                (
                    q.get("date_modified_min").cloned().unwrap_or_default(),
                    q.get("date_modified_max").cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// How many API requests the shop has answered.
    pub fn request_count(&self) -> usize {
        self.shop().requests.len()
    }
}

fn put(shop: &mut Shop, order: FakeOrder) {
    shop.orders.retain(|o| o.number != order.number);
    shop.orders.push(order);
}

fn router(shop: Shared) -> Router {
    Router::new()
        .route("/api/v1/authenticatetowebservice", get(authenticate))
        .route("/api/v1/orders", get(orders))
        .route("/_admin/orders", post(admin_put_order))
        .route("/_admin/behaviour/{name}", post(admin_behaviour))
        .with_state(shop)
}

fn authorised(shop: &Shop, headers: &HeaderMap) -> bool {
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", shop.username, shop.password));
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Basic {expected}"))
}

fn record(shop: &mut Shop, path: &str, query: HashMap<String, String>) -> Option<Response> {
    shop.requests.push((path.to_string(), query));
    (shop.behaviour == Behaviour::Unavailable)
        .then(|| (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response())
}

async fn authenticate(State(shop): State<Shared>, headers: HeaderMap) -> Response {
    let mut shop = shop.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(down) = record(&mut shop, "authenticatetowebservice", HashMap::new()) {
        return down;
    }
    if authorised(&shop, &headers) {
        "OK".into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "user name and password is incorrect",
        )
            .into_response()
    }
}

fn parse_time(q: &HashMap<String, String>, key: &str) -> Option<DateTime<Utc>> {
    q.get(key)
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|t| t.with_timezone(&Utc))
}

async fn orders(
    State(shop): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut shop = shop.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(down) = record(&mut shop, "orders", query.clone()) {
        return down;
    }
    if !authorised(&shop, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            "user name and password is incorrect",
        )
            .into_response();
    }
    let (Some(min), Some(max)) = (
        parse_time(&query, "date_modified_min"),
        parse_time(&query, "date_modified_max"),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            "date_modified_min and date_modified_max are required",
        )
            .into_response();
    };
    if shop.behaviour == Behaviour::Garbage {
        return "{\"Orders\": [".into_response();
    }
    let mut found: Vec<&FakeOrder> = shop
        .orders
        .iter()
        .filter(|o| o.modified >= min && o.modified < max)
        .collect();
    found.sort_by_key(|o| o.modified);
    let list: Vec<Value> = found
        .iter()
        .map(|o| {
            json!({
                "OrderNumber": o.number,
                "ModifiedDate": o.modified.to_rfc3339(),
                "Total": o.total,
            })
        })
        .collect();
    Json(json!({ "Orders": list })).into_response()
}

async fn admin_put_order(State(shop): State<Shared>, Json(order): Json<FakeOrder>) -> StatusCode {
    put(&mut shop.lock().unwrap_or_else(|p| p.into_inner()), order);
    StatusCode::NO_CONTENT
}

async fn admin_behaviour(
    State(shop): State<Shared>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> StatusCode {
    let behaviour = match name.as_str() {
        "normal" => Behaviour::Normal,
        "unavailable" => Behaviour::Unavailable,
        "garbage" => Behaviour::Garbage,
        _ => return StatusCode::NOT_FOUND,
    };
    shop.lock().unwrap_or_else(|p| p.into_inner()).behaviour = behaviour;
    StatusCode::NO_CONTENT
}
