//! The OAuth2 authorization-code callback, `/oauth/callback`.

use axum::Router;

use super::WebState;

/// The OAuth callback route.
pub fn routes() -> Router<WebState> {
    Router::new()
}
