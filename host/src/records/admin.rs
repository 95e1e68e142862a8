//! What an operator asks of a tenant's records besides importing them:
//! list (the change feed, or what one installation has pending and why),
//! show one with who acknowledged it and the installations' annotations,
//! export the live ones as JSON Lines, un-acknowledge one so it is exported
//! again. Thin wrappers over [`RecordStore`] for `airlock records` and a
//! later admin API; the caller checks that the tenant and installations it
//! names exist (the registry's concern, not the records').

use std::io::Write;

use serde::Serialize;

use crate::storage::{AckRow, Annotations, PageLimit, RecordStore, StorageError, StoredRecord};

use super::is_collection;

/// Records read per store call by [`export_jsonl`].
pub const EXPORT_PAGE: usize = 1_000;
/// The most bytes of bodies one page of an export holds.
const EXPORT_PAGE_BYTES: usize = 16 << 20;

/// Why an operator's request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The collection is not one of [`super::COLLECTIONS`].
    #[error("{0}")]
    UnknownCollection(String),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The export could not be written.
    #[error("cannot write the export")]
    Write(#[source] std::io::Error),
}

fn known(collection: &str) -> Result<(), AdminError> {
    if is_collection(collection) {
        Ok(())
    } else {
        Err(AdminError::UnknownCollection(super::unknown_collection(
            collection,
        )))
    }
}

/// Which records [`list`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only those pending for this installation (live, and not
    /// acknowledged by it at their version); otherwise every record written,
    /// deleted ones included.
    pub pending_for: Option<String>,
    /// Only those whose version is after this one (0: from the start).
    pub after: i64,
    /// At most this many.
    pub limit: usize,
}

/// Why a record is pending for an installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum PendingReason {
    /// It never acknowledged the record (or its acknowledgement was
    /// removed).
    New,
    /// It acknowledged an older version; the record changed since.
    Changed {
        /// The version it acknowledged.
        acknowledged: i64,
    },
}

/// A record as [`list`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ListedRecord {
    /// The record.
    #[serde(flatten)]
    pub record: StoredRecord,
    /// Why it is pending, when the list is an installation's pending set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingReason>,
}

/// `tenant`'s records of `collection` by version: the change feed, or with
/// [`ListQuery::pending_for`] what that installation has pending, each with
/// why.
pub async fn list(
    store: &dyn RecordStore,
    tenant: &str,
    collection: &str,
    query: &ListQuery,
) -> Result<Vec<ListedRecord>, AdminError> {
    known(collection)?;
    let Some(consumer) = &query.pending_for else {
        let records = store
            .record_changes(
                tenant,
                collection,
                query.after,
                PageLimit::records(query.limit),
            )
            .await?
            .records;
        return Ok(records
            .into_iter()
            .map(|record| ListedRecord {
                record,
                pending: None,
            })
            .collect());
    };
    let records = store
        .pending_records(
            tenant,
            consumer,
            collection,
            query.after,
            PageLimit::records(query.limit),
        )
        .await?
        .records;
    let mut listed = Vec::with_capacity(records.len());
    for record in records {
        let acks = store.record_acks(tenant, collection, &record.id).await?;
        let reason = match acks.iter().find(|a| &a.installation == consumer) {
            Some(ack) => PendingReason::Changed {
                acknowledged: ack.version,
            },
            None => PendingReason::New,
        };
        listed.push(ListedRecord {
            record,
            pending: Some(reason),
        });
    }
    Ok(listed)
}

/// One record with who acknowledged it and the annotations kept on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RecordDetail {
    /// The record (its body none if it was deleted).
    pub record: StoredRecord,
    /// Who acknowledged which version, by installation.
    pub acks: Vec<AckRow>,
    /// Each installation's annotations (removed installations' included),
    /// by installation.
    #[schema(value_type = Vec<Object>)]
    pub annotations: Vec<(String, Annotations)>,
}

/// The record `collection/id` of `tenant`, if it was ever written, with its
/// acknowledgements and every installation's annotations.
pub async fn show(
    store: &dyn RecordStore,
    tenant: &str,
    collection: &str,
    id: &str,
) -> Result<Option<RecordDetail>, AdminError> {
    known(collection)?;
    let Some(record) = store.record(tenant, collection, id).await? else {
        return Ok(None);
    };
    let acks = store.record_acks(tenant, collection, id).await?;
    let annotations = store.all_record_annotations(tenant, collection, id).await?;
    Ok(Some(RecordDetail {
        record,
        acks,
        annotations,
    }))
}

/// Writes the body of every live record of `tenant`'s `collection` to `out`,
/// one per line, by version, reading [`EXPORT_PAGE`] at a time; returns how
/// many. What [`super::import::import_jsonl`] reads back. The writes block
/// in place on the calling worker.
pub async fn export_jsonl(
    store: &dyn RecordStore,
    tenant: &str,
    collection: &str,
    out: &mut (dyn Write + Send),
) -> Result<usize, AdminError> {
    known(collection)?;
    let mut after = 0;
    let mut count = 0;
    loop {
        let limit = PageLimit {
            records: EXPORT_PAGE,
            bytes: EXPORT_PAGE_BYTES,
        };
        let page = store
            .record_changes(tenant, collection, after, limit)
            .await?;
        let Some(last) = page.records.last() else {
            break;
        };
        after = last.version;
        count += crate::blocking::in_place(|| write_bodies(&page.records, out))
            .map_err(AdminError::Write)?;
        if !page.more {
            break;
        }
    }
    crate::blocking::in_place(|| out.flush()).map_err(AdminError::Write)?;
    Ok(count)
}

fn write_bodies(page: &[StoredRecord], out: &mut dyn Write) -> std::io::Result<usize> {
    let mut count = 0;
    for body in page.iter().filter_map(|r| r.body.as_deref()) {
        out.write_all(body.as_bytes())?;
        out.write_all(b"\n")?;
        count += 1;
    }
    Ok(count)
}

/// Removes `installation`'s acknowledgement of the record, so it is pending
/// for it again (the operator's "export it again"); false if there was
/// none.
pub async fn unack(
    store: &dyn RecordStore,
    tenant: &str,
    collection: &str,
    id: &str,
    installation: &str,
) -> Result<bool, AdminError> {
    known(collection)?;
    Ok(store
        .unack_record(tenant, installation, collection, id)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::import::tests::{TestStore, stock_line};
    use crate::storage::{PLATFORM_WRITER, RecordWrite};

    async fn put(store: &TestStore, id: &str, body: Option<String>) {
        let write = RecordWrite {
            collection: "stock".into(),
            id: id.into(),
            body,
        };
        store
            .write_records("acme", PLATFORM_WRITER, vec![write], 1)
            .await
            .unwrap();
    }

    /// `installation` acknowledges `version` of stock record `id`, as its
    /// finished run would.
    fn ack(store: &TestStore, installation: &str, id: &str, version: i64) {
        use crate::storage::{RecordAck, RecordEffects, RunEffects, RunRow};
        let run = RunRow {
            tenant: "acme".into(),
            installation: installation.into(),
            plugin_id: "p".into(),
            plugin_version: "1".into(),
            plugin_digest: String::new(),
            feed: "export".into(),
            mode: "live".into(),
            trigger: "manual".into(),
            attempt: 1,
            scheduled_at: 0,
            started_at: 0,
            ended_at: 0,
            status: "ok".into(),
            message: String::new(),
            report: "{}".into(),
        };
        let acks = vec![RecordAck {
            collection: "stock".into(),
            id: id.into(),
            version,
        }];
        store
            .inner
            .finish_run(RunEffects {
                run,
                kv_changes: Vec::new(),
                records: RecordEffects {
                    acks,
                    ..RecordEffects::default()
                },
                artifacts: Default::default(),
                http_calls: Vec::new(),
                settlement: None,
                settled_at: 2,
                webhook_delivery: None,
                kv_history: Default::default(),
            })
            .unwrap();
    }

    #[tokio::test]
    async fn pending_records_say_whether_they_are_new_or_changed() {
        let store = TestStore::default();
        put(&store, "A", Some(stock_line("A", 1))).await; // v1
        put(&store, "B", Some(stock_line("B", 1))).await; // v2
        put(&store, "C", Some(stock_line("C", 1))).await; // v3
        ack(&store, "xero", "A", 1);
        ack(&store, "xero", "B", 2);
        put(&store, "B", Some(stock_line("B", 2))).await; // v4
        let query = ListQuery {
            pending_for: Some("xero".into()),
            after: 0,
            limit: 10,
        };
        let listed = list(&store, "acme", "stock", &query).await.unwrap();
        let seen: Vec<(&str, Option<PendingReason>)> = listed
            .iter()
            .map(|l| (l.record.id.as_str(), l.pending))
            .collect();
        assert_eq!(
            seen,
            [
                ("C", Some(PendingReason::New)),
                ("B", Some(PendingReason::Changed { acknowledged: 2 })),
            ]
        );
        assert!(unack(&store, "acme", "stock", "A", "xero").await.unwrap());
        assert!(!unack(&store, "acme", "stock", "A", "xero").await.unwrap());
        let listed = list(&store, "acme", "stock", &query).await.unwrap();
        assert_eq!(listed[0].record.id, "A");
        assert_eq!(listed[0].pending, Some(PendingReason::New));
    }

    #[tokio::test]
    async fn export_writes_live_bodies_by_version_across_pages() {
        let store = TestStore::default();
        let n = EXPORT_PAGE + 5;
        let writes = (0..n)
            .map(|i| RecordWrite {
                collection: "stock".into(),
                id: format!("S{i}"),
                body: Some(stock_line(&format!("S{i}"), 1)),
            })
            .collect();
        store
            .write_records("acme", PLATFORM_WRITER, writes, 1)
            .await
            .unwrap();
        put(&store, "S3", None).await;
        let mut out = Vec::new();
        let count = export_jsonl(&store, "acme", "stock", &mut out)
            .await
            .unwrap();
        assert_eq!(count, n - 1);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), n - 1);
        assert_eq!(lines[0], stock_line("S0", 1));
        assert!(!text.contains("\"S3\""));
    }

    #[tokio::test]
    async fn unknown_collections_are_refused() {
        let store = TestStore::default();
        let query = ListQuery::default();
        assert!(matches!(
            list(&store, "acme", "widgets", &query).await,
            Err(AdminError::UnknownCollection(_))
        ));
        assert!(matches!(
            show(&store, "acme", "widgets", "x").await,
            Err(AdminError::UnknownCollection(_))
        ));
        assert!(show(&store, "acme", "stock", "x").await.unwrap().is_none());
    }
}
