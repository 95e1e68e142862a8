//! Integrations: the tenant's list (logo, type, name, mode, the enabled
//! switch), one integration with its feeds (schedule, next run, Run now),
//! and removal with a confirmation page. Seed 001's "Sales channel
//! integration" and seed 002's feeds.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::form::Posted;
use super::layout::{self, Ctx};
use super::session::Viewer;
use super::{ConsoleError, PageResult, require, see_other};
use crate::admin::{Permission, actions};
use crate::lifecycle;
use crate::manifest::MANUAL_SCHEDULE;
use crate::storage::{InstallationRow, NEVER, RunFilter, ScheduleRow};
use crate::web::WebState;

/// `?done=` after a change: which notice to show.
#[derive(Debug, Deserialize)]
pub struct Done {
    /// The notice's code ([`layout::notice`]).
    pub done: Option<String>,
}

/// `/console`: a tenant's token goes to its integrations; an operator's
/// chooses a tenant.
pub async fn home(State(state): State<WebState>, viewer: Viewer) -> PageResult {
    require(&viewer, Permission::Read)?;
    if let Some(own) = viewer.caller.own_tenant() {
        return Ok(see_other(&format!("/console/t/{own}/integrations")));
    }
    let store = state.host.store();
    let open = store.notifications(None, false).await?.len();
    let mut rows = Vec::new();
    for t in store.tenants().await? {
        let installations = store.installations(Some(&t.id), false).await?.len();
        let open = store.notifications(Some(&t.id), false).await?.len();
        rows.push((t, installations, open));
    }
    let body = html! {
        h1 { "Tenants" }
        @if rows.is_empty() {
            p { "No tenants yet: add one with " code { "airlock tenant add ID" } "." }
        } @else {
            table {
                caption class="muted" { "Choose a tenant to see its integrations." }
                thead { tr {
                    th scope="col" { "Tenant" } th scope="col" { "Name" }
                    th scope="col" { "Integrations" } th scope="col" { "Open notifications" }
                } }
                tbody {
                    @for (t, n, open) in &rows {
                        tr {
                            th scope="row" { a href={ "/console/t/" (t.id) "/integrations" } { (t.id) } }
                            td { (t.name) }
                            td class="num" { (n) }
                            td class="num" { (open) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::plain_page(&viewer, "Tenants", open, body).into_response())
}

/// The enabled switch: a button that posts the other state (works
/// without script; `role="switch"` tells assistive technology what it is).
fn switch_button(ctx: &Ctx, row: &InstallationRow) -> Markup {
    let label = format!(
        "{} is {}: switch it {}",
        row.id,
        if row.enabled { "enabled" } else { "disabled" },
        if row.enabled { "off" } else { "on" }
    );
    html! {
        form class="inline" method="post"
            action=(ctx.path(&format!("integrations/{}/enabled", row.id))) {
            (ctx.csrf())
            input type="hidden" name="enabled" value=(if row.enabled { "false" } else { "true" });
            input type="hidden" name="revision" value=(row.revision);
            button type="submit" class="switch" role="switch"
                aria-checked=(if row.enabled { "true" } else { "false" })
                aria-label=(label) title=(label) disabled[!ctx.may_operate()] {
                (if row.enabled { "Yes" } else { "No" })
            }
        }
    }
}

/// `/console/t/{tenant}/integrations`: the list.
pub async fn list(
    State(state): State<WebState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Query(done): Query<Done>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    let rows = state
        .host
        .store()
        .installations(Some(&tenant), false)
        .await?;
    let body = html! {
        h1 { "Integrations" }
        div class="actions" {
            @if ctx.may_operate() {
                a class="button" href=(ctx.path("add")) { "Add an integration" }
            }
        }
        @if rows.is_empty() {
            p { "No integrations yet." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { span class="sr-only" { "Logo" } }
                    th scope="col" { "Type" }
                    th scope="col" { "Name" }
                    th scope="col" { "Mode" }
                    th scope="col" { "Enabled" }
                } }
                tbody {
                    @for row in &rows {
                        tr {
                            td { span class="logo" aria-hidden="true" { (layout::initials(&row.plugin_id)) } }
                            td { (row.plugin_id) " " span class="muted" { (row.plugin_version) } }
                            th scope="row" {
                                a href=(ctx.path(&format!("integrations/{}", row.id))) { (row.id) }
                            }
                            td { (layout::outcome(&row.mode)) }
                            td { (switch_button(&ctx, row)) }
                        }
                    }
                }
            }
        }
    };
    let notice = layout::notice(done.done.as_deref());
    Ok(ctx
        .page("integrations", "Integrations", notice, body)
        .into_response())
}

/// When a schedule next runs, in words.
fn next_run(s: &ScheduleRow) -> String {
    if s.cron == MANUAL_SCHEDULE {
        return "only when asked (Run now)".into();
    }
    match s.due_at.filter(|&d| d != 0).or(s.next_fire_at) {
        Some(NEVER) => "never (no further fires)".into(),
        Some(t) => layout::time(t),
        None => "not planned yet (serve plans it)".into(),
    }
}

async fn installation(
    state: &WebState,
    ctx: &Ctx,
    id: &str,
) -> Result<InstallationRow, ConsoleError> {
    Ok(lifecycle::installation_row(&**state.host.store(), &ctx.tenant, id).await?)
}

/// `/console/t/{tenant}/integrations/{installation}`: one integration and
/// its feeds.
pub async fn detail(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((tenant, id)): Path<(String, String)>,
    Query(done): Query<Done>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    let row = installation(&state, &ctx, &id).await?;
    let store = state.host.store();
    let schedules = store.schedules(&tenant, &id).await?;
    let secrets = store.secrets(&tenant, &id).await?;
    let runs = store
        .runs(RunFilter {
            tenant: Some(tenant.clone()),
            installation: Some(id.clone()),
            feed: None,
            status: None,
            since: None,
            limit: 10,
        })
        .await?;
    let base = format!("integrations/{id}");
    let body = html! {
        h1 { span class="logo" aria-hidden="true" { (layout::initials(&row.plugin_id)) } " " (row.id) }
        dl class="facts" {
            dt { "Type" } dd { (row.plugin_id) " " (row.plugin_version) }
            dt { "Mode" } dd { (layout::outcome(&row.mode)) }
            dt { "Enabled" } dd { (switch_button(&ctx, &row)) }
            dt { "Installed" } dd { (layout::time(row.created_at)) }
            dt { "Last changed" } dd { (layout::time(row.updated_at)) " (revision " (row.revision) ")" }
            @for (k, v) in &row.config {
                dt { (k) } dd { code { (v) } }
            }
            @for s in &secrets {
                dt { (s.key) } dd { span class="muted" { "set (sealed; never shown)" } }
            }
            dt { "Egress approved" }
            dd {
                @if row.approved_egress.is_empty() { span class="muted" { "none: every request is denied" } }
                @for rule in &row.approved_egress { code { (rule) } br; }
            }
        }
        h2 { "Feeds" }
        table {
            thead { tr {
                th scope="col" { "Feed" } th scope="col" { "Direction" }
                th scope="col" { "Schedule" } th scope="col" { "Next run" }
                th scope="col" { span class="sr-only" { "Run now" } }
            } }
            tbody {
                @for s in &schedules {
                    tr {
                        th scope="row" { (s.feed) }
                        td { @match lifecycle::feed_direction(&row, &s.feed) {
                            Some(crate::manifest::Direction::Inbound) => "inbound",
                            Some(crate::manifest::Direction::Outbound) => "outbound",
                            None => "?",
                        } }
                        td { code { (s.cron) } " " span class="muted" { (s.time_zone) }
                             @if s.overridden { " " span class="muted" { "(overridden)" } } }
                        td { (next_run(s)) }
                        td {
                            form class="inline" method="post"
                                action=(ctx.path(&format!("{base}/feeds/{}/run-now", s.feed))) {
                                (ctx.csrf())
                                button type="submit" class="secondary"
                                    aria-label={ "Run " (s.feed) " now" }
                                    disabled[!ctx.may_operate() || !row.enabled] { "Run now" }
                            }
                        }
                    }
                }
            }
        }
        @if !row.enabled { p class="muted" { "Switched off: switch it on to run its feeds." } }
        h2 { "Recent executions" }
        (runs_table(&ctx, &runs))
        p {
            a href=(ctx.path(&format!("runs?installation={id}"))) { "All of its feed executions" }
            " · "
            a href=(ctx.path(&format!("{base}/state"))) { "Connector state" }
        }
        @if ctx.may_operate() {
            div class="actions" {
                a class="button secondary" href=(ctx.path(&format!("{base}/reauthorise"))) { "Reauthorise" }
                a class="button danger" href=(ctx.path(&format!("{base}/remove"))) { "Remove account" }
            }
        }
    };
    let notice = layout::notice(done.done.as_deref());
    Ok(ctx
        .page("integrations", &row.id, notice, body)
        .into_response())
}

/// A table of runs, newest first.
pub fn runs_table(ctx: &Ctx, runs: &[crate::storage::RunSummary]) -> Markup {
    html! {
        @if runs.is_empty() {
            p class="muted" { "No executions." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Run" } th scope="col" { "Integration" } th scope="col" { "Feed" }
                    th scope="col" { "Severity" } th scope="col" { "Started" } th scope="col" { "Trigger" }
                    th scope="col" { "Message" }
                } }
                tbody {
                    @for r in runs {
                        tr {
                            th scope="row" { a href=(ctx.path(&format!("runs/{}", r.id))) { "#" (r.id) } }
                            td { (r.installation) }
                            td { (r.feed) }
                            td { (layout::outcome(&r.status)) }
                            td { (layout::time(r.started_at)) }
                            td { (r.trigger) @if r.attempt > 1 { " (attempt " (r.attempt) ")" } }
                            td { (r.message) }
                        }
                    }
                }
            }
        }
    }
}

/// `POST …/enabled`: the switch.
pub async fn switch(
    State(state): State<WebState>,
    Path((tenant, id)): Path<(String, String)>,
    posted: Posted,
) -> PageResult {
    let ctx = Ctx::load(&state, posted.viewer, &tenant).await?;
    require(&ctx.viewer, Permission::Operate)?;
    let enabled = posted.fields.required("enabled")? == "true";
    let revision = posted.fields.number("revision")?;
    let now = Utc::now().timestamp();
    let store = state.host.store();
    actions::set_enabled(
        &**store,
        &ctx.viewer.caller,
        (&tenant, &id),
        enabled,
        revision,
        now,
    )
    .await?;
    let done = if enabled { "enabled" } else { "disabled" };
    Ok(see_other(&ctx.path(&format!("integrations?done={done}"))))
}

/// `POST …/feeds/{feed}/run-now`.
pub async fn run_now(
    State(state): State<WebState>,
    Path((tenant, id, feed)): Path<(String, String, String)>,
    posted: Posted,
) -> PageResult {
    let ctx = Ctx::load(&state, posted.viewer, &tenant).await?;
    require(&ctx.viewer, Permission::Operate)?;
    let row = installation(&state, &ctx, &id).await?;
    let now = Utc::now().timestamp();
    actions::run_now(&**state.host.store(), &ctx.viewer.caller, &row, &feed, now).await?;
    Ok(see_other(
        &ctx.path(&format!("runs?installation={id}&done=queued")),
    ))
}

/// `GET …/remove`: "Remove account?" with OK and Cancel.
pub async fn confirm_remove(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((tenant, id)): Path<(String, String)>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    require(&ctx.viewer, Permission::Operate)?;
    let row = installation(&state, &ctx, &id).await?;
    let body = html! {
        h1 { "Remove " (row.id) "?" }
        p { "Its config, secrets, storage, schedules, artifacts and feed token are deleted. "
            "Its run history is kept under its name, which is never reused: to connect the same "
            "shop again, add a new integration under another name." }
        form method="post" action=(ctx.path(&format!("integrations/{id}/remove"))) {
            (ctx.csrf())
            input type="hidden" name="revision" value=(row.revision);
            div class="actions" {
                button type="submit" class="danger" { "OK, remove it" }
                a class="button secondary" href=(ctx.path(&format!("integrations/{id}"))) { "Cancel" }
            }
        }
    };
    Ok(ctx
        .page("integrations", &format!("Remove {id}"), None, body)
        .into_response())
}

/// `POST …/remove`.
pub async fn remove(
    State(state): State<WebState>,
    Path((tenant, id)): Path<(String, String)>,
    posted: Posted,
) -> PageResult {
    let ctx = Ctx::load(&state, posted.viewer, &tenant).await?;
    require(&ctx.viewer, Permission::Operate)?;
    let row = installation(&state, &ctx, &id).await?;
    let revision = posted.fields.number("revision")?;
    let now = Utc::now().timestamp();
    actions::remove(
        &**state.host.store(),
        &ctx.viewer.caller,
        &row,
        revision,
        now,
    )
    .await?;
    Ok(see_other(&ctx.path("integrations?done=removed")))
}
