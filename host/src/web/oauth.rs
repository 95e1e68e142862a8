//! The OAuth2 authorization-code callback, `/oauth/callback`: where the
//! authorisation server sends the operator's browser back with `code` and
//! `state` (or `error`). The state must be one an operator started
//! (`airlock reauthorise --oauth`), unused and under ten minutes old;
//! then the code is exchanged (with the PKCE verifier) and the token set
//! stored. Every answer is a short page that echoes neither the code nor the
//! state; anything wrong is a 400 and stores nothing.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::WebState;
use crate::oauth::OAuthFailure;
use crate::oauth::flow::{FlowError, finish_authorization};

/// The OAuth callback route.
pub fn routes() -> Router<WebState> {
    Router::new().route("/oauth/callback", get(callback))
}

/// What the authorisation server puts in the callback's query.
#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Longest code or state accepted.
const MAX_PARAM: usize = 2048;

async fn callback(State(web): State<WebState>, Query(query): Query<Callback>) -> Response {
    if let Some(error) = query.error {
        // The operator refused (access_denied) or the server failed: the
        // state is spent so it cannot be replayed, nothing is stored.
        if let Some(state) = query.state.filter(|s| s.len() <= MAX_PARAM) {
            let now = chrono::Utc::now().timestamp();
            let _ = web
                .host
                .oauth_keeper()
                .take_authorization(&state, now)
                .await;
        }
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return page(
            StatusCode::BAD_REQUEST,
            "Not authorised",
            &format!("The authorisation server answered `{error}`: nothing was stored."),
        );
    }
    let (Some(code), Some(state)) = (query.code, query.state) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Not authorised",
            "The callback needs a code and a state.",
        );
    };
    if code.len() > MAX_PARAM || state.len() > MAX_PARAM {
        return page(
            StatusCode::BAD_REQUEST,
            "Not authorised",
            "The callback's parameters are too long.",
        );
    }
    match finish_authorization(&web.host, &state, &code).await {
        Ok(label) => page(
            StatusCode::OK,
            "Authorised",
            &format!("{label} is authorised. You can close this page."),
        ),
        Err(FlowError::OAuth(OAuthFailure::Unavailable(why))) => {
            page(StatusCode::BAD_GATEWAY, "Not authorised", &why)
        }
        Err(e) => page(StatusCode::BAD_REQUEST, "Not authorised", &e.to_string()),
    }
}

/// A short HTML page.
fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>{title}</title><h1>{title}</h1><p>{}</p>\n",
        escape(text)
    );
    (status, Html(body)).into_response()
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            c => c.to_string(),
        })
        .collect()
}
