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

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Row;

use super::PgStore;
use super::state_history::INSTALLATION_LOCK_SEED;
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

/// Queues `run` inside `tx`; returns its id.
pub(super) async fn insert_queued(
    tx: &impl deadpool_postgres::GenericClient,
    run: &QueuedRun,
) -> Result<i64, StorageError> {
    let row = tx
        .query_one(
            "INSERT INTO queue (tenant, installation, feed, trigger, attempt, scheduled_at,
                due_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &run.tenant,
                &run.installation,
                &run.feed,
                &run.trigger,
                &i64::from(run.attempt),
                &run.scheduled_at,
                &run.due_at,
                &run.created_at,
            ],
        )
        .await?;
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

/// The lease of this store's claims and the task that renews them: the
/// task ends when the last clone of the store is dropped.
pub(super) struct Leases {
    /// This node's id (`active_runs.lease_owner`).
    pub owner: String,
    /// How long a claim holds unless renewed.
    pub lease: Duration,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Leases {
    fn drop(&mut self) {
        if let Some(task) = self.renewer.take() {
            task.abort();
        }
    }
}

impl Leases {
    /// Leases of `lease` owned by a fresh node id, renewed over `pool` every
    /// third of the lease (on the current tokio runtime, if any).
    pub(super) fn start(pool: deadpool_postgres::Pool, lease: Duration) -> Arc<Self> {
        let owner = node_id();
        let renewer = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let (owner, pool) = (owner.clone(), pool);
            runtime.spawn(async move {
                let mut every = tokio::time::interval(lease / 3);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    if let Err(e) = renew(&pool, &owner, lease).await {
                        let cause = std::error::Error::source(&e).map(ToString::to_string);
                        tracing::warn!(
                            error = %e,
                            cause = cause.unwrap_or_default(),
                            "cannot renew this node's leases; runs it holds are recovered by \
                             other nodes if this lasts past the lease"
                        );
                    }
                }
            })
        });
        Arc::new(Self {
            owner,
            lease,
            renewer,
        })
    }

    fn lease_ms(&self) -> i64 {
        self.lease.as_millis() as i64
    }
}

/// Extends every lease `owner` holds by `lease` from now.
async fn renew(
    pool: &deadpool_postgres::Pool,
    owner: &str,
    lease: Duration,
) -> Result<u64, StorageError> {
    let client = pool.get().await?;
    let renewed = client
        .execute(
            &format!(
                "UPDATE active_runs SET lease_expires_ms = {DB_NOW_MS} + $2
                 WHERE lease_owner = $1"
            ),
            &[&owner, &(lease.as_millis() as i64)],
        )
        .await?;
    Ok(renewed)
}

impl PgStore {
    /// Renews this node's leases now (the renewing task does it on its
    /// own; a test calls this to hold a lease without waiting).
    pub async fn renew_leases(&self) -> Result<u64, StorageError> {
        renew(&self.pool, &self.leases.owner, self.leases.lease).await
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

/// Locks installations (`tenants[i]`, `installations[i]`, in key order)
/// inside `tx` as a run's record does: rows first, then advisory locks.
async fn lock_installations(
    tx: &deadpool_postgres::Transaction<'_>,
    tenants: &[&str],
    installations: &[&str],
) -> Result<(), StorageError> {
    tx.execute(
        "SELECT 1 FROM installations i
         JOIN unnest($1::text[], $2::text[]) AS k (tenant, id)
           ON i.tenant = k.tenant AND i.id = k.id
         ORDER BY i.tenant, i.id FOR KEY SHARE OF i",
        &[&tenants, &installations],
    )
    .await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(k.tenant || '/' || k.id, $3))
         FROM unnest($1::text[], $2::text[]) AS k (tenant, id)",
        &[&tenants, &installations, &INSTALLATION_LOCK_SEED],
    )
    .await?;
    Ok(())
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
    ), ranked AS (
        SELECT l.*, ROW_NUMBER() OVER (PARTITION BY l.tenant ORDER BY l.rank) AS in_tenant,
            ROW_NUMBER() OVER (
                PARTITION BY l.tenant, l.installation, l.feed ORDER BY l.rank) AS in_feed,
            (SELECT COUNT(*) FROM active_runs a WHERE a.tenant = l.tenant) AS busy
        FROM locked l
    ), claimed AS (
        INSERT INTO active_runs (tenant, installation, feed, trigger, attempt, scheduled_at,
            started_at, lease_owner, lease_expires_ms)
        SELECT tenant, installation, feed, trigger, attempt, scheduled_at, $2, $3,
            (extract(epoch from clock_timestamp()) * 1000)::bigint + $4
        FROM ranked WHERE in_feed = 1 AND busy + in_tenant <= $5
        ON CONFLICT DO NOTHING
        RETURNING tenant, installation, feed
    )
    DELETE FROM queue q USING ranked r, claimed c
    WHERE q.id = r.id AND r.in_feed = 1 AND c.tenant = r.tenant
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
        mut plans: Vec<SchedulePlan>,
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
        let update = tx
            .prepare_cached(
                "UPDATE schedules SET next_fire_at = $4, due_at = $5
                 WHERE tenant = $1 AND installation = $2 AND feed = $3
                   AND cron = $6 AND time_zone = $7
                   AND next_fire_at IS NOT DISTINCT FROM $8 AND due_at IS NOT DISTINCT FROM $9",
            )
            .await?;
        let mut applied = vec![false; plans.len()];
        for index in order {
            let plan = &mut plans[index];
            let s = &plan.schedule;
            let changed = tx
                .execute(
                    &update,
                    &[
                        &s.tenant,
                        &s.installation,
                        &s.feed,
                        &plan.next_fire_at,
                        &plan.due_at,
                        &s.cron,
                        &s.time_zone,
                        &s.next_fire_at,
                        &s.due_at,
                    ],
                )
                .await?;
            if changed == 1 {
                for run in std::mem::take(&mut plan.enqueue) {
                    insert_queued(&tx, &run).await?;
                }
            }
            applied[index] = changed == 1;
        }
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
        Ok(claimed)
    }

    async fn release(&self, run: ActiveRun) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM active_runs WHERE tenant = $1 AND installation = $2 AND feed = $3
                   AND lease_owner = $4",
                &[
                    &run.tenant,
                    &run.installation,
                    &run.feed,
                    &self.leases.owner,
                ],
            )
            .await?;
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
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE active_runs SET lease_expires_ms = 0 WHERE lease_owner = $1",
                &[&self.leases.owner],
            )
            .await?)
    }
}
