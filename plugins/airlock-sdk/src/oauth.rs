//! The installation's OAuth2 access token, held and refreshed by the host.

use crate::Failure;
use crate::bindings::airlock::connector::oauth::{self as wit, OauthError};

/// A current access token.
pub fn token() -> Result<String, Failure> {
    wit::token().map(|t| t.token).map_err(failure)
}

/// The third party refused `rejected` (401): a fresh token from the host.
pub fn refresh(rejected: &str) -> Result<String, Failure> {
    wit::refresh(rejected).map(|t| t.token).map_err(failure)
}

/// An OAuth error as a run failure.
pub fn failure(error: OauthError) -> Failure {
    match error {
        OauthError::Unavailable(m) => Failure::retry(format!("cannot get an access token: {m}")),
        OauthError::ReauthorisationNeeded(m) => {
            Failure::error(format!("the installation needs reauthorising: {m}"))
        }
        OauthError::NotConfigured(m) => Failure::error(format!("OAuth is not configured: {m}")),
    }
}
