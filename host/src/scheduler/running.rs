//! The runs one `serve` process has in progress: their tasks, and the
//! counts the scheduler's limits and its no-overlap rule read.

use std::collections::{HashMap, HashSet};

use tokio::task::JoinSet;

use crate::storage::ActiveRun;

/// The runs this process has in progress.
#[derive(Default)]
pub struct Running {
    pub(super) tasks: JoinSet<ActiveRun>,
    pub(super) active: HashMap<tokio::task::Id, ActiveRun>,
    pub(super) per_tenant: HashMap<String, usize>,
    pub(super) keys: HashSet<(String, String, String)>,
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

    pub(super) fn tenant_count(&self, tenant: &str) -> usize {
        self.per_tenant.get(tenant).copied().unwrap_or(0)
    }

    fn key(run: &ActiveRun) -> (String, String, String) {
        (
            run.tenant.clone(),
            run.installation.clone(),
            run.feed.clone(),
        )
    }

    pub(super) fn forget(&mut self, id: tokio::task::Id) -> Option<ActiveRun> {
        let run = self.active.remove(&id)?;
        self.keys.remove(&Self::key(&run));
        if let Some(n) = self.per_tenant.get_mut(&run.tenant) {
            *n = n.saturating_sub(1);
        }
        Some(run)
    }

    /// Waits for the next run to end; None when none are running.
    pub async fn join_next(&mut self) -> Option<ActiveRun> {
        loop {
            match self.tasks.join_next_with_id().await? {
                Ok((id, _)) => return self.forget(id),
                Err(e) => {
                    // A panicked run task: its run stays in active_runs and
                    // is recovered as interrupted at the next start.
                    if self.forget(e.id()).is_some() {
                        eprintln!("a run task failed: {e}");
                    }
                }
            }
        }
    }
}
