//! `airlock serve` as a real process: feeds run on their schedules, "Run
//! now" from another process, notifications, graceful shutdown on SIGTERM,
//! and a server killed with SIGKILL mid-run that loses nothing. Plus the
//! install flow from the command line, with its secret sealed at rest.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_tests::fake_store::FakeStore;

use crate::cli::{airlock, command, expect, text};

/// A database, a master key and the environment every command shares.
pub(crate) struct Site {
    dir: tempfile::TempDir,
    pub(crate) db: PathBuf,
    /// More environment for every command (a PostgreSQL database's).
    env: Vec<(String, String)>,
}

impl Site {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        let site = Self {
            dir,
            db,
            env: Vec::new(),
        };
        expect(
            &site.run(&["keygen", &site.key().display().to_string()]),
            0,
            "mode 0600",
        );
        site
    }

    /// The site's directory (the database file's, the plugin store's).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn key(&self) -> PathBuf {
        self.dir.path().join("master.key")
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = command(args, &self.db);
        cmd.env("AIRLOCK_MASTER_KEY_FILE", self.key())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Every command of this site also gets `key`=`value` in its
    /// environment.
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("airlock runs")
    }

    /// Runs and asserts success.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "airlock {args:?}:\n{}",
            text(&out)
        );
        text(&out)
    }

    /// Tenant `acme` with `plugins/misbehaving` installed live as `acme/m`
    /// (its check fails on purpose, so it is installed without one).
    pub(crate) fn install_misbehaving(&self) {
        self.ok(&["tenant", "add", "acme"]);
        self.ok(&[
            "install",
            "plugins/misbehaving",
            "--tenant",
            "acme",
            "--name",
            "m",
            "--mode",
            "live",
            "--skip-check",
            "--yes",
        ]);
    }

    pub(crate) fn serve(&self, extra: &[&str]) -> Server {
        let mut args = QUICK_SERVE.to_vec();
        args.extend_from_slice(extra);
        Server::start(self.cmd(&args))
    }

    pub(crate) fn runs_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["runs", "list", "--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

/// `airlock serve` as the tests run it: no jitter, a quick tick, retries
/// after a second.
pub(crate) const QUICK_SERVE: [&str; 7] = [
    "serve",
    "--jitter",
    "0s",
    "--tick",
    "100ms",
    "--retry-base",
    "1s",
];

/// A running `airlock serve` whose output is collected line by line.
pub(crate) struct Server {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `cmd` (an `airlock serve`), collecting its output.
    pub(crate) fn start(mut cmd: std::process::Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        Self {
            child,
            lines,
            readers,
        }
    }

    pub(crate) fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits until a line contains every one of `needles`.
    pub(crate) fn wait_for(&self, needles: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let found = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| needles.iter().all(|n| l.contains(n)));
            if found {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no line with {needles:?} in:\n{}", self.output());
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then the exit code and all it printed.
    pub(crate) fn stop(mut self) -> (Option<i32>, String) {
        self.signal("-TERM");
        let status = self.child.wait().unwrap();
        // The readers end when the process's output closes.
        for reader in std::mem::take(&mut self.readers) {
            reader.join().unwrap();
        }
        (status.code(), self.output())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kv(db: &Path, tenant: &str, installation: &str, key: &str) -> Option<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT value FROM kv WHERE tenant = ?1 AND installation = ?2 AND key = ?3",
        [tenant, installation, key],
        |r| r.get::<_, Vec<u8>>(0),
    )
    .ok()
    .map(|v| String::from_utf8_lossy(&v).into_owned())
}

fn field<'a>(run: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    &run[key]
}

#[test]
fn a_server_killed_mid_run_loses_nothing_and_retries_it() {
    let site = Site::new();
    site.install_misbehaving();
    let queued = site.ok(&["run-now", "acme/m", "write-then-wait"]);
    assert!(queued.contains("no `airlock serve` is running"), "{queued}");

    let server = site.serve(&[]);
    server.wait_for(&["start", "acme/m write-then-wait", "attempt 1"]);
    std::thread::sleep(Duration::from_millis(300));
    // A second server on the same database is refused while this one runs.
    expect(
        &site.run(&["serve"]),
        1,
        "another `airlock serve` is running",
    );
    drop(server); // SIGKILL mid-run (the run takes 1.2 s)
    assert!(site.runs_json(&[]).is_empty(), "nothing was recorded yet");
    assert_eq!(
        kv(&site.db, "acme", "m", "waited"),
        None,
        "its write was not applied"
    );

    let server = site.serve(&[]);
    server.wait_for(&["INTERRUPTED", "acme/m write-then-wait", "retry at"]);
    server.wait_for(&["OK", "acme/m write-then-wait", "attempt 2"]);
    let (code, out) = server.stop();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("stopped"), "{out}");

    let runs = site.runs_json(&["--installation", "acme/m", "--feed", "write-then-wait"]);
    let summary: Vec<(String, String, u64)> = runs
        .iter()
        .map(|r| {
            (
                field(r, "status").as_str().unwrap().to_string(),
                field(r, "trigger").as_str().unwrap().to_string(),
                field(r, "attempt").as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("ok".to_string(), "retry".to_string(), 2),
            ("interrupted".to_string(), "manual".to_string(), 1)
        ]
    );
    assert_eq!(
        kv(&site.db, "acme", "m", "waited").as_deref(),
        Some("attempt 2"),
        "only the completed attempt's write is applied"
    );
}

#[test]
fn serve_runs_schedules_and_run_now_and_raises_notifications() {
    let site = Site::new();
    for tenant in ["acme", "globex"] {
        site.ok(&["tenant", "add", tenant]);
        site.ok(&[
            "install",
            "plugins/hello",
            "--tenant",
            tenant,
            "--mode",
            "live",
            "--schedule",
            "greet=* * * * * *",
            "--yes",
        ]);
    }
    site.ok(&[
        "install",
        "plugins/misbehaving",
        "--tenant",
        "acme",
        "--name",
        "m",
        "--skip-check",
        "--yes",
    ]);
    let listed = site.ok(&["installations"]);
    assert!(
        listed.contains("acme/hello") && listed.contains("globex/hello"),
        "{listed}"
    );
    assert!(listed.contains("* * * * * *"), "{listed}");

    let server = site.serve(&[]);
    server.wait_for(&["OK", "acme/hello greet"]);
    server.wait_for(&["OK", "globex/hello greet"]);
    site.ok(&["run-now", "acme/m", "trap"]);
    server.wait_for(&["ERROR", "acme/m trap", "notification raised"]);
    expect(
        &site.run(&["run-now", "acme/m", "nope"]),
        1,
        "no feed `nope`",
    );
    site.ok(&["disable", "acme/m"]);
    expect(&site.run(&["run-now", "acme/m", "trap"]), 1, "is disabled");
    site.ok(&["enable", "acme/m"]);
    // An installation in test mode: serve would skip its outbound feed.
    site.ok(&[
        "install",
        "plugins/hello",
        "--tenant",
        "acme",
        "--name",
        "t",
        "--yes",
    ]);
    let skipped = site.ok(&["run-now", "acme/t", "publish"]);
    assert!(
        skipped.contains("`airlock serve` skips it (nothing runs)"),
        "{skipped}"
    );
    assert!(
        !site
            .ok(&["run-now", "acme/t", "greet"])
            .contains("skips it")
    );

    let open = site.ok(&["notifications", "list"]);
    assert!(
        open.contains("OPEN") && open.contains("acme/m trap"),
        "{open}"
    );
    let id = open
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches('#')
        .to_string();
    site.ok(&["notifications", "ack", &id, "--by", "ops"]);
    assert!(
        site.ok(&["notifications", "list"])
            .contains("no open notifications")
    );
    assert!(
        site.ok(&["notifications", "list", "--all"])
            .contains("by ops")
    );

    let (code, out) = server.stop();
    assert_eq!(code, Some(0), "{out}");
    let greets = site.runs_json(&["--tenant", "globex", "--feed", "greet", "--outcome", "ok"]);
    assert!(!greets.is_empty());
    assert!(greets.iter().all(|r| field(r, "trigger") == "schedule"));
    let id = field(&greets[0], "id").to_string();
    let shown = site.ok(&["runs", "show", &id]);
    assert!(
        shown.contains("outcome    OK") && shown.contains("log"),
        "{shown}"
    );
    expect(&site.run(&["runs", "show", "999999"]), 1, "no run #999999");
    expect(
        &site.run(&["runs", "list", "--outcome", "bad"]),
        1,
        "is not one of",
    );
}

#[test]
fn sigterm_lets_runs_finish_within_the_grace_period_then_interrupts() {
    let site = Site::new();
    site.install_misbehaving();
    // Enough grace: the run in progress finishes and is recorded ok.
    let server = site.serve(&["--grace", "10s"]);
    site.ok(&["run-now", "acme/m", "write-then-wait"]);
    server.wait_for(&["start", "acme/m write-then-wait"]);
    let (code, out) = server.stop();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("OK") && out.contains("stopped"), "{out}");

    // No grace: it is recorded as interrupted, its write discarded, and it
    // is retried by the next server.
    let server = site.serve(&["--grace", "0s"]);
    site.ok(&["run-now", "acme/m", "write-then-wait"]);
    server.wait_for(&["start", "acme/m write-then-wait"]);
    let (code, out) = server.stop();
    assert_eq!(code, Some(0), "{out}");
    let interrupted = site.runs_json(&["--outcome", "interrupted"]);
    assert_eq!(interrupted.len(), 1, "{out}");
    assert!(
        field(&interrupted[0], "message")
            .as_str()
            .unwrap()
            .contains("grace period"),
        "{interrupted:?}"
    );
    assert_eq!(
        kv(&site.db, "acme", "m", "waited").as_deref(),
        Some("attempt 1"),
        "the first (finished) run's write, not the interrupted one's"
    );
    let queue = rusqlite::Connection::open(&site.db)
        .unwrap()
        .query_row("SELECT trigger, attempt FROM queue", [], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
        })
        .unwrap();
    assert_eq!(queue, ("retry".to_string(), 2));
}

pub(crate) fn file_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).unwrap();
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    bytes.extend(std::fs::read(PathBuf::from(wal)).unwrap_or_default());
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn install_from_the_cli_checks_the_connection_and_seals_the_secret() {
    let password = "Vt4-cli-shop-password-9917";
    let shop = FakeStore::start(0, "demo", password).await.unwrap();
    let site = Site::new();
    site.ok(&["tenant", "add", "acme"]);
    let secrets = site.dir.path().join("secrets.toml");
    std::fs::write(&secrets, format!("password = \"{password}\"\n")).unwrap();
    let endpoint = format!("endpoint=http://shop.test:{}/api/v1", shop.addr.port());
    let secrets_arg = secrets.display().to_string();
    let install = |extra: &[&str]| {
        let mut args = vec![
            "install",
            "plugins/custom-store",
            "--tenant",
            "acme",
            "--config",
            &endpoint,
            "--config",
            "username=demo",
            "--config-file",
            &secrets_arg,
            "--resolve",
            "shop.test=127.0.0.1",
            "--allow-network",
            "127.0.0.0/8",
        ];
        args.extend_from_slice(extra);
        site.run(&args)
    };
    expect(&install(&[]), 1, "Pass --yes");
    let out = install(&["--yes"]);
    expect(&out, 0, "test connection: ok");
    let shown = text(&out);
    assert!(shown.contains("egress     http://shop.test"), "{shown}");
    assert!(shown.contains("secret     password (set"), "{shown}");
    assert!(
        !shown.contains(password),
        "the password was printed:\n{shown}"
    );
    expect(&install(&["--yes"]), 1, "already exists");
    // The reviewer judges URLs as the stored installation (its shop origin).
    let orders = format!("http://shop.test:{}/api/v1/orders", shop.addr.port());
    let net = [
        "--resolve",
        "shop.test=127.0.0.1",
        "--allow-network",
        "127.0.0.0/8",
    ];
    let check = |url: &str| {
        let mut args = vec!["egress", "check", "acme/custom-store", url];
        args.extend_from_slice(&net);
        site.run(&args)
    };
    expect(&check(&orders), 0, "verdict    ALLOW");
    expect(&check("https://evil.example/steal"), 1, "verdict    DENY");
    expect(
        &site.run(&["egress", "check", "acme/nope", &orders]),
        1,
        "no installation",
    );
    let audit = site.ok(&["egress", "audit", "--installed"]);
    assert!(
        audit.contains("acme")
            && audit.contains("http://shop.test port")
            // The three checks above were audited: the origin has recorded use.
            && audit.contains("installation config")
            && audit.contains("  3  "),
        "{audit}"
    );

    let sealed = || {
        rusqlite::Connection::open(&site.db)
            .unwrap()
            .query_row(
                "SELECT ciphertext FROM secrets WHERE key = 'password'",
                [],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .unwrap()
    };
    let before = sealed();
    let wrong = site.run(&[
        "reauthorise",
        "acme/custom-store",
        "--config",
        "password=wrong-password",
        "--resolve",
        "shop.test=127.0.0.1",
        "--allow-network",
        "127.0.0.0/8",
        "--yes",
    ]);
    expect(&wrong, 1, "test connection failed");
    assert!(!text(&wrong).contains("wrong-password"), "{}", text(&wrong));
    assert_eq!(sealed(), before, "a failed reauthorise changes nothing");

    let bytes = file_bytes(&site.db);
    assert!(
        !bytes
            .windows(password.len())
            .any(|w| w == password.as_bytes()),
        "the password is in the database file in plain text"
    );

    // Without the master key, the sealed secret cannot be used or replaced.
    let no_key = command(
        &[
            "reauthorise",
            "acme/custom-store",
            "--config",
            "username=x",
            "--yes",
        ],
        &site.db,
    )
    .env_remove("AIRLOCK_MASTER_KEY_FILE")
    .env_remove("AIRLOCK_MASTER_KEY")
    .stdin(Stdio::null())
    .output()
    .unwrap();
    expect(&no_key, 1, "airlock keygen");
    // A server without the key says at once that those runs will fail.
    let mut keyless = command(&["serve", "--tick", "100ms"], &site.db);
    keyless
        .env_remove("AIRLOCK_MASTER_KEY_FILE")
        .env_remove("AIRLOCK_MASTER_KEY");
    let server = Server::start(keyless);
    server.wait_for(&["warning: 1 installation(s) have sealed secrets"]);
    let (code, _) = server.stop();
    assert_eq!(code, Some(0));
    // A bad reference says how to write one.
    expect(
        &airlock(&["enable", "acme"], &site.db),
        1,
        "TENANT/INSTALLATION",
    );
}

#[test]
fn upgrade_that_widens_egress_needs_approval() {
    let site = Site::new();
    site.ok(&["tenant", "add", "acme"]);
    site.ok(&["install", "plugins/hello", "--tenant", "acme", "--yes"]);
    let v2 = site.dir.path().join("hello-0.2.0");
    std::fs::create_dir_all(&v2).unwrap();
    let src = airlock_tests::plugin_dir("hello");
    std::fs::copy(src.join("plugin.wasm"), v2.join("plugin.wasm")).unwrap();
    let manifest = std::fs::read_to_string(src.join("plugin.toml"))
        .unwrap()
        .replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    let egress = "[egress]\nallow = [{ host = \"api.stripe.com\", service = \"Stripe\" }]\n";
    std::fs::write(v2.join("plugin.toml"), format!("{manifest}\n{egress}")).unwrap();
    let v2 = v2.display().to_string();
    let refused = site.run(&["upgrade", "acme/hello", &v2, "--yes"]);
    expect(&refused, 1, "widens egress");
    let shown = text(&refused);
    assert!(
        shown.contains("+ egress   https://api.stripe.com"),
        "{shown}"
    );
    assert!(
        site.ok(&["installations"]).contains("hello@0.1.0"),
        "nothing changed"
    );
    let approved = site.ok(&["upgrade", "acme/hello", &v2, "--approve-egress", "--yes"]);
    assert!(
        approved.contains("upgraded acme/hello to hello@0.2.0"),
        "{approved}"
    );
    assert!(site.ok(&["installations"]).contains("hello@0.2.0"));
}

#[test]
fn serve_keeps_going_through_a_storage_fault_and_retries_what_it_could_not_record() {
    let site = Site::new();
    site.install_misbehaving();
    let server = site.serve(&[]);
    server.wait_for(&["airlock serve:"]);
    // Another connection makes every record of a run fail: a real SQLite
    // error in serve's own writes, until the trigger is dropped.
    let conn = rusqlite::Connection::open(&site.db).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER fault BEFORE INSERT ON runs
         BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
    )
    .unwrap();
    site.ok(&["run-now", "acme/m", "count"]);
    server.wait_for(&["FAULT", "injected fault", "trying again in"]);
    assert!(
        site.runs_json(&[]).is_empty(),
        "nothing recorded during the fault"
    );
    conn.execute_batch("DROP TRIGGER fault").unwrap();
    server.wait_for(&["RETRY", "acme/m count", "host failure", "retry at"]);
    server.wait_for(&["OK", "acme/m count", "run 1"]);
    let (code, out) = server.stop();
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        kv(&site.db, "acme", "m", "count").as_deref(),
        Some("1"),
        "the unrecorded run's write was not applied; the retry's was"
    );
}
