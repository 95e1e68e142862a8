//! An installation's OAuth2 credentials on PostgreSQL: its sealed token
//! set, and the authorizations started (by their state's hash) and taken
//! once.

use tokio_postgres::Row;

use super::PgStore;
use crate::secrets::SealedSecret;
use crate::storage::{OAuthStore, PendingAuthorization, StorageError, StoredTokenSet};

fn pending_from_row(r: &Row) -> PendingAuthorization {
    let key_id: Option<String> = r.get(3);
    PendingAuthorization {
        state_key: r.get(0),
        tenant: r.get(1),
        installation: r.get(2),
        verifier: key_id.map(|key_id| SealedSecret {
            key_id,
            nonce: r.get(4),
            ciphertext: r.get(5),
        }),
        redirect_uri: r.get(6),
        created_at: r.get(7),
        expires_at: r.get(8),
    }
}

#[async_trait::async_trait]
impl OAuthStore for PgStore {
    async fn oauth_token_set(
        &self,
        tenant: &str,
        installation: &str,
    ) -> Result<Option<StoredTokenSet>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT key_id, nonce, ciphertext, expires_at, scopes, updated_at
                 FROM oauth_tokens WHERE tenant = $1 AND installation = $2",
                &[&tenant, &installation],
            )
            .await?;
        Ok(row.map(|r| StoredTokenSet {
            sealed: SealedSecret {
                key_id: r.get(0),
                nonce: r.get(1),
                ciphertext: r.get(2),
            },
            expires_at: r.get(3),
            scopes: r.get(4),
            updated_at: r.get(5),
        }))
    }

    /// Durable once it returns: the statement commits on its own
    /// (PostgreSQL's `synchronous_commit` is on by default).
    async fn put_oauth_token_set(
        &self,
        tenant: &str,
        installation: &str,
        tokens: StoredTokenSet,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO oauth_tokens
                 (tenant, installation, key_id, nonce, ciphertext, expires_at, scopes, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (tenant, installation) DO UPDATE SET
                    key_id = excluded.key_id, nonce = excluded.nonce,
                    ciphertext = excluded.ciphertext, expires_at = excluded.expires_at,
                    scopes = excluded.scopes, updated_at = excluded.updated_at",
                &[
                    &tenant,
                    &installation,
                    &tokens.sealed.key_id,
                    &tokens.sealed.nonce,
                    &tokens.sealed.ciphertext,
                    &tokens.expires_at,
                    &tokens.scopes,
                    &tokens.updated_at,
                ],
            )
            .await?;
        Ok(())
    }

    async fn delete_oauth_token_set(
        &self,
        tenant: &str,
        installation: &str,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM oauth_tokens WHERE tenant = $1 AND installation = $2",
                &[&tenant, &installation],
            )
            .await?;
        Ok(())
    }

    async fn put_oauth_pending(&self, p: PendingAuthorization) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "DELETE FROM oauth_pending WHERE expires_at <= $1",
            &[&p.created_at],
        )
        .await?;
        let verifier = p.verifier.as_ref();
        tx.execute(
            "INSERT INTO oauth_pending (state_key, tenant, installation, key_id, nonce,
                 ciphertext, redirect_uri, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &p.state_key,
                &p.tenant,
                &p.installation,
                &verifier.map(|v| &v.key_id),
                &verifier.map(|v| &v.nonce),
                &verifier.map(|v| &v.ciphertext),
                &p.redirect_uri,
                &p.created_at,
                &p.expires_at,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One statement marks it used and returns it: of two callbacks with
    /// the same state, on any nodes, one gets it.
    async fn take_oauth_pending(
        &self,
        state_key: &str,
        now: i64,
    ) -> Result<Option<PendingAuthorization>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "UPDATE oauth_pending SET used_at = $2
                 WHERE state_key = $1 AND used_at IS NULL AND expires_at > $2
                 RETURNING state_key, tenant, installation, key_id, nonce, ciphertext,
                     redirect_uri, created_at, expires_at",
                &[&state_key, &now],
            )
            .await?;
        Ok(row.as_ref().map(pending_from_row))
    }
}
