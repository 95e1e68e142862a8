//! Inbound webhooks on PostgreSQL: each installation's secret (its sha256
//! only) and the delivery ids its runs handled. The ids are written by the
//! transaction that records the run (`record_in`, called by `ledger.rs`).

use super::PgStore;
use crate::storage::{DELIVERY_ID_RETENTION_SECS, Scope, StorageError, WebhookStore};

/// Remembers a webhook delivery handled by run `run_id`, and forgets the
/// installation's deliveries older than the retention.
pub(super) async fn record_in(
    tx: &deadpool_postgres::Transaction<'_>,
    scope: &Scope,
    receipt: &crate::storage::DeliveryReceipt,
    run_id: i64,
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO webhook_deliveries (tenant, installation, webhook, delivery_id, run_id,
            received_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant, installation, webhook, delivery_id)
         DO UPDATE SET run_id = excluded.run_id, received_at = excluded.received_at",
        &[
            &scope.tenant,
            &scope.installation,
            &receipt.webhook,
            &receipt.delivery_id,
            &run_id,
            &receipt.received_at,
        ],
    )
    .await?;
    tx.execute(
        "DELETE FROM webhook_deliveries WHERE tenant = $1 AND installation = $2
           AND webhook = $3 AND received_at < $4",
        &[
            &scope.tenant,
            &scope.installation,
            &receipt.webhook,
            &(receipt.received_at - DELIVERY_ID_RETENTION_SECS),
        ],
    )
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl WebhookStore for PgStore {
    async fn webhook_secret_hash(&self, scope: &Scope) -> Result<Option<[u8; 32]>, StorageError> {
        self.url_secret_hash(UrlSecret::Webhook, scope).await
    }

    async fn set_webhook_secret_hash(
        &self,
        scope: &Scope,
        hash: [u8; 32],
        now: i64,
    ) -> Result<(), StorageError> {
        self.set_url_secret_hash(UrlSecret::Webhook, scope, hash, now)
            .await
    }

    async fn handled_delivery(
        &self,
        scope: &Scope,
        webhook: &str,
        delivery_id: &str,
    ) -> Result<Option<i64>, StorageError> {
        let client = self.client().await?;
        let since = chrono::Utc::now().timestamp() - DELIVERY_ID_RETENTION_SECS;
        let row = client
            .query_opt(
                "SELECT run_id FROM webhook_deliveries WHERE tenant = $1 AND installation = $2
                    AND webhook = $3 AND delivery_id = $4 AND received_at >= $5",
                &[
                    &scope.tenant,
                    &scope.installation,
                    &webhook,
                    &delivery_id,
                    &since,
                ],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// A secret an installation's URLs hold, kept as its sha256: a feed's
/// token (artifacts) or a webhook's secret, one per installation each.
#[derive(Debug, Clone, Copy)]
pub(super) enum UrlSecret {
    /// `feed_tokens.token_sha256`.
    FeedToken,
    /// `webhook_secrets.secret_sha256`.
    Webhook,
}

impl UrlSecret {
    /// Its table and hash column.
    fn place(self) -> (&'static str, &'static str) {
        match self {
            Self::FeedToken => ("feed_tokens", "token_sha256"),
            Self::Webhook => ("webhook_secrets", "secret_sha256"),
        }
    }
}

impl PgStore {
    /// The sha256 of `scope`'s `secret`, if it has one.
    pub(super) async fn url_secret_hash(
        &self,
        secret: UrlSecret,
        scope: &Scope,
    ) -> Result<Option<[u8; 32]>, StorageError> {
        let (table, column) = secret.place();
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {column} FROM {table} WHERE tenant = $1 AND installation = $2"),
                &[&scope.tenant, &scope.installation],
            )
            .await?;
        Ok(row.and_then(|r| <[u8; 32]>::try_from(r.get::<_, Vec<u8>>(0)).ok()))
    }

    /// Replaces `scope`'s `secret` by the one hashing to `hash`, at once.
    pub(super) async fn set_url_secret_hash(
        &self,
        secret: UrlSecret,
        scope: &Scope,
        hash: [u8; 32],
        now: i64,
    ) -> Result<(), StorageError> {
        let (table, column) = secret.place();
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO {table} (tenant, installation, {column}, created_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant, installation) DO UPDATE
                     SET {column} = excluded.{column}, created_at = excluded.created_at"
                ),
                &[&scope.tenant, &scope.installation, &&hash[..], &now],
            )
            .await?;
        Ok(())
    }
}
