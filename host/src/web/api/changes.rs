//! Changes that need a plan the operator approves: install, reauthorise
//! (new credentials or settings, or an OAuth authorisation), upgrade.
//!
//! Each takes `dry_run` to see the plan first: the egress and record
//! grants, what they add to what was approved, and "Test connection"'s
//! result. Committing a plan that widens egress or record access needs
//! `approve_egress` / `approve_data` in the request and a token with the
//! `approve` permission; nothing is saved if the connection test fails.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::auth::Allowed;
use super::installations::visible;
use super::{ApiError, ApiResult, Problems};
use crate::admin::{Caller, Permission, actions};
use crate::lifecycle::{self, InstallRequest, LifecycleError, Plan};
use crate::runs::Mode;
use crate::web::WebState;

/// A plan, as shown for approval (secrets by name only).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    /// `tenant/installation`.
    pub installation: String,
    /// The plugin it runs: `id@version`.
    pub plugin: String,
    /// The component's sha256.
    pub component_sha256: String,
    /// The mode.
    pub mode: Mode,
    /// Non-secret settings.
    pub config: BTreeMap<String, String>,
    /// The secret settings it has.
    pub secrets: Vec<String>,
    /// What it may reach: each rule, its service, and the permitted domain
    /// that allows it (none: the installation's config asked for it).
    pub egress: Vec<GrantView>,
    /// Hosts the manifest asks for that are not granted, and why.
    pub egress_refused: Vec<String>,
    /// Egress not approved before (all of it for an install): approving it
    /// needs `approve_egress`.
    pub egress_added: Vec<String>,
    /// Egress approved before that is no longer granted.
    pub egress_removed: Vec<String>,
    /// The tenant's records it may read and write.
    pub records: Vec<String>,
    /// Record access not approved before: approving it needs
    /// `approve_data`.
    pub records_added: Vec<String>,
    /// Config keys the new version no longer declares (dropped).
    pub config_dropped: Vec<String>,
    /// Its feeds' schedules.
    pub schedules: Vec<String>,
    /// "Test connection": none if it was not asked for.
    pub test_connection: Option<CheckResult>,
    /// Whether it was saved (false for a dry run).
    pub committed: bool,
    /// The installation's revision after the change (when committed).
    pub revision: Option<i64>,
}

/// One egress grant of a plan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GrantView {
    /// The rule.
    pub rule: String,
    /// The service it is for.
    pub service: String,
    /// The permitted domain that allows it, if one does.
    pub permitted_by: Option<String>,
}

/// How "Test connection" (the plugin's check()) went.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckResult {
    /// Whether it passed.
    pub ok: bool,
    /// The mode it ran in.
    pub mode: Mode,
    /// Why it failed.
    pub message: Option<String>,
}

fn view(plan: &Plan, check: Option<CheckResult>) -> PlanView {
    let inst = &plan.installation;
    PlanView {
        installation: format!("{}/{}", inst.tenant, inst.id),
        plugin: plan.plugin.label(),
        component_sha256: plan.plugin.digest.clone(),
        mode: inst.mode,
        config: inst.config.plain().clone(),
        secrets: inst.config.secret_keys().map(str::to_string).collect(),
        egress: plan
            .grants
            .granted
            .iter()
            .map(|g| GrantView {
                rule: g.rule.to_string(),
                service: g.rule.service.clone(),
                permitted_by: g.permitted_by.as_ref().map(|p| p.domain.to_string()),
            })
            .collect(),
        egress_refused: plan
            .grants
            .refused
            .iter()
            .map(|r| format!("{} ({}): {}", r.host, r.service, r.reason))
            .collect(),
        egress_added: plan.egress_added.clone(),
        egress_removed: plan.egress_removed.clone(),
        records: lifecycle::data_text(&plan.plugin.manifest.data),
        records_added: plan.data_added.clone(),
        config_dropped: plan.config_dropped.clone(),
        schedules: plan
            .schedules
            .iter()
            .map(|s| format!("{} {} {}", s.feed, s.cron, s.time_zone))
            .collect(),
        test_connection: check,
        committed: false,
        revision: None,
    }
}

/// What every planned change takes besides its own fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    /// Run the plugin's check() ("Test connection") first; nothing is saved
    /// if it fails (default true).
    #[serde(default = "yes")]
    pub test_connection: bool,
    /// The mode the check runs in (default `test`: nothing that changes a
    /// third party is sent).
    #[serde(default = "test_mode")]
    pub check_mode: Mode,
    /// Approve the egress the plan adds (needs the `approve` permission).
    #[serde(default)]
    pub approve_egress: bool,
    /// Approve the record access the plan adds (needs `approve`).
    #[serde(default)]
    pub approve_data: bool,
    /// Only plan and test: save nothing.
    #[serde(default)]
    pub dry_run: bool,
}

fn yes() -> bool {
    true
}

fn test_mode() -> Mode {
    Mode::Test
}

/// Config as `KEY=VALUE` assignments, as the lifecycle takes them.
fn assignments(config: &BTreeMap<String, String>) -> Vec<String> {
    config.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Tests the plan's connection if asked, refuses a failed test, and checks
/// the approvals a commit needs (a dry run needs none).
async fn test_and_approve(
    state: &WebState,
    caller: &Caller,
    plan: &Plan,
    approval: &Approval,
) -> ApiResult<Option<CheckResult>> {
    if plan.installation.config.secret_keys().next().is_some() && state.host.keyring().is_none() {
        return Err(LifecycleError::NoMasterKey.into());
    }
    let check = if approval.test_connection {
        let outcome = state
            .host
            .check(&plan.plugin, &plan.installation, approval.check_mode)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        Some(CheckResult {
            ok: outcome.is_ok(),
            mode: approval.check_mode,
            message: outcome.err(),
        })
    } else {
        None
    };
    if approval.dry_run {
        return Ok(check);
    }
    if let Some(CheckResult {
        ok: false, message, ..
    }) = &check
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "check_failed",
            format!(
                "test connection failed: {}; nothing was changed",
                message.as_deref().unwrap_or("")
            ),
        ));
    }
    if (approval.approve_egress || approval.approve_data) && !caller.may(Permission::Approve) {
        return Err(ApiError::forbidden("approve"));
    }
    plan.require_approval(approval.approve_egress)?;
    plan.require_data_approval(approval.approve_data)?;
    Ok(check)
}

/// An installation to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewInstallation {
    /// The plugin's digest in the plugin store (`GET /api/plugins`).
    pub plugin: String,
    /// The installation's id within the tenant (default: the plugin id).
    pub name: Option<String>,
    /// Settings, secrets included (sealed before they are stored; never
    /// shown back).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The initial mode (default `test`).
    #[serde(default = "test_mode")]
    pub mode: Mode,
    /// Schedule overrides: feed → cron with seconds.
    #[serde(default)]
    pub schedules: BTreeMap<String, String>,
    /// The IANA time zone the schedules are read in (default UTC).
    pub time_zone: Option<String>,
    /// Test, approvals, dry run.
    #[serde(flatten)]
    pub approval: Approval,
}

/// Adds an integration: plans it from a stored plugin and the config,
/// tests the connection, and saves it when approved (201), or shows the
/// plan (`dry_run`, 200).
#[utoipa::path(post, operation_id = "changes_install",
    path = "/api/tenants/{tenant}/installations", tag = "installations",
    params(("tenant" = String, Path, description = "The tenant's id")),
    request_body = NewInstallation,
    responses((status = 201, body = PlanView), (status = 200, body = PlanView), Problems))]
pub async fn install(
    State(state): State<WebState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Json(body): Json<NewInstallation>,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    caller.require(Permission::Operate)?;
    caller.tenant(&tenant)?;
    let stored = lifecycle::stored_plugin(&state.host, &body.plugin)?;
    let request = InstallRequest {
        tenant: tenant.clone(),
        id: body.name,
        plugin_dir: stored.plugin.dir.clone(),
        assignments: assignments(&body.config),
        mode: body.mode,
        schedules: body.schedules.into_iter().collect(),
        time_zone: body.time_zone.unwrap_or_else(|| "UTC".into()),
    };
    let plan = lifecycle::plan_install(&state.host, &request).await?;
    let check = test_and_approve(&state, &caller, &plan, &body.approval).await?;
    let mut shown = view(&plan, check);
    if body.approval.dry_run {
        return Ok((StatusCode::OK, Json(shown)));
    }
    let now = Utc::now().timestamp();
    let store = state.host.store();
    let row = lifecycle::commit_install(&**store, state.host.keyring(), &plan, now).await?;
    let detail = format!("{} ({} mode)", plan.plugin.label(), row.mode);
    actions::record_change(&**store, &caller, "installation.install", &row, detail, now).await?;
    shown.committed = true;
    shown.revision = Some(row.revision);
    Ok((StatusCode::CREATED, Json(shown)))
}

/// New credentials or settings for an installation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Reauthorisation {
    /// Settings to change (secrets included); the others stay.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The revision read (409 `stale_revision` if it changed since).
    pub revision: i64,
    /// Test, approvals, dry run.
    #[serde(flatten)]
    pub approval: Approval,
}

/// "Reauthorise": replaces credentials or settings, re-runs Test
/// connection, and saves only if it passes.
#[utoipa::path(post, operation_id = "changes_reauthorise",
    path = "/api/tenants/{tenant}/installations/{installation}/reauthorise",
    tag = "installations",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id")),
    request_body = Reauthorisation,
    responses((status = 200, body = PlanView), Problems))]
pub async fn reauthorise(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    Json(body): Json<Reauthorisation>,
) -> ApiResult<Json<PlanView>> {
    caller.require(Permission::Operate)?;
    let row = visible(&state, &caller, &tenant, &id).await?;
    lifecycle::check_revision(&row, Some(body.revision))?;
    let host = &state.host;
    let plan =
        lifecycle::plan_reauthorise(host, host.keyring(), &row, &assignments(&body.config)).await?;
    let keys: Vec<&str> = body.config.keys().map(String::as_str).collect();
    let detail = format!("changed: {}", keys.join(", "));
    let change = Change {
        action: "installation.reauthorise",
        detail,
    };
    commit_change(&state, &caller, &row, &plan, &body.approval, change).await
}

/// A change of an installation to save and record.
struct Change {
    /// Its name in the audit of admin actions.
    action: &'static str,
    /// The change in words.
    detail: String,
}

/// Tests and approves `plan` (a change of `row`), then, unless it is a dry
/// run, saves it against the revision `row` was read at and records it.
async fn commit_change(
    state: &WebState,
    caller: &Caller,
    row: &crate::storage::InstallationRow,
    plan: &Plan,
    approval: &Approval,
    change: Change,
) -> ApiResult<Json<PlanView>> {
    let check = test_and_approve(state, caller, plan, approval).await?;
    let mut shown = view(plan, check);
    if approval.dry_run {
        return Ok(Json(shown));
    }
    let host = &state.host;
    let now = Utc::now().timestamp();
    let saved = lifecycle::commit_change(&**host.store(), host.keyring(), row, plan, now).await?;
    actions::record_change(
        &**host.store(),
        caller,
        change.action,
        row,
        change.detail,
        now,
    )
    .await?;
    shown.committed = true;
    shown.revision = Some(saved.revision);
    Ok(Json(shown))
}

/// Another version of the installation's plugin.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Upgrade {
    /// The new version's digest in the plugin store.
    pub plugin: String,
    /// Settings to set or change with it.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The revision read.
    pub revision: i64,
    /// Test, approvals, dry run.
    #[serde(flatten)]
    pub approval: Approval,
}

/// Moves an installation to another version of its plugin, showing the
/// diff (egress and record access added and removed, config dropped);
/// what it widens needs approval.
#[utoipa::path(post, operation_id = "changes_upgrade",
    path = "/api/tenants/{tenant}/installations/{installation}/upgrade",
    tag = "installations",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id")),
    request_body = Upgrade,
    responses((status = 200, body = PlanView), Problems))]
pub async fn upgrade(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    Json(body): Json<Upgrade>,
) -> ApiResult<Json<PlanView>> {
    caller.require(Permission::Operate)?;
    let row = visible(&state, &caller, &tenant, &id).await?;
    lifecycle::check_revision(&row, Some(body.revision))?;
    let stored = lifecycle::stored_plugin(&state.host, &body.plugin)?;
    let host = &state.host;
    let plan = lifecycle::plan_upgrade(
        host,
        host.keyring(),
        &row,
        &stored.plugin.dir,
        &assignments(&body.config),
    )
    .await?;
    let detail = format!(
        "{}@{} -> {}",
        row.plugin_id,
        row.plugin_version,
        plan.plugin.label()
    );
    let change = Change {
        action: "installation.upgrade",
        detail,
    };
    commit_change(&state, &caller, &row, &plan, &body.approval, change).await
}

/// Where the authorisation server sends the browser back.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthStart {
    /// The redirect URI registered with the provider (its callback on
    /// `serve --listen`: `https://…/oauth/callback`), or its registered
    /// name (eBay's RuName).
    pub redirect_uri: String,
}

/// The URL to send the operator's browser to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthStarted {
    /// The provider's authorisation URL (holds a one-time `state`).
    pub url: String,
    /// Until when it can be used (Unix seconds).
    pub expires_at: i64,
}

/// Starts an OAuth2 authorisation of an installation (Reauthorise for
/// OAuth connectors): the provider sends the browser back to `serve
/// --listen`'s `/oauth/callback`, which stores the sealed tokens.
#[utoipa::path(post, operation_id = "changes_oauth_start",
    path = "/api/tenants/{tenant}/installations/{installation}/oauth/start",
    tag = "installations", request_body = OAuthStart,
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id")),
    responses((status = 200, body = OAuthStarted), Problems))]
pub async fn oauth_start(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    Json(body): Json<OAuthStart>,
) -> ApiResult<Json<OAuthStarted>> {
    caller.require(Permission::Operate)?;
    let row = visible(&state, &caller, &tenant, &id).await?;
    let host = &state.host;
    let (plugin, installation) = lifecycle::load(&**host.store(), host.keyring(), &row).await?;
    let start =
        crate::oauth::flow::start_authorization(host, &plugin, &installation, &body.redirect_uri)
            .await
            .map_err(|e| ApiError::invalid(e.to_string()))?;
    let now = Utc::now().timestamp();
    let store = &**host.store();
    actions::record_change(
        store,
        &caller,
        "installation.oauth_start",
        &row,
        String::new(),
        now,
    )
    .await?;
    Ok(Json(OAuthStarted {
        url: start.url,
        expires_at: start.expires_at,
    }))
}
