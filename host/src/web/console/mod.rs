//! The web console at `/console` on `serve --listen`: the pages operators
//! use all day (integrations with their enabled switch, add, reauthorise,
//! remove; feeds with schedule, next run and Run now; feed executions; the
//! bell; records; artifacts; a security reviewer's egress view; a
//! connector's state, its history and rewind).
//!
//! Server-rendered HTML ([`maud`]), one module per page; the stylesheet and
//! a few lines of script are compiled into the binary (`assets.rs`): no CDN,
//! no build step, and every page works without script. Login is by admin
//! token (`login.rs`), exchanged for a session ([`session`]); every POST is
//! checked for its origin and CSRF token ([`form`]). A tenant's token sees
//! its tenant only (anything else is the same 404 as a tenant that does not
//! exist); `read` shows pages, `operate` changes, `approve` approves
//! widened egress or record access, as in the admin API. Every change is
//! made by the same functions as the API's ([`crate::admin::actions`],
//! [`crate::lifecycle`]) and recorded in the audit of admin actions.
//!
//! Design notes: `docs/console.md`.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;

use crate::admin::Permission;
use crate::lifecycle::LifecycleError;
use crate::storage::StorageError;
use crate::web::WebState;
use crate::web::api::ApiError;

mod add;
mod artifacts;
mod assets;
mod bell;
mod config_form;
mod egress;
pub mod form;
mod integrations;
mod layout;
mod login;
mod records;
mod runs;
pub mod session;
mod state;

pub use session::Sessions;

/// Why a console page could not be shown or a form not accepted.
#[derive(Debug)]
pub enum ConsoleError {
    /// No live session: to the login page.
    LoggedOut,
    /// Not found, or not visible to this token.
    NotFound(String),
    /// The token may not do this.
    Forbidden(String),
    /// The request or form is wrong.
    BadRequest(String),
    /// An error the admin API would answer (its status and words).
    Api(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Api(e)
    }
}

impl From<LifecycleError> for ConsoleError {
    fn from(e: LifecycleError) -> Self {
        ConsoleError::Api(e.into())
    }
}

impl From<StorageError> for ConsoleError {
    fn from(e: StorageError) -> Self {
        ConsoleError::Api(e.into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, detail) = match self {
            ConsoleError::LoggedOut => return Redirect::to("/console/login").into_response(),
            ConsoleError::NotFound(d) => (StatusCode::NOT_FOUND, "Not found".to_string(), d),
            ConsoleError::Forbidden(d) => (StatusCode::FORBIDDEN, "Not permitted".to_string(), d),
            ConsoleError::BadRequest(d) => {
                (StatusCode::BAD_REQUEST, "Invalid input".to_string(), d)
            }
            ConsoleError::Api(e) => {
                let p = e.problem();
                let status =
                    StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, p.title, p.detail)
            }
        };
        let body = html! {
            h1 { (title) }
            p role="alert" { (detail) }
            p { a href="/console" { "Back to the console" } }
        };
        (status, layout::bare(&title, body)).into_response()
    }
}

/// A console page's result.
pub type PageResult<T = Response> = Result<T, ConsoleError>;

/// Refuses a viewer that may not see `tenant`, with the same 404 as a
/// tenant that does not exist.
pub fn visible(viewer: &session::Viewer, tenant: &str) -> Result<(), ConsoleError> {
    if viewer.caller.sees(tenant) {
        Ok(())
    } else {
        Err(ConsoleError::NotFound(format!("no tenant `{tenant}`")))
    }
}

/// Refuses a viewer without `permission`.
pub fn require(viewer: &session::Viewer, permission: Permission) -> Result<(), ConsoleError> {
    if viewer.caller.may(permission) {
        Ok(())
    } else {
        Err(ConsoleError::Forbidden(format!(
            "this token does not have the `{}` permission",
            permission.as_str()
        )))
    }
}

/// A redirect after a POST (303: the browser GETs the page).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The console's routes, all under `/console`.
pub fn routes() -> Router<WebState> {
    let t = "/console/t/{tenant}";
    let i = "/console/t/{tenant}/integrations/{installation}";
    Router::new()
        .route("/console", get(integrations::home))
        .route("/console/", get(integrations::home))
        .route("/console/assets/{file}", get(assets::serve))
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/logout", post(login::logout))
        .route(&format!("{t}/integrations"), get(integrations::list))
        .route(i, get(integrations::detail))
        .route(&format!("{i}/enabled"), post(integrations::switch))
        .route(
            &format!("{i}/feeds/{{feed}}/run-now"),
            post(integrations::run_now),
        )
        .route(
            &format!("{i}/remove"),
            get(integrations::confirm_remove).post(integrations::remove),
        )
        .route(
            &format!("{i}/reauthorise"),
            get(add::reauthorise_form).post(add::reauthorise),
        )
        .route(&format!("{i}/state"), get(state::show))
        .route(&format!("{i}/state/history"), get(state::history))
        .route(
            &format!("{i}/state/rewind"),
            get(state::confirm).post(state::rewind),
        )
        .route(&format!("{t}/add"), get(add::catalogue))
        .route(
            &format!("{t}/add/{{digest}}"),
            get(add::form).post(add::submit),
        )
        .route(&format!("{t}/runs"), get(runs::list))
        .route(&format!("{t}/runs/{{run}}"), get(runs::detail))
        .route(&format!("{t}/notifications"), get(bell::list))
        .route(
            &format!("{t}/notifications/{{id}}/acknowledge"),
            post(bell::acknowledge),
        )
        .route(&format!("{t}/records"), get(records::list))
        .route(
            &format!("{t}/records/{{collection}}/{{id}}"),
            get(records::detail),
        )
        .route(&format!("{t}/artifacts"), get(artifacts::list))
        .route(&format!("{t}/egress"), get(egress::view))
        .route("/console/{*rest}", get(not_found))
}

async fn not_found(_viewer: session::Viewer) -> ConsoleError {
    ConsoleError::NotFound("no such page".into())
}
