//! The caller of an admin API request: the admin token in its
//! `Authorization: Bearer` header, resolved once per request.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

use super::problem::ApiError;
use crate::admin::{self, Caller, Permission};
use crate::web::WebState;

impl FromRequestParts<WebState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        authenticate(&parts.headers, state).await
    }
}

/// The caller the request's `Authorization: Bearer` token authenticates.
async fn authenticate(headers: &HeaderMap, state: &WebState) -> Result<Caller, ApiError> {
    {
        let presented = headers
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

/// The one gate in front of every `/api/tenants/{tenant}/…` route, before
/// its handler parses anything: the caller is authenticated (401) and must
/// see `{tenant}` (else the same 404 as a tenant that does not exist). The
/// handlers check again; this makes tenant isolation hold for a route whose
/// handler forgot to.
pub async fn tenant_gate(
    State(state): State<WebState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let tenant = request
        .uri()
        .path()
        .strip_prefix("/api/tenants/")
        .and_then(|rest| rest.split('/').next())
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8_lossy()
                .into_owned()
        });
    if let Some(tenant) = tenant {
        let caller = authenticate(request.headers(), &state).await?;
        caller.tenant(&tenant)?;
        request.extensions_mut().insert(caller);
    }
    Ok(next.run(request).await)
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
