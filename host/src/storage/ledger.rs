//! The run ledger: the [`RunLedger`] trait, what it records (a finished
//! run's [`RunRow`]) and [`RunEffects`], everything a run changes, committed
//! by one store call in one transaction; and [`History`], what it gives back
//! (runs, the egress audit, notifications).

use super::webhooks::DeliveryReceipt;
use super::{
    ArtifactEffects, AuditFilter, AuditRow, NotificationRow, RecordEffects, RuleUsage, RunFilter,
    RunSummary, Scope, Settlement, StorageError,
};
use crate::egress::HttpCall;

/// A run as recorded in the `runs` table.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// Tenant.
    pub tenant: String,
    /// Installation.
    pub installation: String,
    /// Plugin id.
    pub plugin_id: String,
    /// Plugin version.
    pub plugin_version: String,
    /// Component sha256.
    pub plugin_digest: String,
    /// Feed.
    pub feed: String,
    /// `test` or `live`.
    pub mode: String,
    /// `schedule`, `manual` or `retry`.
    pub trigger: String,
    /// Attempt number.
    pub attempt: u32,
    /// When it was due (Unix seconds).
    pub scheduled_at: i64,
    /// When it started (Unix seconds).
    pub started_at: i64,
    /// When it ended (Unix seconds).
    pub ended_at: i64,
    /// `ok`, `info`, `retry`, `error`, `trap`, `timeout`, `memory`…
    pub status: String,
    /// One line.
    pub message: String,
    /// The full report as JSON.
    pub report: String,
}

/// Everything a finished run changes, as one value: the store commits it in
/// one transaction or not at all (see `SqliteStore::finish_run`), so a crash
/// never leaves a run's writes applied but the run unrecorded, nor a
/// scheduled run recorded but still in progress.
#[derive(Debug, Clone)]
pub struct RunEffects {
    /// The run's record.
    pub run: RunRow,
    /// Its final key-value writes, in the run's own scope (a value to set, or
    /// `None` to delete); empty when the run's writes are discarded.
    pub kv_changes: Vec<(String, Option<Vec<u8>>)>,
    /// Its changes to the tenant's records (writes, acknowledgements and
    /// annotations, as its installation); empty when they are discarded.
    pub records: RecordEffects,
    /// Its artifacts: staged versions published (it succeeded) or dropped.
    pub artifacts: ArtifactEffects,
    /// Its HTTP calls, for the egress audit.
    pub http_calls: Vec<HttpCall>,
    /// For a scheduled run: how it leaves the runs in progress.
    pub settlement: Option<Settlement>,
    /// When it is settled (Unix seconds).
    pub settled_at: i64,
    /// For a webhook delivery with an id, handled by a run that committed:
    /// the id, remembered so a replay is not run again.
    pub webhook_delivery: Option<DeliveryReceipt>,
    /// How its storage changes enter the storage history.
    pub kv_history: KvHistory,
}

/// How a run's storage changes enter the storage history
/// ([`super::StateHistory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvHistory {
    /// The token its checkpoints were committed under, if it checkpointed
    /// ([`super::RunStorage::checkpoint_token`]): their history is
    /// attributed to the run when it is recorded.
    pub checkpoint: Option<i64>,
    /// Old values kept per key (0: [`super::DEFAULT_KEEP_VERSIONS`]).
    pub keep_versions: u32,
}

impl KvHistory {
    /// Old values kept per key.
    pub fn keep_versions(&self) -> u32 {
        match self.keep_versions {
            0 => super::DEFAULT_KEEP_VERSIONS,
            n => n,
        }
    }
}

/// The record of runs, as a backend offers it to async code. Every call is
/// async so that a backend never blocks a tokio worker (SQLite runs each
/// call on the blocking pool).
#[async_trait::async_trait]
pub trait RunLedger: Send + Sync {
    /// Commits a finished run's `effects` in one transaction (all or
    /// nothing) and returns the run's id.
    async fn finish_run(&self, effects: RunEffects) -> Result<i64, StorageError>;
    /// Records HTTP calls made outside a run (a `check()`) in the egress
    /// audit, attributed to `who`'s installation, plugin and feed.
    async fn record_calls(&self, who: RunRow, calls: Vec<HttpCall>) -> Result<(), StorageError>;
    /// When the last run of `feed` for `scope` that ended `ok` or `info`
    /// ended, if one did.
    async fn last_success(&self, scope: &Scope, feed: &str) -> Result<Option<i64>, StorageError>;
}

/// What the ledger gives back to people: past runs, the egress audit and
/// the notifications that wait for a person, as a backend offers them to
/// async code (SQLite runs each call on the blocking pool).
#[async_trait::async_trait]
pub trait History: Send + Sync {
    /// Runs matching `filter`, newest first.
    async fn runs(&self, filter: RunFilter) -> Result<Vec<RunSummary>, StorageError>;
    /// Run `id` with its full report (JSON).
    async fn run(&self, id: i64) -> Result<Option<(RunSummary, String)>, StorageError>;
    /// Egress audit rows matching `filter`.
    async fn audit_log(&self, filter: AuditFilter) -> Result<Vec<AuditRow>, StorageError>;
    /// Per installation of `plugin_id` (optionally one tenant's): how often
    /// each rule allowed or refused a request, and when last.
    async fn rule_usage(
        &self,
        plugin_id: &str,
        tenant: Option<&str>,
    ) -> Result<Vec<RuleUsage>, StorageError>;
    /// Notifications (of one tenant, or all), open ones only unless
    /// `include_acked`.
    async fn notifications(
        &self,
        tenant: Option<&str>,
        include_acked: bool,
    ) -> Result<Vec<NotificationRow>, StorageError>;
    /// Acknowledges notification `id` as seen by `by` at `now`.
    async fn ack_notification(&self, id: i64, by: &str, now: i64) -> Result<(), StorageError>;
}
