//! SQLite's side of the tenant's records ([`RecordStore`]): the tables of
//! migration 7, a run's [`RecordEffects`] applied inside its finishing
//! transaction ([`apply_in`]), and the platform's writes and the reads.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::records::{PageFill, rows_for_page};
use super::{
    AckRow, AnnotationChange, Annotations, PageLimit, RecordAck, RecordEffects, RecordPage,
    RecordStore, RecordWrite, Scope, SqliteStore, StorageError, StoredRecord,
};

const RECORD_COLUMNS: &str = "collection, id, version, updated_at, writer, body";

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<StoredRecord> {
    Ok(StoredRecord {
        collection: r.get(0)?,
        id: r.get(1)?,
        version: r.get(2)?,
        updated_at: r.get(3)?,
        writer: r.get(4)?,
        body: r.get(5)?,
    })
}

/// Reserves `count` versions of the tenant's counter in one step; returns
/// the first. A version reserved and not used (a delete that changed
/// nothing) is a gap: versions only ever rise, they need not be dense.
fn reserve_versions(tx: &Connection, tenant: &str, count: usize) -> Result<i64, StorageError> {
    let count = count as i64;
    let last: i64 = tx
        .prepare_cached(
            "INSERT INTO record_versions (tenant, version) VALUES (?1, ?2)
             ON CONFLICT (tenant) DO UPDATE SET version = version + ?2
             RETURNING version",
        )?
        .query_row(params![tenant, count], |r| r.get(0))?;
    Ok(last - count + 1)
}

/// Applies each of `writes` by `writer`, giving them consecutive versions;
/// returns, for each, the version it was given, or none for a delete of a
/// record that is missing or deleted already (it changes nothing).
fn write_all_in(
    tx: &Connection,
    tenant: &str,
    writer: &str,
    writes: &[RecordWrite],
    now: i64,
) -> Result<Vec<Option<i64>>, StorageError> {
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    let first = reserve_versions(tx, tenant, writes.len())?;
    writes
        .iter()
        .zip(first..)
        .map(|(write, version)| write_in(tx, tenant, writer, write, version, now))
        .collect()
}

/// Applies one write by `writer` at `version`; none for a delete that
/// changes nothing.
fn write_in(
    tx: &Connection,
    tenant: &str,
    writer: &str,
    write: &RecordWrite,
    version: i64,
    now: i64,
) -> Result<Option<i64>, StorageError> {
    if write.body.is_none() {
        let live: Option<i64> = tx
            .prepare_cached(
                "SELECT 1 FROM records WHERE tenant = ?1 AND collection = ?2 AND id = ?3
                 AND body IS NOT NULL",
            )?
            .query_row(params![tenant, write.collection, write.id], |r| r.get(0))
            .optional()?;
        if live.is_none() {
            return Ok(None);
        }
    }
    tx.prepare_cached(
        "INSERT INTO records (tenant, collection, id, version, updated_at, writer, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant, collection, id) DO UPDATE SET version = excluded.version,
            updated_at = excluded.updated_at, writer = excluded.writer, body = excluded.body",
    )?
    .execute(params![
        tenant,
        write.collection,
        write.id,
        version,
        now,
        writer,
        write.body
    ])?;
    Ok(Some(version))
}

/// Records `scope`'s acknowledgement of a record: at most the record's
/// current version (a guest cannot acknowledge changes not made yet), never
/// lowering one made before; dropped if the record does not exist.
fn ack_in(tx: &Connection, scope: &Scope, ack: &RecordAck, now: i64) -> Result<(), StorageError> {
    tx.prepare_cached(
        "INSERT INTO record_acks (tenant, installation, collection, id, version, acked_at)
         SELECT tenant, ?2, collection, id, MIN(?5, version), ?6 FROM records
         WHERE tenant = ?1 AND collection = ?3 AND id = ?4
         ON CONFLICT (tenant, installation, collection, id) DO UPDATE SET
            version = MAX(record_acks.version, excluded.version), acked_at = excluded.acked_at",
    )?
    .execute(params![
        scope.tenant,
        scope.installation,
        ack.collection,
        ack.id,
        ack.version,
        now
    ])?;
    Ok(())
}

/// Annotations from a row of `external_ref, notes, flag, updated_at`.
fn annotations_from(
    external_ref: Option<String>,
    notes: &str,
    flag: Option<String>,
    updated_at: i64,
) -> Result<Annotations, StorageError> {
    let notes = serde_json::from_str(notes).map_err(|e| StorageError::Database(Box::new(e)))?;
    Ok(Annotations {
        external_ref,
        notes,
        flag,
        updated_at,
    })
}

/// The annotations `installation` keeps on a record, read inside `conn`.
fn annotations_in(
    conn: &Connection,
    tenant: &str,
    installation: &str,
    collection: &str,
    id: &str,
) -> Result<Annotations, StorageError> {
    let row = conn
        .prepare_cached(
            "SELECT external_ref, notes, flag, updated_at FROM record_annotations
             WHERE tenant = ?1 AND installation = ?2 AND collection = ?3 AND id = ?4",
        )?
        .query_row(params![tenant, installation, collection, id], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    let Some((external_ref, notes, flag, updated_at)) = row else {
        return Ok(Annotations::default());
    };
    annotations_from(external_ref, &notes, flag, updated_at)
}

/// Applies a run's annotation changes to one record by `scope`'s
/// installation, in order, with one write; nothing if the record does not
/// exist (a guest cannot make its own record fail to commit, nor keep
/// annotations on nothing).
fn annotate_in(
    tx: &Connection,
    scope: &Scope,
    (collection, id): (&str, &str),
    changes: &[&AnnotationChange],
    now: i64,
) -> Result<(), StorageError> {
    let exists: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM records WHERE tenant = ?1 AND collection = ?2 AND id = ?3")?
        .query_row(params![scope.tenant, collection, id], |r| r.get(0))
        .optional()?;
    if exists.is_none() {
        return Ok(());
    }
    let mut current = annotations_in(tx, &scope.tenant, &scope.installation, collection, id)?;
    current.apply_kept(changes);
    let notes =
        serde_json::to_string(&current.notes).map_err(|e| StorageError::Database(Box::new(e)))?;
    tx.prepare_cached(
        "INSERT INTO record_annotations (tenant, installation, collection, id, external_ref,
            notes, flag, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (tenant, installation, collection, id) DO UPDATE SET
            external_ref = excluded.external_ref, notes = excluded.notes, flag = excluded.flag,
            updated_at = excluded.updated_at",
    )?
    .execute(params![
        scope.tenant,
        scope.installation,
        collection,
        id,
        current.external_ref,
        notes,
        current.flag,
        now
    ])?;
    Ok(())
}

/// Applies a run's changes to the records inside its finishing transaction
/// `tx`, as `scope`'s installation: writes first (in order), then
/// acknowledgements, then annotations.
pub(super) fn apply_in(
    tx: &Connection,
    scope: &Scope,
    effects: &RecordEffects,
    now: i64,
) -> Result<(), StorageError> {
    write_all_in(tx, &scope.tenant, &scope.installation, &effects.writes, now)?;
    for ack in &effects.acks {
        ack_in(tx, scope, ack, now)?;
    }
    // One write per record annotated, its changes in the order made.
    for (key, changes) in effects.annotations_by_record() {
        annotate_in(tx, scope, key, &changes, now)?;
    }
    Ok(())
}

impl SqliteStore {
    /// See [`RecordStore::write_records`].
    pub fn write_records(
        &self,
        tenant: &str,
        writer: &str,
        writes: &[RecordWrite],
        now: i64,
    ) -> Result<Vec<i64>, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if !super::installations::tenant_exists_in(&tx, tenant)? {
            return Err(StorageError::NotFound(format!("no tenant `{tenant}`")));
        }
        let given = write_all_in(&tx, tenant, writer, writes, now)?;
        let mut versions = Vec::with_capacity(writes.len());
        for (write, version) in writes.iter().zip(given) {
            // A no-op delete reports the version the record already has (0
            // if it never existed).
            let version = match version {
                Some(v) => v,
                None => tx
                    .query_row(
                        "SELECT version FROM records
                         WHERE tenant = ?1 AND collection = ?2 AND id = ?3",
                        params![tenant, write.collection, write.id],
                        |r| r.get(0),
                    )
                    .optional()?
                    .unwrap_or(0),
            };
            versions.push(version);
        }
        tx.commit()?;
        Ok(versions)
    }

    /// See [`RecordStore::record`].
    pub fn record(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<StoredRecord>, StorageError> {
        Ok(self
            .reader()
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records
                 WHERE tenant = ?1 AND collection = ?2 AND id = ?3"
            ))?
            .query_row(params![tenant, collection, id], record_from_row)
            .optional()?)
    }

    /// See [`RecordStore::record_changes`].
    pub fn record_changes(
        &self,
        tenant: &str,
        collection: &str,
        after: i64,
        limit: PageLimit,
    ) -> Result<RecordPage, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records
             WHERE tenant = ?1 AND collection = ?2 AND version > ?3
             ORDER BY version LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![tenant, collection, after, rows_for_page(limit)],
            record_from_row,
        )?;
        page_of(rows, limit)
    }

    /// See [`RecordStore::pending_records`].
    pub fn pending_records(
        &self,
        tenant: &str,
        consumer: &str,
        collection: &str,
        after: i64,
        limit: PageLimit,
    ) -> Result<RecordPage, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT r.collection, r.id, r.version, r.updated_at, r.writer, r.body
             FROM records r
             LEFT JOIN record_acks a ON a.tenant = r.tenant AND a.installation = ?2
                AND a.collection = r.collection AND a.id = r.id
             WHERE r.tenant = ?1 AND r.collection = ?3 AND r.version > ?4
                AND r.body IS NOT NULL AND (a.version IS NULL OR a.version < r.version)
             ORDER BY r.version LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![tenant, consumer, collection, after, rows_for_page(limit)],
            record_from_row,
        )?;
        page_of(rows, limit)
    }

    /// See [`RecordStore::record_acks`].
    pub fn record_acks(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> Result<Vec<AckRow>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT installation, version, acked_at FROM record_acks
             WHERE tenant = ?1 AND collection = ?2 AND id = ?3 ORDER BY installation",
        )?;
        let rows = stmt.query_map(params![tenant, collection, id], |r| {
            Ok(AckRow {
                installation: r.get(0)?,
                version: r.get(1)?,
                acked_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// See [`RecordStore::unack_record`].
    pub fn unack_record(
        &self,
        tenant: &str,
        consumer: &str,
        collection: &str,
        id: &str,
    ) -> Result<bool, StorageError> {
        let removed = self.conn().execute(
            "DELETE FROM record_acks
             WHERE tenant = ?1 AND installation = ?2 AND collection = ?3 AND id = ?4",
            params![tenant, consumer, collection, id],
        )?;
        Ok(removed > 0)
    }

    /// See [`RecordStore::all_record_annotations`].
    pub fn all_record_annotations(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> Result<Vec<(String, Annotations)>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT installation, external_ref, notes, flag, updated_at FROM record_annotations
             WHERE tenant = ?1 AND collection = ?2 AND id = ?3 ORDER BY installation",
        )?;
        let rows = stmt.query_map(params![tenant, collection, id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (installation, external_ref, notes, flag, updated_at) = row?;
            out.push((
                installation,
                annotations_from(external_ref, &notes, flag, updated_at)?,
            ));
        }
        Ok(out)
    }

    /// See [`RecordStore::record_annotations`].
    pub fn record_annotations(
        &self,
        tenant: &str,
        installation: &str,
        collection: &str,
        id: &str,
    ) -> Result<Annotations, StorageError> {
        annotations_in(&self.reader(), tenant, installation, collection, id)
    }
}

/// A page from `rows` (by version) within `limit`, reading no row past
/// the one that shows the page full.
fn page_of(
    rows: impl Iterator<Item = rusqlite::Result<StoredRecord>>,
    limit: PageLimit,
) -> Result<RecordPage, StorageError> {
    let mut page = PageFill::new(limit);
    for row in rows {
        if !page.take(row?) {
            break;
        }
    }
    Ok(page.finish())
}

/// Owned copies of borrowed arguments, for calls that leave the worker.
fn owned<const N: usize>(args: [&str; N]) -> [String; N] {
    args.map(str::to_string)
}

#[async_trait::async_trait]
impl RecordStore for SqliteStore {
    async fn write_records(
        &self,
        tenant: &str,
        writer: &str,
        writes: Vec<RecordWrite>,
        now: i64,
    ) -> Result<Vec<i64>, StorageError> {
        let [tenant, writer] = owned([tenant, writer]);
        self.off_worker(move |s| SqliteStore::write_records(s, &tenant, &writer, &writes, now))
            .await
    }

    async fn record(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<StoredRecord>, StorageError> {
        let [tenant, collection, id] = owned([tenant, collection, id]);
        self.off_worker(move |s| SqliteStore::record(s, &tenant, &collection, &id))
            .await
    }

    async fn record_changes(
        &self,
        tenant: &str,
        collection: &str,
        after: i64,
        limit: PageLimit,
    ) -> Result<RecordPage, StorageError> {
        let [tenant, collection] = owned([tenant, collection]);
        self.off_worker(move |s| SqliteStore::record_changes(s, &tenant, &collection, after, limit))
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
        let [tenant, consumer, collection] = owned([tenant, consumer, collection]);
        self.off_worker(move |s| {
            SqliteStore::pending_records(s, &tenant, &consumer, &collection, after, limit)
        })
        .await
    }

    async fn record_acks(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> Result<Vec<AckRow>, StorageError> {
        let [tenant, collection, id] = owned([tenant, collection, id]);
        self.off_worker(move |s| SqliteStore::record_acks(s, &tenant, &collection, &id))
            .await
    }

    async fn unack_record(
        &self,
        tenant: &str,
        consumer: &str,
        collection: &str,
        id: &str,
    ) -> Result<bool, StorageError> {
        let [tenant, consumer, collection, id] = owned([tenant, consumer, collection, id]);
        self.off_worker(move |s| SqliteStore::unack_record(s, &tenant, &consumer, &collection, &id))
            .await
    }

    async fn all_record_annotations(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> Result<Vec<(String, Annotations)>, StorageError> {
        let [tenant, collection, id] = owned([tenant, collection, id]);
        self.off_worker(move |s| SqliteStore::all_record_annotations(s, &tenant, &collection, &id))
            .await
    }

    async fn record_annotations(
        &self,
        tenant: &str,
        installation: &str,
        collection: &str,
        id: &str,
    ) -> Result<Annotations, StorageError> {
        let [tenant, installation, collection, id] = owned([tenant, installation, collection, id]);
        self.off_worker(move |s| {
            SqliteStore::record_annotations(s, &tenant, &installation, &collection, &id)
        })
        .await
    }
}
