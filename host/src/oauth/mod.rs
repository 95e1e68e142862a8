//! OAuth2 credentials held by the host (`docs/oauth.md`): the manifest's
//! `[oauth]` with the operator's client id and secret make an
//! [`OAuthClient`]; [`token`] builds its token requests and reads their
//! answers, [`pkce`] makes `state` and the PKCE verifier, without I/O.
//! [`TokenKeeper`] (`keeper.rs`) is where they meet the store and the
//! network: it keeps each installation's token set sealed in the store,
//! refreshes it one request at a time per installation, and stores a
//! rotated refresh token before the new access token is used.
//!
//! It owns no HTTP client: every token request goes through a
//! [`TokenSender`] (a run's HTTP capability, or the egress client for the
//! callback), so it meets the egress policy and the audit like any other
//! request. The guest's side is `capability/oauth`.

pub mod flow;
mod keeper;
pub mod pkce;
pub mod token;

pub use keeper::{
    AUTHORIZATION_TTL_SECS, AuthorizationStart, InstallationLocks, OAuthFailure, TokenKeeper,
    TokenSender,
};
pub use token::{Grant, OAuthClient, TokenError, TokenSet};

/// The reauthorisation commands for `tenant/installation`, for messages:
/// a refused client (`invalid_client`) needs its id or secret set again, a
/// refused grant a new authorisation.
pub fn reauthorise_hint(tenant: &str, installation: &str) -> String {
    let label = format!("{tenant}/{installation}");
    format!(
        "if the client id or secret changed, set them with `airlock reauthorise {label} \
         --config-file FILE`; then authorise again with `airlock reauthorise {label} --oauth` \
         (client credentials) or `airlock reauthorise {label} --oauth --redirect-uri \
         https://HOST/oauth/callback` (prints a URL to open in a browser)"
    )
}
