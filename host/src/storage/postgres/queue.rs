//! PostgreSQL's work queue ([`WorkQueue`]), made for several `serve` nodes
//! on one database, none of them a leader:
//!
//! - A due schedule becomes runs exactly once: a plan's `UPDATE` of the
//!   schedule is a compare-and-set on what the node read, in the
//!   transaction that queues the runs. Two nodes planning the same fire
//!   serialise on the schedule's row; the second finds it changed and
//!   queues nothing.
//! - Queued runs are claimed in one statement per batch: the queue rows are
//!   locked `FOR UPDATE SKIP LOCKED` (a row another node is claiming is
//!   skipped, never waited for), moved to `active_runs` (whose key allows
//!   one run per installation and feed) and deleted, together. The runs a
//!   tenant has in progress are counted in the same transaction, after a
//!   per-tenant advisory lock, so `max_per_tenant` holds over every node.
//! - Each claim is a lease: its owner (this store's node id) and an expiry
//!   by the database's clock, renewed every third of the lease by a task of
//!   the store while the process lives. A run whose lease expired is
//!   recovered by any node; a run's record deletes exactly its own claim
//!   and is refused if the claim is gone (`ledger.rs`), so a node paused
//!   past its lease cannot commit over the recovery.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::Row;

use super::PgStore;
use super::ledger::{lock_installation_rows, lock_installations};
use crate::storage::{
    ActiveRun, Holder, QueuedRun, SchedulePlan, ScheduleRow, StorageError, WorkQueue,
};

/// How long a claim holds without being renewed, unless the operator
/// says otherwise (`serve --lease`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The database's clock in milliseconds since the epoch: the one clock
/// every node's leases are measured by.
const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

const QUEUE_COLUMNS: &str =
    "id, tenant, installation, feed, trigger, attempt, scheduled_at, due_at, created_at";
const ACTIVE_COLUMNS: &str =
    "tenant, installation, feed, trigger, attempt, scheduled_at, started_at";

pub(super) fn queued_from_row(r: &Row) -> QueuedRun {
    QueuedRun {
        id: r.get(0),
        tenant: r.get(1),
        installation: r.get(2),
        feed: r.get(3),
        trigger: r.get(4),
        attempt: r.get::<_, i64>(5) as u32,
        scheduled_at: r.get(6),
        due_at: r.get(7),
        created_at: r.get(8),
    }
}

fn active_from_row(r: &Row) -> ActiveRun {
    ActiveRun {
        tenant: r.get(0),
        installation: r.get(1),
        feed: r.get(2),
        trigger: r.get(3),
        attempt: r.get::<_, i64>(4) as u32,
        scheduled_at: r.get(5),
        started_at: r.get(6),
    }
}

/// Queues a run: its columns, then its id back.
const INSERT_QUEUED: &str = "INSERT INTO queue (tenant, installation, feed, trigger, attempt,
    scheduled_at, due_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";

/// [`INSERT_QUEUED`]'s parameters for `run` (its attempt as the column's
/// type).
fn queued_params<'a>(
    run: &'a QueuedRun,
    attempt: &'a i64,
) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 8] {
    [
        &run.tenant,
        &run.installation,
        &run.feed,
        &run.trigger,
        attempt,
        &run.scheduled_at,
        &run.due_at,
        &run.created_at,
    ]
}

/// Queues `run` inside `tx`; returns its id.
pub(super) async fn insert_queued(
    tx: &impl deadpool_postgres::GenericClient,
    run: &QueuedRun,
) -> Result<i64, StorageError> {
    let insert = tx.prepare_cached(INSERT_QUEUED).await?;
    let attempt = i64::from(run.attempt);
    let row = tx.query_one(&insert, &queued_params(run, &attempt)).await?;
    Ok(row.get(0))
}

/// A node's identity as a lease owner: host name, pid and a random part,
/// so a restarted process never inherits its predecessor's leases.
pub(super) fn node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "node".into());
    use chacha20poly1305::aead::rand_core::RngCore;
    let random = chacha20poly1305::aead::OsRng.next_u64();
    format!("{host}:{}:{random:016x}", std::process::id())
}

/// A claim's key: tenant, installation, feed.
type ClaimKey = (String, String, String);

fn key_of(run: &ActiveRun) -> ClaimKey {
    (
        run.tenant.clone(),
        run.installation.clone(),
        run.feed.clone(),
    )
}

/// The lease of this store's claims and the task that renews them: the
/// task ends when the last clone of the store is dropped.
///
/// Only the claims this process knows it holds are renewed: one whose
/// commit's answer was lost (the database went away) is not, so it lapses
/// and is recovered, rather than renewed for as long as the process lives
/// with no task running it.
pub(super) struct Leases {
    /// This node's id (`active_runs.lease_owner`).
    pub owner: String,
    /// How long a claim holds unless renewed.
    pub lease: Duration,
    held: Mutex<HashSet<ClaimKey>>,
    renewer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Leases {
    fn drop(&mut self) {
        if let Some(task) = self.renewer.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

impl Leases {
    /// Leases of `lease` owned by a fresh node id, renewed over `pool` every
    /// third of the lease (on the current tokio runtime, if any).
    pub(super) fn start(pool: deadpool_postgres::Pool, lease: Duration) -> Arc<Self> {
        let leases = Arc::new(Self {
            owner: node_id(),
            lease,
            held: Mutex::new(HashSet::new()),
            renewer: Mutex::new(None),
        });
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return leases;
        };
        let weak = Arc::downgrade(&leases);
        let task = runtime.spawn(async move {
            let mut every = tokio::time::interval(lease / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(leases) = weak.upgrade() else { return };
                if let Err(e) = leases.renew(&pool).await {
                    let cause = std::error::Error::source(&e).map(ToString::to_string);
                    tracing::warn!(
                        error = %e,
                        cause = cause.unwrap_or_default(),
                        "cannot renew this node's leases; runs it holds are recovered by \
                         other nodes if this lasts past the lease"
                    );
                }
            }
        });
        *leases.renewer.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        leases
    }

    fn lease_ms(&self) -> i64 {
        self.lease.as_millis() as i64
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<ClaimKey>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that this process holds the claim of `run`.
    pub(super) fn hold(&self, run: &ActiveRun) {
        self.held().insert(key_of(run));
    }

    /// Notes that this process no longer holds the claim of `run`.
    pub(super) fn forget(&self, run: &ActiveRun) {
        self.held().remove(&key_of(run));
    }

    /// Whether this process holds a claim of installation `scope`.
    pub(super) fn holds_any(&self, scope: &crate::storage::Scope) -> bool {
        self.held()
            .iter()
            .any(|(t, i, _)| *t == scope.tenant && *i == scope.installation)
    }

    /// Extends, by the lease from now, the claims this process holds; a
    /// row being recorded (locked) is skipped, never waited for.
    async fn renew(&self, pool: &deadpool_postgres::Pool) -> Result<u64, StorageError> {
        let mut tenants = Vec::new();
        let mut installations = Vec::new();
        let mut feeds = Vec::new();
        for (tenant, installation, feed) in self.held().iter() {
            tenants.push(tenant.clone());
            installations.push(installation.clone());
            feeds.push(feed.clone());
        }
        if tenants.is_empty() {
            return Ok(0);
        }
        let client = pool.get().await?;
        let renewed = client
            .execute(
                &format!(
                    "UPDATE active_runs SET lease_expires_ms = {DB_NOW_MS} + $2
                     WHERE ctid IN (
                        SELECT a.ctid FROM active_runs a
                        JOIN unnest($3::text[], $4::text[], $5::text[]) AS k (t, i, f)
                          ON a.tenant = k.t AND a.installation = k.i AND a.feed = k.f
                        WHERE a.lease_owner = $1
                        FOR UPDATE OF a SKIP LOCKED)"
                ),
                &[
                    &self.owner,
                    &self.lease_ms(),
                    &tenants,
                    &installations,
                    &feeds,
                ],
            )
            .await?;
        Ok(renewed)
    }
}

impl PgStore {
    /// Renews this node's leases now (the renewing task does it on its
    /// own; a test calls this to hold a lease without waiting).
    pub async fn renew_leases(&self) -> Result<u64, StorageError> {
        self.leases.renew(&self.pool).await
    }

    /// Adds `run` to the runs in progress under this node's lease; false if
    /// its installation and feed has one.
    async fn insert_active(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        run: &ActiveRun,
    ) -> Result<bool, StorageError> {
        let inserted = client
            .execute(
                &format!(
                    "INSERT INTO active_runs ({ACTIVE_COLUMNS}, lease_owner, lease_expires_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {DB_NOW_MS} + $9)
                     ON CONFLICT DO NOTHING"
                ),
                &[
                    &run.tenant,
                    &run.installation,
                    &run.feed,
                    &run.trigger,
                    &i64::from(run.attempt),
                    &run.scheduled_at,
                    &run.started_at,
                    &self.leases.owner,
                    &self.leases.lease_ms(),
                ],
            )
            .await?;
        Ok(inserted == 1)
    }
}

/// Deletes `run`'s claim, as it was made (the same trigger, attempt, fire
/// and start), if `owner` holds it or, with `expired_too`, if its lease has
/// expired (a recovery); how many rows went (0 or 1).
pub(super) async fn delete_claim(
    client: &impl deadpool_postgres::GenericClient,
    run: &ActiveRun,
    owner: &str,
    expired_too: bool,
) -> Result<u64, StorageError> {
    Ok(client
        .execute(
            &format!(
                "DELETE FROM active_runs WHERE tenant = $1 AND installation = $2 AND feed = $3
                   AND trigger = $4 AND attempt = $5 AND scheduled_at = $6 AND started_at = $7
                   AND (lease_owner = $8 OR ($9 AND lease_expires_ms < {DB_NOW_MS}))"
            ),
            &[
                &run.tenant,
                &run.installation,
                &run.feed,
                &run.trigger,
                &i64::from(run.attempt),
                &run.scheduled_at,
                &run.started_at,
                &owner,
                &expired_too,
            ],
        )
        .await?)
}

/// Claims the queued runs `ids` (in that order of preference) under a
/// lease, in one statement: each row is locked or skipped (another node
/// holds it), its tenant's runs in progress counted (`$5` at most, the
/// batch's own claims ranked in), moved to `active_runs` unless its feed
/// has a run there, and deleted from the queue. Returns the ids claimed.
const CLAIM: &str = "
    WITH wanted AS (
        SELECT id, ordinality AS rank FROM unnest($1::bigint[]) WITH ORDINALITY AS w (id)
    ), locked AS (
        SELECT q.*, w.rank FROM queue q JOIN wanted w ON w.id = q.id
        FOR UPDATE OF q SKIP LOCKED
    ), startable AS (
        -- Of each feed the first wanted, and only if the feed is not
        -- running: a run that cannot start takes no place in the count.
        SELECT l.*, ROW_NUMBER() OVER (
                PARTITION BY l.tenant, l.installation, l.feed ORDER BY l.rank) AS in_feed
        FROM locked l
        WHERE NOT EXISTS (SELECT 1 FROM active_runs a WHERE a.tenant = l.tenant
            AND a.installation = l.installation AND a.feed = l.feed)
    ), ranked AS (
        SELECT s.*, ROW_NUMBER() OVER (PARTITION BY s.tenant ORDER BY s.rank) AS in_tenant,
            (SELECT COUNT(*) FROM active_runs a WHERE a.tenant = s.tenant) AS busy
        FROM startable s WHERE s.in_feed = 1
    ), claimed AS (
        INSERT INTO active_runs (tenant, installation, feed, trigger, attempt, scheduled_at,
            started_at, lease_owner, lease_expires_ms)
        SELECT tenant, installation, feed, trigger, attempt, scheduled_at, $2, $3,
            (extract(epoch from clock_timestamp()) * 1000)::bigint + $4
        FROM ranked WHERE busy + in_tenant <= $5
        ON CONFLICT DO NOTHING
        RETURNING tenant, installation, feed
    )
    DELETE FROM queue q USING ranked r, claimed c
    WHERE q.id = r.id AND c.tenant = r.tenant
        AND c.installation = r.installation AND c.feed = r.feed
    RETURNING q.id";

#[async_trait::async_trait]
impl WorkQueue for PgStore {
    async fn due_schedules(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<ScheduleRow>, StorageError> {
        self.due_schedules_at(now, limit).await
    }

    async fn apply_schedule_plans(
        &self,
        plans: Vec<SchedulePlan>,
    ) -> Result<Vec<bool>, StorageError> {
        // Every node updates schedules in the same order (by key): two
        // nodes applying overlapping plans wait for each other, never
        // deadlock.
        let mut order: Vec<usize> = (0..plans.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&plans[a].schedule, &plans[b].schedule);
            (&a.tenant, &a.installation, &a.feed).cmp(&(&b.tenant, &b.installation, &b.feed))
        });
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The installations' rows first (as every writer of an
        // installation takes them: see `ledger.rs`), in key order: queuing
        // a run locks its installation's row for its foreign key, and an
        // operator's change locks the row before the schedules.
        let (tenants, installations): (Vec<&str>, Vec<&str>) = order
            .iter()
            .map(|&i| {
                let s = &plans[i].schedule;
                (s.tenant.as_str(), s.installation.as_str())
            })
            .unzip();
        lock_installation_rows(&tx, &tenants, &installations).await?;
        let update = tx
            .prepare_cached(
                "UPDATE schedules SET next_fire_at = $4, due_at = $5
                 WHERE tenant = $1 AND installation = $2 AND feed = $3
                   AND cron = $6 AND time_zone = $7
                   AND next_fire_at IS NOT DISTINCT FROM $8 AND due_at IS NOT DISTINCT FROM $9",
            )
            .await?;
        // Pipelined: every statement is sent at once, in order, and the
        // server runs them one after another; the round trips overlap
        // instead of adding up (one per plan was the planning's cost).
        type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
        let updates: Vec<[Param<'_>; 9]> = order
            .iter()
            .map(|&index| {
                let plan = &plans[index];
                let s = &plan.schedule;
                [
                    &s.tenant as Param<'_>,
                    &s.installation,
                    &s.feed,
                    &plan.next_fire_at,
                    &plan.due_at,
                    &s.cron,
                    &s.time_zone,
                    &s.next_fire_at,
                    &s.due_at,
                ]
            })
            .collect();
        let changed = futures_util::future::try_join_all(
            updates.iter().map(|params| tx.execute(&update, params)),
        )
        .await?;
        let mut applied = vec![false; plans.len()];
        for (&index, changed) in order.iter().zip(changed) {
            applied[index] = changed == 1;
        }
        let runs: Vec<&QueuedRun> = plans
            .iter()
            .zip(&applied)
            .filter(|(_, applied)| **applied)
            .flat_map(|(plan, _)| &plan.enqueue)
            .collect();
        let attempts: Vec<i64> = runs.iter().map(|r| i64::from(r.attempt)).collect();
        let inserts: Vec<[Param<'_>; 8]> = runs
            .iter()
            .zip(&attempts)
            .map(|(run, attempt)| queued_params(run, attempt))
            .collect();
        let insert = tx.prepare_cached(INSERT_QUEUED).await?;
        futures_util::future::try_join_all(
            inserts.iter().map(|params| tx.query_one(&insert, params)),
        )
        .await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn enqueue(&self, run: QueuedRun) -> Result<i64, StorageError> {
        insert_queued(&self.client().await?, &run).await
    }

    async fn queued_count(
        &self,
        tenant: &str,
        installation: &str,
        feed: &str,
        trigger: &str,
    ) -> Result<u32, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COUNT(*) FROM queue
                 WHERE tenant = $1 AND installation = $2 AND feed = $3 AND trigger = $4",
                &[&tenant, &installation, &feed, &trigger],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u32)
    }

    async fn due_candidates(
        &self,
        now: i64,
        per_tenant: usize,
        limit: usize,
    ) -> Result<Vec<QueuedRun>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "WITH heads AS (
                    SELECT DISTINCT ON (tenant, installation, feed) {QUEUE_COLUMNS}
                    FROM queue WHERE due_at <= $1
                    ORDER BY tenant, installation, feed, due_at, id
                 ), ranked AS (
                    SELECT {QUEUE_COLUMNS}, ROW_NUMBER() OVER (
                        PARTITION BY tenant ORDER BY due_at, id) AS in_tenant
                    FROM heads
                 )
                 SELECT {QUEUE_COLUMNS} FROM ranked WHERE in_tenant <= $2
                 ORDER BY in_tenant, due_at, id LIMIT $3"
            ))
            .await?;
        let rows = client
            .query(&statement, &[&now, &(per_tenant as i64), &(limit as i64)])
            .await?;
        Ok(rows.iter().map(queued_from_row).collect())
    }

    async fn claim_queued(
        &self,
        runs: Vec<QueuedRun>,
        started_at: i64,
        max_per_tenant: usize,
    ) -> Result<Vec<bool>, StorageError> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
        let mut tenants: Vec<&str> = runs.iter().map(|r| r.tenant.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One claimer per tenant at a time over every node (in key order:
        // no deadlock), so its runs in progress are counted exactly. The
        // claim's statement starts after, and sees what others committed.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(t, 7)) FROM unnest($1::text[]) t",
            &[&tenants],
        )
        .await?;
        // Then each installation, as a run's record locks it (its row, then
        // its advisory lock: see `ledger.rs`), so a rewind that found no
        // run in progress commits before one starts.
        let mut keys: Vec<(&str, &str)> = runs
            .iter()
            .map(|r| (r.tenant.as_str(), r.installation.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let (key_tenants, key_installations): (Vec<&str>, Vec<&str>) = keys.into_iter().unzip();
        lock_installations(&tx, &key_tenants, &key_installations).await?;
        let claim = tx.prepare_cached(CLAIM).await?;
        let claimed: std::collections::HashSet<i64> = tx
            .query(
                &claim,
                &[
                    &ids,
                    &started_at,
                    &self.leases.owner,
                    &self.leases.lease_ms(),
                    &(max_per_tenant.min(i64::MAX as usize) as i64),
                ],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.commit().await?;
        for run in runs.iter().filter(|r| claimed.contains(&r.id)) {
            self.leases.hold(&run.started(started_at));
        }
        Ok(ids.iter().map(|id| claimed.contains(id)).collect())
    }

    async fn dequeue(&self, id: i64) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM queue WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    async fn claim_unqueued(&self, run: ActiveRun, _holder: Holder) -> Result<bool, StorageError> {
        // Whoever claims (serve, or `airlock run`) holds a lease this
        // store renews while its process lives.
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_installations(&tx, &[&run.tenant], &[&run.installation]).await?;
        let claimed = self.insert_active(&tx, &run).await?;
        tx.commit().await?;
        if claimed {
            self.leases.hold(&run);
        }
        Ok(claimed)
    }

    async fn release(&self, run: ActiveRun) -> Result<(), StorageError> {
        // Given up either way; deleted only if it is this claim, and still
        // this node's.
        self.leases.forget(&run);
        delete_claim(&self.client().await?, &run, &self.leases.owner, false).await?;
        Ok(())
    }

    async fn active_run(
        &self,
        tenant: &str,
        installation: &str,
        feed: &str,
    ) -> Result<Option<ActiveRun>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {ACTIVE_COLUMNS} FROM active_runs
                     WHERE tenant = $1 AND installation = $2 AND feed = $3"
                ),
                &[&tenant, &installation, &feed],
            )
            .await?;
        Ok(row.as_ref().map(active_from_row))
    }

    async fn running_feeds(
        &self,
        feeds: &[(String, String, String)],
    ) -> Result<HashSet<(String, String, String)>, StorageError> {
        if feeds.is_empty() {
            return Ok(HashSet::new());
        }
        let mut columns: [Vec<&str>; 3] = Default::default();
        for (tenant, installation, feed) in feeds {
            columns[0].push(tenant);
            columns[1].push(installation);
            columns[2].push(feed);
        }
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT a.tenant, a.installation, a.feed FROM active_runs a
                 JOIN unnest($1::text[], $2::text[], $3::text[]) AS k (t, i, f)
                   ON a.tenant = k.t AND a.installation = k.i AND a.feed = k.f",
                &[&columns[0], &columns[1], &columns[2]],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    async fn held_runs(&self) -> Result<Vec<(ActiveRun, Holder)>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ACTIVE_COLUMNS}, lease_expires_ms < {DB_NOW_MS} FROM active_runs
                     ORDER BY started_at"
                ),
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let expired = r.get(7);
                (active_from_row(r), Holder::Lease { expired })
            })
            .collect())
    }

    async fn hand_back(&self) -> Result<u64, StorageError> {
        // Not renewed from now on: handed back for good.
        self.leases.held().clear();
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE active_runs SET lease_expires_ms = 0 WHERE lease_owner = $1",
                &[&self.leases.owner],
            )
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_nodes;
    use crate::storage::{
        ActiveRun, Holder, KvBackend, Registry, RunEffects, RunLedger, RunRow, Scope, Settlement,
        StorageError, TenantRow, WorkQueue,
    };

    fn run() -> ActiveRun {
        ActiveRun {
            tenant: "acme".into(),
            installation: "shop".into(),
            feed: "orders".into(),
            trigger: "manual".into(),
            attempt: 1,
            scheduled_at: 10,
            started_at: 10,
        }
    }

    fn record(active: &ActiveRun, status: &str) -> RunEffects {
        RunEffects {
            run: RunRow {
                tenant: active.tenant.clone(),
                installation: active.installation.clone(),
                plugin_id: "p".into(),
                plugin_version: "1".into(),
                plugin_digest: "d".into(),
                feed: active.feed.clone(),
                mode: "live".into(),
                trigger: active.trigger.clone(),
                attempt: active.attempt,
                scheduled_at: active.scheduled_at,
                started_at: active.started_at,
                ended_at: active.started_at + 1,
                status: status.into(),
                message: String::new(),
                report: "{}".into(),
            },
            kv_changes: vec![("cursor".into(), Some(status.as_bytes().to_vec()))],
            records: Default::default(),
            artifacts: Default::default(),
            http_calls: Vec::new(),
            settlement: Some(Settlement {
                active: active.clone(),
                follow_up: None,
                notification: None,
            }),
            settled_at: active.started_at + 1,
            webhook_delivery: None,
            kv_history: Default::default(),
        }
    }

    /// Two nodes on one schema with `acme/shop` installed.
    async fn two_nodes() -> Option<(super::super::PgStore, super::super::PgStore)> {
        let mut nodes = test_nodes(2).await?;
        let (a, b) = (nodes.remove(0), nodes.remove(0));
        a.add_tenant(TenantRow {
            id: "acme".into(),
            name: "Acme".into(),
            created_at: 0,
        })
        .await
        .unwrap();
        a.insert_installation(
            crate::storage::conformance::registry::installation("acme", "shop"),
            Vec::new(),
            Vec::new(),
        )
        .await
        .unwrap();
        Some((a, b))
    }

    async fn expire_leases(store: &super::super::PgStore) {
        let client = store.client().await.unwrap();
        client
            .execute("UPDATE active_runs SET lease_expires_ms = 0", &[])
            .await
            .unwrap();
    }

    fn scope() -> Scope {
        Scope {
            tenant: "acme".into(),
            installation: "shop".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_live_claim_is_never_recovered_and_an_expired_ones_holder_is_fenced_off() {
        let Some((a, b)) = two_nodes().await else {
            return;
        };
        assert!(a.claim_unqueued(run(), Holder::Serve).await.unwrap());
        // While A's lease holds, B cannot record the run as interrupted.
        let held = b.held_runs().await.unwrap();
        assert_eq!(held[0].1, Holder::Lease { expired: false });
        assert!(matches!(
            b.finish_run(record(&run(), "interrupted")).await,
            Err(StorageError::LeaseLost(_))
        ));
        // A is paused past its lease: B recovers the run.
        expire_leases(&a).await;
        assert_eq!(
            b.held_runs().await.unwrap()[0].1,
            Holder::Lease { expired: true }
        );
        b.finish_run(record(&run(), "interrupted")).await.unwrap();
        // A wakes: neither its checkpoint nor its record is applied.
        let late = a
            .kv_checkpoint(
                &scope(),
                &[("cursor".into(), Some(b"late".to_vec()))],
                7,
                10,
            )
            .await;
        assert!(matches!(late, Err(StorageError::LeaseLost(_))), "{late:?}");
        assert!(matches!(
            a.finish_run(record(&run(), "ok")).await,
            Err(StorageError::LeaseLost(_))
        ));
        assert_eq!(
            a.kv_get(&scope(), "cursor").await.unwrap(),
            Some(b"interrupted".to_vec())
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_claims_a_node_holds_are_renewed_and_handed_back() {
        let Some((a, b)) = two_nodes().await else {
            return;
        };
        assert!(a.claim_unqueued(run(), Holder::Serve).await.unwrap());
        // Release ends only its own claim: not another claim of the feed,
        // nor another node's.
        let later = ActiveRun {
            started_at: 11,
            ..run()
        };
        a.release(later).await.unwrap();
        b.release(run()).await.unwrap();
        assert_eq!(b.held_runs().await.unwrap().len(), 1);
        // (Releasing a claim of the feed forgot the feed: held again.)
        a.leases.hold(&run());
        expire_leases(&a).await;
        assert_eq!(a.renew_leases().await.unwrap(), 1);
        assert_eq!(
            b.held_runs().await.unwrap()[0].1,
            Holder::Lease { expired: false }
        );
        // A claim this node does not know it holds (its commit's answer was
        // lost) is not renewed: it lapses, to be recovered.
        a.leases.forget(&run());
        expire_leases(&a).await;
        assert_eq!(a.renew_leases().await.unwrap(), 0);
        assert_eq!(
            b.held_runs().await.unwrap()[0].1,
            Holder::Lease { expired: true }
        );
        // Handed back: expired at once, and not renewed after.
        a.leases.hold(&run());
        assert_eq!(a.renew_leases().await.unwrap(), 1);
        assert_eq!(a.hand_back().await.unwrap(), 1);
        assert_eq!(a.renew_leases().await.unwrap(), 0);
        assert_eq!(
            b.held_runs().await.unwrap()[0].1,
            Holder::Lease { expired: true }
        );
        // A checkpoint of a trial run (never claimed) is not fenced.
        let other = Scope {
            installation: "trial".into(),
            ..scope()
        };
        b.kv_checkpoint(&other, &[("k".into(), Some(b"v".to_vec()))], 1, 10)
            .await
            .unwrap();
    }
}
