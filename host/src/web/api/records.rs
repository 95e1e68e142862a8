//! The tenant's shared records, platform side: list (all, or pending for
//! one consumer), one record with who acknowledged it, import (JSON Lines,
//! all-or-nothing checked first), and un-acknowledge to export one again.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::auth::Allowed;
use super::{ApiError, ApiResult, Problems};
use crate::admin::{self, Action, Caller, Permission};
use crate::records::admin::{self as records, AdminError, ListQuery, ListedRecord, RecordDetail};
use crate::records::import::{self, ImportError, ImportSummary};
use crate::web::WebState;

/// The most records one page lists.
const MAX_PAGE: usize = 1_000;

/// The largest JSON Lines body an import takes (bigger files: `airlock
/// records import`).
pub const MAX_IMPORT_BYTES: usize = 32 << 20;

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::UnknownCollection(m) => ApiError::not_found(m),
            AdminError::Storage(s) => s.into(),
            other => ApiError::internal(&other),
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::UnknownCollection(_) | ImportError::UnknownTenant(_) => {
                ApiError::not_found(e.to_string())
            }
            ImportError::Invalid { .. } | ImportError::Read(_) => ApiError::invalid(e.to_string()),
            ImportError::Changed { .. } => {
                ApiError::new(axum::http::StatusCode::CONFLICT, "conflict", e.to_string())
            }
            other => ApiError::internal(&other),
        }
    }
}

/// Which records to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    /// Only those this consumer installation has not acknowledged (new, or
    /// changed since it acknowledged them).
    pub pending_for: Option<String>,
    /// Only records changed after this version (to page on: the last
    /// version of the previous page).
    #[serde(default)]
    pub after: i64,
    /// At most this many, oldest change first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// A collection's records, in the order they changed.
#[utoipa::path(get, operation_id = "records_list",
    path = "/api/tenants/{tenant}/records/{collection}", tag = "records",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("collection" = String, Path, description = "`products`, `orders`, …"),
           RecordsQuery),
    responses((status = 200, body = Vec<ListedRecord>), Problems))]
pub async fn list(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, collection)): Path<(String, String)>,
    Query(query): Query<RecordsQuery>,
) -> ApiResult<Json<Vec<ListedRecord>>> {
    caller.require(Permission::Read)?;
    caller.tenant(&tenant)?;
    let query = ListQuery {
        pending_for: query.pending_for,
        after: query.after,
        limit: query.limit.unwrap_or(100).clamp(1, MAX_PAGE),
    };
    let listed = records::list(&**state.host.store(), &tenant, &collection, &query).await?;
    Ok(Json(listed))
}

/// One record, with who acknowledged which version and each
/// installation's annotations.
#[utoipa::path(get, operation_id = "records_show",
    path = "/api/tenants/{tenant}/records/{collection}/{record}", tag = "records",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("collection" = String, Path, description = "`products`, `orders`, …"),
           ("record" = String, Path, description = "The record's id")),
    responses((status = 200, body = RecordDetail), Problems))]
pub async fn show(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, collection, id)): Path<(String, String, String)>,
) -> ApiResult<Json<RecordDetail>> {
    caller.require(Permission::Read)?;
    caller.tenant(&tenant)?;
    records::show(&**state.host.store(), &tenant, &collection, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no record {collection}/{id}")))
}

/// Imports records as the platform: a JSON Lines body, one record per line
/// (each checked against the collection's schema; nothing is written unless
/// every line is valid). At most 32 MiB; bigger files with `airlock records
/// import`.
#[utoipa::path(post, operation_id = "records_import",
    path = "/api/tenants/{tenant}/records/{collection}", tag = "records",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("collection" = String, Path, description = "`products`, `orders`, …")),
    request_body(content = String, content_type = "application/x-ndjson",
        description = "One JSON record per line"),
    responses((status = 200, body = ImportSummary), Problems))]
pub async fn import(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, collection)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<ImportSummary>> {
    caller.require(Permission::Operate)?;
    caller.tenant(&tenant)?;
    let store = state.host.store();
    let reader = std::io::Cursor::new(body);
    let summary = import::import_jsonl(&**store, &tenant, &collection, reader, &mut |_| {}).await?;
    let action = Action {
        action: "records.import",
        tenant: Some(&tenant),
        target: format!("{tenant}/{collection}"),
        detail: format!("{} records", summary.records),
    };
    admin::record(&**store, Some(&caller), action, Utc::now().timestamp()).await?;
    Ok(Json(summary))
}

/// Whose acknowledgement to take back.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Unacknowledge {
    /// The consumer installation that acknowledged it.
    pub installation: String,
}

/// Whether there was an acknowledgement to take back.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Unacknowledged {
    /// True if the installation had acknowledged the record; it is now
    /// pending for it again (exported at its next run).
    pub unacknowledged: bool,
}

/// Takes back a consumer's acknowledgement of a record, so that it is
/// exported again.
#[utoipa::path(post, operation_id = "records_unacknowledge",
    path = "/api/tenants/{tenant}/records/{collection}/{record}/unacknowledge", tag = "records",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("collection" = String, Path, description = "`products`, `orders`, …"),
           ("record" = String, Path, description = "The record's id")),
    request_body = Unacknowledge,
    responses((status = 200, body = Unacknowledged), Problems))]
pub async fn unacknowledge(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, collection, id)): Path<(String, String, String)>,
    Json(body): Json<Unacknowledge>,
) -> ApiResult<Json<Unacknowledged>> {
    caller.require(Permission::Operate)?;
    caller.tenant(&tenant)?;
    let store = state.host.store();
    let done = records::unack(&**store, &tenant, &collection, &id, &body.installation).await?;
    if done {
        let action = Action {
            action: "records.unacknowledge",
            tenant: Some(&tenant),
            target: format!("{collection}/{id}"),
            detail: format!("for {}", body.installation),
        };
        admin::record(&**store, Some(&caller), action, Utc::now().timestamp()).await?;
    }
    Ok(Json(Unacknowledged {
        unacknowledged: done,
    }))
}
