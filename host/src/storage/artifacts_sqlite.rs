//! SQLite's side of [`ArtifactStore`]: `artifact_versions` (staged and
//! published versions; a staged one has no version number),
//! `artifact_chunks` (their bytes, at most a chunk per row, deleted with
//! their version) and `feed_tokens` (each installation's token's sha256).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::artifacts::{ArtifactEffects, ArtifactStore, ArtifactVersion};
use super::webhooks_sqlite::UrlSecret;
use super::{Scope, SqliteStore, StorageError};
use crate::artifacts::ABANDONED_AFTER_SECS;

const VERSION_COLUMNS: &str =
    "id, name, version, content_type, size, sha256, published_at, run_id, chunks";

fn version_from_row(r: &Row<'_>) -> rusqlite::Result<ArtifactVersion> {
    Ok(ArtifactVersion {
        id: r.get(0)?,
        name: r.get(1)?,
        version: r.get(2)?,
        content_type: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        sha256: r.get(5)?,
        published_at: r.get(6)?,
        run_id: r.get(7)?,
        chunks: r.get(8)?,
    })
}

/// Applies a finished run's artifact `effects` in the caller's transaction:
/// publishes its staged versions as run `run_id` at `now`, deletes what
/// retention no longer keeps, its dropped versions and abandoned ones.
///
/// A version's publication time (its `Last-Modified`, in whole seconds) is
/// always after the previous version's, a second later if both came in the
/// same second: otherwise a client that saw the first and asks with
/// `If-Modified-Since` would be told the second is not modified.
pub(super) fn apply_in(
    tx: &Connection,
    scope: &Scope,
    effects: &ArtifactEffects,
    run_id: i64,
    now: i64,
) -> Result<(), StorageError> {
    drop_in(tx, &effects.drop)?;
    let keep = i64::from(effects.keep_versions.max(1));
    for p in &effects.publish {
        let published = tx
            .prepare_cached(
                "UPDATE artifact_versions SET
                    version = (SELECT COALESCE(MAX(version), 0) + 1 FROM artifact_versions
                        WHERE tenant = ?2 AND installation = ?3 AND name = ?4
                          AND version IS NOT NULL),
                    size = ?5, sha256 = ?6, run_id = ?8,
                    published_at = MAX(?7, (SELECT COALESCE(MAX(published_at), 0) + 1
                        FROM artifact_versions
                        WHERE tenant = ?2 AND installation = ?3 AND name = ?4
                          AND version IS NOT NULL)),
                    chunks = (SELECT COUNT(*) FROM artifact_chunks WHERE version_id = ?1)
                 WHERE id = ?1 AND tenant = ?2 AND installation = ?3 AND name = ?4
                   AND version IS NULL",
            )?
            .execute(params![
                p.staged,
                scope.tenant,
                scope.installation,
                p.name,
                p.size as i64,
                p.sha256,
                now,
                run_id
            ])?;
        if published != 1 {
            return Err(StorageError::NotFound(format!(
                "the staged version of artifact `{}` is gone (abandoned after an hour?)",
                p.name
            )));
        }
        tx.prepare_cached(
            "DELETE FROM artifact_versions
             WHERE tenant = ?1 AND installation = ?2 AND name = ?3 AND version IS NOT NULL
               AND version <= (SELECT MAX(version) FROM artifact_versions
                   WHERE tenant = ?1 AND installation = ?2 AND name = ?3) - ?4",
        )?
        .execute(params![scope.tenant, scope.installation, p.name, keep])?;
    }
    if !effects.publish.is_empty() {
        drop_abandoned_in(tx, now - ABANDONED_AFTER_SECS)?;
    }
    Ok(())
}

fn drop_in(tx: &Connection, staged: &[i64]) -> Result<(), StorageError> {
    for id in staged {
        tx.prepare_cached("DELETE FROM artifact_versions WHERE id = ?1 AND version IS NULL")?
            .execute([id])?;
    }
    Ok(())
}

fn drop_abandoned_in(tx: &Connection, before: i64) -> Result<u64, StorageError> {
    Ok(tx
        .prepare_cached("DELETE FROM artifact_versions WHERE version IS NULL AND staged_at < ?1")?
        .execute([before])? as u64)
}

/// Deletes every artifact and the feed token of `scope` in the caller's
/// transaction (the installation is removed).
pub(super) fn remove_in(tx: &Connection, scope: &Scope) -> Result<(), StorageError> {
    for table in ["artifact_versions", "feed_tokens"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE tenant = ?1 AND installation = ?2"),
            params![scope.tenant, scope.installation],
        )?;
    }
    Ok(())
}

impl SqliteStore {
    /// See [`ArtifactStore::stage_artifact`].
    pub fn stage_artifact(
        &self,
        scope: &Scope,
        name: &str,
        content_type: &str,
        now: i64,
    ) -> Result<i64, StorageError> {
        let (scope, name, content_type) =
            (scope.clone(), name.to_string(), content_type.to_string());
        self.write_grouped(move |tx| {
            tx.prepare_cached(
                "INSERT INTO artifact_versions (tenant, installation, name, content_type,
                    staged_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                scope.tenant,
                scope.installation,
                name,
                content_type,
                now
            ])?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// See [`ArtifactStore::append_artifact`].
    pub fn append_artifact(
        &self,
        staged: i64,
        first: i64,
        chunks: Vec<Vec<u8>>,
    ) -> Result<(), StorageError> {
        self.write_grouped(move |tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO artifact_chunks (version_id, seq, data) VALUES (?1, ?2, ?3)",
            )?;
            for (i, chunk) in chunks.iter().enumerate() {
                insert.execute(params![staged, first + i as i64, chunk])?;
            }
            Ok(())
        })
    }

    /// See [`ArtifactStore::drop_staged_artifacts`].
    pub fn drop_staged_artifacts(&self, staged: Vec<i64>) -> Result<(), StorageError> {
        if staged.is_empty() {
            return Ok(());
        }
        self.write_grouped(move |tx| drop_in(tx, &staged))
    }

    /// See [`ArtifactStore::drop_abandoned_artifacts`].
    pub fn drop_abandoned_artifacts(&self, before: i64) -> Result<u64, StorageError> {
        self.write_grouped(move |tx| drop_abandoned_in(tx, before))
    }

    /// See [`ArtifactStore::artifacts`].
    pub fn artifacts(&self, scope: &Scope) -> Result<Vec<ArtifactVersion>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM artifact_versions v
             WHERE tenant = ?1 AND installation = ?2 AND version = (
                SELECT MAX(version) FROM artifact_versions w
                WHERE w.tenant = v.tenant AND w.installation = v.installation
                  AND w.name = v.name)
             ORDER BY name"
        ))?;
        let rows = stmt.query_map(params![scope.tenant, scope.installation], version_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// See [`ArtifactStore::artifact_versions`].
    pub fn artifact_versions(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Vec<ArtifactVersion>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM artifact_versions
             WHERE tenant = ?1 AND installation = ?2 AND name = ?3 AND version IS NOT NULL
             ORDER BY version DESC"
        ))?;
        let rows = stmt.query_map(
            params![scope.tenant, scope.installation, name],
            version_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// See [`ArtifactStore::artifact`].
    pub fn artifact(
        &self,
        scope: &Scope,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<ArtifactVersion>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM artifact_versions
             WHERE tenant = ?1 AND installation = ?2 AND name = ?3 AND version IS NOT NULL
               AND (?4 IS NULL OR version = ?4)
             ORDER BY version DESC LIMIT 1"
        ))?;
        Ok(stmt
            .query_row(
                params![scope.tenant, scope.installation, name, version],
                version_from_row,
            )
            .optional()?)
    }

    /// See [`ArtifactStore::artifact_chunk`].
    pub fn artifact_chunk(
        &self,
        scope: &Scope,
        id: i64,
        seq: i64,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT c.data FROM artifact_chunks c
             JOIN artifact_versions v ON v.id = c.version_id
             WHERE c.version_id = ?1 AND c.seq = ?2 AND v.tenant = ?3 AND v.installation = ?4
               AND v.version IS NOT NULL",
        )?;
        Ok(stmt
            .query_row(params![id, seq, scope.tenant, scope.installation], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// See [`ArtifactStore::feed_token_hash`].
    pub fn feed_token_hash(&self, scope: &Scope) -> Result<Option<[u8; 32]>, StorageError> {
        self.url_secret_hash(UrlSecret::Feed, scope)
    }

    /// See [`ArtifactStore::set_feed_token_hash`].
    pub fn set_feed_token_hash(
        &self,
        scope: &Scope,
        hash: [u8; 32],
        now: i64,
    ) -> Result<(), StorageError> {
        self.set_url_secret_hash(UrlSecret::Feed, scope, hash, now)
    }
}

#[async_trait::async_trait]
impl ArtifactStore for SqliteStore {
    async fn stage_artifact(
        &self,
        scope: &Scope,
        name: &str,
        content_type: &str,
        now: i64,
    ) -> Result<i64, StorageError> {
        let (scope, name, ct) = (scope.clone(), name.to_string(), content_type.to_string());
        self.off_worker(move |s| SqliteStore::stage_artifact(s, &scope, &name, &ct, now))
            .await
    }

    async fn append_artifact(
        &self,
        staged: i64,
        first: i64,
        chunks: Vec<Vec<u8>>,
    ) -> Result<(), StorageError> {
        self.off_worker(move |s| SqliteStore::append_artifact(s, staged, first, chunks))
            .await
    }

    async fn drop_staged_artifacts(&self, staged: Vec<i64>) -> Result<(), StorageError> {
        self.off_worker(move |s| SqliteStore::drop_staged_artifacts(s, staged))
            .await
    }

    async fn drop_abandoned_artifacts(&self, before: i64) -> Result<u64, StorageError> {
        self.off_worker(move |s| SqliteStore::drop_abandoned_artifacts(s, before))
            .await
    }

    async fn artifacts(&self, scope: &Scope) -> Result<Vec<ArtifactVersion>, StorageError> {
        let scope = scope.clone();
        self.off_worker(move |s| SqliteStore::artifacts(s, &scope))
            .await
    }

    async fn artifact_versions(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Vec<ArtifactVersion>, StorageError> {
        let (scope, name) = (scope.clone(), name.to_string());
        self.off_worker(move |s| SqliteStore::artifact_versions(s, &scope, &name))
            .await
    }

    async fn artifact(
        &self,
        scope: &Scope,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<ArtifactVersion>, StorageError> {
        let (scope, name) = (scope.clone(), name.to_string());
        self.off_worker(move |s| SqliteStore::artifact(s, &scope, &name, version))
            .await
    }

    async fn artifact_chunk(
        &self,
        scope: &Scope,
        id: i64,
        seq: i64,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let scope = scope.clone();
        self.off_worker(move |s| SqliteStore::artifact_chunk(s, &scope, id, seq))
            .await
    }

    async fn feed_token_hash(&self, scope: &Scope) -> Result<Option<[u8; 32]>, StorageError> {
        let scope = scope.clone();
        self.off_worker(move |s| SqliteStore::feed_token_hash(s, &scope))
            .await
    }

    async fn set_feed_token_hash(
        &self,
        scope: &Scope,
        hash: [u8; 32],
        now: i64,
    ) -> Result<(), StorageError> {
        let scope = scope.clone();
        self.off_worker(move |s| SqliteStore::set_feed_token_hash(s, &scope, hash, now))
            .await
    }
}

/// SQLite's own checks; what every backend does is in the conformance
/// suite (`conformance/artifacts.rs`).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance::CommitEffects;
    use crate::storage::conformance::artifacts::{publish, scope};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_chunks_of_versions_retention_deleted_are_deleted_with_them() {
        let store = SqliteStore::in_memory().unwrap();
        for run in 1..=5 {
            publish(
                &store,
                "shop",
                "feed.xml",
                format!("v{run}").as_bytes(),
                run,
                2,
            )
            .await;
        }
        let chunks = |store: &SqliteStore| -> i64 {
            store
                .conn()
                .query_row("SELECT COUNT(*) FROM artifact_chunks", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(chunks(&store), 2, "the chunks of deleted versions are gone");
        let staged = store
            .stage_artifact(&scope("shop"), "b", "text/plain", 9)
            .unwrap();
        store.append_artifact(staged, 0, vec![vec![1; 3]]).unwrap();
        store
            .commit_artifact_effects(
                &scope("shop"),
                &ArtifactEffects {
                    drop: vec![staged],
                    ..Default::default()
                },
                9,
                9,
            )
            .await
            .unwrap();
        assert_eq!(chunks(&store), 2, "a dropped staging's chunks are gone");
    }
}
