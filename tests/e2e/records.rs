//! The tenant's shared records through a real guest (`plugins/records-probe`,
//! granted reading `orders` and writing `stock`): per-consumer pending sets
//! and acknowledgements, a change making a record pending again, un-ack,
//! annotations, a failed run keeping nothing, grants enforced from what was
//! approved, and tenants kept apart.

use airlock::lifecycle::{self, InstallRequest};
use airlock::runs::Mode as RunMode;
use airlock::runs::{Mode, RunReport};
use airlock::storage::{PLATFORM_WRITER, PageLimit, RecordWrite, StoredRecord};

use crate::operations::World;

/// An order body for record `id`.
fn order(id: &str, status: &str) -> String {
    format!(
        r#"{{"id":"{id}","number":"{id}","status":"{status}","currency":"GBP","placed_at":"2026-11-25T10:00:00Z","customer":{{"email":"a@example.com","name":"A"}},"lines":[],"totals":{{"total":"0.00"}}}}"#
    )
}

/// The shop writes orders `ids` for `tenant`.
fn shop_orders(w: &World, tenant: &str, ids: &[&str]) {
    let writes: Vec<RecordWrite> = ids
        .iter()
        .map(|id| RecordWrite {
            collection: "orders".into(),
            id: id.to_string(),
            body: Some(order(id, "processing")),
        })
        .collect();
    w.store()
        .write_records(tenant, PLATFORM_WRITER, &writes, 1)
        .unwrap();
}

fn message(report: &RunReport) -> String {
    report.end.summary()
}

/// A world with tenant `acme` and records-probe installed as `name`s.
fn world(names: &[&str]) -> World {
    let w = World::new();
    w.tenant("acme");
    for name in names {
        w.install("acme", "records-probe", name, &[]);
    }
    w
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_exports_what_is_pending_for_it_and_acknowledges_it() {
    let w = world(&["xero"]);
    shop_orders(&w, "acme", &["o-1", "o-2", "o-3"]);
    // Pages of two: the cursor carries the export past the first page.
    let first = w.run_stored("acme", "xero", "export-orders").await;
    assert_eq!(message(&first), "exported: o-1,o-2,o-3");
    assert!(first.committed);
    assert_eq!((first.records.acks, first.records.annotations), (3, 3));
    assert!(first.records.kept);
    let again = w.run_stored("acme", "xero", "export-orders").await;
    assert_eq!(
        message(&again),
        "exported: ",
        "acknowledged: nothing pending"
    );
    // Who acknowledged which version: the platform can ask.
    let acks = w.store().record_acks("acme", "orders", "o-2").unwrap();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].installation, "xero");
    assert_eq!(acks[0].version, 2);
    // A change after the ack makes it pending again; so does an un-ack.
    shop_orders(&w, "acme", &["o-2"]);
    assert!(
        w.store()
            .unack_record("acme", "xero", "orders", "o-3")
            .unwrap()
    );
    let third = w.run_stored("acme", "xero", "export-orders").await;
    assert_eq!(message(&third), "exported: o-3,o-2", "by version");
    // Its annotations are its own and were kept with the run.
    let notes = w
        .store()
        .record_annotations("acme", "xero", "orders", "o-1")
        .unwrap();
    assert_eq!(notes.external_ref.as_deref(), Some("X-o-1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_consumers_keep_independent_pending_sets() {
    let w = world(&["xero", "staingard"]);
    shop_orders(&w, "acme", &["o-1", "o-2"]);
    let xero = w.run_stored("acme", "xero", "export-orders").await;
    assert_eq!(message(&xero), "exported: o-1,o-2");
    let staingard = w.run_stored("acme", "staingard", "export-orders").await;
    assert_eq!(
        message(&staingard),
        "exported: o-1,o-2",
        "xero's acks are not staingard's"
    );
    let pending = w
        .store()
        .pending_records("acme", "staingard", "orders", 0, PageLimit::records(10))
        .unwrap()
        .records;
    assert!(pending.is_empty());
    assert!(
        w.store()
            .record_annotations("acme", "staingard", "orders", "o-1")
            .unwrap()
            .external_ref
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_keeps_none_of_its_writes_nor_acknowledgements() {
    let w = world(&["xero"]);
    shop_orders(&w, "acme", &["o-1"]);
    let failed = w.run_stored("acme", "xero", "fail-after-writes").await;
    assert_eq!(message(&failed), "failing after 1");
    assert!(!failed.committed);
    assert_eq!((failed.records.puts, failed.records.acks), (3, 1));
    assert!(!failed.records.kept, "the report says they were discarded");
    assert!(
        w.store()
            .record("acme", "stock", "sku-1")
            .unwrap()
            .is_none(),
        "its stock writes were discarded"
    );
    assert!(
        w.store()
            .record_acks("acme", "orders", "o-1")
            .unwrap()
            .is_empty()
    );
    let pending = w
        .store()
        .pending_records("acme", "xero", "orders", 0, PageLimit::records(10))
        .unwrap()
        .records;
    assert_eq!(pending.len(), 1, "still pending for the next run");
    assert!(
        w.store()
            .record_annotations("acme", "xero", "orders", "o-1")
            .unwrap()
            .external_ref
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_is_held_to_its_grants_and_to_the_schemas() {
    let w = world(&["probe"]);
    let report = w.run_stored("acme", "probe", "trespass").await;
    let seen = message(&report);
    for expected in [
        "get-customers=not-granted",
        "put-orders=not-granted",
        "get-stock=not-granted",
        "put-widgets=unknown-collection",
        "put-not-json=invalid",
        "put-negative=invalid",
        "empty-id=invalid-argument",
        "bad-cursor=invalid-argument",
    ] {
        assert!(seen.contains(expected), "{expected} in {seen}");
    }
    assert!(
        seen.contains("negative-says=[/quantity"),
        "the schema error names the field: {seen}"
    );
    assert!(
        w.store()
            .record("acme", "stock", "sku-x")
            .unwrap()
            .is_none(),
        "nothing invalid was written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_are_made_as_the_installation_and_seen_by_the_change_feed() {
    let w = world(&["shop"]);
    let report = w.run_stored("acme", "shop", "import-stock").await;
    assert_eq!(message(&report), "wrote 3 stock");
    let stock: StoredRecord = w.store().record("acme", "stock", "sku-2").unwrap().unwrap();
    assert_eq!(stock.writer, "shop");
    let body: serde_json::Value = serde_json::from_str(stock.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["quantity"], 5);
    // The orders change feed, deletions included, in pages of two.
    shop_orders(&w, "acme", &["o-1", "o-2", "o-3"]);
    w.store()
        .write_records(
            "acme",
            PLATFORM_WRITER,
            &[RecordWrite {
                collection: "orders".into(),
                id: "o-2".into(),
                body: None,
            }],
            2,
        )
        .unwrap();
    let changes = w.run_stored("acme", "shop", "changes").await;
    assert_eq!(message(&changes), "live=2 deleted=1 pages=2");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_sees_its_own_annotations_before_they_are_committed() {
    let w = world(&["probe"]);
    let report = w.run_stored("acme", "probe", "read-own-writes").await;
    assert_eq!(
        message(&report),
        "own-stock=not-granted notes=first flag=awaiting-action"
    );
    assert!(
        w.store().record("acme", "stock", "mine").unwrap().is_none(),
        "put then deleted in the run: not written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_tenants_records_are_never_another_tenants() {
    let w = world(&["xero"]);
    w.tenant("globex");
    w.install("globex", "records-probe", "xero", &[]);
    shop_orders(&w, "acme", &["secret-order"]);
    let report = w.run_stored("globex", "xero", "export-orders").await;
    assert_eq!(message(&report), "exported: ");
    let acme = w.run_stored("acme", "xero", "export-orders").await;
    assert_eq!(message(&acme), "exported: secret-order");
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_use_the_approved_grants_and_widening_them_needs_approval() {
    let w = world(&["xero"]);
    shop_orders(&w, "acme", &["o-1"]);
    // What was approved is what runs: an installation with no stored grant
    // (made before records existed) may read nothing, whatever its
    // manifest says.
    let conn = rusqlite::Connection::open(&w.db).unwrap();
    conn.execute("UPDATE installations SET approved_data = NULL", [])
        .unwrap();
    let report = w.run_stored("acme", "xero", "export-orders").await;
    assert!(
        message(&report).starts_with("pending: not-granted"),
        "{}",
        message(&report)
    );
    // An upgrade whose manifest reads one more collection needs approval.
    let dir = tempfile::tempdir().unwrap();
    let source = airlock_tests::plugin_dir("records-probe");
    for file in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    let manifest = std::fs::read_to_string(dir.path().join("plugin.toml")).unwrap();
    let wider = manifest
        .replace(
            r#"reads = ["orders"]"#,
            r#"reads = ["orders", "customers"]"#,
        )
        .replace(r#"version = "0.1.0""#, r#"version = "0.2.0""#);
    std::fs::write(dir.path().join("plugin.toml"), wider).unwrap();
    let row = lifecycle::installation_row(w.store(), "acme", "xero")
        .await
        .unwrap();
    let plan = lifecycle::plan_upgrade(&w.host, None, &row, dir.path(), &[])
        .await
        .unwrap();
    assert_eq!(
        plan.data_added,
        ["read customers", "read orders", "write stock"]
    );
    let err = plan.require_data_approval(false).unwrap_err().to_string();
    assert!(err.contains("--approve-data"), "{err}");
    plan.require_data_approval(true).unwrap();
    // A fresh install shows every grant for approval.
    let install = lifecycle::plan_install(
        &w.host,
        &InstallRequest {
            tenant: "acme".into(),
            id: Some("other".into()),
            plugin_dir: source,
            assignments: Vec::new(),
            mode: Mode::Live,
            schedules: Vec::new(),
            time_zone: "UTC".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(install.data_added, ["read orders", "write stock"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_flooding_the_records_is_stopped_at_its_caps_and_the_host_goes_on() {
    let w = world(&["counted"]);
    w.install_configured(
        "acme",
        "records-probe",
        "heavy",
        &[],
        &["flood_kib=1000".to_string()],
    );
    // The manifest allows 500 record changes a run.
    let counted = w.run_stored("acme", "counted", "flood").await;
    assert!(
        message(&counted).starts_with("accepted=500 then quota-exceeded"),
        "{}",
        message(&counted)
    );
    // Records of 1,000 KiB: the run's 64 MiB of record writes comes first.
    let heavy = w.run_stored("acme", "heavy", "flood").await;
    assert!(
        message(&heavy).starts_with("accepted=65 then quota-exceeded"),
        "{}",
        message(&heavy)
    );
    assert!(message(&heavy).contains("64 MiB"), "{}", message(&heavy));
    // The host goes on: the next run of either works.
    shop_orders(&w, "acme", &["o-1"]);
    let next = w.run_stored("acme", "counted", "export-orders").await;
    assert_eq!(message(&next), "exported: o-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn test_mode_runs_and_checks_change_no_records() {
    let w = world(&["xero"]);
    shop_orders(&w, "acme", &["o-1"]);
    lifecycle::set_mode(w.store(), "acme", "xero", RunMode::Test, None, 1)
        .await
        .unwrap();
    // An inbound feed in test mode runs and commits its own storage, but
    // the shared records are left as they were.
    let report = w.run_stored("acme", "xero", "export-orders").await;
    assert_eq!(message(&report), "exported: o-1");
    assert_eq!(report.records.acks, 1);
    assert!(!report.records.kept, "test mode keeps no record changes");
    assert!(
        w.store()
            .record_acks("acme", "orders", "o-1")
            .unwrap()
            .is_empty()
    );
    let stock = w.run_stored("acme", "xero", "import-stock").await;
    assert!(stock.committed && !stock.records.kept);
    assert!(
        w.store()
            .record("acme", "stock", "sku-1")
            .unwrap()
            .is_none()
    );
    // "Test connection" is refused the records (the probe's check passes
    // only then), in test mode and in live mode.
    let row = lifecycle::installation_row(w.store(), "acme", "xero")
        .await
        .unwrap();
    let (plugin, installation) = lifecycle::load(w.store(), None, &row).await.unwrap();
    for mode in [RunMode::Test, RunMode::Live] {
        let checked = w.host.check(&plugin, &installation, mode).await.unwrap();
        assert_eq!(checked, Ok(()), "{mode:?}");
    }
}

/// A trial run (`airlock run` of a plugin directory under a name that is
/// not installed) reaches no records unless told to, and then only those of
/// a tenant that exists.
#[test]
fn a_trial_run_gets_records_only_with_grant_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "plugins/records-probe", "--feed", "import-stock"];
        args.extend_from_slice(extra);
        let out = crate::cli::command(&args, &db).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (_, text) = run(&[]);
    assert!(text.contains("records    none"), "{text}");
    assert!(text.contains("put: not-granted"), "{text}");
    let (code, text) = run(&["--grant-data", "--tenant", "acme"]);
    assert_ne!(code, Some(0));
    assert!(text.contains("no tenant `acme`"), "{text}");
    let added = crate::cli::command(&["tenant", "add", "acme"], &db)
        .output()
        .unwrap();
    assert!(added.status.success());
    let (code, text) = run(&["--grant-data", "--tenant", "acme", "--mode", "live"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("records    read orders, write stock"),
        "{text}"
    );
    assert!(text.contains("wrote 3 stock"), "{text}");
    assert!(text.contains("records: 3 put(s)"), "{text}");
}
