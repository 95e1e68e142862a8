//! Operations end to end, through the library: installations stored with
//! sealed secrets, the lifecycle (enable, disable, mode, reauthorise,
//! upgrade, remove), and the scheduler driven by a manual clock, running the
//! real example components on a real SQLite file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use airlock::lifecycle::{self, InstallRequest, LifecycleError};
use airlock::runs::Mode;
use airlock::scheduler::{
    CatchUp, Event, ManualClock, Overlap, RetryPolicy, Running, Scheduler, ServeOptions,
    TestOutbound,
};
use airlock::secrets::{Keyring, MasterKey};
use airlock::storage::{InstallationRow, QueuedRun, RunFilter, RunSummary, TenantRow};
use airlock::{Airlock, SqliteStore};
use airlock_tests::fake_store::FakeStore;
use chrono::{DateTime, Duration, TimeZone, Utc};
use tempfile::TempDir;

use crate::support::{block_on, test_options};

/// A host on a fresh database, a keyring, a manual clock and the events the
/// scheduler emits.
pub(crate) struct World {
    pub(crate) host: Arc<Airlock>,
    /// The host's store as its backend, for the tests' own reads.
    store: Arc<SqliteStore>,
    key_text: String,
    keyring: Arc<Keyring>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) events: Arc<Mutex<Vec<Event>>>,
    pub(crate) db: PathBuf,
    _dir: TempDir,
}

pub(crate) fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, h, m, s).unwrap()
}

pub(crate) fn options() -> ServeOptions {
    ServeOptions {
        jitter: Duration::zero(),
        ..ServeOptions::default()
    }
}

impl World {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        let store = Arc::new(SqliteStore::open(&db).unwrap());
        let host = Arc::new(Airlock::new(store.clone(), test_options()).unwrap());
        let key_text = MasterKey::generate().to_text();
        Self {
            host,
            store,
            keyring: Arc::new(Keyring::new(
                MasterKey::from_text(&key_text).unwrap(),
                Vec::new(),
            )),
            key_text,
            clock: Arc::new(ManualClock::new(t(10, 0, 30))),
            events: Arc::default(),
            db,
            _dir: dir,
        }
    }

    pub(crate) fn store(&self) -> &SqliteStore {
        &self.store
    }

    pub(crate) fn scheduler(&self, options: ServeOptions) -> Arc<Scheduler> {
        self.scheduler_on(self.clock.clone(), options)
    }

    /// A scheduler reading the time from `clock`.
    pub(crate) fn scheduler_on(
        &self,
        clock: Arc<dyn airlock::scheduler::Clock>,
        options: ServeOptions,
    ) -> Arc<Scheduler> {
        let events = self.events.clone();
        Arc::new(Scheduler::new(
            self.host.clone(),
            Some(self.keyring.clone()),
            clock,
            options,
            Arc::new(move |e: &Event| events.lock().unwrap().push(e.clone())),
        ))
    }

    pub(crate) fn tenant(&self, id: &str) {
        self.store()
            .add_tenant(&TenantRow {
                id: id.into(),
                name: id.into(),
                created_at: 0,
            })
            .unwrap();
    }

    fn plan(
        &self,
        tenant: &str,
        plugin: &Path,
        name: &str,
        config: &[String],
        schedules: &[(&str, &str)],
    ) -> Result<lifecycle::Plan, LifecycleError> {
        block_on(lifecycle::plan_install(
            &self.host,
            &InstallRequest {
                tenant: tenant.into(),
                id: Some(name.into()),
                plugin_dir: plugin.to_path_buf(),
                assignments: config.to_vec(),
                mode: Mode::Live,
                schedules: schedules
                    .iter()
                    .map(|(f, c)| (f.to_string(), c.to_string()))
                    .collect(),
                time_zone: "Europe/London".into(),
            },
        ))
    }

    /// Installs `plugin` with these schedules; feeds not named get a yearly
    /// schedule, so only what the test names fires as its clock moves.
    pub(crate) fn install(
        &self,
        tenant: &str,
        plugin: &str,
        name: &str,
        schedules: &[(&str, &str)],
    ) {
        self.install_configured(tenant, plugin, name, schedules, &[]);
    }

    /// [`Self::install`] with config assignments (`KEY=VALUE`).
    pub(crate) fn install_configured(
        &self,
        tenant: &str,
        plugin: &str,
        name: &str,
        schedules: &[(&str, &str)],
        config: &[String],
    ) {
        let dir = airlock_tests::plugin_dir(plugin);
        let manifest = airlock::Plugin::load(&dir).unwrap().manifest;
        let mut all: Vec<(&str, &str)> = manifest
            .feeds
            .iter()
            .map(|f| (f.name.as_str(), "0 0 0 1 1 *"))
            .collect();
        all.extend_from_slice(schedules);
        let plan = self.plan(tenant, &dir, name, config, &all).unwrap();
        block_on(lifecycle::commit_install(
            self.store(),
            Some(&self.keyring),
            &plan,
            0,
        ))
        .unwrap();
    }

    pub(crate) fn queue_now(&self, tenant: &str, installation: &str, feed: &str) {
        let now = self.clock.now_ts();
        self.store()
            .enqueue(&QueuedRun {
                id: 0,
                tenant: tenant.into(),
                installation: installation.into(),
                feed: feed.into(),
                trigger: "manual".into(),
                attempt: 1,
                scheduled_at: now,
                due_at: now,
                created_at: now,
            })
            .unwrap();
    }

    pub(crate) fn runs(&self, installation: &str) -> Vec<RunSummary> {
        let mut runs = self
            .store()
            .runs(&RunFilter {
                installation: Some(installation.into()),
                limit: 100,
                ..RunFilter::default()
            })
            .unwrap();
        runs.reverse();
        runs
    }

    pub(crate) async fn stored(
        &self,
        tenant: &str,
        installation: &str,
        key: &str,
    ) -> Option<String> {
        use airlock::storage::KvBackend;
        let scope = airlock::storage::Scope {
            tenant: tenant.into(),
            installation: installation.into(),
        };
        self.store()
            .kv_get(&scope, key)
            .await
            .unwrap()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Runs `feed` of stored installation `tenant/id` once, as `serve`
    /// would load it (pinned plugin, approved grants), and returns its
    /// report.
    pub(crate) async fn run_stored(
        &self,
        tenant: &str,
        id: &str,
        feed: &str,
    ) -> airlock::runs::RunReport {
        let row = lifecycle::installation_row(self.store(), tenant, id)
            .await
            .unwrap();
        let (plugin, installation) = lifecycle::load(self.store(), Some(&self.keyring), &row)
            .await
            .unwrap();
        let request = airlock::runs::RunRequest {
            feed: feed.into(),
            trigger: airlock::runs::Trigger::Manual,
            scheduled_at: self.clock.now_ts(),
            attempt: 1,
        };
        self.host
            .run_feed(&plugin, &installation, request)
            .await
            .unwrap()
    }

    pub(crate) fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

pub(crate) trait NowTs {
    fn now_ts(&self) -> i64;
}

impl NowTs for ManualClock {
    fn now_ts(&self) -> i64 {
        use airlock::scheduler::Clock;
        self.now().timestamp()
    }
}

/// Waits until every run in progress has ended and settled.
pub(crate) async fn finish(running: &mut Running) {
    while running.join_next().await.is_some() {}
}

pub(crate) fn started(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Started {
                installation, feed, ..
            } => Some(format!("{installation} {feed}")),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_feeds_run_at_their_fire_time_for_each_tenant() {
    let w = World::new();
    for tenant in ["acme", "globex"] {
        w.tenant(tenant);
        w.install(tenant, "hello", "hello", &[("greet", "0 * * * * *")]);
    }
    let scheduler = w.scheduler(options());
    let mut running = Running::default();
    // First tick plans from now: nothing is owed for the past.
    assert_eq!(scheduler.tick(&mut running).await.unwrap(), 0);
    let planned = w.store().schedules("acme", "hello").unwrap();
    let greet = planned.iter().find(|s| s.feed == "greet").unwrap();
    assert_eq!(greet.next_fire_at, Some(t(10, 1, 0).timestamp()));
    w.clock.set(t(10, 0, 59));
    assert_eq!(
        scheduler.tick(&mut running).await.unwrap(),
        0,
        "not due yet"
    );
    w.clock.set(t(10, 1, 0));
    assert_eq!(scheduler.tick(&mut running).await.unwrap(), 2);
    finish(&mut running).await;
    for tenant in ["acme", "globex"] {
        let runs: Vec<RunSummary> = w
            .runs("hello")
            .into_iter()
            .filter(|r| r.tenant == tenant)
            .collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(
            (runs[0].trigger.as_str(), runs[0].status.as_str()),
            ("schedule", "ok")
        );
        assert_eq!(runs[0].scheduled_at, t(10, 1, 0).timestamp());
        assert_eq!(
            w.stored(tenant, "hello", "runs").await.as_deref(),
            Some("1")
        );
    }
    // The next fire is planned; the same minute does not run twice.
    assert_eq!(scheduler.tick(&mut running).await.unwrap(), 0);
    w.clock.set(t(10, 2, 0));
    assert_eq!(scheduler.tick(&mut running).await.unwrap(), 2);
    finish(&mut running).await;
    assert_eq!(
        w.stored("acme", "hello", "runs").await.as_deref(),
        Some("2")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fires_missed_during_downtime_become_one_catch_up_run() {
    let w = World::new();
    w.tenant("acme");
    w.install("acme", "hello", "hello", &[("greet", "0 0 * * * *")]);
    let scheduler = w.scheduler(options());
    let mut running = Running::default();
    scheduler.tick(&mut running).await.unwrap(); // plans 11:00
    w.clock.set(t(15, 10, 0)); // down from before 11:00 until 15:10
    assert_eq!(scheduler.tick(&mut running).await.unwrap(), 1);
    finish(&mut running).await;
    let runs = w.runs("hello");
    let greet: Vec<&RunSummary> = runs.iter().filter(|r| r.feed == "greet").collect();
    assert_eq!(greet.len(), 1);
    assert_eq!(greet[0].scheduled_at, t(15, 0, 0).timestamp());
    let queued: Vec<Event> = w
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, Event::Queued { feed, .. } if feed == "greet"))
        .collect();
    assert!(
        matches!(&queued[..], [Event::Queued { missed: 4, .. }]),
        "11:00..14:00 missed, 15:00 run: {queued:?}"
    );

    // With catch-up all:3, the three latest missed fires run, one at a time.
    let scheduler = w.scheduler(ServeOptions {
        catch_up: CatchUp::All(3),
        ..options()
    });
    w.clock.set(t(21, 30, 0));
    scheduler.tick(&mut running).await.unwrap();
    for _ in 0..3 {
        finish(&mut running).await;
        scheduler.tick(&mut running).await.unwrap();
    }
    finish(&mut running).await;
    let due: Vec<i64> = w
        .runs("hello")
        .iter()
        .filter(|r| r.feed == "greet")
        .map(|r| r.scheduled_at)
        .collect();
    assert_eq!(
        due,
        vec![
            t(15, 0, 0).timestamp(),
            t(19, 0, 0).timestamp(),
            t(20, 0, 0).timestamp(),
            t(21, 0, 0).timestamp()
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_feed_never_runs_twice_at_once() {
    let w = World::new();
    w.tenant("acme");
    w.install(
        "acme",
        "misbehaving",
        "slow",
        &[("write-then-wait", "* * * * * *")],
    );
    let scheduler = w.scheduler(options());
    let mut running = Running::default();
    scheduler.tick(&mut running).await.unwrap(); // plans 10:00:31
    w.clock.set(t(10, 0, 31));
    assert_eq!(scheduler.tick(&mut running).await.unwrap(), 1);
    // The run takes over a second of real time; meanwhile two more fires
    // come due. The first waits, the second is coalesced into it.
    for s in [32, 33] {
        w.clock.set(t(10, 0, s));
        assert_eq!(scheduler.tick(&mut running).await.unwrap(), 0, "at :{s}");
        assert_eq!(w.store().active_runs().unwrap().len(), 1);
    }
    let skipped = w
        .take_events()
        .into_iter()
        .filter(
            |e| matches!(e, Event::Skipped { reason, .. } if reason.contains("already waiting")),
        )
        .count();
    assert_eq!(skipped, 1);
    finish(&mut running).await;
    // A "Run now" joins the waiting scheduled run: one starts, never both.
    w.queue_now("acme", "slow", "write-then-wait");
    assert_eq!(scheduler.tick(&mut running).await.unwrap(), 1);
    assert_eq!(w.store().active_runs().unwrap().len(), 1);
    assert_eq!(w.store().queue().unwrap().len(), 1);
    assert_eq!(scheduler.tick(&mut running).await.unwrap(), 0, "still busy");
    finish(&mut running).await;
    assert_eq!(
        scheduler.tick(&mut running).await.unwrap(),
        1,
        "then the other"
    );
    finish(&mut running).await;
    let runs = w.runs("slow");
    assert_eq!(runs.len(), 3);
    assert!(runs[0].ended_at <= runs[1].started_at, "{runs:?}");
    assert!(runs[1].ended_at <= runs[2].started_at, "{runs:?}");

    // With overlap = skip, a fire that finds the feed busy is dropped.
    let skipper = w.scheduler(ServeOptions {
        overlap: Overlap::Skip,
        ..options()
    });
    w.clock.set(t(10, 0, 40));
    assert_eq!(skipper.tick(&mut running).await.unwrap(), 1);
    w.clock.set(t(10, 0, 41));
    assert_eq!(skipper.tick(&mut running).await.unwrap(), 0);
    finish(&mut running).await;
    assert!(
        w.take_events().iter().any(
            |e| matches!(e, Event::Skipped { reason, .. } if reason.contains("overlap: skip"))
        )
    );
    assert!(w.store().queue().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_back_off_and_give_up_with_a_notification() {
    let w = World::new();
    w.tenant("acme");
    w.install("acme", "misbehaving", "m", &[]);
    let policy = RetryPolicy {
        max_attempts: 3,
        base: Duration::seconds(60),
        max: Duration::hours(1),
    };
    let scheduler = w.scheduler(ServeOptions {
        retry: policy,
        ..options()
    });
    let mut running = Running::default();

    // The guest asks to be retried in an hour ("checked every hour").
    w.queue_now("acme", "m", "ask-retry");
    scheduler.tick(&mut running).await.unwrap();
    finish(&mut running).await;
    let queue = w.store().queue().unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!((queue[0].trigger.as_str(), queue[0].attempt), ("retry", 2));
    assert_eq!(queue[0].due_at, t(10, 0, 30).timestamp() + 3600);
    w.clock.set(t(10, 59, 0));
    assert_eq!(
        scheduler.tick(&mut running).await.unwrap(),
        0,
        "not before its delay"
    );
    w.clock.set(t(11, 0, 30));
    assert_eq!(scheduler.tick(&mut running).await.unwrap(), 1);
    finish(&mut running).await;
    w.clock.set(t(12, 0, 30));
    scheduler.tick(&mut running).await.unwrap();
    finish(&mut running).await;
    // Attempt 3 was the last: no retry left, a notification instead.
    assert!(w.store().queue().unwrap().is_empty());
    let attempts: Vec<u32> = w.runs("m").iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    let open = w.store().notifications(None, false).unwrap();
    assert_eq!(open.len(), 1);
    assert!(
        open[0].message.starts_with("gave up after 3 attempts"),
        "{open:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_and_traps_raise_one_notification_until_acknowledged() {
    let w = World::new();
    w.tenant("acme");
    w.install("acme", "misbehaving", "m", &[]);
    let scheduler = w.scheduler(options());
    let mut running = Running::default();
    for _ in 0..2 {
        w.queue_now("acme", "m", "trap");
        scheduler.tick(&mut running).await.unwrap();
        finish(&mut running).await;
    }
    let open = w.store().notifications(Some("acme"), false).unwrap();
    assert_eq!(open.len(), 1, "one open notification per feed: {open:?}");
    assert_eq!(open[0].count, 2);
    assert_eq!(
        open[0].message, "trap: wasm trap: wasm `unreachable` instruction executed",
        "the root cause, whatever RUST_BACKTRACE says"
    );
    let runs = w.runs("m");
    assert_eq!(open[0].run_id, Some(runs[1].id));
    assert!(
        w.store().queue().unwrap().is_empty(),
        "an error is not retried"
    );
    w.store().ack_notification(open[0].id, "ops", 1).unwrap();
    assert!(w.store().notifications(None, false).unwrap().is_empty());
    assert!(w.store().ack_notification(open[0].id, "ops", 2).is_err());
    // A new failure after the acknowledgement raises a new one.
    w.queue_now("acme", "m", "trap");
    scheduler.tick(&mut running).await.unwrap();
    finish(&mut running).await;
    let all = w.store().notifications(None, true).unwrap();
    assert_eq!(all.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_with_many_installations_does_not_starve_others() {
    let w = World::new();
    w.tenant("big");
    w.tenant("small");
    for i in 0..4 {
        w.install("big", "hello", &format!("h{i}"), &[]);
        w.queue_now("big", &format!("h{i}"), "greet");
    }
    w.install("small", "hello", "h", &[]);
    w.queue_now("small", "h", "greet"); // queued last
    let scheduler = w.scheduler(ServeOptions {
        max_concurrent: 2,
        max_per_tenant: 1,
        ..options()
    });
    let mut running = Running::default();
    assert_eq!(scheduler.tick(&mut running).await.unwrap(), 2);
    let first = started(&w.take_events());
    assert!(
        first.contains(&"small/h greet".to_string()),
        "small must get a slot in the first round: {first:?}"
    );
    finish(&mut running).await;
    for _ in 0..4 {
        scheduler.tick(&mut running).await.unwrap();
        finish(&mut running).await;
    }
    let done = w.store().runs(&RunFilter {
        limit: 100,
        ..RunFilter::default()
    });
    assert_eq!(done.unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn test_mode_skips_outbound_feeds_unless_dry_run() {
    let w = World::new();
    w.tenant("acme");
    w.install("acme", "hello", "hello", &[]);
    lifecycle::set_mode(w.store(), "acme", "hello", Mode::Test, None, 1)
        .await
        .unwrap();
    let scheduler = w.scheduler(options());
    let mut running = Running::default();
    w.queue_now("acme", "hello", "publish");
    w.queue_now("acme", "hello", "greet");
    scheduler.tick(&mut running).await.unwrap();
    finish(&mut running).await;
    let feeds: Vec<String> = w.runs("hello").into_iter().map(|r| r.feed).collect();
    assert_eq!(
        feeds,
        vec!["greet"],
        "inbound runs in test mode, outbound does not"
    );
    assert!(w.take_events().iter().any(
        |e| matches!(e, Event::Skipped { feed, reason, .. } if feed == "publish" && reason.contains("test mode"))
    ));
    assert_eq!(w.stored("acme", "hello", "published").await, None);

    let dry = w.scheduler(ServeOptions {
        test_outbound: TestOutbound::DryRun,
        ..options()
    });
    w.queue_now("acme", "hello", "publish");
    dry.tick(&mut running).await.unwrap();
    finish(&mut running).await;
    let last = w.runs("hello").pop().unwrap();
    assert_eq!(
        (last.feed.as_str(), last.mode.as_str()),
        ("publish", "test")
    );

    // Live: it runs (its own write, not the dry run's, is what is stored).
    lifecycle::set_mode(w.store(), "acme", "hello", Mode::Live, None, 2)
        .await
        .unwrap();
    w.clock.set(t(10, 5, 0));
    w.queue_now("acme", "hello", "publish");
    scheduler.tick(&mut running).await.unwrap();
    finish(&mut running).await;
    let last = w.runs("hello").pop().unwrap();
    assert_eq!(
        (last.feed.as_str(), last.mode.as_str(), last.status.as_str()),
        ("publish", "live", "ok")
    );
    let live_fire = t(10, 5, 0).timestamp().to_string();
    assert_eq!(
        w.stored("acme", "hello", "published").await.as_deref(),
        Some(live_fire.as_str())
    );
}

fn db_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).unwrap();
    for suffix in ["-wal", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(more) = std::fs::read(PathBuf::from(p)) {
            bytes.extend(more);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_sealed_at_rest_and_opened_only_for_their_installation() {
    let password = "Xq7-unique-shop-password-4821";
    let shop = FakeStore::start(0, "demo", password).await.unwrap();
    shop.put_order("R1001", t(9, 0, 0));
    let w = World::new();
    w.tenant("acme");
    let config = vec![
        format!("endpoint=http://shop.test:{}/api/v1", shop.addr.port()),
        "username=demo".to_string(),
        format!("password={password}"),
    ];
    let plugin = airlock_tests::plugin_dir("custom-store");
    let plan = w.plan("acme", &plugin, "shop", &config, &[]).unwrap();
    assert_eq!(
        w.host
            .check(&plan.plugin, &plan.installation, Mode::Test)
            .await
            .unwrap(),
        Ok(()),
        "test connection against the fake shop"
    );
    assert_eq!(plan.egress_added.len(), 1, "{:?}", plan.egress_added);
    lifecycle::commit_install(w.store(), Some(&w.keyring), &plan, 0)
        .await
        .unwrap();
    // No master key: refused, rather than stored in the clear.
    let other = w.plan("acme", &plugin, "shop2", &config, &[]).unwrap();
    assert!(matches!(
        lifecycle::commit_install(w.store(), None, &other, 0).await,
        Err(LifecycleError::NoMasterKey)
    ));

    let row = lifecycle::installation_row(w.store(), "acme", "shop")
        .await
        .unwrap();
    assert!(!row.config.contains_key("password"));
    let (_, inst) = lifecycle::load(w.store(), Some(&w.keyring), &row)
        .await
        .unwrap();
    assert_eq!(inst.config.secret("password"), Some(password));
    // A run with the stored config reaches the shop with the password.
    let scheduler = w.scheduler(options());
    let mut running = Running::default();
    w.queue_now("acme", "shop", "orders");
    scheduler.tick(&mut running).await.unwrap();
    finish(&mut running).await;
    let runs = w.runs("shop");
    assert_eq!(runs[0].status, "ok", "{runs:?}");
    assert!(runs[0].message.starts_with("imported 1 orders"), "{runs:?}");
    // Another key cannot open it.
    let stranger = Keyring::new(MasterKey::generate(), Vec::new());
    assert!(
        lifecycle::load(w.store(), Some(&stranger), &row)
            .await
            .is_err()
    );

    // Rotation: the new key opens nothing until the old secrets are re-sealed.
    let new_key = MasterKey::generate().to_text();
    let key = |text: &str| MasterKey::from_text(text).unwrap();
    let new_id = key(&new_key).id().to_string();
    let rotating = Keyring::new(key(&new_key), vec![key(&w.key_text)]);
    assert_eq!(
        lifecycle::reseal_secrets(w.store(), &rotating)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        lifecycle::reseal_secrets(w.store(), &rotating)
            .await
            .unwrap(),
        0
    );
    let sealed = w.store().secrets("acme", "shop").unwrap();
    assert_eq!(sealed[0].sealed.key_id, new_id);
    let only_new = Keyring::new(key(&new_key), vec![]);
    let (_, inst) = lifecycle::load(w.store(), Some(&only_new), &row)
        .await
        .unwrap();
    assert_eq!(inst.config.secret("password"), Some(password));

    let bytes = db_bytes(&w.db);
    assert!(
        !contains(&bytes, password),
        "the password is in the database file in plain text"
    );
    assert!(
        contains(&bytes, "demo"),
        "the check itself can find plain text"
    );
}

fn row(w: &World, tenant: &str, id: &str) -> InstallationRow {
    block_on(lifecycle::installation_row(w.store(), tenant, id)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn disable_enable_and_remove_keep_history_and_identity() {
    let w = World::new();
    w.tenant("acme");
    w.install("acme", "hello", "hello", &[("greet", "0 * * * * *")]);
    let scheduler = w.scheduler(options());
    let mut running = Running::default();
    scheduler.tick(&mut running).await.unwrap();
    w.clock.set(t(10, 1, 0));
    scheduler.tick(&mut running).await.unwrap();
    finish(&mut running).await;
    assert_eq!(w.runs("hello").len(), 1);

    lifecycle::set_enabled(w.store(), "acme", "hello", false, None, 1)
        .await
        .unwrap();
    w.clock.set(t(10, 5, 0));
    assert_eq!(
        scheduler.tick(&mut running).await.unwrap(),
        0,
        "disabled: nothing runs"
    );
    lifecycle::set_enabled(w.store(), "acme", "hello", true, None, 2)
        .await
        .unwrap();
    assert_eq!(
        scheduler.tick(&mut running).await.unwrap(),
        0,
        "re-enabled: fires missed while disabled are not owed"
    );
    w.clock.set(t(10, 6, 0));
    assert_eq!(scheduler.tick(&mut running).await.unwrap(), 1);
    finish(&mut running).await;
    assert_eq!(
        w.stored("acme", "hello", "runs").await.as_deref(),
        Some("2")
    );

    assert!(matches!(
        w.store().remove_tenant("acme"),
        Err(airlock::storage::StorageError::Conflict(_))
    ));
    // Not while a run is in progress: it would commit storage afterwards.
    w.install("acme", "misbehaving", "busy", &[]);
    w.queue_now("acme", "busy", "write-then-wait");
    assert_eq!(scheduler.tick(&mut running).await.unwrap(), 1);
    let err = w
        .store()
        .remove_installation("acme", "busy", None, 3)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("run in progress (write-then-wait)"),
        "{err}"
    );
    finish(&mut running).await;
    w.store()
        .remove_installation("acme", "busy", None, 3)
        .unwrap();
    w.store()
        .remove_installation("acme", "hello", None, 3)
        .unwrap();
    assert_eq!(
        w.stored("acme", "hello", "runs").await,
        None,
        "storage deleted"
    );
    assert!(w.store().schedules("acme", "hello").unwrap().is_empty());
    assert_eq!(w.runs("hello").len(), 2, "history kept");
    assert!(row_removed(&w, "acme", "hello"));
    let again = w.plan(
        "acme",
        &airlock_tests::plugin_dir("hello"),
        "hello",
        &[],
        &[],
    );
    let err = lifecycle::commit_install(w.store(), Some(&w.keyring), &again.unwrap(), 4)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("was removed"), "{err}");
    w.store().remove_tenant("acme").unwrap();
}

fn row_removed(w: &World, tenant: &str, id: &str) -> bool {
    w.store()
        .installation(tenant, id)
        .unwrap()
        .is_some_and(|r| r.removed_at.is_some())
}

/// A copy of plugins/hello with its manifest edited, as another version.
fn hello_version(dir: &Path, version: &str, extra: &str) -> PathBuf {
    let src = airlock_tests::plugin_dir("hello");
    let out = dir.join(format!("hello-{version}"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(src.join("plugin.wasm"), out.join("plugin.wasm")).unwrap();
    let manifest = std::fs::read_to_string(src.join("plugin.toml"))
        .unwrap()
        .replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
    std::fs::write(out.join("plugin.toml"), format!("{manifest}\n{extra}")).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_shows_widened_egress_and_a_changed_component_is_refused() {
    let w = World::new();
    let plugins = tempfile::tempdir().unwrap();
    w.tenant("acme");
    let v1 = hello_version(plugins.path(), "0.1.0", "");
    let plan = w
        .plan("acme", &v1, "hello", &[], &[("greet", "0 */5 * * * *")])
        .unwrap();
    lifecycle::commit_install(w.store(), Some(&w.keyring), &plan, 0)
        .await
        .unwrap();

    let v2 = hello_version(
        plugins.path(),
        "0.2.0",
        "[egress]\nallow = [{ host = \"api.stripe.com\", service = \"Stripe\" }]\n",
    );
    let before = row(&w, "acme", "hello");
    let plan = lifecycle::plan_upgrade(&w.host, Some(&w.keyring), &before, &v2, &[])
        .await
        .unwrap();
    assert_eq!(
        plan.egress_added,
        vec!["https://api.stripe.com (and subdomains)"]
    );
    assert!(plan.egress_removed.is_empty());
    let greet = plan.schedules.iter().find(|s| s.feed == "greet").unwrap();
    assert_eq!(
        (greet.cron.as_str(), greet.overridden),
        ("0 */5 * * * *", true),
        "schedule overrides survive an upgrade"
    );
    lifecycle::commit_change(w.store(), Some(&w.keyring), &before, &plan, 5)
        .await
        .unwrap();
    let after = row(&w, "acme", "hello");
    assert_eq!(after.plugin_version, "0.2.0");
    assert_eq!(
        after.approved_egress,
        vec!["https://api.stripe.com (and subdomains)"]
    );
    assert_eq!(after.created_at, before.created_at, "same identity");

    // The installed (pinned) file changes on disk: runs refuse it.
    let pinned = Path::new(&after.plugin_dir).join("plugin.wasm");
    let mut wasm = std::fs::read(&pinned).unwrap();
    wasm.extend_from_slice(b"\0tampered");
    crate::trust::overwrite(&pinned, &wasm);
    let err = lifecycle::load(w.store(), Some(&w.keyring), &after)
        .await
        .unwrap_err();
    assert!(matches!(err, LifecycleError::DigestChanged { .. }), "{err}");
    let scheduler = w.scheduler(options());
    let mut running = Running::default();
    w.queue_now("acme", "hello", "greet");
    scheduler.tick(&mut running).await.unwrap();
    finish(&mut running).await;
    let runs = w.runs("hello");
    assert_eq!(runs[0].status, "error");
    assert!(
        runs[0].message.contains("changed on disk"),
        "{}",
        runs[0].message
    );
    assert_eq!(w.store().notifications(None, false).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_install_input_is_refused_with_the_reason() {
    let w = World::new();
    w.tenant("acme");
    let hello = airlock_tests::plugin_dir("hello");
    let err = |r: Result<lifecycle::Plan, LifecycleError>| r.unwrap_err().to_string();
    assert!(err(w.plan("nobody", &hello, "h", &[], &[])).contains("no tenant `nobody`"));
    assert!(err(w.plan("acme", &hello, "Bad Name", &[], &[])).contains("not a valid id"));
    assert!(
        err(w.plan("acme", &hello, "h", &["colour=red".into()], &[]))
            .contains("unknown config key `colour`")
    );
    assert!(
        err(w.plan("acme", &hello, "h", &[], &[("nope", "0 * * * * *")]))
            .contains("no feed `nope`")
    );
    assert!(
        err(w.plan("acme", &hello, "h", &[], &[("greet", "every minute")]))
            .contains("every minute")
    );
    let bad_zone = lifecycle::plan_install(
        &w.host,
        &InstallRequest {
            tenant: "acme".into(),
            id: None,
            plugin_dir: hello.clone(),
            assignments: vec![],
            mode: Mode::Test,
            schedules: vec![],
            time_zone: "Europe/Londn".into(),
        },
    )
    .await;
    assert!(err(bad_zone).contains("Europe/Londn"));
    assert!(
        w.store().installations(None, true).unwrap().is_empty(),
        "nothing stored"
    );
}
