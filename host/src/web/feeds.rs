//! Published artifacts at `/feeds/{tenant}/{installation}/{name}`.

use axum::Router;

use super::WebState;

/// The feed routes.
pub fn routes() -> Router<WebState> {
    Router::new()
}
