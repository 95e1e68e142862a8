//! The history of an installation's key-value storage (`StateHistory`):
//! who wrote each change, retention, and rewinds and their refusals.
//!
//! A rewind is to before a recorded run, and is refused while a run is in
//! progress: both are other concerns' (the run ledger, the work queue),
//! which a backend may not have yet. The behaviours reach them through
//! [`RunFixture`]: a backend's own `finish_run`, `claim_unqueued` and
//! `release`.

use std::sync::Arc;

use crate::storage::{
    ActiveRun, ChangedBy, InstallationRow, KvBackend, KvHistory, Registry, RewindRefusal, RunRow,
    RunStorage, Scope, StateHistory, StorageLimits, TenantRow,
};

/// Key-value changes: a value to set, or `None` to delete.
pub(crate) type Changes = Vec<(String, Option<Vec<u8>>)>;

/// What the behaviours need from the run ledger and the work queue.
#[async_trait::async_trait]
pub(crate) trait RunFixture: Send + Sync {
    /// Records a finished run of `scope` that commits `changes` (with the
    /// history of its checkpoints under `checkpoint`, at most
    /// `keep_versions` old values per key); returns its id.
    async fn record_run(
        &self,
        scope: &Scope,
        changes: Changes,
        checkpoint: Option<i64>,
        keep_versions: u32,
    ) -> i64;
    /// Starts a run of `scope`'s `feed`: in progress until ended.
    async fn start_run(&self, scope: &Scope, feed: &str);
    /// Ends it, unrecorded.
    async fn end_run(&self, scope: &Scope, feed: &str);
}

/// The record of a run of `scope`, as every fixture records it.
pub(crate) fn run_row(scope: &Scope) -> RunRow {
    RunRow {
        tenant: scope.tenant.clone(),
        installation: scope.installation.clone(),
        plugin_id: "p".into(),
        plugin_version: "1.0.0".into(),
        plugin_digest: "d".into(),
        feed: "orders".into(),
        mode: "live".into(),
        trigger: "manual".into(),
        attempt: 1,
        scheduled_at: 1,
        started_at: 1,
        ended_at: 2,
        status: "ok".into(),
        message: String::new(),
        report: "{}".into(),
    }
}

fn active(scope: &Scope, feed: &str) -> ActiveRun {
    ActiveRun {
        tenant: scope.tenant.clone(),
        installation: scope.installation.clone(),
        feed: feed.into(),
        trigger: "manual".into(),
        attempt: 1,
        scheduled_at: 1,
        started_at: 1,
    }
}

/// Every backend's run ledger and work queue are the fixture.
#[async_trait::async_trait]
impl<T: crate::storage::RunLedger + crate::storage::WorkQueue + ?Sized> RunFixture for T {
    async fn record_run(
        &self,
        scope: &Scope,
        changes: Changes,
        checkpoint: Option<i64>,
        keep_versions: u32,
    ) -> i64 {
        self.finish_run(crate::storage::RunEffects {
            run: run_row(scope),
            kv_changes: changes,
            records: Default::default(),
            artifacts: Default::default(),
            http_calls: Vec::new(),
            settlement: None,
            settled_at: 2,
            webhook_delivery: None,
            kv_history: KvHistory {
                checkpoint,
                keep_versions,
            },
        })
        .await
        .unwrap()
    }

    async fn start_run(&self, scope: &Scope, feed: &str) {
        let claimed = self
            .claim_unqueued(active(scope, feed), crate::storage::Holder::Serve)
            .await
            .unwrap();
        assert!(claimed);
    }

    async fn end_run(&self, scope: &Scope, feed: &str) {
        self.release(active(scope, feed)).await.unwrap();
    }
}

fn scope(tenant: &str, installation: &str) -> Scope {
    Scope {
        tenant: tenant.into(),
        installation: installation.into(),
    }
}

async fn install<S: Registry + ?Sized>(store: &S, tenant: &str, id: &str) {
    if !store.tenant_exists(tenant).await.unwrap() {
        store
            .add_tenant(TenantRow {
                id: tenant.into(),
                name: tenant.into(),
                created_at: 1,
            })
            .await
            .unwrap();
    }
    let row = InstallationRow {
        tenant: tenant.into(),
        id: id.into(),
        plugin_id: "p".into(),
        plugin_version: "1.0.0".into(),
        plugin_dir: "plugins/p".into(),
        plugin_digest: "d".into(),
        plugin_store: None,
        config: Default::default(),
        approved_egress: Vec::new(),
        approved_rules: None,
        approved_data: None,
        mode: "live".into(),
        enabled: true,
        created_at: 1,
        updated_at: 1,
        removed_at: None,
        revision: 0,
    };
    store
        .insert_installation(row, Vec::new(), Vec::new())
        .await
        .unwrap();
}

fn set(pairs: &[(&str, Option<&str>)]) -> Changes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(|v| v.as_bytes().to_vec())))
        .collect()
}

/// The key's values, newest first, as text (`-` for a delete), with who
/// wrote each.
async fn versions<S: StateHistory + ?Sized>(
    store: &S,
    scope: &Scope,
    key: &str,
) -> Vec<(String, ChangedBy)> {
    store
        .key_history(scope, key, 100, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|v| {
            let text = v
                .value
                .map_or("-".to_string(), |h| String::from_utf8(h.head).unwrap());
            (text, v.by)
        })
        .collect()
}

/// Every key of `scope` with its value, as text.
async fn stored<S: StateHistory + ?Sized>(store: &S, scope: &Scope) -> Vec<(String, String)> {
    store
        .state_entries(scope, None, 100, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.key, String::from_utf8(e.value.head).unwrap()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn by_run(run_id: i64) -> ChangedBy {
    ChangedBy::Run { run_id }
}

fn rewound(actor: &str, to_before_run: i64) -> ChangedBy {
    ChangedBy::Rewind {
        actor: actor.into(),
        to_before_run,
    }
}

pub(crate) async fn history_is_written_with_a_runs_commit_and_its_checkpoints<S>(store: Arc<S>)
where
    S: StateHistory + KvBackend + RunFixture + 'static,
{
    let shop = scope("acme", "shop");
    let first = store
        .record_run(&shop, set(&[("cursor", Some("1"))]), None, 10)
        .await;

    // A run checkpoints twice, then commits at its end.
    let backend: Arc<dyn KvBackend> = store.clone();
    let mut storage = RunStorage::new(backend, shop.clone(), StorageLimits::default());
    storage.set("cursor", b"2".to_vec()).await.unwrap();
    storage.commit().await.unwrap();
    assert_eq!(
        versions(&*store, &shop, "cursor").await[0],
        ("2".into(), ChangedBy::UnrecordedRun),
        "a checkpoint's change is in the history at once, its run not known yet"
    );
    storage.set("cursor", b"3".to_vec()).await.unwrap();
    storage.set("page", b"p1".to_vec()).await.unwrap();
    storage.commit().await.unwrap();
    storage.set("cursor", b"4".to_vec()).await.unwrap();
    let token = storage.checkpoint_token();
    assert!(token.is_some());
    let second = store
        .record_run(&shop, storage.take_pending(), token, 10)
        .await;

    assert_eq!(
        versions(&*store, &shop, "cursor").await,
        [
            ("4".into(), by_run(second)),
            ("3".into(), by_run(second)),
            ("2".into(), by_run(second)),
            ("1".into(), by_run(first)),
        ]
    );
    assert_eq!(
        versions(&*store, &shop, "page").await,
        [("p1".into(), by_run(second))]
    );
    let entries = store.state_entries(&shop, None, 10, 10).await.unwrap();
    assert_eq!(entries[0].changed.as_ref().unwrap().0, by_run(second));
    assert_eq!(entries[0].key, "cursor");
    assert_eq!(entries[0].value.size, 1);
    // Writing the value already stored is no change; nor is deleting a key
    // not stored.
    store
        .record_run(
            &shop,
            set(&[("cursor", Some("4")), ("gone", None)]),
            None,
            10,
        )
        .await;
    assert_eq!(versions(&*store, &shop, "cursor").await.len(), 4);
    assert!(versions(&*store, &shop, "gone").await.is_empty());
}

/// Values are shown cut to the head asked for, with their full size.
pub(crate) async fn values_are_shown_cut_with_their_size<S>(store: Arc<S>)
where
    S: StateHistory + KvBackend + 'static,
{
    let shop = scope("acme", "shop");
    store
        .kv_apply(&shop, &set(&[("k", Some("abcdef"))]))
        .await
        .unwrap();
    store
        .kv_apply(&shop, &set(&[("k", Some("xyz")), ("l", Some("1"))]))
        .await
        .unwrap();
    let history = store.key_history(&shop, "k", 10, 2).await.unwrap();
    let shown: Vec<(u64, &[u8])> = history
        .iter()
        .map(|v| {
            let v = v.value.as_ref().unwrap();
            (v.size, v.head.as_slice())
        })
        .collect();
    assert_eq!(shown, [(3, &b"xy"[..]), (6, &b"ab"[..])]);
    assert!(history[0].seq > history[1].seq, "newest first");
    assert_eq!(store.key_history(&shop, "k", 1, 2).await.unwrap().len(), 1);
    let entries = store.state_entries(&shop, Some("k"), 10, 0).await.unwrap();
    assert_eq!(entries.len(), 1, "after the cursor");
    assert_eq!((entries[0].key.as_str(), entries[0].value.size), ("l", 1));
    assert!(entries[0].value.head.is_empty());
    assert_eq!(entries[0].changed.as_ref().unwrap().0, ChangedBy::Direct);
}

pub(crate) async fn discarded_writes_leave_no_history<S>(store: Arc<S>)
where
    S: StateHistory + KvBackend + RunFixture + 'static,
{
    let shop = scope("acme", "shop");
    let backend: Arc<dyn KvBackend> = store.clone();
    let mut storage = RunStorage::new(backend.clone(), shop.clone(), StorageLimits::default());
    storage.set("cursor", b"1".to_vec()).await.unwrap();
    drop(storage);
    // A failed run is recorded with none of its writes.
    store.record_run(&shop, Vec::new(), None, 10).await;
    let mut scratch = RunStorage::scratch(backend, shop.clone(), StorageLimits::default());
    scratch.set("cursor", b"1".to_vec()).await.unwrap();
    scratch.commit().await.unwrap();
    assert!(versions(&*store, &shop, "cursor").await.is_empty());
    assert!(stored(&*store, &shop).await.is_empty());
}

pub(crate) async fn rewind_restores_exactly_the_state_before_the_run<S>(store: Arc<S>)
where
    S: StateHistory + Registry + RunFixture + 'static,
{
    let shop = scope("acme", "shop");
    install(&*store, "acme", "shop").await;
    let one = store
        .record_run(
            &shop,
            set(&[("a", Some("1")), ("b", Some("1")), ("c", Some("1"))]),
            None,
            10,
        )
        .await;
    let two = store
        .record_run(
            &shop,
            set(&[("a", Some("2")), ("b", None), ("d", Some("2"))]),
            None,
            10,
        )
        .await;
    store
        .record_run(
            &shop,
            set(&[("a", Some("3")), ("e", Some("3")), ("d", None)]),
            None,
            10,
        )
        .await;

    let plan = store.plan_rewind(&shop, two, 100).await.unwrap().unwrap();
    let keys: Vec<&str> = plan.keys.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(
        keys,
        ["a", "b", "e"],
        "d was created and deleted since: no change"
    );
    let b = &plan.keys[1];
    assert_eq!(b.current, None);
    assert_eq!(b.restored.as_ref().unwrap().head, b"1");
    assert_eq!(
        stored(&*store, &shop).await.len(),
        3,
        "a plan changes nothing"
    );
    let done = store
        .rewind(&shop, two, Some(plan.as_of), "cli", 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.keys.len(), 3);
    assert_eq!(
        stored(&*store, &shop).await,
        pairs(&[("a", "1"), ("b", "1"), ("c", "1")])
    );
    assert_eq!(
        versions(&*store, &shop, "a").await[0],
        ("1".into(), rewound("cli", two))
    );
    assert_eq!(
        versions(&*store, &shop, "e").await[0],
        ("-".into(), rewound("cli", two))
    );

    // Rewinding again changes nothing; rewinding further goes back on.
    let again = store
        .rewind(&shop, two, None, "cli", 10)
        .await
        .unwrap()
        .unwrap();
    assert!(again.keys.is_empty());
    store
        .rewind(&shop, one, None, "cli", 10)
        .await
        .unwrap()
        .unwrap();
    assert!(stored(&*store, &shop).await.is_empty());
}

pub(crate) async fn rewind_covers_the_runs_checkpoints_made_before_an_earlier_run_was_recorded<S>(
    store: Arc<S>,
) where
    S: StateHistory + KvBackend + Registry + RunFixture + 'static,
{
    let shop = scope("acme", "shop");
    install(&*store, "acme", "shop").await;
    store
        .record_run(&shop, set(&[("cursor", Some("0"))]), None, 10)
        .await;
    // A long run checkpoints; another feed's run is recorded meanwhile;
    // then the long run is recorded.
    let backend: Arc<dyn KvBackend> = store.clone();
    let mut long = RunStorage::new(backend, shop.clone(), StorageLimits::default());
    long.set("cursor", b"1".to_vec()).await.unwrap();
    long.commit().await.unwrap();
    store
        .record_run(&shop, set(&[("other", Some("x"))]), None, 10)
        .await;
    let token = long.checkpoint_token();
    let long_id = store
        .record_run(&shop, long.take_pending(), token, 10)
        .await;
    store
        .rewind(&shop, long_id, None, "cli", 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored(&*store, &shop).await,
        pairs(&[("cursor", "0")]),
        "the storage as it was before the long run's first change"
    );
}

pub(crate) async fn rewind_is_refused_while_a_run_is_in_progress_and_changes_nothing<S>(
    store: Arc<S>,
) where
    S: StateHistory + Registry + RunFixture + 'static,
{
    let shop = scope("acme", "shop");
    install(&*store, "acme", "shop").await;
    let one = store
        .record_run(&shop, set(&[("cursor", Some("1"))]), None, 10)
        .await;
    store
        .record_run(&shop, set(&[("cursor", Some("2"))]), None, 10)
        .await;
    install(&*store, "acme", "other").await;
    store.start_run(&shop, "refunds").await;
    store.start_run(&shop, "orders").await;
    // Another installation's run is no matter.
    store.start_run(&scope("acme", "other"), "orders").await;
    let refused = store.rewind(&shop, one, None, "cli", 10).await.unwrap();
    assert_eq!(
        refused,
        Err(RewindRefusal::RunInProgress(vec![
            "orders".into(),
            "refunds".into()
        ]))
    );
    assert_eq!(stored(&*store, &shop).await, pairs(&[("cursor", "2")]));
    store.end_run(&shop, "orders").await;
    store.end_run(&shop, "refunds").await;
    store
        .rewind(&shop, one, None, "cli", 10)
        .await
        .unwrap()
        .unwrap();
    assert!(stored(&*store, &shop).await.is_empty());
}

pub(crate) async fn rewind_refuses_another_installations_or_tenants_run<S>(store: Arc<S>)
where
    S: StateHistory + Registry + RunFixture + 'static,
{
    let shop = scope("acme", "shop");
    for (tenant, id) in [("acme", "shop"), ("acme", "other"), ("globex", "shop")] {
        install(&*store, tenant, id).await;
    }
    let theirs = store
        .record_run(&shop, set(&[("cursor", Some("1"))]), None, 10)
        .await;
    for other in [scope("acme", "other"), scope("globex", "shop")] {
        store
            .record_run(&other, set(&[("cursor", Some("mine"))]), None, 10)
            .await;
        assert_eq!(
            store.rewind(&other, theirs, None, "cli", 10).await.unwrap(),
            Err(RewindRefusal::NotARun)
        );
        assert_eq!(
            store.plan_rewind(&other, theirs, 10).await.unwrap(),
            Err(RewindRefusal::NotARun)
        );
        assert_eq!(stored(&*store, &other).await, pairs(&[("cursor", "mine")]));
        assert_eq!(versions(&*store, &other, "cursor").await.len(), 1);
    }
    assert_eq!(
        store.rewind(&shop, 999, None, "cli", 10).await.unwrap(),
        Err(RewindRefusal::NotARun)
    );
}

pub(crate) async fn a_rewind_shown_before_a_run_committed_is_refused<S>(store: Arc<S>)
where
    S: StateHistory + Registry + RunFixture + 'static,
{
    let shop = scope("acme", "shop");
    install(&*store, "acme", "shop").await;
    let one = store
        .record_run(&shop, set(&[("cursor", Some("1"))]), None, 10)
        .await;
    store
        .record_run(&shop, set(&[("cursor", Some("2"))]), None, 10)
        .await;
    let plan = store.plan_rewind(&shop, one, 10).await.unwrap().unwrap();
    store
        .record_run(&shop, set(&[("cursor", Some("3"))]), None, 10)
        .await;
    assert_eq!(
        store
            .rewind(&shop, one, Some(plan.as_of), "cli", 10)
            .await
            .unwrap(),
        Err(RewindRefusal::ChangedSince)
    );
    assert_eq!(stored(&*store, &shop).await, pairs(&[("cursor", "3")]));
}

pub(crate) async fn retention_bounds_versions_per_key_and_age_and_a_rewind_needing_more_is_refused<
    S,
>(
    store: Arc<S>,
) where
    S: StateHistory + Registry + RunFixture + 'static,
{
    let shop = scope("acme", "shop");
    install(&*store, "acme", "shop").await;
    let mut ids = Vec::new();
    for i in 1..=6 {
        let changes = set(&[("cursor", Some(&i.to_string())), ("once", Some("x"))]);
        ids.push(store.record_run(&shop, changes, None, 3).await);
    }
    let kept = versions(&*store, &shop, "cursor").await;
    let texts: Vec<&str> = kept.iter().map(|v| v.0.as_str()).collect();
    assert_eq!(texts, ["6", "5", "4"], "three old values kept per key");
    assert_eq!(versions(&*store, &shop, "once").await.len(), 1);
    // Back to before run 4: its old value (3) is still there.
    assert!(store.plan_rewind(&shop, ids[3], 10).await.unwrap().is_ok());
    // Before run 3: the value it replaced was dropped.
    assert_eq!(
        store.plan_rewind(&shop, ids[2], 10).await.unwrap(),
        Err(RewindRefusal::Pruned)
    );
    assert_eq!(
        store.rewind(&shop, ids[2], None, "cli", 10).await.unwrap(),
        Err(RewindRefusal::Pruned)
    );
    // Age: everything recorded before a cutoff in the future goes, in
    // bounded batches.
    let future = chrono::Utc::now().timestamp() + 10;
    assert_eq!(store.prune_state_history(future, 2).await.unwrap(), 2);
    assert_eq!(store.prune_state_history(future, 100).await.unwrap(), 2);
    assert_eq!(store.prune_state_history(future, 100).await.unwrap(), 0);
    assert!(versions(&*store, &shop, "cursor").await.is_empty());
    assert!(versions(&*store, &shop, "once").await.is_empty());
    assert_eq!(
        store.plan_rewind(&shop, ids[5], 10).await.unwrap(),
        Err(RewindRefusal::Pruned),
        "the history no longer reaches back to the last run"
    );
    let entries = store.state_entries(&shop, None, 10, 10).await.unwrap();
    assert!(
        entries.iter().all(|e| e.changed.is_none()),
        "writers unknown now"
    );
    assert_eq!(entries.len(), 2, "the values themselves stay");
}

/// Pruning by age drops only what is older than the cutoff, across
/// installations and tenants, oldest first.
pub(crate) async fn pruning_by_age_keeps_what_is_newer<S>(store: Arc<S>)
where
    S: StateHistory + KvBackend + 'static,
{
    let (shop, other) = (scope("acme", "shop"), scope("globex", "shop"));
    for s in [&shop, &other] {
        store
            .kv_apply(s, &set(&[("k", Some("1")), ("l", Some("1"))]))
            .await
            .unwrap();
    }
    let past = chrono::Utc::now().timestamp() - 10;
    assert_eq!(store.prune_state_history(past, 100).await.unwrap(), 0);
    assert_eq!(versions(&*store, &shop, "k").await.len(), 1);
    let future = past + 20;
    assert_eq!(store.prune_state_history(future, 3).await.unwrap(), 3);
    assert_eq!(store.prune_state_history(future, 3).await.unwrap(), 1);
    for s in [&shop, &other] {
        assert!(versions(&*store, s, "k").await.is_empty());
        assert!(versions(&*store, s, "l").await.is_empty());
        assert_eq!(stored(&*store, s).await.len(), 2, "the values stay");
    }
}

pub(crate) async fn a_direct_write_is_recorded_as_such_and_removal_deletes_the_history<S>(
    store: Arc<S>,
) where
    S: StateHistory + KvBackend + Registry + 'static,
{
    let (shop, other) = (scope("acme", "shop"), scope("acme", "other"));
    install(&*store, "acme", "shop").await;
    install(&*store, "acme", "other").await;
    for s in [&shop, &other] {
        store.kv_apply(s, &set(&[("k", Some("v"))])).await.unwrap();
    }
    assert_eq!(
        versions(&*store, &shop, "k").await,
        [("v".into(), ChangedBy::Direct)]
    );
    store
        .remove_installation("acme", "shop", None, 5)
        .await
        .unwrap();
    assert!(versions(&*store, &shop, "k").await.is_empty());
    assert_eq!(
        versions(&*store, &other, "k").await.len(),
        1,
        "another installation's history stays"
    );
}

/// Writers of one key at once (nodes of a cluster): each change is
/// recorded with the value the change before it left, none lost.
pub(crate) async fn concurrent_changes_each_replace_the_value_before<S>(store: Arc<S>)
where
    S: StateHistory + KvBackend + 'static,
{
    let shop = scope("acme", "shop");
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (store, shop) = (store.clone(), shop.clone());
            tokio::spawn(async move {
                for i in 0..5 {
                    let value = format!("{w}.{i}");
                    store
                        .kv_apply(&shop, &set(&[("n", Some(&value))]))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut written: Vec<String> = versions(&*store, &shop, "n")
        .await
        .into_iter()
        .map(|v| v.0)
        .collect();
    assert_eq!(written.len(), 30, "every change recorded");
    let newest = written[0].clone();
    written.sort();
    written.dedup();
    assert_eq!(
        written.len(),
        30,
        "each value written once: no two changes replaced the same value"
    );
    assert_eq!(stored(&*store, &shop).await[0], ("n".into(), newest));
}

/// A rewind and a run's commit at once end as one after the other, in
/// either order, never a mix of the two.
pub(crate) async fn a_rewind_and_a_runs_commit_at_once_do_not_interleave<S>(store: Arc<S>)
where
    S: StateHistory + Registry + RunFixture + 'static,
{
    for n in 0..5 {
        let shop = scope("acme", &format!("shop{n}"));
        install(&*store, "acme", &shop.installation).await;
        store
            .record_run(&shop, set(&[("a", Some("1"))]), None, 10)
            .await;
        let two = store
            .record_run(&shop, set(&[("a", Some("2"))]), None, 10)
            .await;
        let rewind = {
            let (store, shop) = (store.clone(), shop.clone());
            tokio::spawn(async move { store.rewind(&shop, two, None, "cli", 10).await })
        };
        let three = {
            let (store, shop) = (store.clone(), shop.clone());
            tokio::spawn(async move {
                let changes = set(&[("a", Some("3")), ("b", Some("3"))]);
                store.record_run(&shop, changes, None, 10).await
            })
        };
        rewind.await.unwrap().unwrap().unwrap();
        three.await.unwrap();
        let after = stored(&*store, &shop).await;
        assert!(
            after == pairs(&[("a", "3"), ("b", "3")]) || after == pairs(&[("a", "1")]),
            "the run's commit after the rewind, or the rewind (to before run 2, so of run \
             3 too) after the commit: {after:?}"
        );
    }
}
