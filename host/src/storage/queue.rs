//! The work of the scheduler: runs waiting in the queue (scheduled, manual
//! "Run now", retries), the runs in progress (at most one per installation
//! and feed, enforced by the table's key), and notifications that stay until
//! a person acknowledges them.
//!
//! A run moves queue → active in one transaction ([`SqliteStore::claim_many`]); a
//! row left in `active_runs` after the process died is a run that was
//! interrupted.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::{ScheduleRow, SqliteStore, StorageError};

/// A run waiting to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuedRun {
    /// Queue id (0 before it is queued).
    pub id: i64,
    /// The tenant.
    pub tenant: String,
    /// The installation.
    pub installation: String,
    /// The feed.
    pub feed: String,
    /// `schedule`, `manual` or `retry`.
    pub trigger: String,
    /// 1 for a first attempt.
    pub attempt: u32,
    /// The fire time the run is for (Unix seconds).
    pub scheduled_at: i64,
    /// Not before this time (Unix seconds).
    pub due_at: i64,
    /// When it was queued.
    pub created_at: i64,
}

impl QueuedRun {
    /// This run as a run in progress that started at `started_at`.
    pub fn started(&self, started_at: i64) -> ActiveRun {
        ActiveRun {
            tenant: self.tenant.clone(),
            installation: self.installation.clone(),
            feed: self.feed.clone(),
            trigger: self.trigger.clone(),
            attempt: self.attempt,
            scheduled_at: self.scheduled_at,
            started_at,
        }
    }
}

/// A run in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveRun {
    /// The tenant.
    pub tenant: String,
    /// The installation.
    pub installation: String,
    /// The feed.
    pub feed: String,
    /// `schedule`, `manual` or `retry`.
    pub trigger: String,
    /// The attempt.
    pub attempt: u32,
    /// The fire time the run is for.
    pub scheduled_at: i64,
    /// When it started.
    pub started_at: i64,
}

/// A notification: a feed needs a person. Repeated failures of the same feed
/// update the open notification instead of adding more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NotificationRow {
    /// Its id.
    pub id: i64,
    /// The tenant.
    pub tenant: String,
    /// The installation.
    pub installation: String,
    /// The feed.
    pub feed: String,
    /// The latest failure.
    pub message: String,
    /// The latest failing run.
    pub run_id: Option<i64>,
    /// How many failures it stands for.
    pub count: u32,
    /// First failure (Unix seconds).
    pub first_at: i64,
    /// Latest failure.
    pub last_at: i64,
    /// When it was acknowledged.
    pub acked_at: Option<i64>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
}

fn queued_from_row(r: &Row<'_>) -> rusqlite::Result<QueuedRun> {
    Ok(QueuedRun {
        id: r.get(0)?,
        tenant: r.get(1)?,
        installation: r.get(2)?,
        feed: r.get(3)?,
        trigger: r.get(4)?,
        attempt: r.get(5)?,
        scheduled_at: r.get(6)?,
        due_at: r.get(7)?,
        created_at: r.get(8)?,
    })
}

fn notification_from_row(r: &Row<'_>) -> rusqlite::Result<NotificationRow> {
    Ok(NotificationRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        installation: r.get(2)?,
        feed: r.get(3)?,
        message: r.get(4)?,
        run_id: r.get(5)?,
        count: r.get(6)?,
        first_at: r.get(7)?,
        last_at: r.get(8)?,
        acked_at: r.get(9)?,
        acked_by: r.get(10)?,
    })
}

const ACTIVE_COLUMNS: &str =
    "tenant, installation, feed, trigger, attempt, scheduled_at, started_at";

fn active_from_row(r: &Row<'_>) -> rusqlite::Result<ActiveRun> {
    Ok(ActiveRun {
        tenant: r.get(0)?,
        installation: r.get(1)?,
        feed: r.get(2)?,
        trigger: r.get(3)?,
        attempt: r.get(4)?,
        scheduled_at: r.get(5)?,
        started_at: r.get(6)?,
    })
}

const QUEUE_COLUMNS: &str =
    "id, tenant, installation, feed, trigger, attempt, scheduled_at, due_at, created_at";
const NOTIFICATION_COLUMNS: &str = "id, tenant, installation, feed, message, run_id, count, \
     first_at, last_at, acked_at, acked_by";

/// How a run in progress ends for the scheduler: it leaves the runs in
/// progress, its follow-up (a retry) is queued, and a notification is raised
/// (or the feed's open one updated) — stored together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The run in progress.
    pub active: ActiveRun,
    /// A retry to queue.
    pub follow_up: Option<QueuedRun>,
    /// A notification to raise.
    pub notification: Option<String>,
}

/// A due schedule's new plan and the runs it owes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulePlan {
    /// The schedule (its key is what is updated).
    pub schedule: ScheduleRow,
    /// The fire it now waits for.
    pub next_fire_at: Option<i64>,
    /// When that fire is due (jitter added), or [`super::NEVER`].
    pub due_at: Option<i64>,
    /// Runs to queue.
    pub enqueue: Vec<QueuedRun>,
}

fn insert_queued(conn: &Connection, run: &QueuedRun) -> Result<i64, StorageError> {
    conn.execute(
        "INSERT INTO queue (tenant, installation, feed, trigger, attempt, scheduled_at,
            due_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            run.tenant,
            run.installation,
            run.feed,
            run.trigger,
            run.attempt,
            run.scheduled_at,
            run.due_at,
            run.created_at
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Adds a run in progress, held by `serve` or (`run_pid`) an `airlock run`
/// process; false if one of its installation and feed is in progress.
fn insert_active(
    conn: &Connection,
    run: &ActiveRun,
    run_pid: Option<u32>,
) -> Result<bool, StorageError> {
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO active_runs (tenant, installation, feed, trigger, attempt,
                scheduled_at, started_at, run_pid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            run.tenant,
            run.installation,
            run.feed,
            run.trigger,
            run.attempt,
            run.scheduled_at,
            run.started_at,
            run_pid
        ])?;
    Ok(inserted == 1)
}

/// Moves `run` from the queue to the runs in progress inside `tx`, unless
/// its feed is in progress already, it is no longer queued or its tenant
/// has `max_per_tenant` runs in progress (then nothing changes).
fn claim_in(
    tx: &Connection,
    run: &QueuedRun,
    started_at: i64,
    max_per_tenant: usize,
) -> Result<bool, StorageError> {
    let queued = tx
        .prepare_cached("SELECT 1 FROM queue WHERE id = ?1")?
        .exists([run.id])?;
    if !queued {
        return Ok(false);
    }
    let in_progress: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM active_runs WHERE tenant = ?1")?
        .query_row([&run.tenant], |r| r.get(0))?;
    if in_progress as usize >= max_per_tenant {
        return Ok(false);
    }
    if !insert_active(tx, &run.started(started_at), None)? {
        return Ok(false);
    }
    tx.prepare_cached("DELETE FROM queue WHERE id = ?1")?
        .execute([run.id])?;
    Ok(true)
}

/// Deletes `run`'s claim as it was made (the same trigger, attempt, fire
/// and start); how many rows went (0 or 1).
fn end_claim(conn: &Connection, run: &ActiveRun) -> Result<usize, StorageError> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM active_runs WHERE tenant = ?1 AND installation = ?2 AND feed = ?3
               AND trigger = ?4 AND attempt = ?5 AND scheduled_at = ?6 AND started_at = ?7",
        )?
        .execute(params![
            run.tenant,
            run.installation,
            run.feed,
            run.trigger,
            run.attempt,
            run.scheduled_at,
            run.started_at
        ])?)
}

/// Settles `s` inside `tx`; `run_id` is the run that caused it. The run
/// leaves the runs in progress only as it was claimed (the same trigger,
/// attempt, fire and start): if that claim is gone, the run was recovered
/// by someone else, and the whole transaction is refused
/// ([`StorageError::LeaseLost`]).
pub(super) fn settle_in(
    tx: &Connection,
    s: &Settlement,
    run_id: Option<i64>,
    now: i64,
) -> Result<(), StorageError> {
    let run = &s.active;
    if end_claim(tx, run)? != 1 {
        return Err(claim_taken(run));
    }
    if let Some(q) = &s.follow_up {
        insert_queued(tx, q)?;
    }
    if let Some(message) = &s.notification {
        raise_in(tx, run, message, run_id, now)?;
    }
    Ok(())
}

/// The error of a run whose claim is no longer in the runs in progress.
pub(super) fn claim_taken(run: &ActiveRun) -> StorageError {
    StorageError::LeaseLost(format!(
        "{}/{} feed {} (attempt {}, started at {}) is no longer held by this process: it was \
         recovered elsewhere, so its effects were not committed",
        run.tenant, run.installation, run.feed, run.attempt, run.started_at
    ))
}

fn raise_in(
    tx: &Connection,
    run: &ActiveRun,
    message: &str,
    run_id: Option<i64>,
    now: i64,
) -> Result<(), StorageError> {
    let open: Option<i64> = tx
        .query_row(
            "SELECT id FROM notifications WHERE tenant = ?1 AND installation = ?2
               AND feed = ?3 AND acked_at IS NULL",
            params![run.tenant, run.installation, run.feed],
            |r| r.get(0),
        )
        .optional()?;
    match open {
        Some(id) => tx.execute(
            "UPDATE notifications SET message = ?2, run_id = ?3, count = count + 1,
                last_at = ?4 WHERE id = ?1",
            params![id, message, run_id, now],
        )?,
        None => tx.execute(
            "INSERT INTO notifications (tenant, installation, feed, message, run_id,
                count, first_at, last_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)",
            params![run.tenant, run.installation, run.feed, message, run_id, now],
        )?,
    };
    Ok(())
}

impl SqliteStore {
    /// Queues a run; returns its queue id.
    pub fn enqueue(&self, run: &QueuedRun) -> Result<i64, StorageError> {
        insert_queued(&self.conn(), run)
    }

    /// How many runs of this feed with this trigger are queued.
    pub fn queued_count(
        &self,
        tenant: &str,
        installation: &str,
        feed: &str,
        trigger: &str,
    ) -> Result<u32, StorageError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT COUNT(*) FROM queue
                 WHERE tenant = ?1 AND installation = ?2 AND feed = ?3 AND trigger = ?4",
            )?
            .query_row(params![tenant, installation, feed, trigger], |r| r.get(0))?)
    }

    /// Queued runs due at `now`, earliest first (ties by queue order), at
    /// most `limit`.
    pub fn due_queue(&self, now: i64, limit: usize) -> Result<Vec<QueuedRun>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {QUEUE_COLUMNS} FROM queue WHERE due_at <= ?1 ORDER BY due_at, id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![now, limit as i64], queued_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The runs that could start at `now`, for a fair pick: of each feed's
    /// due runs only the earliest (a feed runs one at a time), and of those
    /// at most `per_tenant` per tenant, so a tenant with thousands queued
    /// cannot hide the others. Every tenant's first comes before any
    /// tenant's second; then earliest first, at most `limit` in all.
    pub fn due_candidates(
        &self,
        now: i64,
        per_tenant: usize,
        limit: usize,
    ) -> Result<Vec<QueuedRun>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "WITH heads AS (
                SELECT {QUEUE_COLUMNS}, ROW_NUMBER() OVER (
                    PARTITION BY tenant, installation, feed ORDER BY due_at, id) AS in_feed
                FROM queue WHERE due_at <= ?1
             ), ranked AS (
                SELECT {QUEUE_COLUMNS}, ROW_NUMBER() OVER (
                    PARTITION BY tenant ORDER BY due_at, id) AS in_tenant
                FROM heads WHERE in_feed = 1
             )
             SELECT {QUEUE_COLUMNS} FROM ranked WHERE in_tenant <= ?2
             ORDER BY in_tenant, due_at, id LIMIT ?3"
        ))?;
        let rows = stmt.query_map(
            params![now, per_tenant as i64, limit as i64],
            queued_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every queued run, earliest first.
    pub fn queue(&self) -> Result<Vec<QueuedRun>, StorageError> {
        self.due_queue(i64::MAX, usize::MAX >> 1)
    }

    /// Starts queued runs together, in one transaction shared with the
    /// other grouped writes of the moment (one disk flush): each is moved
    /// from the queue to the runs in progress, unless a run of the same
    /// installation and feed is in progress already or it is no longer
    /// queued. Whether each started, in the order given.
    pub fn claim_many(
        &self,
        runs: Vec<QueuedRun>,
        started_at: i64,
        max_per_tenant: usize,
    ) -> Result<Vec<bool>, StorageError> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        self.write_grouped(move |tx| {
            runs.iter()
                .map(|run| claim_in(tx, run, started_at, max_per_tenant))
                .collect()
        })
    }

    /// Starts a run that was never queued: `airlock run` of a stored
    /// installation, by process `pid`. False if a run of the same
    /// installation and feed is already in progress.
    pub fn claim_unqueued(&self, run: &ActiveRun, pid: u32) -> Result<bool, StorageError> {
        insert_active(&self.conn(), run, Some(pid))
    }
}

/// Starts a run that was never queued, held by `serve` (no pid).
pub(super) fn claim_for_serve(store: &SqliteStore, run: &ActiveRun) -> Result<bool, StorageError> {
    insert_active(&store.conn(), run, None)
}

impl SqliteStore {
    /// Ends a run in progress without recording it (a run that failed
    /// before its guest ran, whose caller reports the failure itself).
    pub fn release(&self, run: &ActiveRun) -> Result<(), StorageError> {
        // Only this claim: one that replaced it is another holder's.
        end_claim(&self.conn(), run)?;
        Ok(())
    }

    /// The run of this installation and feed in progress, if one is.
    pub fn active_run(
        &self,
        tenant: &str,
        installation: &str,
        feed: &str,
    ) -> Result<Option<ActiveRun>, StorageError> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {ACTIVE_COLUMNS} FROM active_runs
                     WHERE tenant = ?1 AND installation = ?2 AND feed = ?3"
                ),
                params![tenant, installation, feed],
                active_from_row,
            )
            .optional()?)
    }

    /// Drops a queued run (one skipped because its feed is busy).
    pub fn dequeue(&self, id: i64) -> Result<(), StorageError> {
        self.conn()
            .execute("DELETE FROM queue WHERE id = ?1", [id])?;
        Ok(())
    }

    /// The runs in progress.
    pub fn active_runs(&self) -> Result<Vec<ActiveRun>, StorageError> {
        Ok(self
            .active_runs_held()?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    /// The runs in progress, each with the pid of the `airlock run` process
    /// holding it (none: held by `serve`).
    pub fn active_runs_held(&self) -> Result<Vec<(ActiveRun, Option<u32>)>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ACTIVE_COLUMNS}, run_pid FROM active_runs ORDER BY started_at"
        ))?;
        let rows = stmt.query_map([], |r| Ok((active_from_row(r)?, r.get(7)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Plans due schedules and queues what they owe, all in one transaction.
    /// Compare-and-set: a plan applies only if its schedule is still as the
    /// plan read it (expression, zone, next fire and due time), so a change
    /// written meanwhile (an override, a re-enable) is not clobbered and no
    /// fire is queued twice. Returns, for each plan, whether it applied.
    pub fn apply_schedule_plans(&self, plans: &[SchedulePlan]) -> Result<Vec<bool>, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut applied = Vec::with_capacity(plans.len());
        for plan in plans {
            let s = &plan.schedule;
            let changed = tx.execute(
                "UPDATE schedules SET next_fire_at = ?4, due_at = ?5
                 WHERE tenant = ?1 AND installation = ?2 AND feed = ?3
                   AND cron = ?6 AND time_zone = ?7
                   AND next_fire_at IS ?8 AND due_at IS ?9",
                params![
                    s.tenant,
                    s.installation,
                    s.feed,
                    plan.next_fire_at,
                    plan.due_at,
                    s.cron,
                    s.time_zone,
                    s.next_fire_at,
                    s.due_at
                ],
            )?;
            if changed == 1 {
                for run in &plan.enqueue {
                    insert_queued(&tx, run)?;
                }
            }
            applied.push(changed == 1);
        }
        tx.commit()?;
        Ok(applied)
    }

    /// Notifications, newest first: open ones only unless `include_acked`.
    pub fn notifications(
        &self,
        tenant: Option<&str>,
        include_acked: bool,
    ) -> Result<Vec<NotificationRow>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications
             WHERE (?1 IS NULL OR tenant = ?1) AND (?2 OR acked_at IS NULL)
             ORDER BY last_at DESC, id DESC"
        ))?;
        let rows = stmt.query_map(params![tenant, include_acked], notification_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Acknowledges notification `id`. Errors if there is none or it was
    /// already acknowledged.
    pub fn ack_notification(&self, id: i64, by: &str, now: i64) -> Result<(), StorageError> {
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE notifications SET acked_at = ?2, acked_by = ?3
             WHERE id = ?1 AND acked_at IS NULL",
            params![id, now, by],
        )?;
        if changed == 1 {
            return Ok(());
        }
        let exists = conn
            .query_row(
                "SELECT 1 FROM notifications WHERE id = ?1",
                [id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        Err(if exists {
            StorageError::Conflict(format!("notification #{id} is already acknowledged"))
        } else {
            StorageError::NotFound(format!("no notification #{id}"))
        })
    }
}
