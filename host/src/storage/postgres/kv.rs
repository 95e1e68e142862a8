//! An installation's key-value data on PostgreSQL. Every write goes
//! through the history's `apply_in` (`state_history.rs`), which records it
//! in the same transaction, as SQLite's do.

use super::PgStore;
use super::state_history::apply_in;
use crate::storage::state_history::{Attribution, DEFAULT_KEEP_VERSIONS};
use crate::storage::{KvBackend, KvUsage, Scope, StorageError};

#[async_trait::async_trait]
impl KvBackend for PgStore {
    async fn kv_get(&self, scope: &Scope, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT value FROM kv WHERE tenant = $1 AND installation = $2 AND key = $3",
            )
            .await?;
        let row = client
            .query_opt(&statement, &[&scope.tenant, &scope.installation, &key])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn kv_list(
        &self,
        scope: &Scope,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let client = self.client().await?;
        // `key >= prefix` lets the primary key's index start at the prefix;
        // starts_with matches it literally (no LIKE wildcards).
        let statement = client
            .prepare_cached(
                "SELECT key FROM kv
                 WHERE tenant = $1 AND installation = $2
                   AND key >= $3 AND starts_with(key, $3)
                   AND ($4::text IS NULL OR key > $4)
                 ORDER BY key LIMIT $5",
            )
            .await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &statement,
                &[&scope.tenant, &scope.installation, &prefix, &after, &limit],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn kv_apply(
        &self,
        scope: &Scope,
        changes: &[(String, Option<Vec<u8>>)],
    ) -> Result<(), StorageError> {
        self.kv_write(
            scope,
            changes,
            &Attribution::default(),
            DEFAULT_KEEP_VERSIONS,
        )
        .await
    }

    async fn kv_checkpoint(
        &self,
        scope: &Scope,
        changes: &[(String, Option<Vec<u8>>)],
        token: i64,
        keep_versions: u32,
    ) -> Result<(), StorageError> {
        let by = Attribution {
            checkpoint: Some(token),
            ..Attribution::default()
        };
        if changes.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A run of a claimed feed checkpoints only while this process still
        // holds a claim of its installation (a trial run, never claimed, is
        // not fenced): a node paused past its lease that wakes mid-run must
        // not write over the run that recovered its work.
        if self.leases.holds_any(scope) {
            // Locks in the order every writer of the installation takes them.
            super::ledger::lock_for_run(&tx, scope).await?;
            let held = tx
                .query_opt(
                    "SELECT 1 FROM active_runs WHERE tenant = $1 AND installation = $2
                       AND lease_owner = $3 LIMIT 1 FOR SHARE",
                    &[&scope.tenant, &scope.installation, &self.leases.owner],
                )
                .await?;
            if held.is_none() {
                return Err(StorageError::LeaseLost(format!(
                    "{}/{}: a checkpoint of a run this process no longer holds (it was \
                     recovered elsewhere) was not committed",
                    scope.tenant, scope.installation
                )));
            }
        }
        apply_in(&tx, scope, changes, &by, keep_versions).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn kv_usage(&self, scope: &Scope) -> Result<KvUsage, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT COALESCE(SUM(octet_length(key) + octet_length(value)), 0)::bigint,
                        COUNT(*)
                 FROM kv WHERE tenant = $1 AND installation = $2",
            )
            .await?;
        let row = client
            .query_one(&statement, &[&scope.tenant, &scope.installation])
            .await?;
        Ok(KvUsage {
            bytes: row.get::<_, i64>(0) as u64,
            keys: row.get::<_, i64>(1) as u64,
        })
    }

    async fn kv_entry_bytes(&self, scope: &Scope, key: &str) -> Result<Option<u64>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT (octet_length(key) + octet_length(value))::bigint FROM kv
                 WHERE tenant = $1 AND installation = $2 AND key = $3",
            )
            .await?;
        let row = client
            .query_opt(&statement, &[&scope.tenant, &scope.installation, &key])
            .await?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }
}

impl PgStore {
    /// Applies key-value `changes` to `scope` with their history, in one
    /// transaction (under the installation's lock: see `state_history.rs`).
    async fn kv_write(
        &self,
        scope: &Scope,
        changes: &[(String, Option<Vec<u8>>)],
        by: &Attribution<'_>,
        keep_versions: u32,
    ) -> Result<(), StorageError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        apply_in(&tx, scope, changes, by, keep_versions).await?;
        tx.commit().await?;
        Ok(())
    }
}
