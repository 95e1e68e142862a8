//! Egress for a security reviewer: what each installation was granted,
//! how much each grant was used (and which never were), and the decisions
//! recorded for every request.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::auth::Allowed;
use super::{ApiResult, Problems};
use crate::admin::{Caller, Permission};
use crate::egress::{HttpRequest, SendMode};
use crate::lifecycle;
use crate::runs::Mode;
use crate::storage::{AuditFilter, AuditRow, RuleUsage};
use crate::web::WebState;

/// One grant of an installation and its use.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GrantUse {
    /// The rule as approved (`https://api.xero.com`).
    pub rule: String,
    /// Requests it allowed.
    pub requests: u64,
    /// When it last allowed one (ms since the epoch); none if never.
    pub last_used_ms: Option<i64>,
}

/// An installation's egress as a reviewer sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EgressReview {
    /// Each approved grant with its use; `requests` 0 for a grant never
    /// used (a candidate to take away).
    pub grants: Vec<GrantUse>,
    /// Everything else recorded: denials, requests suppressed in test mode,
    /// invalid requests, each by the rule or reason that decided it.
    pub other_decisions: Vec<RuleUsage>,
}

/// An installation's grants, their use, and its other decisions.
#[utoipa::path(get, operation_id = "egress_review",
    path = "/api/tenants/{tenant}/installations/{installation}/egress",
    tag = "egress",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id")),
    responses((status = 200, body = EgressReview), Problems))]
pub async fn review(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<EgressReview>> {
    caller.require(Permission::Read)?;
    let row = super::installations::visible(&state, &caller, &tenant, &id).await?;
    let usage: Vec<RuleUsage> = state
        .host
        .store()
        .rule_usage(&row.plugin_id, Some(&tenant))
        .await?
        .into_iter()
        .filter(|u| u.installation == id)
        .collect();
    let grants = row
        .approved_egress
        .iter()
        .map(|rule| {
            let used = usage
                .iter()
                .find(|u| u.decision == "allowed" && &u.rule == rule);
            GrantUse {
                rule: rule.clone(),
                requests: used.map_or(0, |u| u.count),
                last_used_ms: used.map(|u| u.last_ms),
            }
        })
        .collect();
    let other_decisions = usage
        .into_iter()
        .filter(|u| !(u.decision == "allowed" && row.approved_egress.contains(&u.rule)))
        .collect();
    Ok(Json(EgressReview {
        grants,
        other_decisions,
    }))
}

/// Which decisions to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only denials.
    #[serde(default)]
    pub denied: bool,
    /// Only this plugin's requests.
    pub plugin: Option<String>,
    /// Only at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// The egress decisions recorded for a tenant's requests, newest first
/// (URLs without their query: it may hold a secret).
#[utoipa::path(get, operation_id = "egress_log",
    path = "/api/tenants/{tenant}/egress/log", tag = "egress",
    params(("tenant" = String, Path, description = "The tenant's id"), LogQuery),
    responses((status = 200, body = Vec<AuditRow>), Problems))]
pub async fn log(
    State(state): State<WebState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Query(query): Query<LogQuery>,
) -> ApiResult<Json<Vec<AuditRow>>> {
    caller.require(Permission::Read)?;
    caller.tenant(&tenant)?;
    let filter = AuditFilter {
        denied_only: query.denied,
        since_ms: query.since_ms,
        tenant: Some(tenant),
        plugin: query.plugin,
        limit: query.limit.unwrap_or(100).clamp(1, 1000),
    };
    Ok(Json(state.host.store().audit_log(filter).await?))
}

/// A URL to check against an installation's egress.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The URL (its query is not echoed back).
    pub url: String,
    /// The method (default `GET`).
    pub method: Option<String>,
    /// The mode to decide in (default: the installation's).
    pub mode: Option<Mode>,
}

/// Whether `url` would be sent for the installation, and why: the same
/// checks a run's request gets (policy, test mode, resolution and address
/// checks), stopped before the socket.
#[utoipa::path(post, operation_id = "egress_check",
    path = "/api/tenants/{tenant}/installations/{installation}/egress/check",
    tag = "egress", request_body = CheckRequest,
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id")),
    responses((status = 200, description = "The decision: `decision`, the rule or reason, \
        the host and the addresses it resolved to", body = Object), Problems))]
pub async fn check(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    Json(body): Json<CheckRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require(Permission::Read)?;
    let row = super::installations::visible(&state, &caller, &tenant, &id).await?;
    let host = &state.host;
    let (plugin, installation) = lifecycle::load(&**host.store(), host.keyring(), &row).await?;
    let policy = host
        .policy(&plugin, &installation)
        .map_err(|e| ApiError::internal(&e))?;
    let mode = match body.mode.unwrap_or(installation.mode) {
        Mode::Test => SendMode::Test,
        Mode::Live => SendMode::Live,
    };
    let request = HttpRequest {
        method: body
            .method
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase(),
        url: body.url,
        headers: vec![],
        body: None,
        timeout: None,
    };
    let explanation = host
        .egress_client()
        .explain(&policy, mode, &request, true)
        .await;
    let value = serde_json::to_value(&explanation).map_err(|e| ApiError::internal(&e))?;
    Ok(Json(value))
}
