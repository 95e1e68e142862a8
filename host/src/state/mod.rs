//! An installation's connector state for operators: what its key-value
//! storage holds and who wrote each key ([`show`]), a key's past values
//! ([`history`]), and restoring the storage as it was before a run
//! ([`plan_rewind`], then [`rewind`]), with bounded retention of old values
//! ([`prune`]). Thin, documented calls over [`crate::storage::StateHistory`] for
//! `airlock state`, the admin API and the console: they return plain
//! serialisable data and print nothing. Values are shown as
//! [`value::ShownValue`]: text, hex, or, for `sealed/` keys, never.
//!
//! Every call names its tenant and installation, which must exist (and not
//! be removed); storage is only ever read and written in that scope, so one
//! tenant's installation name never reaches another's state, and a run id
//! of another installation is refused as not one of its runs.
//!
//! Semantics: `docs/state.md`.

pub mod value;

use serde::Serialize;

use crate::lifecycle::{self, LifecycleError};
use crate::storage::{
    ChangedBy, HistoryRetention, RewindPlan, RewindRefusal, RewoundKey, Scope, StorageError, Store,
    ValueHead,
};

pub use value::ShownValue;

/// Keys [`show`] returns at most per call.
pub const MAX_SHOW: usize = 1_000;
/// Versions [`history`] returns at most per call.
pub const MAX_HISTORY: usize = 1_000;
/// Old values dropped per store call by [`prune`].
pub const PRUNE_BATCH: usize = 1_000;

/// Why a state request failed. Messages name what to do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The tenant or installation does not exist (or was removed).
    #[error(transparent)]
    Installation(#[from] LifecycleError),
    /// The run is not a run of this installation.
    #[error(
        "run #{run} is not a run of `{installation}` (see `airlock runs list --installation {installation}`)"
    )]
    NotARun {
        /// The run id given.
        run: i64,
        /// TENANT/INSTALLATION.
        installation: String,
    },
    /// Runs of the installation are in progress.
    #[error(
        "`{installation}` has a run in progress ({feeds}); disable it, wait for the run to end, then rewind"
    )]
    RunInProgress {
        /// TENANT/INSTALLATION.
        installation: String,
        /// Its feeds running, comma-separated.
        feeds: String,
    },
    /// Old values the rewind needs were dropped by retention.
    #[error(
        "the storage history of `{installation}` no longer reaches back to before run #{run} (old values are kept for a limited time and number: see docs/state.md); nothing was changed"
    )]
    Pruned {
        /// The run id given.
        run: i64,
        /// TENANT/INSTALLATION.
        installation: String,
    },
    /// The storage changed between the plan shown and the rewind.
    #[error(
        "the storage of `{0}` changed since the rewind was shown (a run committed); nothing was changed: look again"
    )]
    ChangedSince(String),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A change's author and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Change {
    /// Who made it.
    #[serde(flatten)]
    pub by: ChangedBy,
    /// When (Unix seconds).
    pub at: i64,
}

/// A key an installation stores, as [`show`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StateEntry {
    /// The key.
    pub key: String,
    /// Its value's size in bytes.
    pub size: u64,
    /// Its value, as shown.
    pub value: ShownValue,
    /// When it was last written (Unix seconds).
    pub updated_at: i64,
    /// Who gave it its value, if that is still in the history.
    pub changed: Option<Change>,
}

/// One past or present value of a key, as [`history`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StateVersion {
    /// Who wrote it, and when.
    #[serde(flatten)]
    pub change: Change,
    /// Its size in bytes (none: the change deleted the key).
    pub size: Option<u64>,
    /// The value written (none: deleted).
    pub value: Option<ShownValue>,
}

/// A key a rewind changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RewindChange {
    /// The key.
    pub key: String,
    /// Its size now (none: not stored).
    pub from_size: Option<u64>,
    /// Its value now (none: not stored).
    pub from: Option<ShownValue>,
    /// Its size after the rewind (none: deleted).
    pub to_size: Option<u64>,
    /// Its value after the rewind (none: deleted).
    pub to: Option<ShownValue>,
}

/// What a rewind changes (planned) or changed (done).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RewindSummary {
    /// TENANT/INSTALLATION.
    pub installation: String,
    /// The run whose before-state is restored.
    pub before_run: i64,
    /// The keys changed, in key order (empty: the storage is as it was
    /// before the run already).
    pub changes: Vec<RewindChange>,
    /// The history's newest change when this was read: pass it back to
    /// [`rewind`] so that it refuses if a run committed meanwhile.
    pub as_of: i64,
}

/// The installation's storage scope, once it is known to exist.
async fn scope_of(
    store: &dyn Store,
    tenant: &str,
    installation: &str,
) -> Result<Scope, StateError> {
    lifecycle::check_id(tenant)?;
    lifecycle::check_id(installation)?;
    let row = lifecycle::installation_row(store, tenant, installation).await?;
    Ok(Scope {
        tenant: row.tenant,
        installation: row.id,
    })
}

fn label(scope: &Scope) -> String {
    format!("{}/{}", scope.tenant, scope.installation)
}

/// The keys `tenant`'s installation stores, in byte order, after `after`,
/// at most `limit` (capped at [`MAX_SHOW`]): each with its size, its value
/// as shown, and which run (or rewind) last wrote it and when.
pub async fn show(
    store: &dyn Store,
    tenant: &str,
    installation: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<StateEntry>, StateError> {
    let scope = scope_of(store, tenant, installation).await?;
    let limit = limit.clamp(1, MAX_SHOW);
    let entries = store
        .state_entries(&scope, after, limit, value::HEAD_BYTES)
        .await?;
    Ok(entries
        .into_iter()
        .map(|e| StateEntry {
            value: value::shown(&e.key, &e.value),
            size: e.value.size,
            updated_at: e.updated_at,
            changed: e.changed.map(|(by, at)| Change { by, at }),
            key: e.key,
        })
        .collect())
}

/// The values `key` of `tenant`'s installation had, newest first (the
/// first is the value stored now, or its deletion), as far back as the
/// history reaches, at most `limit` (capped at [`MAX_HISTORY`]).
pub async fn history(
    store: &dyn Store,
    tenant: &str,
    installation: &str,
    key: &str,
    limit: usize,
) -> Result<Vec<StateVersion>, StateError> {
    let scope = scope_of(store, tenant, installation).await?;
    let limit = limit.clamp(1, MAX_HISTORY);
    let versions = store
        .key_history(&scope, key, limit, value::HEAD_BYTES)
        .await?;
    Ok(versions
        .into_iter()
        .map(|v| StateVersion {
            change: Change { by: v.by, at: v.at },
            size: v.value.as_ref().map(|h| h.size),
            value: v.value.as_ref().map(|h| value::shown(key, h)),
        })
        .collect())
}

/// What [`rewind`] would change: every key changed by run `before_run` or
/// later, with its value now and the value it had before that run.
/// Changes nothing. Refused (an error) when the run is not one of this
/// installation's or the history no longer reaches back to it.
pub async fn plan_rewind(
    store: &dyn Store,
    tenant: &str,
    installation: &str,
    before_run: i64,
) -> Result<RewindSummary, StateError> {
    let scope = scope_of(store, tenant, installation).await?;
    let planned = store
        .plan_rewind(&scope, before_run, value::HEAD_BYTES)
        .await?;
    summary(&scope, before_run, planned)
}

/// Restores the storage of `tenant`'s installation as it was before run
/// `before_run`, atomically, recorded in the storage history as `actor`'s
/// (`cli`, an API token's name; the caller also records it as an admin
/// action). Refused, with nothing changed, while a run of the installation
/// is in progress (checked in the restore's transaction), when the run is
/// not one of this installation's, when the history no longer reaches back
/// to it, and, with `as_of` (from [`plan_rewind`]), when a change was
/// committed since that plan.
pub async fn rewind(
    store: &dyn Store,
    tenant: &str,
    installation: &str,
    before_run: i64,
    actor: &str,
    as_of: Option<i64>,
) -> Result<RewindSummary, StateError> {
    let scope = scope_of(store, tenant, installation).await?;
    // The rewind adds a version to each key it changes; retention drops old
    // values at the keys' next changes.
    let done = store
        .rewind(&scope, before_run, as_of, actor, u32::MAX)
        .await?;
    summary(&scope, before_run, done)
}

fn summary(
    scope: &Scope,
    before_run: i64,
    result: Result<RewindPlan, RewindRefusal>,
) -> Result<RewindSummary, StateError> {
    let installation = label(scope);
    let plan = result.map_err(|refusal| match refusal {
        RewindRefusal::NotARun => StateError::NotARun {
            run: before_run,
            installation: installation.clone(),
        },
        RewindRefusal::RunInProgress(feeds) => StateError::RunInProgress {
            installation: installation.clone(),
            feeds: feeds.join(", "),
        },
        RewindRefusal::Pruned => StateError::Pruned {
            run: before_run,
            installation: installation.clone(),
        },
        RewindRefusal::ChangedSince => StateError::ChangedSince(installation.clone()),
    })?;
    Ok(RewindSummary {
        installation,
        before_run,
        changes: plan.keys.into_iter().map(rewind_change).collect(),
        as_of: plan.as_of,
    })
}

fn rewind_change(k: RewoundKey) -> RewindChange {
    let show = |v: &Option<ValueHead>| v.as_ref().map(|h| value::shown(&k.key, h));
    RewindChange {
        from_size: k.current.as_ref().map(|h| h.size),
        from: show(&k.current),
        to_size: k.restored.as_ref().map(|h| h.size),
        to: show(&k.restored),
        key: k.key.clone(),
    }
}

/// Drops old values older than `retention` allows at `now` (Unix seconds),
/// [`PRUNE_BATCH`] per store call (each its own short transaction), at most
/// `max_batches` calls; returns how many it dropped. The per-key bound is
/// kept as keys change ([`crate::storage::StorageLimits::history_versions`]).
pub async fn prune(
    store: &dyn Store,
    retention: &HistoryRetention,
    now: i64,
    max_batches: usize,
) -> Result<usize, StateError> {
    let cutoff = retention.cutoff(now);
    let mut dropped = 0;
    for _ in 0..max_batches {
        let n = store.prune_state_history(cutoff, PRUNE_BATCH).await?;
        dropped += n;
        if n < PRUNE_BATCH {
            break;
        }
    }
    Ok(dropped)
}
