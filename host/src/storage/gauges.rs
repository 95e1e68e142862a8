//! What the metrics read from the store when they are scraped
//! ([`Gauges`]): the backlog of the queue, the runs in progress, the open
//! notifications and the records pending per consuming plugin. Every
//! reading is bounded (see the constants), so a scrape costs the same
//! whatever the size of the platform.

use super::StorageError;

/// The most pending records counted per installation and collection: past
/// it the count stops (the gauge then says "at least").
pub const PENDING_COUNT_CAP: u64 = 100_000;

/// The most (installation, collection) pairs whose pending records are
/// counted at one scrape, in the order of the installations' keys.
pub const PENDING_PAIRS_CAP: usize = 2_000;

/// The records pending for the enabled installations of one plugin in one
/// collection, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingCount {
    /// The consuming plugin's id.
    pub plugin: String,
    /// The collection.
    pub collection: String,
    /// Records pending (each installation's count capped at
    /// [`PENDING_COUNT_CAP`]).
    pub count: u64,
}

/// The store's gauges at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GaugeReading {
    /// Queued runs whose due time has come.
    pub queue_due: u64,
    /// Runs claimed and not yet recorded.
    pub in_progress: u64,
    /// Notifications not acknowledged.
    pub open_notifications: u64,
    /// Pending records by plugin and collection, sorted.
    pub records_pending: Vec<PendingCount>,
}

/// The gauges, as a backend offers them to async code.
#[async_trait::async_trait]
pub trait Gauges: Send + Sync {
    /// The gauges at `now` (Unix seconds), each from a bounded query.
    async fn gauges(&self, now: i64) -> Result<GaugeReading, StorageError>;
}
