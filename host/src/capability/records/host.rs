//! WIT glue for `airlock:connector/records`.

use super::RecordsCapability;
use crate::records::RecordsError;
use crate::records::run::{MAX_PAGE, cursor_after, parse_cursor};
use crate::runtime::bindings::airlock::connector::records as wit;
use crate::storage::{AnnotationChange, PageLimit, StorageError, StoredRecord};

type RecordsResult<T> = wasmtime::Result<Result<T, wit::RecordsError>>;

fn guest_error(e: RecordsError) -> wit::RecordsError {
    match e {
        RecordsError::UnknownCollection(m) => wit::RecordsError::UnknownCollection(m),
        RecordsError::NotGranted(m) => wit::RecordsError::NotGranted(m),
        RecordsError::Invalid(m) => wit::RecordsError::Invalid(m),
        RecordsError::InvalidArgument(m) => wit::RecordsError::InvalidArgument(m),
        RecordsError::QuotaExceeded(m) => wit::RecordsError::QuotaExceeded(m),
        RecordsError::Unavailable(m) => wit::RecordsError::Unavailable(m),
    }
}

/// The store failed: the guest should end in `retry`.
fn unavailable(e: StorageError) -> RecordsError {
    RecordsError::Unavailable(e.to_string())
}

fn guest_record(r: StoredRecord) -> wit::Record {
    wit::Record {
        collection: r.collection,
        id: r.id,
        version: r.version.max(0) as u64,
        updated_at: r.updated_at,
        writer: r.writer,
        body: r.body,
    }
}

/// A page size the guest asked for, within the host's.
fn page_size(limit: u32) -> usize {
    (limit as usize).clamp(1, MAX_PAGE)
}

impl RecordsCapability {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<wit::Record>, RecordsError> {
        self.run.grants().check_read(collection)?;
        crate::records::run::check_record_id(id)?;
        if let Some(own) = self.run.own_write(collection, id) {
            return Ok(own.map(|body| wit::Record {
                collection: collection.to_string(),
                id: id.to_string(),
                version: 0,
                updated_at: chrono::Utc::now().timestamp(),
                writer: self.installation.clone(),
                body: Some(body.to_string()),
            }));
        }
        let stored = self.store.record(&self.tenant, collection, id).await;
        let stored = stored.map_err(unavailable)?;
        Ok(stored.filter(|r| !r.is_deleted()).map(guest_record))
    }

    async fn changes(
        &self,
        collection: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<wit::RecordPage, RecordsError> {
        self.run.grants().check_read(collection)?;
        let after = parse_cursor(cursor)?;
        let limit = PageLimit {
            records: page_size(limit),
            bytes: self.run.page_bytes(),
        };
        let page = self
            .store
            .record_changes(&self.tenant, collection, after, limit)
            .await
            .map_err(unavailable)?;
        let next_cursor = match page.records.last() {
            Some(last) if page.more => Some(cursor_after(last)),
            _ => None,
        };
        Ok(wit::RecordPage {
            records: page.records.into_iter().map(guest_record).collect(),
            next_cursor,
        })
    }

    /// The pending page: pages of the store's pending set, leaving out what
    /// this run acknowledged already, until `limit` records or the run's
    /// page bytes are found, or none is left.
    async fn pending(
        &self,
        collection: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<wit::RecordPage, RecordsError> {
        self.run.grants().check_read(collection)?;
        let mut after = parse_cursor(cursor)?;
        let limit = page_size(limit);
        let mut bytes_left = self.run.page_bytes();
        let mut found = Vec::new();
        let next_cursor = loop {
            let wanted = PageLimit {
                records: limit - found.len(),
                bytes: bytes_left,
            };
            let page = self
                .store
                .pending_records(&self.tenant, &self.installation, collection, after, wanted)
                .await
                .map_err(unavailable)?;
            let cut_by_bytes = page.more && page.records.len() < wanted.records;
            if let Some(last) = page.records.last() {
                after = last.version;
            }
            for record in page.records {
                if !self.run.acked_in_run(&record) {
                    let size = record.body.as_ref().map_or(0, String::len);
                    bytes_left = bytes_left.saturating_sub(size);
                    found.push(record);
                }
            }
            if !page.more {
                break None;
            }
            if found.len() == limit || cut_by_bytes || bytes_left == 0 {
                break Some(after.to_string());
            }
        };
        Ok(wit::RecordPage {
            records: found.into_iter().map(guest_record).collect(),
            next_cursor,
        })
    }

    /// A note counts against the notes the record keeps, so it needs
    /// what is stored (read only when the call is allowed at all).
    async fn annotate(
        &mut self,
        collection: &str,
        id: &str,
        change: AnnotationChange,
    ) -> Result<(), RecordsError> {
        let stored_notes = match &change {
            AnnotationChange::Note(_) => {
                self.run.grants().check_read(collection)?;
                crate::records::run::check_record_id(id)?;
                self.store
                    .record_annotations(&self.tenant, &self.installation, collection, id)
                    .await
                    .map_err(unavailable)?
                    .notes
                    .len()
            }
            _ => 0,
        };
        self.run.annotate(collection, id, change, stored_notes)
    }

    async fn annotations(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<wit::RecordAnnotations, RecordsError> {
        self.run.grants().check_read(collection)?;
        crate::records::run::check_record_id(id)?;
        let mut current = self
            .store
            .record_annotations(&self.tenant, &self.installation, collection, id)
            .await
            .map_err(unavailable)?;
        for change in self.run.own_annotations(collection, id) {
            current.apply(change);
        }
        Ok(wit::RecordAnnotations {
            external_ref: current.external_ref,
            notes: current.notes,
            flag: current.flag,
        })
    }
}

impl wit::Host for RecordsCapability {
    #[tracing::instrument(name = "records.get", level = "debug", skip_all)]
    async fn get(&mut self, collection: String, id: String) -> RecordsResult<Option<wit::Record>> {
        Ok(RecordsCapability::get(self, &collection, &id)
            .await
            .map_err(guest_error))
    }

    #[tracing::instrument(name = "records.put", level = "debug", skip_all)]
    async fn put(&mut self, collection: String, id: String, body: String) -> RecordsResult<()> {
        Ok(self.run.put(&collection, &id, body).map_err(guest_error))
    }

    #[tracing::instrument(name = "records.delete", level = "debug", skip_all)]
    async fn delete(&mut self, collection: String, id: String) -> RecordsResult<()> {
        Ok(self.run.delete(&collection, &id).map_err(guest_error))
    }

    #[tracing::instrument(name = "records.changes", level = "debug", skip_all)]
    async fn changes(
        &mut self,
        collection: String,
        cursor: Option<String>,
        limit: u32,
    ) -> RecordsResult<wit::RecordPage> {
        Ok(
            RecordsCapability::changes(self, &collection, cursor.as_deref(), limit)
                .await
                .map_err(guest_error),
        )
    }

    #[tracing::instrument(name = "records.pending", level = "debug", skip_all)]
    async fn pending(
        &mut self,
        collection: String,
        cursor: Option<String>,
        limit: u32,
    ) -> RecordsResult<wit::RecordPage> {
        Ok(
            RecordsCapability::pending(self, &collection, cursor.as_deref(), limit)
                .await
                .map_err(guest_error),
        )
    }

    #[tracing::instrument(name = "records.acknowledge", level = "debug", skip_all)]
    async fn acknowledge(
        &mut self,
        collection: String,
        id: String,
        version: u64,
    ) -> RecordsResult<()> {
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        Ok(self
            .run
            .acknowledge(&collection, &id, version)
            .map_err(guest_error))
    }

    #[tracing::instrument(name = "records.annotations", level = "debug", skip_all)]
    async fn annotations(
        &mut self,
        collection: String,
        id: String,
    ) -> RecordsResult<wit::RecordAnnotations> {
        Ok(RecordsCapability::annotations(self, &collection, &id)
            .await
            .map_err(guest_error))
    }

    #[tracing::instrument(name = "records.annotate", level = "debug", skip_all)]
    async fn annotate(
        &mut self,
        collection: String,
        id: String,
        change: wit::AnnotationChange,
    ) -> RecordsResult<()> {
        let change = match change {
            wit::AnnotationChange::ExternalRef(r) => AnnotationChange::ExternalRef(r),
            wit::AnnotationChange::Note(n) => AnnotationChange::Note(n),
            wit::AnnotationChange::Flag(f) => AnnotationChange::Flag(f),
        };
        Ok(RecordsCapability::annotate(self, &collection, &id, change)
            .await
            .map_err(guest_error))
    }
}
