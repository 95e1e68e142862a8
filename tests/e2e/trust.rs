//! What the reviewer approved is what runs, one run model for checks and test
//! mode, and the store's hygiene: plugins pinned in the plugin store, the
//! approved egress enforced, widening only with explicit approval, lifecycle
//! commits that refuse a stale plan, checks and dry runs that never write,
//! removed tenants never reused, and a private database file with foreign
//! keys. Real components, a real SQLite file, fake servers on loopback.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock::egress::Decision;
use airlock::lifecycle::{self, InstallRequest, LifecycleError, Plan};
use airlock::runs::{Mode, RunRequest, Severity, Trigger};
use airlock::secrets::{Keyring, MasterKey};
use airlock::storage::{AuditFilter, InstallationRow, QueuedRun, TenantRow};
use airlock::{Airlock, SqliteStore};
use airlock_tests::fake_api::FakeApi;
use airlock_tests::fake_store::FakeStore;
use tempfile::TempDir;

use crate::support::{Harness, block_on, plugin, test_options};

/// A host on a fresh database file, with a keyring and tenant `acme`.
struct Site {
    host: Airlock,
    /// The host's store as its backend, for the tests' own reads.
    store: Arc<SqliteStore>,
    keyring: Keyring,
    dir: TempDir,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("airlock.db")).unwrap());
        let host = Airlock::new(store.clone(), test_options()).unwrap();
        let keyring = Keyring::new(MasterKey::generate(), Vec::new());
        let site = Self {
            host,
            store,
            keyring,
            dir,
        };
        site.store()
            .add_tenant(&TenantRow {
                id: "acme".into(),
                name: "Acme".into(),
                created_at: 0,
            })
            .unwrap();
        site
    }

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn plan(&self, plugin_dir: &Path, id: &str, config: &[String]) -> Result<Plan, LifecycleError> {
        block_on(lifecycle::plan_install(
            &self.host,
            &InstallRequest {
                tenant: "acme".into(),
                id: Some(id.into()),
                plugin_dir: plugin_dir.to_path_buf(),
                assignments: config.to_vec(),
                mode: Mode::Live,
                schedules: Vec::new(),
                time_zone: "Europe/London".into(),
            },
        ))
    }

    fn install(&self, plugin_dir: &Path, id: &str, config: &[String]) -> InstallationRow {
        let plan = self.plan(plugin_dir, id, config).unwrap();
        block_on(lifecycle::commit_install(
            self.store(),
            Some(&self.keyring),
            &plan,
            0,
        ))
        .unwrap()
    }

    fn row(&self, id: &str) -> InstallationRow {
        block_on(lifecycle::installation_row(self.store(), "acme", id)).unwrap()
    }

    /// A copy of `plugins/NAME` in this site's temporary directory.
    fn copy_of(&self, name: &str) -> PathBuf {
        let src = airlock_tests::plugin_dir(name);
        let out = self.dir.path().join(format!("src-{name}"));
        std::fs::create_dir_all(&out).unwrap();
        for file in ["plugin.toml", "plugin.wasm"] {
            std::fs::copy(src.join(file), out.join(file)).unwrap();
        }
        out
    }
}

/// Replaces the contents of a (possibly read-only) file.
pub(crate) fn overwrite(path: &Path, bytes: &[u8]) {
    let mut permissions = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(path, permissions).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn request(feed: &str) -> RunRequest {
    RunRequest {
        feed: feed.into(),
        trigger: Trigger::Manual,
        scheduled_at: 1_795_000_000,
        attempt: 1,
    }
}

#[test]
fn install_pins_manifest_and_component_and_refuses_either_changed() {
    let site = Site::new();
    let source = site.copy_of("hello");
    let row = site.install(&source, "hello", &[]);
    let entry = PathBuf::from(&row.plugin_dir);
    let digest = row.plugin_store.clone().expect("pinned");
    assert_eq!(
        entry,
        site.dir
            .path()
            .join("plugin-store")
            .join(&digest)
            .canonicalize()
            .unwrap()
    );
    assert!(
        std::fs::metadata(entry.join("plugin.toml"))
            .unwrap()
            .permissions()
            .readonly(),
        "entries are read-only"
    );

    // The directory the operator typed no longer matters.
    std::fs::remove_dir_all(&source).unwrap();
    let (plugin, _) = block_on(lifecycle::load(site.store(), Some(&site.keyring), &row)).unwrap();
    assert_eq!(plugin.label(), "hello@0.1.0");

    // The same plugin installed twice shares its entry.
    let again = site.install(&airlock_tests::plugin_dir("hello"), "hello-2", &[]);
    assert_eq!(again.plugin_store, row.plugin_store);

    // An edited manifest is refused exactly like an edited component.
    let manifest = std::fs::read_to_string(entry.join("plugin.toml")).unwrap();
    overwrite(
        &entry.join("plugin.toml"),
        manifest
            .replace("memory_mb = 16", "memory_mb = 1024")
            .as_bytes(),
    );
    let err = block_on(lifecycle::load(site.store(), Some(&site.keyring), &row)).unwrap_err();
    assert!(matches!(err, LifecycleError::DigestChanged { .. }), "{err}");
    assert!(err.to_string().contains("manifest or component"), "{err}");
    overwrite(&entry.join("plugin.toml"), manifest.as_bytes());
    block_on(lifecycle::load(site.store(), Some(&site.keyring), &row)).unwrap();

    let mut wasm = std::fs::read(entry.join("plugin.wasm")).unwrap();
    wasm.push(0);
    overwrite(&entry.join("plugin.wasm"), &wasm);
    let err = block_on(lifecycle::load(site.store(), Some(&site.keyring), &row)).unwrap_err();
    assert!(matches!(err, LifecycleError::DigestChanged { .. }), "{err}");
}

#[test]
fn install_refuses_a_file_that_is_not_a_component_without_running_check() {
    let site = Site::new();
    let source = site.copy_of("hello");
    std::fs::write(
        source.join("plugin.wasm"),
        b"\x13\x37 random bytes, not wasm",
    )
    .unwrap();
    let err = site.plan(&source, "hello", &[]).unwrap_err();
    assert!(
        err.to_string().contains("is not a WebAssembly component"),
        "{err}"
    );
    // A core module is named as such.
    std::fs::write(source.join("plugin.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let err = site.plan(&source, "hello", &[]).unwrap_err();
    assert!(err.to_string().contains("core WebAssembly module"), "{err}");
    assert!(site.store().installations(None, true).unwrap().is_empty());
}

fn probe_config(api: &FakeApi, origin: &str) -> Vec<String> {
    let p = api.addr.port();
    vec![
        format!("allowed_url=http://{origin}:{p}/ok"),
        format!("post_url=http://{origin}:{p}/echo"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_enforce_the_stored_egress_not_what_the_manifest_would_grant() {
    let site = Site::new();
    let api = FakeApi::start().await.unwrap();
    let row = site.install(
        &airlock_tests::plugin_dir("egress-probe"),
        "probe",
        &probe_config(&api, "api.test"),
    );
    let origin = format!("http://api.test port {}", api.addr.port());
    assert_eq!(row.approved_egress, std::slice::from_ref(&origin));
    let run = async |row: &InstallationRow| {
        let (plugin, inst) = lifecycle::load(site.store(), Some(&site.keyring), row)
            .await
            .unwrap();
        site.host
            .run_feed(&plugin, &inst, request("probe"))
            .await
            .unwrap()
    };
    let report = run(&row).await;
    assert!(
        matches!(report.http[0].decision, Decision::Allowed { .. }),
        "{:?}",
        report.http
    );

    // The stored approval is what counts: approve nothing, and the same
    // manifest and config reach nothing.
    let mut narrowed = row.clone();
    narrowed.approved_rules = Some(Vec::new());
    site.store()
        .update_installation(&narrowed, None, None)
        .unwrap();
    let narrowed = site.row("probe");
    let report = run(&narrowed).await;
    assert!(
        matches!(report.http[0].decision, Decision::Denied { .. }),
        "{:?}",
        report.http
    );

    // An installation from before rules were stored (plugin read from the
    // directory it was installed from) gets only what the manifest grants
    // whose text the operator approved.
    let mut legacy = site.row("probe");
    legacy.plugin_store = None;
    legacy.plugin_dir = airlock_tests::plugin_dir("egress-probe")
        .display()
        .to_string();
    legacy.approved_rules = None;
    legacy.approved_egress = Vec::new();
    site.store()
        .update_installation(&legacy, None, None)
        .unwrap();
    let legacy = site.row("probe");
    let (_, inst) = lifecycle::load(site.store(), Some(&site.keyring), &legacy)
        .await
        .unwrap();
    assert_eq!(inst.approved_egress, Some(Vec::new()));
    legacy_with_approval(&site, legacy, &origin).await;
}

async fn legacy_with_approval(site: &Site, mut legacy: InstallationRow, origin: &str) {
    legacy.approved_egress = vec![origin.to_string()];
    site.store()
        .update_installation(&legacy, None, None)
        .unwrap();
    let legacy = site.row("probe");
    let (plugin, inst) = lifecycle::load(site.store(), Some(&site.keyring), &legacy)
        .await
        .unwrap();
    let grants = site.host.grants(&plugin, &inst).unwrap();
    let granted: Vec<String> = grants.granted.iter().map(|g| g.rule.to_string()).collect();
    assert_eq!(granted, [origin.to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reauthorise_to_a_new_origin_needs_the_same_approval_as_an_upgrade() {
    let site = Site::new();
    let shop = FakeStore::start(0, "demo", "right-password").await.unwrap();
    let config = |host: &str| {
        vec![
            format!("endpoint=http://{host}:{}/api/v1", shop.addr.port()),
            "username=demo".to_string(),
            "password=right-password".to_string(),
        ]
    };
    site.install(
        &airlock_tests::plugin_dir("custom-store"),
        "shop",
        &config("shop.test"),
    );
    let row = site.row("shop");
    let plan = lifecycle::plan_reauthorise(
        &site.host,
        Some(&site.keyring),
        &row,
        &[format!(
            "endpoint=http://api.test:{}/api/v1",
            shop.addr.port()
        )],
    )
    .await
    .unwrap();
    assert_eq!(
        plan.egress_added,
        [format!("http://api.test port {}", shop.addr.port())]
    );
    let err = plan.require_approval(false).unwrap_err();
    assert!(err.to_string().contains("--approve-egress"), "{err}");
    plan.require_approval(true).unwrap();

    // New credentials for the same origin widen nothing.
    let same = lifecycle::plan_reauthorise(
        &site.host,
        Some(&site.keyring),
        &row,
        &["username=other".to_string()],
    )
    .await
    .unwrap();
    same.require_approval(false).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_planned_before_another_landed_is_refused_and_saves_nothing() {
    let site = Site::new();
    site.install(&airlock_tests::plugin_dir("hello"), "hello", &[]);
    let before = site.row("hello");
    let plan = lifecycle::plan_reauthorise(
        &site.host,
        Some(&site.keyring),
        &before,
        &["greeting=hi".to_string()],
    )
    .await
    .unwrap();
    // While the operator looks at the reauthorise prompt, someone disables it.
    lifecycle::set_enabled(site.store(), "acme", "hello", false, None, 5)
        .await
        .unwrap();
    let err = lifecycle::commit_change(site.store(), Some(&site.keyring), &before, &plan, 6)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("changed since you started"),
        "{err}"
    );
    let after = site.row("hello");
    assert!(!after.enabled, "the disable is not reverted");
    assert_ne!(
        after.config.get("greeting").map(String::as_str),
        Some("hi"),
        "nothing saved"
    );

    // Planned again against the current revision, it goes through.
    let plan = lifecycle::plan_reauthorise(
        &site.host,
        Some(&site.keyring),
        &after,
        &["greeting=hi".to_string()],
    )
    .await
    .unwrap();
    let saved = lifecycle::commit_change(site.store(), Some(&site.keyring), &after, &plan, 7)
        .await
        .unwrap();
    assert_eq!(saved.revision, after.revision + 1);
    assert!(!site.row("hello").enabled);

    // A removal confirmed against a stale read is refused too.
    let err = lifecycle::remove(site.store(), &after, 8)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("changed since you started"),
        "{err}"
    );
    lifecycle::remove(site.store(), &site.row("hello"), 8)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_never_writes_and_its_requests_are_audited() {
    let h = Harness::new();
    let p = plugin("misbehaving");
    let inst = crate::support::installation(&p, "acme", "bad", &[]);
    let answer = h.host.check(&p, &inst, Mode::Test).await.unwrap();
    assert_eq!(answer, Err("this plugin only exists to misbehave".into()));
    assert_eq!(
        h.stored("acme", "bad", "checked").await,
        None,
        "its checkpoint wrote nothing"
    );
    let audit = h
        .store
        .audit_log(&AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        (
            audit[0].feed.as_str(),
            audit[0].host.as_str(),
            audit[0].decision.as_str()
        ),
        ("check", "evil.example", "denied")
    );
    assert_eq!(audit[0].run_id, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_mode_dry_run_of_an_outbound_feed_commits_nothing() {
    let h = Harness::new();
    let p = plugin("misbehaving");
    let mut inst = crate::support::installation(&p, "acme", "bad", &[]);
    inst.mode = Mode::Test;
    let report = h
        .host
        .run_feed(&p, &inst, request("checkpoint-outbound"))
        .await
        .unwrap();
    assert_eq!(report.severity(), Severity::Ok, "{:?}", report.end);
    assert!(!report.committed);
    assert!(report.storage_committed.is_empty());
    assert_eq!(
        report.storage_discarded.len(),
        2,
        "{:?}",
        report.storage_discarded
    );
    assert!(
        report
            .storage_note
            .as_deref()
            .is_some_and(|n| n.starts_with("not committed: test mode")),
        "{:?}",
        report.storage_note
    );
    assert_eq!(
        h.stored("acme", "bad", "cursor").await,
        None,
        "the cursor did not move"
    );

    // Live, the same feed commits; an inbound feed in test mode commits too.
    inst.mode = Mode::Live;
    let report = h
        .host
        .run_feed(&p, &inst, request("checkpoint-outbound"))
        .await
        .unwrap();
    assert!(report.committed && report.storage_note.is_none());
    assert_eq!(
        h.stored("acme", "bad", "cursor").await.as_deref(),
        Some("advanced")
    );
    inst.mode = Mode::Test;
    h.host.run_feed(&p, &inst, request("count")).await.unwrap();
    assert_eq!(h.stored("acme", "bad", "count").await.as_deref(), Some("1"));
}

#[test]
fn schedule_keeps_the_installation_time_zone_unless_given() {
    let site = Site::new();
    site.install(&airlock_tests::plugin_dir("hello"), "hello", &[]);
    let s = block_on(lifecycle::set_schedule(
        site.store(),
        "acme",
        "hello",
        lifecycle::ScheduleChange {
            feed: "greet",
            cron: Some("0 0 9 * * *"),
            time_zone: None,
        },
        None,
        1,
    ))
    .unwrap();
    assert_eq!(s.time_zone, "Europe/London");
    let s = block_on(lifecycle::set_schedule(
        site.store(),
        "acme",
        "hello",
        lifecycle::ScheduleChange {
            feed: "greet",
            cron: None,
            time_zone: Some("America/New_York"),
        },
        None,
        2,
    ))
    .unwrap();
    assert_eq!(
        (s.time_zone.as_str(), s.overridden),
        ("America/New_York", false)
    );
}

#[test]
fn a_removed_tenant_id_is_never_reused() {
    let site = Site::new();
    site.install(&airlock_tests::plugin_dir("hello"), "hello", &[]);
    block_on(lifecycle::remove(site.store(), &site.row("hello"), 1)).unwrap();
    site.store().remove_tenant("acme").unwrap();
    assert!(site.store().tenants().unwrap().is_empty());
    assert!(!site.store().tenant_exists("acme").unwrap());
    let err = site
        .store()
        .add_tenant(&TenantRow {
            id: "acme".into(),
            name: "New Acme".into(),
            created_at: 2,
        })
        .unwrap_err();
    assert!(err.to_string().contains("was removed"), "{err}");
    let err = site
        .plan(&airlock_tests::plugin_dir("hello"), "hello2", &[])
        .unwrap_err();
    assert!(err.to_string().contains("no tenant `acme`"), "{err}");
}

#[test]
fn rows_that_belong_to_no_installation_are_refused() {
    let site = Site::new();
    let err = site
        .store()
        .enqueue(&QueuedRun {
            id: 0,
            tenant: "acme".into(),
            installation: "ghost".into(),
            feed: "greet".into(),
            trigger: "manual".into(),
            attempt: 1,
            scheduled_at: 0,
            due_at: 0,
            created_at: 0,
        })
        .unwrap_err();
    assert!(format!("{err:?}").contains("FOREIGN KEY"), "{err:?}");
}

#[cfg(unix)]
#[test]
fn the_database_and_its_wal_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    site.install(&airlock_tests::plugin_dir("hello"), "hello", &[]);
    let db = site.dir.path().join("airlock.db");
    for file in [
        db.clone(),
        db.with_extension("db-wal"),
        db.with_extension("db-shm"),
    ] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

#[test]
fn the_cli_holds_installations_to_what_was_approved() {
    use crate::cli::{airlock, expect};
    let site = Site::new();
    let db = site.dir.path().join("cli.db");
    expect(
        &airlock(&["tenant", "add", "acme"], &db),
        0,
        "added tenant acme",
    );

    // --skip-check still compiles the component.
    let source = site.copy_of("hello");
    std::fs::write(source.join("plugin.wasm"), b"random bytes").unwrap();
    let source = source.display().to_string();
    let install = [
        "install",
        &source,
        "--tenant",
        "acme",
        "--skip-check",
        "--yes",
    ];
    expect(&airlock(&install, &db), 1, "is not a WebAssembly component");

    // A new endpoint origin is refused without --approve-egress.
    let probe = [
        "install",
        "plugins/egress-probe",
        "--tenant",
        "acme",
        "--yes",
    ];
    let mut with_url = probe.to_vec();
    with_url.extend(["--config", "allowed_url=https://one.example/x"]);
    expect(
        &airlock(&with_url, &db),
        0,
        "test connection: ok (test mode)",
    );
    let reauthorise = [
        "reauthorise",
        "acme/egress-probe",
        "--config",
        "allowed_url=https://two.example/x",
        "--yes",
    ];
    let refused = airlock(&reauthorise, &db);
    expect(&refused, 1, "--approve-egress");
    assert!(
        crate::cli::text(&refused).contains("+ egress   https://two.example"),
        "the diff is shown"
    );
    let mut approved = reauthorise.to_vec();
    approved.push("--approve-egress");
    expect(&airlock(&approved, &db), 0, "saved acme/egress-probe");

    // An installation from before the plugin store is listed with a warning
    // until a reauthorise pins it.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE installations SET plugin_store = NULL", [])
        .unwrap();
    let listed = airlock(&["installations"], &db);
    expect(&listed, 0, "warning: not pinned");
    expect(
        &airlock(&["reauthorise", "acme/egress-probe", "--yes"], &db),
        0,
        "saved",
    );
    let listed = crate::cli::text(&airlock(&["installations"], &db));
    assert!(!listed.contains("not pinned"), "{listed}");

    // A domain the operator permits after an installation was approved is
    // not approved for it: the audit of installed plugins says so.
    let misbehaving = ["install", "plugins/misbehaving", "--tenant", "acme"];
    let mut skip = misbehaving.to_vec();
    skip.extend(["--skip-check", "--yes"]);
    expect(&airlock(&skip, &db), 0, "NOT GRANTED api.allowed.test");
    let table = site.dir.path().join("permitted.toml");
    std::fs::write(&table, "[domains]\n\"allowed.test\" = \"Test APIs\"\n").unwrap();
    let table = table.display().to_string();
    let audit = [
        "egress",
        "audit",
        "--installed",
        "--permitted-domains",
        &table,
    ];
    let shown = crate::cli::text(&airlock(&audit, &db));
    assert!(
        shown.lines().any(|l| l.contains("misbehaving")
            && l.contains("not approved")
            && l.contains("https://api.allowed.test")),
        "{shown}"
    );

    // A removed tenant's id is not reused.
    expect(
        &airlock(&["remove", "acme/egress-probe", "--yes"], &db),
        0,
        "removed",
    );
    expect(
        &airlock(&["remove", "acme/misbehaving", "--yes"], &db),
        0,
        "removed",
    );
    expect(
        &airlock(&["tenant", "remove", "acme"], &db),
        0,
        "removed tenant",
    );
    expect(&airlock(&["tenant", "add", "acme"], &db), 1, "was removed");
}

#[test]
fn a_data_directory_moved_with_its_plugin_store_keeps_running() {
    let parent = tempfile::tempdir().unwrap();
    let before = parent.path().join("before");
    let keyring = {
        std::fs::create_dir(&before).unwrap();
        let store = Arc::new(SqliteStore::open(&before.join("airlock.db")).unwrap());
        let site = Site {
            host: Airlock::new(store.clone(), test_options()).unwrap(),
            store,
            keyring: Keyring::new(MasterKey::generate(), Vec::new()),
            dir: tempfile::tempdir().unwrap(),
        };
        site.store()
            .add_tenant(&TenantRow {
                id: "acme".into(),
                name: "Acme".into(),
                created_at: 0,
            })
            .unwrap();
        site.install(&airlock_tests::plugin_dir("hello"), "hello", &[]);
        site.keyring
    };
    let after = parent.path().join("after");
    std::fs::rename(&before, &after).unwrap();
    let store = SqliteStore::open(&after.join("airlock.db")).unwrap();
    let row = block_on(lifecycle::installation_row(&store, "acme", "hello")).unwrap();
    assert!(
        !Path::new(&row.plugin_dir).exists(),
        "recorded where it was"
    );
    let (plugin, _) = block_on(lifecycle::load(&store, Some(&keyring), &row)).unwrap();
    assert!(plugin.dir.starts_with(&after), "{}", plugin.dir.display());
}
