//! Where an installation's OAuth2 credentials live: its token set (sealed
//! before it reaches the store) and the authorizations an operator has
//! started and not finished (each `state`, by its hash, with the sealed
//! PKCE verifier, single use, expiring). The backend-neutral trait; SQLite's
//! side is `oauth_sqlite.rs`.

use crate::secrets::SealedSecret;

use super::StorageError;

/// An installation's token set as stored: the access and refresh tokens
/// sealed together (the store never sees them), their expiry and scopes in
/// the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTokenSet {
    /// The sealed tokens.
    pub sealed: SealedSecret,
    /// When the access token expires, Unix seconds.
    pub expires_at: Option<i64>,
    /// The scopes granted, space-separated.
    pub scopes: String,
    /// When it was stored, Unix seconds.
    pub updated_at: i64,
}

/// An authorization an operator started (`airlock reauthorise --oauth`),
/// waiting for its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAuthorization {
    /// The SHA-256 of its `state`, hex: the store never holds the state.
    pub state_key: String,
    /// The tenant.
    pub tenant: String,
    /// The installation.
    pub installation: String,
    /// The PKCE verifier, sealed; none without PKCE.
    pub verifier: Option<SealedSecret>,
    /// The redirect URI the authorize URL named.
    pub redirect_uri: String,
    /// When it was started, Unix seconds.
    pub created_at: i64,
    /// When it stops being accepted, Unix seconds.
    pub expires_at: i64,
}

/// OAuth2 credentials, as a backend offers them to async code.
#[async_trait::async_trait]
pub trait OAuthStore: Send + Sync {
    /// The token set of an installation, if it has one.
    async fn oauth_token_set(
        &self,
        tenant: &str,
        installation: &str,
    ) -> Result<Option<StoredTokenSet>, StorageError>;
    /// Stores (replaces) an installation's token set; durable once it
    /// returns, so a rotated refresh token is never lost after it is used.
    async fn put_oauth_token_set(
        &self,
        tenant: &str,
        installation: &str,
        tokens: StoredTokenSet,
    ) -> Result<(), StorageError>;
    /// Deletes an installation's token set.
    async fn delete_oauth_token_set(
        &self,
        tenant: &str,
        installation: &str,
    ) -> Result<(), StorageError>;
    /// Stores a started authorization, dropping those expired by its
    /// `created_at`.
    async fn put_oauth_pending(&self, pending: PendingAuthorization) -> Result<(), StorageError>;
    /// Takes the authorization whose state hashes to `state_key`, if it is
    /// there, unused and not expired at `now`: it is marked used in the same
    /// transaction, so a state is accepted once.
    async fn take_oauth_pending(
        &self,
        state_key: &str,
        now: i64,
    ) -> Result<Option<PendingAuthorization>, StorageError>;
}
