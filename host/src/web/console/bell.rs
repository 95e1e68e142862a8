//! The bell (seed 002: "a bell in the top right corner is displayed with
//! error details"): the tenant's notifications, open ones first, each with
//! the failing run and an Acknowledge button; the header of every page
//! shows how many are open.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use chrono::Utc;
use maud::html;

use super::form::Posted;
use super::integrations::Done;
use super::layout::{self, Ctx};
use super::session::Viewer;
use super::{PageResult, require, see_other};
use crate::admin::{Permission, actions};
use crate::web::WebState;

/// `/console/t/{tenant}/notifications`.
pub async fn list(
    State(state): State<WebState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Query(done): Query<Done>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    let all = state
        .host
        .store()
        .notifications(Some(&tenant), true)
        .await?;
    let (open, acked): (Vec<_>, Vec<_>) = all.into_iter().partition(|n| n.acked_at.is_none());
    let body = html! {
        h1 { "Notifications" }
        p class="muted" { "A feed that fails with an error, or keeps asking to retry, rings the bell. "
            "Open the run to understand the problem and fix it, then acknowledge." }
        h2 { "Open" }
        @if open.is_empty() { p { "Nothing open." } } @else {
            table {
                thead { tr {
                    th scope="col" { "Integration" } th scope="col" { "Feed" } th scope="col" { "Problem" }
                    th scope="col" { "Failures" } th scope="col" { "Latest" } th scope="col" { span class="sr-only" { "Acknowledge" } }
                } }
                tbody { @for n in &open { tr {
                    td { (n.installation) }
                    td { (n.feed) }
                    th scope="row" {
                        @if let Some(run) = n.run_id {
                            a href=(ctx.path(&format!("runs/{run}"))) { (n.message) }
                        } @else { (n.message) }
                    }
                    td class="num" { (n.count) }
                    td { (layout::time(n.last_at)) }
                    td {
                        form class="inline" method="post" action=(ctx.path(&format!("notifications/{}/acknowledge", n.id))) {
                            (ctx.csrf())
                            button type="submit" disabled[!ctx.may_operate()]
                                aria-label={ "Acknowledge: " (n.installation) " " (n.feed) } { "Acknowledge" }
                        }
                    }
                } } }
            }
        }
        h2 { "Acknowledged" }
        @if acked.is_empty() { p class="muted" { "None." } } @else {
            table {
                thead { tr {
                    th scope="col" { "Integration" } th scope="col" { "Feed" } th scope="col" { "Problem" }
                    th scope="col" { "Acknowledged" } th scope="col" { "By" }
                } }
                tbody { @for n in acked.iter().take(50) { tr {
                    td { (n.installation) } td { (n.feed) } th scope="row" { (n.message) }
                    td { (n.acked_at.map(layout::time).unwrap_or_default()) }
                    td { (n.acked_by.clone().unwrap_or_default()) }
                } } }
            }
        }
    };
    let notice = layout::notice(done.done.as_deref());
    Ok(ctx
        .page("notifications", "Notifications", notice, body)
        .into_response())
}

/// `POST …/notifications/{id}/acknowledge`.
pub async fn acknowledge(
    State(state): State<WebState>,
    Path((tenant, id)): Path<(String, i64)>,
    posted: Posted,
) -> PageResult {
    let ctx = Ctx::load(&state, posted.viewer, &tenant).await?;
    require(&ctx.viewer, Permission::Operate)?;
    let now = Utc::now().timestamp();
    actions::acknowledge(&**state.host.store(), &ctx.viewer.caller, &tenant, id, now).await?;
    Ok(see_other(&ctx.path("notifications?done=acknowledged")))
}
