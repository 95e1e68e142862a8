//! The tenant's shared records (`RecordStore`): versions per tenant,
//! tombstones, pages, each consumer's acknowledgements and pending set, and
//! each installation's annotations. A run's effects are committed through
//! [`CommitEffects`], as the backend's run ledger commits them.

use std::sync::Arc;

use super::CommitEffects;
use crate::storage::records::MAX_NOTES_KEPT;
use crate::storage::{
    AnnotationChange, Annotations, PageLimit, RecordAck, RecordAnnotation, RecordEffects,
    RecordStore, RecordWrite, Registry, Scope, StorageError, StoredRecord, TenantRow,
};

/// The tenants the behaviours write to: acme and globex.
async fn tenants<S: Registry + ?Sized>(store: &S) {
    for id in ["acme", "globex"] {
        store
            .add_tenant(TenantRow {
                id: id.into(),
                name: id.into(),
                created_at: 0,
            })
            .await
            .unwrap();
    }
}

fn put(collection: &str, id: &str, body: &str) -> RecordWrite {
    RecordWrite {
        collection: collection.into(),
        id: id.into(),
        body: Some(body.into()),
    }
}

fn delete(collection: &str, id: &str) -> RecordWrite {
    RecordWrite {
        collection: collection.into(),
        id: id.into(),
        body: None,
    }
}

fn ids(records: &[StoredRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

fn scope(installation: &str) -> Scope {
    Scope {
        tenant: "acme".into(),
        installation: installation.into(),
    }
}

fn ack(id: &str, version: i64) -> RecordAck {
    RecordAck {
        collection: "orders".into(),
        id: id.into(),
        version,
    }
}

fn annotate(collection: &str, id: &str, change: AnnotationChange) -> RecordAnnotation {
    RecordAnnotation {
        collection: collection.into(),
        id: id.into(),
        change,
    }
}

/// Commits `effects` as a run of acme's `installation` at `now`.
async fn run<S: CommitEffects + ?Sized>(
    store: &S,
    installation: &str,
    effects: RecordEffects,
    now: i64,
) {
    store
        .commit_record_effects(&scope(installation), &effects, now)
        .await
        .unwrap();
}

/// The ids of acme's orders pending for `consumer`.
async fn pending<S: RecordStore + ?Sized>(store: &S, consumer: &str) -> Vec<String> {
    let page = store
        .pending_records("acme", consumer, "orders", 0, PageLimit::records(100))
        .await
        .unwrap();
    page.records.into_iter().map(|r| r.id).collect()
}

pub(crate) async fn versions_rise_per_tenant_and_a_delete_leaves_a_tombstone<S>(store: Arc<S>)
where
    S: RecordStore + Registry + ?Sized,
{
    tenants(&*store).await;
    let v = store
        .write_records(
            "acme",
            "platform",
            vec![put("orders", "1", "{}"), put("products", "p", "{}")],
            1,
        )
        .await
        .unwrap();
    assert_eq!(v, [1, 2], "one counter for all the tenant's collections");
    assert_eq!(
        store
            .write_records("globex", "platform", vec![put("orders", "1", "{}")], 1)
            .await
            .unwrap(),
        [1],
        "another tenant counts on its own"
    );
    assert_eq!(
        store
            .write_records("acme", "platform", vec![delete("orders", "1")], 2)
            .await
            .unwrap(),
        [3]
    );
    assert_eq!(
        store
            .write_records("acme", "platform", vec![delete("orders", "1")], 2)
            .await
            .unwrap(),
        [3],
        "deleting it again changes nothing: the record keeps its version"
    );
    assert_eq!(
        store
            .write_records("acme", "platform", vec![delete("orders", "never")], 2)
            .await
            .unwrap(),
        [0],
        "a record never written has version 0"
    );
    assert_eq!(store.record("acme", "orders", "never").await.unwrap(), None);
    let changes = store
        .record_changes("acme", "orders", 0, PageLimit::records(10))
        .await
        .unwrap()
        .records;
    assert_eq!(changes.len(), 1);
    assert!(changes[0].is_deleted());
    assert_eq!(
        (changes[0].version, changes[0].updated_at),
        (3, 2),
        "the tombstone has the delete's version and time"
    );
    assert_eq!(
        store.record("acme", "orders", "1").await.unwrap().as_ref(),
        Some(&changes[0])
    );
    assert!(
        store
            .record_changes("acme", "orders", 3, PageLimit::records(10))
            .await
            .unwrap()
            .records
            .is_empty()
    );
    // The next write takes the next version: an unused one is a gap at most.
    let next = store
        .write_records(
            "acme",
            "platform",
            vec![put("orders", "1", r#"{"a":1}"#)],
            3,
        )
        .await
        .unwrap();
    assert!(next[0] > 3, "versions only rise: {next:?}");
    let record = store.record("acme", "orders", "1").await.unwrap().unwrap();
    assert_eq!(
        (record.body.as_deref(), record.writer.as_str()),
        (Some(r#"{"a":1}"#), "platform")
    );
    assert!(matches!(
        store
            .write_records("nobody", "platform", vec![put("orders", "1", "{}")], 1)
            .await,
        Err(StorageError::NotFound(_))
    ));
    store.remove_tenant("globex").await.unwrap();
    assert!(
        matches!(
            store
                .write_records("globex", "platform", vec![put("orders", "2", "{}")], 1)
                .await,
            Err(StorageError::NotFound(_))
        ),
        "a removed tenant is written no more"
    );
}

pub(crate) async fn a_page_ends_at_its_record_or_byte_limit_and_says_whether_more_follow<S>(
    store: Arc<S>,
) where
    S: RecordStore + Registry + ?Sized,
{
    tenants(&*store).await;
    let body = |n: usize| format!(r#"{{"x":"{}"}}"#, "a".repeat(n));
    store
        .write_records(
            "acme",
            "platform",
            vec![
                put("orders", "a", &body(100)),
                put("orders", "b", &body(100)),
                put("orders", "c", &body(100)),
            ],
            1,
        )
        .await
        .unwrap();
    for pending in [false, true] {
        let page = |records, bytes| {
            let store = store.clone();
            async move {
                let limit = PageLimit { records, bytes };
                let page = if pending {
                    store
                        .pending_records("acme", "xero", "orders", 0, limit)
                        .await
                } else {
                    store.record_changes("acme", "orders", 0, limit).await
                };
                let page = page.unwrap();
                (
                    page.records
                        .iter()
                        .map(|r| r.id.clone())
                        .collect::<Vec<_>>(),
                    page.more,
                )
            }
        };
        let want = |ids: &[&str], more: bool| -> (Vec<String>, bool) {
            (ids.iter().map(|i| i.to_string()).collect(), more)
        };
        assert_eq!(
            page(3, usize::MAX).await,
            want(&["a", "b", "c"], false),
            "pending: {pending}"
        );
        assert_eq!(
            page(2, usize::MAX).await,
            want(&["a", "b"], true),
            "pending: {pending}"
        );
        // By bytes: two bodies fit in 250, the third would not.
        assert_eq!(
            page(10, 250).await,
            want(&["a", "b"], true),
            "pending: {pending}"
        );
        // No count at all (as large as the query allows) is not an overflow.
        assert_eq!(
            page(usize::MAX, usize::MAX).await,
            want(&["a", "b", "c"], false),
            "pending: {pending}"
        );
        // One record always comes, however small the budget.
        assert_eq!(page(10, 1).await, want(&["a"], true), "pending: {pending}");
    }
    // Pages longer than a backend reads at a time.
    let many: Vec<RecordWrite> = (0..150)
        .map(|n| put("orders", &format!("m{n:03}"), "{}"))
        .collect();
    store
        .write_records("acme", "platform", many, 2)
        .await
        .unwrap();
    let hundred = store
        .record_changes("acme", "orders", 0, PageLimit::records(100))
        .await
        .unwrap();
    assert_eq!((hundred.records.len(), hundred.more), (100, true));
    assert_eq!(hundred.records[99].id, "m096");
    let rest = store
        .pending_records(
            "acme",
            "xero",
            "orders",
            100,
            PageLimit::records(usize::MAX),
        )
        .await
        .unwrap();
    assert_eq!((rest.records.len(), rest.more), (53, false));
    assert_eq!(rest.records[52].id, "m149");
    let after_first = store
        .record_changes("acme", "orders", 1, PageLimit::records(2))
        .await
        .unwrap();
    assert_eq!(ids(&after_first.records), ["b", "c"], "after a version");
    assert!(
        store
            .record_changes("acme", "products", 0, PageLimit::records(10))
            .await
            .unwrap()
            .records
            .is_empty(),
        "another collection"
    );
}

pub(crate) async fn each_consumer_has_its_own_pending_set_and_a_change_makes_a_record_pending_again<
    S,
>(
    store: Arc<S>,
) where
    S: RecordStore + Registry + CommitEffects + ?Sized,
{
    tenants(&*store).await;
    store
        .write_records(
            "acme",
            "platform",
            vec![put("orders", "a", "{}"), put("orders", "b", "{}")],
            1,
        )
        .await
        .unwrap();
    let acks = |acks| RecordEffects {
        acks,
        ..Default::default()
    };
    run(&*store, "xero", acks(vec![ack("a", 1)]), 7).await;
    assert_eq!(pending(&*store, "xero").await, ["b"]);
    assert_eq!(pending(&*store, "staingard").await, ["a", "b"]);
    // A change after the ack: pending again for xero.
    store
        .write_records(
            "acme",
            "platform",
            vec![put("orders", "a", r#"{"x":1}"#)],
            2,
        )
        .await
        .unwrap();
    assert_eq!(pending(&*store, "xero").await, ["b", "a"], "by version");
    run(&*store, "xero", acks(vec![ack("a", 3), ack("b", 2)]), 8).await;
    assert!(pending(&*store, "xero").await.is_empty());
    // A deleted record is pending for no one.
    store
        .write_records("acme", "platform", vec![delete("orders", "b")], 3)
        .await
        .unwrap();
    assert_eq!(pending(&*store, "staingard").await, ["a"]);
    // Un-acknowledged by the operator: pending again even unchanged.
    assert!(
        store
            .unack_record("acme", "xero", "orders", "a")
            .await
            .unwrap()
    );
    assert!(
        !store
            .unack_record("acme", "xero", "orders", "a")
            .await
            .unwrap()
    );
    assert_eq!(pending(&*store, "xero").await, ["a"]);
    run(&*store, "staingard", acks(vec![ack("a", 3)]), 9).await;
    run(&*store, "Zed", acks(vec![ack("a", 3)]), 9).await;
    let acks = store.record_acks("acme", "orders", "a").await.unwrap();
    let by: Vec<(&str, i64, i64)> = acks
        .iter()
        .map(|a| (a.installation.as_str(), a.version, a.acked_at))
        .collect();
    assert_eq!(
        by,
        [("Zed", 3, 9), ("staingard", 3, 9)],
        "by installation, as bytes; xero's was removed"
    );
    assert!(
        store
            .record_acks("globex", "orders", "a")
            .await
            .unwrap()
            .is_empty(),
        "another tenant's record of that name"
    );
}

pub(crate) async fn an_ack_cannot_run_ahead_of_the_record_nor_name_a_missing_one<S>(store: Arc<S>)
where
    S: RecordStore + Registry + CommitEffects + ?Sized,
{
    tenants(&*store).await;
    store
        .write_records("acme", "platform", vec![put("orders", "a", "{}")], 1)
        .await
        .unwrap();
    let acks = |acks| RecordEffects {
        acks,
        ..Default::default()
    };
    run(
        &*store,
        "xero",
        acks(vec![ack("a", 1_000_000), ack("missing", 1)]),
        7,
    )
    .await;
    let acked = store.record_acks("acme", "orders", "a").await.unwrap();
    assert_eq!(acked[0].version, 1, "clamped to the record's version");
    assert!(
        store
            .record_acks("acme", "orders", "missing")
            .await
            .unwrap()
            .is_empty()
    );
    // So the next change is still seen.
    store
        .write_records("acme", "platform", vec![put("orders", "a", "{}")], 2)
        .await
        .unwrap();
    assert_eq!(pending(&*store, "xero").await, ["a"]);
    // An older ack never lowers one made before.
    run(&*store, "xero", acks(vec![ack("a", 2)]), 8).await;
    run(&*store, "xero", acks(vec![ack("a", 1)]), 9).await;
    let acked = store.record_acks("acme", "orders", "a").await.unwrap();
    assert_eq!((acked[0].version, acked[0].acked_at), (2, 9));
    assert!(pending(&*store, "xero").await.is_empty());
}

pub(crate) async fn annotations_of_a_missing_record_are_dropped_and_old_notes_make_room<S>(
    store: Arc<S>,
) where
    S: RecordStore + Registry + CommitEffects + ?Sized,
{
    tenants(&*store).await;
    store
        .write_records("acme", "platform", vec![put("orders", "a", "{}")], 1)
        .await
        .unwrap();
    let note = |id: &str, n: usize| annotate("orders", id, AnnotationChange::Note(format!("n{n}")));
    run(
        &*store,
        "xero",
        RecordEffects {
            annotations: (0..MAX_NOTES_KEPT + 5)
                .map(|n| note("a", n))
                .chain([note("missing", 0)])
                .collect(),
            ..Default::default()
        },
        7,
    )
    .await;
    let kept = store
        .record_annotations("acme", "xero", "orders", "a")
        .await
        .unwrap();
    assert_eq!(kept.notes.len(), MAX_NOTES_KEPT);
    assert_eq!(kept.notes[0], "n5", "the oldest went first");
    assert_eq!(kept.updated_at, 7);
    assert!(
        store
            .all_record_annotations("acme", "orders", "missing")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .record_annotations("acme", "xero", "orders", "missing")
            .await
            .unwrap(),
        Annotations::default()
    );
    // A later run's note makes room too, and is kept after the others.
    run(
        &*store,
        "xero",
        RecordEffects {
            annotations: vec![note("a", 999)],
            ..Default::default()
        },
        8,
    )
    .await;
    let kept = store
        .record_annotations("acme", "xero", "orders", "a")
        .await
        .unwrap();
    assert_eq!(kept.notes.len(), MAX_NOTES_KEPT);
    assert_eq!(
        (kept.notes[0].as_str(), kept.notes.last().unwrap().as_str()),
        ("n6", "n999")
    );
}

pub(crate) async fn a_run_writes_as_its_installation_and_annotates_only_its_own_view<S>(
    store: Arc<S>,
) where
    S: RecordStore + Registry + CommitEffects + ?Sized,
{
    tenants(&*store).await;
    let stock = |change| annotate("stock", "sku-1", change);
    run(
        &*store,
        "shop",
        RecordEffects {
            writes: vec![put("stock", "sku-1", r#"{"quantity":3}"#)],
            annotations: vec![
                stock(AnnotationChange::Note("first".into())),
                stock(AnnotationChange::Note("second".into())),
                stock(AnnotationChange::Flag(Some("awaiting-action".into()))),
            ],
            ..Default::default()
        },
        7,
    )
    .await;
    let record = store
        .record("acme", "stock", "sku-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((record.writer.as_str(), record.updated_at), ("shop", 7));
    let mine = store
        .record_annotations("acme", "shop", "stock", "sku-1")
        .await
        .unwrap();
    assert_eq!(mine.notes, ["first", "second"]);
    assert_eq!(mine.flag.as_deref(), Some("awaiting-action"));
    assert_eq!(mine.external_ref, None);
    let theirs = store
        .record_annotations("acme", "other", "stock", "sku-1")
        .await
        .unwrap();
    assert_eq!(theirs, Annotations::default());
    assert!(
        store
            .record("globex", "stock", "sku-1")
            .await
            .unwrap()
            .is_none()
    );

    // A later run's changes are made to what is kept: notes appended, the
    // flag kept unless changed.
    run(
        &*store,
        "shop",
        RecordEffects {
            annotations: vec![
                stock(AnnotationChange::ExternalRef(Some("INV-1".into()))),
                stock(AnnotationChange::Note("third".into())),
            ],
            ..Default::default()
        },
        8,
    )
    .await;
    let mine = store
        .record_annotations("acme", "shop", "stock", "sku-1")
        .await
        .unwrap();
    assert_eq!(
        mine,
        Annotations {
            external_ref: Some("INV-1".into()),
            notes: vec!["first".into(), "second".into(), "third".into()],
            flag: Some("awaiting-action".into()),
            updated_at: 8,
        }
    );
    run(
        &*store,
        "Zed",
        RecordEffects {
            annotations: vec![stock(AnnotationChange::Flag(Some("late".into())))],
            ..Default::default()
        },
        9,
    )
    .await;
    let all = store
        .all_record_annotations("acme", "stock", "sku-1")
        .await
        .unwrap();
    let who: Vec<&str> = all.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(who, ["Zed", "shop"], "by installation, as bytes");
    assert_eq!(all[1].1, mine);
    assert_eq!(all[0].1.flag.as_deref(), Some("late"));
    // Clearing is a change too.
    run(
        &*store,
        "shop",
        RecordEffects {
            annotations: vec![
                stock(AnnotationChange::Flag(None)),
                stock(AnnotationChange::ExternalRef(None)),
            ],
            ..Default::default()
        },
        10,
    )
    .await;
    let mine = store
        .record_annotations("acme", "shop", "stock", "sku-1")
        .await
        .unwrap();
    assert_eq!(
        (mine.flag, mine.external_ref, mine.notes.len()),
        (None, None, 3)
    );
}

/// Writers on several connections at once (the platform's imports, runs of
/// several installations): each write has a version of its own, none is
/// lost, and the tenant's versions rise by commit.
pub(crate) async fn concurrent_writers_of_one_tenant_get_distinct_versions<S>(store: Arc<S>)
where
    S: RecordStore + Registry + CommitEffects + 'static + ?Sized,
{
    tenants(&*store).await;
    const WRITERS: usize = 6;
    const WRITES: usize = 5;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for n in 0..WRITES {
                let writes = vec![
                    put("orders", &format!("w{w}-{n}"), "{}"),
                    put("orders", "shared", &format!(r#"{{"by":{w}}}"#)),
                ];
                if w % 2 == 0 {
                    versions.extend(
                        store
                            .write_records("acme", "platform", writes, 1)
                            .await
                            .unwrap(),
                    );
                } else {
                    let effects = RecordEffects {
                        writes,
                        ..Default::default()
                    };
                    store
                        .commit_record_effects(&scope(&format!("i{w}")), &effects, 1)
                        .await
                        .unwrap();
                }
            }
            versions
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.extend(task.await.unwrap());
    }
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a version given twice: {seen:?}");
    let all = store
        .record_changes("acme", "orders", 0, PageLimit::records(1000))
        .await
        .unwrap()
        .records;
    assert_eq!(all.len(), WRITERS * WRITES + 1, "every record, once");
    let mut versions: Vec<i64> = all.iter().map(|r| r.version).collect();
    versions.dedup();
    assert_eq!(versions.len(), all.len(), "versions are distinct");
    let last = all.last().unwrap();
    assert_eq!(last.id, "shared", "the last write has the highest version");
    assert_eq!(
        all.iter().map(|r| r.version).max(),
        Some(2 * (WRITERS * WRITES) as i64),
        "every version given was used: none reserved twice, none lost"
    );
}
