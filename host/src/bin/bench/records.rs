//! `airlock-bench --records N`: the tenant's shared records at scale, on a
//! SQLite file.
//!
//! - Writing: N orders imported from a JSONL file (`records import`: every
//!   line checked against the schema, then written in batches of 1,000),
//!   the same written straight through the store in batches of 1,000, and,
//!   as the baseline, the same bodies written as key-value pairs in batches
//!   of the same size (the store's simplest write path).
//! - Pending: one consumer has acknowledged all but 1 % of them; how long
//!   the first page of its pending set takes, and a walk of the whole set
//!   with the cursor, against a walk of the change feed (every record, no
//!   acknowledgement join) as the baseline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::SqliteStore;
use airlock::storage::{
    KvBackend, PLATFORM_WRITER, PageLimit, RecordAck, RecordEffects, RecordPage, RecordStore,
    RecordWrite, RunEffects, RunLedger, RunRow, Scope, StorageError, TenantRow,
};

/// Records per write and per page, as the import and a connector use them.
const BATCH: usize = 1000;

fn order(i: usize) -> String {
    format!(
        r#"{{"id":"o-{i}","number":"{i}","status":"processing","currency":"GBP","placed_at":"2026-11-25T10:00:00Z","customer":{{"email":"c{i}@example.com","name":"Customer {i}"}},"lines":[{{"id":"1","sku":"sku-{sku}","description":"Item {sku}","quantity":2,"unit_price":"9.99"}}],"totals":{{"total":"19.98"}}}}"#,
        sku = i % 977
    )
}

fn run_row(installation: &str) -> RunRow {
    RunRow {
        tenant: "bench".into(),
        installation: installation.into(),
        plugin_id: "bench".into(),
        plugin_version: "0".into(),
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
    }
}

/// A page of the walks: [`BATCH`] records.
const PAGE: PageLimit = PageLimit {
    records: BATCH,
    bytes: usize::MAX,
};

/// Reads every page `page_after` gives, from the start, following its
/// cursor; returns how many records there were.
async fn walk<F, Fut>(mut page_after: F) -> anyhow::Result<usize>
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = Result<RecordPage, StorageError>>,
{
    let (mut after, mut seen) = (0, 0);
    loop {
        let page = page_after(after).await?;
        seen += page.records.len();
        match page.records.last() {
            Some(last) if page.more => after = last.version,
            _ => return Ok(seen),
        }
    }
}

fn per_second(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// Measures writing `n` orders and querying the pending set.
pub async fn measure(n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(&dir.path().join("records.db"))?);
    for id in ["bench", "bench-raw"] {
        store.add_tenant(&TenantRow {
            id: id.into(),
            name: id.into(),
            created_at: 0,
        })?;
    }
    let bodies: Vec<String> = (0..n).map(order).collect();
    let bytes: usize = bodies.iter().map(String::len).sum();

    let file = dir.path().join("orders.jsonl");
    std::fs::write(&file, bodies.join("\n"))?;
    let started = Instant::now();
    let reader = std::io::BufReader::new(std::fs::File::open(&file)?);
    let imported =
        airlock::records::import::import_jsonl(&*store, "bench", "orders", reader, &mut |_| {})
            .await?;
    let import_took = started.elapsed();
    anyhow::ensure!(imported.records == n, "imported {}", imported.records);

    let started = Instant::now();
    for (chunk_at, chunk) in bodies.chunks(BATCH).enumerate() {
        let writes = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| RecordWrite {
                collection: "orders".into(),
                id: format!("o-{}", chunk_at * BATCH + i),
                body: Some(body.clone()),
            })
            .collect();
        RecordStore::write_records(&*store, "bench-raw", PLATFORM_WRITER, writes, 0).await?;
    }
    let records_took = started.elapsed();

    let scope = Scope {
        tenant: "bench".into(),
        installation: "kv-baseline".into(),
    };
    let started = Instant::now();
    for (chunk_at, chunk) in bodies.chunks(BATCH).enumerate() {
        let changes: Vec<(String, Option<Vec<u8>>)> = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                (
                    format!("o-{}", chunk_at * BATCH + i),
                    Some(body.as_bytes().to_vec()),
                )
            })
            .collect();
        store.kv_apply(&scope, &changes).await?;
    }
    let kv_took = started.elapsed();
    println!(
        "records  {n} orders ({} MiB of JSON): imported from JSONL (schema-checked) {:.0} \
         records/s; written through the store in batches of {BATCH} {:.0}/s; the same as \
         key-value pairs {:.0}/s; ratios to key-value: import {:.2}x, write {:.2}x the time",
        bytes >> 20,
        per_second(n, import_took),
        per_second(n, records_took),
        per_second(n, kv_took),
        import_took.as_secs_f64() / kv_took.as_secs_f64(),
        records_took.as_secs_f64() / kv_took.as_secs_f64()
    );

    // A consumer acknowledges all but every hundredth, in runs of 10,000.
    let acked: Vec<usize> = (0..n).filter(|i| i % 100 != 0).collect();
    for chunk in acked.chunks(10_000) {
        let acks = chunk
            .iter()
            .map(|i| RecordAck {
                collection: "orders".into(),
                id: format!("o-{i}"),
                version: *i as i64 + 1,
            })
            .collect();
        RunLedger::finish_run(
            &*store,
            RunEffects {
                run: run_row("xero"),
                kv_changes: Vec::new(),
                records: RecordEffects {
                    acks,
                    ..Default::default()
                },
                artifacts: Default::default(),
                http_calls: Vec::new(),
                settlement: None,
                settled_at: 0,
                webhook_delivery: None,
                kv_history: Default::default(),
            },
        )
        .await?;
    }

    let first_page = || async {
        RecordStore::pending_records(
            &*store,
            "bench",
            "xero",
            "orders",
            0,
            PageLimit::records(100),
        )
        .await
        .map(|p| p.records)
    };
    first_page().await?;
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        anyhow::ensure!(first_page().await?.len() == 100.min(n.div_ceil(100)));
    }
    let page_took = started.elapsed() / rounds;

    let started = Instant::now();
    let pending =
        walk(|after| RecordStore::pending_records(&*store, "bench", "xero", "orders", after, PAGE))
            .await?;
    let walk_took = started.elapsed();
    anyhow::ensure!(pending == n.div_ceil(100), "pending: {pending}");

    let started = Instant::now();
    let seen =
        walk(|after| RecordStore::record_changes(&*store, "bench", "orders", after, PAGE)).await?;
    let feed_took = started.elapsed();
    anyhow::ensure!(seen == n);
    println!(
        "pending  {n} orders, {pending} pending for one consumer: first page of 100 in {:.2} ms; \
         the whole set in pages of {BATCH}: {:.0} ms, against {:.0} ms to walk the change feed \
         of all {n} (ratio {:.2}x)",
        page_took.as_secs_f64() * 1e3,
        walk_took.as_secs_f64() * 1e3,
        feed_took.as_secs_f64() * 1e3,
        walk_took.as_secs_f64() / feed_took.as_secs_f64()
    );
    Ok(())
}
