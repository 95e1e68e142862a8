//! What the scheduler reports as it goes: runs queued, skipped, started and
//! finished, and its own failures. The CLI prints them; tests collect them.

use std::sync::Arc;
use std::time::Duration;

/// Something the scheduler did, for progress output and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A run was queued from a schedule (`missed` fires coalesced or dropped).
    Queued {
        /// `tenant/installation`.
        installation: String,
        /// Feed.
        feed: String,
        /// Its fire time.
        scheduled_at: i64,
        /// Fires not run by the catch-up policy.
        missed: u64,
    },
    /// A queued run was dropped without running, and why.
    Skipped {
        /// `tenant/installation`.
        installation: String,
        /// Feed.
        feed: String,
        /// Why.
        reason: String,
    },
    /// A run started.
    Started {
        /// `tenant/installation`.
        installation: String,
        /// Feed.
        feed: String,
        /// `schedule`, `manual` or `retry`.
        trigger: String,
        /// Attempt.
        attempt: u32,
    },
    /// A run ended and was recorded.
    Finished {
        /// `tenant/installation`.
        installation: String,
        /// Feed.
        feed: String,
        /// Its run id.
        run_id: Option<i64>,
        /// `ok`, `info`, `retry`, `error` or `interrupted`.
        outcome: String,
        /// One line.
        message: String,
        /// When a retry was queued, its due time.
        retry_at: Option<i64>,
        /// Whether a notification was raised.
        notified: bool,
    },
    /// A run's record was refused: its claim had been taken from this
    /// process (its lease expired and another node recovered the run), so
    /// nothing of it was committed.
    LeaseLost {
        /// `tenant/installation`.
        installation: String,
        /// Feed.
        feed: String,
        /// The store's explanation.
        message: String,
    },
    /// A step of the scheduler failed (the store could not be read or
    /// written); the scheduler keeps going.
    HostFault {
        /// What failed.
        error: String,
        /// When the step is tried again (none: at the next start).
        retry_in: Option<Duration>,
    },
}

/// Receives [`Event`]s (the CLI prints them; tests collect them).
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;
