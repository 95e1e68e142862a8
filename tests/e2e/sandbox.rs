//! The sandbox, proven with `plugins/misbehaving`: each misbehaviour is
//! stopped and recorded, its storage writes are rolled back, and the same
//! host then runs a well-behaved plugin successfully.

use airlock::egress::Decision;
use airlock::runs::{RunEnd, RunReport, Severity};

use crate::support::{Harness, installation, plugin, run};

const NOW: i64 = 1_795_000_000;

/// Runs `feed` of the misbehaving plugin, then checks the host still runs a
/// good plugin and that the misbehaving run's writes were discarded.
async fn misbehave(h: &Harness, feed: &str) -> RunReport {
    let bad = plugin("misbehaving");
    let inst = installation(&bad, "acme", "bad", &[]);
    let before = h.stored("acme", "bad", "count").await;
    let report = run(h, &bad, &inst, feed, NOW).await;

    let good = plugin("hello");
    let hello = installation(&good, "acme", "hello", &[]);
    let after = run(h, &good, &hello, "greet", NOW).await;
    assert_eq!(
        after.severity(),
        Severity::Ok,
        "host still healthy after `{feed}`: {:?}",
        after.end
    );
    if !report.severity().commits() {
        assert_eq!(
            h.stored("acme", "bad", "count").await,
            before,
            "`{feed}` wrote storage that was not rolled back"
        );
        assert_eq!(h.stored("acme", "bad", "poison").await, None);
    }
    report
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    let h = Harness::new();
    let report = misbehave(&h, "spin").await;
    assert_eq!(report.end, RunEnd::TimedOut { after_secs: 2 });
    assert_eq!(report.severity(), Severity::Error);
    assert!(report.duration_ms >= 2000, "{}", report.duration_ms);
}

#[tokio::test]
async fn memory_growth_is_stopped_at_the_cap() {
    let h = Harness::new();
    let report = misbehave(&h, "hog").await;
    assert_eq!(
        report.end,
        RunEnd::MemoryLimit {
            limit_bytes: 32 << 20
        }
    );
    // The report's peak is what the instance was granted at most: close to
    // the cap it was stopped at, never over it.
    assert!(
        report.peak_memory_bytes > 16 << 20 && report.peak_memory_bytes <= 32 << 20,
        "peak {}",
        report.peak_memory_bytes
    );
}

#[tokio::test]
async fn a_trap_is_recorded_with_the_panic_message() {
    let h = Harness::new();
    let report = misbehave(&h, "trap").await;
    assert!(
        matches!(report.end, RunEnd::Trapped { .. }),
        "{:?}",
        report.end
    );
    assert!(
        report.stderr.contains("deliberate panic in feed `trap`"),
        "stderr: {}",
        report.stderr
    );
}

#[tokio::test]
async fn a_log_and_output_flood_is_capped() {
    let h = Harness::new();
    let report = misbehave(&h, "flood").await;
    assert_eq!(report.severity(), Severity::Ok);
    assert_eq!(report.log.len(), 1000);
    assert_eq!(report.log_dropped, 99_000);
    assert!(
        report
            .log
            .iter()
            .all(|l| l.message.len() <= 4096 + '…'.len_utf8())
    );
    assert!(report.stdout.len() <= 64 << 10);
    assert_eq!(report.output_dropped_bytes, 2_000 * 10_001 - (64 << 10));
}

#[tokio::test]
async fn requests_to_hosts_not_granted_are_denied_with_the_rule() {
    let h = Harness::new();
    let report = misbehave(&h, "sneak").await;
    assert_eq!(report.severity(), Severity::Ok, "{:?}", report.end);
    let expected = [
        ("https://evil.example/steal", "no-matching-entry"),
        (
            "https://api.allowed.test.evil.example/",
            "no-matching-entry",
        ),
        ("https://evilapi.allowed.test/", "no-matching-entry"),
        ("http://169.254.169.254/latest/meta-data/", "ip-literal"),
        ("https://api.allowed.test@evil.example/", "userinfo"),
        ("http://api.allowed.test/", "scheme"),
        ("https://api.allowed.test:8443/", "port"),
        ("https://0x7f.1/", "ip-literal"),
        ("https://[::ffff:127.0.0.1]/", "ip-literal"),
        ("file:///etc/passwd", "scheme"),
    ];
    for (url, rule) in expected {
        let line = format!("{url} -> denied {rule}");
        assert!(
            report.log.iter().any(|l| l.message == line),
            "missing `{line}` in {:#?}",
            report.log
        );
    }
    assert!(
        report
            .log
            .iter()
            .any(|l| l.message == "host header -> denied header")
    );
    assert!(matches!(report.end, RunEnd::Returned { items: 11, .. }));
    assert_eq!(report.http.len(), 11, "every attempt is audited");
    assert!(
        report
            .http
            .iter()
            .all(|c| matches!(c.decision, Decision::Denied { .. })),
        "nothing was sent: {:#?}",
        report.http
    );
}

#[tokio::test]
async fn a_guest_has_no_environment_arguments_or_files() {
    let h = Harness::new();
    let report = misbehave(&h, "probe").await;
    let log: Vec<&str> = report.log.iter().map(|l| l.message.as_str()).collect();
    assert!(log.contains(&"env vars: 0"), "{log:?}");
    assert!(log.contains(&"args: 0"), "{log:?}");
    for path in ["/", ".", "/etc/passwd"] {
        let line = log
            .iter()
            .find(|l| l.starts_with(&format!("fs {path}:")))
            .unwrap();
        assert!(line.contains("refused"), "{line}");
    }
}

#[tokio::test]
async fn writes_of_failed_runs_are_rolled_back() {
    let h = Harness::new();
    let bad = plugin("misbehaving");
    let inst = installation(&bad, "acme", "bad", &[]);
    assert_eq!(
        run(&h, &bad, &inst, "count", NOW).await.end.summary(),
        "run 1"
    );

    let trapped = misbehave(&h, "write-then-trap").await;
    assert!(!trapped.committed);
    let keys: Vec<&str> = trapped
        .storage_discarded
        .iter()
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(keys, ["count", "poison"]);

    let errored = misbehave(&h, "write-then-error").await;
    assert_eq!(errored.severity(), Severity::Error);
    assert!(!errored.committed);

    assert_eq!(
        run(&h, &bad, &inst, "count", NOW).await.end.summary(),
        "run 2"
    );
}

#[tokio::test]
async fn a_checkpoint_keeps_work_done_before_a_trap() {
    let h = Harness::new();
    let report = misbehave(&h, "checkpoint-then-trap").await;
    assert!(matches!(report.end, RunEnd::Trapped { .. }));
    assert_eq!(
        h.stored("acme", "bad", "checkpointed").await.as_deref(),
        Some("kept")
    );
    assert_eq!(h.stored("acme", "bad", "after-checkpoint").await, None);
}

/// A guest's checkpoint waits for a write lock another process holds
/// without holding up the runtime's only worker: other work goes on, and the
/// checkpoint lands once the lock is free.
#[test]
fn a_checkpoint_stalled_by_a_held_lock_stalls_its_run_not_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("airlock.db");
    let store = std::sync::Arc::new(airlock::SqliteStore::open(&path).unwrap());
    let host = airlock::Airlock::new(store, crate::support::test_options()).unwrap();
    let host = std::sync::Arc::new(host);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let bad = plugin("misbehaving");
        host.load(&bad).unwrap(); // compiled before the lock is taken
        // Another process's transaction holds the write lock.
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let running = tokio::spawn({
            let host = host.clone();
            async move {
                let inst = installation(&bad, "acme", "bad", &[]);
                let request = airlock::runs::RunRequest {
                    feed: "checkpoint-then-trap".into(),
                    trigger: airlock::runs::Trigger::Manual,
                    scheduled_at: NOW,
                    attempt: 1,
                };
                host.run_feed(&bad, &inst, request).await
            }
        });
        // Give the run time to reach its checkpoint (no assertion depends
        // on how long anything takes).
        std::thread::sleep(std::time::Duration::from_millis(300));
        let other = tokio::spawn(async { "done" });
        assert_eq!(
            other.await.unwrap(),
            "done",
            "the worker runs other tasks while the checkpoint waits"
        );
        assert!(!running.is_finished(), "the checkpoint is still waiting");
        holder.execute_batch("ROLLBACK").unwrap();
        let report = running.await.unwrap().unwrap();
        assert!(
            matches!(report.end, RunEnd::Trapped { .. }),
            "{:?}",
            report.end
        );
    });
    let view = airlock::storage::RunStorage::new(
        host.store().clone(),
        airlock::storage::Scope {
            tenant: "acme".into(),
            installation: "bad".into(),
        },
        Default::default(),
    );
    assert_eq!(
        runtime.block_on(view.get("checkpointed")).unwrap(),
        Some(b"kept".to_vec())
    );
}

#[tokio::test]
async fn tenants_and_installations_do_not_share_storage() {
    let h = Harness::new();
    let p = plugin("hello");
    for (tenant, id, runs) in [("a", "x", 2), ("b", "x", 1), ("a", "y", 3)] {
        let inst = installation(&p, tenant, id, &[]);
        for _ in 0..runs {
            run(&h, &p, &inst, "greet", NOW).await;
        }
    }
    assert_eq!(h.stored("a", "x", "runs").await.as_deref(), Some("2"));
    assert_eq!(h.stored("b", "x", "runs").await.as_deref(), Some("1"));
    assert_eq!(h.stored("a", "y", "runs").await.as_deref(), Some("3"));
}
