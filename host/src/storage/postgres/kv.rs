//! An installation's key-value data on PostgreSQL.
//!
//! Not yet here: the history of changes that `state history` and `state
//! rewind` read (SQLite writes it in the same transaction as the change);
//! it comes with the `StateHistory` concern, before this backend can be
//! selected.

use super::PgStore;
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
        self.kv_write(scope, changes).await
    }

    async fn kv_checkpoint(
        &self,
        scope: &Scope,
        changes: &[(String, Option<Vec<u8>>)],
        _token: i64,
        _keep_versions: u32,
    ) -> Result<(), StorageError> {
        self.kv_write(scope, changes).await
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
    /// Applies `changes` to `scope` in one transaction, in key order (the
    /// last change of a key wins): two writers take their row locks in the
    /// same order, so they wait for each other rather than deadlock.
    async fn kv_write(
        &self,
        scope: &Scope,
        changes: &[(String, Option<Vec<u8>>)],
    ) -> Result<(), StorageError> {
        if changes.is_empty() {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let set = tx
            .prepare_cached(
                "INSERT INTO kv (tenant, installation, key, value, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (tenant, installation, key)
                 DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .await?;
        let delete = tx
            .prepare_cached("DELETE FROM kv WHERE tenant = $1 AND installation = $2 AND key = $3")
            .await?;
        let ordered: std::collections::BTreeMap<&String, &Option<Vec<u8>>> =
            changes.iter().map(|(k, v)| (k, v)).collect();
        for (key, value) in ordered {
            match value {
                Some(value) => {
                    tx.execute(
                        &set,
                        &[&scope.tenant, &scope.installation, key, value, &now],
                    )
                    .await?
                }
                None => {
                    tx.execute(&delete, &[&scope.tenant, &scope.installation, key])
                        .await?
                }
            };
        }
        tx.commit().await?;
        Ok(())
    }
}
