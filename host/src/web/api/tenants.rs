//! Tenants, the caller's own token, and the audit of admin actions.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::auth::Allowed;
use super::{ApiError, ApiResult, Problems};
use crate::admin::{self, Action, Caller, Permission};
use crate::lifecycle;
use crate::storage::{AdminActionRow, TenantRow};
use crate::web::WebState;

/// The caller's token, as the API sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The token's number.
    pub token_id: i64,
    /// The token's name.
    pub name: String,
    /// The tenant it is limited to; none for an operator's token.
    pub tenant: Option<String>,
    /// Its permissions (`read`, `operate`, `approve`).
    pub permissions: Vec<String>,
}

/// Who the token is.
#[utoipa::path(get, operation_id = "tenants_whoami",
    path = "/api/whoami", tag = "tenants",
    responses((status = 200, body = WhoAmI), Problems))]
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        token_id: caller.token_id,
        tenant: caller.own_tenant().map(str::to_string),
        permissions: caller
            .permissions()
            .into_iter()
            .map(str::to_string)
            .collect(),
        name: caller.name,
    })
}

/// A tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// When it was added (Unix seconds).
    pub created_at: i64,
}

impl From<TenantRow> for Tenant {
    fn from(t: TenantRow) -> Self {
        Tenant {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
        }
    }
}

/// The tenants the token may see (a tenant's token: its own).
#[utoipa::path(get, operation_id = "tenants_list",
    path = "/api/tenants", tag = "tenants",
    responses((status = 200, body = Vec<Tenant>), Problems))]
pub async fn list(State(state): State<WebState>, caller: Caller) -> ApiResult<Json<Vec<Tenant>>> {
    caller.require(Permission::Read)?;
    let tenants = state.host.store().tenants().await?;
    Ok(Json(
        tenants
            .into_iter()
            .filter(|t| caller.sees(&t.id))
            .map(Tenant::from)
            .collect(),
    ))
}

/// A tenant to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Its id: 1-64 lower-case letters, digits, `-` and `_`.
    pub id: String,
    /// Display name (default: the id).
    pub name: Option<String>,
}

/// Adds a tenant (an operator's token with `operate`).
#[utoipa::path(post, operation_id = "tenants_add",
    path = "/api/tenants", tag = "tenants", request_body = NewTenant,
    responses((status = 201, body = Tenant), Problems))]
pub async fn add(
    State(state): State<WebState>,
    caller: Caller,
    Json(new): Json<NewTenant>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    caller.operator()?;
    caller.require(Permission::Operate)?;
    lifecycle::check_id(&new.id)?;
    let now = Utc::now().timestamp();
    let row = TenantRow {
        name: new.name.unwrap_or_else(|| new.id.clone()),
        id: new.id,
        created_at: now,
    };
    let store = state.host.store();
    store.add_tenant(row.clone()).await?;
    let action = Action {
        action: "tenant.add",
        tenant: Some(&row.id),
        target: row.id.clone(),
        detail: format!("name {}", row.name),
    };
    admin::record(&**store, Some(&caller), action, now).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// How many admin actions to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActionsQuery {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// The audit of admin actions, newest first: who changed what. An
/// operator's token sees all; a tenant's sees its tenant's.
#[utoipa::path(get, operation_id = "tenants_admin_actions",
    path = "/api/admin-actions", tag = "tenants", params(ActionsQuery),
    responses((status = 200, body = Vec<AdminActionRow>), Problems))]
pub async fn admin_actions(
    State(state): State<WebState>,
    caller: Caller,
    Query(query): Query<ActionsQuery>,
) -> ApiResult<Json<Vec<AdminActionRow>>> {
    caller.require(Permission::Read)?;
    let tenant = match (caller.own_tenant(), query.tenant.as_deref()) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::not_found(format!("no tenant `{asked}`")));
        }
        (Some(own), _) => Some(own.to_string()),
        (None, asked) => asked.map(str::to_string),
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state
        .host
        .store()
        .admin_actions(tenant.as_deref(), limit)
        .await?;
    Ok(Json(rows))
}
