//! The bell: notifications raised by failing feeds, counted, listed and
//! acknowledged.

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::auth::Allowed;
use super::{ApiResult, Problems};
use crate::admin::{Caller, Permission, actions};
use crate::storage::NotificationRow;
use crate::web::WebState;

/// Which notifications to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    /// Acknowledged ones too (default: open ones only).
    #[serde(default)]
    pub all: bool,
}

/// A tenant's notifications, newest first.
#[utoipa::path(get, operation_id = "notifications_list",
    path = "/api/tenants/{tenant}/notifications", tag = "notifications",
    params(("tenant" = String, Path, description = "The tenant's id"), NotificationsQuery),
    responses((status = 200, body = Vec<NotificationRow>), Problems))]
pub async fn list(
    State(state): State<WebState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Query(query): Query<NotificationsQuery>,
) -> ApiResult<Json<Vec<NotificationRow>>> {
    caller.require(Permission::Read)?;
    caller.tenant(&tenant)?;
    let rows = state
        .host
        .store()
        .notifications(Some(&tenant), query.all)
        .await?;
    Ok(Json(rows))
}

/// The bell's number.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bell {
    /// Open (unacknowledged) notifications the token may see.
    pub open: usize,
}

/// How many notifications are open: every tenant's for an operator's
/// token, its tenant's for a tenant's.
#[utoipa::path(get, operation_id = "notifications_count",
    path = "/api/notifications/count", tag = "notifications",
    responses((status = 200, body = Bell), Problems))]
pub async fn count(State(state): State<WebState>, caller: Caller) -> ApiResult<Json<Bell>> {
    caller.require(Permission::Read)?;
    let rows = state
        .host
        .store()
        .notifications(caller.own_tenant(), false)
        .await?;
    Ok(Json(Bell { open: rows.len() }))
}

/// Acknowledges a notification (409 if it already was); attributed to the
/// token.
#[utoipa::path(post, operation_id = "notifications_acknowledge",
    path = "/api/tenants/{tenant}/notifications/{id}/acknowledge",
    tag = "notifications",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("id" = i64, Path, description = "The notification's id")),
    responses((status = 200, body = NotificationRow), Problems))]
pub async fn acknowledge(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, i64)>,
) -> ApiResult<Json<NotificationRow>> {
    caller.require(Permission::Operate)?;
    caller.tenant(&tenant)?;
    let now = Utc::now().timestamp();
    let row = actions::acknowledge(&**state.host.store(), &caller, &tenant, id, now).await?;
    Ok(Json(row))
}
