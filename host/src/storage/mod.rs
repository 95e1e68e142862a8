//! Persistent state: tenants and installations (secrets sealed), schedules,
//! the run queue, each installation's private key-value data, the record of
//! every run and the notifications raised. Only this module speaks SQL.
//!
//! - [`SqliteStore`] is the backend: one SQLite file in WAL mode, schema
//!   versioned with `PRAGMA user_version`.
//! - [`RunStorage`] is what one run sees: reads through to the store, writes
//!   held in the run until [`RunStorage::commit`] applies them in one
//!   transaction. Dropping it without committing discards them, which is how a
//!   trap, timeout or crash rolls a run back.
//!
//! Data is always addressed by a [`Scope`] (tenant, installation): there is no
//! call that reads across scopes.

mod admin;
mod admin_sqlite;
mod artifacts;
mod artifacts_sqlite;
mod audit;
#[cfg(test)]
mod conformance;
mod gauges;
mod gauges_sqlite;
mod group_commit;
mod history;
mod installations;
mod ledger;
mod oauth;
mod oauth_sqlite;
mod postgres;
mod queue;
mod records;
mod records_sqlite;
mod registry;
mod run_scope;
mod sqlite;
mod state_history;
mod state_history_sqlite;
mod webhooks;
mod webhooks_sqlite;
mod work;

pub use admin::{AdminActionRow, AdminStore, AdminTokenRow, NewAdminToken};
pub use artifacts::{ArtifactEffects, ArtifactPublish, ArtifactStore, ArtifactVersion};
pub use audit::{AuditFilter, AuditRow, RuleUsage};
pub use gauges::{GaugeReading, Gauges, PENDING_COUNT_CAP, PENDING_PAIRS_CAP, PendingCount};
pub use history::{RunFilter, RunSummary};
pub use installations::{InstallationRow, NEVER, ScheduleRow, StoredSecret, TenantRow};
pub use ledger::{History, KvHistory, RunEffects, RunLedger, RunRow};
pub use oauth::{OAuthStore, PendingAuthorization, StoredTokenSet};
pub use postgres::{DEFAULT_LEASE, PgOptions, PgStore};
pub use queue::{ActiveRun, NotificationRow, QueuedRun, SchedulePlan, Settlement};
pub use records::{
    AckRow, AnnotationChange, Annotations, PLATFORM_WRITER, PageLimit, RecordAck, RecordAnnotation,
    RecordEffects, RecordPage, RecordStore, RecordWrite, StoredRecord,
};
pub use registry::Registry;
pub use run_scope::{KeyChange, RunStorage, StorageLimits};
pub use sqlite::SqliteStore;
pub use state_history::{
    ChangedBy, DEFAULT_KEEP_DAYS, DEFAULT_KEEP_VERSIONS, HistoryRetention, KeyVersion, RewindPlan,
    RewindRefusal, RewindResult, RewoundKey, StateHistory, StoredEntry, ValueHead,
};
pub use webhooks::{DELIVERY_ID_RETENTION_SECS, DeliveryReceipt, WebhookStore};
pub use work::{Holder, WorkQueue};

/// Whose data: one installation of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The tenant.
    pub tenant: String,
    /// The installation, unique within the tenant.
    pub installation: String,
}

/// Every concern of the store together, for the composition root that opens
/// one backend and hands it out as `Arc<dyn Store>`. Any type with all the
/// concerns is one.
pub trait Store:
    RunLedger
    + History
    + WorkQueue
    + Registry
    + KvBackend
    + RecordStore
    + ArtifactStore
    + OAuthStore
    + WebhookStore
    + AdminStore
    + StateHistory
    + Gauges
{
}

impl<T> Store for T where
    T: RunLedger
        + History
        + WorkQueue
        + Registry
        + KvBackend
        + RecordStore
        + ArtifactStore
        + OAuthStore
        + WebhookStore
        + AdminStore
        + StateHistory
        + Gauges
{
}

/// A backend's own error, kept as the cause of a [`StorageError`].
pub type BoxedCause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a storage operation failed. No backend's types appear here: each
/// backend converts its errors (SQLite's in `sqlite.rs`).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key is empty, too long or has control characters.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A value or a run's writes are over the limits.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The database failed. The cause is the backend's own error, boxed so
    /// that no backend's types show in this enum.
    #[error("database error")]
    Database(#[source] BoxedCause),
    /// The database file could not be opened or prepared.
    #[error("cannot open database {path}")]
    Open {
        /// The file.
        path: String,
        /// Why, in the backend's own error.
        #[source]
        source: BoxedCause,
    },
    /// The database file could not be created.
    #[error("cannot create database {path}")]
    Create {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The thing exists already (a tenant or installation id taken).
    #[error("{0}")]
    Conflict(String),
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A run's claim was taken from it: its lease expired and another node
    /// recovered the run (recorded it as interrupted, maybe started its
    /// retry). Nothing of what it tried to commit was applied.
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// The database was written by a newer Airlock.
    #[error("database schema version {found} is newer than this airlock supports ({supported})")]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Latest version this build knows.
        supported: i64,
    },
}

/// The key-value operations a run needs from a backend. Async, like every
/// other concern of the store, so a backend over the network (PostgreSQL)
/// awaits its round trips; SQLite answers reads at once and, on a
/// multi-threaded runtime, blocks in place for its writes (which wait for
/// the disk or the write lock), so the worker's other tasks move on.
#[async_trait::async_trait]
pub trait KvBackend: Send + Sync {
    /// The committed value of `key`.
    async fn kv_get(&self, scope: &Scope, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Committed keys starting with `prefix`, strictly after `after`, in byte
    /// order, at most `limit`.
    async fn kv_list(
        &self,
        scope: &Scope,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError>;
    /// Applies all `changes` (a value to set, or `None` to delete) in one
    /// transaction: all or nothing. Their history is attributed to no run.
    async fn kv_apply(
        &self,
        scope: &Scope,
        changes: &[(String, Option<Vec<u8>>)],
    ) -> Result<(), StorageError>;
    /// [`kv_apply`](Self::kv_apply) for a run's checkpoint: the history of
    /// the changes is kept under `token` until the run is recorded (see
    /// [`KvHistory::checkpoint`]), at most `keep_versions` old values per key.
    async fn kv_checkpoint(
        &self,
        scope: &Scope,
        changes: &[(String, Option<Vec<u8>>)],
        token: i64,
        keep_versions: u32,
    ) -> Result<(), StorageError>;
    /// Bytes (keys and values) and number of keys committed in `scope`.
    async fn kv_usage(&self, scope: &Scope) -> Result<KvUsage, StorageError>;
    /// Bytes (key and value) `key` takes in `scope`, or `None` if it is not
    /// stored.
    async fn kv_entry_bytes(&self, scope: &Scope, key: &str) -> Result<Option<u64>, StorageError>;
}

/// How much of the store one scope uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvUsage {
    /// Bytes of keys and values.
    pub bytes: u64,
    /// Number of keys.
    pub keys: u64,
}
