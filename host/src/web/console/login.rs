//! Login by admin token, and logout. The token is posted once, checked,
//! and exchanged for a session ([`super::session`]); it is never put back
//! in a page, a cookie or a log.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::form::{self, Posted};
use super::session::{self, Viewer};
use super::{PageResult, layout, see_other};
use crate::admin;
use crate::url_secret;
use crate::web::WebState;

fn login_page(error: Option<&str>) -> Markup {
    layout::bare(
        "Log in",
        html! {
            div class="login" {
                h1 { "Airlock console" }
                p { "Paste an admin token. Make one on the host with "
                    code { "airlock tokens create NAME --operator --permission read,operate" }
                    " (or " code { "--tenant TENANT" } " for one tenant's)." }
                @if let Some(error) = error {
                    p class="error" role="alert" { (error) }
                }
                form method="post" action="/console/login" {
                    div class="field" {
                        label for="token" { "Admin token" }
                        input type="password" id="token" name="token" autocomplete="off"
                            required placeholder="alk_…" autofocus;
                    }
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

/// `GET /console/login`.
pub async fn form(viewer: Option<Viewer>) -> Response {
    if viewer.is_some() {
        return see_other("/console");
    }
    login_page(None).into_response()
}

/// `POST /console/login`: a live token starts a session.
pub async fn submit(State(state): State<WebState>, req: Request) -> PageResult {
    let (headers, fields) = form::read(req, &state).await?;
    let token = fields.get("token").unwrap_or_default().trim();
    let caller = admin::authenticate(&**state.host.store(), token).await?;
    if caller.is_none() {
        let page = login_page(Some(
            "That is not a live admin token (it may have been revoked).",
        ));
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    }
    let new = state.console.start(url_secret::hash(token));
    Ok(logged_in(&new.id, &headers))
}

fn logged_in(id: &str, headers: &HeaderMap) -> Response {
    let mut response = see_other("/console");
    if let Ok(value) = session::set_cookie(id, headers).parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /console/logout`: the session ends and the cookie is cleared.
pub async fn logout(
    State(state): State<WebState>,
    headers: HeaderMap,
    Posted { viewer, .. }: Posted,
) -> PageResult {
    state.console.end(&viewer.session_id);
    let mut response = see_other("/console/login");
    if let Ok(value) = session::clear_cookie(&headers).parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}
