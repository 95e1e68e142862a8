//! Published artifacts on PostgreSQL ([`ArtifactStore`]): the same
//! semantics as SQLite's (`../artifacts_sqlite.rs`), held to the same
//! conformance suite. `artifact_versions` holds staged and published
//! versions (a staged one has no version number), `artifact_chunks` their
//! bytes (deleted with their version), `feed_tokens` each installation's
//! token's sha256. A run's [`ArtifactEffects`] are applied inside the
//! transaction that records it ([`apply_in`]).
//!
//! Two nodes may publish the same artifact at once: each takes a
//! transaction-scoped advisory lock on the artifact before it numbers its
//! version, so the second numbers after the first commits (READ COMMITTED,
//! PostgreSQL's default, assumed: each statement sees what committed before
//! it began).

use tokio_postgres::{Row, Transaction};

use super::PgStore;
use super::webhooks::UrlSecret;
use crate::artifacts::ABANDONED_AFTER_SECS;
use crate::storage::{ArtifactEffects, ArtifactStore, ArtifactVersion, Scope, StorageError};

const VERSION_COLUMNS: &str =
    "id, name, version, content_type, size, sha256, published_at, run_id, chunks";

/// The class of the advisory locks on artifacts (the first of the two
/// 32-bit keys; "arti" in ASCII), apart from any other lock's.
const ARTIFACT_LOCK_CLASS: i32 = 0x6172_7469;

fn version_from_row(r: &Row) -> ArtifactVersion {
    ArtifactVersion {
        id: r.get(0),
        name: r.get(1),
        version: r.get(2),
        content_type: r.get(3),
        size: r.get::<_, i64>(4) as u64,
        sha256: r.get(5),
        published_at: r.get(6),
        run_id: r.get(7),
        chunks: r.get(8),
    }
}

/// Applies a finished run's artifact `effects` in the caller's transaction
/// `tx`: publishes its staged versions as run `run_id` at `now`, deletes
/// what retention no longer keeps, its dropped versions and abandoned ones.
/// The same semantics as SQLite's `artifacts_sqlite::apply_in`.
///
/// A version's publication time (its `Last-Modified`, in whole seconds) is
/// always after the previous version's, a second later if both came in the
/// same second: otherwise a client that saw the first and asks with
/// `If-Modified-Since` would be told the second is not modified.
pub(super) async fn apply_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    effects: &ArtifactEffects,
    run_id: i64,
    now: i64,
) -> Result<(), StorageError> {
    drop_in(tx, &effects.drop).await?;
    if effects.publish.is_empty() {
        return Ok(());
    }
    // Every artifact published locked first, in one order: two runs
    // publishing the same ones wait for each other rather than deadlock.
    let mut names: Vec<&str> = effects.publish.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1,
                hashtext($2::text || '/' || $3::text || '/' || $4::text))",
            &[
                &ARTIFACT_LOCK_CLASS,
                &scope.tenant,
                &scope.installation,
                &name,
            ],
        )
        .await?;
    }
    let keep = i64::from(effects.keep_versions.max(1));
    let publish = tx
        .prepare(
            "UPDATE artifact_versions SET
                version = (SELECT COALESCE(MAX(version), 0) + 1 FROM artifact_versions
                    WHERE tenant = $2 AND installation = $3 AND name = $4
                      AND version IS NOT NULL),
                size = $5, sha256 = $6, run_id = $8,
                published_at = GREATEST($7, (SELECT COALESCE(MAX(published_at), 0) + 1
                    FROM artifact_versions
                    WHERE tenant = $2 AND installation = $3 AND name = $4
                      AND version IS NOT NULL)),
                chunks = (SELECT COUNT(*) FROM artifact_chunks WHERE version_id = $1)
             WHERE id = $1 AND tenant = $2 AND installation = $3 AND name = $4
               AND version IS NULL",
        )
        .await?;
    let retain = tx
        .prepare(
            "DELETE FROM artifact_versions
             WHERE tenant = $1 AND installation = $2 AND name = $3 AND version IS NOT NULL
               AND version <= (SELECT MAX(version) FROM artifact_versions
                   WHERE tenant = $1 AND installation = $2 AND name = $3) - $4",
        )
        .await?;
    for p in &effects.publish {
        let published = tx
            .execute(
                &publish,
                &[
                    &p.staged,
                    &scope.tenant,
                    &scope.installation,
                    &p.name,
                    &(p.size as i64),
                    &p.sha256,
                    &now,
                    &run_id,
                ],
            )
            .await?;
        if published != 1 {
            return Err(StorageError::NotFound(format!(
                "the staged version of artifact `{}` is gone (abandoned after an hour?)",
                p.name
            )));
        }
        tx.execute(
            &retain,
            &[&scope.tenant, &scope.installation, &p.name, &keep],
        )
        .await?;
    }
    drop_abandoned_in(tx, now - ABANDONED_AFTER_SECS).await?;
    Ok(())
}

/// Deletes the staged versions `staged` (never a published one).
async fn drop_in(tx: &Transaction<'_>, staged: &[i64]) -> Result<(), StorageError> {
    if staged.is_empty() {
        return Ok(());
    }
    tx.execute(
        "DELETE FROM artifact_versions WHERE id = ANY($1) AND version IS NULL",
        &[&staged],
    )
    .await?;
    Ok(())
}

async fn drop_abandoned_in(tx: &Transaction<'_>, before: i64) -> Result<u64, StorageError> {
    Ok(tx
        .execute(
            "DELETE FROM artifact_versions WHERE version IS NULL AND staged_at < $1",
            &[&before],
        )
        .await?)
}

/// Deletes every artifact and the feed token of `scope` in the caller's
/// transaction `tx` (the installation is removed).
pub(super) async fn remove_in(tx: &Transaction<'_>, scope: &Scope) -> Result<(), StorageError> {
    for table in ["artifact_versions", "feed_tokens"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE tenant = $1 AND installation = $2"),
            &[&scope.tenant, &scope.installation],
        )
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl ArtifactStore for PgStore {
    async fn stage_artifact(
        &self,
        scope: &Scope,
        name: &str,
        content_type: &str,
        now: i64,
    ) -> Result<i64, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO artifact_versions (tenant, installation, name, content_type,
                    staged_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &scope.tenant,
                    &scope.installation,
                    &name,
                    &content_type,
                    &now,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn append_artifact(
        &self,
        staged: i64,
        first: i64,
        chunks: Vec<Vec<u8>>,
    ) -> Result<(), StorageError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let seqs: Vec<i64> = (first..).take(chunks.len()).collect();
        let client = self.client().await?;
        // One statement: all the chunks or none.
        client
            .execute(
                "INSERT INTO artifact_chunks (version_id, seq, data)
                 SELECT $1, seq, data FROM unnest($2::bigint[], $3::bytea[]) AS c (seq, data)",
                &[&staged, &seqs, &chunks],
            )
            .await?;
        Ok(())
    }

    async fn drop_staged_artifacts(&self, staged: Vec<i64>) -> Result<(), StorageError> {
        if staged.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        drop_in(&tx, &staged).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn drop_abandoned_artifacts(&self, before: i64) -> Result<u64, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let dropped = drop_abandoned_in(&tx, before).await?;
        tx.commit().await?;
        Ok(dropped)
    }

    async fn artifacts(&self, scope: &Scope) -> Result<Vec<ArtifactVersion>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM artifact_versions v
                     WHERE tenant = $1 AND installation = $2 AND version = (
                        SELECT MAX(version) FROM artifact_versions w
                        WHERE w.tenant = v.tenant AND w.installation = v.installation
                          AND w.name = v.name)
                     ORDER BY name"
                ),
                &[&scope.tenant, &scope.installation],
            )
            .await?;
        Ok(rows.iter().map(version_from_row).collect())
    }

    async fn artifact_versions(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Vec<ArtifactVersion>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM artifact_versions
                     WHERE tenant = $1 AND installation = $2 AND name = $3
                       AND version IS NOT NULL
                     ORDER BY version DESC"
                ),
                &[&scope.tenant, &scope.installation, &name],
            )
            .await?;
        Ok(rows.iter().map(version_from_row).collect())
    }

    async fn artifact(
        &self,
        scope: &Scope,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<ArtifactVersion>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare(&format!(
                "SELECT {VERSION_COLUMNS} FROM artifact_versions
                 WHERE tenant = $1 AND installation = $2 AND name = $3 AND version IS NOT NULL
                   AND ($4::bigint IS NULL OR version = $4)
                 ORDER BY version DESC LIMIT 1"
            ))
            .await?;
        let row = client
            .query_opt(
                &statement,
                &[&scope.tenant, &scope.installation, &name, &version],
            )
            .await?;
        Ok(row.as_ref().map(version_from_row))
    }

    async fn artifact_chunk(
        &self,
        scope: &Scope,
        id: i64,
        seq: i64,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare(
                "SELECT c.data FROM artifact_chunks c
                 JOIN artifact_versions v ON v.id = c.version_id
                 WHERE c.version_id = $1 AND c.seq = $2 AND v.tenant = $3
                   AND v.installation = $4 AND v.version IS NOT NULL",
            )
            .await?;
        let row = client
            .query_opt(&statement, &[&id, &seq, &scope.tenant, &scope.installation])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn feed_token_hash(&self, scope: &Scope) -> Result<Option<[u8; 32]>, StorageError> {
        self.url_secret_hash(UrlSecret::FeedToken, scope).await
    }

    async fn set_feed_token_hash(
        &self,
        scope: &Scope,
        hash: [u8; 32],
        now: i64,
    ) -> Result<(), StorageError> {
        self.set_url_secret_hash(UrlSecret::FeedToken, scope, hash, now)
            .await
    }
}

/// PostgreSQL's own checks; what every backend does is in the conformance
/// suite (`../conformance/artifacts.rs`).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance::CommitEffects;
    use crate::storage::conformance::artifacts::{publish, scope};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_chunks_of_versions_retention_deleted_are_deleted_with_them() {
        let Some(store) = super::super::test_store().await else {
            return;
        };
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
        let chunks = || async {
            let client = store.client().await.unwrap();
            let row = client
                .query_one("SELECT COUNT(*) FROM artifact_chunks", &[])
                .await
                .unwrap();
            row.get::<_, i64>(0)
        };
        assert_eq!(chunks().await, 2, "the chunks of deleted versions are gone");
        let staged = store
            .stage_artifact(&scope("shop"), "b", "text/plain", 9)
            .await
            .unwrap();
        store
            .append_artifact(staged, 0, vec![vec![1; 3]])
            .await
            .unwrap();
        let effects = ArtifactEffects {
            drop: vec![staged],
            ..Default::default()
        };
        store
            .commit_artifact_effects(&scope("shop"), &effects, 9, 9)
            .await
            .unwrap();
        assert_eq!(chunks().await, 2, "a dropped staging's chunks are gone");
    }
}
