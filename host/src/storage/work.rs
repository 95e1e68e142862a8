//! The work queue as async code sees it: runs queued, claimed by one holder
//! at a time, released, and the runs in progress found again to recover.

use super::{ActiveRun, QueuedRun, StorageError};

/// Who holds a run in progress. SQLite's holders are known by process: the
/// `serve` process, or an `airlock run` process by its pid (recovered once
/// that process is gone). A backend with leases (an owner and an expiry,
/// renewed while the run lasts) extends this type, not the trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The `serve` process of this database.
    Serve,
    /// Another process, by pid (`airlock run`).
    Process(u32),
}

/// The queue of runs and the runs in progress (one per installation and
/// feed), as a backend offers them to async code: no call blocks a tokio
/// worker (SQLite runs each on the blocking pool).
#[async_trait::async_trait]
pub trait WorkQueue: Send + Sync {
    /// Queues `run`; returns its id.
    async fn enqueue(&self, run: QueuedRun) -> Result<i64, StorageError>;
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
    /// The runs in progress with who holds each: what recovery reads.
    async fn held_runs(&self) -> Result<Vec<(ActiveRun, Holder)>, StorageError>;
}
