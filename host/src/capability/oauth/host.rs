//! WIT glue for `airlock:connector/oauth`.

use super::OAuthCapability;
use crate::oauth::{OAuthFailure, TokenSet};
use crate::runtime::bindings::airlock::connector::oauth;

fn guest_token(set: TokenSet) -> oauth::AccessToken {
    oauth::AccessToken {
        token: set.access_token,
        expires_at: set.expires_at,
    }
}

fn guest_error(e: OAuthFailure) -> oauth::OauthError {
    match e {
        OAuthFailure::NotConfigured(m) => oauth::OauthError::NotConfigured(m),
        OAuthFailure::ReauthorisationNeeded(m) | OAuthFailure::NotAuthorised(m) => {
            oauth::OauthError::ReauthorisationNeeded(m)
        }
        OAuthFailure::Unavailable(m) => oauth::OauthError::Unavailable(m),
    }
}

impl oauth::Host for OAuthCapability {
    #[tracing::instrument(name = "oauth.token", level = "debug", skip_all)]
    async fn token(&mut self) -> wasmtime::Result<Result<oauth::AccessToken, oauth::OauthError>> {
        Ok(OAuthCapability::token(self)
            .await
            .map(guest_token)
            .map_err(guest_error))
    }

    #[tracing::instrument(name = "oauth.refresh", level = "debug", skip_all)]
    async fn refresh(
        &mut self,
        rejected: String,
    ) -> wasmtime::Result<Result<oauth::AccessToken, oauth::OauthError>> {
        Ok(OAuthCapability::refresh(self, &rejected)
            .await
            .map(guest_token)
            .map_err(guest_error))
    }
}
