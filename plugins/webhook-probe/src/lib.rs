//! A connector with webhooks, for the host's webhook tests. Each delivery:
//! - `inbox` and `signed`: adds one to storage key `count`, keeps the body
//!   under `last` and the query under `query`, writes the `customers`
//!   record named by the body's `email` (when it has one), and POSTs the
//!   body to `forward_url` (when set: a write, so not sent in test mode;
//!   what happened is kept under `forwarded`);
//! - `fail`: writes storage, then ends `error` (or `retry` after 120 s
//!   with `?retry=1`), so none of it may be kept.

use airlock_sdk::bindings::airlock::connector::http;
use airlock_sdk::webhook_bindings::exports::airlock::connector::webhook_handler;
use airlock_sdk::{Outcome, RunContext, Status, WebhookDelivery, config, storage};

struct WebhookProbe;

fn outcome(
    status: Status,
    message: impl Into<String>,
    retry_after_seconds: Option<u32>,
) -> Outcome {
    Outcome {
        status,
        message: message.into(),
        items: 1,
        retry_after_seconds,
    }
}

fn set(key: &str, value: &[u8]) -> Result<(), String> {
    storage::set(key, value).map_err(|e| format!("storage: {e:?}"))
}

fn count() -> Result<u64, String> {
    let now = storage::get("count")
        .map_err(|e| format!("storage: {e:?}"))?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    set("count", (now + 1).to_string().as_bytes())?;
    Ok(now + 1)
}

fn forward(body: &[u8]) -> String {
    let Some(url) = config::get("forward_url") else {
        return "no forward_url".to_string();
    };
    let request = http::Request {
        method: "POST".into(),
        url,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(body.to_vec()),
        timeout_ms: None,
    };
    match http::send(&request) {
        Ok(response) => format!("sent: {}", response.status),
        Err(http::HttpError::SuppressedInTestMode) => "suppressed in test mode".to_string(),
        Err(e) => format!("failed: {e:?}"),
    }
}

fn inbox(delivery: &WebhookDelivery) -> Result<Outcome, String> {
    let n = count()?;
    set("last", &delivery.body)?;
    let query: Vec<String> = delivery
        .query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    set("query", query.join("&").as_bytes())?;
    let body: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap_or_default();
    if let Some(email) = body.get("email").and_then(|e| e.as_str()) {
        let record =
            serde_json::json!({ "id": email, "email": email, "name": email, "newsletter": true });
        airlock_sdk::bindings::airlock::connector::records::put(
            "customers",
            email,
            &record.to_string(),
        )
        .map_err(|e| format!("records: {e:?}"))?;
    }
    let forwarded = forward(&delivery.body);
    set("forwarded", forwarded.as_bytes())?;
    Ok(outcome(
        Status::Ok,
        format!("delivery {n} ({}): {forwarded}", delivery.name),
        None,
    ))
}

impl webhook_handler::Guest for WebhookProbe {
    fn handle(delivery: WebhookDelivery) -> Outcome {
        let result = match delivery.name.as_str() {
            "fail" => set("fail", b"must not be kept").map(|()| {
                if delivery.query.iter().any(|(k, _)| k == "retry") {
                    outcome(Status::Retry, "asked to retry", Some(120))
                } else {
                    outcome(Status::Error, "asked to fail", None)
                }
            }),
            _ => inbox(&delivery),
        };
        result.unwrap_or_else(|e| outcome(Status::Error, e, None))
    }
}

impl airlock_sdk::webhook_bindings::Guest for WebhookProbe {
    fn run(_ctx: RunContext) -> Outcome {
        outcome(Status::Ok, "nothing to do", None)
    }

    fn check() -> Result<(), String> {
        Ok(())
    }
}

airlock_sdk::webhook_bindings::export_webhook_connector!(WebhookProbe);
