//! The tenant's shared business records as a backend offers them: each
//! record is a JSON body under (tenant, collection, id) with a per-tenant
//! monotonic version; each consumer (an installation) acknowledges the
//! versions it has exported, and keeps its own annotations on a record.
//!
//! Semantics (see `docs/records.md`):
//! - A write (put or delete) gives the record the tenant's next version; a
//!   delete leaves a tombstone, so change feeds see it.
//! - A record is *pending* for a consumer when it is not deleted and the
//!   consumer has not acknowledged it, or acknowledged an older version.
//! - Un-acknowledging (the operator, to re-export) removes the
//!   acknowledgement: the record is pending again for that consumer only.
//! - A run's writes, acknowledgements and annotations are part of its
//!   [`RunEffects`](super::RunEffects): committed with its record, or not at
//!   all.

use std::collections::HashMap;

use serde::Serialize;

use super::StorageError;

/// Who wrote a record when it was not an installation: the platform (the
/// shop itself, `airlock records import`).
pub const PLATFORM_WRITER: &str = "platform";

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoredRecord {
    /// Its collection (`orders`, `products`…).
    pub collection: String,
    /// Its id, unique within the tenant's collection.
    pub id: String,
    /// The tenant's version counter when it was last written (starts at 1,
    /// never reused, shared by all the tenant's collections).
    pub version: i64,
    /// When it was last written (Unix seconds).
    pub updated_at: i64,
    /// Who wrote it last: [`PLATFORM_WRITER`] or an installation id.
    pub writer: String,
    /// Its JSON body; none once deleted (a tombstone).
    pub body: Option<String>,
}

impl StoredRecord {
    /// Whether it was deleted.
    pub fn is_deleted(&self) -> bool {
        self.body.is_none()
    }
}

/// How much one page of records may hold: a page ends at whichever comes
/// first (it always holds at least one record, however large).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit {
    /// Records.
    pub records: usize,
    /// Bytes of bodies.
    pub bytes: usize,
}

impl PageLimit {
    /// At most `records` records, bodies of any size.
    pub fn records(records: usize) -> Self {
        Self {
            records,
            bytes: usize::MAX,
        }
    }
}

/// One page of records, and whether more follow it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordPage {
    /// The records, by version.
    pub records: Vec<StoredRecord>,
    /// Whether the page was cut by its limit and records follow (ask again
    /// after the last one's version).
    pub more: bool,
}

/// A write to one record: its new body, or none to delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    /// Its collection.
    pub collection: String,
    /// Its id.
    pub id: String,
    /// The new JSON body (already validated against the collection's
    /// schema), or none to delete.
    pub body: Option<String>,
}

/// A consumer's acknowledgement that it has exported `version` of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAck {
    /// The record's collection.
    pub collection: String,
    /// The record's id.
    pub id: String,
    /// The version exported; a later version is pending again.
    pub version: i64,
}

/// Who acknowledged a record, and which version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AckRow {
    /// The consumer installation.
    pub installation: String,
    /// The version it acknowledged.
    pub version: i64,
    /// When (Unix seconds).
    pub acked_at: i64,
}

/// A change to an installation's annotations on one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotationChange {
    /// Sets (or clears) the external reference: the record's id at the
    /// third party (Xero's InvoiceID).
    ExternalRef(Option<String>),
    /// Appends a note (Staingard's warranty number).
    Note(String),
    /// Sets (or clears) the flag (`awaiting-action`).
    Flag(Option<String>),
}

/// An annotation change on one record, by the installation whose run made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAnnotation {
    /// The record's collection.
    pub collection: String,
    /// The record's id.
    pub id: String,
    /// The change.
    pub change: AnnotationChange,
}

/// One installation's annotations on one record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Annotations {
    /// The record's id at the third party.
    pub external_ref: Option<String>,
    /// Notes, oldest first.
    pub notes: Vec<String>,
    /// The flag, if set.
    pub flag: Option<String>,
    /// When they last changed (Unix seconds); 0 if never.
    pub updated_at: i64,
}

impl Annotations {
    /// Makes `change` to these annotations.
    pub fn apply(&mut self, change: &AnnotationChange) {
        match change {
            AnnotationChange::ExternalRef(r) => self.external_ref = r.clone(),
            AnnotationChange::Note(note) => self.notes.push(note.clone()),
            AnnotationChange::Flag(f) => self.flag = f.clone(),
        }
    }

    /// Makes a run's `changes`, in order, then drops the oldest notes past
    /// [`MAX_NOTES_KEPT`]: what a backend stores.
    pub(super) fn apply_kept(&mut self, changes: &[&AnnotationChange]) {
        for change in changes {
            self.apply(change);
        }
        let over = self.notes.len().saturating_sub(MAX_NOTES_KEPT);
        self.notes.drain(..over);
    }
}

/// The most notes an installation keeps on one record: past it, the
/// oldest are dropped when a run adds more (the guest is refused first, at
/// the call, against what was stored when it asked).
pub(super) const MAX_NOTES_KEPT: usize = crate::records::run::MAX_NOTES;

/// Everything a run changes in the tenant's records, committed with the
/// run's record (all or nothing) by [`RunLedger::finish_run`](super::RunLedger::finish_run),
/// written as the run's installation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordEffects {
    /// Puts and deletes, in the order made (a later write to the same
    /// record wins).
    pub writes: Vec<RecordWrite>,
    /// Acknowledgements by the run's installation.
    pub acks: Vec<RecordAck>,
    /// Annotation changes by the run's installation, in the order made.
    pub annotations: Vec<RecordAnnotation>,
}

impl RecordEffects {
    /// Whether the run changed nothing in the records.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.acks.is_empty() && self.annotations.is_empty()
    }

    /// The annotation changes grouped by record (collection, id), each
    /// record's in the order made, the records in the order first
    /// annotated: a backend writes each record's annotations once.
    pub(super) fn annotations_by_record(&self) -> Vec<((&str, &str), Vec<&AnnotationChange>)> {
        let mut grouped: Vec<((&str, &str), Vec<&AnnotationChange>)> = Vec::new();
        let mut index: HashMap<(&str, &str), usize> = HashMap::new();
        for RecordAnnotation {
            collection,
            id,
            change,
        } in &self.annotations
        {
            let key = (collection.as_str(), id.as_str());
            let at = *index.entry(key).or_insert_with(|| {
                grouped.push((key, Vec::new()));
                grouped.len() - 1
            });
            grouped[at].1.push(change);
        }
        grouped
    }
}

/// The rows a page query asks for: one more than the page holds, to tell
/// whether more follow.
pub(super) fn rows_for_page(limit: PageLimit) -> i64 {
    i64::try_from(limit.records.max(1))
        .unwrap_or(i64::MAX)
        .saturating_add(1)
}

/// A page being filled from records read by version: up to
/// `limit.records` records, ending early before the one that would bring
/// the bodies over `limit.bytes` (the first is always taken).
pub(super) struct PageFill {
    limit: PageLimit,
    bytes: usize,
    page: RecordPage,
}

impl PageFill {
    /// An empty page within `limit`.
    pub(super) fn new(limit: PageLimit) -> Self {
        Self {
            limit,
            bytes: 0,
            page: RecordPage::default(),
        }
    }

    /// Takes `record` (the next by version) if the page has room for it;
    /// false once full, when the page says more follow: read no further.
    pub(super) fn take(&mut self, record: StoredRecord) -> bool {
        let size = record.body.as_ref().map_or(0, String::len);
        let records = &self.page.records;
        let full = records.len() >= self.limit.records.max(1)
            || (!records.is_empty() && self.bytes.saturating_add(size) > self.limit.bytes);
        if full {
            self.page.more = true;
            return false;
        }
        self.bytes += size;
        self.page.records.push(record);
        true
    }

    /// The page.
    pub(super) fn finish(self) -> RecordPage {
        self.page
    }
}

/// The records of every tenant, as a backend offers them to async code.
/// Every call names its tenant: there is no call that reads across tenants.
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync {
    /// Applies `writes` by `writer` (an installation id or
    /// [`PLATFORM_WRITER`]) in one transaction, at `now`; returns the
    /// version each write was given, in order. Refused as
    /// [`StorageError::NotFound`] if the tenant does not exist or was removed.
    async fn write_records(
        &self,
        tenant: &str,
        writer: &str,
        writes: Vec<RecordWrite>,
        now: i64,
    ) -> Result<Vec<i64>, StorageError>;

    /// The record, deleted or not, if it was ever written.
    async fn record(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<StoredRecord>, StorageError>;

    /// The records of `collection` written after version `after`
    /// (tombstones included), by version, one page within `limit`: the
    /// change feed.
    async fn record_changes(
        &self,
        tenant: &str,
        collection: &str,
        after: i64,
        limit: PageLimit,
    ) -> Result<RecordPage, StorageError>;

    /// The records of `collection` pending for `consumer` (not deleted; not
    /// acknowledged by it, or acknowledged at an older version) whose
    /// version is after `after`, by version, one page within `limit`.
    async fn pending_records(
        &self,
        tenant: &str,
        consumer: &str,
        collection: &str,
        after: i64,
        limit: PageLimit,
    ) -> Result<RecordPage, StorageError>;

    /// Who acknowledged the record, and which version, by installation.
    async fn record_acks(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> Result<Vec<AckRow>, StorageError>;

    /// Removes `consumer`'s acknowledgement of the record, so it is pending
    /// for that consumer again; false if there was none.
    async fn unack_record(
        &self,
        tenant: &str,
        consumer: &str,
        collection: &str,
        id: &str,
    ) -> Result<bool, StorageError>;

    /// Every installation's annotations on the record (removed
    /// installations' included), by installation: what the operator sees.
    async fn all_record_annotations(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> Result<Vec<(String, Annotations)>, StorageError>;

    /// `installation`'s annotations on the record (default if none).
    async fn record_annotations(
        &self,
        tenant: &str,
        installation: &str,
        collection: &str,
        id: &str,
    ) -> Result<Annotations, StorageError>;
}
