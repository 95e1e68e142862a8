//! The work queue as async code sees it: due schedules turned into queued
//! runs, runs claimed by one holder at a time, released, and the runs in
//! progress found again to recover.

use super::{ActiveRun, QueuedRun, SchedulePlan, ScheduleRow, StorageError};

/// Who holds a run in progress. SQLite's holders are known by process: the
/// `serve` process, or an `airlock run` process by its pid (recovered once
/// that process is gone). PostgreSQL's are leases: whatever process claims
/// a run holds it under a lease its store renews while the process lives
/// (see `postgres/queue.rs`), and any node recovers a run whose lease
/// expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The `serve` process of this database.
    Serve,
    /// Another process, by pid (`airlock run`).
    Process(u32),
    /// A lease, as read: whether it has expired (by the database's clock).
    Lease {
        /// Not renewed in time: its holder is dead, paused or cut off.
        expired: bool,
    },
}

/// The queue of runs and the runs in progress (one per installation and
/// feed), as a backend offers them to async code: no call blocks a tokio
/// worker (SQLite runs each on the blocking pool).
#[async_trait::async_trait]
pub trait WorkQueue: Send + Sync {
    /// Schedules of enabled installations due at `now` (Unix seconds; those
    /// never planned included), earliest first, at most `limit`.
    async fn due_schedules(&self, now: i64, limit: usize)
    -> Result<Vec<ScheduleRow>, StorageError>;
    /// Applies `plans` in one transaction: each plan's next fire is stored
    /// and its runs queued only if its schedule is still as the plan read it
    /// (compare-and-set), so a change written meanwhile is kept and no fire
    /// is queued twice. Whether each plan applied, in order.
    async fn apply_schedule_plans(
        &self,
        plans: Vec<SchedulePlan>,
    ) -> Result<Vec<bool>, StorageError>;
    /// Queues `run`; returns its id.
    async fn enqueue(&self, run: QueuedRun) -> Result<i64, StorageError>;
    /// How many runs of this feed with this trigger are queued.
    async fn queued_count(
        &self,
        tenant: &str,
        installation: &str,
        feed: &str,
        trigger: &str,
    ) -> Result<u32, StorageError>;
    /// The queued runs that could start at `now`, for a fair pick: of each
    /// feed only its earliest due run, of each tenant at most `per_tenant`,
    /// every tenant's first before any tenant's second; at most `limit`.
    async fn due_candidates(
        &self,
        now: i64,
        per_tenant: usize,
        limit: usize,
    ) -> Result<Vec<QueuedRun>, StorageError>;
    /// Claims queued `runs` for the `serve` process, together: each moves
    /// from the queue to the runs in progress unless its feed has a run in
    /// progress already, it is no longer queued (or another node is
    /// claiming it), or its tenant has `max_per_tenant` runs in progress
    /// already (counted in the database, over every process). Whether each
    /// was claimed, in order.
    async fn claim_queued(
        &self,
        runs: Vec<QueuedRun>,
        started_at: i64,
        max_per_tenant: usize,
    ) -> Result<Vec<bool>, StorageError>;
    /// Drops queued run `id` (one that must not run).
    async fn dequeue(&self, id: i64) -> Result<(), StorageError>;
    /// Starts `run`, which was never queued, held by `holder`. False if a
    /// run of the same installation and feed is in progress already.
    async fn claim_unqueued(&self, run: ActiveRun, holder: Holder) -> Result<bool, StorageError>;
    /// Ends a run in progress without recording it (its caller reports the
    /// failure itself).
    async fn release(&self, run: ActiveRun) -> Result<(), StorageError>;
    /// The run of this installation and feed in progress, if one is.
    async fn active_run(
        &self,
        tenant: &str,
        installation: &str,
        feed: &str,
    ) -> Result<Option<ActiveRun>, StorageError>;
    /// Of the feeds `feeds` (tenant, installation, feed), those with a run
    /// in progress: one read for a batch of schedules being planned. The
    /// default asks [`Self::active_run`] for each.
    async fn running_feeds(
        &self,
        feeds: &[(String, String, String)],
    ) -> Result<std::collections::HashSet<(String, String, String)>, StorageError> {
        let mut running = std::collections::HashSet::new();
        for (tenant, installation, feed) in feeds {
            if self.active_run(tenant, installation, feed).await?.is_some() {
                running.insert((tenant.clone(), installation.clone(), feed.clone()));
            }
        }
        Ok(running)
    }
    /// The runs in progress with who holds each: what recovery reads.
    async fn held_runs(&self) -> Result<Vec<(ActiveRun, Holder)>, StorageError>;
    /// At a graceful shutdown: gives up whatever this process still holds
    /// (runs it could not record), so another node recovers them at once
    /// rather than when their leases expire. How many. A backend without
    /// leases has nothing to hand back: the next `serve` recovers them.
    async fn hand_back(&self) -> Result<u64, StorageError> {
        Ok(0)
    }
}
