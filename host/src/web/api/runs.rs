//! Feed executions: the recorded runs of a tenant, filtered, and one run
//! whole (its log, HTTP calls, storage changes, records and artifacts).

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};

use super::auth::Allowed;
use super::{ApiError, ApiResult, Problems};
use crate::admin::{Caller, Permission};
use crate::storage::{RunFilter, RunSummary};
use crate::web::WebState;

/// Which runs to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only this installation's.
    pub installation: Option<String>,
    /// Only this feed's.
    pub feed: Option<String>,
    /// Only this outcome: `ok`, `info`, `retry`, `error` or `interrupted`.
    pub status: Option<String>,
    /// Only runs started at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// At most this many, newest first (default 50, at most 1000).
    pub limit: Option<usize>,
}

const OUTCOMES: [&str; 5] = ["ok", "info", "retry", "error", "interrupted"];

/// A tenant's feed executions, newest first.
#[utoipa::path(get, operation_id = "runs_list",
    path = "/api/tenants/{tenant}/runs", tag = "runs",
    params(("tenant" = String, Path, description = "The tenant's id"), RunsQuery),
    responses((status = 200, body = Vec<RunSummary>), Problems))]
pub async fn list(
    State(state): State<WebState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Query(query): Query<RunsQuery>,
) -> ApiResult<Json<Vec<RunSummary>>> {
    caller.require(Permission::Read)?;
    caller.tenant(&tenant)?;
    if let Some(status) = &query.status
        && !OUTCOMES.contains(&status.as_str())
    {
        return Err(ApiError::invalid(format!(
            "status `{status}` is none of {}",
            OUTCOMES.join(", ")
        )));
    }
    let filter = RunFilter {
        tenant: Some(tenant),
        installation: query.installation,
        feed: query.feed,
        status: query.status,
        since: query.since,
        limit: query.limit.unwrap_or(50).clamp(1, 1000),
    };
    Ok(Json(state.host.store().runs(filter).await?))
}

/// One run, whole.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: RunSummary,
    /// Its report: `log`, `http` (each call with its egress decision),
    /// `storage_committed`/`storage_discarded`, `records`, `artifacts`,
    /// `end`. Secrets were redacted before it was stored.
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}

/// One feed execution with its log and HTTP calls.
#[utoipa::path(get, operation_id = "runs_show",
    path = "/api/tenants/{tenant}/runs/{run}", tag = "runs",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("run" = i64, Path, description = "The run's id")),
    responses((status = 200, body = RunDetail), Problems))]
pub async fn show(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, run)): Path<(String, i64)>,
) -> ApiResult<Json<RunDetail>> {
    caller.require(Permission::Read)?;
    caller.tenant(&tenant)?;
    match state.host.store().run(run).await? {
        Some((summary, report)) if summary.tenant == tenant => Ok(Json(RunDetail {
            report: serde_json::from_str(&report).unwrap_or_default(),
            run: summary,
        })),
        _ => Err(ApiError::not_found(format!(
            "no run {run} of tenant `{tenant}`"
        ))),
    }
}
