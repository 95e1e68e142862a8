//! Inbound webhooks at `/hooks/{tenant}/{installation}/{webhook}/{secret}`:
//! each delivery checked in the order `crate::webhooks` gives, then handled
//! as a run of the installation (trigger `webhook`).
//!
//! Answers: 404 (bare) for a wrong secret or anything unknown or disabled;
//! 405 for a method the webhook does not take; 429 past the installation's
//! rate; 413 for a body over the webhook's cap; 401 for a signature that
//! does not verify; 200 for a replay of a handled delivery; then the run's:
//! 200 for `ok`/`info`, 503 with `Retry-After` for `retry` (and when the
//! host is busy), 500 for `error` or a failed run. Nothing runs before the
//! checks pass, and no answer carries the run's message (it is the
//! operator's, in `airlock runs`).

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::WebState;
use crate::lifecycle;
use crate::manifest::Webhook;
use crate::runs::{RunReport, Severity};
use crate::runtime::WebhookDelivery;
use crate::scheduler::Event;
use crate::storage::{ActiveRun, Holder, Scope, Settlement};
use crate::url_secret;
use crate::webhooks::verify_signature;

/// How long a sender may take to send a delivery's body, once its head
/// was read (as long as the listener gives for the head).
pub const BODY_READ_TIMEOUT: std::time::Duration = super::HEADER_READ_TIMEOUT;

/// The webhook routes.
pub fn routes() -> Router<WebState> {
    Router::new().route(
        "/hooks/{tenant}/{installation}/{webhook}/{secret}",
        any(deliver),
    )
}

/// A bare answer with `status`.
fn bare(status: StatusCode) -> Response {
    status.into_response()
}

/// A bare answer asking the sender to come back after `secs`.
fn come_back(status: StatusCode, secs: u64) -> Response {
    let mut response = bare(status);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

/// 429, with when the installation's next token comes.
fn too_many(wait: std::time::Duration) -> Response {
    come_back(
        StatusCode::TOO_MANY_REQUESTS,
        wait.as_secs_f64().ceil() as u64,
    )
}

type HookPath = Path<(String, String, String, String)>;

type PathResult = Result<HookPath, axum::extract::rejection::PathRejection>;

/// A delivery, answered by [`handle`] and counted by its answer's status
/// in the host's metrics.
async fn deliver(
    State(state): State<WebState>,
    method: Method,
    path: PathResult,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let metrics = state.host.metrics().clone();
    let response = handle(State(state), method, path, query, headers, body).await;
    metrics.webhook_delivery(response.status().as_u16());
    response
}

async fn handle(
    State(state): State<WebState>,
    method: Method,
    path: PathResult,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Path((tenant, installation, webhook, secret))) = path else {
        return bare(StatusCode::NOT_FOUND);
    };
    let scope = Scope {
        tenant,
        installation,
    };
    let host = &state.host;
    let store = host.store();

    // 1. The secret, before anything about the installation is looked at.
    let ids_ok = [&scope.tenant, &scope.installation]
        .iter()
        .all(|id| lifecycle::check_id(id).is_ok());
    if !ids_ok {
        return bare(StatusCode::NOT_FOUND);
    }
    let stored = match store.webhook_secret_hash(&scope).await {
        Ok(stored) => stored,
        Err(_) => return come_back(StatusCode::SERVICE_UNAVAILABLE, 5),
    };
    if !url_secret::matches(Some(&secret), stored.as_ref()) {
        return bare(StatusCode::NOT_FOUND);
    }
    let row = match store.installation(&scope.tenant, &scope.installation).await {
        Ok(Some(row)) if row.removed_at.is_none() && row.enabled => row,
        Ok(_) => return bare(StatusCode::NOT_FOUND),
        Err(_) => return come_back(StatusCode::SERVICE_UNAVAILABLE, 5),
    };
    // 2. The rate, before the installed plugin is read from disk (its
    // component hashed) and its secrets unsealed, so deliveries past the
    // rate cost neither: the installation's limiter keeps the rate its
    // manifest gave at an earlier delivery. A first delivery is counted
    // once the manifest is read.
    let counted = match state.deliveries.known_limiter(&scope) {
        Some(limiter) => match limiter.take(Instant::now()) {
            Ok(()) => true,
            Err(wait) => return too_many(wait),
        },
        None => false,
    };
    let (plugin, installation) = match lifecycle::load(&**store, host.keyring(), &row).await {
        Ok(pair) => pair,
        Err(lifecycle::LifecycleError::Storage(_)) => {
            return come_back(StatusCode::SERVICE_UNAVAILABLE, 5);
        }
        // The installed plugin cannot run (its component changed on disk,
        // its secrets cannot be unsealed): the operator's problem, which
        // `airlock runs` of its feeds shows.
        Err(_) => return bare(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let Some(hook) = plugin.manifest.webhook(&webhook).cloned() else {
        return bare(StatusCode::NOT_FOUND);
    };

    // Then the method.
    if !hook.methods.iter().any(|m| m == method.as_str()) {
        let mut response = bare(StatusCode::METHOD_NOT_ALLOWED);
        if let Ok(allow) = HeaderValue::from_str(&hook.methods.join(", ")) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        return response;
    }
    // The limiter made (or remade, if an upgrade changed the rate) with
    // the manifest's rate; a first delivery takes its token now.
    let limiter = state
        .deliveries
        .limiter(&scope, plugin.manifest.limits.webhook_deliveries_per_minute);
    if !counted && let Err(wait) = limiter.take(Instant::now()) {
        return too_many(wait);
    }

    // 3. The body, never more of it than the cap (plus one byte to tell).
    let cap = (hook.max_body_kb as usize) << 10;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > cap as u64) {
        return bare(StatusCode::PAYLOAD_TOO_LARGE);
    }
    // Within a time, too: a sender that dribbles its body (or never sends
    // what its Content-Length announced) does not hold a connection, a task
    // and a buffer for ever.
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, cap)).await
    {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return bare(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => {
            let mut response = bare(StatusCode::REQUEST_TIMEOUT);
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    let now = chrono::Utc::now().timestamp();

    // 4. The signature.
    if let Some(spec) = &hook.signature {
        let secret = installation.config.secret(&spec.secret_field).unwrap_or("");
        if secret.is_empty() || verify_signature(spec, secret, &headers, &body, now).is_err() {
            return bare(StatusCode::UNAUTHORIZED);
        }
    }

    // 5. One delivery of an installation at a time; a replay of a handled
    // one is answered without running. The lock is taken before a slot: a
    // delivery waiting for its installation's lock holds none of the host's
    // slots, so one installation's queue cannot take them from the others.
    let lock = state.deliveries.installation_lock(&scope);
    let one_at_a_time = lock.lock_owned().await;
    let delivery_id = delivery_id(&hook, &headers);
    if let Some(id) = &delivery_id {
        match store.handled_delivery(&scope, &hook.name, id).await {
            Ok(Some(_)) => return (StatusCode::OK, "already handled\n").into_response(),
            Ok(None) => {}
            Err(_) => return come_back(StatusCode::SERVICE_UNAVAILABLE, 5),
        }
    }
    // A replay is answered without a slot; a delivery to run needs one.
    let Some(slot) = state.deliveries.try_slot(&scope.tenant) else {
        return come_back(StatusCode::SERVICE_UNAVAILABLE, 1);
    };
    let delivery = WebhookDelivery {
        name: hook.name.clone(),
        method: method.as_str().to_string(),
        query: query
            .as_deref()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        headers: crate::webhooks::headers_for_guest(&headers),
        body: body.to_vec(),
        delivery_id,
        received_at: now,
    };
    // The run is in progress, as a feed's is, from its claim until the
    // transaction that records it: `airlock remove` refuses an installation
    // with a run in progress, so a delivery never commits to a removed one.
    // Claimed first, then the installation read again: a removal that
    // committed before the claim is seen.
    let active = ActiveRun {
        tenant: scope.tenant.clone(),
        installation: scope.installation.clone(),
        feed: hook.name.clone(),
        trigger: crate::runs::Trigger::Webhook.as_str().to_string(),
        attempt: 1,
        scheduled_at: now,
        started_at: now,
    };
    // Settled as claimed: the record ends exactly this claim (see the
    // store's fence), whenever the run got to start.
    let claimed = active.clone();
    let settle = move |report: &RunReport| Some(settlement(report, &claimed));
    // The claim and the run are their own task, holding the lock and the
    // slot: a sender that hangs up (which drops this request's future)
    // neither cuts the run short (what the guest did, its requests to third
    // parties included, is recorded) nor leaves a claim behind.
    let host = state.host.clone();
    let events = state.events.clone();
    let label = format!("{}/{}", scope.tenant, scope.installation);
    let task = tokio::spawn(async move {
        let _held = (one_at_a_time, slot);
        let store = host.store();
        match store.claim_unqueued(active.clone(), Holder::Serve).await {
            Ok(true) => {}
            Ok(false) => return Err(come_back(StatusCode::SERVICE_UNAVAILABLE, 1)),
            Err(_) => return Err(come_back(StatusCode::SERVICE_UNAVAILABLE, 5)),
        }
        let refused = match store
            .installation(&active.tenant, &active.installation)
            .await
        {
            Ok(Some(row)) if row.removed_at.is_none() && row.enabled => None,
            Ok(_) => Some(bare(StatusCode::NOT_FOUND)),
            Err(_) => Some(come_back(StatusCode::SERVICE_UNAVAILABLE, 5)),
        };
        if let Some(refused) = refused {
            let _ = store.release(active).await;
            return Err(refused);
        }
        let emit = |event: Event| {
            if let Some(events) = &events {
                events(&event);
            }
        };
        emit(Event::Started {
            installation: label.clone(),
            feed: active.feed.clone(),
            trigger: active.trigger.clone(),
            attempt: 1,
        });
        let ran = host
            .run_webhook_settled(&plugin, &installation, delivery, settle)
            .await;
        if let Ok((report, settlement)) = &ran {
            emit(Event::Finished {
                installation: label,
                feed: report.feed.clone(),
                run_id: report.run_id,
                outcome: report.severity().as_str().to_string(),
                message: report.end.summary(),
                retry_at: None,
                notified: settlement
                    .as_ref()
                    .is_some_and(|s| s.notification.is_some()),
            });
        }
        // A run the host could not record leaves nothing in progress (its
        // record, had it been written, would have ended it).
        if ran.is_err() {
            let _ = store.release(active).await;
        }
        Ok(ran)
    });
    let ran = match task.await {
        Ok(Ok(ran)) => ran,
        Ok(Err(refused)) => return refused,
        Err(_) => return come_back(StatusCode::SERVICE_UNAVAILABLE, 60),
    };
    match ran {
        Ok((report, _)) => match report.severity() {
            Severity::Ok | Severity::Info => (StatusCode::OK, "ok\n").into_response(),
            Severity::Retry => {
                let after = match &report.end {
                    crate::runs::RunEnd::Returned {
                        retry_after_seconds: Some(s),
                        ..
                    } => u64::from(*s),
                    _ => 60,
                };
                come_back(StatusCode::SERVICE_UNAVAILABLE, after)
            }
            Severity::Error => bare(StatusCode::INTERNAL_SERVER_ERROR),
        },
        Err(_) => come_back(StatusCode::SERVICE_UNAVAILABLE, 60),
    }
}

/// The sender's delivery id, when the webhook names its header and the
/// delivery has one (at most 256 bytes of text; longer is no id).
fn delivery_id(hook: &Webhook, headers: &HeaderMap) -> Option<String> {
    let value = headers.get(hook.delivery_id_header.as_deref()?)?;
    let id = value.to_str().ok()?.trim();
    (!id.is_empty() && id.len() <= 256).then(|| id.to_string())
}

/// How a delivery's run, claimed as `active`, settles: an `error` (or a
/// failed run) raises the installation's notification for the webhook,
/// like a feed's; nothing is retried by the host (the sender delivers
/// again on 503 and 500).
fn settlement(report: &RunReport, active: &ActiveRun) -> Settlement {
    Settlement {
        active: active.clone(),
        follow_up: None,
        notification: (report.severity() == Severity::Error).then(|| report.end.summary()),
    }
}
