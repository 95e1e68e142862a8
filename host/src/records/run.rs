//! One run's use of the tenant's records, without I/O: what its
//! installation was granted, the writes, acknowledgements and annotations it
//! has made so far (its [`RecordEffects`], committed with the run or not at
//! all), and the caps on them. The records capability asks it before every
//! call and reads the store itself.

use std::collections::{HashMap, HashSet};

use super::MAX_BODY_BYTES;

use crate::manifest::DataSection;
use crate::storage::{
    AnnotationChange, RecordAck, RecordAnnotation, RecordEffects, RecordWrite, StoredRecord,
};

/// The most bytes of record bodies and annotations one run may write.
pub const MAX_RUN_BYTES: usize = 64 << 20;
/// The longest note, external reference or flag, in bytes.
pub const MAX_ANNOTATION_BYTES: usize = 4096;
/// The most record changes (writes, acknowledgements, annotations) a
/// manifest may allow one run (`[limits] record_changes`).
pub const MAX_RECORD_CHANGES: u32 = 100_000;
/// The most notes an installation keeps on one record.
pub const MAX_NOTES: usize = 100;
/// The most records a page of the change feed or the pending set holds.
pub const MAX_PAGE: usize = 1000;
/// The most bytes of bodies a page holds (less for a guest with less
/// memory: see [`RunRecords::new`]); a record larger than that comes alone.
pub const MAX_PAGE_BYTES: usize = 8 << 20;

/// Why a records call failed, as the guest is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// Not one of the host's collections; the message lists them.
    #[error("{0}")]
    UnknownCollection(String),
    /// The installation was not granted this access.
    #[error("{0}")]
    NotGranted(String),
    /// Not JSON, or not valid for the collection's schema.
    #[error("{0}")]
    Invalid(String),
    /// A bad id, cursor or annotation.
    #[error("{0}")]
    InvalidArgument(String),
    /// Over a size or count cap.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The store failed.
    #[error("{0}")]
    Unavailable(String),
}

/// The collections an installation may read and write, as approved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataGrants {
    reads: HashSet<String>,
    writes: HashSet<String>,
}

impl DataGrants {
    /// The grants of a manifest's (or an approval's) `[data]`.
    pub fn of(data: &DataSection) -> Self {
        Self {
            reads: data.reads.iter().cloned().collect(),
            writes: data.writes.iter().cloned().collect(),
        }
    }

    fn check(granted: &HashSet<String>, what: &str, collection: &str) -> Result<(), RecordsError> {
        if !super::is_collection(collection) {
            return Err(RecordsError::UnknownCollection(super::unknown_collection(
                collection,
            )));
        }
        if !granted.contains(collection) {
            return Err(RecordsError::NotGranted(format!(
                "this installation may not {what} `{collection}`: the manifest's [data] {what}s \
                 does not list it, or the operator did not approve it"
            )));
        }
        Ok(())
    }

    /// Whether `collection` may be read (and acknowledged and annotated).
    pub fn check_read(&self, collection: &str) -> Result<(), RecordsError> {
        Self::check(&self.reads, "read", collection)
    }

    /// Whether `collection` may be written.
    pub fn check_write(&self, collection: &str) -> Result<(), RecordsError> {
        Self::check(&self.writes, "write", collection)
    }
}

/// Checks a record id ([`super::check_record_id`]), as the guest is told.
pub fn check_record_id(id: &str) -> Result<(), RecordsError> {
    super::check_record_id(id).map_err(RecordsError::InvalidArgument)
}

/// Whether `c` is an invisible character that changes how the text
/// around it is shown (direction overrides and isolates, zero-width marks):
/// in an annotation it could make an operator's listing lie.
fn reorders_text(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Reads a page cursor this host gave (a version); none is the start.
pub fn parse_cursor(cursor: Option<&str>) -> Result<i64, RecordsError> {
    match cursor {
        None => Ok(0),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| RecordsError::InvalidArgument("not a cursor this host gave".into())),
    }
}

/// The cursor after `record`.
pub fn cursor_after(record: &StoredRecord) -> String {
    record.version.to_string()
}

/// One run's records: its grants, its effects so far and their caps.
#[derive(Debug)]
pub struct RunRecords {
    grants: DataGrants,
    effects: RecordEffects,
    /// Where the latest write of this run to each (collection, id) is in
    /// `effects.writes` (bodies are held once).
    own_writes: HashMap<(String, String), usize>,
    /// The highest version this run acknowledged of each (collection, id).
    acked: HashMap<(String, String), i64>,
    /// Where this run's annotation changes to each (collection, id) are in
    /// `effects.annotations`, in order: reading one record's changes, or
    /// counting its notes, does not walk every change of the run.
    own_annotations: HashMap<(String, String), Vec<usize>>,
    /// Writes, acknowledgements and annotations made, against `max_changes`.
    changes: usize,
    max_changes: usize,
    /// Bytes of bodies and annotations written, against [`MAX_RUN_BYTES`].
    bytes: usize,
    /// The most bytes of bodies one page of records holds.
    page_bytes: usize,
}

impl RunRecords {
    /// A run with `grants`, allowed `max_changes` writes, acknowledgements
    /// and annotations in all, whose guest has `memory_bytes` of memory: a
    /// page of records it reads holds at most a quarter of that, and at
    /// most [`MAX_PAGE_BYTES`].
    pub fn new(grants: DataGrants, max_changes: usize, memory_bytes: usize) -> Self {
        Self {
            grants,
            effects: RecordEffects::default(),
            own_writes: HashMap::new(),
            acked: HashMap::new(),
            own_annotations: HashMap::new(),
            changes: 0,
            max_changes,
            bytes: 0,
            page_bytes: (memory_bytes / 4).clamp(1, MAX_PAGE_BYTES),
        }
    }

    /// The most bytes of bodies one page of records holds for this run.
    pub fn page_bytes(&self) -> usize {
        self.page_bytes
    }

    /// The grants.
    pub fn grants(&self) -> &DataGrants {
        &self.grants
    }

    /// Counts one more change of `bytes`, if within the caps.
    fn spend(&mut self, bytes: usize) -> Result<(), RecordsError> {
        if self.changes >= self.max_changes {
            return Err(RecordsError::QuotaExceeded(format!(
                "this run has made its {} record changes (manifest [limits] record_changes)",
                self.max_changes
            )));
        }
        if self.bytes.saturating_add(bytes) > MAX_RUN_BYTES {
            return Err(RecordsError::QuotaExceeded(format!(
                "this run's record writes would pass {} MiB",
                MAX_RUN_BYTES >> 20
            )));
        }
        self.changes += 1;
        self.bytes += bytes;
        Ok(())
    }

    /// Puts `body` (JSON text) as record `id` of `collection`, after the
    /// grant, the id, the size and the collection's schema are checked.
    pub fn put(&mut self, collection: &str, id: &str, body: String) -> Result<(), RecordsError> {
        self.grants.check_write(collection)?;
        check_record_id(id)?;
        if body.len() > MAX_BODY_BYTES {
            return Err(RecordsError::QuotaExceeded(format!(
                "a record body is at most {} MiB",
                MAX_BODY_BYTES >> 20
            )));
        }
        let value: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| RecordsError::Invalid(format!("not JSON: {e}")))?;
        super::validate_value(collection, &value).map_err(RecordsError::Invalid)?;
        super::check_id(id, &value).map_err(RecordsError::Invalid)?;
        // Kept compact: one line, whatever the guest's layout, so an export
        // is one record per line.
        let body = serde_json::to_string(&value).unwrap_or(body);
        self.spend(body.len() + collection.len() + id.len())?;
        self.write(collection, id, Some(body));
        Ok(())
    }

    /// Deletes record `id` of `collection`.
    pub fn delete(&mut self, collection: &str, id: &str) -> Result<(), RecordsError> {
        self.grants.check_write(collection)?;
        check_record_id(id)?;
        self.spend(collection.len() + id.len())?;
        self.write(collection, id, None);
        Ok(())
    }

    fn write(&mut self, collection: &str, id: &str, body: Option<String>) {
        let key = (collection.to_string(), id.to_string());
        self.own_writes.insert(key, self.effects.writes.len());
        self.effects.writes.push(RecordWrite {
            collection: collection.to_string(),
            id: id.to_string(),
            body,
        });
    }

    /// This run's own latest write to the record, if it made one: the
    /// body, or none for a delete.
    pub fn own_write(&self, collection: &str, id: &str) -> Option<Option<&str>> {
        self.own_writes
            .get(&(collection.to_string(), id.to_string()))
            .map(|at| self.effects.writes[*at].body.as_deref())
    }

    /// Acknowledges `version` of the record (the store keeps at most the
    /// record's version when the run commits).
    pub fn acknowledge(
        &mut self,
        collection: &str,
        id: &str,
        version: i64,
    ) -> Result<(), RecordsError> {
        self.grants.check_read(collection)?;
        check_record_id(id)?;
        if version < 1 {
            return Err(RecordsError::InvalidArgument(
                "acknowledge a committed version (1 or more)".into(),
            ));
        }
        self.spend(collection.len() + id.len())?;
        let acked = self
            .acked
            .entry((collection.to_string(), id.to_string()))
            .or_insert(version);
        *acked = (*acked).max(version);
        self.effects.acks.push(RecordAck {
            collection: collection.to_string(),
            id: id.to_string(),
            version,
        });
        Ok(())
    }

    /// Whether this run acknowledged `record` at its version or later.
    pub fn acked_in_run(&self, record: &StoredRecord) -> bool {
        self.acked
            .get(&(record.collection.clone(), record.id.clone()))
            .is_some_and(|v| *v >= record.version)
    }

    /// Changes the installation's annotations on the record, which has
    /// `stored_notes` notes stored already.
    pub fn annotate(
        &mut self,
        collection: &str,
        id: &str,
        change: AnnotationChange,
        stored_notes: usize,
    ) -> Result<(), RecordsError> {
        self.grants.check_read(collection)?;
        check_record_id(id)?;
        let (text, newlines) = match &change {
            AnnotationChange::ExternalRef(t) | AnnotationChange::Flag(t) => {
                (t.as_deref().unwrap_or(""), false)
            }
            AnnotationChange::Note(t) => (t.as_str(), true),
        };
        let refused = |c: char| (c.is_control() && !(newlines && c == '\n')) || reorders_text(c);
        if text.len() > MAX_ANNOTATION_BYTES || text.chars().any(refused) {
            return Err(RecordsError::InvalidArgument(format!(
                "an annotation is at most {MAX_ANNOTATION_BYTES} bytes without control or \
                 direction characters (a note may have line breaks)"
            )));
        }
        if matches!(change, AnnotationChange::Note(_)) {
            let notes = stored_notes + self.own_notes(collection, id);
            if notes >= MAX_NOTES {
                return Err(RecordsError::QuotaExceeded(format!(
                    "a record keeps at most {MAX_NOTES} notes per installation"
                )));
            }
        }
        self.spend(text.len() + collection.len() + id.len())?;
        self.own_annotations
            .entry((collection.to_string(), id.to_string()))
            .or_default()
            .push(self.effects.annotations.len());
        self.effects.annotations.push(RecordAnnotation {
            collection: collection.to_string(),
            id: id.to_string(),
            change,
        });
        Ok(())
    }

    /// How many notes this run added to the record.
    fn own_notes(&self, collection: &str, id: &str) -> usize {
        self.own_annotations(collection, id)
            .filter(|c| matches!(c, AnnotationChange::Note(_)))
            .count()
    }

    /// The annotation changes this run made to the record, in order.
    pub fn own_annotations(
        &self,
        collection: &str,
        id: &str,
    ) -> impl Iterator<Item = &AnnotationChange> + '_ {
        self.own_annotations
            .get(&(collection.to_string(), id.to_string()))
            .into_iter()
            .flatten()
            .map(|at| &self.effects.annotations[*at].change)
    }

    /// Everything the run changed, for its record. Of several writes to
    /// one record only the last is kept (in the order of last writes), so
    /// a record put and then deleted in one run that did not exist before
    /// leaves nothing behind, and each record spends one version.
    pub fn into_effects(self) -> RecordEffects {
        let mut effects = self.effects;
        let mut seen = HashSet::new();
        let mut last_writes: Vec<RecordWrite> = effects
            .writes
            .into_iter()
            .rev()
            .filter(|w| seen.insert((w.collection.clone(), w.id.clone())))
            .collect();
        last_writes.reverse();
        effects.writes = last_writes;
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::MAX_ID_BYTES;

    fn grants(reads: &[&str], writes: &[&str]) -> DataGrants {
        DataGrants::of(&DataSection {
            reads: reads.iter().map(|s| s.to_string()).collect(),
            writes: writes.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn access_needs_the_grant_and_a_known_collection() {
        let mut run = RunRecords::new(grants(&["orders"], &["stock"]), 10, 64 << 20);
        assert!(matches!(
            run.put("orders", "1", r#"{"id":"1"}"#.into()),
            Err(RecordsError::NotGranted(_))
        ));
        assert!(matches!(
            run.acknowledge("stock", "1", 1),
            Err(RecordsError::NotGranted(_))
        ));
        assert!(matches!(
            run.put("widgets", "1", "{}".into()),
            Err(RecordsError::UnknownCollection(_))
        ));
        assert!(run.acknowledge("orders", "1", 1).is_ok());
        assert!(run.delete("stock", "gone").is_ok());
        assert_eq!(run.own_write("stock", "gone"), Some(None));
        assert_eq!(run.own_write("stock", "other"), None);
    }

    #[test]
    fn bad_ids_cursors_and_sizes_are_refused() {
        let mut run = RunRecords::new(grants(&["orders"], &["orders"]), 10, 64 << 20);
        for id in ["", "a\nb", &"x".repeat(MAX_ID_BYTES + 1)] {
            assert!(
                matches!(
                    run.delete("orders", id),
                    Err(RecordsError::InvalidArgument(_))
                ),
                "{id:?}"
            );
        }
        let huge = format!(r#"{{"id":"1","x":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        assert!(matches!(
            run.put("orders", "1", huge),
            Err(RecordsError::QuotaExceeded(_))
        ));
        assert!(matches!(
            run.put("orders", "1", "not json".into()),
            Err(RecordsError::Invalid(_))
        ));
        assert_eq!(parse_cursor(None), Ok(0));
        assert_eq!(parse_cursor(Some("42")), Ok(42));
        assert!(parse_cursor(Some("-1")).is_err());
        assert!(parse_cursor(Some("abc")).is_err());
        assert!(matches!(
            run.acknowledge("orders", "1", 0),
            Err(RecordsError::InvalidArgument(_))
        ));
    }

    #[test]
    fn the_run_is_capped_in_changes() {
        let mut run = RunRecords::new(grants(&["orders"], &["orders"]), 2, 64 << 20);
        run.delete("orders", "1").unwrap();
        run.acknowledge("orders", "1", 3).unwrap();
        assert!(matches!(
            run.annotate("orders", "1", AnnotationChange::Note("n".into()), 0),
            Err(RecordsError::QuotaExceeded(_))
        ));
        let effects = run.into_effects();
        assert_eq!(effects.writes.len(), 1);
        assert_eq!(effects.acks.len(), 1);
        assert!(effects.annotations.is_empty());
    }

    #[test]
    fn notes_are_capped_per_record_and_only_notes_may_break_lines() {
        let mut run = RunRecords::new(grants(&["orders"], &[]), 1000, 64 << 20);
        let note = |t: &str| AnnotationChange::Note(t.into());
        run.annotate("orders", "a", note("two\nlines"), MAX_NOTES - 2)
            .unwrap();
        run.annotate("orders", "a", note("last one"), MAX_NOTES - 2)
            .unwrap();
        assert!(matches!(
            run.annotate("orders", "a", note("one too many"), MAX_NOTES - 2),
            Err(RecordsError::QuotaExceeded(_))
        ));
        // Another record has room of its own.
        run.annotate("orders", "b", note("fine"), 0).unwrap();
        for change in [
            AnnotationChange::Flag(Some("a\nforged line".into())),
            AnnotationChange::ExternalRef(Some("x\u{202e}y".into())),
            AnnotationChange::Note("bell\u{7}".into()),
        ] {
            assert!(
                matches!(
                    run.annotate("orders", "c", change.clone(), 0),
                    Err(RecordsError::InvalidArgument(_))
                ),
                "{change:?}"
            );
        }
    }

    #[test]
    fn only_the_last_write_to_a_record_is_kept() {
        let mut run = RunRecords::new(grants(&[], &["stock"]), 10, 64 << 20);
        let body = |q: u32| format!(r#"{{"id":"a","sku":"a","quantity":{q}}}"#);
        run.put("stock", "a", body(1)).unwrap();
        run.put("stock", "b", r#"{"id":"b","sku":"b","quantity":1}"#.into())
            .unwrap();
        run.put("stock", "a", body(2)).unwrap();
        run.delete("stock", "b").unwrap();
        let writes = run.into_effects().writes;
        let kept: Vec<(&str, bool)> = writes
            .iter()
            .map(|w| (w.id.as_str(), w.body.is_some()))
            .collect();
        assert_eq!(kept, [("a", true), ("b", false)]);
        let kept: serde_json::Value =
            serde_json::from_str(writes[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(kept["quantity"], 2);
    }

    #[test]
    fn an_ack_in_the_run_hides_that_version_and_older_only() {
        let mut run = RunRecords::new(grants(&["orders"], &[]), 10, 64 << 20);
        run.acknowledge("orders", "a", 5).unwrap();
        let record = |version| StoredRecord {
            collection: "orders".into(),
            id: "a".into(),
            version,
            updated_at: 0,
            writer: "platform".into(),
            body: Some("{}".into()),
        };
        assert!(run.acked_in_run(&record(5)));
        assert!(run.acked_in_run(&record(4)));
        assert!(!run.acked_in_run(&record(6)));
    }
}
