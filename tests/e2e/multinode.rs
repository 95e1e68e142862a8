//! Several `airlock serve` processes on one PostgreSQL database (issue 12):
//! every due run exactly once across the nodes, a killed node's run
//! recovered by another after its lease, and a node paused past its lease
//! fenced off when it wakes.
//!
//! Each test has a schema of its own in the database at
//! `$AIRLOCK_TEST_POSTGRES` (`scripts/test.sh` starts one with
//! `scripts/postgres.sh`); without it the tests are skipped, unless
//! `$AIRLOCK_REQUIRE_POSTGRES` is set.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{Datelike, Timelike, Utc};

use crate::serve_cli::{Server, Site};

/// A site on a fresh PostgreSQL schema: every command of it uses the
/// database (the SQLite file is never created).
struct PgSite {
    site: Site,
    /// The URL with the schema as search path: what the nodes are given.
    url: String,
    /// The database's own URL, and the schema, dropped at the end.
    base: String,
    schema: String,
}

impl Drop for PgSite {
    fn drop(&mut self) {
        // Best effort: `scripts/postgres.sh drop-test-schemas` clears what
        // is left.
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        let _ = std::panic::catch_unwind(|| execute(&self.base, &drop));
    }
}

/// Runs `sql` on `url` (one connection, on a runtime of its own: the tests
/// are synchronous, like the processes they drive); `simple` for
/// statements without rows back, else its rows.
fn run_sql(url: &str, sql: &str, simple: bool) -> Vec<tokio_postgres::Row> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("the test database answers");
        tokio::spawn(connection);
        let ran = match simple {
            true => client.batch_execute(sql).await.map(|()| Vec::new()),
            false => client.query(sql, &[]).await,
        };
        ran.unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    })
}

/// The rows of `sql`.
fn query(url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    run_sql(url, sql, false)
}

/// Runs statements `sql` (no rows back).
fn execute(url: &str, sql: &str) {
    run_sql(url, sql, true);
}

/// One number from `sql`.
fn count(url: &str, sql: &str) -> i64 {
    query(url, sql)[0].get(0)
}

/// The test database's URL, or None (the test is skipped) when
/// `$AIRLOCK_TEST_POSTGRES` is not set; with `$AIRLOCK_REQUIRE_POSTGRES` set,
/// its absence fails the test instead.
fn test_database() -> Option<String> {
    let Ok(base) = std::env::var("AIRLOCK_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("AIRLOCK_REQUIRE_POSTGRES").is_none(),
            "AIRLOCK_REQUIRE_POSTGRES is set but AIRLOCK_TEST_POSTGRES is not"
        );
        eprintln!("skipped: AIRLOCK_TEST_POSTGRES is not set");
        return None;
    };
    Some(base)
}

impl PgSite {
    /// A site on a new schema, or None (skipped) without a test database.
    fn new(lease: &str) -> Option<Self> {
        test_database().map(|base| Self::on(&base, lease))
    }

    /// A site on a new schema of the database at `base`.
    fn on(base: &str, lease: &str) -> Self {
        let base = base.to_string();
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let schema = format!(
            "e2e_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            Utc::now().timestamp_micros()
        );
        execute(&base, &format!("CREATE SCHEMA {schema}"));
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        let mut site = Site::new();
        site.set_env("AIRLOCK_DATABASE_URL", &url);
        let data_dir = site.dir().display().to_string();
        site.set_env("AIRLOCK_DATA_DIR", &data_dir);
        site.set_env("AIRLOCK_LEASE", lease);
        Self {
            site,
            url,
            base,
            schema,
        }
    }

    /// `n` `serve` nodes with the tests' quick options and `extra`.
    fn nodes(&self, n: usize, extra: &[&str]) -> Vec<Server> {
        (0..n).map(|_| self.site.serve(extra)).collect()
    }

    /// `n` `serve` nodes with exactly `options`.
    fn nodes_with(&self, n: usize, options: &[&str]) -> Vec<Server> {
        let mut args = vec!["serve"];
        args.extend_from_slice(options);
        (0..n)
            .map(|_| Server::start(self.site.cmd(&args)))
            .collect()
    }
}

/// The six-field cron (with a year) that fires once, at `at`.
fn once(at: chrono::DateTime<Utc>) -> String {
    format!(
        "{} {} {} {} {} * {}",
        at.second(),
        at.minute(),
        at.hour(),
        at.day(),
        at.month(),
        at.year()
    )
}

/// `installations` installations of `plugins/hello` over `tenants` tenants
/// (`t0`, `t1`…; `i0`, `i1`…), each with its `greet` feed on `greet_cron`
/// (other feeds never): one installed by the command line, the rest copied
/// from it in SQL (thousands of installs one by one would take minutes).
fn install_hello_everywhere(pg: &PgSite, installations: usize, tenants: usize, greet_cron: &str) {
    let never = "0 0 0 1 1 * 2099";
    pg.site.ok(&["tenant", "add", "t0"]);
    pg.site.ok(&[
        "install",
        "plugins/hello",
        "--tenant",
        "t0",
        "--name",
        "i0",
        "--mode",
        "live",
        "--schedule",
        &format!("greet={greet_cron}"),
        "--schedule",
        &format!("noop={never}"),
        "--schedule",
        &format!("publish={never}"),
        "--time-zone",
        "UTC",
        "--skip-check",
        "--yes",
    ]);
    let (last, last_tenant) = (installations - 1, tenants - 1);
    execute(
        &pg.url,
        &format!(
            "INSERT INTO tenants (id, name, created_at)
                SELECT 't' || g, 'tenant ' || g, 0 FROM generate_series(1, {last_tenant}) g;
             INSERT INTO installations (tenant, id, plugin_id, plugin_version, plugin_dir,
                plugin_digest, plugin_store, config, approved_egress, approved_rules,
                approved_data, mode, enabled, created_at, updated_at, removed_at, revision)
                SELECT 't' || (g % {tenants}), 'i' || g, plugin_id, plugin_version, plugin_dir,
                    plugin_digest, plugin_store, config, approved_egress, approved_rules,
                    approved_data, mode, enabled, created_at, updated_at, removed_at, revision
                FROM installations, generate_series(1, {last}) g
                WHERE tenant = 't0' AND id = 'i0';
             INSERT INTO schedules (tenant, installation, feed, cron, time_zone, overridden,
                next_fire_at, due_at)
                SELECT 't' || (g % {tenants}), 'i' || g, feed, cron, time_zone, overridden,
                    next_fire_at, due_at
                FROM schedules, generate_series(1, {last}) g
                WHERE tenant = 't0' AND installation = 'i0';"
        ),
    );
    assert_eq!(
        count(
            &pg.url,
            "SELECT COUNT(*) FROM schedules WHERE feed = 'greet'"
        ),
        installations as i64
    );
}

/// How many `start` lines each node printed.
fn starts(nodes: &[Server]) -> Vec<usize> {
    nodes
        .iter()
        .map(|n| {
            n.output()
                .lines()
                .filter(|l| l.contains("start ") && l.contains(" greet "))
                .count()
        })
        .collect()
}

/// `nodes` nodes, `installations` installations due within a minute: each
/// due run happens once, by the run records and by the plugin's own count.
fn every_due_run_exactly_once(nodes: usize, installations: usize) {
    let Some(pg) = PgSite::new("10s") else {
        return;
    };
    // Due 20 s from now, spread by up to 30 s of jitter: due within a
    // minute.
    let fire = Utc::now() + chrono::Duration::seconds(20);
    install_hello_everywhere(&pg, installations, 100, &once(fire));
    let servers = pg.nodes_with(
        nodes,
        &[
            "--jitter",
            "30s",
            "--tick",
            "200ms",
            "--max-concurrent",
            "8",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(240);
    let greet_runs = "SELECT COUNT(*) FROM runs WHERE feed = 'greet'";
    while count(&pg.url, greet_runs) < installations as i64 {
        for server in &servers {
            let out = server.output();
            assert!(!out.contains("error:"), "a node failed:\n{out}");
        }
        assert!(
            Instant::now() < deadline,
            "{} of {installations} runs after 4 minutes; node output:\n{}",
            count(&pg.url, greet_runs),
            servers[0].output()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let per_node = starts(&servers);
    let outputs: Vec<String> = servers
        .into_iter()
        .map(|s| {
            let (code, out) = s.stop();
            assert_eq!(code, Some(0), "{out}");
            out
        })
        .collect();
    for out in &outputs {
        assert!(!out.contains("FAULT"), "a node faulted:\n{out}");
        assert!(!out.contains("FENCED"), "no lease was lost:\n{out}");
    }
    // 0 duplicates, 0 missed, by the run records…
    let duplicates = count(
        &pg.url,
        "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE feed = 'greet'
            GROUP BY tenant, installation, scheduled_at HAVING COUNT(*) > 1) d",
    );
    assert_eq!(duplicates, 0);
    let ran_ok = count(
        &pg.url,
        "SELECT COUNT(DISTINCT (tenant, installation)) FROM runs
         WHERE feed = 'greet' AND status = 'ok'",
    );
    assert_eq!(ran_ok, installations as i64, "every installation ran");
    assert_eq!(count(&pg.url, greet_runs), installations as i64);
    // …and by the plugin's own storage: each installation counted one run.
    let counted_once = count(
        &pg.url,
        "SELECT COUNT(*) FROM kv WHERE key = 'runs' AND value = '1'::bytea",
    );
    assert_eq!(counted_once, installations as i64);
    assert_eq!(
        count(&pg.url, "SELECT COUNT(*) FROM kv WHERE key = 'runs'"),
        installations as i64
    );
    assert_eq!(count(&pg.url, "SELECT COUNT(*) FROM active_runs"), 0);
    // Every node took its share.
    assert_eq!(
        per_node.iter().sum::<usize>(),
        installations,
        "{per_node:?}"
    );
    assert!(per_node.iter().all(|n| *n > 0), "{per_node:?}");
    let span = query(
        &pg.url,
        "SELECT MIN(started_at), MAX(ended_at) FROM runs WHERE feed = 'greet'",
    );
    let (first, last): (i64, i64) = (span[0].get(0), span[0].get(1));
    eprintln!(
        "{nodes} nodes, {installations} runs from {first} to {last} ({} s); per node: {per_node:?}",
        last - first
    );
}

#[test]
fn two_nodes_run_every_one_of_ten_thousand_due_installations_exactly_once() {
    every_due_run_exactly_once(2, 10_000);
}

#[test]
fn three_nodes_run_every_one_of_ten_thousand_due_installations_exactly_once() {
    every_due_run_exactly_once(3, 10_000);
}

/// Two nodes with a 2 s lease; `acme/m`'s `write-then-wait` (writes, then
/// computes for 1.2 s) is queued and started by one of them, whose index
/// is returned.
fn two_nodes_one_long_run(pg: &PgSite) -> (Vec<Server>, usize) {
    pg.site.install_misbehaving();
    let servers = pg.nodes(2, &[]);
    pg.site.ok(&["run-now", "acme/m", "write-then-wait"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = servers.iter().position(|s| {
            s.output()
                .lines()
                .any(|l| l.contains("start") && l.contains("acme/m write-then-wait"))
        });
        if let Some(index) = started {
            return (servers, index);
        }
        assert!(Instant::now() < deadline, "no node started the run");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The runs of `acme/m`'s `write-then-wait`, oldest first, and what its
/// storage holds.
fn outcome(pg: &PgSite) -> (Vec<(String, String, i64)>, Option<String>) {
    let runs = query(
        &pg.url,
        "SELECT status, trigger, attempt FROM runs
         WHERE installation = 'm' AND feed = 'write-then-wait' ORDER BY id",
    )
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    let waited = query(
        &pg.url,
        "SELECT convert_from(value, 'UTF8') FROM kv WHERE installation = 'm' AND key = 'waited'",
    )
    .first()
    .map(|r| r.get(0));
    (runs, waited)
}

fn expected_runs() -> Vec<(String, String, i64)> {
    vec![
        ("interrupted".into(), "manual".into(), 1),
        ("ok".into(), "retry".into(), 2),
    ]
}

#[test]
fn a_node_killed_mid_run_has_its_run_recovered_by_another_after_the_lease() {
    let Some(pg) = PgSite::new("2s") else {
        return;
    };
    let (mut servers, holder) = two_nodes_one_long_run(&pg);
    let killed = servers.remove(holder);
    drop(killed); // SIGKILL mid-run
    let survivor = servers.pop().unwrap();
    survivor.wait_for(&["INTERRUPTED", "acme/m write-then-wait", "retry at"]);
    survivor.wait_for(&["OK", "acme/m write-then-wait", "attempt 2"]);
    let (code, out) = survivor.stop();
    assert_eq!(code, Some(0), "{out}");
    let (runs, waited) = outcome(&pg);
    assert_eq!(runs, expected_runs(), "recorded once each, nothing lost");
    assert_eq!(
        waited.as_deref(),
        Some("attempt 2"),
        "only the completed attempt's write is applied"
    );
}

#[test]
fn a_node_paused_past_its_lease_is_fenced_off_when_it_wakes() {
    let Some(pg) = PgSite::new("2s") else {
        return;
    };
    let (mut servers, holder) = two_nodes_one_long_run(&pg);
    let paused = servers.remove(holder);
    let other = servers.pop().unwrap();
    paused.signal("-STOP");
    // The other node recovers the run once the lease lapses, and retries it.
    other.wait_for(&["INTERRUPTED", "acme/m write-then-wait", "retry at"]);
    other.wait_for(&["OK", "acme/m write-then-wait", "attempt 2"]);
    paused.signal("-CONT");
    // The paused node finishes its attempt and tries to commit: refused.
    paused.wait_for(&["FENCED", "acme/m write-then-wait"]);
    let (code, out) = paused.stop();
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = other.stop();
    assert_eq!(code, Some(0), "{out}");
    let (runs, waited) = outcome(&pg);
    assert_eq!(runs, expected_runs(), "the late commit left no record");
    assert_eq!(waited.as_deref(), Some("attempt 2"), "nor any write");
    let by_status: BTreeMap<String, i64> =
        query(&pg.url, "SELECT status, COUNT(*) FROM runs GROUP BY status")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(by_status.values().sum::<i64>(), 2);
}

/// A PostgreSQL cluster of the test's own (`scripts/postgres.sh` with its
/// own directory and port), to restart under load without disturbing the
/// other tests' database.
struct OwnCluster {
    dir: std::path::PathBuf,
    port: u16,
}

impl OwnCluster {
    fn script(&self, command: &str) {
        let status = std::process::Command::new("bash")
            .arg(airlock_tests::repo_root().join("scripts/postgres.sh"))
            .arg(command)
            .env("AIRLOCK_PG_DIR", &self.dir)
            .env("AIRLOCK_PG_PORT", self.port.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "scripts/postgres.sh {command}");
    }

    fn start() -> Self {
        // Under /var/tmp: when the tests run as root, the cluster belongs
        // to `postgres`, which cannot reach into a private temp dir.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::path::PathBuf::from(format!(
            "/var/tmp/airlock-pg-restart-{}-{port}",
            std::process::id()
        ));
        let cluster = Self { dir, port };
        cluster.script("start");
        cluster
    }

    fn url(&self) -> String {
        std::fs::read_to_string(self.dir.join("url"))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.script("stop");
        let _ = std::process::Command::new("rm")
            .arg("-rf")
            .arg(&self.dir)
            .status();
    }
}

#[test]
fn nodes_reconnect_after_postgresql_restarts_under_load_and_lose_no_run() {
    // It starts a cluster of its own, but only where the others run.
    if test_database().is_none() {
        return;
    }
    let cluster = OwnCluster::start();
    let pg = PgSite::on(&cluster.url(), "3s");
    // 200 installations whose greet runs every second.
    install_hello_everywhere(&pg, 200, 20, "* * * * * *");
    let servers = pg.nodes_with(
        2,
        &["--jitter", "0s", "--tick", "200ms", "--retry-base", "1s"],
    );
    let greet_runs = "SELECT COUNT(*) FROM runs WHERE feed = 'greet'";
    let wait_for_runs = |at_least: i64| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            // While the database is down, a count fails: not yet.
            let counted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                count(&pg.url, greet_runs)
            }));
            if let Ok(n) = counted
                && n >= at_least
            {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {at_least} runs after 2 minutes:\n{}",
                servers[0].output()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let before = wait_for_runs(300);
    // PostgreSQL goes away under load (fast shutdown: its connections are
    // cut, transactions in flight rolled back) and comes back.
    cluster.script("stop");
    std::thread::sleep(Duration::from_secs(2));
    cluster.script("start");
    let after = wait_for_runs(before + 600);
    let outputs: Vec<String> = servers
        .into_iter()
        .map(|s| {
            let (code, out) = s.stop();
            assert_eq!(code, Some(0), "{out}");
            out
        })
        .collect();
    assert!(
        outputs.iter().any(|o| o.contains("FAULT")),
        "the outage was noticed"
    );
    // Nothing left in progress, and each installation's own count is the
    // number of its runs that succeeded: no commit lost, none applied twice.
    assert_eq!(count(&pg.url, "SELECT COUNT(*) FROM active_runs"), 0);
    let mismatched = count(
        &pg.url,
        "SELECT COUNT(*) FROM installations i
         LEFT JOIN kv ON kv.tenant = i.tenant AND kv.installation = i.id AND kv.key = 'runs'
         WHERE convert_from(COALESCE(kv.value, '0'::bytea), 'UTF8')::bigint <>
            (SELECT COUNT(*) FROM runs r WHERE r.tenant = i.tenant AND r.installation = i.id
               AND r.feed = 'greet' AND r.status = 'ok')",
    );
    assert_eq!(mismatched, 0, "a run's commit was lost or applied twice");
    let duplicates = count(
        &pg.url,
        "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE feed = 'greet' AND status = 'ok'
            GROUP BY tenant, installation, scheduled_at HAVING COUNT(*) > 1) d",
    );
    assert_eq!(duplicates, 0);
    eprintln!("{before} runs before the restart, {after} after");
}
