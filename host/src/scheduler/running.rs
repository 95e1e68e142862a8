//! The runs one `serve` process has in progress: their tasks, the counts the
//! scheduler's limits and its no-overlap rule read, and the runs that ended
//! without being recorded (their task panicked, or the store failed when the
//! run was recorded), which still hold their claim until the scheduler
//! records them as host failures.

use std::collections::{HashMap, HashSet};

use tokio::task::{JoinError, JoinSet};

use crate::storage::ActiveRun;

/// How a run's task ended: recorded (and settled), or not, and why.
pub(super) type TaskEnd = Result<(), String>;

/// The runs this process has in progress.
#[derive(Default)]
pub struct Running {
    pub(super) tasks: JoinSet<TaskEnd>,
    pub(super) active: HashMap<tokio::task::Id, ActiveRun>,
    pub(super) per_tenant: HashMap<String, usize>,
    pub(super) keys: HashSet<(String, String, String)>,
    /// Runs that ended unrecorded, with why; their claims are still held.
    pub(super) unrecorded: Vec<(ActiveRun, String)>,
}

impl Running {
    /// How many runs are in progress.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
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

    pub(super) fn add(&mut self, id: tokio::task::Id, run: ActiveRun) {
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

    pub(super) fn forget(&mut self, id: tokio::task::Id) -> Option<ActiveRun> {
        let run = self.active.remove(&id)?;
        self.keys.remove(&Self::key(&run));
        if let Some(n) = self.per_tenant.get_mut(&run.tenant) {
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
