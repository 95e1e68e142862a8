//! A security reviewer's egress view: per integration, the egress rules
//! approved for it, how often each allowed a request and when last, the
//! grants never used (candidates for removal), what was refused; then the
//! recent decisions. From the same store calls as `airlock egress audit
//! --installed` and `airlock egress log`.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use maud::html;
use serde::Deserialize;

use super::PageResult;
use super::layout::{self, Ctx};
use super::session::Viewer;
use crate::storage::{AuditFilter, RuleUsage};
use crate::web::WebState;

/// Decisions shown.
const RECENT: usize = 100;

/// The view's filter.
#[derive(Debug, Deserialize)]
pub struct EgressQuery {
    /// Only denials among the recent decisions.
    #[serde(default)]
    pub denied: bool,
}

/// `/console/t/{tenant}/egress`.
pub async fn view(
    State(state): State<WebState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Query(q): Query<EgressQuery>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    let store = state.host.store();
    let mut sections = Vec::new();
    for row in store.installations(Some(&tenant), false).await? {
        let usage: Vec<RuleUsage> = store
            .rule_usage(&row.plugin_id, Some(&tenant))
            .await?
            .into_iter()
            .filter(|u| u.installation == row.id)
            .collect();
        let never: Vec<String> = row
            .approved_egress
            .iter()
            .filter(|rule| {
                !usage
                    .iter()
                    .any(|u| u.decision == "allowed" && &u.rule == *rule)
            })
            .cloned()
            .collect();
        sections.push((row, usage, never));
    }
    let decisions = store
        .audit_log(AuditFilter {
            denied_only: q.denied,
            since_ms: None,
            tenant: Some(tenant.clone()),
            plugin: None,
            limit: RECENT,
        })
        .await?;
    let body = html! {
        h1 { "Egress" }
        p class="muted" { "What each integration may reach (the rules approved at install or reauthorise), what it used, and what was refused." }
        @for (row, usage, never) in &sections {
            h2 { (row.id) " " span class="muted" { (row.plugin_id) " " (row.plugin_version) } }
            table {
                caption class="sr-only" { "Grants and usage of " (row.id) }
                thead { tr {
                    th scope="col" { "Rule" } th scope="col" { "Decision" } th scope="col" { "Service" }
                    th scope="col" { "Requests" } th scope="col" { "Last" }
                } }
                tbody {
                    @for u in usage { tr {
                        th scope="row" { code { (u.rule) } }
                        td { (layout::outcome(&u.decision)) }
                        td { (u.service.clone().unwrap_or_default()) }
                        td class="num" { (u.count) }
                        td { (layout::time_ms(u.last_ms)) }
                    } }
                    @for rule in never { tr {
                        th scope="row" { code { (rule) } }
                        td { strong { "never used" } }
                        td colspan="3" { "Granted but never used: consider removing it." }
                    } }
                    @if usage.is_empty() && never.is_empty() {
                        tr { td colspan="5" class="muted" { "No grants and no requests: every request is denied." } }
                    }
                }
            }
        }
        h2 { "Recent decisions" }
        ul class="filters" {
            li { a href=(ctx.path("egress")) aria-current=[(!q.denied).then_some("page")] { "All" } }
            li { a href=(ctx.path("egress?denied=true")) aria-current=[q.denied.then_some("page")] { "Denied only" } }
        }
        @if decisions.is_empty() { p class="muted" { "None recorded." } } @else {
            table {
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Integration" } th scope="col" { "Feed" }
                    th scope="col" { "Request" } th scope="col" { "Decision" } th scope="col" { "Rule or reason" }
                } }
                tbody { @for d in &decisions { tr {
                    td { (layout::time_ms(d.at_ms)) }
                    td { (d.installation) }
                    td { @if let Some(run) = d.run_id { a href=(ctx.path(&format!("runs/{run}"))) { (d.feed) } } @else { (d.feed) } }
                    th scope="row" { code { (d.method) " " (d.scheme.clone().unwrap_or_default()) "://" (d.host) @if let Some(port) = d.port { ":" (port) } (d.path) } }
                    td { (layout::outcome(&d.decision)) }
                    td { (d.rule.clone().unwrap_or_default()) " " span class="muted" { (d.reason.clone().unwrap_or_default()) } }
                } } }
            }
        }
    };
    Ok(ctx.page("egress", "Egress", None, body).into_response())
}
