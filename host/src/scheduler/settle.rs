//! How a run that ended is settled, worked out without I/O: a `retry`, an
//! interrupted run or a host failure is queued again with backoff while
//! attempts remain; an `error`, and a retry that gave up, raise a
//! notification; `ok` and `info` just leave the runs in progress. The store
//! applies the [`Settlement`] in the same transaction that records the run.

use chrono::{DateTime, Utc};

use super::RetryPolicy;
use crate::runs::{RunEnd, Trigger};
use crate::storage::{ActiveRun, QueuedRun, Settlement};

/// The outcome recorded for a run whose guest never ran to its end because
/// the host stopped (a previous process died, or shutdown's grace ran out).
pub const INTERRUPTED: &str = "interrupted";

/// A run that did not get to run its guest to the end, as it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrun {
    /// The host stopped before the run ended; its storage writes were not
    /// applied. Retried.
    Interrupted(String),
    /// The run cannot run as installed (its component changed on disk, its
    /// feed is gone): it needs a person.
    CannotRun(String),
    /// The host failed (storage, the run's task): not the guest's fault,
    /// retried.
    HostFailure(String),
}

impl Unrun {
    /// The outcome recorded: `interrupted`, `error` or `retry`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Interrupted(_) => INTERRUPTED,
            Self::CannotRun(_) => "error",
            Self::HostFailure(_) => "retry",
        }
    }

    /// The one-line message recorded.
    pub fn message(&self) -> String {
        match self {
            Self::Interrupted(m) => m.clone(),
            Self::CannotRun(m) => format!("cannot run: {m}"),
            Self::HostFailure(m) => self.host_failure(m).summary(),
        }
    }

    fn host_failure(&self, message: &str) -> RunEnd {
        RunEnd::HostFailure {
            message: message.to_string(),
        }
    }

    /// The report recorded (JSON): how the run ended, as a run's report
    /// says it.
    pub fn report(&self) -> serde_json::Value {
        match self {
            Self::HostFailure(m) => serde_json::json!({ "end": self.host_failure(m) }),
            _ => serde_json::json!({ "end": self.outcome(), "message": self.message() }),
        }
    }
}

/// How `run`, which ended with `outcome` and `message` at `now`, is settled.
/// `retry_after` is the delay the guest asked for, in seconds.
pub fn settle(
    run: &ActiveRun,
    outcome: &str,
    message: &str,
    retry_after: Option<u32>,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> Settlement {
    let mut settlement = Settlement {
        active: run.clone(),
        follow_up: None,
        notification: None,
    };
    match outcome {
        // A webhook delivery is not the host's to run again: its sender
        // delivers it again (a run interrupted by a stopping host included).
        "retry" | INTERRUPTED if run.trigger == Trigger::Webhook.as_str() => {}
        "retry" | INTERRUPTED => {
            let requested = retry_after.map(|s| chrono::Duration::seconds(s.into()));
            match policy.delay(run.attempt, requested) {
                Some(delay) => settlement.follow_up = Some(retry_of(run, now, now + delay)),
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

/// The next attempt of `run`, due at `due`.
fn retry_of(run: &ActiveRun, now: DateTime<Utc>, due: DateTime<Utc>) -> QueuedRun {
    QueuedRun {
        id: 0,
        tenant: run.tenant.clone(),
        installation: run.installation.clone(),
        feed: run.feed.clone(),
        trigger: Trigger::Retry.as_str().to_string(),
        attempt: run.attempt.saturating_add(1),
        scheduled_at: run.scheduled_at,
        due_at: due.timestamp(),
        created_at: now.timestamp(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn run(attempt: u32) -> ActiveRun {
        ActiveRun {
            tenant: "acme".into(),
            installation: "shop".into(),
            feed: "orders".into(),
            trigger: "schedule".into(),
            attempt,
            scheduled_at: 1_000,
            started_at: 1_010,
        }
    }

    /// What a settlement amounts to: (retry due in seconds from now,
    /// notification).
    fn check(
        attempt: u32,
        outcome: &str,
        retry_after: Option<u32>,
        expected: (Option<i64>, Option<&str>),
    ) {
        let now = Utc.timestamp_opt(2_000, 0).unwrap();
        let policy = RetryPolicy {
            max_attempts: 3,
            base: Duration::seconds(60),
            max: Duration::seconds(100),
        };
        let s = settle(
            &run(attempt),
            outcome,
            "shop down",
            retry_after,
            &policy,
            now,
        );
        assert_eq!(s.active, run(attempt), "the run in progress is released");
        if let Some(q) = &s.follow_up {
            assert_eq!(
                (q.trigger.as_str(), q.attempt, q.scheduled_at),
                ("retry", attempt + 1, 1_000),
                "{outcome} after attempt {attempt}"
            );
        }
        let got = (
            s.follow_up.map(|q| q.due_at - 2_000),
            s.notification.as_deref(),
        );
        assert_eq!(got, expected, "{outcome} after attempt {attempt}");
    }

    #[test]
    fn an_interrupted_webhook_delivery_is_not_queued_again() {
        let delivery = ActiveRun {
            feed: "inbox".into(),
            trigger: Trigger::Webhook.as_str().into(),
            ..run(1)
        };
        let policy = RetryPolicy {
            max_attempts: 3,
            base: Duration::seconds(60),
            max: Duration::seconds(100),
        };
        let now = Utc.timestamp_opt(2_000, 0).unwrap();
        for outcome in [INTERRUPTED, "retry"] {
            let s = settle(&delivery, outcome, "stopped", None, &policy, now);
            assert_eq!(s.follow_up, None, "{outcome}: its sender delivers it again");
            assert_eq!(s.active, delivery);
        }
    }

    #[test]
    fn unrun_runs_say_why_and_host_failures_are_retried() {
        let failure = Unrun::HostFailure("database error: disk I/O error".into());
        assert_eq!(failure.outcome(), "retry");
        assert_eq!(
            failure.message(),
            "host failure: database error: disk I/O error"
        );
        assert_eq!(
            failure.report()["end"],
            serde_json::json!({"end": "host-failure", "message": "database error: disk I/O error"})
        );
        let cannot = Unrun::CannotRun("component changed on disk".into());
        assert_eq!(
            (cannot.outcome(), cannot.message().as_str()),
            ("error", "cannot run: component changed on disk")
        );
        let stopped = Unrun::Interrupted("interrupted: the host stopped".into());
        assert_eq!(stopped.outcome(), INTERRUPTED);
        assert_eq!(stopped.report()["end"], "interrupted");
    }

    #[test]
    fn outcomes_settle_to_a_retry_a_notification_or_nothing() {
        check(1, "ok", None, (None, None));
        check(1, "info", Some(30), (None, None));
        check(1, "error", None, (None, Some("shop down")));
        check(3, "error", None, (None, Some("shop down")));
        // Backoff doubles from the base, capped at the policy's max.
        check(1, "retry", None, (Some(60), None));
        check(2, "retry", None, (Some(100), None));
        check(1, INTERRUPTED, None, (Some(60), None));
        // The guest's own delay wins, clamped to [1 s, 24 h].
        check(1, "retry", Some(3600), (Some(3600), None));
        check(1, "retry", Some(0), (Some(1), None));
        check(1, "retry", Some(u32::MAX), (Some(86_400), None));
        // The last attempt gives up with a notification saying so.
        check(
            3,
            "retry",
            None,
            (None, Some("gave up after 3 attempts: shop down")),
        );
        check(
            u32::MAX,
            INTERRUPTED,
            None,
            (None, Some("gave up after 4294967295 attempts: shop down")),
        );
    }
}
