//! Adding an integration (seed 001: "Add sales channel", then "Add" next to
//! a plugin, then its settings) and reauthorising one ("Reauthorise":
//! check the endpoint, confirm the key, Save).
//!
//! Add: the plugin store's plugins to choose from; then a form generated
//! from the plugin's config schema ([`super::config_form`]), what it may
//! reach (egress and the tenant's records) shown for approval, Test
//! connection, and Install. Both steps call what `airlock install` and
//! `airlock reauthorise` call: `lifecycle::plan_*` validates, the plugin's
//! `check()` runs ("Test connection", in test mode: whatever it writes is
//! discarded), and only if it passes does `lifecycle::commit_*` store the
//! change; a failed check saves nothing. Approving egress or record access
//! that the change adds needs the `approve` permission and the approval
//! box ticked.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::{Markup, html};

use super::config_form;
use super::form::{Fields, Posted};
use super::layout::{self, Ctx};
use super::session::Viewer;
use super::{ConsoleError, PageResult, require, see_other};
use crate::admin::{Permission, actions};
use crate::lifecycle::{self, InstallRequest, LifecycleError, Plan};
use crate::manifest::{Manifest, Plugin};
use crate::plugin_store::{self, PluginStore};
use crate::runs::Mode;
use crate::storage::InstallationRow;
use crate::web::WebState;

fn store_of(state: &WebState) -> Result<PluginStore, ConsoleError> {
    let dir = state.host.store().data_dir().ok_or_else(|| {
        ConsoleError::NotFound("this host has no plugin store (an in-memory database)".into())
    })?;
    Ok(PluginStore::in_data_dir(dir))
}

/// `/console/t/{tenant}/add`: the plugins to choose from.
pub async fn catalogue(
    State(state): State<WebState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    require(&ctx.viewer, Permission::Operate)?;
    let plugins = store_of(&state)?.list().map_err(LifecycleError::from)?;
    let body = html! {
        h1 { "Add an integration" }
        p class="muted" { "The plugins in this host's plugin store. A plugin gets there when it is "
            "first installed (" code { "airlock install DIR" } ") or uploaded by the operator." }
        @if plugins.is_empty() { p { "The plugin store is empty." } }
        div class="cards" {
            @for (digest, m) in &plugins {
                div class="card" {
                    span class="logo" aria-hidden="true" { (layout::initials(&m.plugin.id)) }
                    h2 { (m.plugin.id) " " span class="muted" { (m.plugin.version) } }
                    p { (m.plugin.description.clone().unwrap_or_default()) }
                    p class="muted" { (m.feeds.len()) " feeds"
                        @if let Some(k) = &m.plugin.kind { " · " (k) } }
                    a class="button" href=(ctx.path(&format!("add/{digest}")))
                        aria-label={ "Add " (m.plugin.id) " " (m.plugin.version) } { "Add" }
                }
            }
        }
        p { a href=(ctx.path("integrations")) { "Cancel" } }
    };
    Ok(ctx
        .page("integrations", "Add an integration", None, body)
        .into_response())
}

/// The verified plugin of store entry `digest`.
fn entry(state: &WebState, digest: &str) -> Result<Plugin, ConsoleError> {
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ConsoleError::NotFound("no such plugin".into()));
    }
    let dir = store_of(state)?.entry(digest);
    if !dir.is_dir() {
        return Err(ConsoleError::NotFound("no such plugin".into()));
    }
    Ok(plugin_store::load(&dir, digest).map_err(LifecycleError::from)?)
}

/// What a form post came to, shown above the form.
enum Outcome {
    /// Test connection passed.
    CheckPassed,
    /// Something failed; nothing was saved.
    Failed(String),
}

/// What the manifest asks to reach, before a plan exists.
fn asked(ctx: &Ctx, m: &Manifest) -> Markup {
    let data = lifecycle::data_text(&m.data);
    html! {
        ul {
            @for e in &m.egress.allow {
                li { code { (e.host) } " — " (e.service)
                    span class="muted" { " (granted if this host's permitted domains allow it)" } }
            }
            @for key in &m.egress.from_config {
                li { "The origin of the " code { (key) } " setting" }
            }
            @if m.egress.allow.is_empty() && m.egress.from_config.is_empty() {
                li { "No host: every HTTP request is denied." }
            }
            @for grant in &data { li { "Records: " (grant) } }
        }
        (approval_box(ctx, !m.egress.allow.is_empty() || !m.egress.from_config.is_empty() || !data.is_empty()))
    }
}

/// What the plan grants, worked out from the settings given.
fn granted(ctx: &Ctx, plan: &Plan) -> Markup {
    html! {
        ul {
            @for g in &plan.grants.granted {
                li { code { (g.rule) } " — " (g.rule.service)
                    @if plan.egress_added.contains(&g.rule.to_string()) { " " strong { "(new: needs approval)" } } }
            }
            @if plan.grants.granted.is_empty() { li { "No host: every HTTP request is denied." } }
            @for r in &plan.grants.refused {
                li { "Not granted: " code { (r.host) } " (" (r.service) "): " (r.reason) }
            }
            @for rule in &plan.egress_removed { li { "No longer granted: " code { (rule) } } }
            @for grant in &plan.data_added { li { "Records: " (grant) " " strong { "(new: needs approval)" } } }
            @for grant in &plan.data_removed { li { "Records no longer granted: " (grant) } }
        }
        (approval_box(ctx, !plan.egress_added.is_empty() || !plan.data_added.is_empty()))
    }
}

fn approval_box(ctx: &Ctx, needed: bool) -> Markup {
    let may = ctx.viewer.caller.may(Permission::Approve);
    html! {
        @if needed {
            div class="field" {
                input type="checkbox" id="approve" name="approve" value="yes" disabled[!may];
                label for="approve" style="display:inline" { " I approve the egress and record access above" }
                @if !may {
                    p class="hint" { "Approving needs a token with the " code { "approve" } " permission (a security reviewer's)." }
                }
            }
        }
    }
}

fn outcome_box(outcome: Option<&Outcome>) -> Markup {
    html! {
        @match outcome {
            Some(Outcome::CheckPassed) => {
                p class="ok-box" role="status" { "Test connection passed. Secrets are never sent back to the browser: type them again to install." }
            }
            Some(Outcome::Failed(e)) => {
                p class="error" role="alert" { (e) br; "Nothing was saved." }
            }
            None => {}
        }
    }
}

struct AddForm<'a> {
    digest: &'a str,
    plugin: &'a Plugin,
    values: BTreeMap<String, String>,
    name: String,
    mode: Mode,
    plan: Option<&'a Plan>,
    outcome: Option<Outcome>,
}

fn add_page(ctx: &Ctx, f: &AddForm<'_>) -> Markup {
    let m = &f.plugin.manifest;
    let body = html! {
        h1 { "Add " (m.plugin.id) " " span class="muted" { (m.plugin.version) } }
        (outcome_box(f.outcome.as_ref()))
        form method="post" action=(ctx.path(&format!("add/{}", f.digest))) {
            (ctx.csrf())
            fieldset {
                legend { "Integration" }
                div class="field" {
                    label for="name" { "Name (required)" }
                    input type="text" id="name" name="name" value=(f.name) required
                        pattern="[a-z0-9_\\-]{1,64}" aria-describedby="name-hint";
                    p class="hint" id="name-hint" { "Lower-case letters, digits, - and _. Never reused once removed." }
                }
                div class="field" {
                    label for="mode" { "Mode" }
                    select id="mode" name="mode" aria-describedby="mode-hint" {
                        option value="test" selected[f.mode == Mode::Test] { "Test" }
                        option value="live" selected[f.mode == Mode::Live] { "Live" }
                    }
                    p class="hint" id="mode-hint" { "In test mode nothing that changes a third party is sent." }
                }
            }
            fieldset {
                legend { "Settings" }
                (config_form::inputs(m, &f.values, &[]))
            }
            fieldset {
                legend { "What it may reach" }
                @match f.plan { Some(plan) => (granted(ctx, plan)), None => (asked(ctx, m)) }
            }
            div class="actions" {
                button type="submit" name="intent" value="test" class="secondary" { "Test connection" }
                button type="submit" name="intent" value="install" { "Install" }
                a href=(ctx.path("integrations")) { "Cancel" }
            }
        }
    };
    ctx.page("integrations", &format!("Add {}", m.plugin.id), None, body)
}

/// `GET /console/t/{tenant}/add/{digest}`: the settings form.
pub async fn form(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((tenant, digest)): Path<(String, String)>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    require(&ctx.viewer, Permission::Operate)?;
    let plugin = entry(&state, &digest)?;
    let page = add_page(
        &ctx,
        &AddForm {
            digest: &digest,
            name: plugin.manifest.plugin.id.clone(),
            plugin: &plugin,
            values: BTreeMap::new(),
            mode: Mode::Test,
            plan: None,
            outcome: None,
        },
    );
    Ok(page.into_response())
}

/// Why a change may not be saved without approval, if it may not.
fn approval_refused(ctx: &Ctx, plan: &Plan, fields: &Fields) -> Option<String> {
    if plan.egress_added.is_empty() && plan.data_added.is_empty() {
        return None;
    }
    if !ctx.viewer.caller.may(Permission::Approve) {
        return Some("This change grants egress or record access, which needs a token with the `approve` permission.".into());
    }
    (fields.get("approve") != Some("yes")).then(|| {
        "Tick the approval of the egress and record access shown to save this change.".into()
    })
}

/// Runs the plugin's check ("Test connection") in test mode.
async fn test_connection(state: &WebState, plan: &Plan) -> Result<Option<String>, ConsoleError> {
    let result = state
        .host
        .check(&plan.plugin, &plan.installation, Mode::Test)
        .await
        .map_err(LifecycleError::from)?;
    Ok(result.err().map(|e| format!("Test connection failed: {e}")))
}

/// `POST /console/t/{tenant}/add/{digest}`: Test connection, or Install.
pub async fn submit(
    State(state): State<WebState>,
    Path((tenant, digest)): Path<(String, String)>,
    posted: Posted,
) -> PageResult {
    let ctx = Ctx::load(&state, posted.viewer, &tenant).await?;
    require(&ctx.viewer, Permission::Operate)?;
    let plugin = entry(&state, &digest)?;
    let fields = posted.fields;
    let m = &plugin.manifest;
    let mode = if fields.get("mode") == Some("live") {
        Mode::Live
    } else {
        Mode::Test
    };
    let request = InstallRequest {
        tenant: tenant.clone(),
        id: Some(fields.get("name").unwrap_or_default().trim().to_string()),
        plugin_dir: plugin.dir.clone(),
        assignments: config_form::assignments(m, &fields),
        mode,
        schedules: Vec::new(),
        time_zone: "UTC".into(),
    };
    let mut form = AddForm {
        digest: &digest,
        plugin: &plugin,
        values: config_form::posted_values(m, &fields),
        name: request.id.clone().unwrap_or_default(),
        mode,
        plan: None,
        outcome: None,
    };
    let plan = match lifecycle::plan_install_of(&state.host, &request, plugin.clone()).await {
        Ok(plan) => plan,
        Err(e) => {
            form.outcome = Some(Outcome::Failed(e.to_string()));
            return Ok(unprocessable(add_page(&ctx, &form)));
        }
    };
    form.plan = Some(&plan);
    let refused = match fields.get("intent") {
        Some("install") => approval_refused(&ctx, &plan, &fields),
        _ => None,
    };
    if let Some(reason) = refused {
        form.outcome = Some(Outcome::Failed(reason));
        return Ok(unprocessable(add_page(&ctx, &form)));
    }
    if let Some(failed) = test_connection(&state, &plan).await? {
        form.outcome = Some(Outcome::Failed(failed));
        return Ok(unprocessable(add_page(&ctx, &form)));
    }
    if fields.get("intent") != Some("install") {
        form.outcome = Some(Outcome::CheckPassed);
        return Ok(add_page(&ctx, &form).into_response());
    }
    let store = state.host.store();
    let now = Utc::now().timestamp();
    let row = match lifecycle::commit_install(&**store, state.host.keyring(), &plan, now).await {
        Ok(row) => row,
        Err(e @ (LifecycleError::NoMasterKey | LifecycleError::Storage(_))) => {
            form.outcome = Some(Outcome::Failed(e.to_string()));
            return Ok(unprocessable(add_page(&ctx, &form)));
        }
        Err(e) => return Err(e.into()),
    };
    let detail = format!("{} ({} mode)", plan.plugin.label(), row.mode);
    actions::record_change(
        &**store,
        &ctx.viewer.caller,
        "installation.install",
        &row,
        detail,
        now,
    )
    .await?;
    Ok(see_other(&ctx.path("integrations?done=installed")))
}

fn unprocessable(page: Markup) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
}

async fn installation(
    state: &WebState,
    ctx: &Ctx,
    id: &str,
) -> Result<InstallationRow, ConsoleError> {
    Ok(lifecycle::installation_row(&**state.host.store(), &ctx.tenant, id).await?)
}

fn reauthorise_page(
    ctx: &Ctx,
    row: &InstallationRow,
    manifest: &Manifest,
    secrets: &[String],
    plan: Option<&Plan>,
    outcome: Option<Outcome>,
) -> Markup {
    let base = format!("integrations/{}", row.id);
    let body = html! {
        h1 { "Reauthorise " (row.id) }
        p class="muted" { "Check the settings, give new credentials if they changed, and Save. "
            "The new settings are checked with Test connection first; if it fails, nothing is saved." }
        (outcome_box(outcome.as_ref()))
        form method="post" action=(ctx.path(&format!("{base}/reauthorise"))) {
            (ctx.csrf())
            input type="hidden" name="revision" value=(row.revision);
            fieldset {
                legend { "Settings" }
                (config_form::inputs(manifest, &row.config, secrets))
            }
            @if let Some(plan) = plan {
                fieldset { legend { "What it may reach" } (granted(ctx, plan)) }
            }
            div class="actions" {
                button type="submit" name="intent" value="test" class="secondary" { "Test connection" }
                button type="submit" name="intent" value="save" { "Save" }
                a href=(ctx.path(&base)) { "Cancel" }
            }
        }
    };
    ctx.page(
        "integrations",
        &format!("Reauthorise {}", row.id),
        None,
        body,
    )
}

/// `GET …/reauthorise`.
pub async fn reauthorise_form(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((tenant, id)): Path<(String, String)>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    require(&ctx.viewer, Permission::Operate)?;
    let row = installation(&state, &ctx, &id).await?;
    let plugin = lifecycle::installed_plugin(&**state.host.store(), &row)?;
    let secrets = secret_names(&state, &row).await?;
    Ok(reauthorise_page(&ctx, &row, &plugin.manifest, &secrets, None, None).into_response())
}

async fn secret_names(
    state: &WebState,
    row: &InstallationRow,
) -> Result<Vec<String>, ConsoleError> {
    let secrets = state.host.store().secrets(&row.tenant, &row.id).await?;
    Ok(secrets.into_iter().map(|s| s.key).collect())
}

/// `POST …/reauthorise`: Test connection, or Save.
pub async fn reauthorise(
    State(state): State<WebState>,
    Path((tenant, id)): Path<(String, String)>,
    posted: Posted,
) -> PageResult {
    let ctx = Ctx::load(&state, posted.viewer, &tenant).await?;
    require(&ctx.viewer, Permission::Operate)?;
    let fields = posted.fields;
    let row = installation(&state, &ctx, &id).await?;
    lifecycle::check_revision(&row, Some(fields.number("revision")?))?;
    let plugin = lifecycle::installed_plugin(&**state.host.store(), &row)?;
    let m = &plugin.manifest;
    let secrets = secret_names(&state, &row).await?;
    let assignments = config_form::assignments(m, &fields);
    let keyring = state.host.keyring();
    let fail = |plan: Option<&Plan>, e: String| {
        unprocessable(reauthorise_page(
            &ctx,
            &row,
            m,
            &secrets,
            plan,
            Some(Outcome::Failed(e)),
        ))
    };
    let plan = match lifecycle::plan_reauthorise(&state.host, keyring, &row, &assignments).await {
        Ok(plan) => plan,
        Err(e) => return Ok(fail(None, e.to_string())),
    };
    let saving = fields.get("intent") == Some("save");
    if saving && let Some(reason) = approval_refused(&ctx, &plan, &fields) {
        return Ok(fail(Some(&plan), reason));
    }
    if let Some(failed) = test_connection(&state, &plan).await? {
        return Ok(fail(Some(&plan), failed));
    }
    if !saving {
        let page = reauthorise_page(
            &ctx,
            &row,
            m,
            &secrets,
            Some(&plan),
            Some(Outcome::CheckPassed),
        );
        return Ok(page.into_response());
    }
    let store = state.host.store();
    let now = Utc::now().timestamp();
    let new_row = lifecycle::commit_change(&**store, keyring, &row, &plan, now).await?;
    let keys: Vec<&str> = assignments
        .iter()
        .filter_map(|a| a.split_once('=').map(|(k, _)| k))
        .collect();
    let detail = format!("settings given: {}", keys.join(", "));
    actions::record_change(
        &**store,
        &ctx.viewer.caller,
        "installation.reauthorise",
        &new_row,
        detail,
        now,
    )
    .await?;
    Ok(see_other(
        &ctx.path(&format!("integrations/{id}?done=saved")),
    ))
}
