//! The tenant's shared records on PostgreSQL ([`RecordStore`]): the same
//! semantics as SQLite's (`../records_sqlite.rs`), held to the same
//! conformance suite; a run's [`RecordEffects`] are applied inside the
//! transaction that records it ([`apply_in`]).
//!
//! Several nodes write one tenant's records at once. Each transaction that
//! writes takes its versions from the tenant's counter row with one
//! `UPDATE … RETURNING` (an upsert), whose row lock it keeps until it
//! commits: no version is given twice, and a version is visible only after
//! every lower one is, so a change feed read after version `n` never
//! misses a record committed later with a lower version. (This assumes
//! READ COMMITTED, PostgreSQL's default: each statement sees what
//! committed before it began.) Acknowledgements and annotations take their
//! rows' locks in one order (by record), so two runs of one installation
//! wait for each other rather than deadlock.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};

use super::PgStore;
use crate::storage::records::{PageFill, rows_for_page};
use crate::storage::{
    AckRow, Annotations, PageLimit, RecordAck, RecordEffects, RecordPage, RecordStore, RecordWrite,
    Scope, StorageError, StoredRecord,
};

const RECORD_COLUMNS: &str = "collection, id, version, updated_at, writer, body";

/// How many rows of a page are fetched at a time: a page cut by its bytes
/// early reads little past its end.
const PAGE_BATCH: i64 = 64;

fn record_from_row(r: &Row) -> StoredRecord {
    StoredRecord {
        collection: r.get(0),
        id: r.get(1),
        version: r.get(2),
        updated_at: r.get(3),
        writer: r.get(4),
        body: r.get(5),
    }
}

/// Reserves `count` versions of the tenant's counter; returns the first.
/// The counter's row stays locked until `tx` ends (see the module's
/// doc). A version reserved and not used (a delete that changed nothing)
/// is a gap: versions only ever rise, they need not be dense.
async fn reserve_versions(
    tx: &Transaction<'_>,
    tenant: &str,
    count: usize,
) -> Result<i64, StorageError> {
    let count = count as i64;
    let row = tx
        .query_one(
            "INSERT INTO record_versions (tenant, version) VALUES ($1, $2)
             ON CONFLICT (tenant) DO UPDATE SET version = record_versions.version + $2
             RETURNING version",
            &[&tenant, &count],
        )
        .await?;
    let last: i64 = row.get(0);
    Ok(last - count + 1)
}

/// Applies each of `writes` by `writer`, giving them consecutive versions;
/// returns, for each, the version it was given, or none for a delete of a
/// record that is missing or deleted already (it changes nothing: a delete
/// leaves a tombstone of a live record only).
async fn write_all_in(
    tx: &Transaction<'_>,
    tenant: &str,
    writer: &str,
    writes: &[RecordWrite],
    now: i64,
) -> Result<Vec<Option<i64>>, StorageError> {
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    let first = reserve_versions(tx, tenant, writes.len()).await?;
    let put = tx
        .prepare(
            "INSERT INTO records (tenant, collection, id, version, updated_at, writer, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant, collection, id) DO UPDATE SET
                version = excluded.version, updated_at = excluded.updated_at,
                writer = excluded.writer, body = excluded.body",
        )
        .await?;
    let delete = tx
        .prepare(
            "UPDATE records SET version = $4, updated_at = $5, writer = $6, body = $7
             WHERE tenant = $1 AND collection = $2 AND id = $3 AND body IS NOT NULL",
        )
        .await?;
    let mut given = Vec::with_capacity(writes.len());
    for (write, version) in writes.iter().zip(first..) {
        let statement = if write.body.is_some() { &put } else { &delete };
        let changed = tx
            .execute(
                statement,
                &[
                    &tenant,
                    &write.collection,
                    &write.id,
                    &version,
                    &now,
                    &writer,
                    &write.body,
                ],
            )
            .await?;
        given.push((changed == 1).then_some(version));
    }
    Ok(given)
}

/// Records `scope`'s acknowledgements: each at most the record's current
/// version (a guest cannot acknowledge changes not made yet), never
/// lowering one made before; dropped if the record does not exist. By
/// record: the same lock order in every transaction (their order does not
/// matter otherwise: the highest version wins).
async fn ack_all_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    acks: &[RecordAck],
    now: i64,
) -> Result<(), StorageError> {
    if acks.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare(
            "INSERT INTO record_acks (tenant, installation, collection, id, version, acked_at)
             SELECT tenant, $2::text, collection, id, LEAST($5::bigint, version), $6::bigint
             FROM records WHERE tenant = $1 AND collection = $3 AND id = $4
             ON CONFLICT (tenant, installation, collection, id) DO UPDATE SET
                version = GREATEST(record_acks.version, excluded.version),
                acked_at = excluded.acked_at",
        )
        .await?;
    let mut acks: Vec<&RecordAck> = acks.iter().collect();
    acks.sort_by(|x, y| (&x.collection, &x.id).cmp(&(&y.collection, &y.id)));
    for ack in acks {
        tx.execute(
            &statement,
            &[
                &scope.tenant,
                &scope.installation,
                &ack.collection,
                &ack.id,
                &ack.version,
                &now,
            ],
        )
        .await?;
    }
    Ok(())
}

fn annotations_from_row(r: &Row, first: usize) -> Annotations {
    Annotations {
        external_ref: r.get(first),
        notes: r.get(first + 1),
        flag: r.get(first + 2),
        updated_at: r.get(first + 3),
    }
}

/// Applies a run's annotation changes by `scope`'s installation: each
/// record's in order, with one write; nothing for a record that does not
/// exist (a guest cannot make its own record fail to commit, nor keep
/// annotations on nothing). A record's annotations row is made first if
/// missing, then read locked: a run of the same installation committing
/// meanwhile waits, and neither loses the other's notes. By record: the
/// same lock order in every transaction.
async fn annotate_all_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    effects: &RecordEffects,
    now: i64,
) -> Result<(), StorageError> {
    let mut annotated = effects.annotations_by_record();
    if annotated.is_empty() {
        return Ok(());
    }
    annotated.sort_by_key(|(key, _)| *key);
    let make = tx
        .prepare(
            "INSERT INTO record_annotations (tenant, installation, collection, id, notes,
                updated_at)
             SELECT tenant, $2::text, collection, id, '{}', $5::bigint FROM records
             WHERE tenant = $1 AND collection = $3 AND id = $4
             ON CONFLICT (tenant, installation, collection, id) DO NOTHING",
        )
        .await?;
    let read = tx
        .prepare(
            "SELECT a.external_ref, a.notes, a.flag, a.updated_at
             FROM record_annotations a
             JOIN records r ON r.tenant = a.tenant AND r.collection = a.collection AND r.id = a.id
             WHERE a.tenant = $1 AND a.installation = $2 AND a.collection = $3 AND a.id = $4
             FOR UPDATE OF a",
        )
        .await?;
    let write = tx
        .prepare(
            "UPDATE record_annotations SET external_ref = $5, notes = $6, flag = $7,
                updated_at = $8
             WHERE tenant = $1 AND installation = $2 AND collection = $3 AND id = $4",
        )
        .await?;
    for ((collection, id), changes) in annotated {
        let key: [&(dyn ToSql + Sync); 4] = [&scope.tenant, &scope.installation, &collection, &id];
        let [a, b, c, d] = key;
        tx.execute(&make, &[a, b, c, d, &now]).await?;
        let Some(row) = tx.query_opt(&read, &key).await? else {
            continue;
        };
        let mut current = annotations_from_row(&row, 0);
        current.apply_kept(&changes);
        tx.execute(
            &write,
            &[
                a,
                b,
                c,
                d,
                &current.external_ref,
                &current.notes,
                &current.flag,
                &now,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Applies a run's changes to the records inside its finishing transaction
/// `tx`, as `scope`'s installation, at `now`: writes first (in order), then
/// acknowledgements, then annotations. The same semantics as SQLite's
/// `records_sqlite::apply_in`.
pub(super) async fn apply_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    effects: &RecordEffects,
    now: i64,
) -> Result<(), StorageError> {
    write_all_in(tx, &scope.tenant, &scope.installation, &effects.writes, now).await?;
    ack_all_in(tx, scope, &effects.acks, now).await?;
    annotate_all_in(tx, scope, effects, now).await
}

impl PgStore {
    /// One page of `query`'s records (by version) within `limit`, fetched in
    /// batches, reading no further once the page is full. `query` ends with
    /// `LIMIT` of the last of `params` (it is given [`rows_for_page`]).
    async fn record_page(
        &self,
        query: &str,
        params: &[&(dyn ToSql + Sync)],
        limit: PageLimit,
    ) -> Result<RecordPage, StorageError> {
        let mut client = self.client().await?;
        let tx = client.build_transaction().read_only(true).start().await?;
        let statement = tx.prepare_cached(query).await?;
        let rows = rows_for_page(limit);
        let mut all: Vec<&(dyn ToSql + Sync)> = params.to_vec();
        all.push(&rows);
        let portal = tx.bind(&statement, &all).await?;
        let batch = i32::try_from(rows.min(PAGE_BATCH)).unwrap_or(i32::MAX);
        let mut page = PageFill::new(limit);
        'fetch: loop {
            let fetched = tx.query_portal(&portal, batch).await?;
            let done = (fetched.len() as i64) < i64::from(batch);
            for row in &fetched {
                if !page.take(record_from_row(row)) {
                    break 'fetch;
                }
            }
            if done {
                break;
            }
        }
        tx.commit().await?;
        Ok(page.finish())
    }
}

#[async_trait::async_trait]
impl RecordStore for PgStore {
    async fn write_records(
        &self,
        tenant: &str,
        writer: &str,
        writes: Vec<RecordWrite>,
        now: i64,
    ) -> Result<Vec<i64>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The tenant row shared-locked: it cannot be removed under the write.
        let live = tx
            .query_opt(
                "SELECT 1 FROM tenants WHERE id = $1 AND removed_at IS NULL FOR SHARE",
                &[&tenant],
            )
            .await?;
        if live.is_none() {
            return Err(StorageError::NotFound(format!("no tenant `{tenant}`")));
        }
        let given = write_all_in(&tx, tenant, writer, &writes, now).await?;
        let mut versions = Vec::with_capacity(writes.len());
        for (write, version) in writes.iter().zip(given) {
            // A no-op delete reports the version the record already has (0
            // if it never existed).
            let version = match version {
                Some(v) => v,
                None => tx
                    .query_opt(
                        "SELECT version FROM records
                         WHERE tenant = $1 AND collection = $2 AND id = $3",
                        &[&tenant, &write.collection, &write.id],
                    )
                    .await?
                    .map_or(0, |r| r.get(0)),
            };
            versions.push(version);
        }
        tx.commit().await?;
        Ok(versions)
    }

    async fn record(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<StoredRecord>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records
                 WHERE tenant = $1 AND collection = $2 AND id = $3"
            ))
            .await?;
        let row = client
            .query_opt(&statement, &[&tenant, &collection, &id])
            .await?;
        Ok(row.as_ref().map(record_from_row))
    }

    async fn record_changes(
        &self,
        tenant: &str,
        collection: &str,
        after: i64,
        limit: PageLimit,
    ) -> Result<RecordPage, StorageError> {
        self.record_page(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM records
                 WHERE tenant = $1 AND collection = $2 AND version > $3
                 ORDER BY version LIMIT $4"
            ),
            &[&tenant, &collection, &after],
            limit,
        )
        .await
    }

    async fn pending_records(
        &self,
        tenant: &str,
        consumer: &str,
        collection: &str,
        after: i64,
        limit: PageLimit,
    ) -> Result<RecordPage, StorageError> {
        self.record_page(
            "SELECT r.collection, r.id, r.version, r.updated_at, r.writer, r.body
             FROM records r
             LEFT JOIN record_acks a ON a.tenant = r.tenant AND a.installation = $2
                AND a.collection = r.collection AND a.id = r.id
             WHERE r.tenant = $1 AND r.collection = $3 AND r.version > $4
                AND r.body IS NOT NULL AND (a.version IS NULL OR a.version < r.version)
             ORDER BY r.version LIMIT $5",
            &[&tenant, &consumer, &collection, &after],
            limit,
        )
        .await
    }

    async fn record_acks(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> Result<Vec<AckRow>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT installation, version, acked_at FROM record_acks
                 WHERE tenant = $1 AND collection = $2 AND id = $3 ORDER BY installation",
                &[&tenant, &collection, &id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AckRow {
                installation: r.get(0),
                version: r.get(1),
                acked_at: r.get(2),
            })
            .collect())
    }

    async fn unack_record(
        &self,
        tenant: &str,
        consumer: &str,
        collection: &str,
        id: &str,
    ) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let removed = client
            .execute(
                "DELETE FROM record_acks
                 WHERE tenant = $1 AND installation = $2 AND collection = $3 AND id = $4",
                &[&tenant, &consumer, &collection, &id],
            )
            .await?;
        Ok(removed > 0)
    }

    async fn all_record_annotations(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> Result<Vec<(String, Annotations)>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT installation, external_ref, notes, flag, updated_at
                 FROM record_annotations
                 WHERE tenant = $1 AND collection = $2 AND id = $3 ORDER BY installation",
                &[&tenant, &collection, &id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), annotations_from_row(r, 1)))
            .collect())
    }

    async fn record_annotations(
        &self,
        tenant: &str,
        installation: &str,
        collection: &str,
        id: &str,
    ) -> Result<Annotations, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT external_ref, notes, flag, updated_at FROM record_annotations
                 WHERE tenant = $1 AND installation = $2 AND collection = $3 AND id = $4",
            )
            .await?;
        let row = client
            .query_opt(&statement, &[&tenant, &installation, &collection, &id])
            .await?;
        Ok(row.map(|r| annotations_from_row(&r, 0)).unwrap_or_default())
    }
}
