//! "Run now": a feed queued to run at once, for `airlock serve` to start.

use super::{LifecycleError, feed_direction, installation_row, stored_mode};
use crate::manifest::Direction;
use crate::runs::{Mode, Trigger};
use crate::storage::{QueuedRun, Store};

/// A run queued by [`run_now`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct QueuedRunNow {
    /// Its place in the queue.
    pub queue_id: i64,
    /// A run of the feed is in progress: this one starts when it ends.
    pub waits_for_run_in_progress: bool,
    /// The feed is outbound and the installation in test mode: `serve`
    /// skips it unless started with `--test-outbound dry-run`.
    pub skipped_in_test_mode: bool,
}

/// Queues an immediate run of `feed` of `tenant/id`. Refused if the
/// installation is disabled or has no such feed.
pub async fn run_now(
    store: &dyn Store,
    tenant: &str,
    id: &str,
    feed: &str,
    now: i64,
) -> Result<QueuedRunNow, LifecycleError> {
    let row = installation_row(store, tenant, id).await?;
    if !row.enabled {
        return Err(LifecycleError::Disabled(row.label()));
    }
    let Some(direction) = feed_direction(&row, feed) else {
        return Err(LifecycleError::UnknownFeed {
            plugin: format!("{}@{}", row.plugin_id, row.plugin_version),
            feed: feed.to_string(),
        });
    };
    let queue_id = store
        .enqueue(QueuedRun {
            id: 0,
            tenant: tenant.to_string(),
            installation: id.to_string(),
            feed: feed.to_string(),
            trigger: Trigger::Manual.as_str().to_string(),
            attempt: 1,
            scheduled_at: now,
            due_at: now,
            created_at: now,
        })
        .await?;
    Ok(QueuedRunNow {
        queue_id,
        waits_for_run_in_progress: store.active_run(tenant, id, feed).await?.is_some(),
        skipped_in_test_mode: direction == Direction::Outbound && stored_mode(&row) == Mode::Test,
    })
}
