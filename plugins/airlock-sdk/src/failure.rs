//! A run that stops early, in the host's severities.

use crate::bindings::Outcome;
use crate::bindings::airlock::connector::types::Status;

/// Why a run stops before its work is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A passing condition (the third party is down or rate-limits us): the
    /// host tries again, after `after` seconds if given.
    Retry {
        /// One line for the operator.
        message: String,
        /// Seconds to wait, when the third party said (`Retry-After`).
        after: Option<u32>,
    },
    /// Needs a person (bad credentials, data the third party refuses).
    Error(String),
}

impl Failure {
    /// A retry with the host's own backoff.
    pub fn retry(message: impl Into<String>) -> Self {
        Failure::Retry {
            message: message.into(),
            after: None,
        }
    }

    /// An error for a person to look at.
    pub fn error(message: impl Into<String>) -> Self {
        Failure::Error(message.into())
    }

    /// The message, whatever the severity.
    pub fn message(&self) -> &str {
        match self {
            Failure::Retry { message, .. } | Failure::Error(message) => message,
        }
    }

    /// The same failure with `context: ` before its message.
    pub fn context(self, context: &str) -> Self {
        match self {
            Failure::Retry { message, after } => Failure::Retry {
                message: format!("{context}: {message}"),
                after,
            },
            Failure::Error(message) => Failure::Error(format!("{context}: {message}")),
        }
    }

    /// The run's outcome, with the items processed before it stopped.
    pub fn into_outcome(self, items: u32) -> Outcome {
        match self {
            Failure::Retry { message, after } => Outcome {
                status: Status::Retry,
                message,
                items,
                retry_after_seconds: after,
            },
            Failure::Error(message) => outcome(Status::Error, message, items),
        }
    }
}

/// An outcome without a retry delay.
pub fn outcome(status: Status, message: impl Into<String>, items: u32) -> Outcome {
    Outcome {
        status,
        message: message.into(),
        items,
        retry_after_seconds: None,
    }
}
