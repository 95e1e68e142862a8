//! Custom store connector: imports orders from a merchant's own shop API, the
//! "custom shopping cart" integration described by Connex.
//!
//! The shop exposes two endpoints under its API URL (config `endpoint`):
//! - `GET {endpoint}/authenticatetowebservice` with HTTP basic auth answers
//!   `OK`, or an error message such as "user name and password is incorrect";
//! - `GET {endpoint}/orders?date_modified_min=…&date_modified_max=…` (UTC,
//!   ISO-8601, optional `orderStatus` and `storeName` filters) answers the
//!   orders modified in that window, as `{"Orders": [...]}` or `[...]`.
//!
//! The feed `orders` keeps the end of the last imported window in storage
//! (`cursor/orders`) and asks only for what changed since; each order is stored
//! under `order/{OrderNumber}`. The host commits those writes only when the run
//! ends ok or info, so the cursor never passes orders that were not stored.
//! Unreachable or failing shop → `retry`; rejected credentials or a malformed
//! answer → `error` (a person must fix it).
//!
//! Build with `scripts/build-plugins.sh`; run against the fake store with
//! `scripts/demo.sh`.

use airlock_sdk::bindings::Guest;
use airlock_sdk::bindings::airlock::connector::http::{self, HttpError};
use airlock_sdk::{Failure, Outcome, RunContext, Status, config, log, outcome, storage};
use base64::Engine as _;
use chrono::{DateTime, Utc};

const CURSOR_KEY: &str = "cursor/orders";

struct CustomStore;

airlock_sdk::bindings::export_connector!(CustomStore);

/// The installation's config.
struct Settings {
    endpoint: String,
    username: String,
    password: String,
    order_status: Option<String>,
    store_name: Option<String>,
    initial_lookback_hours: i64,
}

impl Settings {
    fn load() -> Result<Self, Failure> {
        let required = |key: &str| {
            config::get(key).ok_or_else(|| Failure::error(format!("config `{key}` is not set")))
        };
        let password = config::get_secret("password")
            .ok_or_else(|| Failure::error("config `password` is not set"))?;
        Ok(Self {
            endpoint: required("endpoint")?.trim_end_matches('/').to_string(),
            username: required("username")?,
            password,
            order_status: config::get("order_status").filter(|s| !s.is_empty()),
            store_name: config::get("store_name").filter(|s| !s.is_empty()),
            initial_lookback_hours: config::get("initial_lookback_hours")
                .and_then(|h| h.parse().ok())
                .unwrap_or(24),
        })
    }

    fn basic_auth(&self) -> (String, String) {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.password));
        ("authorization".to_string(), format!("Basic {token}"))
    }
}

/// GET with basic auth; transport problems are `retry`, a denial is `error`.
fn get(settings: &Settings, url: String) -> Result<http::Response, Failure> {
    let request = http::Request {
        method: "GET".into(),
        url,
        headers: vec![
            settings.basic_auth(),
            ("accept".into(), "application/json".into()),
        ],
        body: None,
        timeout_ms: Some(20_000),
    };
    http::send(&request).map_err(|e| match e {
        HttpError::ConnectionFailed(m) => Failure::retry(format!("store unreachable: {m}")),
        HttpError::Timeout => Failure::retry("store did not answer in time"),
        HttpError::Denied(d) => Failure::error(format!(
            "the host refused the request ({}): {}",
            d.rule, d.reason
        )),
        other => Failure::error(format!("request failed: {other:?}")),
    })
}

/// Sorts an unsuccessful status into retry (server trouble) or error.
fn check_status(response: &http::Response, what: &str) -> Result<(), Failure> {
    let body = String::from_utf8_lossy(&response.body);
    let first_line = body.lines().next().unwrap_or("").trim();
    match response.status {
        200..=299 => Ok(()),
        401 | 403 => Err(Failure::error(format!(
            "the store rejected the user name and password ({}): {first_line}",
            response.status
        ))),
        408 | 429 | 500..=599 => Err(Failure::retry(format!(
            "{what}: the store answered {}",
            response.status
        ))),
        status => Err(Failure::error(format!(
            "{what}: the store answered {status}: {first_line}"
        ))),
    }
}

/// `/authenticatetowebservice` must answer `OK`.
fn authenticate(settings: &Settings) -> Result<(), Failure> {
    let response = get(
        settings,
        format!("{}/authenticatetowebservice", settings.endpoint),
    )?;
    check_status(&response, "authentication")?;
    let body = String::from_utf8_lossy(&response.body);
    if body.trim().eq_ignore_ascii_case("ok") {
        Ok(())
    } else {
        Err(Failure::error(format!(
            "the store refused authentication: {}",
            body.trim()
        )))
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The window to ask for: from the stored cursor (or the lookback) to the
/// run's due time.
fn window(
    settings: &Settings,
    ctx: &RunContext,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Failure> {
    let max = DateTime::from_timestamp(ctx.scheduled_at, 0)
        .ok_or_else(|| Failure::error(format!("bad scheduled time {}", ctx.scheduled_at)))?;
    let stored = storage::get(CURSOR_KEY)
        .map_err(|e| Failure::retry(format!("storage unavailable: {e:?}")))?;
    let min = match stored {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            DateTime::parse_from_rfc3339(&text)
                .map_err(|e| Failure::error(format!("stored cursor `{text}` is damaged: {e}")))?
                .with_timezone(&Utc)
        }
        None => max - chrono::Duration::hours(settings.initial_lookback_hours),
    };
    Ok((min, max))
}

fn orders_url(settings: &Settings, min: DateTime<Utc>, max: DateTime<Utc>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("date_modified_min", &iso(min));
    query.append_pair("date_modified_max", &iso(max));
    if let Some(status) = &settings.order_status {
        query.append_pair("orderStatus", status);
    }
    if let Some(store) = &settings.store_name {
        query.append_pair("storeName", store);
    }
    format!("{}/orders?{}", settings.endpoint, query.finish())
}

/// The orders in a response body, with their order numbers.
fn parse_orders(body: &[u8]) -> Result<Vec<(String, serde_json::Value)>, Failure> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Failure::error(format!("the store's orders are not JSON: {e}")))?;
    let list = match value {
        serde_json::Value::Array(list) => list,
        serde_json::Value::Object(mut map) => match map.remove("Orders") {
            Some(serde_json::Value::Array(list)) => list,
            _ => {
                return Err(Failure::error("the store's answer has no `Orders` list"));
            }
        },
        _ => {
            return Err(Failure::error("the store's answer is not a list of orders"));
        }
    };
    list.into_iter()
        .map(|order| {
            let number = match order.get("OrderNumber") {
                Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(Failure::error(format!(
                        "an order has no OrderNumber: {}",
                        order.to_string().chars().take(200).collect::<String>()
                    )));
                }
            };
            Ok((number, order))
        })
        .collect()
}

fn sync_orders(ctx: &RunContext) -> Result<Outcome, Failure> {
    let settings = Settings::load()?;
    authenticate(&settings)?;
    let (min, max) = window(&settings, ctx)?;
    if min >= max {
        return Ok(outcome(
            Status::Info,
            format!(
                "nothing to ask: window {} to {} is empty",
                iso(min),
                iso(max)
            ),
            0,
        ));
    }
    log::write(
        log::Level::Info,
        &format!("asking for orders modified {} to {}", iso(min), iso(max)),
    );
    let response = get(&settings, orders_url(&settings, min, max))?;
    check_status(&response, "orders")?;
    let orders = parse_orders(&response.body)?;
    let (mut new, mut updated) = (0u32, 0u32);
    for (number, order) in &orders {
        let key = format!("order/{number}");
        let existed = storage::get(&key)
            .map_err(|e| Failure::retry(format!("storage unavailable: {e:?}")))?
            .is_some();
        storage::set(&key, order.to_string().as_bytes())
            .map_err(|e| Failure::retry(format!("could not store order {number}: {e:?}")))?;
        if existed { updated += 1 } else { new += 1 }
    }
    storage::set(CURSOR_KEY, iso(max).as_bytes())
        .map_err(|e| Failure::retry(format!("could not store the cursor: {e:?}")))?;
    let count = new + updated;
    if count == 0 {
        return Ok(outcome(
            Status::Info,
            format!("no orders modified between {} and {}", iso(min), iso(max)),
            0,
        ));
    }
    Ok(outcome(
        Status::Ok,
        format!(
            "imported {count} orders ({new} new, {updated} updated) modified between {} and {}",
            iso(min),
            iso(max)
        ),
        count,
    ))
}

impl Guest for CustomStore {
    fn run(ctx: RunContext) -> Outcome {
        match ctx.feed.as_str() {
            "orders" => sync_orders(&ctx).unwrap_or_else(|f| f.into_outcome(0)),
            other => outcome(Status::Error, format!("unknown feed `{other}`"), 0),
        }
    }

    fn check() -> Result<(), String> {
        let settings = Settings::load().map_err(|f| f.message().to_string())?;
        authenticate(&settings).map_err(|f| f.message().to_string())
    }
}
