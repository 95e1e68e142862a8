//! How `serve` behaves: limits, jitter, overlap, catch-up, retries, what
//! test mode does to outbound feeds, and the shutdown grace period.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::{CatchUp, Overlap, RetryPolicy};

/// What happens to an outbound feed of an installation in test mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestOutbound {
    /// It does not run (the seed's "only feeds from CMS to Connect").
    Skip,
    /// It runs, with every request that would change a third party
    /// suppressed by the egress client.
    DryRun,
}

impl FromStr for TestOutbound {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(Self::Skip),
            "dry-run" => Ok(Self::DryRun),
            _ => Err(format!("`{s}` is not skip or dry-run")),
        }
    }
}

impl fmt::Display for TestOutbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Skip => "skip",
            Self::DryRun => "dry-run",
        })
    }
}

/// How the scheduler behaves. The defaults suit a small platform.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How often the loop looks for due work.
    pub tick: Duration,
    /// Runs in progress at once, over all tenants.
    pub max_concurrent: usize,
    /// Runs in progress at once for one tenant.
    pub max_per_tenant: usize,
    /// The most a schedule's runs are spread after their fire time (capped
    /// at half the schedule's period); deterministic per installation.
    pub jitter: chrono::Duration,
    /// A scheduled run due while the previous one is still going.
    pub overlap: Overlap,
    /// Fires missed while the host was down.
    pub catch_up: CatchUp,
    /// How late a fire may be and still count as on time.
    pub misfire_grace: chrono::Duration,
    /// Outbound feeds in test mode.
    pub test_outbound: TestOutbound,
    /// Backoff for `retry` outcomes (and interrupted runs).
    pub retry: RetryPolicy,
    /// On shutdown, how long runs in progress may take to finish.
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            max_concurrent: 8,
            max_per_tenant: 2,
            jitter: chrono::Duration::seconds(30),
            overlap: Overlap::Wait,
            catch_up: CatchUp::One,
            misfire_grace: chrono::Duration::seconds(60),
            test_outbound: TestOutbound::Skip,
            retry: RetryPolicy::default(),
            grace: Duration::from_secs(30),
        }
    }
}
