//! The admin HTTP API, under `/api` on `serve --listen`: what the CLI does,
//! for a platform's own admin screens and the web console. Each handler
//! calls the same library functions as the CLI's command (`lifecycle`,
//! the store's traits), checks its caller's token first
//! ([`auth::Allowed`]), and answers errors as problem details
//! ([`problem`]). Every change is recorded in the audit of admin actions
//! with the token that made it.
//!
//! The OpenAPI 3.1 document is generated from the handlers and the routes
//! they are mounted on (one list, [`api()`]), and served at
//! `/api/openapi.json`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware;
use axum::routing::{any, get};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::WebState;

pub mod artifacts;
pub mod auth;
pub mod changes;
pub mod egress;
pub mod installations;
pub mod notifications;
pub mod plugins;
pub mod problem;
pub mod records;
pub mod runs;
pub mod state;
pub mod tenants;

pub use problem::{ApiError, ApiResult, Problem};

/// The document's fixed parts; the paths come from [`api()`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Airlock admin API",
        description = "Operate an Airlock host: tenants, installations, runs, notifications. \
                       Authenticate with an admin token (`airlock tokens create`) as \
                       `Authorization: Bearer alk_…`. Errors are RFC 9457 problem details \
                       with a stable `code`."
    ),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    components(schemas(Problem)),
    tags(
        (name = "tenants", description = "Tenants and the caller's token"),
        (name = "installations", description = "Installations and their feeds"),
        (name = "runs", description = "Feed executions"),
        (name = "notifications", description = "The bell: failures until acknowledged"),
        (name = "records", description = "The tenant's shared records, platform side"),
        (name = "egress", description = "What installations may reach, and what they did"),
        (name = "plugins", description = "The plugin store: upload, list, inspect"),
        (name = "state", description = "A connector's state: see it, its history, rewind it"),
    )
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("alk_ admin token")
                    .build(),
            ),
        );
    }
}

/// The error answers every endpoint may give, as problem details (listed
/// in each operation of the document).
pub struct Problems;

impl utoipa::IntoResponses for Problems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        [
            ("400", "The request is malformed or names something invalid"),
            ("401", "No live admin token"),
            ("403", "The token lacks the permission"),
            ("404", "Not found, or not visible to this token"),
            (
                "409",
                "Conflict: changed meanwhile (stale revision), or not possible now",
            ),
            (
                "422",
                "The change needs an approval the request did not give",
            ),
            ("500", "The host failed (its log says why)"),
        ]
        .into_iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/problem+json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
    }
}

/// The API's routes with their document.
pub fn api() -> (Router<WebState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tenants::whoami))
        .routes(routes!(tenants::list, tenants::add))
        .routes(routes!(installations::list, changes::install))
        .routes(routes!(changes::reauthorise))
        .routes(routes!(changes::upgrade))
        .routes(routes!(changes::oauth_start))
        .routes(routes!(installations::show, installations::remove))
        .routes(routes!(installations::set_enabled))
        .routes(routes!(installations::set_mode))
        .routes(routes!(installations::set_schedule))
        .routes(routes!(installations::run_now))
        .routes(routes!(runs::list))
        .routes(routes!(runs::show))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::count))
        .routes(routes!(notifications::acknowledge))
        .routes(routes!(artifacts::list))
        .routes(routes!(egress::review))
        .routes(routes!(egress::log))
        .routes(routes!(egress::check))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(records::list, records::import))
                .layer(DefaultBodyLimit::max(records::MAX_IMPORT_BYTES)),
        )
        .merge(
            OpenApiRouter::new()
                .routes(routes!(plugins::list, plugins::upload))
                .layer(DefaultBodyLimit::max(plugins::MAX_UPLOAD_BYTES)),
        )
        .routes(routes!(plugins::show))
        .routes(routes!(records::show))
        .routes(routes!(records::unacknowledge))
        .routes(routes!(state::show))
        .routes(routes!(state::history))
        .routes(routes!(state::rewind))
        .routes(routes!(tenants::admin_actions))
        .split_for_parts()
}

/// The OpenAPI document, as JSON text.
pub fn document_json() -> String {
    api()
        .1
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
}

/// The API's routes, and its document at `/api/openapi.json`. Whatever
/// else a request under `/api` gets (no such route, a method the route does
/// not take, a body or parameter that does not parse) is answered as a
/// problem too.
pub fn routes(state: WebState) -> Router<WebState> {
    let (router, document) = api();
    let router = router
        .route(
            "/api/{*rest}",
            any(|| async { ApiError::not_found("no such endpoint") }),
        )
        .layer(middleware::from_fn_with_state(state, auth::tenant_gate))
        .layer(middleware::map_response(problem::as_problem));
    let document: Arc<str> = document
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
        .into();
    // `api()` is cheap and pure: the served document is `document_json()`.
    router.route(
        "/api/openapi.json",
        get(move || {
            let document = document.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    document.to_string(),
                )
            }
        }),
    )
}
