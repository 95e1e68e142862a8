//! Errors as RFC 9457 problem details (`application/problem+json`), each
//! with a stable machine-readable `code`. A failure of the host itself is
//! logged where the host runs and answered with no detail: a caller never
//! sees internals.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::admin::TokenError;
use crate::lifecycle::LifecycleError;
use crate::storage::StorageError;

/// A problem, as the API answers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:airlock:problem:{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind of problem in words (the same for every problem of a code).
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time, naming what to fix.
    pub detail: String,
    /// The stable machine-readable code: `unauthenticated`, `forbidden`,
    /// `not_found`, `invalid_input`, `conflict`, `stale_revision`,
    /// `approval_required`, `disabled`, `method_not_allowed`,
    /// `unsupported_media_type`, `too_large`, `internal`.
    pub code: String,
}

/// An error a handler returns; answered as a [`Problem`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
}

impl ApiError {
    /// A problem of `code` with `status` and `detail`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// 401: no token, or not a live one.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send a live admin token as `Authorization: Bearer alk_…` (make one with \
             `airlock tokens create`)",
        )
    }

    /// 403: the token lacks `permission`.
    pub fn forbidden(permission: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token does not have the `{permission}` permission"),
        )
    }

    /// 403: only an operator's token may do this.
    pub fn operator_only() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an operator's token may do this",
        )
    }

    /// 404: `what` does not exist, or the caller may not see it (the two
    /// are not told apart).
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 400: the request is malformed or names something invalid.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", detail)
    }

    /// 500: the host failed; `cause` is logged, not answered.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        let mut text = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        eprintln!("admin api: internal error: {text}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the host failed to do this; its log says why",
        )
    }

    /// Its stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    fn title(&self) -> &'static str {
        match self.code {
            "unauthenticated" => "Not authenticated",
            "forbidden" => "Not permitted",
            "not_found" => "Not found",
            "invalid_input" => "Invalid input",
            "conflict" => "Conflict",
            "stale_revision" => "Changed meanwhile",
            "approval_required" => "Approval required",
            "disabled" => "Installation disabled",
            "no_master_key" => "No master key",
            "check_failed" => "Test connection failed",
            "method_not_allowed" => "Method not allowed",
            "unsupported_media_type" => "Unsupported media type",
            "too_large" => "Request too large",
            _ => "Internal error",
        }
    }

    /// The problem it is answered as.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:airlock:problem:{}", self.code),
            title: self.title().to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.problem())).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"airlock\""),
            );
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StorageError::NotFound(m) => ApiError::not_found(m),
            StorageError::InvalidKey(_) | StorageError::QuotaExceeded(_) => {
                ApiError::invalid(e.to_string())
            }
            other => ApiError::internal(&other),
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        use LifecycleError as L;
        match e {
            L::NoTenant(_) | L::NoInstallation(_) => ApiError::not_found(e.to_string()),
            L::BadId(_)
            | L::BadReference(_)
            | L::Config(_)
            | L::Schedule(_)
            | L::UnknownFeed { .. }
            | L::Manifest(_)
            | L::NotAComponent { .. }
            | L::NoWebhookHandler { .. }
            | L::AnotherPlugin { .. } => ApiError::invalid(e.to_string()),
            L::StaleRevision { .. } => {
                ApiError::new(StatusCode::CONFLICT, "stale_revision", e.to_string())
            }
            L::DigestChanged { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            L::EgressWidened { .. } | L::DataWidened { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "approval_required",
                e.to_string(),
            ),
            L::NoPlugin(_) => ApiError::not_found(e.to_string()),
            L::NoMasterKey => ApiError::new(StatusCode::CONFLICT, "no_master_key", e.to_string()),
            L::Disabled(_) => ApiError::new(StatusCode::CONFLICT, "disabled", e.to_string()),
            L::Storage(s) => s.into(),
            other => ApiError::internal(&other),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Storage(s) => s.into(),
            TokenError::NoTenant(_) => ApiError::not_found(e.to_string()),
            other => ApiError::invalid(other.to_string()),
        }
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A client error that is not a problem yet (axum's own answers: a body,
/// path or query that does not parse, a method the route does not take)
/// made one; other responses pass unchanged.
pub async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !status.is_client_error() || is_problem {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        _ => "invalid_input",
    };
    let detail = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("client error")
            .to_string()
    } else {
        text
    };
    let mut problem = ApiError::new(status, code, detail).into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}
