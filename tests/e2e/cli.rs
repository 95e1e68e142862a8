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

#[test]
fn a_host_killed_mid_run_applies_none_of_the_runs_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
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

    // `write-then-spin` writes count=999, then loops until its 2 s deadline;
    // the host is killed before that.
    let mut child = feed("write-then-spin")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before it was killed"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let again = feed("count").output().unwrap();
    let out = text(&again);
    assert_eq!(again.status.code(), Some(0), "{out}");
    assert!(
        out.contains("outcome: OK  run 2"),
        "the killed run's count=999 leaked: {out}"
    );
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
