//! Loading a tenant's records from a JSON Lines file (`airlock records
//! import`): all or nothing against bad content. It owns reading and
//! checking the file; the writes go through [`RecordStore::write_records`]
//! as the platform ([`PLATFORM_WRITER`]).
//!
//! Each line is one record's body, a JSON object whose `id` is the record's
//! id; blank lines are skipped. The file is read twice, streaming, so a file
//! of any size needs memory only for its ids:
//!
//! 1. every line is checked ([`check_jsonl`]): JSON, valid for the
//!    collection's schema, an id not seen on an earlier line. The errors are
//!    kept as `line N: /field: message`; after [`MAX_IMPORT_ERRORS`] reading
//!    stops. Any error refuses the import and nothing is written.
//! 2. the reader is rewound to where it started ([`Seek`]) and the lines
//!    are written in batches of [`BATCH`], one transaction each, with
//!    progress after each. Each line is checked again as it is written: if
//!    the file changed between the passes, the import stops with
//!    [`ImportError::Changed`], saying how many records were written
//!    already (only whole batches are).

use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, SeekFrom};

use serde_json::Value;

use crate::storage::{PLATFORM_WRITER, RecordStore, RecordWrite, StorageError};

use super::{MAX_BODY_BYTES, check_record_id, errors, is_collection};

/// Records written per transaction.
pub const BATCH: usize = 1_000;

/// After this many errors the check stops reading: the file is refused.
pub const MAX_IMPORT_ERRORS: usize = 20;

/// How far an import has got, reported after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    /// Records written so far.
    pub written: usize,
    /// Records in the file.
    pub total: usize,
}

/// What a check of a file found: it is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedFile {
    /// Records in it (lines that are not blank).
    pub records: usize,
    /// Lines read, blank ones included.
    pub lines: usize,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ImportSummary {
    /// Records written.
    pub records: usize,
    /// Transactions they were written in.
    pub batches: usize,
    /// The version the first record written was given (0 if none was).
    pub first_version: i64,
    /// The version the last record written was given (0 if none was).
    pub last_version: i64,
}

/// Why an import was refused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The collection is not one of [`super::COLLECTIONS`].
    #[error("{0}")]
    UnknownCollection(String),
    /// The tenant does not exist or was removed.
    #[error("no tenant `{0}`")]
    UnknownTenant(String),
    /// Lines are not valid records: nothing was written.
    #[error("{}", invalid_message(errors, *stopped))]
    Invalid {
        /// `line N: /field: message`, in file order.
        errors: Vec<String>,
        /// Whether reading stopped at [`MAX_IMPORT_ERRORS`] (there may be
        /// more).
        stopped: bool,
    },
    /// The file could not be read (or rewound).
    #[error("cannot read the file")]
    Read(#[source] std::io::Error),
    /// The file changed between the check and the writes: `written`
    /// records (whole batches) were written before `line`.
    #[error(
        "the file changed while it was imported: at line {line}, {reason}; {written} records \
         were written before it (whole batches of the checked file)"
    )]
    Changed {
        /// The line that differs from the checked file.
        line: usize,
        /// How it differs.
        reason: String,
        /// Records written before it.
        written: usize,
    },
    /// The store failed; `written` records (whole batches) were written
    /// before it did.
    #[error("the store failed after {written} records were written")]
    Storage {
        /// Records written before the failure.
        written: usize,
        /// The store's error.
        #[source]
        source: StorageError,
    },
}

fn invalid_message(errors: &[String], stopped: bool) -> String {
    let more = if stopped {
        format!(" (stopped after the first {MAX_IMPORT_ERRORS} errors)")
    } else {
        String::new()
    };
    format!(
        "the file is refused, nothing was written{more}:\n{}",
        errors.join("\n")
    )
}

/// One line as read: its text, too long to read, or not UTF-8.
enum Line {
    Text(String),
    TooLong,
    NotUtf8,
}

/// Reads the next line of `reader` (without its line ending); none at the
/// end. A line over [`MAX_BODY_BYTES`] is skipped to its end, not held.
fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<Line>> {
    buf.clear();
    let limit = MAX_BODY_BYTES as u64 + 2; // the body, "\r\n"
    let n = reader.by_ref().take(limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && n as u64 == limit {
        skip_to_line_end(reader)?;
        return Ok(Some(Line::TooLong));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    if buf.len() > MAX_BODY_BYTES {
        return Ok(Some(Line::TooLong));
    }
    Ok(Some(match std::str::from_utf8(buf) {
        Ok(text) => Line::Text(text.to_string()),
        Err(_) => Line::NotUtf8,
    }))
}

fn skip_to_line_end(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(());
        }
        if let Some(at) = available.iter().position(|&b| b == b'\n') {
            reader.consume(at + 1);
            return Ok(());
        }
        let all = available.len();
        reader.consume(all);
    }
}

/// A line's record: its id and body, or what is wrong with it (at most
/// `max` messages, without the line number).
fn parse_record(collection: &str, text: &str, max: usize) -> Result<(String, String), Vec<String>> {
    let value: Value = serde_json::from_str(text).map_err(|e| vec![format!("not JSON: {e}")])?;
    let problems = errors(collection, &value, max).map_err(|e| vec![e])?;
    if !problems.is_empty() {
        return Err(problems);
    }
    // The schema requires a string id.
    let id = value.get("id").and_then(Value::as_str).unwrap_or_default();
    check_record_id(id).map_err(|e| vec![format!("/id: {e}")])?;
    Ok((id.to_string(), text.to_string()))
}

/// Each id in a checked file and the line it is on.
type IdLines = HashMap<String, usize>;

/// Pass 1: checks every line of `reader` for `collection` without writing.
/// Returns the ids and the line each is on.
fn check_lines(
    collection: &str,
    reader: &mut impl BufRead,
) -> Result<(IdLines, CheckedFile), ImportError> {
    if !is_collection(collection) {
        return Err(ImportError::UnknownCollection(super::unknown_collection(
            collection,
        )));
    }
    let mut ids = IdLines::new();
    let mut found: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    let mut lines = 0;
    let mut stopped = false;
    while let Some(line) = next_line(reader, &mut buf).map_err(ImportError::Read)? {
        lines += 1;
        let left = MAX_IMPORT_ERRORS - found.len();
        let problems = match line {
            Line::TooLong => vec![format!("longer than {MAX_BODY_BYTES} bytes")],
            Line::NotUtf8 => vec!["not UTF-8 text".to_string()],
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => match parse_record(collection, &text, left) {
                Ok((id, _)) => match ids.get(&id) {
                    Some(first) => vec![format!(
                        "/id: {} is also the id on line {first}",
                        super::quoted(&id)
                    )],
                    None => {
                        ids.insert(id, lines);
                        continue;
                    }
                },
                Err(problems) => problems,
            },
        };
        found.extend(
            problems
                .into_iter()
                .take(left)
                .map(|p| format!("line {lines}: {p}")),
        );
        if found.len() >= MAX_IMPORT_ERRORS {
            // There may be more: say so unless the file ends here.
            stopped = next_line(reader, &mut buf)
                .map_err(ImportError::Read)?
                .is_some();
            break;
        }
    }
    if !found.is_empty() {
        return Err(ImportError::Invalid {
            errors: found,
            stopped,
        });
    }
    let records = ids.len();
    Ok((ids, CheckedFile { records, lines }))
}

/// Checks a JSON Lines file of `collection`'s records without writing
/// anything (pass 1 of [`import_jsonl`]; `airlock records import
/// --dry-run`). Reads on the calling thread: from async code, hand it a
/// reader over memory or call it off the worker.
pub fn check_jsonl(collection: &str, mut reader: impl BufRead) -> Result<CheckedFile, ImportError> {
    check_lines(collection, &mut reader).map(|(_, checked)| checked)
}

/// Imports a JSON Lines file of `collection`'s records into `tenant`'s, as
/// the platform: checks every line first and writes nothing unless all are
/// valid, then rewinds `reader` to where it was and writes the records in
/// batches of [`BATCH`] (each a transaction), calling `progress` after each.
/// See the module's documentation for the two passes.
///
/// The reading and checking happen in place on the calling worker, which a
/// multi-threaded runtime lets block (its other tasks move on).
pub async fn import_jsonl<R: BufRead + Seek>(
    store: &dyn RecordStore,
    tenant: &str,
    collection: &str,
    mut reader: R,
    progress: &mut (dyn FnMut(ImportProgress) + Send),
) -> Result<ImportSummary, ImportError> {
    if !is_collection(collection) {
        return Err(ImportError::UnknownCollection(super::unknown_collection(
            collection,
        )));
    }
    // Writing nothing checks the tenant exists, before reading anything.
    let now = chrono::Utc::now().timestamp();
    store
        .write_records(tenant, PLATFORM_WRITER, Vec::new(), now)
        .await
        .map_err(|e| storage_error(tenant, 0, e))?;
    let (ids, checked) = crate::blocking::in_place(|| {
        let start = reader.stream_position().map_err(ImportError::Read)?;
        let found = check_lines(collection, &mut reader)?;
        reader
            .seek(SeekFrom::Start(start))
            .map_err(ImportError::Read)?;
        Ok::<_, ImportError>(found)
    })?;
    let mut writer = BatchWriter {
        store,
        tenant,
        total: checked.records,
        summary: ImportSummary {
            records: 0,
            batches: 0,
            first_version: 0,
            last_version: 0,
        },
    };
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        let (batch, at_end) = crate::blocking::in_place(|| {
            read_batch(
                collection,
                &mut reader,
                &mut buf,
                &mut line_no,
                &ids,
                &writer,
            )
        })?;
        if !batch.is_empty() {
            writer.write(batch, progress).await?;
        }
        if at_end {
            break;
        }
    }
    if writer.summary.records != checked.records {
        return Err(ImportError::Changed {
            line: line_no,
            reason: format!(
                "it has {} records where {} were checked",
                writer.summary.records, checked.records
            ),
            written: writer.summary.records,
        });
    }
    Ok(writer.summary)
}

/// The writes of pass 2, and what they did so far.
struct BatchWriter<'a> {
    store: &'a dyn RecordStore,
    tenant: &'a str,
    total: usize,
    summary: ImportSummary,
}

impl BatchWriter<'_> {
    async fn write(
        &mut self,
        batch: Vec<RecordWrite>,
        progress: &mut (dyn FnMut(ImportProgress) + Send),
    ) -> Result<(), ImportError> {
        let count = batch.len();
        let now = chrono::Utc::now().timestamp();
        let versions = self
            .store
            .write_records(self.tenant, PLATFORM_WRITER, batch, now)
            .await
            .map_err(|e| storage_error(self.tenant, self.summary.records, e))?;
        let summary = &mut self.summary;
        if summary.first_version == 0 {
            summary.first_version = versions.first().copied().unwrap_or(0);
        }
        summary.last_version = versions.last().copied().unwrap_or(summary.last_version);
        summary.records += count;
        summary.batches += 1;
        progress(ImportProgress {
            written: summary.records,
            total: self.total,
        });
        Ok(())
    }
}

/// Reads the next batch of pass 2 (at most [`BATCH`] records), checking
/// each line again against what pass 1 saw; true when the file has ended.
fn read_batch(
    collection: &str,
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    line_no: &mut usize,
    ids: &IdLines,
    writer: &BatchWriter<'_>,
) -> Result<(Vec<RecordWrite>, bool), ImportError> {
    let mut batch = Vec::new();
    let changed = |line: usize, reason: String| ImportError::Changed {
        line,
        reason,
        written: writer.summary.records,
    };
    while batch.len() < BATCH {
        let Some(line) = next_line(reader, buf).map_err(ImportError::Read)? else {
            return Ok((batch, true));
        };
        *line_no += 1;
        let text = match line {
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => text,
            Line::TooLong | Line::NotUtf8 => {
                return Err(changed(*line_no, "it is not valid any more".into()));
            }
        };
        let (id, body) = parse_record(collection, &text, 1)
            .map_err(|problems| changed(*line_no, problems.join("; ")))?;
        if ids.get(&id) != Some(line_no) {
            return Err(changed(
                *line_no,
                format!("the id {} is not the one checked there", super::quoted(&id)),
            ));
        }
        batch.push(RecordWrite {
            collection: collection.to_string(),
            id,
            body: Some(body),
        });
    }
    Ok((batch, false))
}

fn storage_error(tenant: &str, written: usize, e: StorageError) -> ImportError {
    match e {
        StorageError::NotFound(_) => ImportError::UnknownTenant(tenant.to_string()),
        source => ImportError::Storage { written, source },
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::Cursor;
    use std::sync::Mutex;

    use super::*;
    use crate::storage::{AckRow, Annotations, PageLimit, RecordPage, SqliteStore, StoredRecord};

    /// The real SQLite store (in memory) with one tenant, `acme`, and a
    /// fault to inject: platform writes fail once this many have been made.
    pub(crate) struct TestStore {
        pub(crate) inner: SqliteStore,
        /// Fail the write after this many transactions.
        pub(crate) fail_after: Option<usize>,
        transactions: Mutex<usize>,
    }

    impl Default for TestStore {
        fn default() -> Self {
            let inner = SqliteStore::in_memory().unwrap();
            inner
                .add_tenant(&crate::storage::TenantRow {
                    id: "acme".into(),
                    name: "Acme".into(),
                    created_at: 0,
                })
                .unwrap();
            Self {
                inner,
                fail_after: None,
                transactions: Mutex::new(0),
            }
        }
    }

    impl TestStore {
        /// Every record of `acme`'s stock, tombstones included, by version.
        pub(crate) fn records(&self) -> Vec<StoredRecord> {
            self.inner
                .record_changes("acme", "stock", 0, PageLimit::records(usize::MAX >> 1))
                .unwrap()
                .records
        }
    }

    #[async_trait::async_trait]
    impl RecordStore for TestStore {
        async fn write_records(
            &self,
            tenant: &str,
            writer: &str,
            writes: Vec<RecordWrite>,
            now: i64,
        ) -> Result<Vec<i64>, StorageError> {
            {
                let mut transactions = self.transactions.lock().unwrap();
                if self.fail_after.is_some_and(|n| *transactions >= n) {
                    return Err(StorageError::Conflict("injected".into()));
                }
                *transactions += 1;
            }
            RecordStore::write_records(&self.inner, tenant, writer, writes, now).await
        }

        async fn record(
            &self,
            tenant: &str,
            collection: &str,
            id: &str,
        ) -> Result<Option<StoredRecord>, StorageError> {
            RecordStore::record(&self.inner, tenant, collection, id).await
        }

        async fn record_changes(
            &self,
            tenant: &str,
            collection: &str,
            after: i64,
            limit: PageLimit,
        ) -> Result<RecordPage, StorageError> {
            RecordStore::record_changes(&self.inner, tenant, collection, after, limit).await
        }

        async fn pending_records(
            &self,
            tenant: &str,
            consumer: &str,
            collection: &str,
            after: i64,
            limit: PageLimit,
        ) -> Result<RecordPage, StorageError> {
            RecordStore::pending_records(&self.inner, tenant, consumer, collection, after, limit)
                .await
        }

        async fn record_acks(
            &self,
            tenant: &str,
            collection: &str,
            id: &str,
        ) -> Result<Vec<AckRow>, StorageError> {
            RecordStore::record_acks(&self.inner, tenant, collection, id).await
        }

        async fn unack_record(
            &self,
            tenant: &str,
            consumer: &str,
            collection: &str,
            id: &str,
        ) -> Result<bool, StorageError> {
            RecordStore::unack_record(&self.inner, tenant, consumer, collection, id).await
        }

        async fn all_record_annotations(
            &self,
            tenant: &str,
            collection: &str,
            id: &str,
        ) -> Result<Vec<(String, Annotations)>, StorageError> {
            RecordStore::all_record_annotations(&self.inner, tenant, collection, id).await
        }

        async fn record_annotations(
            &self,
            tenant: &str,
            installation: &str,
            collection: &str,
            id: &str,
        ) -> Result<Annotations, StorageError> {
            RecordStore::record_annotations(&self.inner, tenant, installation, collection, id).await
        }
    }

    /// A stock record's line.
    pub(crate) fn stock_line(id: &str, quantity: i64) -> String {
        format!(r#"{{"id":"{id}","sku":"{id}","quantity":{quantity}}}"#)
    }

    fn file(lines: &[String]) -> Cursor<Vec<u8>> {
        Cursor::new(lines.join("\n").into_bytes())
    }

    async fn import(
        store: &TestStore,
        tenant: &str,
        collection: &str,
        reader: Cursor<Vec<u8>>,
    ) -> (Result<ImportSummary, ImportError>, Vec<ImportProgress>) {
        let mut seen = Vec::new();
        let result = import_jsonl(store, tenant, collection, reader, &mut |p| seen.push(p)).await;
        (result, seen)
    }

    /// The errors an import of `lines` is refused with (nothing written).
    async fn refused(lines: &[String]) -> (Vec<String>, bool) {
        let store = TestStore::default();
        let (result, _) = import(&store, "acme", "stock", file(lines)).await;
        assert!(store.records().is_empty(), "something was written");
        match result {
            Err(ImportError::Invalid { errors, stopped }) => (errors, stopped),
            other => panic!("not refused as invalid: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_valid_file_is_written_in_batches_with_progress() {
        let store = TestStore::default();
        let mut lines: Vec<String> = (0..2_500)
            .map(|i| stock_line(&format!("S{i}"), i))
            .collect();
        lines.insert(10, String::new());
        lines.insert(20, "   ".into());
        let (result, progress) = import(&store, "acme", "stock", file(&lines)).await;
        let summary = result.unwrap();
        assert_eq!(summary.records, 2_500);
        assert_eq!(summary.batches, 3);
        assert_eq!((summary.first_version, summary.last_version), (1, 2_500));
        assert_eq!(
            progress,
            [1_000, 2_000, 2_500].map(|written| ImportProgress {
                written,
                total: 2_500
            })
        );
        let records = store.records();
        assert_eq!(records.len(), 2_500);
        assert!(records.iter().all(|r| r.writer == PLATFORM_WRITER));
        assert_eq!(records[0].body.as_deref(), Some(lines[0].as_str()));
    }

    #[tokio::test]
    async fn crlf_line_endings_and_a_missing_final_newline_are_read() {
        let store = TestStore::default();
        let text = format!("{}\r\n\r\n{}", stock_line("A", 1), stock_line("B", 2));
        let (result, _) = import(&store, "acme", "stock", Cursor::new(text.into_bytes())).await;
        assert_eq!(result.unwrap().records, 2);
        let b = store.records()[1].clone();
        assert_eq!(b.body.as_deref(), Some(stock_line("B", 2).as_str()));
    }

    #[tokio::test]
    async fn each_bad_line_is_named_and_nothing_is_written() {
        let lines = vec![
            stock_line("A", 1),
            "{not json".into(),
            stock_line("B", -1),
            r#"{"sku":"C","quantity":1}"#.into(),
            stock_line("A", 2),
            "[1]".into(),
        ];
        let (errors, stopped) = refused(&lines).await;
        assert!(!stopped);
        let expected = [
            "line 2: not JSON",
            "line 3: /quantity: -1 is less than the minimum of 0",
            "line 4: /id: required but missing",
            "line 5: /id: \"A\" is also the id on line 1",
            "line 6: a record's body must be a JSON object",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, expected) in errors.iter().zip(expected) {
            assert!(error.starts_with(expected), "{error} (expected {expected})");
        }
    }

    #[tokio::test]
    async fn checking_stops_after_twenty_errors() {
        let lines: Vec<String> = (0..100).map(|i| stock_line(&format!("S{i}"), -1)).collect();
        let (errors, stopped) = refused(&lines).await;
        assert_eq!(errors.len(), MAX_IMPORT_ERRORS);
        assert!(stopped);
        assert!(
            errors[19].starts_with("line 20: /quantity"),
            "{}",
            errors[19]
        );
        let message = ImportError::Invalid { errors, stopped }.to_string();
        assert!(message.starts_with("the file is refused, nothing was written (stopped after the first 20 errors):\nline 1: "), "{message}");
    }

    #[tokio::test]
    async fn long_lines_and_bad_bytes_are_refused_by_line() {
        let long = format!(
            r#"{{"id":"L","sku":"L","quantity":1,"x":"{}"}}"#,
            "x".repeat(MAX_BODY_BYTES)
        );
        let mut bytes = [stock_line("A", 1), long, stock_line("B", 1)]
            .join("\n")
            .into_bytes();
        bytes.extend(b"\n\xff\xfe\n");
        let store = TestStore::default();
        let (result, _) = import(&store, "acme", "stock", Cursor::new(bytes)).await;
        let Err(ImportError::Invalid { errors, .. }) = result else {
            panic!("{result:?}");
        };
        assert_eq!(
            errors,
            [
                "line 2: longer than 1048576 bytes",
                "line 4: not UTF-8 text"
            ]
        );
    }

    #[tokio::test]
    async fn an_unknown_tenant_or_collection_is_refused_before_reading() {
        let store = TestStore::default();
        let (result, _) = import(&store, "nobody", "stock", file(&[stock_line("A", 1)])).await;
        assert!(matches!(result, Err(ImportError::UnknownTenant(t)) if t == "nobody"));
        let (result, _) = import(&store, "acme", "widgets", file(&[stock_line("A", 1)])).await;
        let error = result.unwrap_err();
        assert!(matches!(error, ImportError::UnknownCollection(_)));
        assert!(
            error.to_string().starts_with("no collection \"widgets\""),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_store_failure_says_how_many_records_were_written() {
        let store = TestStore {
            // The tenant check is the first transaction.
            fail_after: Some(2),
            ..TestStore::default()
        };
        let lines: Vec<String> = (0..1_500)
            .map(|i| stock_line(&format!("S{i}"), 1))
            .collect();
        let (result, progress) = import(&store, "acme", "stock", file(&lines)).await;
        assert!(
            matches!(result, Err(ImportError::Storage { written: 1_000, .. })),
            "{result:?}"
        );
        assert_eq!(progress.len(), 1);
    }

    /// A reader whose second pass sees other content, as if the file were
    /// edited between the passes.
    struct EditedBetweenPasses {
        first: Cursor<Vec<u8>>,
        second: Cursor<Vec<u8>>,
        rewound: bool,
    }

    impl std::io::Read for EditedBetweenPasses {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.rewound {
                self.second.read(out)
            } else {
                self.first.read(out)
            }
        }
    }

    impl BufRead for EditedBetweenPasses {
        fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
            if self.rewound {
                self.second.fill_buf()
            } else {
                self.first.fill_buf()
            }
        }
        fn consume(&mut self, n: usize) {
            if self.rewound {
                self.second.consume(n)
            } else {
                self.first.consume(n)
            }
        }
    }

    impl Seek for EditedBetweenPasses {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            if self.first.position() > 0 {
                self.rewound = true;
            }
            self.second.seek(pos)
        }
    }

    #[tokio::test]
    async fn a_file_edited_between_the_passes_stops_the_import() {
        let good: Vec<String> = (0..1_200)
            .map(|i| stock_line(&format!("S{i}"), 1))
            .collect();
        let mut edited = good.clone();
        edited[1_100] = stock_line("S1100", -5);
        let store = TestStore::default();
        let reader = EditedBetweenPasses {
            first: file(&good),
            second: file(&edited),
            rewound: false,
        };
        let mut seen = Vec::new();
        let result = import_jsonl(&store, "acme", "stock", reader, &mut |p| seen.push(p)).await;
        let Err(ImportError::Changed { line, written, .. }) = result else {
            panic!("{result:?}");
        };
        assert_eq!((line, written), (1_101, 1_000));
        assert_eq!(store.records().len(), 1_000);
    }

    #[test]
    fn a_dry_run_checks_without_a_store() {
        let lines = [stock_line("A", 1), String::new(), stock_line("B", 2)];
        let checked = check_jsonl("stock", file(&lines)).unwrap();
        assert_eq!(
            checked,
            CheckedFile {
                records: 2,
                lines: 3
            }
        );
        assert!(check_jsonl("stock", file(&[stock_line("A", -1)])).is_err());
    }
}
