//! The records browser: a tenant's shared records by collection, what each
//! consumer (an installation that reads the collection) has still to
//! export, and one record with who acknowledged which version. Reads only,
//! through `records::admin` as `airlock records list|show` does.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use maud::html;
use serde::Deserialize;

use super::layout::{self, Ctx};
use super::session::Viewer;
use super::{ConsoleError, PageResult};
use crate::records::COLLECTIONS;
use crate::records::admin::{self as records, ListQuery, PendingReason};
use crate::storage::{PageLimit, RecordStore};
use crate::web::WebState;

/// Records shown per page.
const PAGE: usize = 100;

/// Pending records counted per consumer before "more than" is shown.
const COUNT_CAP: usize = 1000;

/// The browser's choices.
#[derive(Debug, Deserialize)]
pub struct RecordsQuery {
    /// The collection (default `orders`).
    pub collection: Option<String>,
    /// Only what this installation has pending.
    pub consumer: Option<String>,
    /// Only records after this version.
    pub after: Option<i64>,
}

/// `/console/t/{tenant}/records`.
pub async fn list(
    State(state): State<WebState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Query(q): Query<RecordsQuery>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    let collection = q
        .collection
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "orders".into());
    if !COLLECTIONS.contains(&collection.as_str()) {
        return Err(ConsoleError::BadRequest(format!(
            "no collection `{collection}`"
        )));
    }
    let store = state.host.store();
    let consumers: Vec<String> = store
        .installations(Some(&tenant), false)
        .await?
        .into_iter()
        .filter(|i| {
            i.approved_data
                .as_ref()
                .is_some_and(|d| d.reads.contains(&collection))
        })
        .map(|i| i.id)
        .collect();
    let mut pending = Vec::new();
    for c in &consumers {
        let page = store
            .pending_records(&tenant, c, &collection, 0, PageLimit::records(COUNT_CAP))
            .await?;
        pending.push((c.clone(), page.records.len(), page.more));
    }
    let consumer = q.consumer.clone().filter(|c| !c.is_empty());
    if let Some(c) = &consumer
        && !consumers.contains(c)
    {
        return Err(ConsoleError::NotFound(format!(
            "no installation `{c}` reads {collection}"
        )));
    }
    let query = ListQuery {
        pending_for: consumer.clone(),
        after: q.after.unwrap_or(0),
        limit: PAGE,
    };
    let rows = records::list(&**store, &tenant, &collection, &query)
        .await
        .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    let link = |c: Option<&str>| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.append_pair("collection", &collection);
        if let Some(c) = c {
            s.append_pair("consumer", c);
        }
        ctx.path(&format!("records?{}", s.finish()))
    };
    let body = html! {
        h1 { "Records" }
        form method="get" action=(ctx.path("records")) class="actions" {
            label for="collection" { "Collection" }
            select id="collection" name="collection" {
                @for c in COLLECTIONS { option value=(c) selected[*c == collection] { (c) } }
            }
            button type="submit" class="secondary" { "Show" }
        }
        h2 { "Pending per consumer" }
        @if pending.is_empty() { p class="muted" { "No integration reads " (collection) "." } } @else {
            table {
                thead { tr { th scope="col" { "Consumer" } th scope="col" { "Pending" } } }
                tbody { @for (c, n, more) in &pending { tr {
                    th scope="row" { a href=(link(Some(c))) { (c) } }
                    td class="num" { @if *more { "more than " } (n) }
                } } }
            }
        }
        h2 { @match &consumer { Some(c) => { "Pending for " (c) " " a href=(link(None)) { "(all records)" } }, None => { "All " (collection) ", by version" } } }
        @if rows.is_empty() { p class="muted" { "None." } } @else {
            table {
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "Version" } th scope="col" { "Updated" }
                    th scope="col" { "Written by" } th scope="col" { "State" }
                } }
                tbody { @for r in &rows { tr {
                    th scope="row" { a href=(ctx.path(&format!("records/{}/{}", collection, urlencode(&r.record.id)))) { (r.record.id) } }
                    td class="num" { (r.record.version) }
                    td { (layout::time(r.record.updated_at)) }
                    td { (r.record.writer) }
                    td { @match (&r.pending, r.record.is_deleted()) {
                        (Some(PendingReason::New), _) => "new",
                        (Some(PendingReason::Changed { acknowledged }), _) => { "changed (acknowledged version " (acknowledged) ")" },
                        (None, true) => "deleted",
                        (None, false) => "",
                    } }
                } } }
            }
            @if rows.len() == PAGE {
                @if let Some(last) = rows.last() {
                    p { a href={ (link(consumer.as_deref())) "&after=" (last.record.version) } { "Next page" } }
                }
            }
        }
    };
    Ok(ctx.page("records", "Records", None, body).into_response())
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `/console/t/{tenant}/records/{collection}/{id}`.
pub async fn detail(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((tenant, collection, id)): Path<(String, String, String)>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    let store = state.host.store();
    let detail = records::show(&**store as &dyn RecordStore, &tenant, &collection, &id)
        .await
        .map_err(|e| ConsoleError::BadRequest(e.to_string()))?
        .ok_or_else(|| ConsoleError::NotFound(format!("no record {collection}/{id}")))?;
    let r = &detail.record;
    let pretty = r.body.as_ref().map(|b| {
        serde_json::from_str::<serde_json::Value>(b)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| b.clone())
    });
    let body = html! {
        h1 { (collection) " / " (r.id) }
        dl class="facts" {
            dt { "Version" } dd { (r.version) }
            dt { "Written" } dd { (layout::time(r.updated_at)) " by " (r.writer) }
        }
        h2 { "Acknowledged by" }
        @if detail.acks.is_empty() { p class="muted" { "No integration has acknowledged it." } } @else {
            table {
                thead { tr { th scope="col" { "Integration" } th scope="col" { "Version" } th scope="col" { "When" } th scope="col" { "State" } } }
                tbody { @for a in &detail.acks { tr {
                    th scope="row" { (a.installation) }
                    td class="num" { (a.version) }
                    td { (layout::time(a.acked_at)) }
                    td { @if a.version >= r.version { "the current version" } @else { "an older version: pending again" } }
                } } }
            }
        }
        @for (installation, a) in &detail.annotations {
            h2 { "Annotations of " (installation) }
            dl class="facts" {
                @if let Some(x) = &a.external_ref { dt { "External ref" } dd { (x) } }
                @if let Some(f) = &a.flag { dt { "Flag" } dd { (f) } }
                @for n in &a.notes { dt { "Note" } dd { (n) } }
            }
        }
        h2 { "Body" }
        @match pretty { Some(text) => { pre { (text) } }, None => { p class="muted" { "Deleted (a tombstone)." } } }
        p { a href=(ctx.path(&format!("records?collection={collection}"))) { "All " (collection) } }
    };
    Ok(ctx
        .page("records", &format!("{collection}/{id}"), None, body)
        .into_response())
}
