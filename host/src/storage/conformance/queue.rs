//! The work queue and the run ledger (`WorkQueue`, `RunLedger`,
//! `History`): schedules planned once, claims exclusive and within the
//! tenant's limit, a run's record refused once its claim is gone (the
//! fence), notifications raised once per feed.

use std::sync::Arc;

use super::registry::{installation, schedule, tenant};
use crate::storage::{
    ActiveRun, History, KvBackend, QueuedRun, Registry, RunEffects, RunFilter, RunLedger, RunRow,
    SchedulePlan, Scope, Settlement, StorageError, WorkQueue,
};

/// A store with what these behaviours touch.
pub(crate) trait Queueing: Registry + WorkQueue + RunLedger + History + KvBackend {}
impl<T: Registry + WorkQueue + RunLedger + History + KvBackend + ?Sized> Queueing for T {}

async fn with_installations<S: Queueing + ?Sized>(store: &S, tenant_id: &str, ids: &[&str]) {
    store.add_tenant(tenant(tenant_id)).await.unwrap();
    for id in ids {
        store
            .insert_installation(installation(tenant_id, id), Vec::new(), Vec::new())
            .await
            .unwrap();
    }
}

fn queued(tenant: &str, installation: &str, feed: &str, due_at: i64) -> QueuedRun {
    QueuedRun {
        id: 0,
        tenant: tenant.into(),
        installation: installation.into(),
        feed: feed.into(),
        trigger: "schedule".into(),
        attempt: 1,
        scheduled_at: due_at,
        due_at,
        created_at: due_at,
    }
}

fn record(run: &ActiveRun, status: &str) -> RunRow {
    RunRow {
        tenant: run.tenant.clone(),
        installation: run.installation.clone(),
        plugin_id: "hello".into(),
        plugin_version: "0.1.0".into(),
        plugin_digest: "ab".repeat(32),
        feed: run.feed.clone(),
        mode: "live".into(),
        trigger: run.trigger.clone(),
        attempt: run.attempt,
        scheduled_at: run.scheduled_at,
        started_at: run.started_at,
        ended_at: run.started_at + 1,
        status: status.into(),
        message: format!("{status} run"),
        report: "{}".into(),
    }
}

fn effects(run: &ActiveRun, status: &str, writes: &[(&str, &[u8])]) -> RunEffects {
    RunEffects {
        run: record(run, status),
        kv_changes: writes
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_vec())))
            .collect(),
        records: Default::default(),
        artifacts: Default::default(),
        http_calls: Vec::new(),
        settlement: Some(Settlement {
            active: run.clone(),
            follow_up: None,
            notification: None,
        }),
        settled_at: run.started_at + 1,
        webhook_delivery: None,
        kv_history: Default::default(),
    }
}

pub(crate) async fn claims_are_exclusive_one_per_feed_and_within_the_tenants_limit<S>(store: Arc<S>)
where
    S: Queueing + 'static,
{
    with_installations(&*store, "acme", &["a", "b", "c"]).await;
    let mut ids = Vec::new();
    for (inst, feed, due) in [
        ("a", "orders", 10),
        ("a", "orders", 11),
        ("b", "orders", 12),
        ("c", "orders", 13),
    ] {
        ids.push(
            store
                .enqueue(queued("acme", inst, feed, due))
                .await
                .unwrap(),
        );
    }
    let candidates = store.due_candidates(100, 10, 100).await.unwrap();
    // Of feed a/orders only its earliest.
    assert_eq!(
        candidates.iter().map(|q| q.id).collect::<Vec<_>>(),
        vec![ids[0], ids[2], ids[3]]
    );
    // Two claimers of the same candidates at once: each run claimed by
    // exactly one, and the tenant's limit (2) holds over both.
    let (first, second) = tokio::join!(
        store.claim_queued(candidates.clone(), 50, 2),
        store.claim_queued(candidates.clone(), 50, 2)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let claimed: Vec<bool> = first.iter().zip(&second).map(|(a, b)| *a || *b).collect();
    assert!(
        first.iter().zip(&second).all(|(a, b)| !(*a && *b)),
        "a run was claimed twice: {first:?} {second:?}"
    );
    assert_eq!(claimed.iter().filter(|c| **c).count(), 2, "{claimed:?}");
    let held = store.held_runs().await.unwrap();
    assert_eq!(held.len(), 2);
    // The queue lost exactly the claimed runs.
    let left = store.due_candidates(100, 10, 100).await.unwrap();
    assert_eq!(left.len(), 2, "{left:?}");
    // The second of feed a/orders cannot start while the first runs, even
    // with room in the tenant's limit.
    let second_of_a = queued("acme", "a", "orders", 11);
    let second_of_a = QueuedRun {
        id: ids[1],
        ..second_of_a
    };
    if claimed[0] {
        assert_eq!(
            store.claim_queued(vec![second_of_a], 60, 10).await.unwrap(),
            vec![false]
        );
    }
    // A run no longer queued is not claimed.
    assert_eq!(
        store
            .claim_queued(vec![candidates[0].clone()], 60, 10)
            .await
            .unwrap(),
        vec![false]
    );
}

pub(crate) async fn a_record_is_refused_once_its_claim_was_recovered<S>(store: Arc<S>)
where
    S: Queueing + 'static,
{
    with_installations(&*store, "acme", &["shop"]).await;
    let id = store
        .enqueue(queued("acme", "shop", "orders", 10))
        .await
        .unwrap();
    let q = QueuedRun {
        id,
        ..queued("acme", "shop", "orders", 10)
    };
    assert_eq!(
        store.claim_queued(vec![q.clone()], 20, 4).await.unwrap(),
        vec![true]
    );
    let run = q.started(20);
    // Another node recovers the run as interrupted and queues its retry…
    let mut recovery = effects(&run, "interrupted", &[]);
    let retry = QueuedRun {
        trigger: "retry".into(),
        attempt: 2,
        due_at: 30,
        ..q.clone()
    };
    recovery.settlement.as_mut().unwrap().follow_up = Some(retry);
    store.finish_run(recovery.clone()).await.unwrap();
    // …and a second recovery of the same claim is refused: recorded once.
    assert!(matches!(
        store.finish_run(recovery).await,
        Err(StorageError::LeaseLost(_))
    ));
    // The retry starts.
    let retry = store.due_candidates(100, 4, 10).await.unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(
        store.claim_queued(retry.clone(), 40, 4).await.unwrap(),
        vec![true]
    );
    // The first holder wakes and tries to commit: refused, nothing applied.
    let late = store
        .finish_run(effects(&run, "ok", &[("cursor", b"late")]))
        .await;
    assert!(matches!(late, Err(StorageError::LeaseLost(_))), "{late:?}");
    let scope = Scope {
        tenant: "acme".into(),
        installation: "shop".into(),
    };
    assert_eq!(store.kv_get(&scope, "cursor").await.unwrap(), None);
    // The retry's own record commits.
    let retry_run = retry[0].started(40);
    store
        .finish_run(effects(&retry_run, "ok", &[("cursor", b"retry")]))
        .await
        .unwrap();
    assert_eq!(
        store.kv_get(&scope, "cursor").await.unwrap(),
        Some(b"retry".to_vec())
    );
    let runs = store
        .runs(RunFilter {
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let statuses: Vec<(&str, u32)> = runs
        .iter()
        .map(|r| (r.status.as_str(), r.attempt))
        .collect();
    assert_eq!(statuses, vec![("ok", 2), ("interrupted", 1)]);
    assert!(store.held_runs().await.unwrap().is_empty());
    assert_eq!(
        store.last_success(&scope, "orders").await.unwrap(),
        Some(41)
    );
}

pub(crate) async fn a_due_schedule_is_planned_once_whoever_plans_it<S>(store: Arc<S>)
where
    S: Queueing + 'static,
{
    store.add_tenant(tenant("acme")).await.unwrap();
    store
        .insert_installation(
            installation("acme", "shop"),
            Vec::new(),
            vec![schedule("acme", "shop", "orders")],
        )
        .await
        .unwrap();
    let due = store.due_schedules(1_700_000_500, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let plan = SchedulePlan {
        schedule: due[0].clone(),
        next_fire_at: Some(1_700_000_700),
        due_at: Some(1_700_000_700),
        enqueue: vec![queued("acme", "shop", "orders", 1_700_000_400)],
    };
    // Two nodes read the same due schedule and plan it at once.
    let (a, b) = tokio::join!(
        store.apply_schedule_plans(vec![plan.clone()]),
        store.apply_schedule_plans(vec![plan.clone()])
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        [a[0], b[0]].iter().filter(|x| **x).count(),
        1,
        "{a:?} {b:?}"
    );
    assert_eq!(
        store
            .queued_count("acme", "shop", "orders", "schedule")
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .due_schedules(1_700_000_500, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn failures_raise_one_open_notification_per_feed<S>(store: Arc<S>)
where
    S: Queueing + 'static,
{
    with_installations(&*store, "acme", &["shop"]).await;
    for started in [10, 20] {
        let run = ActiveRun {
            tenant: "acme".into(),
            installation: "shop".into(),
            feed: "orders".into(),
            trigger: "manual".into(),
            attempt: 1,
            scheduled_at: started,
            started_at: started,
        };
        assert!(
            store
                .claim_unqueued(run.clone(), crate::storage::Holder::Serve)
                .await
                .unwrap()
        );
        assert!(
            !store
                .claim_unqueued(run.clone(), crate::storage::Holder::Serve)
                .await
                .unwrap(),
            "a feed runs once at a time"
        );
        let mut failed = effects(&run, "error", &[]);
        failed.settlement.as_mut().unwrap().notification = Some(format!("failed at {started}"));
        store.finish_run(failed).await.unwrap();
    }
    let open = store.notifications(Some("acme"), false).await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].count, 2);
    assert_eq!(open[0].message, "failed at 20");
    assert!(
        store
            .notifications(Some("other"), true)
            .await
            .unwrap()
            .is_empty()
    );
    store.ack_notification(open[0].id, "ops", 30).await.unwrap();
    assert!(matches!(
        store.ack_notification(open[0].id, "ops", 31).await,
        Err(StorageError::Conflict(_))
    ));
    assert!(matches!(
        store.ack_notification(open[0].id + 100, "ops", 31).await,
        Err(StorageError::NotFound(_))
    ));
    assert!(store.notifications(None, false).await.unwrap().is_empty());
    let all = store.notifications(None, true).await.unwrap();
    assert_eq!(all[0].acked_by.as_deref(), Some("ops"));
}
