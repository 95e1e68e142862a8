//! The admin API's own data, as a backend offers it: the tokens that
//! authenticate its callers (each kept as its sha256 only: the token is
//! shown once, when it is made) and the audit of the changes they made.

use super::StorageError;

/// An admin token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTokenRow {
    /// Its number, shown in listings and used to revoke it.
    pub id: i64,
    /// What the operator called it (who or what holds it).
    pub name: String,
    /// The one tenant it may see, or none for an operator token (all
    /// tenants).
    pub tenant: Option<String>,
    /// What it may do: permission names, comma-separated (`read,operate`).
    pub permissions: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A token to store: its row without the id, and the sha256 of its text.
#[derive(Debug, Clone)]
pub struct NewAdminToken {
    /// See [`AdminTokenRow::name`].
    pub name: String,
    /// See [`AdminTokenRow::tenant`].
    pub tenant: Option<String>,
    /// See [`AdminTokenRow::permissions`].
    pub permissions: String,
    /// The sha256 of the token's text.
    pub secret_sha256: [u8; 32],
    /// When it was made (Unix seconds).
    pub created_at: i64,
}

/// One change made through the admin API (or a rewind from the CLI), and
/// who made it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AdminActionRow {
    /// Its number (0 before it is stored).
    pub id: i64,
    /// When (Unix seconds).
    pub at: i64,
    /// Who: `token #7 (shop-admin)`, or `cli` for the command line.
    pub actor: String,
    /// The token's number, when a token made it.
    pub token_id: Option<i64>,
    /// The tenant it concerned, if one.
    pub tenant: Option<String>,
    /// What was done, a stable name (`installation.disable`).
    pub action: String,
    /// What it was done to (`acme/custom-store`, `notification #4`).
    pub target: String,
    /// The change in words, never a secret (`mode live`).
    pub detail: String,
}

/// The admin API's tokens and audit, as a backend offers them.
#[async_trait::async_trait]
pub trait AdminStore: Send + Sync {
    /// Stores a new token; returns its id.
    async fn add_admin_token(&self, token: NewAdminToken) -> Result<i64, StorageError>;

    /// Every token, revoked ones too, oldest first.
    async fn admin_tokens(&self) -> Result<Vec<AdminTokenRow>, StorageError>;

    /// The live (not revoked) token whose text hashes to `hash`.
    async fn admin_token_by_hash(
        &self,
        hash: [u8; 32],
    ) -> Result<Option<AdminTokenRow>, StorageError>;

    /// Revokes token `id` at `now`; false if there is no live token `id`.
    async fn revoke_admin_token(&self, id: i64, now: i64) -> Result<bool, StorageError>;

    /// Appends `action` to the audit of admin actions; returns its id.
    async fn record_admin_action(&self, action: AdminActionRow) -> Result<i64, StorageError>;

    /// The latest `limit` admin actions, newest first; only `tenant`'s when
    /// given.
    async fn admin_actions(
        &self,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AdminActionRow>, StorageError>;
}
