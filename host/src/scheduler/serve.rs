//! The `serve` loop: every tick it turns due schedules into queued runs, then
//! starts queued runs that are due (picked fairly by [`super::fair`]), never
//! two at once for one installation and feed. When a run ends it is settled
//! ([`mod@super::settle`]) in the same transaction that records it.
//!
//! Crash safety comes from the store: a run is moved from the queue to
//! `active_runs` before it starts, and its storage writes commit only when it
//! ends `ok`/`info`. A row still in `active_runs` when `serve` starts belongs
//! to a process that died: [`Scheduler::recover`] records it as interrupted
//! and retries it per policy (a run claimed by an `airlock run` process is
//! recovered once that process is gone).
//!
//! The loop survives its own failures: a storage error in a step is reported
//! ([`Event::HostFault`]) and the step retried with backoff; a run whose task
//! panicked or whose record failed keeps its claim until it is recorded as a
//! host failure (retried like a `retry`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::mpsc::UnboundedSender;

use super::event::{Event, EventSink};
use super::fair::{Limits, Load, Offer, Picker};
use super::settle::{Unrun, settle};
use super::{Clock, Running, ServeOptions, TestOutbound};
use crate::airlock::{Airlock, HostError};
use crate::lifecycle::{self, LifecycleError};
use crate::manifest::Direction;
use crate::runs::{Mode, RunEnd, RunRequest, Severity, Trigger};
use crate::secrets::Keyring;
use crate::storage::{
    ActiveRun, Holder, InstallationRow, QueuedRun, RunEffects, RunRow, Settlement, StorageError,
    Store,
};

/// Why a scheduler step failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store failed.
    #[error("storage: {}", error_chain(.0))]
    Storage(#[from] StorageError),
}

/// An error with its causes, `a: b: c`.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.ends_with(&more) {
            text = format!("{text}: {more}");
        }
        source = cause.source();
    }
    text
}

/// How many queued runs a timer tick looks at, over all tenants (every
/// tenant's first candidate comes before any tenant's second).
const WIDE_SCAN: usize = 10_000;

/// Where [`Scheduler::start_due_runs`] takes its candidates from.
#[derive(Debug, Clone, Copy)]
enum Scan {
    /// What the last scan of the queue found and did not start.
    Ready,
    /// A fair scan of the queue, at most this many candidates.
    Queue(usize),
}

/// The longest wait before a failed step is tried again.
const MAX_FAULT_BACKOFF: Duration = Duration::from_secs(30);

/// The scheduler of one `serve` process.
pub struct Scheduler {
    host: Arc<Airlock>,
    keyring: Option<Arc<Keyring>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) options: ServeOptions,
    events: EventSink,
    /// The tenant served last, for round-robin fairness.
    last_tenant: Mutex<Option<String>>,
    /// What the last fair scan of the queue found and has not started yet.
    /// A finished run's slot is refilled from here, without sorting every
    /// due run again; each timer tick scans afresh.
    ready: Mutex<Vec<QueuedRun>>,
}

pub(super) fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

pub(super) fn at(secs: i64) -> DateTime<Utc> {
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
            ready: Mutex::new(Vec::new()),
        }
    }

    fn ready(&self) -> std::sync::MutexGuard<'_, Vec<QueuedRun>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn store(&self) -> &dyn Store {
        &**self.host.store()
    }

    pub(super) fn emit(&self, event: Event) {
        (self.events)(&event);
    }

    /// Records the runs a previous process left in progress as interrupted
    /// (their storage writes were never applied) and retries them per
    /// policy. A run leaves `active_runs` in the same transaction that
    /// records it, so every run still there ended before it was recorded.
    /// Called as `serve` starts (it holds the serve lock: every run held by
    /// `serve` is a dead server's); runs held by an `airlock run` process
    /// are recovered only once that process is gone.
    pub async fn recover(&self) -> Result<usize, ServeError> {
        self.recover_abandoned(true).await
    }

    /// Recovers runs whose holder is gone: with `at_start`, those of a dead
    /// server too; otherwise only those of dead `airlock run` processes.
    async fn recover_abandoned(&self, at_start: bool) -> Result<usize, ServeError> {
        let why = Unrun::Interrupted(
            "interrupted: the host stopped before the run ended; its storage writes were not \
             applied"
                .to_string(),
        );
        let mut recovered = 0;
        for (run, holder) in self.store().held_runs().await? {
            let abandoned = match holder {
                Holder::Serve => at_start,
                Holder::Process(pid) => !process_alive(pid),
                Holder::Lease { expired } => expired,
            };
            if !abandoned {
                continue;
            }
            match self.record_unrun(&run, &why).await {
                Ok(()) => recovered += 1,
                // Another node recovered it first, or its holder committed
                // after all: either way it is recorded once.
                Err(ServeError::Storage(StorageError::LeaseLost(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(recovered)
    }

    /// Records and settles a run that did not get to run the guest to its
    /// end.
    async fn record_unrun(&self, run: &ActiveRun, why: &Unrun) -> Result<(), ServeError> {
        let inst = self
            .store()
            .installation(&run.tenant, &run.installation)
            .await?;
        let (plugin_id, plugin_version, plugin_digest, mode) = inst
            .map(|i| (i.plugin_id, i.plugin_version, i.plugin_digest, i.mode))
            .unwrap_or_default();
        let now = ts(self.clock.now());
        let (status, message) = (why.outcome(), why.message());
        let plugin = plugin_id.clone();
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
            message: message.clone(),
            report: why.report().to_string(),
        };
        let settlement = self.settlement(run, status, &message, None);
        let id = self
            .store()
            .finish_run(RunEffects {
                run: row,
                kv_changes: Vec::new(),
                records: Default::default(),
                artifacts: Default::default(),
                http_calls: Vec::new(),
                settlement: Some(settlement.clone()),
                settled_at: now,
                webhook_delivery: None,
                kv_history: Default::default(),
            })
            .await?;
        self.host.metrics().run_recorded(&plugin, status, None);
        self.finished(run, Some(id), status, &message, &settlement);
        Ok(())
    }

    /// Records the runs that ended unrecorded as host failures (retried).
    /// One the store still cannot record stays for the next step.
    async fn record_unrecorded(&self, running: &mut Running) -> Result<(), ServeError> {
        let mut first_error = None;
        for (run, why) in std::mem::take(&mut running.unrecorded) {
            if let Err(e) = self.record_host_failure(&run, &why).await {
                running.unrecorded.push((run, why));
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn record_host_failure(&self, run: &ActiveRun, why: &str) -> Result<(), ServeError> {
        // A task that panicked after its record left nothing to record.
        let active = self
            .store()
            .active_run(&run.tenant, &run.installation, &run.feed)
            .await?;
        if active.as_ref() != Some(run) {
            return Ok(());
        }
        self.record_unrun(run, &Unrun::HostFailure(why.to_string()))
            .await
    }

    /// How a run with this outcome is settled (see [`settle`]).
    fn settlement(
        &self,
        run: &ActiveRun,
        outcome: &str,
        message: &str,
        retry_after: Option<u32>,
    ) -> Settlement {
        settle(
            run,
            outcome,
            message,
            retry_after,
            &self.options.retry,
            self.clock.now(),
        )
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

    /// One step: record the runs that ended unrecorded and those whose
    /// `airlock run` process is gone, queue what schedules owe, then start
    /// due runs. Returns how many runs it started. A run that cannot be
    /// recorded does not hold up the rest: the step goes on, then reports
    /// the error.
    pub async fn tick(self: &Arc<Self>, running: &mut Running) -> Result<usize, ServeError> {
        let recorded = self.record_unrecorded(running).await;
        let recovered = self.recover_abandoned(false).await;
        let recorded = recorded.and(recovered.map(|_| ()));
        let now = self.clock.now();
        let mut started = 0;
        // Runs start after each batch of schedules, not after all of them.
        while self.queue_due_schedules(now).await? {
            started += self
                .start_due_runs(now, running, Scan::Queue(WIDE_SCAN))
                .await?;
        }
        started += self
            .start_due_runs(now, running, Scan::Queue(WIDE_SCAN))
            .await?;
        recorded.map(|()| started)
    }

    /// Fills the slots runs just left, from the front of the queue (the
    /// timer's [`Self::tick`] does the wider scan).
    ///
    /// It picks from what the last fair scan found ([`Self::ready`]); only
    /// when that cannot fill the free slots does it scan the queue again
    /// (the scan sorts every due run: per finished run, it was the
    /// scheduler's largest cost with 10,000 queued).
    async fn refill(self: &Arc<Self>, running: &mut Running) -> Result<usize, ServeError> {
        let recorded = self.record_unrecorded(running).await;
        let now = self.clock.now();
        let mut started = self.start_due_runs(now, running, Scan::Ready).await?;
        if running.len() < self.options.max_concurrent {
            // As wide as a tick's scan: the query sorts every due run
            // whatever its limit, so a wide scan costs the same and keeps
            // the next refills from scanning again.
            started += self
                .start_due_runs(now, running, Scan::Queue(WIDE_SCAN))
                .await?;
        }
        recorded.map(|()| started)
    }

    /// Starts queued runs that are due, picked fairly (see [`Picker`]) from
    /// the candidates `scan` names; those not started are kept in
    /// [`Self::ready`] for the next refill.
    async fn start_due_runs(
        self: &Arc<Self>,
        now: DateTime<Utc>,
        running: &mut Running,
        scan: Scan,
    ) -> Result<usize, ServeError> {
        let limits = Limits {
            max_concurrent: self.options.max_concurrent,
            max_per_tenant: self.options.max_per_tenant,
        };
        if running.len() >= limits.max_concurrent {
            return Ok(0);
        }
        // Enough per tenant to fill its slots past feeds that are busy.
        let per_tenant = 2 * limits.max_per_tenant + 8;
        let candidates = match scan {
            Scan::Ready => std::mem::take(&mut *self.ready()),
            Scan::Queue(limit) => {
                self.store()
                    .due_candidates(ts(now), per_tenant, limit)
                    .await?
            }
        };
        if candidates.is_empty() {
            return Ok(0);
        }
        let per_tenant_load = running.per_tenant.clone();
        let load = Load {
            total: running.len(),
            per_tenant: &per_tenant_load,
        };
        let last = self
            .last_tenant
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // Chosen fairly first, then claimed together: one transaction (and
        // one disk flush) for every run this step starts.
        let mut rows = Vec::new();
        let mut picker = Picker::new(candidates, last.as_deref(), limits, load);
        while let Some(q) = picker.next_candidate() {
            let (offer, row) = self.offer(&q, running).await?;
            rows.extend(row);
            picker.answer(q, offer);
        }
        let picked = picker.finish();
        // Still waiting: not offered (limits reached first), or offered
        // while its feed was busy. Started, dropped or claimed elsewhere: gone.
        *self.ready() = picked.waiting;
        if let Some(q) = picked.started.last() {
            *self.last_tenant.lock().unwrap_or_else(|p| p.into_inner()) = Some(q.tenant.clone());
        }
        let claimed = self
            .store()
            .claim_queued(picked.started.clone(), ts(now), limits.max_per_tenant)
            .await?;
        let mut started = 0;
        for ((q, row), claimed) in picked.started.into_iter().zip(rows).zip(claimed) {
            if claimed {
                started += 1;
                self.spawn_run(q, row, now, running);
            }
        }
        Ok(started)
    }

    /// What becomes of queued run `q` offered to start: it starts (with
    /// its installation), waits (its feed is busy) or is dropped because it
    /// must not run (saying why).
    async fn offer(
        &self,
        q: &QueuedRun,
        running: &Running,
    ) -> Result<(Offer, Option<InstallationRow>), ServeError> {
        if running.is_running(&q.tenant, &q.installation, &q.feed) {
            return Ok((Offer::Wait, None));
        }
        let label = format!("{}/{}", q.tenant, q.installation);
        let row = self
            .store()
            .installation(&q.tenant, &q.installation)
            .await?;
        let reason = match row.as_ref().filter(|r| r.removed_at.is_none()) {
            Some(row) => self.reason_not_to_run(row, q),
            None => Some("the installation was removed".into()),
        };
        match reason {
            None => Ok((Offer::Start, row)),
            Some(reason) => {
                self.drop_queued(q, label, reason).await?;
                Ok((Offer::Drop, None))
            }
        }
    }

    /// Starts claimed run `q` of installation `row` as a task of `running`.
    fn spawn_run(
        self: &Arc<Self>,
        q: QueuedRun,
        row: InstallationRow,
        now: DateTime<Utc>,
        running: &mut Running,
    ) {
        let active = q.started(ts(now));
        let lag = (now.timestamp_millis() - q.due_at.saturating_mul(1000)).max(0);
        self.host
            .metrics()
            .run_started(Duration::from_millis(lag as u64));
        self.emit(Event::Started {
            installation: format!("{}/{}", q.tenant, q.installation),
            feed: q.feed,
            trigger: q.trigger,
            attempt: q.attempt,
        });
        let me = Arc::clone(self);
        let task_run = active.clone();
        let guest_done = running.guest_done.clone();
        let handle = running.tasks.spawn(async move {
            me.execute(&row, &task_run, guest_done)
                .await
                .map_err(|e| format!("the run could not be recorded: {e}"))
        });
        running.add(handle.id(), active);
    }

    /// Drops a queued run that must not run, saying why.
    async fn drop_queued(
        &self,
        q: &QueuedRun,
        label: String,
        reason: String,
    ) -> Result<(), ServeError> {
        self.store().dequeue(q.id).await?;
        self.emit(Event::Skipped {
            installation: label,
            feed: q.feed.clone(),
            reason,
        });
        Ok(())
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

    /// Runs one claimed run to its end and settles it with its record. A
    /// host failure (storage, the runtime) is recorded as one and retried;
    /// an error is returned only if even that record failed.
    ///
    /// When the guest has ended, before the run is recorded, the task's id
    /// goes to `guest_done`: its slot is free for the next run while the
    /// record waits for the disk (see [`Running`]).
    async fn execute(
        self: &Arc<Self>,
        row: &InstallationRow,
        run: &ActiveRun,
        guest_done: Option<UnboundedSender<tokio::task::Id>>,
    ) -> Result<(), ServeError> {
        // Its store calls and the plugin's verification (hashing, on the
        // first run of a plugin) keep off the async workers themselves.
        let loaded = lifecycle::load(self.store(), self.keyring.as_deref(), row).await;
        let (plugin, installation) = match loaded {
            Ok(pair) => pair,
            Err(LifecycleError::Storage(e)) => {
                let why = Unrun::HostFailure(error_chain(&e));
                return self.record_unrun(run, &why).await;
            }
            Err(e) => {
                let why = Unrun::CannotRun(e.to_string());
                return self.record_unrun(run, &why).await;
            }
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
            if let Some(done) = &guest_done {
                // The loop is gone only at shutdown, when no slot matters.
                let _ = done.send(tokio::task::id());
            }
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
            Err(e @ HostError::UnknownFeed { .. }) => {
                self.record_unrun(run, &Unrun::CannotRun(e.to_string()))
                    .await
            }
            // Fenced: another node recovered this run while it ran (this
            // process was paused or cut off past its lease). Nothing of it
            // was committed, and nothing is left to record here.
            Err(HostError::Storage(StorageError::LeaseLost(message))) => {
                self.emit(Event::LeaseLost {
                    installation: format!("{}/{}", run.tenant, run.installation),
                    feed: run.feed.clone(),
                    message,
                });
                Ok(())
            }
            Err(e) => {
                self.record_unrun(run, &Unrun::HostFailure(error_chain(&e)))
                    .await
            }
        }
    }

    /// Runs until `shutdown` resolves: recovers what a previous process left,
    /// then ticks. A step that fails (the store is unavailable) is reported
    /// and tried again with backoff; the loop never stops for it. On
    /// shutdown it stops starting runs, gives those in progress `grace` to
    /// end, and records the rest as interrupted (their storage writes are
    /// not applied; they are retried at the next start).
    pub async fn serve(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let (guest_done, mut guests_done) = tokio::sync::mpsc::unbounded_channel();
        let mut running = Running {
            guest_done: Some(guest_done),
            ..Running::default()
        };
        let mut recovered = false;
        let mut failures = 0u32;
        tokio::pin!(shutdown);
        let mut timer = tokio::time::interval(self.options.tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let timer_fired = tokio::select! {
                _ = &mut shutdown => break,
                _ = timer.tick() => true,
                Some(_) = running.join_next(), if !running.is_empty() => {
                    running.reap();
                    false
                }
                // A guest ended: its slot is free while its run is recorded.
                Some(id) = guests_done.recv() => {
                    running.guest_ended(id);
                    while let Ok(id) = guests_done.try_recv() {
                        running.guest_ended(id);
                    }
                    running.reap();
                    false
                }
            };
            let step;
            (step, running, recovered) = self
                .clone()
                .step_on_blocking_thread(running, recovered, timer_fired)
                .await;
            match step {
                Ok(()) => failures = 0,
                Err(e) => {
                    let delay = fault_backoff(self.options.tick, failures);
                    failures = failures.saturating_add(1);
                    self.emit(Event::HostFault {
                        error: e.to_string(),
                        retry_in: Some(delay),
                    });
                    timer.reset_after(delay);
                }
            }
        }
        self.drain(running).await;
        Ok(())
    }

    /// One step of the loop (a timer tick, or a refill when a run ended),
    /// driven to its end on a thread that may block
    /// ([`crate::blocking::off_worker`]). A step makes several store calls
    /// (an installation read per run it offers); a backend that blocks (SQLite)
    /// then blocks this thread, once per step, instead of handing a tokio
    /// worker's tasks on at every call, and a slow or locked store stalls
    /// the step, never a worker that runs guests. The runs in progress move
    /// to the step and back; runs it starts are spawned on the runtime from
    /// there. A step that panics panics `serve`, as it would on the worker.
    async fn step_on_blocking_thread(
        self: Arc<Self>,
        mut running: Running,
        mut recovered: bool,
        timer_fired: bool,
    ) -> (Result<(), ServeError>, Running, bool) {
        let runtime = tokio::runtime::Handle::current();
        let step = move || {
            let result = runtime.block_on(async {
                if timer_fired {
                    self.timer_step(&mut running, &mut recovered).await
                } else {
                    self.refill(&mut running).await.map(|_| ())
                }
            });
            (result, running, recovered)
        };
        match crate::blocking::off_worker(step).await {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// A timer tick: recovery first, until it has succeeded once.
    async fn timer_step(
        self: &Arc<Self>,
        running: &mut Running,
        recovered: &mut bool,
    ) -> Result<(), ServeError> {
        if !*recovered {
            self.recover().await?;
            *recovered = true;
        }
        self.tick(running).await.map(|_| ())
    }

    async fn drain(self: &Arc<Self>, mut running: Running) {
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
                // It ended before the abort took; it recorded itself, or
                // failed to (then it is unrecorded, below).
                Ok((id, end)) => {
                    if let (Some(run), Err(why)) = (running.forget(id), end) {
                        running.unrecorded.push((run, why));
                    }
                }
                Err(e) => left.extend(running.forget(e.id())),
            }
        }
        let why = Unrun::Interrupted(format!(
            "interrupted: the host shut down and the run did not end within the {}s grace \
             period; its storage writes were not applied",
            self.options.grace.as_secs()
        ));
        let mut recorded = self.record_unrecorded(&mut running).await;
        for run in left {
            recorded = recorded.and(self.record_unrun(&run, &why).await);
        }
        if let Err(e) = recorded {
            self.emit(Event::HostFault {
                error: format!(
                    "{e}; the runs not recorded stay in progress and are recovered at the next \
                     start (or, on PostgreSQL, by another node)"
                ),
                retry_in: None,
            });
        }
        // What this node still holds (runs it could not record) is given
        // up now, so another node recovers it at once instead of after the
        // lease (nothing on SQLite).
        if let Err(e) = self.store().hand_back().await {
            self.emit(Event::HostFault {
                error: format!("cannot hand this node's claims back: {}", error_chain(&e)),
                retry_in: None,
            });
        }
    }
}

/// Whether process `pid` is alive, as far as this host can tell (Linux's
/// `/proc`); where it cannot tell, it is taken to be.
fn process_alive(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// How long to wait before a step that failed `failures` times before is
/// tried again: the tick, doubling, at most [`MAX_FAULT_BACKOFF`].
fn fault_backoff(tick: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.min(16));
    tick.saturating_mul(factor).min(MAX_FAULT_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_steps_back_off_from_the_tick_up_to_a_cap() {
        let tick = Duration::from_millis(100);
        let delays: Vec<u64> = [0, 1, 2, 3, 8, 9, u32::MAX]
            .iter()
            .map(|&n| fault_backoff(tick, n).as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 25_600, 30_000, 30_000]);
        assert_eq!(fault_backoff(Duration::from_secs(60), 0), MAX_FAULT_BACKOFF);
    }

    #[test]
    fn a_storage_error_says_its_cause() {
        let e = ServeError::from(StorageError::Database("disk I/O error".into()));
        assert_eq!(e.to_string(), "storage: database error: disk I/O error");
    }
}
