//! What a run is asked to do ([`RunRequest`]) and what it did ([`RunReport`]):
//! outcome, log, captured output, storage changes and HTTP calls.
//!
//! These are plain data: the runtime fills them in, `storage` persists them,
//! the CLI prints them. The log's size caps live here too ([`RunLog`]).

mod log;

use serde::{Deserialize, Serialize};

pub use log::{LogLevel, LogLimits, LogLine, RunLog};

use crate::egress::HttpCall;
use crate::storage::KeyChange;

/// Test or live, as in the WIT `mode`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Nothing that changes a third party is sent.
    Test,
    /// Everything runs.
    Live,
}

/// Why a run started, as in the WIT `trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Its schedule came due.
    Schedule,
    /// Someone asked for it.
    Manual,
    /// A retry after `retry`.
    Retry,
    /// A third party called one of the installation's webhooks.
    Webhook,
}

impl Mode {
    /// `test` or `live`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
}

impl Trigger {
    /// `schedule`, `manual`, `retry` or `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Retry => "retry",
            Trigger::Webhook => "webhook",
        }
    }
}

/// One feed to run for one installation.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The feed's name.
    pub feed: String,
    /// Why it runs.
    pub trigger: Trigger,
    /// When it was due (Unix seconds, UTC).
    pub scheduled_at: i64,
    /// 1 for a first attempt.
    pub attempt: u32,
}

/// The four severities operators know, as in the WIT `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Done.
    Ok,
    /// Nothing to do by a business rule.
    Info,
    /// Try again later.
    Retry,
    /// Needs a person.
    Error,
}

impl Severity {
    /// `ok`, `info`, `retry` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Retry => "retry",
            Severity::Error => "error",
        }
    }

    /// Whether the run's storage writes are kept.
    pub fn commits(self) -> bool {
        matches!(self, Severity::Ok | Severity::Info)
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "end", rename_all = "kebab-case")]
pub enum RunEnd {
    /// The guest returned an outcome.
    Returned {
        /// Its severity.
        status: Severity,
        /// Its message.
        message: String,
        /// Items processed.
        items: u32,
        /// Requested retry delay, seconds.
        retry_after_seconds: Option<u32>,
    },
    /// The guest trapped (panic, unreachable, bad memory access…).
    Trapped {
        /// The trap, with the guest's backtrace when available.
        message: String,
    },
    /// The run passed its wall-clock deadline and was stopped.
    TimedOut {
        /// The deadline, in seconds.
        after_secs: u32,
    },
    /// The guest tried to grow memory past its cap and was stopped.
    MemoryLimit {
        /// The cap, in bytes.
        limit_bytes: u64,
    },
    /// The host could not run the guest (instantiation, storage failure).
    HostFailure {
        /// What failed.
        message: String,
    },
}

impl RunEnd {
    /// The severity operators see: a trap, timeout or memory stop is an
    /// `error` (it needs a person); a host failure is a `retry`.
    pub fn severity(&self) -> Severity {
        match self {
            RunEnd::Returned { status, .. } => *status,
            RunEnd::Trapped { .. } | RunEnd::TimedOut { .. } | RunEnd::MemoryLimit { .. } => {
                Severity::Error
            }
            RunEnd::HostFailure { .. } => Severity::Retry,
        }
    }

    /// One line for lists and the runs table.
    pub fn summary(&self) -> String {
        match self {
            RunEnd::Returned { message, .. } => message.clone(),
            RunEnd::Trapped { message } => format!("trap: {}", trap_cause(message)),
            RunEnd::TimedOut { after_secs } => format!("timeout: stopped after {after_secs}s"),
            RunEnd::MemoryLimit { limit_bytes } => format!(
                "memory limit: stopped when growing past {} MiB",
                limit_bytes >> 20
            ),
            RunEnd::HostFailure { message } => format!("host failure: {message}"),
        }
    }
}

/// The root cause of a trap, for one-line summaries: the last line of the
/// error's "Caused by" chain (e.g. "wasm trap: wasm `unreachable`
/// instruction executed"), or its first line when there is no chain.
fn trap_cause(message: &str) -> &str {
    let Some((_, causes)) = message.split_once("Caused by:") else {
        return message.lines().next().unwrap_or_default();
    };
    let last = causes.lines().map(str::trim).rfind(|l| !l.is_empty());
    last.map(|l| {
        l.split_once(": ")
            .filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
            .map_or(l, |(_, rest)| rest)
    })
    .unwrap_or_default()
}

/// How many changes a run made to the tenant's records, and whether they
/// were kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounts {
    /// Records put.
    pub puts: usize,
    /// Records deleted.
    pub deletes: usize,
    /// Acknowledgements.
    pub acks: usize,
    /// Annotation changes.
    pub annotations: usize,
    /// Whether they were applied with the run's record.
    pub kept: bool,
}

impl RecordCounts {
    /// The counts of `effects`, kept or not.
    pub fn of(effects: &crate::storage::RecordEffects, kept: bool) -> Self {
        let deletes = effects.writes.iter().filter(|w| w.body.is_none()).count();
        Self {
            puts: effects.writes.len() - deletes,
            deletes,
            acks: effects.acks.len(),
            annotations: effects.annotations.len(),
            kept,
        }
    }

    /// Whether the run changed nothing in the records.
    pub fn is_empty(&self) -> bool {
        self.puts + self.deletes + self.acks + self.annotations == 0
    }

    /// One line: `2 puts, 1 delete, 3 acknowledgements, 0 annotations (kept)`.
    pub fn summary(&self) -> String {
        format!(
            "{} put(s), {} delete(s), {} acknowledgement(s), {} annotation change(s) ({})",
            self.puts,
            self.deletes,
            self.acks,
            self.annotations,
            if self.kept { "kept" } else { "discarded" }
        )
    }
}

/// Everything one run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Row id in the runs table, once recorded.
    pub run_id: Option<i64>,
    /// Tenant.
    pub tenant: String,
    /// Installation.
    pub installation: String,
    /// `id@version`.
    pub plugin: String,
    /// Component sha256.
    pub digest: String,
    /// Feed.
    pub feed: String,
    /// Mode.
    pub mode: Mode,
    /// Trigger.
    pub trigger: Trigger,
    /// Attempt.
    pub attempt: u32,
    /// Due time, Unix seconds.
    pub scheduled_at: i64,
    /// Start, Unix seconds.
    pub started_at: i64,
    /// Wall-clock duration, milliseconds.
    pub duration_ms: u64,
    /// How it ended.
    pub end: RunEnd,
    /// Whether its storage writes were committed at the end.
    pub committed: bool,
    /// Writes that were committed (at checkpoints and the end).
    pub storage_committed: Vec<KeyChange>,
    /// Writes that were discarded.
    pub storage_discarded: Vec<KeyChange>,
    /// Why none of the run's writes were kept although it succeeded
    /// (a test-mode dry run), if that is the case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_note: Option<String>,
    /// What the run changed in the tenant's records, and whether it was
    /// kept (on the same terms as its storage writes).
    #[serde(default, skip_serializing_if = "RecordCounts::is_empty")]
    pub records: RecordCounts,
    /// The artifacts the run published (it ended `ok` or `info`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<crate::artifacts::PublishedArtifact>,
    /// The guest's log lines (secrets redacted).
    pub log: Vec<LogLine>,
    /// Log lines dropped over the cap.
    pub log_dropped: u32,
    /// Captured stdout, up to the cap.
    pub stdout: String,
    /// Captured stderr, up to the cap.
    pub stderr: String,
    /// Bytes of stdout/stderr dropped over the cap.
    pub output_dropped_bytes: u64,
    /// Every HTTP request and redirect hop, with its decision, up to the
    /// audit cap.
    pub http: Vec<HttpCall>,
    /// HTTP audit records dropped over the cap, and requests refused over
    /// the run's request cap.
    pub http_dropped: u32,
    /// The most memory the guest's instance held at once (its linear
    /// memories and tables, what `memory_mb` caps), in bytes.
    pub peak_memory_bytes: u64,
}

impl RunReport {
    /// The severity of the run.
    pub fn severity(&self) -> Severity {
        self.end.severity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trap_summary_names_the_root_cause() {
        let check = |message: &str, expected: &str| {
            let end = RunEnd::Trapped {
                message: message.into(),
            };
            assert_eq!(end.summary(), expected);
        };
        check(
            "error while executing at wasm backtrace:\n    0: 0x1a2b - run\n\nCaused by:\n    \
             0: first\n    1: wasm trap: wasm `unreachable` instruction executed\n",
            "trap: wasm trap: wasm `unreachable` instruction executed",
        );
        check(
            "error while executing\n\nCaused by:\n    out of fuel",
            "trap: out of fuel",
        );
        check("plain message\nsecond line", "trap: plain message");
    }
}
