//! Inbound webhooks on PostgreSQL: each installation's secret (its sha256
//! only) and the delivery ids its runs handled. The ids are written by the
//! transaction that records the run (with the run ledger's concern).

use super::PgStore;
use crate::storage::{DELIVERY_ID_RETENTION_SECS, Scope, StorageError, WebhookStore};

#[async_trait::async_trait]
impl WebhookStore for PgStore {
    async fn webhook_secret_hash(&self, scope: &Scope) -> Result<Option<[u8; 32]>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT secret_sha256 FROM webhook_secrets WHERE tenant = $1 AND installation = $2",
                &[&scope.tenant, &scope.installation],
            )
            .await?;
        Ok(row.and_then(|r| <[u8; 32]>::try_from(r.get::<_, Vec<u8>>(0)).ok()))
    }

    async fn set_webhook_secret_hash(
        &self,
        scope: &Scope,
        hash: [u8; 32],
        now: i64,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO webhook_secrets (tenant, installation, secret_sha256, created_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant, installation) DO UPDATE
                 SET secret_sha256 = excluded.secret_sha256, created_at = excluded.created_at",
                &[&scope.tenant, &scope.installation, &&hash[..], &now],
            )
            .await?;
        Ok(())
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
