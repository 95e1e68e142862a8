//! SQLite's side of [`OAuthStore`]: tables `oauth_tokens` and
//! `oauth_pending` (migration 9).

use rusqlite::{OptionalExtension, params};

use super::oauth::{OAuthStore, PendingAuthorization, StoredTokenSet};
use super::{SqliteStore, StorageError};
use crate::secrets::SealedSecret;

impl SqliteStore {
    /// See [`OAuthStore::oauth_token_set`].
    pub fn oauth_token_set(
        &self,
        tenant: &str,
        installation: &str,
    ) -> Result<Option<StoredTokenSet>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key_id, nonce, ciphertext, expires_at, scopes, updated_at FROM oauth_tokens
             WHERE tenant = ?1 AND installation = ?2",
        )?;
        Ok(stmt
            .query_row(params![tenant, installation], |r| {
                Ok(StoredTokenSet {
                    sealed: SealedSecret {
                        key_id: r.get(0)?,
                        nonce: r.get(1)?,
                        ciphertext: r.get(2)?,
                    },
                    expires_at: r.get(3)?,
                    scopes: r.get(4)?,
                    updated_at: r.get(5)?,
                })
            })
            .optional()?)
    }

    /// See [`OAuthStore::put_oauth_token_set`].
    pub fn put_oauth_token_set(
        &self,
        tenant: &str,
        installation: &str,
        tokens: &StoredTokenSet,
    ) -> Result<(), StorageError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO oauth_tokens
             (tenant, installation, key_id, nonce, ciphertext, expires_at, scopes, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                tenant,
                installation,
                tokens.sealed.key_id,
                tokens.sealed.nonce,
                tokens.sealed.ciphertext,
                tokens.expires_at,
                tokens.scopes,
                tokens.updated_at
            ],
        )?;
        Ok(())
    }

    /// See [`OAuthStore::delete_oauth_token_set`].
    pub fn delete_oauth_token_set(
        &self,
        tenant: &str,
        installation: &str,
    ) -> Result<(), StorageError> {
        self.conn().execute(
            "DELETE FROM oauth_tokens WHERE tenant = ?1 AND installation = ?2",
            params![tenant, installation],
        )?;
        Ok(())
    }

    /// See [`OAuthStore::put_oauth_pending`].
    pub fn put_oauth_pending(&self, p: &PendingAuthorization) -> Result<(), StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM oauth_pending WHERE expires_at <= ?1",
            params![p.created_at],
        )?;
        let verifier = p.verifier.as_ref();
        tx.execute(
            "INSERT INTO oauth_pending (state_key, tenant, installation, key_id, nonce,
                 ciphertext, redirect_uri, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                p.state_key,
                p.tenant,
                p.installation,
                verifier.map(|v| &v.key_id),
                verifier.map(|v| &v.nonce),
                verifier.map(|v| &v.ciphertext),
                p.redirect_uri,
                p.created_at,
                p.expires_at
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// See [`OAuthStore::take_oauth_pending`].
    pub fn take_oauth_pending(
        &self,
        state_key: &str,
        now: i64,
    ) -> Result<Option<PendingAuthorization>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "UPDATE oauth_pending SET used_at = ?2
             WHERE state_key = ?1 AND used_at IS NULL AND expires_at > ?2
             RETURNING state_key, tenant, installation, key_id, nonce, ciphertext,
                 redirect_uri, created_at, expires_at",
        )?;
        Ok(stmt
            .query_row(params![state_key, now], |r| {
                let key_id: Option<String> = r.get(3)?;
                let verifier = match key_id {
                    Some(key_id) => Some(SealedSecret {
                        key_id,
                        nonce: r.get(4)?,
                        ciphertext: r.get(5)?,
                    }),
                    None => None,
                };
                Ok(PendingAuthorization {
                    state_key: r.get(0)?,
                    tenant: r.get(1)?,
                    installation: r.get(2)?,
                    verifier,
                    redirect_uri: r.get(6)?,
                    created_at: r.get(7)?,
                    expires_at: r.get(8)?,
                })
            })
            .optional()?)
    }
}

#[async_trait::async_trait]
impl OAuthStore for SqliteStore {
    async fn oauth_token_set(
        &self,
        tenant: &str,
        installation: &str,
    ) -> Result<Option<StoredTokenSet>, StorageError> {
        let (t, i) = (tenant.to_string(), installation.to_string());
        self.off_worker(move |s| s.oauth_token_set(&t, &i)).await
    }

    async fn put_oauth_token_set(
        &self,
        tenant: &str,
        installation: &str,
        tokens: StoredTokenSet,
    ) -> Result<(), StorageError> {
        let (t, i) = (tenant.to_string(), installation.to_string());
        self.off_worker(move |s| s.put_oauth_token_set(&t, &i, &tokens))
            .await
    }

    async fn delete_oauth_token_set(
        &self,
        tenant: &str,
        installation: &str,
    ) -> Result<(), StorageError> {
        let (t, i) = (tenant.to_string(), installation.to_string());
        self.off_worker(move |s| s.delete_oauth_token_set(&t, &i))
            .await
    }

    async fn put_oauth_pending(&self, pending: PendingAuthorization) -> Result<(), StorageError> {
        self.off_worker(move |s| s.put_oauth_pending(&pending))
            .await
    }

    async fn take_oauth_pending(
        &self,
        state_key: &str,
        now: i64,
    ) -> Result<Option<PendingAuthorization>, StorageError> {
        let key = state_key.to_string();
        self.off_worker(move |s| s.take_oauth_pending(&key, now))
            .await
    }
}

// The behaviours are tested by the store's conformance suite
// (`conformance/oauth.rs`), on every backend; what is SQLite's own here is
// that a new authorization clears the expired ones.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_authorization_clears_the_expired_ones() {
        let store = SqliteStore::in_memory().unwrap();
        let pending = |key: &str, created_at: i64| PendingAuthorization {
            state_key: key.into(),
            tenant: "t".into(),
            installation: "i".into(),
            verifier: None,
            redirect_uri: "https://h/oauth/callback".into(),
            created_at,
            expires_at: created_at + 600,
        };
        store.put_oauth_pending(&pending("a", 100)).unwrap();
        store.put_oauth_pending(&pending("b", 800)).unwrap();
        let n: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM oauth_pending", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
