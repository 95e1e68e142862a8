//! The history of an installation's key-value storage, as a backend offers
//! it: every committed change of a key (by a run's end, one of its
//! checkpoints, or a rewind) is recorded with who made it and the value it
//! replaced, in the transaction of the change; an installation's storage
//! is listed with who last wrote each key; and a rewind restores the
//! storage as it was before a run. What this means for people, and how
//! values are shown, is [`crate::state`]'s.
//!
//! Retention is bounded: at most [`HistoryRetention::keep_versions`] old
//! values per key (older ones dropped as the key changes, a few at a time),
//! and none older than [`HistoryRetention::keep_days`] (dropped in batches
//! by [`StateHistory::prune_state_history`], which `serve` calls). A
//! rewind that would need a dropped value is refused.

use serde::Serialize;

use super::{Scope, StorageError};

/// Old values kept per key, by default.
pub const DEFAULT_KEEP_VERSIONS: u32 = 100;
/// Days old values are kept, by default.
pub const DEFAULT_KEEP_DAYS: u32 = 30;

/// How much storage history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRetention {
    /// Old values kept per key (at least 1).
    pub keep_versions: u32,
    /// Days an old value is kept (at least 1).
    pub keep_days: u32,
}

impl Default for HistoryRetention {
    fn default() -> Self {
        Self {
            keep_versions: DEFAULT_KEEP_VERSIONS,
            keep_days: DEFAULT_KEEP_DAYS,
        }
    }
}

impl HistoryRetention {
    /// The Unix time before which old values are dropped, at `now`.
    pub fn cutoff(&self, now: i64) -> i64 {
        now - i64::from(self.keep_days.max(1)) * 86_400
    }
}

/// Who made a change to an installation's storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum ChangedBy {
    /// A run, at its end or at one of its checkpoints.
    Run {
        /// The run's id.
        run_id: i64,
    },
    /// A checkpoint of a run not recorded (yet): one in progress, or one
    /// whose process died before its record.
    UnrecordedRun,
    /// A rewind by an operator.
    Rewind {
        /// Who asked for it (`cli`, an API token's name…).
        actor: String,
        /// The run it rewound to before.
        to_before_run: i64,
    },
    /// A write outside any run (tools and tests).
    Direct,
}

/// The first bytes of a value, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueHead {
    /// Its size in bytes.
    pub size: u64,
    /// Its first bytes (at most what the call asked for).
    pub head: Vec<u8>,
}

/// A key stored now, as [`StateHistory::state_entries`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: ValueHead,
    /// When it was last written (Unix seconds).
    pub updated_at: i64,
    /// Who gave it its value and when, if that change is still in the
    /// history.
    pub changed: Option<(ChangedBy, i64)>,
}

/// One change of a key, as [`StateHistory::key_history`] lists it: the
/// value it wrote and who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersion {
    /// The change's place in the history (ascending).
    pub seq: i64,
    /// Who made it.
    pub by: ChangedBy,
    /// When (Unix seconds).
    pub at: i64,
    /// The value it wrote (none: it deleted the key).
    pub value: Option<ValueHead>,
}

/// A key a rewind changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewoundKey {
    /// The key.
    pub key: String,
    /// Its value now (none: not stored).
    pub current: Option<ValueHead>,
    /// Its value after the rewind (none: deleted).
    pub restored: Option<ValueHead>,
}

/// What a rewind does (or did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewindPlan {
    /// The keys it changes, in key order; empty when the storage is as it
    /// was before the run already.
    pub keys: Vec<RewoundKey>,
    /// The last change in the installation's history when the plan was
    /// made (0: none), so the rewind can refuse if anything changed since.
    pub as_of: i64,
}

/// Why a rewind is refused (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewindRefusal {
    /// The run is not one of this installation's.
    NotARun,
    /// Runs of the installation are in progress (these feeds).
    RunInProgress(Vec<String>),
    /// Old values the rewind needs were dropped by retention.
    Pruned,
    /// The storage changed since the plan was shown.
    ChangedSince,
}

/// A rewind's result: done, or refused with nothing changed.
pub type RewindResult = Result<RewindPlan, RewindRefusal>;

/// Old values dropped per key and change when a key has more than it may
/// keep: bounded, so a lowered limit is reached over a few changes rather
/// than by one long delete on a run's commit. Every backend's.
pub(super) const PRUNE_PER_CHANGE: i64 = 16;

/// Who makes a batch of key-value changes, as every backend's history
/// records it (SQLite's and PostgreSQL's `apply_in`).
#[derive(Debug, Clone, Default)]
pub(super) struct Attribution<'a> {
    /// The recorded run.
    pub run_id: Option<i64>,
    /// The checkpoint token of a run not recorded yet.
    pub checkpoint: Option<i64>,
    /// For a rewind: who asked, and the run it rewinds to before.
    pub rewind: Option<(&'a str, i64)>,
}

/// Who made a change, from a history row's columns (`run_id`,
/// `checkpoint`, `actor`, `rewound_to`), as every backend stores them.
pub(super) fn changed_by(
    run_id: Option<i64>,
    checkpoint: Option<i64>,
    actor: Option<String>,
    rewound_to: Option<i64>,
) -> ChangedBy {
    match (run_id, checkpoint, actor) {
        (Some(run_id), _, _) => ChangedBy::Run { run_id },
        (None, Some(_), _) => ChangedBy::UnrecordedRun,
        (None, None, Some(actor)) => ChangedBy::Rewind {
            actor,
            to_before_run: rewound_to.unwrap_or(0),
        },
        (None, None, None) => ChangedBy::Direct,
    }
}

/// A value's head from its size and first bytes as read (none: no value).
pub(super) fn value_head(size: Option<i64>, head: Option<Vec<u8>>) -> Option<ValueHead> {
    Some(ValueHead {
        size: size? as u64,
        head: head.unwrap_or_default(),
    })
}

/// A key a rewind restores, with full values.
pub(super) struct Restore {
    /// The key.
    pub key: String,
    /// Its value now (none: not stored).
    pub current: Option<Vec<u8>>,
    /// Its value after the rewind (none: deleted).
    pub restored: Option<Vec<u8>>,
}

impl Restore {
    /// As shown, values cut to `head_bytes`.
    pub(super) fn shown(self, head_bytes: usize) -> RewoundKey {
        let cut = |v: Vec<u8>| ValueHead {
            size: v.len() as u64,
            head: v[..v.len().min(head_bytes)].to_vec(),
        };
        RewoundKey {
            key: self.key,
            current: self.current.map(cut),
            restored: self.restored.map(cut),
        }
    }
}

/// The history of every installation's storage, as a backend offers it to
/// async code. Every call names its scope; none reads across scopes.
#[async_trait::async_trait]
pub trait StateHistory: Send + Sync {
    /// The keys stored in `scope` after `after` (in byte order), at most
    /// `limit`, each value cut to `head_bytes`.
    async fn state_entries(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
        head_bytes: usize,
    ) -> Result<Vec<StoredEntry>, StorageError>;

    /// The changes of `key` in `scope` still in the history, newest first,
    /// at most `limit`, each value cut to `head_bytes`.
    async fn key_history(
        &self,
        scope: &Scope,
        key: &str,
        limit: usize,
        head_bytes: usize,
    ) -> Result<Vec<KeyVersion>, StorageError>;

    /// What restoring `scope`'s storage as it was before run `before_run`
    /// would change, values cut to `head_bytes`; changes nothing.
    async fn plan_rewind(
        &self,
        scope: &Scope,
        before_run: i64,
        head_bytes: usize,
    ) -> Result<RewindResult, StorageError>;

    /// Restores `scope`'s storage as it was before run `before_run`, in one
    /// transaction that first checks that no run of the installation is in
    /// progress and, with `as_of`, that nothing changed since that plan.
    /// The restore is recorded in the history as `actor`'s.
    async fn rewind(
        &self,
        scope: &Scope,
        before_run: i64,
        as_of: Option<i64>,
        actor: &str,
        keep_versions: u32,
    ) -> Result<RewindResult, StorageError>;

    /// Drops at most `limit` old values recorded before `older_than` (Unix
    /// seconds), of every installation; returns how many it dropped (fewer
    /// than `limit`: there are no more).
    async fn prune_state_history(
        &self,
        older_than: i64,
        limit: usize,
    ) -> Result<usize, StorageError>;
}
