//! ★ An installation's connector state: its storage keys with who wrote
//! each, a key's history, and rewinding the storage to before a run (an
//! operator's change, recorded in the audit of admin actions). The same
//! calls as `airlock state` (`crate::state`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;

use super::auth::Allowed;
use super::installations::visible;
use super::{ApiError, ApiResult, Problems};
use crate::admin::{Caller, Permission, actions};
use crate::state::{self, RewindSummary, StateEntry, StateError, StateVersion};
use crate::web::WebState;

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Installation(l) => l.into(),
            StateError::Storage(s) => s.into(),
            StateError::NotARun { .. } => ApiError::not_found(e.to_string()),
            StateError::RunInProgress { .. } => {
                ApiError::new(StatusCode::CONFLICT, "run_in_progress", e.to_string())
            }
            StateError::Pruned { .. } => {
                ApiError::new(StatusCode::CONFLICT, "history_pruned", e.to_string())
            }
            StateError::ChangedSince(_) => {
                ApiError::new(StatusCode::CONFLICT, "stale_revision", e.to_string())
            }
        }
    }
}

/// Which keys to show.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShowQuery {
    /// Only keys after this one (to page on).
    pub after: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// The installation's storage: each key with its value (text, hex, or for
/// `sealed/` keys never), its size, and which run last wrote it.
#[utoipa::path(get, operation_id = "state_show",
    path = "/api/tenants/{tenant}/installations/{installation}/state", tag = "state",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id"),
           ShowQuery),
    responses((status = 200, body = Vec<StateEntry>), Problems))]
pub async fn show(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    Query(query): Query<ShowQuery>,
) -> ApiResult<Json<Vec<StateEntry>>> {
    caller.require(Permission::Read)?;
    visible(&state, &caller, &tenant, &id).await?;
    let limit = query.limit.unwrap_or(100);
    let entries = state::show(
        &**state.host.store(),
        &tenant,
        &id,
        query.after.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(entries))
}

/// Which key's history.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The key.
    pub key: String,
    /// At most this many versions, newest first (default 100).
    pub limit: Option<usize>,
}

/// A key's versions, newest first: who wrote each (a run, or a rewind) and
/// when.
#[utoipa::path(get, operation_id = "state_history",
    path = "/api/tenants/{tenant}/installations/{installation}/state/history", tag = "state",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id"),
           HistoryQuery),
    responses((status = 200, body = Vec<StateVersion>), Problems))]
pub async fn history(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<StateVersion>>> {
    caller.require(Permission::Read)?;
    visible(&state, &caller, &tenant, &id).await?;
    let limit = query.limit.unwrap_or(100);
    let versions = state::history(&**state.host.store(), &tenant, &id, &query.key, limit).await?;
    Ok(Json(versions))
}

/// A rewind to ask for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rewind {
    /// Restore the storage as it was before this run of the installation.
    pub before_run: i64,
    /// Only show what would change.
    #[serde(default)]
    pub dry_run: bool,
    /// The `as_of` of the dry run that was shown: the rewind is refused
    /// (409 `stale_revision`) if a run committed since.
    pub as_of: Option<i64>,
}

/// Restores the installation's storage as it was before a run: every key
/// that run or a later one changed gets its value from before (or is
/// deleted). Refused while a run of the installation is in progress (409
/// `run_in_progress`) and when the history no longer reaches back (409
/// `history_pruned`).
#[utoipa::path(post, operation_id = "state_rewind",
    path = "/api/tenants/{tenant}/installations/{installation}/state/rewind", tag = "state",
    request_body = Rewind,
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id")),
    responses((status = 200, body = RewindSummary), Problems))]
pub async fn rewind(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    Json(body): Json<Rewind>,
) -> ApiResult<Json<RewindSummary>> {
    caller.require(Permission::Operate)?;
    let row = visible(&state, &caller, &tenant, &id).await?;
    let store = state.host.store();
    if body.dry_run {
        let plan = state::plan_rewind(&**store, &tenant, &id, body.before_run).await?;
        return Ok(Json(plan));
    }
    let now = Utc::now().timestamp();
    let scope = (row.tenant.as_str(), row.id.as_str());
    let done =
        actions::rewind_state(&**store, &caller, scope, body.before_run, body.as_of, now).await?;
    Ok(Json(done))
}
