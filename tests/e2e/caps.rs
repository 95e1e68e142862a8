//! Every per-run resource is capped, and a hostile guest proves each cap:
//! memory across several linear memories (a multi-memory component written
//! in WAT), the instance pool (a host failure, retried, not the guest's
//! trap), HTTP requests and their audit (`plugins/misbehaving`'s
//! `deny-loop`), and the installation's storage quota across checkpoints
//! (`fill`, `fill-keys`), and through standard wasi:http, a request body
//! streamed without end (`stream-body`) and many requests started at once
//! (`fan-out`), and resources held without end (`hoard`). After each, the host is alive and the next run of
//! a good plugin succeeds. The caps are listed in `docs/limits.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock::runs::{RunEnd, RunReport, Severity};
use airlock::storage::{KvBackend, KvUsage, Scope};
use airlock::{Airlock, AirlockOptions, Plugin, SqliteStore};

use crate::support::{installation, plugin, test_options};

const NOW: i64 = 1_795_000_000;

/// A host with these options on a fresh SQLite file whose path is known,
/// so a test can count the rows a run left behind.
struct Host {
    host: Airlock,
    store: Arc<SqliteStore>,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

impl Host {
    fn new(options: AirlockOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        let store = Arc::new(SqliteStore::open(&db).unwrap());
        let host = Airlock::new(store.clone(), options).unwrap();
        Self {
            host,
            store,
            db,
            _dir: dir,
        }
    }

    /// Runs `feed` of `plugin` as installation `id` of tenant `acme`.
    async fn run(&self, plugin: &Plugin, id: &str, feed: &str) -> RunReport {
        self.run_with(plugin, id, feed, &[]).await
    }

    /// [`Self::run`] with these config assignments.
    async fn run_with(
        &self,
        plugin: &Plugin,
        id: &str,
        feed: &str,
        config: &[String],
    ) -> RunReport {
        let inst = installation(plugin, "acme", id, config);
        let request = airlock::runs::RunRequest {
            feed: feed.into(),
            trigger: airlock::runs::Trigger::Manual,
            scheduled_at: NOW,
            attempt: 1,
        };
        self.host
            .run_feed(plugin, &inst, request)
            .await
            .expect("the host itself does not fail")
    }

    /// Checks the host still runs a well-behaved plugin.
    async fn still_healthy(&self, after: &str) {
        let report = self.run(&plugin("hello"), "hello", "greet").await;
        assert_eq!(
            report.severity(),
            Severity::Ok,
            "host still healthy after {after}: {:?}",
            report.end
        );
    }

    async fn usage(&self, id: &str) -> KvUsage {
        let scope = Scope {
            tenant: "acme".into(),
            installation: id.into(),
        };
        self.store.kv_usage(&scope).await.unwrap()
    }
}

fn log_has(report: &RunReport, line: &str) -> bool {
    report.log.iter().any(|l| l.message.contains(line))
}

/// The connector world's types and the lifts of `run` and `check`, for a
/// component in WAT whose core instance `$i` exports `memory`, `realloc`,
/// `run` and `check`.
const CONNECTOR_EXPORTS: &str = r#"
  (alias core export $i "memory" (core memory $mem))
  (alias core export $i "realloc" (core func $realloc))
  (alias core export $i "run" (core func $run-core))
  (alias core export $i "check" (core func $check-core))
  (type $mode' (enum "test" "live"))
  (export $mode "mode" (type $mode'))
  (type $trigger' (enum "schedule" "manual" "retry"))
  (export $trigger "trigger" (type $trigger'))
  (type $run-context' (record
    (field "tenant" string)
    (field "installation" string)
    (field "feed" string)
    (field "mode" $mode)
    (field "trigger" $trigger)
    (field "scheduled-at" s64)
    (field "attempt" u32)
    (field "last-success-at" (option s64))))
  (export $run-context "run-context" (type $run-context'))
  (type $status' (enum "ok" "info" "retry" "error"))
  (export $status "status" (type $status'))
  (type $outcome' (record
    (field "status" $status)
    (field "message" string)
    (field "items" u32)
    (field "retry-after-seconds" (option u32))))
  (export $outcome "outcome" (type $outcome'))
  (func $run (param "ctx" $run-context) (result $outcome)
    (canon lift (core func $run-core) (memory $mem) (realloc $realloc)))
  (export "run" (func $run))
  (func $check (result (result (error string)))
    (canon lift (core func $check-core) (memory $mem) (realloc $realloc)))
  (export "check" (func $check))
"#;

/// The core functions of the connector's exports; `run` runs `$grow`
/// (its body), then traps with `unreachable`.
fn connector_module(memories: &str, grow: &str) -> String {
    format!(
        r#"(core module $main
    (import "other" "grow" (func $grow-other))
    {memories}
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "run")
      (param i32 i32 i32 i32 i32 i32 i32 i32 i64 i32 i32 i64) (result i32)
      {grow}
      unreachable)
    (func (export "check") (result i32) (i32.const 0)))"#
    )
}

/// A connector component in WAT with two core instances, each with its own
/// linear memory: `run` grows its own memory by 20 MiB and has the other
/// instance grow its memory by 20 MiB, then traps. Each memory alone stays
/// under a 32 MiB cap; together they are over it.
fn two_instances_two_memories() -> String {
    let main = connector_module(
        r#"(memory (export "memory") 1)"#,
        "(drop (memory.grow (i32.const 320))) (call $grow-other)",
    );
    format!(
        r#"(component
  (core module $other
    (memory 1)
    (func (export "grow") (drop (memory.grow (i32.const 320)))))
  (core instance $o (instantiate $other))
  {main}
  (core instance $i (instantiate $main (with "other" (instance $o))))
  {CONNECTOR_EXPORTS})"#
    )
}

/// The same with both memories in one core module (multi-memory).
fn one_module_two_memories() -> String {
    let main = connector_module(
        r#"(memory (export "memory") 1) (memory $second 1)"#,
        "(drop (memory.grow 0 (i32.const 320))) (drop (memory.grow $second (i32.const 320)))",
    );
    format!(
        r#"(component
  (core module $other (func (export "grow")))
  (core instance $o (instantiate $other))
  {main}
  (core instance $i (instantiate $main (with "other" (instance $o))))
  {CONNECTOR_EXPORTS})"#
    )
}

/// A plugin directory holding `component` (WAT text: wasmtime compiles it
/// like a binary) and a manifest with a 32 MiB memory cap.
fn wat_plugin(dir: &Path, component: &str) -> Plugin {
    std::fs::write(
        dir.join("plugin.toml"),
        "[plugin]\nid = \"two-memories\"\nversion = \"0.1.0\"\nkind = \"test\"\n\n\
         [[feeds]]\nname = \"grow\"\ndirection = \"inbound\"\nschedule = \"0 0 * * * *\"\n\n\
         [limits]\nmemory_mb = 32\nrun_timeout_secs = 5\n",
    )
    .unwrap();
    // The binary form: the runtime refuses text, as it refuses any file
    // that is not a component binary.
    let binary = wat::parse_str(component).expect("valid WAT");
    std::fs::write(dir.join("plugin.wasm"), binary).unwrap();
    Plugin::load(dir).unwrap()
}

#[tokio::test]
async fn the_memory_cap_counts_every_linear_memory_of_the_instance() {
    let h = Host::new(test_options());
    let dir = tempfile::tempdir().unwrap();
    let two = wat_plugin(dir.path(), &two_instances_two_memories());
    let report = h.run(&two, "two", "grow").await;
    assert_eq!(
        report.end,
        RunEnd::MemoryLimit {
            limit_bytes: 32 << 20
        },
        "20 MiB in each of two memories is over a 32 MiB cap"
    );
    h.still_healthy("a guest with two memories").await;

    // Two memories in one core module are refused when loading, clearly.
    let dir = tempfile::tempdir().unwrap();
    let multi = wat_plugin(dir.path(), &one_module_two_memories());
    let err = h.host.load(&multi).err().expect("refused").to_string();
    assert!(err.contains("defined memories count of 2"), "{err}");
}

#[tokio::test]
async fn an_instance_over_the_pool_is_a_host_failure_to_retry() {
    let mut options = test_options();
    options.limits.max_concurrent_runs = 1;
    let h = Host::new(options);
    let bad = plugin("misbehaving");
    // Two runs at once on a pool of one: both guests are well behaved
    // (`write-then-wait` computes for 1.2 s and returns ok).
    let (a, b) = tokio::join!(
        h.run(&bad, "one", "write-then-wait"),
        h.run(&bad, "two", "write-then-wait")
    );
    let (ran, refused) = if a.severity() == Severity::Ok {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(ran.severity(), Severity::Ok, "{:?}", ran.end);
    assert!(
        matches!(refused.end, RunEnd::HostFailure { .. }),
        "not the guest's failure: {:?}",
        refused.end
    );
    assert_eq!(
        refused.severity(),
        Severity::Retry,
        "a host failure is retried"
    );
    let summary = refused.end.summary();
    assert!(
        summary.starts_with("host failure: cannot instantiate the component")
            && summary.contains("concurrent limit"),
        "{summary}"
    );
    assert!(
        refused.storage_committed.is_empty(),
        "the refused run ran nothing"
    );
    h.still_healthy("an exhausted pool").await;
}

#[tokio::test]
async fn a_guest_looping_on_a_denied_url_hits_the_request_and_audit_caps() {
    let h = Host::new(test_options());
    let report = h.run(&plugin("misbehaving"), "loop", "deny-loop").await;
    assert_eq!(report.severity(), Severity::Ok, "{:?}", report.end);
    // The manifest allows 5,000 requests; each was denied (and answered).
    assert!(
        matches!(report.end, RunEnd::Returned { items: 5000, .. }),
        "{:?}",
        report.end
    );
    assert!(
        log_has(
            &report,
            "stopped after 5000 denials: Err(HttpError::InvalidRequest(\"not sent: the run \
             reached its limit of 5000 HTTP requests\"))"
        ),
        "{:#?}",
        report.log
    );
    assert_eq!(report.http.len(), 1000, "the audit keeps 1,000 records");
    assert_eq!(
        report.http_dropped, 4001,
        "4,000 denials over the audit cap and the refused request are counted"
    );
    let run_id = report.run_id.unwrap();
    let rows: i64 = rusqlite::Connection::open(&h.db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM egress_audit WHERE run_id = ?1",
            [run_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 1000, "the audit table holds what the report holds");
    h.still_healthy("a request loop").await;
}

#[tokio::test]
async fn write_checkpoint_repeat_stops_at_the_installation_quota() {
    let h = Host::new(test_options());
    let bad = plugin("misbehaving");
    // 64 KiB values, a checkpoint after each, against `storage_mb = 1`.
    let first = h.run(&bad, "fill", "fill").await;
    assert!(
        matches!(first.end, RunEnd::Returned { items: 15, .. }),
        "{:?} {:#?}",
        first.end,
        first.log
    );
    assert!(
        log_has(
            &first,
            "QuotaExceeded(\"the installation may store at most 1048576 bytes"
        ),
        "{:#?}",
        first.log
    );
    let used = h.usage("fill").await;
    assert!(used.bytes <= 1 << 20, "{used:?}");
    assert_eq!(used.keys, 15);
    // The next run finds the quota used up: it cannot add to it.
    let second = h.run(&bad, "fill", "fill").await;
    assert!(
        matches!(second.end, RunEnd::Returned { items: 0, .. }),
        "{:?}",
        second.end
    );
    assert_eq!(h.usage("fill").await, used);

    // Tiny values: the key quota (`storage_keys = 20`) stops it.
    let keys = h.run(&bad, "fill-keys", "fill-keys").await;
    assert!(
        matches!(keys.end, RunEnd::Returned { items: 20, .. }),
        "{:?}",
        keys.end
    );
    assert!(
        log_has(&keys, "the installation may store at most 20 keys"),
        "{:#?}",
        keys.log
    );
    assert_eq!(h.usage("fill-keys").await.keys, 20);
    assert_eq!(
        h.usage("other").await.keys,
        0,
        "the quota is per installation"
    );
    h.still_healthy("filling storage").await;
}

#[tokio::test]
async fn a_request_body_streamed_without_end_is_cut_at_the_cap() {
    let h = Host::new(test_options());
    let report = h.run(&plugin("misbehaving"), "stream", "stream-body").await;
    assert_eq!(report.severity(), Severity::Ok, "{:?}", report.end);
    let line = &report
        .log
        .iter()
        .find(|l| l.message.starts_with("streamed "))
        .unwrap_or_else(|| panic!("{:#?}", report.log))
        .message;
    assert!(
        line.contains("answer: ErrorCode::HttpRequestBodySize(Some(8388608))"),
        "the guest is told the body is over 8 MiB: {line}"
    );
    let streamed: u64 = line["streamed ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (8 << 20..9 << 20).contains(&streamed),
        "the host stopped reading just past 8 MiB, not at the guest's 256: {streamed}"
    );
    assert!(
        report.http.is_empty(),
        "nothing was sent: {:#?}",
        report.http
    );
    h.still_healthy("an endless request body").await;
}

#[tokio::test]
async fn resources_held_without_end_stop_the_run_at_the_cap() {
    let h = Host::new(test_options());
    let report = h.run(&plugin("misbehaving"), "hoard", "hoard").await;
    assert!(
        matches!(report.end, RunEnd::Trapped { .. }),
        "{:?}",
        report.end
    );
    let summary = report.end.summary();
    assert!(
        summary.contains("resource table has no free keys"),
        "{summary}"
    );
    let last = report.log.last().map(|l| l.message.as_str());
    assert_eq!(
        last,
        Some("holding 9000 resources"),
        "stopped at the run's 10,000 resources, not wasmtime's default million"
    );
    h.still_healthy("a resource hoard").await;
}

/// A server on loopback that answers each request after 100 ms and
/// remembers the most requests it had in flight at once.
async fn slow_server() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, peak) = (in_flight.clone(), most.clone());
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::get(move || {
            let (now, peak) = (now.clone(), peak.clone());
            async move {
                let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(current, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, most)
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_started_at_once_wait_for_the_runs_in_flight_cap() {
    let (addr, most) = slow_server().await;
    let h = Host::new(test_options());
    let config = [format!("fan_out_url=http://api.test:{}/slow", addr.port())];
    let report = h
        .run_with(&plugin("misbehaving"), "fan", "fan-out", &config)
        .await;
    assert!(
        matches!(report.end, RunEnd::Returned { items: 12, .. }),
        "every request is answered, none dropped: {:?} {:#?}",
        report.end,
        report.log
    );
    let most = most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "the manifest's http_concurrency = 4 held the 12 requests to at most 4 at once \
         (and they did run in parallel): {most}"
    );
    assert_eq!(report.http.len(), 12);
    h.still_healthy("a fan-out").await;
}

/// The peak resident set size of process `pid` so far (`VmHWM`), in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd` to its end; its exit code, output, and peak resident set
/// size in KiB. The peak is the child's own `VmHWM`, sampled every
/// millisecond until it exits (it only grows, so a sample holds every
/// earlier peak). Not `wait4`'s `ru_maxrss`: Linux carries the forking
/// parent's RSS into it, and this test process is far larger than a run.
pub(crate) fn run_measured(mut cmd: std::process::Command) -> (Option<i32>, String, u64) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    (status.code(), reader.join().unwrap(), peak)
}

/// The benchmark's "peak RSS of a run under each hostile guest, against its
/// cap": each feed runs in its own `airlock run` process, whose peak RSS
/// must stay within a good run's plus the guest's memory cap plus a fixed
/// allowance. The figures are printed (`--nocapture`) for BENCHMARKS.md.
#[test]
fn peak_rss_of_each_hostile_run_stays_within_its_cap() {
    const CAP_KIB: u64 = 32 << 10;
    const ALLOWANCE_KIB: u64 = 64 << 10;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    let measure_with = |plugin: &str, feed: &str, extra: &[&str]| {
        let installation = format!("rss-{feed}");
        let mut args = vec![
            "run",
            plugin,
            "--feed",
            feed,
            "--installation",
            &installation,
        ];
        args.extend_from_slice(extra);
        let mut command = crate::cli::command(&args, &db);
        // With backtraces on, a trap must still not resolve the host's own
        // stack (symbols cost ~200 MB): the guest's failure is not the host's.
        command.env("RUST_BACKTRACE", "1");
        let (code, text, kib) = run_measured(command);
        assert!(code.is_some(), "airlock run {feed} was killed: {text}");
        (kib, text)
    };
    let measure = |plugin: &str, feed: &str| measure_with(plugin, feed, &[]);
    let (baseline, text) = measure("plugins/hello", "greet");
    assert!(text.contains("outcome: OK"), "{text}");
    println!("peak RSS of `airlock run`, KiB (memory cap of misbehaving: {CAP_KIB}):");
    println!("  {baseline:>8}  hello greet (baseline)");
    for (feed, expect) in [
        ("hog", "memory limit"),
        ("trap", "unreachable"),
        ("spin", "timeout"),
        ("flood", "more lines dropped over the cap"),
        ("deny-loop", "more requests dropped over the audit cap"),
        ("fill", "stored 15 values"),
        ("stream-body", "HttpRequestBodySize"),
        ("hoard", "resource table has no free keys"),
    ] {
        let (kib, text) = measure("plugins/misbehaving", feed);
        println!("  {kib:>8}  misbehaving {feed}");
        assert!(
            text.contains(expect),
            "`{feed}`: expected `{expect}` in\n{text}"
        );
        assert!(
            kib <= baseline + CAP_KIB + ALLOWANCE_KIB,
            "`{feed}` peaked at {kib} KiB: over {baseline} + {CAP_KIB} + {ALLOWANCE_KIB}"
        );
    }
    // Record writes of 1,000 KiB each until the run's 64 MiB of record
    // writes is reached: held by the host until the run ends, so the
    // allowance is the guest's 16 MiB plus those 64 MiB.
    const RECORDS_KIB: u64 = (16 + 64) << 10;
    let added = crate::cli::command(&["tenant", "add", "rss"], &db)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let (kib, text) = measure_with(
        "plugins/records-probe",
        "flood",
        &[
            "--config",
            "flood_kib=1000",
            "--tenant",
            "rss",
            "--grant-data",
            "--mode",
            "live",
        ],
    );
    println!("  {kib:>8}  records-probe flood (1,000 KiB records)");
    assert!(
        text.contains("accepted=65 then quota-exceeded"),
        "records flood: {text}"
    );
    assert!(
        kib <= baseline + RECORDS_KIB + ALLOWANCE_KIB,
        "records flood peaked at {kib} KiB: over {baseline} + {RECORDS_KIB} + {ALLOWANCE_KIB}"
    );
}
