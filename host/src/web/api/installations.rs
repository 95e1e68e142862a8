//! Installations: list, detail, on/off, test/live, a feed's schedule,
//! Run now, removal. Every change takes the revision the caller read and is
//! refused with 409 `stale_revision` if the installation changed since.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::auth::Allowed;
use super::{ApiResult, Problems};
use crate::admin::{Caller, Permission, actions};
use crate::lifecycle::{self, QueuedRunNow};
use crate::manifest::Direction;
use crate::runs::Mode;
use crate::storage::{InstallationRow, NEVER, ScheduleRow, Store};
use crate::web::WebState;

/// An installation, as the API shows it (secrets by name only).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Installation {
    /// The tenant.
    pub tenant: String,
    /// Its id within the tenant.
    pub id: String,
    /// The plugin's id.
    pub plugin: String,
    /// The plugin's version.
    pub version: String,
    /// The component's sha256.
    pub digest: String,
    /// `test` or `live`.
    pub mode: Mode,
    /// Whether its feeds run.
    pub enabled: bool,
    /// The revision to send with a change (optimistic concurrency).
    pub revision: i64,
    /// Non-secret settings.
    pub config: std::collections::BTreeMap<String, String>,
    /// The secret settings it has (their values are never shown).
    pub secrets: Vec<String>,
    /// The egress the operator approved, as text.
    pub egress: Vec<String>,
    /// Its feeds with their schedules.
    pub feeds: Vec<Feed>,
    /// When it was installed (Unix seconds).
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
}

/// A feed of an installation and its schedule.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Feed {
    /// The feed's name.
    pub name: String,
    /// `inbound` or `outbound`; none if the manifest cannot be read.
    pub direction: Option<String>,
    /// Its cron expression (with seconds), or `manual`.
    pub schedule: String,
    /// The IANA time zone it is read in.
    pub time_zone: String,
    /// Whether the operator overrode the manifest's default.
    pub overridden: bool,
    /// When it next runs (Unix seconds); none if not planned yet or never.
    pub next_run_at: Option<i64>,
}

fn feed_of(row: &InstallationRow, s: ScheduleRow) -> Feed {
    Feed {
        direction: lifecycle::feed_direction(row, &s.feed).map(|d| match d {
            Direction::Inbound => "inbound".to_string(),
            Direction::Outbound => "outbound".to_string(),
        }),
        next_run_at: s.due_at.filter(|&d| d != NEVER && d != 0),
        name: s.feed,
        schedule: s.cron,
        time_zone: s.time_zone,
        overridden: s.overridden,
    }
}

async fn view(store: &dyn Store, row: InstallationRow) -> ApiResult<Installation> {
    let secrets = store.secrets(&row.tenant, &row.id).await?;
    let schedules = store.schedules(&row.tenant, &row.id).await?;
    let feeds = schedules.into_iter().map(|s| feed_of(&row, s)).collect();
    Ok(Installation {
        mode: lifecycle::stored_mode(&row),
        secrets: secrets.into_iter().map(|s| s.key).collect(),
        feeds,
        tenant: row.tenant,
        id: row.id,
        plugin: row.plugin_id,
        version: row.plugin_version,
        digest: row.plugin_digest,
        enabled: row.enabled,
        revision: row.revision,
        config: row.config,
        egress: row.approved_egress,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// The installation `tenant/id` if the caller may see it.
pub async fn visible(
    state: &WebState,
    caller: &Caller,
    tenant: &str,
    id: &str,
) -> ApiResult<InstallationRow> {
    caller.tenant(tenant)?;
    Ok(lifecycle::installation_row(&**state.host.store(), tenant, id).await?)
}

/// A tenant's installations.
#[utoipa::path(get, operation_id = "installations_list",
    path = "/api/tenants/{tenant}/installations", tag = "installations",
    params(("tenant" = String, Path, description = "The tenant's id")),
    responses((status = 200, body = Vec<Installation>), Problems))]
pub async fn list(
    State(state): State<WebState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<Installation>>> {
    caller.require(Permission::Read)?;
    caller.tenant(&tenant)?;
    let store = state.host.store();
    if !store.tenant_exists(&tenant).await? {
        return Err(super::ApiError::not_found(format!("no tenant `{tenant}`")));
    }
    let mut out = Vec::new();
    for row in store.installations(Some(&tenant), false).await? {
        out.push(view(&**store, row).await?);
    }
    Ok(Json(out))
}

/// One installation with its feeds.
#[utoipa::path(get, operation_id = "installations_show",
    path = "/api/tenants/{tenant}/installations/{installation}",
    tag = "installations",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id")),
    responses((status = 200, body = Installation), Problems))]
pub async fn show(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Installation>> {
    caller.require(Permission::Read)?;
    let row = visible(&state, &caller, &tenant, &id).await?;
    Ok(Json(view(&**state.host.store(), row).await?))
}

/// Switch on or off.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEnabled {
    /// On (its schedules run) or off.
    pub enabled: bool,
    /// The revision read (409 `stale_revision` if it changed since).
    pub revision: i64,
}

/// Switches an installation on or off ("the enabled switch").
#[utoipa::path(put, operation_id = "installations_set_enabled",
    path = "/api/tenants/{tenant}/installations/{installation}/enabled",
    tag = "installations", request_body = SetEnabled,
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id")),
    responses((status = 200, body = Installation), Problems))]
pub async fn set_enabled(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    Json(body): Json<SetEnabled>,
) -> ApiResult<Json<Installation>> {
    caller.require(Permission::Operate)?;
    visible(&state, &caller, &tenant, &id).await?;
    let store = state.host.store();
    let now = Utc::now().timestamp();
    let row = actions::set_enabled(
        &**store,
        &caller,
        (&tenant, &id),
        body.enabled,
        body.revision,
        now,
    )
    .await?;
    Ok(Json(view(&**store, row).await?))
}

/// Set test or live.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMode {
    /// `test` (nothing that changes a third party is sent) or `live`.
    pub mode: Mode,
    /// The revision read.
    pub revision: i64,
}

/// Sets an installation to test or live.
#[utoipa::path(put, operation_id = "installations_set_mode",
    path = "/api/tenants/{tenant}/installations/{installation}/mode",
    tag = "installations", request_body = SetMode,
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id")),
    responses((status = 200, body = Installation), Problems))]
pub async fn set_mode(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    Json(body): Json<SetMode>,
) -> ApiResult<Json<Installation>> {
    caller.require(Permission::Operate)?;
    visible(&state, &caller, &tenant, &id).await?;
    let store = state.host.store();
    let now = Utc::now().timestamp();
    let row =
        lifecycle::set_mode(&**store, &tenant, &id, body.mode, Some(body.revision), now).await?;
    let detail = format!("mode {}", body.mode.as_str());
    record(&state, &caller, "installation.mode", &row, detail, now).await?;
    Ok(Json(view(&**store, row).await?))
}

/// A feed's schedule.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSchedule {
    /// A cron expression with seconds (`0 */15 * * * *`), or none to go
    /// back to the manifest's default.
    pub cron: Option<String>,
    /// The IANA time zone the installation's schedules are read in (default:
    /// unchanged).
    pub time_zone: Option<String>,
    /// The revision read.
    pub revision: i64,
}

/// Overrides a feed's schedule, or goes back to the manifest's default.
#[utoipa::path(put, operation_id = "installations_set_schedule",
    path = "/api/tenants/{tenant}/installations/{installation}/feeds/{feed}/schedule",
    tag = "installations", request_body = SetSchedule,
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id"),
           ("feed" = String, Path, description = "The feed's name")),
    responses((status = 200, body = Installation), Problems))]
pub async fn set_schedule(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id, feed)): Path<(String, String, String)>,
    Json(body): Json<SetSchedule>,
) -> ApiResult<Json<Installation>> {
    caller.require(Permission::Operate)?;
    visible(&state, &caller, &tenant, &id).await?;
    let store = state.host.store();
    let now = Utc::now().timestamp();
    let schedule = lifecycle::set_schedule(
        &**store,
        &tenant,
        &id,
        lifecycle::ScheduleChange {
            feed: &feed,
            cron: body.cron.as_deref(),
            time_zone: body.time_zone.as_deref(),
        },
        Some(body.revision),
        now,
    )
    .await?;
    let row = lifecycle::installation_row(&**store, &tenant, &id).await?;
    let detail = format!("{feed}: {} {}", schedule.cron, schedule.time_zone);
    record(&state, &caller, "installation.schedule", &row, detail, now).await?;
    Ok(Json(view(&**store, row).await?))
}

/// Queues an immediate run of a feed ("Run now"); a running `serve` starts
/// it (after the run of that feed in progress, if one is).
#[utoipa::path(post, operation_id = "installations_run_now",
    path = "/api/tenants/{tenant}/installations/{installation}/feeds/{feed}/run-now",
    tag = "installations",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id"),
           ("feed" = String, Path, description = "The feed's name")),
    responses((status = 202, body = QueuedRunNow), Problems))]
pub async fn run_now(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id, feed)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<QueuedRunNow>)> {
    caller.require(Permission::Operate)?;
    let row = visible(&state, &caller, &tenant, &id).await?;
    let now = Utc::now().timestamp();
    let queued = actions::run_now(&**state.host.store(), &caller, &row, &feed, now).await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

/// The revision of a removal.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Revision {
    /// The revision read (409 `stale_revision` if it changed since).
    pub revision: i64,
}

/// Removes an installation: its config, secrets, storage, schedules,
/// artifacts, feed token and webhook secret go; its run history stays.
/// Refused (409) while one of its runs is in progress.
#[utoipa::path(delete, operation_id = "installations_remove",
    path = "/api/tenants/{tenant}/installations/{installation}",
    tag = "installations", params(
        ("tenant" = String, Path, description = "The tenant's id"),
        ("installation" = String, Path, description = "The installation's id"),
        Revision),
    responses((status = 204, description = "Removed"), Problems))]
pub async fn remove(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    Query(revision): Query<Revision>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::Operate)?;
    let row = visible(&state, &caller, &tenant, &id).await?;
    let now = Utc::now().timestamp();
    actions::remove(&**state.host.store(), &caller, &row, revision.revision, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Records a change to `row` by `caller`.
async fn record(
    state: &WebState,
    caller: &Caller,
    action: &str,
    row: &InstallationRow,
    detail: String,
    now: i64,
) -> ApiResult<()> {
    actions::record_change(&**state.host.store(), caller, action, row, detail, now).await?;
    Ok(())
}
