//! The `serve` loop: every tick it turns due schedules into queued runs, then
//! starts queued runs that are due, fairly across tenants and within the
//! global and per-tenant limits, never two at once for one installation and
//! feed. When a run ends it is settled: `retry` is queued again with backoff,
//! `error` (and a retry that gave up) raises a notification.
//!
//! Crash safety comes from the store: a run is moved from the queue to
//! `active_runs` before it starts, and its storage writes commit only when it
//! ends `ok`/`info`. A row still in `active_runs` when `serve` starts belongs
//! to a process that died: [`Scheduler::recover`] records it as interrupted
//! and retries it per policy.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};

use super::{Clock, CronSchedule, Overlap, Running, ServeOptions, TestOutbound, jitter, plan_due};
use crate::airlock::{Airlock, HostError};
use crate::lifecycle;
use crate::manifest::Direction;
use crate::runs::{Mode, RunEnd, RunRequest, Severity, Trigger};
use crate::secrets::Keyring;
use crate::storage::{
    ActiveRun, InstallationRow, NEVER, QueuedRun, RunRow, SchedulePlan, ScheduleRow, Settlement,
    SqliteStore, StorageError,
};

/// Why the scheduler stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

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
}

/// How many queued runs a timer tick looks at: enough to see every
/// tenant's earliest runs, so tenants take turns.
const WIDE_SCAN: usize = 2000;

/// Receives [`Event`]s (the CLI prints them; tests collect them).
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// The scheduler of one `serve` process.
pub struct Scheduler {
    host: Arc<Airlock>,
    keyring: Option<Arc<Keyring>>,
    clock: Arc<dyn Clock>,
    options: ServeOptions,
    events: EventSink,
    /// The tenant served last, for round-robin fairness.
    last_tenant: Mutex<Option<String>>,
}

fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

impl Scheduler {
    /// A scheduler running `host`'s installations by `clock`.
    pub fn new(
        host: Arc<Airlock>,
        keyring: Option<Arc<Keyring>>,
        clock: Arc<dyn Clock>,
        options: ServeOptions,
        events: EventSink,
    ) -> Self {
        Self {
            host,
            keyring,
            clock,
            options,
            events,
            last_tenant: Mutex::new(None),
        }
    }

    fn store(&self) -> &SqliteStore {
        self.host.store()
    }

    fn emit(&self, event: Event) {
        (self.events)(&event);
    }

    /// Records the runs a previous process left in progress as interrupted
    /// (their storage writes were never applied) and retries them per
    /// policy. A run leaves `active_runs` in the same transaction that
    /// records it, so every run still there ended before it was recorded.
    pub fn recover(&self) -> Result<usize, ServeError> {
        let leftovers = self.store().active_runs()?;
        for run in &leftovers {
            self.record_unrun(
                run,
                "interrupted",
                "interrupted: the host stopped before the run ended; its storage writes were \
                 not applied",
            )?;
        }
        Ok(leftovers.len())
    }

    /// Records and settles a run that did not get to run the guest to its
    /// end (interrupted, or the installation could not be loaded).
    fn record_unrun(&self, run: &ActiveRun, status: &str, message: &str) -> Result<(), ServeError> {
        let inst = self.store().installation(&run.tenant, &run.installation)?;
        let (plugin_id, plugin_version, plugin_digest, mode) = inst
            .map(|i| (i.plugin_id, i.plugin_version, i.plugin_digest, i.mode))
            .unwrap_or_default();
        let now = ts(self.clock.now());
        let report = serde_json::json!({ "end": status, "message": message });
        let row = RunRow {
            tenant: run.tenant.clone(),
            installation: run.installation.clone(),
            plugin_id,
            plugin_version,
            plugin_digest,
            feed: run.feed.clone(),
            mode,
            trigger: run.trigger.clone(),
            attempt: run.attempt,
            scheduled_at: run.scheduled_at,
            started_at: run.started_at,
            ended_at: now.max(run.started_at),
            status: status.to_string(),
            message: message.to_string(),
            report: report.to_string(),
        };
        let settlement = self.settlement(run, status, message, None);
        let id = self
            .store()
            .finish_run(&row, &[], &[], Some(&settlement), now)?;
        self.finished(run, Some(id), status, message, &settlement);
        Ok(())
    }

    /// How a run with this outcome ends: `retry` and `interrupted` are
    /// queued again with backoff while attempts remain; `error`, and a retry
    /// that gave up, raise a notification.
    fn settlement(
        &self,
        run: &ActiveRun,
        outcome: &str,
        message: &str,
        retry_after: Option<u32>,
    ) -> Settlement {
        let now = self.clock.now();
        let mut settlement = Settlement {
            active: run.clone(),
            follow_up: None,
            notification: None,
        };
        match outcome {
            "retry" | "interrupted" => {
                let requested = retry_after.map(|s| chrono::Duration::seconds(s.into()));
                match self.options.retry.delay(run.attempt, requested) {
                    Some(delay) => {
                        settlement.follow_up = Some(QueuedRun {
                            id: 0,
                            tenant: run.tenant.clone(),
                            installation: run.installation.clone(),
                            feed: run.feed.clone(),
                            trigger: Trigger::Retry.as_str().to_string(),
                            attempt: run.attempt + 1,
                            scheduled_at: run.scheduled_at,
                            due_at: ts(now + delay),
                            created_at: ts(now),
                        })
                    }
                    None => {
                        settlement.notification =
                            Some(format!("gave up after {} attempts: {message}", run.attempt))
                    }
                }
            }
            "error" => settlement.notification = Some(message.to_string()),
            _ => {}
        }
        settlement
    }

    fn finished(
        &self,
        run: &ActiveRun,
        run_id: Option<i64>,
        outcome: &str,
        message: &str,
        settlement: &Settlement,
    ) {
        self.emit(Event::Finished {
            installation: format!("{}/{}", run.tenant, run.installation),
            feed: run.feed.clone(),
            run_id,
            outcome: outcome.to_string(),
            message: message.to_string(),
            retry_at: settlement.follow_up.as_ref().map(|q| q.due_at),
            notified: settlement.notification.is_some(),
        });
    }

    /// One step: queue what schedules owe, then start due runs. Returns how
    /// many runs it started.
    pub fn tick(self: &Arc<Self>, running: &mut Running) -> Result<usize, ServeError> {
        let now = self.clock.now();
        let mut started = 0;
        // Runs start after each batch of schedules, not after all of them.
        while self.queue_due_schedules(now)? {
            started += self.start_due_runs(now, running, WIDE_SCAN)?;
        }
        Ok(started + self.start_due_runs(now, running, WIDE_SCAN)?)
    }

    /// Fills the slots runs just left, from the front of the queue (the
    /// timer's [`Self::tick`] does the wider, fair scan).
    fn refill(self: &Arc<Self>, running: &mut Running) -> Result<usize, ServeError> {
        let narrow = 4 * self.options.max_concurrent;
        self.start_due_runs(self.clock.now(), running, narrow)
    }

    /// Turns up to a batch of due schedules into queued runs and plans their
    /// next fire, in one transaction; true if more may be due. A schedule
    /// never planned (new, re-enabled, changed) is planned from now: it owes
    /// nothing for the past.
    fn queue_due_schedules(&self, now: DateTime<Utc>) -> Result<bool, ServeError> {
        const BATCH: usize = 1000;
        let due = self.store().due_schedules(ts(now), BATCH)?;
        let mut plans = Vec::with_capacity(due.len());
        let mut events = Vec::new();
        for schedule in &due {
            plans.push(self.plan_schedule(schedule, now, &mut events)?);
        }
        self.store().apply_schedule_plans(&plans)?;
        for event in events {
            self.emit(event);
        }
        Ok(due.len() == BATCH)
    }

    fn jitter_for(&self, s: &ScheduleRow, cron: &CronSchedule, fire: DateTime<Utc>) -> i64 {
        let key = format!("{}/{}/{}", s.tenant, s.installation, s.feed);
        jitter(&key, self.options.jitter, cron.period_after(fire)).num_seconds()
    }

    /// The plan waiting for `next` (none: never again).
    fn next_plan(
        &self,
        s: &ScheduleRow,
        cron: &CronSchedule,
        next: Option<DateTime<Utc>>,
    ) -> SchedulePlan {
        let (next_fire_at, due_at) = match next {
            Some(fire) => (Some(ts(fire)), ts(fire) + self.jitter_for(s, cron, fire)),
            None => (None, NEVER),
        };
        SchedulePlan {
            schedule: s.clone(),
            next_fire_at,
            due_at: Some(due_at),
            enqueue: Vec::new(),
        }
    }

    /// What one due schedule owes now, and its next plan.
    fn plan_schedule(
        &self,
        s: &ScheduleRow,
        now: DateTime<Utc>,
        events: &mut Vec<Event>,
    ) -> Result<SchedulePlan, ServeError> {
        let label = format!("{}/{}", s.tenant, s.installation);
        let cron = match CronSchedule::parse(&s.cron, &s.time_zone) {
            Ok(c) => c,
            Err(e) => {
                events.push(Event::Skipped {
                    installation: label,
                    feed: s.feed.clone(),
                    reason: format!("schedule disabled: {e}"),
                });
                return Ok(SchedulePlan {
                    schedule: s.clone(),
                    next_fire_at: None,
                    due_at: Some(NEVER),
                    enqueue: Vec::new(),
                });
            }
        };
        let Some(next_fire) = s.next_fire_at else {
            return Ok(self.next_plan(s, &cron, cron.next_after(now)));
        };
        let fire = at(next_fire);
        // The schedule runs shifted by its jitter: judge lateness on that clock.
        let shifted_now = now - chrono::Duration::seconds(self.jitter_for(s, &cron, fire));
        let due = plan_due(
            &cron,
            fire,
            shifted_now,
            self.options.catch_up,
            self.options.misfire_grace,
        );
        let mut plan = self.next_plan(s, &cron, due.next_fire);
        if due.runs.is_empty() && due.missed > 0 {
            events.push(Event::Skipped {
                installation: label.clone(),
                feed: s.feed.clone(),
                reason: format!("{} missed fires not run (catch-up: skip)", due.missed),
            });
        }
        if due.runs.is_empty() {
            return Ok(plan);
        }
        let busy = self
            .store()
            .is_active(&s.tenant, &s.installation, &s.feed)?;
        let waiting = self.store().queued_count(
            &s.tenant,
            &s.installation,
            &s.feed,
            Trigger::Schedule.as_str(),
        )?;
        let refusal = match (busy, self.options.overlap) {
            (true, Overlap::Skip) => Some("the previous run is still going (overlap: skip)"),
            (true, Overlap::Wait) if waiting > 0 => {
                Some("a run is already waiting for the previous one (overlap: wait)")
            }
            _ => None,
        };
        if let Some(reason) = refusal {
            events.push(Event::Skipped {
                installation: label,
                feed: s.feed.clone(),
                reason: reason.to_string(),
            });
            return Ok(plan);
        }
        for (i, scheduled) in due.runs.iter().enumerate() {
            plan.enqueue.push(QueuedRun {
                id: 0,
                tenant: s.tenant.clone(),
                installation: s.installation.clone(),
                feed: s.feed.clone(),
                trigger: Trigger::Schedule.as_str().to_string(),
                attempt: 1,
                scheduled_at: ts(*scheduled),
                due_at: ts(now),
                created_at: ts(now),
            });
            events.push(Event::Queued {
                installation: label.clone(),
                feed: s.feed.clone(),
                scheduled_at: ts(*scheduled),
                missed: if i == 0 { due.missed } else { 0 },
            });
        }
        Ok(plan)
    }

    /// Starts queued runs that are due: tenants take turns (round robin from
    /// the one after the tenant served last), each within its own limit, all
    /// within the global one.
    fn start_due_runs(
        self: &Arc<Self>,
        now: DateTime<Utc>,
        running: &mut Running,
        scan: usize,
    ) -> Result<usize, ServeError> {
        let free = self.options.max_concurrent.saturating_sub(running.len());
        if free == 0 {
            return Ok(0);
        }
        let mut by_tenant: BTreeMap<String, VecDeque<QueuedRun>> = BTreeMap::new();
        for q in self.store().due_queue(ts(now), scan)? {
            by_tenant.entry(q.tenant.clone()).or_default().push_back(q);
        }
        let mut order: Vec<String> = by_tenant.keys().cloned().collect();
        let last = self
            .last_tenant
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(last) = last {
            let split = order.partition_point(|t| *t <= last);
            order.rotate_left(split);
        }
        let mut started = 0;
        let mut progress = true;
        while progress && running.len() < self.options.max_concurrent {
            progress = false;
            for tenant in &order {
                if running.len() >= self.options.max_concurrent {
                    break;
                }
                if running.tenant_count(tenant) >= self.options.max_per_tenant {
                    continue;
                }
                let Some(queue) = by_tenant.get_mut(tenant) else {
                    continue;
                };
                while let Some(q) = queue.pop_front() {
                    if self.try_start(q, now, running)? {
                        started += 1;
                        progress = true;
                        *self.last_tenant.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(tenant.clone());
                        break;
                    }
                }
            }
        }
        Ok(started)
    }

    /// Starts one queued run unless its feed is busy (it waits) or it must
    /// not run (dropped). True if it started.
    fn try_start(
        self: &Arc<Self>,
        q: QueuedRun,
        now: DateTime<Utc>,
        running: &mut Running,
    ) -> Result<bool, ServeError> {
        let key = (q.tenant.clone(), q.installation.clone(), q.feed.clone());
        if running.keys.contains(&key) {
            return Ok(false);
        }
        let label = format!("{}/{}", q.tenant, q.installation);
        let row = self.store().installation(&q.tenant, &q.installation)?;
        let row = match row.filter(|r| r.removed_at.is_none()) {
            Some(row) => match self.reason_not_to_run(&row, &q) {
                None => row,
                Some(reason) => return self.drop_queued(&q, label, reason),
            },
            None => return self.drop_queued(&q, label, "the installation was removed".into()),
        };
        if !self.store().claim(&q, ts(now))? {
            return Ok(false);
        }
        let active = ActiveRun {
            tenant: q.tenant.clone(),
            installation: q.installation.clone(),
            feed: q.feed.clone(),
            trigger: q.trigger.clone(),
            attempt: q.attempt,
            scheduled_at: q.scheduled_at,
            started_at: ts(now),
        };
        self.emit(Event::Started {
            installation: label,
            feed: q.feed.clone(),
            trigger: q.trigger.clone(),
            attempt: q.attempt,
        });
        let me = Arc::clone(self);
        let task_run = active.clone();
        let handle = running.tasks.spawn(async move {
            if let Err(e) = me.execute(&row, &task_run).await {
                eprintln!("settling a run of {}/{} failed: {e}", row.tenant, row.id);
            }
            task_run
        });
        *running.per_tenant.entry(q.tenant.clone()).or_default() += 1;
        running.keys.insert(key);
        running.active.insert(handle.id(), active);
        Ok(true)
    }

    /// Drops a queued run that must not run, saying why.
    fn drop_queued(
        &self,
        q: &QueuedRun,
        label: String,
        reason: String,
    ) -> Result<bool, ServeError> {
        self.store().dequeue(q.id)?;
        self.emit(Event::Skipped {
            installation: label,
            feed: q.feed.clone(),
            reason,
        });
        Ok(false)
    }

    /// Why a queued run of an installation must be dropped rather than
    /// started, if it must.
    fn reason_not_to_run(&self, row: &InstallationRow, q: &QueuedRun) -> Option<String> {
        if !row.enabled {
            return Some("the installation is disabled".to_string());
        }
        if lifecycle::stored_mode(row) == Mode::Test
            && self.options.test_outbound == TestOutbound::Skip
        {
            let outbound = lifecycle::feed_direction(row, &q.feed) == Some(Direction::Outbound);
            if outbound {
                return Some(
                    "outbound feed in test mode: not run (serve --test-outbound dry-run runs it \
                     with changes suppressed)"
                        .to_string(),
                );
            }
        }
        None
    }

    /// Runs one claimed run to its end and settles it with its record.
    async fn execute(&self, row: &InstallationRow, run: &ActiveRun) -> Result<(), ServeError> {
        let loaded = lifecycle::load(self.store(), self.keyring.as_deref(), row);
        let (plugin, installation) = match loaded {
            Ok(pair) => pair,
            Err(e) => return self.record_unrun(run, "error", &format!("cannot run: {e}")),
        };
        let request = RunRequest {
            feed: run.feed.clone(),
            trigger: match run.trigger.as_str() {
                "manual" => Trigger::Manual,
                "retry" => Trigger::Retry,
                _ => Trigger::Schedule,
            },
            scheduled_at: run.scheduled_at,
            attempt: run.attempt,
        };
        let settle = |report: &crate::runs::RunReport| {
            let outcome = report.severity();
            let retry_after = match &report.end {
                RunEnd::Returned {
                    retry_after_seconds,
                    ..
                } if outcome == Severity::Retry => *retry_after_seconds,
                _ => None,
            };
            Some(self.settlement(run, outcome.as_str(), &report.end.summary(), retry_after))
        };
        match self
            .host
            .run_feed_settled(&plugin, &installation, request, settle)
            .await
        {
            Ok((report, settlement)) => {
                if let Some(settlement) = settlement {
                    let outcome = report.severity().as_str();
                    let summary = report.end.summary();
                    self.finished(run, report.run_id, outcome, &summary, &settlement);
                }
                Ok(())
            }
            Err(e) => {
                let status = if matches!(e, HostError::UnknownFeed { .. }) {
                    "error"
                } else {
                    "retry"
                };
                self.record_unrun(run, status, &format!("host failure: {e}"))
            }
        }
    }

    /// Runs until `shutdown` resolves: recovers what a previous process left,
    /// then ticks. On shutdown it stops starting runs, gives those in
    /// progress `grace` to end, and records the rest as interrupted (their
    /// storage writes are not applied; they are retried at the next start).
    pub async fn serve(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServeError> {
        self.recover()?;
        let mut running = Running::default();
        tokio::pin!(shutdown);
        let mut timer = tokio::time::interval(self.options.tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = timer.tick() => {
                    self.tick(&mut running)?;
                }
                Some(_) = running.join_next(), if !running.is_empty() => {
                    self.refill(&mut running)?;
                }
            }
        }
        self.drain(running).await
    }

    async fn drain(&self, mut running: Running) -> Result<(), ServeError> {
        let deadline = tokio::time::Instant::now() + self.options.grace;
        while !running.is_empty() {
            if tokio::time::timeout_at(deadline, running.join_next())
                .await
                .is_err()
            {
                break;
            }
        }
        running.tasks.abort_all();
        let mut left = Vec::new();
        while let Some(ended) = running.tasks.join_next_with_id().await {
            match ended {
                // It ended (and settled itself) before the abort took.
                Ok((id, _)) => {
                    running.forget(id);
                }
                Err(e) => left.extend(running.forget(e.id())),
            }
        }
        let message = format!(
            "interrupted: the host shut down and the run did not end within the {}s grace \
             period; its storage writes were not applied",
            self.options.grace.as_secs()
        );
        for run in left {
            self.record_unrun(&run, "interrupted", &message)?;
        }
        Ok(())
    }
}
