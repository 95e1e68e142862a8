//! The tenant's shared records: walking a collection's pending or changed
//! records page by page, with their bodies parsed as JSON, and the calls a
//! consumer makes on each (acknowledge, external reference).

use serde_json::Value;

use crate::Failure;
use crate::bindings::airlock::connector::records::{
    self as wit, AnnotationChange, RecordPage, RecordsError,
};

/// A record with its body parsed.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its collection.
    pub collection: String,
    /// Its id.
    pub id: String,
    /// The version to acknowledge once exported (0: written by this run).
    pub version: u64,
    /// Who wrote it last (`platform` or an installation).
    pub writer: String,
    /// The body; `Value::Null` for a deleted record.
    pub body: Value,
}

impl Record {
    /// True if the record was deleted.
    pub fn is_deleted(&self) -> bool {
        self.body.is_null()
    }

    /// A string field of the body (`"status"`), or "".
    pub fn str(&self, field: &str) -> &str {
        self.body.get(field).and_then(Value::as_str).unwrap_or("")
    }

    /// Acknowledges this version: it leaves this installation's pending set
    /// when the run commits.
    pub fn acknowledge(&self) -> Result<(), Failure> {
        wit::acknowledge(&self.collection, &self.id, self.version).map_err(failure)
    }

    /// Sets this installation's external reference on the record.
    pub fn set_external_ref(&self, reference: &str) -> Result<(), Failure> {
        wit::annotate(
            &self.collection,
            &self.id,
            &AnnotationChange::ExternalRef(Some(reference.to_string())),
        )
        .map_err(failure)
    }
}

fn parse(record: wit::Record) -> Result<Record, Failure> {
    let body = match &record.body {
        Some(text) => serde_json::from_str(text).map_err(|e| {
            Failure::error(format!(
                "{} {}: the host gave a body that is not JSON: {e}",
                record.collection, record.id
            ))
        })?,
        None => Value::Null,
    };
    Ok(Record {
        collection: record.collection,
        id: record.id,
        version: record.version,
        writer: record.writer,
        body,
    })
}

/// Which feed of a collection to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Records not yet acknowledged by this installation, or changed since.
    Pending,
    /// Every record written after the cursor (from the start).
    Changes,
}

/// Calls `each` on every record of `collection` in `feed`, page by page
/// (`page_size` per page, capped by the host), following the cursor so a
/// record skipped by `each` is not seen again in this walk. Stops at the
/// first failure. Returns how many records were visited.
pub fn walk(
    collection: &str,
    feed: Feed,
    page_size: u32,
    mut each: impl FnMut(Record) -> Result<(), Failure>,
) -> Result<u64, Failure> {
    walk_while(collection, feed, page_size, |record| {
        each(record).map(|()| true)
    })
}

/// Like [`walk`], and stops early (reading no further page) once `each`
/// returns `Ok(false)`: for a run that takes at most so many records.
pub fn walk_while(
    collection: &str,
    feed: Feed,
    page_size: u32,
    mut each: impl FnMut(Record) -> Result<bool, Failure>,
) -> Result<u64, Failure> {
    let mut cursor: Option<String> = None;
    let mut seen = 0u64;
    loop {
        let page: RecordPage = match feed {
            Feed::Pending => wit::pending(collection, cursor.as_deref(), page_size),
            Feed::Changes => wit::changes(collection, cursor.as_deref(), page_size),
        }
        .map_err(failure)?;
        for record in page.records {
            seen += 1;
            if !each(parse(record)?)? {
                return Ok(seen);
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(seen),
        }
    }
}

/// The record as this run sees it, if it exists.
pub fn get(collection: &str, id: &str) -> Result<Option<Record>, Failure> {
    wit::get(collection, id)
        .map_err(failure)?
        .map(parse)
        .transpose()
}

/// This installation's external reference on the record, if set.
pub fn external_ref(collection: &str, id: &str) -> Result<Option<String>, Failure> {
    Ok(wit::annotations(collection, id)
        .map_err(failure)?
        .external_ref)
}

/// A records error as a run failure: the store being down is passing,
/// everything else is the connector's or the grant's to fix.
pub fn failure(error: RecordsError) -> Failure {
    match error {
        RecordsError::Unavailable(m) => Failure::retry(format!("records unavailable: {m}")),
        RecordsError::NotGranted(m) => Failure::error(format!("records not granted: {m}")),
        RecordsError::UnknownCollection(m) => Failure::error(format!("unknown collection: {m}")),
        RecordsError::Invalid(m) => Failure::error(format!("invalid record: {m}")),
        RecordsError::InvalidArgument(m) => Failure::error(format!("invalid argument: {m}")),
        RecordsError::QuotaExceeded(m) => Failure::error(format!("records quota: {m}")),
    }
}
