//! ★ A connector's state: its storage keys with who wrote each, a key's
//! history, and rewinding the storage to before a run (shown first, then
//! confirmed; refused while a run is in progress). The same calls as `airlock
//! state` and the API's (`crate::state`).

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::form::Posted;
use super::integrations::Done;
use super::layout::{self, Ctx};
use super::session::Viewer;
use super::{ConsoleError, PageResult, require, see_other};
use crate::admin::{Permission, actions};
use crate::state::{self, Change, ShownValue, StateError};
use crate::storage::ChangedBy;
use crate::web::WebState;

impl From<StateError> for ConsoleError {
    fn from(e: StateError) -> Self {
        ConsoleError::Api(e.into())
    }
}

/// A value as the page shows it.
fn value(v: Option<&ShownValue>) -> Markup {
    match v {
        None => html! { span class="muted" { "(not stored)" } },
        Some(ShownValue::Text { text, truncated }) => {
            html! { code { (text) } @if *truncated { " …" } }
        }
        Some(ShownValue::Hex { hex, truncated }) => {
            html! { code { "0x" (hex) } @if *truncated { " …" } }
        }
        Some(ShownValue::Sealed) => html! { span class="muted" { "(sealed: never shown)" } },
    }
}

/// Who made a change, linking a run to its execution.
fn who(ctx: &Ctx, change: Option<&Change>) -> Markup {
    let Some(change) = change else {
        return html! { span class="muted" { "(older than the history kept)" } };
    };
    html! {
        @match &change.by {
            ChangedBy::Run { run_id } => {
                a href=(ctx.path(&format!("runs/{run_id}"))) { "run #" (run_id) }
            }
            ChangedBy::UnrecordedRun => { "a run not recorded" }
            ChangedBy::Rewind { actor, to_before_run } => {
                "rewind to before run #" (to_before_run) " by " (actor)
            }
            ChangedBy::Direct => { "written directly (not by a run)" }
        }
        " · " (layout::time(change.at))
    }
}

/// `GET …/integrations/{installation}/state`: the keys, and the rewind form.
pub async fn show(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((tenant, id)): Path<(String, String)>,
    Query(done): Query<Done>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    let entries = state::show(&**state.host.store(), &tenant, &id, None, state::MAX_SHOW).await?;
    let base = format!("integrations/{id}/state");
    let body = html! {
        h1 { "Connector state of " (id) }
        p class="muted" { "What the connector keeps between runs (cursors, last sync times), and which run wrote each key." }
        @if entries.is_empty() {
            p { "It stores nothing." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Key" } th scope="col" { "Value" }
                    th scope="col" { "Size" } th scope="col" { "Written by" }
                } }
                tbody {
                    @for e in &entries {
                        tr {
                            th scope="row" {
                                a href=(ctx.path(&format!("{base}/history?key={}", urlencode(&e.key)))) { (e.key) }
                            }
                            td { (value(Some(&e.value))) }
                            td { (e.size) " B" }
                            td { (who(&ctx, e.changed.as_ref())) }
                        }
                    }
                }
            }
        }
        @if ctx.may_operate() {
            h2 { "Rewind" }
            p { "Restore the storage as it was before a run: the next run redoes the work from there. You see what changes before anything is changed." }
            form method="get" action=(ctx.path(&format!("{base}/rewind"))) {
                label for="before_run" { "Before run number" }
                input id="before_run" name="before_run" type="number" min="1" required;
                button type="submit" { "Show what changes" }
            }
        }
    };
    let notice = match done.done.as_deref() {
        Some("rewound") => Some("Rewound: the storage is as it was before that run."),
        other => layout::notice(other),
    };
    Ok(ctx
        .page("integrations", &format!("State of {id}"), notice, body)
        .into_response())
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Which key.
#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    /// The key.
    pub key: String,
}

/// `GET …/state/history?key=K`: a key's versions, newest first.
pub async fn history(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((tenant, id)): Path<(String, String)>,
    Query(query): Query<KeyQuery>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    let versions = state::history(
        &**state.host.store(),
        &tenant,
        &id,
        &query.key,
        state::MAX_HISTORY,
    )
    .await?;
    let body = html! {
        h1 { "History of " code { (query.key) } }
        p { a href=(ctx.path(&format!("integrations/{id}/state"))) { "Back to the state of " (id) } }
        table {
            thead { tr { th scope="col" { "Value" } th scope="col" { "Written by" } } }
            tbody {
                @for v in &versions {
                    tr {
                        td { @if v.value.is_none() { span class="muted" { "(deleted)" } } @else { (value(v.value.as_ref())) } }
                        td { (who(&ctx, Some(&v.change))) }
                    }
                }
            }
        }
    };
    Ok(ctx
        .page(
            "integrations",
            &format!("History of {}", query.key),
            None,
            body,
        )
        .into_response())
}

/// Which run to rewind to before.
#[derive(Debug, Deserialize)]
pub struct RewindQuery {
    /// The run.
    pub before_run: i64,
}

/// `GET …/state/rewind?before_run=N`: what the rewind changes, with OK and
/// Cancel.
pub async fn confirm(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((tenant, id)): Path<(String, String)>,
    Query(query): Query<RewindQuery>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    require(&ctx.viewer, Permission::Operate)?;
    let plan = state::plan_rewind(&**state.host.store(), &tenant, &id, query.before_run).await?;
    let base = format!("integrations/{id}/state");
    let body = html! {
        h1 { "Rewind " (id) " to before run #" (query.before_run) "?" }
        @if plan.changes.is_empty() {
            p { "Its storage is already as it was before that run: nothing changes." }
        } @else {
            table {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Now" } th scope="col" { "After the rewind" } } }
                tbody {
                    @for c in &plan.changes {
                        tr { th scope="row" { (c.key) } td { (value(c.from.as_ref())) } td { (value(c.to.as_ref())) } }
                    }
                }
            }
        }
        form method="post" action=(ctx.path(&format!("{base}/rewind"))) {
            (ctx.csrf())
            input type="hidden" name="before_run" value=(query.before_run);
            input type="hidden" name="as_of" value=(plan.as_of);
            div class="actions" {
                button type="submit" class="danger" { "OK, rewind it" }
                a class="button secondary" href=(ctx.path(&base)) { "Cancel" }
            }
        }
    };
    Ok(ctx
        .page("integrations", &format!("Rewind {id}"), None, body)
        .into_response())
}

/// `POST …/state/rewind`: the rewind shown, refused if a run committed
/// since it was shown or one is in progress.
pub async fn rewind(
    State(state): State<WebState>,
    Path((tenant, id)): Path<(String, String)>,
    posted: Posted,
) -> PageResult {
    let ctx = Ctx::load(&state, posted.viewer, &tenant).await?;
    require(&ctx.viewer, Permission::Operate)?;
    let before_run = posted.fields.number("before_run")?;
    let as_of = posted.fields.number("as_of")?;
    let store = state.host.store();
    let caller = &ctx.viewer.caller;
    let now = Utc::now().timestamp();
    let scope = (tenant.as_str(), id.as_str());
    actions::rewind_state(&**store, caller, scope, before_run, Some(as_of), now).await?;
    Ok(see_other(
        &ctx.path(&format!("integrations/{id}/state?done=rewound")),
    ))
}
