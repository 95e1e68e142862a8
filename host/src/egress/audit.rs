//! The audit record of one request or redirect hop: what was decided and,
//! if it was sent, what came of it. Never holds query strings, headers or
//! bodies; the path and any text are redacted with the installation's
//! secrets before the record is stored or printed ([`HttpCall::redacted`]).

use std::net::SocketAddr;

use serde::Serialize;

use super::policy::{Denial, DenialRule, Grant};
use crate::config::Redactor;

/// What was decided about one request or redirect hop.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Allowed by a rule and sent.
    Allowed {
        /// The rule, as text.
        rule: String,
        /// The rule's service.
        service: String,
    },
    /// Refused by the policy; nothing sent.
    Denied {
        /// The rule that refused.
        rule: DenialRule,
        /// Why.
        reason: String,
    },
    /// Allowed, but not sent because the run is in test mode.
    Suppressed,
    /// Malformed request; nothing sent.
    Invalid {
        /// What was wrong.
        reason: String,
    },
}

impl Decision {
    /// The decision to allow under `grant`'s rule.
    pub(crate) fn allowed(grant: &Grant) -> Self {
        Self::Allowed {
            rule: grant.rule.to_string(),
            service: grant.rule.service.clone(),
        }
    }

    /// The decision to refuse for `denial`.
    pub(crate) fn denied(denial: &Denial) -> Self {
        Self::Denied {
            rule: denial.rule,
            reason: denial.reason.clone(),
        }
    }

    /// Its kind, as the audit's `decision` field names it: `allowed`,
    /// `denied`, `suppressed` or `invalid`.
    pub fn verdict(&self) -> &'static str {
        match self {
            Self::Allowed { .. } => "allowed",
            Self::Denied { .. } => "denied",
            Self::Suppressed => "suppressed",
            Self::Invalid { .. } => "invalid",
        }
    }
}

/// One audited request (or redirect hop). Never holds query strings, headers
/// or bodies: those carry secrets.
#[derive(Debug, Clone, Serialize)]
pub struct HttpCall {
    /// Method.
    pub method: String,
    /// Scheme, when the URL parsed.
    pub scheme: Option<String>,
    /// Normalised host, or the raw URL's host part when it did not parse.
    pub host: String,
    /// Port, when known.
    pub port: Option<u16>,
    /// Path only.
    pub path: String,
    /// The decision.
    #[serde(flatten)]
    pub decision: Decision,
    /// The address actually connected to.
    pub remote_addr: Option<SocketAddr>,
    /// Response status.
    pub status: Option<u16>,
    /// Response body bytes read.
    pub response_bytes: usize,
    /// Transport error, if the request was sent and failed.
    pub error: Option<String>,
    /// Time from decision to full response, in milliseconds.
    pub duration_ms: u64,
    /// When the decision was taken, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

impl HttpCall {
    /// The record of a request for `url` (only its scheme, host, port and
    /// path are kept).
    pub(crate) fn new(method: &str, url: &str, decision: Decision) -> Self {
        let parsed = url::Url::parse(url).ok();
        Self {
            method: method.to_string(),
            scheme: parsed.as_ref().map(|u| u.scheme().to_string()),
            host: parsed
                .as_ref()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default(),
            port: parsed.as_ref().and_then(url::Url::port_or_known_default),
            path: parsed
                .as_ref()
                .map(|u| u.path().to_string())
                .unwrap_or_default(),
            decision,
            remote_addr: None,
            status: None,
            response_bytes: 0,
            error: None,
            duration_ms: 0,
            at_ms: chrono::Utc::now().timestamp_millis(),
        }
    }

    /// The record with the secrets of `redactor` removed from everything a
    /// guest or a third party chose: the path (a redirect can put a secret
    /// there), the host, the reasons and the error.
    pub fn redacted(mut self, redactor: &Redactor) -> Self {
        if redactor.is_empty() {
            return self;
        }
        self.path = redactor.redact(&self.path);
        self.host = redactor.redact(&self.host);
        self.error = self.error.map(|e| redactor.redact(&e));
        match &mut self.decision {
            Decision::Denied { reason, .. } | Decision::Invalid { reason } => {
                *reason = redactor.redact(reason);
            }
            Decision::Allowed { .. } | Decision::Suppressed => {}
        }
        self
    }
}
