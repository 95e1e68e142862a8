//! The caller of an admin API request: the admin token in its
//! `Authorization: Bearer` header, resolved once per request.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::problem::ApiError;
use crate::admin::{self, Caller, Permission};
use crate::web::WebState;

impl FromRequestParts<WebState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(ApiError::unauthenticated)?;
        admin::authenticate(&**state.host.store(), presented)
            .await?
            .ok_or_else(ApiError::unauthenticated)
    }
}

/// The checks every handler makes of its caller.
pub trait Allowed {
    /// Refuses a caller without `permission` (403).
    fn require(&self, permission: Permission) -> Result<(), ApiError>;
    /// Refuses a caller that may not see `tenant` with the same 404 as a
    /// tenant that does not exist: a tenant token learns nothing of others.
    fn tenant(&self, tenant: &str) -> Result<(), ApiError>;
    /// Refuses a tenant's token (403).
    fn operator(&self) -> Result<(), ApiError>;
}

impl Allowed for Caller {
    fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(permission.as_str()))
        }
    }

    fn tenant(&self, tenant: &str) -> Result<(), ApiError> {
        if self.sees(tenant) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("no tenant `{tenant}`")))
        }
    }

    fn operator(&self) -> Result<(), ApiError> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(ApiError::operator_only())
        }
    }
}
