//! What a guest asks of the enforcement point and what it gets back: the
//! request, the response, the ways a request can fail, whether the run may
//! change third parties, and the bounds on requests.

use std::time::Duration;

use serde::Serialize;

use super::policy::Denial;

/// Host-wide bounds on outbound HTTP.
#[derive(Debug, Clone)]
pub struct EgressLimits {
    /// Timeout when the guest does not ask for one.
    pub default_timeout: Duration,
    /// The longest timeout a guest may ask for.
    pub max_timeout: Duration,
    /// Largest request body a guest may send.
    pub max_request_bytes: usize,
    /// Largest response body read; larger is `response-too-large`.
    pub max_response_bytes: usize,
    /// Redirect hops followed (each re-checked) before giving up.
    pub max_redirects: u32,
}

impl Default for EgressLimits {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(120),
            max_request_bytes: 8 << 20,
            max_response_bytes: 16 << 20,
            max_redirects: 5,
        }
    }
}

/// One installation's bounds on its requests (from its manifest), applied
/// within the host-wide [`EgressLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestCaps {
    /// Timeout of a request, and the most a guest may ask for.
    pub timeout: Duration,
    /// Largest response body read.
    pub max_response_bytes: usize,
}

/// A request as the guest made it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Method name, upper-case.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// Body, if any.
    pub body: Option<Vec<u8>>,
    /// Requested timeout, bounded by [`EgressLimits::max_timeout`].
    pub timeout: Option<Duration>,
}

/// A response, redirects already followed.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// The full body.
    pub body: Vec<u8>,
}

/// Why a request got no response. No variant's text holds the request's URL
/// (a query or path can carry a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The policy refused it.
    #[error("{0}")]
    Denied(Denial),
    /// Test mode: a state-changing method was not sent.
    #[error("not sent: test mode suppresses state-changing requests")]
    SuppressedInTestMode,
    /// Malformed method, header or body.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Connection could not be made or broke.
    #[error("connection failed: {0}")]
    ConnectionFailed(String),
    /// The body exceeded the cap.
    #[error("response too large")]
    ResponseTooLarge,
}

/// Whether a run may change third parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendMode {
    /// Only GET, HEAD and OPTIONS are sent.
    Test,
    /// Everything allowed by the policy is sent.
    Live,
}

/// Methods that change nothing: the only ones sent in test mode.
pub(crate) const SAFE_METHODS: [&str; 3] = ["GET", "HEAD", "OPTIONS"];
/// Every method a guest may use.
pub(crate) const METHODS: [&str; 7] = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"];
