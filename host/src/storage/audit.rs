//! The egress audit trail: every decision about a guest's HTTP request (or
//! redirect hop), allowed or denied, with the run it belongs to. Never holds
//! query strings, headers or bodies.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::{RunRow, SqliteStore, StorageError};
use crate::egress::{Decision, HttpCall};

/// One audited decision, as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    /// When, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The run.
    pub run_id: Option<i64>,
    /// Tenant.
    pub tenant: String,
    /// Installation.
    pub installation: String,
    /// Plugin id.
    pub plugin_id: String,
    /// Plugin version.
    pub plugin_version: String,
    /// Feed.
    pub feed: String,
    /// Method.
    pub method: String,
    /// Scheme.
    pub scheme: Option<String>,
    /// Normalised host.
    pub host: String,
    /// Port.
    pub port: Option<u16>,
    /// Path (no query).
    pub path: String,
    /// The address connected to.
    pub remote_addr: Option<String>,
    /// `allowed`, `denied`, `suppressed` or `invalid`.
    pub decision: String,
    /// For allowed: the rule that matched; for denied: the rule that refused.
    pub rule: Option<String>,
    /// The matching rule's service.
    pub service: Option<String>,
    /// Why it was refused.
    pub reason: Option<String>,
    /// Response status.
    pub status: Option<u16>,
    /// Response bytes.
    pub bytes: u64,
    /// Duration.
    pub duration_ms: u64,
    /// Transport error.
    pub error: Option<String>,
}

/// Which audit rows to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only denials.
    pub denied_only: bool,
    /// Only at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this plugin id.
    pub plugin: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// How often one rule (or denial) was hit by one installation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleUsage {
    /// Tenant.
    pub tenant: String,
    /// Installation.
    pub installation: String,
    /// `allowed`, `denied`, `suppressed` or `invalid`.
    pub decision: String,
    /// The rule text (matched or refusing).
    pub rule: String,
    /// The matched rule's service, for allowed requests.
    pub service: Option<String>,
    /// Count.
    pub count: u64,
    /// Latest, ms since the epoch.
    pub last_ms: i64,
}

pub(super) fn decision_columns(
    d: &Decision,
) -> (&'static str, Option<String>, Option<String>, Option<String>) {
    match d {
        Decision::Allowed { rule, service } => {
            ("allowed", Some(rule.clone()), Some(service.clone()), None)
        }
        Decision::Denied { rule, reason } => (
            "denied",
            Some(rule.as_str().to_string()),
            None,
            Some(reason.clone()),
        ),
        Decision::Suppressed => ("suppressed", None, None, Some("test mode".to_string())),
        Decision::Invalid { reason } => ("invalid", None, None, Some(reason.clone())),
    }
}

pub(super) fn insert_calls(
    tx: &Connection,
    run: &RunRow,
    run_id: Option<i64>,
    calls: &[HttpCall],
) -> Result<(), StorageError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO egress_audit (at_ms, run_id, tenant, installation, plugin_id, plugin_version,
            feed, method, scheme, host, port, path, remote_addr, decision, rule, service, reason,
            status, bytes, duration_ms, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21)",
    )?;
    for c in calls {
        let (decision, rule, service, reason) = decision_columns(&c.decision);
        stmt.execute(params![
            c.at_ms,
            run_id,
            run.tenant,
            run.installation,
            run.plugin_id,
            run.plugin_version,
            run.feed,
            c.method,
            c.scheme,
            c.host,
            c.port,
            c.path,
            c.remote_addr.map(|a| a.to_string()),
            decision,
            rule,
            service,
            reason,
            c.status,
            c.response_bytes as i64,
            c.duration_ms as i64,
            c.error,
        ])?;
    }
    Ok(())
}

impl SqliteStore {
    /// Audit rows matching `filter`, newest first.
    pub fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT at_ms, run_id, tenant, installation, plugin_id, plugin_version, feed, method,
                    scheme, host, port, path, remote_addr, decision, rule, service, reason,
                    status, bytes, duration_ms, error
             FROM egress_audit
             WHERE (?1 = 0 OR decision = 'denied')
               AND (?2 IS NULL OR at_ms >= ?2)
               AND (?3 IS NULL OR tenant = ?3)
               AND (?4 IS NULL OR plugin_id = ?4)
             ORDER BY at_ms DESC, id DESC LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![
                filter.denied_only,
                filter.since_ms,
                filter.tenant,
                filter.plugin,
                filter.limit as i64
            ],
            |r| {
                Ok(AuditRow {
                    at_ms: r.get(0)?,
                    run_id: r.get(1)?,
                    tenant: r.get(2)?,
                    installation: r.get(3)?,
                    plugin_id: r.get(4)?,
                    plugin_version: r.get(5)?,
                    feed: r.get(6)?,
                    method: r.get(7)?,
                    scheme: r.get(8)?,
                    host: r.get(9)?,
                    port: r.get(10)?,
                    path: r.get(11)?,
                    remote_addr: r.get(12)?,
                    decision: r.get(13)?,
                    rule: r.get(14)?,
                    service: r.get(15)?,
                    reason: r.get(16)?,
                    status: r.get(17)?,
                    bytes: r.get::<_, i64>(18)? as u64,
                    duration_ms: r.get::<_, i64>(19)? as u64,
                    error: r.get(20)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Per installation of `plugin_id` (optionally one tenant's): how often
    /// each rule allowed or refused a request, and when last.
    pub fn rule_usage(
        &self,
        plugin_id: &str,
        tenant: Option<&str>,
    ) -> Result<Vec<RuleUsage>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT tenant, installation, decision, COALESCE(rule, decision), COUNT(*), MAX(at_ms),
                    MAX(service)
             FROM egress_audit
             WHERE plugin_id = ?1 AND (?2 IS NULL OR tenant = ?2)
             GROUP BY tenant, installation, decision, COALESCE(rule, decision)
             ORDER BY tenant, installation, decision, 4",
        )?;
        let rows = stmt.query_map(params![plugin_id, tenant], |r| {
            Ok(RuleUsage {
                tenant: r.get(0)?,
                installation: r.get(1)?,
                decision: r.get(2)?,
                rule: r.get(3)?,
                count: r.get::<_, i64>(4)? as u64,
                last_ms: r.get(5)?,
                service: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
