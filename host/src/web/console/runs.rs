//! Feed executions (seed 002: "Integration > Feed executions"): the
//! tenant's runs, newest first, filtered by severity (ok, info, retry,
//! error, interrupted), integration and feed; and one run whole: its log
//! and every HTTP call with the egress decision taken on it. Secrets were
//! redacted from both before they were stored.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::integrations::runs_table;
use super::layout::{self, Ctx};
use super::session::Viewer;
use super::{ConsoleError, PageResult};
use crate::storage::RunFilter;
use crate::web::WebState;

/// The severities a run can end with, as the filter offers them.
pub const SEVERITIES: [&str; 5] = ["ok", "info", "retry", "error", "interrupted"];

/// The list's filters.
#[derive(Debug, Deserialize)]
pub struct RunsQuery {
    /// Only this severity.
    pub status: Option<String>,
    /// Only this integration's.
    pub installation: Option<String>,
    /// Only this feed's.
    pub feed: Option<String>,
    /// A notice to show (after Run now).
    pub done: Option<String>,
}

fn filter_link(ctx: &Ctx, q: &RunsQuery, status: Option<&str>) -> String {
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    if let Some(s) = status {
        params.append_pair("status", s);
    }
    if let Some(i) = &q.installation {
        params.append_pair("installation", i);
    }
    if let Some(f) = &q.feed {
        params.append_pair("feed", f);
    }
    let params = params.finish();
    if params.is_empty() {
        ctx.path("runs")
    } else {
        ctx.path(&format!("runs?{params}"))
    }
}

/// `/console/t/{tenant}/runs`.
pub async fn list(
    State(state): State<WebState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Query(q): Query<RunsQuery>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    let status = q.status.clone().filter(|s| !s.is_empty());
    if let Some(s) = &status
        && !SEVERITIES.contains(&s.as_str())
    {
        return Err(ConsoleError::BadRequest(format!(
            "severity `{s}` is none of {}",
            SEVERITIES.join(", ")
        )));
    }
    let runs = state
        .host
        .store()
        .runs(RunFilter {
            tenant: Some(tenant.clone()),
            installation: q.installation.clone().filter(|s| !s.is_empty()),
            feed: q.feed.clone().filter(|s| !s.is_empty()),
            status: status.clone(),
            since: None,
            limit: 100,
        })
        .await?;
    let queued = q.done.as_deref() == Some("queued");
    let body = html! {
        h1 { "Feed executions" }
        @if let Some(i) = &q.installation {
            p { "Of integration " strong { (i) } ". "
                a href=(ctx.path("runs")) { "All integrations" } }
        }
        nav aria-label="Severity" {
            ul class="filters" {
                li { a href=(filter_link(&ctx, &q, None))
                    aria-current=[status.is_none().then_some("page")] { "All" } }
                @for s in SEVERITIES {
                    li { a href=(filter_link(&ctx, &q, Some(s)))
                        aria-current=[(status.as_deref() == Some(s)).then_some("page")] { (s) } }
                }
            }
        }
        @if queued && runs.is_empty() {
            p class="muted" data-refresh="3000" { "Waiting for the run to be recorded… (reload to see it)" }
        }
        (runs_table(&ctx, &runs))
    };
    let notice = layout::notice(q.done.as_deref());
    Ok(ctx
        .page("runs", "Feed executions", notice, body)
        .into_response())
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn http_table(calls: &[Value]) -> Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { "Method" } th scope="col" { "URL (no query)" }
                th scope="col" { "Decision" } th scope="col" { "Rule" }
                th scope="col" { "Status" } th scope="col" { "Time" }
            } }
            tbody {
                @for c in calls {
                    tr {
                        td { (text(c, "method")) }
                        td { code { (text(c, "scheme")) "://" (text(c, "host"))
                            @if !c["port"].is_null() { ":" (text(c, "port")) } (text(c, "path")) } }
                        td { (layout::outcome(&text(c, "decision"))) }
                        td { (text(c, "rule"))
                            @let reason = text(c, "reason");
                            @if !reason.is_empty() { br; span class="muted" { (reason) } } }
                        td { (text(c, "status"))
                            @let error = text(c, "error");
                            @if !error.is_empty() { br; span class="muted" { (error) } } }
                        td class="num" { (text(c, "duration_ms")) " ms" }
                    }
                }
            }
        }
    }
}

/// `/console/t/{tenant}/runs/{run}`: one execution.
pub async fn detail(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((tenant, run)): Path<(String, i64)>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    let Some((summary, report)) = state.host.store().run(run).await? else {
        return Err(ConsoleError::NotFound(format!("no run {run}")));
    };
    if summary.tenant != tenant {
        return Err(ConsoleError::NotFound(format!("no run {run}")));
    }
    let report: Value = serde_json::from_str(&report).unwrap_or_default();
    let log = report["log"].as_array().cloned().unwrap_or_default();
    let http = report["http"].as_array().cloned().unwrap_or_default();
    let body = html! {
        h1 { "Execution #" (summary.id) }
        dl class="facts" {
            dt { "Integration" } dd { a href=(ctx.path(&format!("integrations/{}", summary.installation))) { (summary.installation) }
                " " span class="muted" { (summary.plugin_id) " " (summary.plugin_version) } }
            dt { "Feed" } dd { (summary.feed) }
            dt { "Severity" } dd { (layout::outcome(&summary.status)) }
            dt { "Message" } dd { (summary.message) }
            dt { "Mode" } dd { (summary.mode) }
            dt { "Trigger" } dd { (summary.trigger) " (attempt " (summary.attempt) ")" }
            dt { "Started" } dd { (layout::time(summary.started_at)) }
            dt { "Ended" } dd { (layout::time(summary.ended_at)) }
            @if let Some(ms) = report["duration_ms"].as_u64() { dt { "Duration" } dd { (ms) " ms" } }
        }
        h2 { "Log" }
        @if log.is_empty() { p class="muted" { "No log lines." } } @else {
            table {
                thead { tr { th scope="col" { "At" } th scope="col" { "Level" } th scope="col" { "Message" } } }
                tbody { @for line in &log { tr {
                    td class="num" { "+" (text(line, "at_ms")) " ms" }
                    td { (text(line, "level")) }
                    td { (text(line, "message")) }
                } } }
            }
        }
        @if let Some(n) = report["log_dropped"].as_u64().filter(|&n| n > 0) {
            p class="muted" { (n) " more log lines were dropped over the cap." }
        }
        h2 { "HTTP calls" }
        @if http.is_empty() { p class="muted" { "No HTTP calls." } } @else { (http_table(&http)) }
        @for (name, key) in [("Standard output", "stdout"), ("Standard error", "stderr")] {
            @let out = text(&report, key);
            @if !out.is_empty() { h2 { (name) } pre { (out) } }
        }
        p { a href=(ctx.path("runs")) { "All feed executions" } }
    };
    Ok(ctx
        .page("runs", &format!("Execution #{run}"), None, body)
        .into_response())
}
