//! Artifacts: the files each integration's feeds publish, with their live
//! URLs. A URL needs the integration's feed token, which is stored hashed
//! and shown only once, when it is made (`airlock artifacts token
//! TENANT/INSTALLATION --rotate`): the page shows the URL's shape and how
//! to get the token, never a token.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header;
use axum::response::IntoResponse;
use maud::html;

use super::PageResult;
use super::layout::{self, Ctx};
use super::session::Viewer;
use crate::storage::Scope;
use crate::web::WebState;

/// `/console/t/{tenant}/artifacts`.
pub async fn list(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> PageResult {
    let ctx = Ctx::load(&state, viewer, &tenant).await?;
    let store = state.host.store();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("HOST");
    let base = format!("http://{host}");
    let mut sections = Vec::new();
    for row in store.installations(Some(&tenant), false).await? {
        let scope = Scope {
            tenant: tenant.clone(),
            installation: row.id.clone(),
        };
        let artifacts = store.artifacts(&scope).await?;
        let has_token = store.feed_token_hash(&scope).await?.is_some();
        sections.push((row.id, artifacts, has_token));
    }
    let body = html! {
        h1 { "Artifacts" }
        p class="muted" { "Files the integrations' feeds publish, served at their live URL to whoever has the integration's feed token ("
            code { "?token=…" } " or " code { "Authorization: Bearer …" } "). A token is shown only once, when it is made." }
        @let any = sections.iter().any(|(_, a, _)| !a.is_empty());
        @if !any { p { "No integration has published an artifact yet." } }
        @for (id, artifacts, has_token) in &sections {
            @if !artifacts.is_empty() {
                h2 { (id) }
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Size" }
                        th scope="col" { "Version" } th scope="col" { "Published" } th scope="col" { "Live URL" }
                    } }
                    tbody { @for a in artifacts { tr {
                        th scope="row" { (a.name) }
                        td { (a.content_type) }
                        td class="num" { (a.size) " bytes" }
                        td class="num" { (a.version) }
                        td { (layout::time(a.published_at)) }
                        td { code data-copy={ "URL of " (a.name) } { (base) "/feeds/" (tenant) "/" (id) "/" (a.name) "?token=…" } }
                    } } }
                }
                p class="muted" {
                    @if *has_token { "It has a feed token. To make a new one (the old one stops working at once), run " }
                    @else { "It has no feed token yet: make one with " }
                    code { "airlock artifacts token " (tenant) "/" (id) " --rotate" } " on the host."
                }
            }
        }
    };
    Ok(ctx
        .page("artifacts", "Artifacts", None, body)
        .into_response())
}
