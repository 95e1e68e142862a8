//! The runs one `serve` process has in progress: their tasks, the counts the
//! scheduler's limits and its no-overlap rule read, and the runs that ended
//! without being recorded (their task panicked, or the store failed when the
//! run was recorded), which still hold their claim until the scheduler
//! records them as host failures.

use std::collections::{HashMap, HashSet};

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::{Id, JoinError, JoinSet};

use crate::storage::ActiveRun;

/// How a run's task ended: recorded (and settled), or not, and why.
pub(super) type TaskEnd = Result<(), String>;

/// The runs this process has in progress.
///
/// A run holds a slot (counted against the global and per-tenant limits)
/// while its guest runs; once the guest has ended and the run is only being
/// recorded, its slot is free for the next run (`guest_ended`), but
/// its feed stays busy until the record is committed, so two runs of one
/// feed never overlap.
#[derive(Default)]
pub struct Running {
    pub(super) tasks: JoinSet<TaskEnd>,
    pub(super) active: HashMap<Id, ActiveRun>,
    /// Runs in progress whose guest has ended: they are being recorded.
    pub(super) recording: HashSet<Id>,
    pub(super) per_tenant: HashMap<String, usize>,
    pub(super) keys: HashSet<(String, String, String)>,
    /// Runs that ended unrecorded, with why; their claims are still held.
    pub(super) unrecorded: Vec<(ActiveRun, String)>,
    /// Where a run's task says its guest has ended (see
    /// [`Self::guest_ended`]); none outside `serve`'s loop.
    pub(super) guest_done: Option<UnboundedSender<Id>>,
}

impl Running {
    /// How many runs hold a slot: their guest is running.
    pub fn len(&self) -> usize {
        self.active.len() - self.recording.len()
    }

    /// Whether no run is in progress at all (none running, none being
    /// recorded).
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Frees the slot of run task `id`, whose guest has ended: the run no
    /// longer counts against the limits, but its feed stays busy until its
    /// task ends. Nothing if the run ended already.
    pub(super) fn guest_ended(&mut self, id: Id) {
        let Some(run) = self.active.get(&id) else {
            return;
        };
        if self.recording.insert(id)
            && let Some(n) = self.per_tenant.get_mut(&run.tenant)
        {
            *n = n.saturating_sub(1);
        }
    }

    /// How many runs ended without being recorded and wait to be recorded
    /// as host failures.
    pub fn unrecorded(&self) -> usize {
        self.unrecorded.len()
    }

    fn key(run: &ActiveRun) -> (String, String, String) {
        (
            run.tenant.clone(),
            run.installation.clone(),
            run.feed.clone(),
        )
    }

    pub(super) fn add(&mut self, id: Id, run: ActiveRun) {
        *self.per_tenant.entry(run.tenant.clone()).or_default() += 1;
        self.keys.insert(Self::key(&run));
        self.active.insert(id, run);
    }

    pub(super) fn is_running(&self, tenant: &str, installation: &str, feed: &str) -> bool {
        self.keys.contains(&(
            tenant.to_string(),
            installation.to_string(),
            feed.to_string(),
        ))
    }

    pub(super) fn forget(&mut self, id: Id) -> Option<ActiveRun> {
        let run = self.active.remove(&id)?;
        self.keys.remove(&Self::key(&run));
        // A run being recorded gave its slot back already.
        if !self.recording.remove(&id)
            && let Some(n) = self.per_tenant.get_mut(&run.tenant)
        {
            *n = n.saturating_sub(1);
        }
        Some(run)
    }

    /// Waits for the next run to end; None when none are running. A run
    /// that ended unrecorded (its task failed or panicked) is kept for the
    /// scheduler to record.
    pub async fn join_next(&mut self) -> Option<ActiveRun> {
        loop {
            let ended = self.tasks.join_next_with_id().await?;
            if let Some(run) = self.ended(ended) {
                return Some(run);
            }
        }
    }

    /// Takes in every run that has ended already, without waiting (as
    /// [`Self::join_next`] does one): their slots are free for the next
    /// refill at once, rather than one refill each. How many.
    pub fn reap(&mut self) -> usize {
        let mut reaped = 0;
        while let Some(ended) = self.tasks.try_join_next_with_id() {
            reaped += usize::from(self.ended(ended).is_some());
        }
        reaped
    }

    /// Forgets a run whose task ended, keeping it as unrecorded if its task
    /// failed; None if it was forgotten already.
    fn ended(&mut self, ended: Result<(tokio::task::Id, TaskEnd), JoinError>) -> Option<ActiveRun> {
        let (id, end) = match ended {
            Ok((id, end)) => (id, end),
            Err(e) => (e.id(), Err(task_failure(e))),
        };
        let run = self.forget(id)?;
        if let Err(why) = end {
            self.unrecorded.push((run.clone(), why));
        }
        Some(run)
    }
}

/// Why a run's task ended without returning.
fn task_failure(e: JoinError) -> String {
    if !e.is_panic() {
        return "the run's task was cancelled".to_string();
    }
    let payload = e.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string());
    format!("the run's task panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tenant: &str, feed: &str) -> ActiveRun {
        ActiveRun {
            tenant: tenant.into(),
            installation: "i".into(),
            feed: feed.into(),
            trigger: "schedule".into(),
            attempt: 1,
            scheduled_at: 0,
            started_at: 0,
        }
    }

    #[tokio::test]
    async fn a_run_being_recorded_frees_its_slot_but_keeps_its_feed_busy() {
        let mut running = Running::default();
        let a = running.tasks.spawn(async { Ok(()) }).id();
        let b = running.tasks.spawn(async { Ok(()) }).id();
        running.add(a, run("t", "orders"));
        running.add(b, run("t", "stock"));
        assert_eq!((running.len(), running.per_tenant["t"]), (2, 2));

        running.guest_ended(a);
        running.guest_ended(a);
        assert_eq!(
            (running.len(), running.per_tenant["t"]),
            (1, 1),
            "a slot is freed once, however often it is said"
        );
        assert!(
            running.is_running("t", "i", "orders"),
            "its feed stays busy"
        );
        assert!(!running.is_empty());

        running.forget(a);
        assert_eq!((running.len(), running.per_tenant["t"]), (1, 1));
        assert!(!running.is_running("t", "i", "orders"));
        running.guest_ended(a);
        assert_eq!(running.len(), 1, "an ended run frees nothing more");
        running.forget(b);
        assert_eq!((running.len(), running.per_tenant["t"]), (0, 0));
        assert!(running.is_empty());
    }
}
