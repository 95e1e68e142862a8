//! The changes an admin token makes to a tenant's installations and
//! notifications, each with its entry in the audit of admin actions: one
//! function per change, called by the admin API's handlers and the web
//! console's forms alike, so both record the same action the same way.
//!
//! The caller has already checked the token's permission and that it sees
//! the tenant; these functions do the change and record it.

use crate::admin::{self, Action, Caller};
use crate::lifecycle::{self, LifecycleError, QueuedRunNow};
use crate::storage::{InstallationRow, NotificationRow, StorageError, Store};

/// Records a change to `row` by `caller` at `now`.
pub async fn record_change(
    store: &dyn Store,
    caller: &Caller,
    action: &str,
    row: &InstallationRow,
    detail: String,
    now: i64,
) -> Result<(), StorageError> {
    let action = Action {
        action,
        tenant: Some(&row.tenant),
        target: row.label(),
        detail,
    };
    admin::record(store, Some(caller), action, now).await?;
    Ok(())
}

/// Switches `tenant/id` on or off ("the enabled switch"), if it is still
/// at `revision`; records `installation.enable` or `installation.disable`.
pub async fn set_enabled(
    store: &dyn Store,
    caller: &Caller,
    (tenant, id): (&str, &str),
    enabled: bool,
    revision: i64,
    now: i64,
) -> Result<InstallationRow, LifecycleError> {
    let row = lifecycle::set_enabled(store, tenant, id, enabled, Some(revision), now).await?;
    let (action, detail) = if enabled {
        ("installation.enable", "enabled")
    } else {
        ("installation.disable", "disabled")
    };
    record_change(store, caller, action, &row, detail.to_string(), now).await?;
    Ok(row)
}

/// Queues an immediate run of `feed` of `row` ("Run now"); records
/// `feed.run_now`.
pub async fn run_now(
    store: &dyn Store,
    caller: &Caller,
    row: &InstallationRow,
    feed: &str,
    now: i64,
) -> Result<QueuedRunNow, LifecycleError> {
    let queued = lifecycle::run_now(store, &row.tenant, &row.id, feed, now).await?;
    let detail = format!("{feed} (queue #{})", queued.queue_id);
    record_change(store, caller, "feed.run_now", row, detail, now).await?;
    Ok(queued)
}

/// Removes `row` if it is still at `revision`; records
/// `installation.remove`.
pub async fn remove(
    store: &dyn Store,
    caller: &Caller,
    row: &InstallationRow,
    revision: i64,
    now: i64,
) -> Result<(), LifecycleError> {
    lifecycle::check_revision(row, Some(revision))?;
    lifecycle::remove(store, row, now).await?;
    record_change(
        store,
        caller,
        "installation.remove",
        row,
        String::new(),
        now,
    )
    .await?;
    Ok(())
}

/// Acknowledges notification `id` of `tenant` as `caller`; records
/// `notification.acknowledge`. Not found if it is not `tenant`'s; a
/// conflict if it was acknowledged already. Returns it as it is now.
pub async fn acknowledge(
    store: &dyn Store,
    caller: &Caller,
    tenant: &str,
    id: i64,
    now: i64,
) -> Result<NotificationRow, StorageError> {
    let of_tenant = |rows: Vec<NotificationRow>| rows.into_iter().find(|n| n.id == id);
    let missing = || StorageError::NotFound(format!("no notification {id} of tenant `{tenant}`"));
    of_tenant(store.notifications(Some(tenant), true).await?).ok_or_else(missing)?;
    store.ack_notification(id, &caller.actor(), now).await?;
    let action = Action {
        action: "notification.acknowledge",
        tenant: Some(tenant),
        target: format!("notification #{id}"),
        detail: String::new(),
    };
    admin::record(store, Some(caller), action, now).await?;
    of_tenant(store.notifications(Some(tenant), true).await?).ok_or_else(missing)
}

/// Rewinds `tenant/id`'s storage to before run `before_run` as `caller`
/// (refused if a run committed since `as_of`, the plan shown); records
/// `state.rewind`.
pub async fn rewind_state(
    store: &dyn Store,
    caller: &Caller,
    (tenant, id): (&str, &str),
    before_run: i64,
    as_of: Option<i64>,
    now: i64,
) -> Result<crate::state::RewindSummary, crate::state::StateError> {
    let done = crate::state::rewind(store, tenant, id, before_run, &caller.actor(), as_of).await?;
    let action = Action {
        action: "state.rewind",
        tenant: Some(tenant),
        target: format!("{tenant}/{id}"),
        detail: format!("to before run #{before_run}: {} keys", done.changes.len()),
    };
    admin::record(store, Some(caller), action, now).await?;
    Ok(done)
}
