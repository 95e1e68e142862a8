//! The `airlock` binary, run as a user would: `run` against the fake shop,
//! `inspect`, exit codes, and clear errors for bad input.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use airlock_tests::fake_store::FakeStore;
use chrono::{Duration, TimeZone, Utc};

/// The `airlock` binary of this workspace, built once for the whole test run.
pub(crate) fn airlock_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "airlock", "--bin", "airlock"])
            .current_dir(airlock_tests::repo_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the airlock binary failed");
        // The test executable is target/<profile>/deps/e2e-…; the binary is
        // target/<profile>/airlock.
        let exe = std::env::current_exe().unwrap();
        exe.parent()
            .and_then(|d| d.parent())
            .unwrap()
            .join("airlock")
    })
}

/// `airlock ARGS` on database `db`, sharing the tests' component cache.
pub(crate) fn command(args: &[&str], db: &std::path::Path) -> Command {
    let mut cmd = Command::new(airlock_bin());
    cmd.args(args)
        .env("AIRLOCK_DB", db)
        .env(
            "AIRLOCK_CACHE_DIR",
            airlock_tests::repo_root().join("target/test-component-cache"),
        )
        .current_dir(airlock_tests::repo_root());
    cmd
}

pub(crate) fn airlock(args: &[&str], db: &std::path::Path) -> Output {
    command(args, db).output().expect("airlock runs")
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `airlock ARGS` on `db`, with `net` appended (the options that reach a
/// test's fakes: `--resolve`, `--trust-root`…) when `with_net`, run on the
/// blocking pool so async tests' fakes keep answering meanwhile.
pub(crate) async fn airlock_off_worker(
    db: &std::path::Path,
    net: &[String],
    args: &[&str],
    with_net: bool,
) -> Output {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    if with_net {
        all.extend(net.iter().cloned());
    }
    let db = db.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        command(&all, &db).output().expect("airlock runs")
    })
    .await
    .expect("the blocking pool runs it")
}

/// Asserts that `out` succeeded (naming `args` otherwise); its text.
pub(crate) fn succeeded(args: &[&str], out: &Output) -> String {
    let text = text(out);
    assert!(out.status.success(), "airlock {args:?}:\n{text}");
    text
}

/// Asserts the exit code and that the output mentions `needle`.
pub(crate) fn expect(out: &Output, code: i32, needle: &str) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(code), "{all}");
    assert!(all.contains(needle), "expected `{needle}` in:\n{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_imports_orders_and_the_second_run_asks_for_the_new_window() {
    let shop = FakeStore::start(0, "demo", "hunter2-secret").await.unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    shop.put_order("R1001", t0 - Duration::hours(2));
    shop.put_order("R1002", t0 - Duration::hours(1));
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.toml");
    std::fs::write(&secrets, "password = \"hunter2-secret\"\n").unwrap();
    let endpoint = format!("endpoint=http://shop.test:{}/api/v1", shop.addr.port());
    let db = dir.path().join("airlock.db");
    let run_at = |at: &str| {
        airlock(
            &[
                "run",
                "plugins/custom-store",
                "--feed",
                "orders",
                "--tenant",
                "acme",
                "--config",
                &endpoint,
                "--config",
                "username=demo",
                "--config-file",
                secrets.to_str().unwrap(),
                "--resolve",
                "shop.test=127.0.0.1",
                "--allow-network",
                "127.0.0.0/8",
                "--at",
                at,
            ],
            &db,
        )
    };
    let first = run_at("2026-11-23T10:00:00Z");
    let out = text(&first);
    assert_eq!(first.status.code(), Some(0), "{out}");
    assert!(
        out.contains("outcome: OK  imported 2 orders (2 new, 0 updated)"),
        "{out}"
    );
    assert!(
        out.contains("resolve    shop.test -> 127.0.0.1 (test resolver)"),
        "{out}"
    );
    assert!(out.contains("set    order/R1001"), "{out}");
    assert!(out.contains("set    cursor/orders"), "{out}");
    assert!(
        out.contains("/api/v1/orders -> 200 (allowed by http://shop.test port"),
        "{out}"
    );
    assert!(!out.contains("hunter2-secret"), "secret printed: {out}");

    shop.put_order("R1003", t0 + Duration::minutes(20));
    let second = run_at("2026-11-23T11:00:00Z");
    let out = text(&second);
    assert_eq!(second.status.code(), Some(0), "{out}");
    assert!(out.contains("imported 1 orders (1 new, 0 updated) modified between 2026-11-23T10:00:00Z and 2026-11-23T11:00:00Z"), "{out}");
    assert_eq!(
        shop.order_windows()[1],
        ("2026-11-23T10:00:00Z".into(), "2026-11-23T11:00:00Z".into())
    );

    let db_bytes = std::fs::read(&db).unwrap();
    let needle = b"hunter2-secret";
    assert!(
        !db_bytes.windows(needle.len()).any(|w| w == needle),
        "secret stored in the database"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_say_how_the_run_ended() {
    let shop = FakeStore::start(0, "demo", "right").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    let endpoint = format!("endpoint=http://shop.test:{}/api/v1", shop.addr.port());
    let bad = airlock(
        &[
            "run",
            "plugins/custom-store",
            "--feed",
            "orders",
            "--config",
            &endpoint,
            "--config",
            "username=demo",
            "--config",
            "password=wrong",
            "--resolve",
            "shop.test=127.0.0.1",
            "--allow-network",
            "127.0.0.0/8",
        ],
        &db,
    );
    assert_eq!(bad.status.code(), Some(4), "error outcome: {}", text(&bad));

    let spin = airlock(&["run", "plugins/misbehaving", "--feed", "spin"], &db);
    expect(&spin, 4, "timeout: stopped after 2s");
    let unknown = airlock(&["run", "plugins/hello", "--feed", "nope"], &db);
    expect(
        &unknown,
        1,
        "has no feed `nope` (it has: greet, noop, publish)",
    );
    let missing = airlock(&["run", "plugins/custom-store", "--feed", "orders"], &db);
    expect(&missing, 1, "config `endpoint` is required");
    let usage = airlock(&["run"], &db);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn a_bad_manifest_names_the_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plugin.toml"),
        "[plugin]\nid = \"x\"\nversion = \"1.0.0\"\n\n[[feeds]]\nname = \"f\"\ndirection = \"inbound\"\nschedule = \"0 0 * * * *\"\ncolour = \"red\"\n",
    )
    .unwrap();
    let out = airlock(
        &["inspect", dir.path().to_str().unwrap()],
        &dir.path().join("db"),
    );
    assert_eq!(out.status.code(), Some(1));
    let out = text(&out);
    assert!(out.contains("unknown field `colour`"), "{out}");
    assert!(out.contains("line 9"), "{out}");
}

#[test]
fn inspect_shows_the_egress_table_and_wit_exports() {
    let dir = tempfile::tempdir().unwrap();
    let out = airlock(&["inspect", "plugins/misbehaving"], &dir.path().join("db"));
    let s = text(&out);
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert!(s.contains("api.allowed.test (and subdomains)"), "{s}");
    assert!(s.contains("Allowed test API"), "{s}");
    assert!(s.contains("sha256     "), "{s}");
    assert!(s.contains("airlock:connector/http@0.1.0"), "{s}");
    let exports = s.split("component exports (WIT):").nth(1).unwrap();
    assert!(
        exports.contains("run ") && exports.contains("check "),
        "{exports}"
    );

    assert!(s.contains("NOT in the permitted-domains table"), "{s}");
    let table = dir.path().join("permitted.toml");
    std::fs::write(&table, "[domains]\n\"allowed.test\" = \"Test APIs\"\n").unwrap();
    let out = airlock(
        &[
            "inspect",
            "plugins/misbehaving",
            "--permitted-domains",
            table.to_str().unwrap(),
        ],
        &dir.path().join("db"),
    );
    assert!(
        text(&out).contains("permitted as allowed.test (Test APIs)"),
        "{}",
        text(&out)
    );

    let out = airlock(&["inspect", "plugins/custom-store"], &dir.path().join("db"));
    let s = text(&out);
    assert!(s.contains("<origin of config `endpoint`>"), "{s}");
}

/// The runs in progress in `db` (installation and feed).
fn active_runs(db: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT installation || ' ' || feed FROM active_runs")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Tenant `acme` with `plugins/misbehaving` stored as `acme/misbehaving`.
fn store_misbehaving(db: &std::path::Path) {
    expect(
        &airlock(&["tenant", "add", "acme"], db),
        0,
        "added tenant acme",
    );
    let install = [
        "install",
        "plugins/misbehaving",
        "--tenant",
        "acme",
        "--skip-check",
        "--yes",
    ];
    expect(&airlock(&install, db), 0, "installed acme/misbehaving");
}

#[test]
fn a_host_killed_mid_run_applies_none_of_the_runs_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    store_misbehaving(&db);
    let feed = |name: &str| {
        let args = [
            "run",
            "plugins/misbehaving",
            "--feed",
            name,
            "--tenant",
            "acme",
        ];
        command(&args, &db)
    };
    let first = feed("count").output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(
        active_runs(&db).is_empty(),
        "a run that ended releases its claim"
    );

    // `write-then-spin` writes count=999, then loops until its 2 s deadline;
    // the host is killed while its claim shows the run in progress.
    let mut child = feed("write-then-spin")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while active_runs(&db).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was seen in progress"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        active_runs(&db),
        vec!["misbehaving write-then-spin"],
        "killed mid-run: the run never ended, so its claim is left"
    );

    let again = feed("count").output().unwrap();
    let out = text(&again);
    assert_eq!(again.status.code(), Some(0), "{out}");
    assert!(
        out.contains("outcome: OK  run 2"),
        "the killed run's count=999 leaked: {out}"
    );
    // The killed run still holds its feed: another run of it is refused.
    let overlap = feed("write-then-spin").output().unwrap();
    expect(
        &overlap,
        1,
        "acme/misbehaving write-then-spin is running already (a manual run, attempt 1",
    );
}

#[test]
fn run_claims_a_stored_installations_feed_like_serve() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    store_misbehaving(&db);
    // `serve` is running this feed (its claim, as serve writes it).
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "INSERT INTO active_runs (tenant, installation, feed, trigger, attempt, scheduled_at,
            started_at) VALUES ('acme', 'misbehaving', 'count', 'schedule', 2, 0, 0)",
        [],
    )
    .unwrap();
    let run = [
        "run",
        "plugins/misbehaving",
        "--feed",
        "count",
        "--tenant",
        "acme",
    ];
    let refused = airlock(&run, &db);
    expect(
        &refused,
        1,
        "acme/misbehaving count is running already (a schedule run, attempt 2",
    );
    expect(&refused, 1, "--wait");
    assert!(!text(&refused).contains("outcome:"), "it ran anyway");

    // --wait waits for the scheduled run to end, then runs.
    let mut waiting = command(&[&run[..], &["--wait"]].concat(), &db)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(waiting.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(line.contains("waiting for it to end"), "{line}");
    conn.execute("DELETE FROM active_runs", []).unwrap();
    let waited = waiting.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&waited.stdout);
    assert_eq!(waited.status.code(), Some(0), "{out}");
    assert!(out.contains("outcome: OK  run 1"), "{out}");
    assert!(active_runs(&db).is_empty(), "released with its record");

    // A failure before the run is recorded releases the claim too.
    let unknown = airlock(
        &[
            "run",
            "plugins/misbehaving",
            "--feed",
            "nope",
            "--tenant",
            "acme",
        ],
        &db,
    );
    expect(&unknown, 1, "has no feed `nope`");
    assert!(active_runs(&db).is_empty());
}

#[test]
fn run_defaults_to_test_mode_like_a_new_installation() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    let run = airlock(&["run", "plugins/hello", "--feed", "publish"], &db);
    expect(&run, 0, "mode=test");
    let live = airlock(
        &[
            "run",
            "plugins/hello",
            "--feed",
            "publish",
            "--mode",
            "live",
        ],
        &db,
    );
    expect(&live, 0, "mode=live");
}

#[test]
fn bad_arguments_get_clear_errors_without_echoing_secrets_or_long_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    let hello = |extra: &[&str]| {
        let args = [&["run", "plugins/hello", "--feed", "greet"][..], extra].concat();
        airlock(&args, &db)
    };
    let check = |out: &Output, code: i32, needle: &str| {
        expect(out, code, needle);
        assert!(!text(out).contains("panicked"), "{}", text(out));
    };
    check(
        &hello(&["--max-rps", "1e-20"]),
        2,
        "`1e-20` is out of range",
    );
    check(&hello(&["--max-rps", "NaN"]), 2, "`NaN` is out of range");
    check(&hello(&["--max-concurrent", "0"]), 2, "--max-concurrent");
    check(
        &hello(&["--tenant", "Bad Tenant"]),
        1,
        "--tenant `Bad Tenant` is not a valid id",
    );
    let long = "x".repeat(5000);
    let out = hello(&["--installation", &long]);
    check(&out, 1, "is not a valid id");
    assert!(
        text(&out).len() < 500,
        "the long id was echoed: {}",
        text(&out)
    );
    let out = hello(&["--config", "greeting:hunter2-secret"]);
    check(&out, 1, "--config #1 is not KEY=VALUE");
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));

    let list = |extra: &[&str]| airlock(&[&["runs", "list"][..], extra].concat(), &db);
    check(
        &list(&["--since", "5é"]),
        1,
        "--since `5é` is not a time or an age",
    );
    check(&list(&["--since", "99999999999999999d"]), 1, "--since");
    check(
        &list(&["--tenant", "acme", "--installation", "globex/shop"]),
        1,
        "name different tenants",
    );
    check(
        &list(&["--tenant", "acme", "--installation", "acme/shop"]),
        0,
        "no runs match",
    );
    check(
        &list(&["--tenant", "acme", "--installation", "shop"]),
        0,
        "no runs match",
    );
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    expect(&airlock(&["runs", "list"], &db), 0, "no runs match"); // creates the schema
    // Far more runs than a pipe buffers, so the writer meets the closed pipe.
    let mut conn = rusqlite::Connection::open(&db).unwrap();
    let tx = conn.transaction().unwrap();
    for _ in 0..3000 {
        tx.execute(
            "INSERT INTO runs (tenant, installation, plugin_id, plugin_version, plugin_digest,
                feed, mode, trigger, attempt, scheduled_at, started_at, ended_at, status,
                message, report) VALUES ('acme', 'hello', 'hello', '0.1.0', '', 'greet',
                'test', 'manual', 1, 0, 0, 0, 'ok', 'hello #1', '{}')",
            [],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let mut child = command(&["runs", "list", "--limit", "3000"], &db)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut header = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut header).unwrap();
    assert!(header.contains("installation"), "{header}");
    drop(stdout); // `| head -1`
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "not quiet: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reviewers_check_urls_and_read_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    let table = dir.path().join("permitted.toml");
    std::fs::write(&table, "[domains]\n\"allowed.test\" = \"Test APIs\"\n").unwrap();
    let table = table.to_str().unwrap();

    // check: exit 0 allow, 1 deny, with the reason; nothing is sent.
    let allow = airlock(
        &[
            "egress",
            "check",
            "plugins/misbehaving",
            "https://x.api.allowed.test/v1?secret=1",
            "--no-resolve",
            "--permitted-domains",
            table,
        ],
        &db,
    );
    expect(
        &allow,
        0,
        "ALLOW by https://api.allowed.test (and subdomains) [Allowed test API; manifest, permitted as allowed.test (Test APIs)]",
    );
    let deny = airlock(
        &[
            "egress",
            "check",
            "plugins/misbehaving",
            "https://api.allowed.test/",
            "--no-resolve",
        ],
        &db,
    );
    expect(&deny, 1, "DENY [no-matching-entry]");
    expect(&deny, 1, "is not in the operator's permitted-domains table");
    let rebinding = airlock(
        &[
            "egress",
            "check",
            "plugins/misbehaving",
            "https://api.allowed.test/",
            "--permitted-domains",
            table,
            "--resolve",
            "api.allowed.test=169.254.169.254",
        ],
        &db,
    );
    expect(
        &rebinding,
        1,
        "DENY [resolved-address] api.allowed.test resolves to 169.254.169.254, a link-local address",
    );
    let suppressed = airlock(
        &[
            "egress",
            "check",
            "plugins/misbehaving",
            "https://api.allowed.test/",
            "--method",
            "POST",
            "--mode",
            "test",
            "--no-resolve",
            "--permitted-domains",
            table,
        ],
        &db,
    );
    expect(&suppressed, 1, "DENY [test-mode]");

    // Every decision of a run lands in the audit trail.
    let sneak = airlock(
        &[
            "run",
            "plugins/misbehaving",
            "--feed",
            "sneak",
            "--tenant",
            "acme",
            "--permitted-domains",
            table,
        ],
        &db,
    );
    expect(&sneak, 0, "11 requests denied");
    let log = airlock(&["egress", "log", "--denied", "--format", "json"], &db);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&log.stdout).unwrap();
    assert_eq!(rows.len(), 11, "{}", text(&log));
    assert!(rows.iter().all(|r| r["decision"] == "denied"
        && r["tenant"] == "acme"
        && r["plugin_id"] == "misbehaving"));
    assert!(
        rows.iter()
            .any(|r| r["rule"] == "userinfo" && r["host"] == "evil.example")
    );

    let shop = FakeStore::start(0, "demo", "pw").await.unwrap();
    let endpoint = format!("endpoint=http://shop.test:{}/api/v1", shop.addr.port());
    let run = airlock(
        &[
            "run",
            "plugins/custom-store",
            "--feed",
            "orders",
            "--tenant",
            "acme",
            "--config",
            &endpoint,
            "--config",
            "username=demo",
            "--config",
            "password=pw",
            "--resolve",
            "shop.test=127.0.0.1",
            "--allow-network",
            "127.0.0.0/8",
        ],
        &db,
    );
    expect(&run, 0, "outcome: INFO  no orders modified");
    // `runs show` prints each call's port and egress decision.
    let listed = airlock(&["runs", "list", "--json", "--feed", "orders"], &db);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let shown = airlock(&["runs", "show", &runs[0]["id"].to_string()], &db);
    let port = shop.addr.port();
    expect(
        &shown,
        0,
        &format!(
            "http       GET http://shop.test:{port}/api/v1/orders -> 200 allowed by \
             http://shop.test port {port}"
        ),
    );
    let listed = airlock(&["runs", "list", "--json", "--feed", "sneak"], &db);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let shown = airlock(&["runs", "show", &runs[0]["id"].to_string()], &db);
    expect(
        &shown,
        0,
        "GET https://evil.example:443/steal -> - DENIED [",
    );
    let audit = airlock(
        &[
            "egress",
            "audit",
            "plugins/custom-store",
            "plugins/misbehaving",
            "--permitted-domains",
            table,
            "--format",
            "csv",
        ],
        &db,
    );
    let csv = text(&audit);
    assert_eq!(audit.status.code(), Some(0), "{csv}");
    let rule = format!("http://shop.test port {}", shop.addr.port());
    assert!(
        csv.contains(&format!(
            "custom-store@0.1.0,acme,custom-store,allowed,{rule},custom-store (installation config `endpoint`),"
        )),
        "{csv}"
    );
    assert!(csv.contains(",2,"), "two allowed requests: {csv}");
    assert!(csv.contains("granted but never used"), "{csv}");
    let log = airlock(
        &[
            "egress",
            "log",
            "--plugin",
            "custom-store",
            "--format",
            "json",
        ],
        &db,
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&log.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(
        |r| r["status"] == 200 && r["remote_addr"].as_str().unwrap().starts_with("127.0.0.1:")
    ));
    assert!(
        !String::from_utf8_lossy(&log.stdout).contains("date_modified"),
        "query strings are never audited"
    );
}

/// `airlock run` under a stored installation's name runs as that
/// installation: never another component, another plugin's upgrade, a
/// disabled or removed installation, or live when it is in test mode.
#[test]
fn a_run_under_an_installations_name_is_held_to_what_was_installed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    store_misbehaving(&db);
    let run = |plugin: &str, extra: &[&str]| {
        let args = [
            &[
                "run",
                plugin,
                "--feed",
                "count",
                "--tenant",
                "acme",
                "--installation",
                "misbehaving",
            ][..],
            extra,
        ]
        .concat();
        airlock(&args, &db)
    };
    let other = run("plugins/hello", &[]);
    expect(
        &other,
        1,
        "acme/misbehaving is installed with misbehaving@0.1.0",
    );
    assert!(!text(&other).contains("outcome:"), "it ran anyway");
    expect(
        &run("plugins/misbehaving", &["--mode", "live"]),
        1,
        "is in test mode",
    );
    expect(&run("plugins/misbehaving", &[]), 0, "outcome: OK");

    let upgrade = ["upgrade", "acme/misbehaving", "plugins/hello", "--yes"];
    expect(
        &airlock(&upgrade, &db),
        1,
        "acme/misbehaving is an installation of `misbehaving`",
    );

    expect(&airlock(&["disable", "acme/misbehaving"], &db), 0, "");
    expect(&run("plugins/misbehaving", &[]), 1, "is disabled");
    expect(
        &airlock(&["remove", "acme/misbehaving", "--yes"], &db),
        0,
        "",
    );
    expect(&run("plugins/misbehaving", &[]), 1, "was removed");
}

/// `schedule --time-zone` alone changes the zone and keeps the feed's own
/// schedule; `--default` goes back to the manifest's.
#[test]
fn schedule_time_zone_alone_keeps_the_feeds_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    store_misbehaving(&db);
    let set = ["schedule", "acme/misbehaving", "count", "0 0 9 * * *"];
    expect(&airlock(&set, &db), 0, "count: 0 0 9 * * * UTC");
    let zone = [
        "schedule",
        "acme/misbehaving",
        "count",
        "--time-zone",
        "America/New_York",
    ];
    expect(
        &airlock(&zone, &db),
        0,
        "count: 0 0 9 * * * America/New_York",
    );
    let default = ["schedule", "acme/misbehaving", "count", "--default"];
    expect(
        &airlock(&default, &db),
        0,
        "America/New_York (the manifest's default)",
    );
}

/// `egress check` of a plugin directory judges it as a new installation
/// runs, in test mode, like `airlock run`; `--mode live` judges it live.
#[test]
fn egress_check_of_a_plugin_is_in_test_mode_by_default_like_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    let table = dir.path().join("permitted.toml");
    std::fs::write(&table, "[domains]\n\"allowed.test\" = \"Test APIs\"\n").unwrap();
    let post = |extra: &[&str]| {
        let args = [
            "egress",
            "check",
            "plugins/misbehaving",
            "https://api.allowed.test/",
            "--method",
            "POST",
            "--no-resolve",
            "--permitted-domains",
            table.to_str().unwrap(),
        ];
        airlock(&[&args[..], extra].concat(), &db)
    };
    expect(&post(&[]), 1, "DENY [test-mode]");
    expect(
        &post(&["--mode", "live"]),
        0,
        "ALLOW by https://api.allowed.test",
    );
    // The help is wrapped to the terminal: its words are compared.
    let help = text(&airlock(&["egress", "check", "--help"], &db));
    let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("default test, like a new installation"),
        "{help}"
    );
}

/// A `--at` that is not a time is bad usage: exit 2, like any argument
/// clap refuses, not 1 (the host failed).
#[test]
fn an_unparseable_at_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    let run = [
        "run",
        "plugins/hello",
        "--feed",
        "greet",
        "--at",
        "yesterday",
    ];
    expect(
        &airlock(&run, &db),
        2,
        "`yesterday` is not an RFC 3339 time like 2026-11-23T10:00:00Z",
    );
}

/// `run-now` says once which queue entry it made.
#[test]
fn run_now_names_its_queue_entry_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    store_misbehaving(&db);
    let out = airlock(&["run-now", "acme/misbehaving", "count"], &db);
    expect(&out, 0, "queued acme/misbehaving count now (queue #1)");
    assert_eq!(text(&out).matches("queue #").count(), 1, "{}", text(&out));
}

/// A trial run of an installed installation uses its installed config and
/// secrets (none retyped on the command line), and refuses other config:
/// it must never publish or export with settings its scheduled runs do not
/// have.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_of_an_installed_installation_uses_its_config_and_refuses_other_config() {
    let shop = FakeStore::start(0, "demo", "hunter2-secret").await.unwrap();
    shop.put_order("R1001", Utc::now() - Duration::hours(1));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    let key = dir.path().join("master.key");
    let secrets = dir.path().join("secrets.toml");
    std::fs::write(&secrets, "password = \"hunter2-secret\"\n").unwrap();
    let endpoint = format!("endpoint=http://shop.test:{}/api/v1", shop.addr.port());
    let (key_s, secrets_s) = (key.to_str().unwrap(), secrets.to_str().unwrap());
    let net = [
        "--resolve",
        "shop.test=127.0.0.1",
        "--allow-network",
        "127.0.0.0/8",
        "--master-key-file",
        key_s,
    ];
    let with_net = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(net.iter())
            .map(|a| a.to_string())
            .collect()
    };
    let call = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        airlock(&args, &db)
    };
    expect(&airlock(&["keygen", key_s], &db), 0, "");
    expect(
        &airlock(&["tenant", "add", "acme"], &db),
        0,
        "added tenant acme",
    );
    let install = call(with_net(&[
        "install",
        "plugins/custom-store",
        "--tenant",
        "acme",
        "--name",
        "shop",
        "--mode",
        "live",
        "--config",
        &endpoint,
        "--config",
        "username=demo",
        "--config-file",
        secrets_s,
        "--yes",
    ]));
    expect(&install, 0, "installed acme/shop");

    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "plugins/custom-store",
            "--feed",
            "orders",
            "--tenant",
            "acme",
            "--installation",
            "shop",
            "--mode",
            "live",
        ];
        args.extend_from_slice(extra);
        call(with_net(&args))
    };
    let out = run(&[]);
    expect(&out, 0, "imported 1 orders");
    assert!(!text(&out).contains("hunter2-secret"), "{}", text(&out));

    let other = run(&["--config", &endpoint, "--config", "username=someone-else"]);
    expect(
        &other,
        1,
        "acme/shop is installed with other config than given here",
    );
    let same = run(&[
        "--config",
        &endpoint,
        "--config",
        "username=demo",
        "--config-file",
        secrets_s,
    ]);
    expect(&same, 0, "outcome:");
}

#[test]
fn a_trial_run_of_a_live_installation_in_test_mode_says_so() {
    let site = crate::serve_cli::Site::new();
    site.ok(&["tenant", "add", "acme"]);
    site.ok(&[
        "install",
        "plugins/hello",
        "--tenant",
        "acme",
        "--mode",
        "live",
        "--yes",
    ]);
    let trial = [
        "run",
        "plugins/hello",
        "--feed",
        "greet",
        "--tenant",
        "acme",
    ];
    let mut args = trial.to_vec();
    args.extend(["--installation", "hello"]);
    let out = site.ok(&args);
    assert!(
        out.contains("note: acme/hello is live, but this trial run is in test mode")
            && out.contains("add --mode live"),
        "{out}"
    );
    args.extend(["--mode", "live"]);
    let out = site.ok(&args);
    assert!(!out.contains("note: acme/hello is live"), "{out}");
}
