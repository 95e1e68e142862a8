//! [`WebhookStore`] on SQLite: tables `webhook_secrets` (each
//! installation's secret's sha256) and `webhook_deliveries` (the delivery
//! ids handled, with the run that handled each).

use rusqlite::{Connection, OptionalExtension as _, params};

use super::webhooks::{DELIVERY_ID_RETENTION_SECS, DeliveryReceipt, WebhookStore};
use super::{Scope, SqliteStore, StorageError};

/// The secrets carried in URLs an installation has, each kept as its
/// sha256 in its own table.
#[derive(Debug, Clone, Copy)]
pub(super) enum UrlSecret {
    /// The feed access token (`feed_tokens`, `artifacts_sqlite.rs`).
    Feed,
    /// The webhook secret (`webhook_secrets`).
    Webhook,
}

impl UrlSecret {
    /// Its table and the column of the hash.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            UrlSecret::Feed => ("feed_tokens", "token_sha256"),
            UrlSecret::Webhook => ("webhook_secrets", "secret_sha256"),
        }
    }
}

/// Records, inside the transaction that records run `run_id`, that it
/// handled `receipt`, and forgets ids past their retention.
pub(super) fn record_in(
    tx: &Connection,
    scope: &Scope,
    receipt: &DeliveryReceipt,
    run_id: i64,
) -> Result<(), StorageError> {
    tx.prepare_cached(
        "INSERT INTO webhook_deliveries (tenant, installation, webhook, delivery_id, run_id,
            received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT DO UPDATE SET run_id = excluded.run_id, received_at = excluded.received_at",
    )?
    .execute(params![
        scope.tenant,
        scope.installation,
        receipt.webhook,
        receipt.delivery_id,
        run_id,
        receipt.received_at
    ])?;
    tx.prepare_cached(
        "DELETE FROM webhook_deliveries WHERE tenant = ?1 AND installation = ?2 AND webhook = ?3
            AND received_at < ?4",
    )?
    .execute(params![
        scope.tenant,
        scope.installation,
        receipt.webhook,
        receipt.received_at - DELIVERY_ID_RETENTION_SECS
    ])?;
    Ok(())
}

impl SqliteStore {
    /// See [`WebhookStore::webhook_secret_hash`].
    pub fn webhook_secret_hash(&self, scope: &Scope) -> Result<Option<[u8; 32]>, StorageError> {
        self.url_secret_hash(UrlSecret::Webhook, scope)
    }

    /// See [`WebhookStore::set_webhook_secret_hash`].
    pub fn set_webhook_secret_hash(
        &self,
        scope: &Scope,
        hash: [u8; 32],
        now: i64,
    ) -> Result<(), StorageError> {
        self.set_url_secret_hash(UrlSecret::Webhook, scope, hash, now)
    }

    /// The sha256 of `scope`'s secret of kind `which`.
    pub(super) fn url_secret_hash(
        &self,
        which: UrlSecret,
        scope: &Scope,
    ) -> Result<Option<[u8; 32]>, StorageError> {
        let (table, column) = which.table();
        let hash: Option<Vec<u8>> = self
            .reader()
            .prepare_cached(&format!(
                "SELECT {column} FROM {table} WHERE tenant = ?1 AND installation = ?2"
            ))?
            .query_row(params![scope.tenant, scope.installation], |r| r.get(0))
            .optional()?;
        Ok(hash.and_then(|h| <[u8; 32]>::try_from(h).ok()))
    }

    /// Makes `hash` the sha256 of `scope`'s secret of kind `which`.
    pub(super) fn set_url_secret_hash(
        &self,
        which: UrlSecret,
        scope: &Scope,
        hash: [u8; 32],
        now: i64,
    ) -> Result<(), StorageError> {
        let (table, column) = which.table();
        let scope = scope.clone();
        self.write_grouped(move |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO {table} (tenant, installation, {column}, created_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant, installation) DO UPDATE
                     SET {column} = excluded.{column}, created_at = excluded.created_at"
                ),
                params![scope.tenant, scope.installation, &hash[..], now],
            )?;
            Ok(())
        })
    }

    /// See [`WebhookStore::handled_delivery`].
    pub fn handled_delivery(
        &self,
        scope: &Scope,
        webhook: &str,
        delivery_id: &str,
        now: i64,
    ) -> Result<Option<i64>, StorageError> {
        Ok(self
            .reader()
            .prepare_cached(
                "SELECT run_id FROM webhook_deliveries WHERE tenant = ?1 AND installation = ?2
                    AND webhook = ?3 AND delivery_id = ?4 AND received_at >= ?5",
            )?
            .query_row(
                params![
                    scope.tenant,
                    scope.installation,
                    webhook,
                    delivery_id,
                    now - DELIVERY_ID_RETENTION_SECS
                ],
                |r| r.get(0),
            )
            .optional()?)
    }
}

#[async_trait::async_trait]
impl WebhookStore for SqliteStore {
    async fn webhook_secret_hash(&self, scope: &Scope) -> Result<Option<[u8; 32]>, StorageError> {
        let scope = scope.clone();
        self.off_worker(move |s| SqliteStore::webhook_secret_hash(s, &scope))
            .await
    }

    async fn set_webhook_secret_hash(
        &self,
        scope: &Scope,
        hash: [u8; 32],
        now: i64,
    ) -> Result<(), StorageError> {
        let scope = scope.clone();
        self.off_worker(move |s| SqliteStore::set_webhook_secret_hash(s, &scope, hash, now))
            .await
    }

    async fn handled_delivery(
        &self,
        scope: &Scope,
        webhook: &str,
        delivery_id: &str,
    ) -> Result<Option<i64>, StorageError> {
        let (scope, webhook, id) = (scope.clone(), webhook.to_string(), delivery_id.to_string());
        let now = chrono::Utc::now().timestamp();
        self.off_worker(move |s| SqliteStore::handled_delivery(s, &scope, &webhook, &id, now))
            .await
    }
}
