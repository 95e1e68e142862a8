//! PostgreSQL's run ledger ([`RunLedger`], [`History`]): a finished run's
//! record and every effect it has, committed in one transaction — and only
//! while the run's claim is still its own (see [`settle_in`]).

use deadpool_postgres::Transaction;

use super::PgStore;
use super::queue::{delete_claim, insert_queued};
use super::state_history::{INSTALLATION_LOCK_SEED, apply_in, attribute_checkpoints};
use crate::egress::HttpCall;
use crate::storage::audit::decision_columns;
use crate::storage::state_history::Attribution;
use crate::storage::{
    ActiveRun, AuditFilter, AuditRow, History, NotificationRow, RuleUsage, RunEffects, RunFilter,
    RunLedger, RunRow, RunSummary, Scope, StorageError,
};

const SUMMARY_COLUMNS: &str = "id, tenant, installation, plugin_id, plugin_version, feed, mode, \
     trigger, attempt, scheduled_at, started_at, ended_at, status, message";

const NOTIFICATION_COLUMNS: &str = "id, tenant, installation, feed, message, run_id, count, \
     first_at, last_at, acked_at, acked_by";

fn summary_from_row(r: &tokio_postgres::Row) -> RunSummary {
    RunSummary {
        id: r.get(0),
        tenant: r.get(1),
        installation: r.get(2),
        plugin_id: r.get(3),
        plugin_version: r.get(4),
        feed: r.get(5),
        mode: r.get(6),
        trigger: r.get(7),
        attempt: r.get::<_, i64>(8) as u32,
        scheduled_at: r.get(9),
        started_at: r.get(10),
        ended_at: r.get(11),
        status: r.get(12),
        message: r.get(13),
    }
}

fn notification_from_row(r: &tokio_postgres::Row) -> NotificationRow {
    NotificationRow {
        id: r.get(0),
        tenant: r.get(1),
        installation: r.get(2),
        feed: r.get(3),
        message: r.get(4),
        run_id: r.get(5),
        count: r.get::<_, i64>(6) as u32,
        first_at: r.get(7),
        last_at: r.get(8),
        acked_at: r.get(9),
        acked_by: r.get(10),
    }
}

/// Records `run` inside `tx`; returns its id.
async fn insert_run(tx: &Transaction<'_>, run: &RunRow) -> Result<i64, StorageError> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO runs (tenant, installation, plugin_id, plugin_version, plugin_digest,
                feed, mode, trigger, attempt, scheduled_at, started_at, ended_at, status,
                message, report)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             RETURNING id",
        )
        .await?;
    let row = tx
        .query_one(
            &insert,
            &[
                &run.tenant,
                &run.installation,
                &run.plugin_id,
                &run.plugin_version,
                &run.plugin_digest,
                &run.feed,
                &run.mode,
                &run.trigger,
                &i64::from(run.attempt),
                &run.scheduled_at,
                &run.started_at,
                &run.ended_at,
                &run.status,
                &run.message,
                &run.report,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Adds `calls` to the egress audit inside `tx`, attributed to `run`.
async fn insert_calls(
    tx: &Transaction<'_>,
    run: &RunRow,
    run_id: Option<i64>,
    calls: &[HttpCall],
) -> Result<(), StorageError> {
    if calls.is_empty() {
        return Ok(());
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO egress_audit (at_ms, run_id, tenant, installation, plugin_id,
                plugin_version, feed, method, scheme, host, port, path, remote_addr, decision,
                rule, service, reason, status, bytes, duration_ms, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                $17, $18, $19, $20, $21)",
        )
        .await?;
    for c in calls {
        let (decision, rule, service, reason) = decision_columns(&c.decision);
        tx.execute(
            &insert,
            &[
                &c.at_ms,
                &run_id,
                &run.tenant,
                &run.installation,
                &run.plugin_id,
                &run.plugin_version,
                &run.feed,
                &c.method,
                &c.scheme,
                &c.host,
                &c.port.map(i32::from),
                &c.path,
                &c.remote_addr.map(|a| a.to_string()),
                &decision,
                &rule,
                &service,
                &reason,
                &c.status.map(i32::from),
                &(c.response_bytes as i64),
                &(c.duration_ms as i64),
                &c.error,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Ends `run`'s claim inside `tx`: the fencing check. The claim leaves the
/// runs in progress only as it was made (the same trigger, attempt, fire and
/// start); if it is not there, its lease expired and another node recovered
/// the run, and the whole transaction is refused
/// ([`StorageError::LeaseLost`]): the caller's effects are never applied.
/// The delete takes the claim's row lock, so a recovery and a late commit
/// of one run serialise, and only the first of them finds the claim; a
/// recovery ends only a claim whose lease has expired.
async fn end_claim_in(
    tx: &Transaction<'_>,
    run: &ActiveRun,
    owner: &str,
) -> Result<(), StorageError> {
    // Its holder's claim, or one whose lease expired (a recovery): a live
    // claim of another node is never taken.
    let left = delete_claim(tx, run, owner, true).await?;
    if left != 1 {
        return Err(crate::storage::queue::claim_taken(run));
    }
    Ok(())
}

/// Raises a notification for `run`'s feed, or updates the feed's open one
/// (the unique index on open notifications makes it one statement).
async fn raise_in(
    tx: &Transaction<'_>,
    run: &ActiveRun,
    message: &str,
    run_id: Option<i64>,
    now: i64,
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO notifications (tenant, installation, feed, message, run_id, count,
            first_at, last_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $6)
         ON CONFLICT (tenant, installation, feed) WHERE acked_at IS NULL
         DO UPDATE SET message = excluded.message, run_id = excluded.run_id,
            count = notifications.count + 1, last_at = excluded.last_at",
        &[
            &run.tenant,
            &run.installation,
            &run.feed,
            &message,
            &run_id,
            &now,
        ],
    )
    .await?;
    Ok(())
}

/// Locks installation `scope` for a run's record or claim, in the order
/// every writer takes them: its row (`FOR KEY SHARE`, as a foreign key
/// would; removal holds it `FOR UPDATE`), then its advisory lock (see
/// `state_history.rs`), so no two transactions wait for each other in a
/// circle.
pub(super) async fn lock_for_run(tx: &Transaction<'_>, scope: &Scope) -> Result<(), StorageError> {
    lock_installations(tx, &[&scope.tenant], &[&scope.installation]).await
}

/// [`lock_for_run`] for several installations (`tenants[i]`,
/// `installations[i]`) at once, in key order: all their rows, then all
/// their advisory locks.
pub(super) async fn lock_installations(
    tx: &Transaction<'_>,
    tenants: &[&str],
    installations: &[&str],
) -> Result<(), StorageError> {
    lock_installation_rows(tx, tenants, installations).await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(k.tenant || '/' || k.id, $3))
         FROM unnest($1::text[], $2::text[]) AS k (tenant, id)",
        &[&tenants, &installations, &INSTALLATION_LOCK_SEED],
    )
    .await?;
    Ok(())
}

/// The first half of [`lock_installations`]: the installations' rows,
/// `FOR KEY SHARE` in key order (what queuing a run's foreign key takes).
pub(super) async fn lock_installation_rows(
    tx: &Transaction<'_>,
    tenants: &[&str],
    installations: &[&str],
) -> Result<(), StorageError> {
    tx.execute(
        "SELECT 1 FROM installations i
         JOIN unnest($1::text[], $2::text[]) AS k (tenant, id)
           ON i.tenant = k.tenant AND i.id = k.id
         ORDER BY i.tenant, i.id FOR KEY SHARE OF i",
        &[&tenants, &installations],
    )
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl RunLedger for PgStore {
    async fn finish_run(&self, effects: RunEffects) -> Result<i64, StorageError> {
        let RunEffects {
            run,
            kv_changes,
            records,
            artifacts,
            http_calls,
            settlement,
            settled_at,
            webhook_delivery,
            kv_history,
        } = &effects;
        let scope = Scope {
            tenant: run.tenant.clone(),
            installation: run.installation.clone(),
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_for_run(&tx, &scope).await?;
        // The fence first: a run whose claim is gone writes nothing, and
        // holds the claim's lock for the rest of the transaction.
        if let Some(s) = settlement {
            // Refused or not, this process holds the claim no more.
            self.leases.forget(&s.active);
            end_claim_in(&tx, &s.active, &self.leases.owner).await?;
        }
        if !records.is_empty() {
            super::records::apply_in(&tx, &scope, records, *settled_at).await?;
        }
        let run_id = insert_run(&tx, run).await?;
        let by = Attribution {
            run_id: Some(run_id),
            ..Attribution::default()
        };
        apply_in(&tx, &scope, kv_changes, &by, kv_history.keep_versions()).await?;
        if let Some(token) = kv_history.checkpoint {
            attribute_checkpoints(&tx, &scope, token, run_id).await?;
        }
        if !artifacts.is_empty() {
            super::artifacts::apply_in(&tx, &scope, artifacts, run_id, *settled_at).await?;
        }
        insert_calls(&tx, run, Some(run_id), http_calls).await?;
        if let Some(receipt) = webhook_delivery {
            super::webhooks::record_in(&tx, &scope, receipt, run_id).await?;
        }
        if let Some(s) = settlement {
            if let Some(q) = &s.follow_up {
                insert_queued(&tx, q).await?;
            }
            if let Some(message) = &s.notification {
                raise_in(&tx, &s.active, message, Some(run_id), *settled_at).await?;
            }
        }
        tx.commit().await?;
        Ok(run_id)
    }

    async fn record_calls(&self, who: RunRow, calls: Vec<HttpCall>) -> Result<(), StorageError> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        insert_calls(&tx, &who, None, &calls).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn last_success(&self, scope: &Scope, feed: &str) -> Result<Option<i64>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT MAX(ended_at) FROM runs
                 WHERE tenant = $1 AND installation = $2 AND feed = $3
                   AND status IN ('ok', 'info')",
            )
            .await?;
        let row = client
            .query_one(&statement, &[&scope.tenant, &scope.installation, &feed])
            .await?;
        Ok(row.get(0))
    }
}

#[async_trait::async_trait]
impl History for PgStore {
    async fn runs(&self, filter: RunFilter) -> Result<Vec<RunSummary>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {SUMMARY_COLUMNS} FROM runs
                     WHERE ($1::text IS NULL OR tenant = $1)
                       AND ($2::text IS NULL OR installation = $2)
                       AND ($3::text IS NULL OR feed = $3) AND ($4::text IS NULL OR status = $4)
                       AND ($5::bigint IS NULL OR started_at >= $5)
                     ORDER BY id DESC LIMIT $6"
                ),
                &[
                    &filter.tenant,
                    &filter.installation,
                    &filter.feed,
                    &filter.status,
                    &filter.since,
                    &(filter.limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await?;
        Ok(rows.iter().map(summary_from_row).collect())
    }

    async fn run(&self, id: i64) -> Result<Option<(RunSummary, String)>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {SUMMARY_COLUMNS}, report FROM runs WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.map(|r| (summary_from_row(&r), r.get(14))))
    }

    async fn audit_log(&self, filter: AuditFilter) -> Result<Vec<AuditRow>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT at_ms, run_id, tenant, installation, plugin_id, plugin_version, feed,
                        method, scheme, host, port, path, remote_addr, decision, rule, service,
                        reason, status, bytes, duration_ms, error
                 FROM egress_audit
                 WHERE (NOT $1 OR decision = 'denied')
                   AND ($2::bigint IS NULL OR at_ms >= $2)
                   AND ($3::text IS NULL OR tenant = $3)
                   AND ($4::text IS NULL OR plugin_id = $4)
                 ORDER BY at_ms DESC, id DESC LIMIT $5",
                &[
                    &filter.denied_only,
                    &filter.since_ms,
                    &filter.tenant,
                    &filter.plugin,
                    &(filter.limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AuditRow {
                at_ms: r.get(0),
                run_id: r.get(1),
                tenant: r.get(2),
                installation: r.get(3),
                plugin_id: r.get(4),
                plugin_version: r.get(5),
                feed: r.get(6),
                method: r.get(7),
                scheme: r.get(8),
                host: r.get(9),
                port: r.get::<_, Option<i32>>(10).map(|p| p as u16),
                path: r.get(11),
                remote_addr: r.get(12),
                decision: r.get(13),
                rule: r.get(14),
                service: r.get(15),
                reason: r.get(16),
                status: r.get::<_, Option<i32>>(17).map(|s| s as u16),
                bytes: r.get::<_, i64>(18) as u64,
                duration_ms: r.get::<_, i64>(19) as u64,
                error: r.get(20),
            })
            .collect())
    }

    async fn rule_usage(
        &self,
        plugin_id: &str,
        tenant: Option<&str>,
    ) -> Result<Vec<RuleUsage>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT tenant, installation, decision, COALESCE(rule, decision) AS rule_text,
                        COUNT(*), MAX(at_ms), MAX(service)
                 FROM egress_audit
                 WHERE plugin_id = $1 AND ($2::text IS NULL OR tenant = $2)
                 GROUP BY tenant, installation, decision, COALESCE(rule, decision)
                 ORDER BY tenant, installation, decision, rule_text COLLATE \"C\"",
                &[&plugin_id, &tenant],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| RuleUsage {
                tenant: r.get(0),
                installation: r.get(1),
                decision: r.get(2),
                rule: r.get(3),
                count: r.get::<_, i64>(4) as u64,
                last_ms: r.get(5),
                service: r.get(6),
            })
            .collect())
    }

    async fn notifications(
        &self,
        tenant: Option<&str>,
        include_acked: bool,
    ) -> Result<Vec<NotificationRow>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM notifications
                     WHERE ($1::text IS NULL OR tenant = $1) AND ($2 OR acked_at IS NULL)
                     ORDER BY last_at DESC, id DESC"
                ),
                &[&tenant, &include_acked],
            )
            .await?;
        Ok(rows.iter().map(notification_from_row).collect())
    }

    async fn ack_notification(&self, id: i64, by: &str, now: i64) -> Result<(), StorageError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE notifications SET acked_at = $2, acked_by = $3
                 WHERE id = $1 AND acked_at IS NULL",
                &[&id, &now, &by],
            )
            .await?;
        if changed == 1 {
            return Ok(());
        }
        let exists = client
            .query_opt("SELECT 1 FROM notifications WHERE id = $1", &[&id])
            .await?
            .is_some();
        Err(if exists {
            StorageError::Conflict(format!("notification #{id} is already acknowledged"))
        } else {
            StorageError::NotFound(format!("no notification #{id}"))
        })
    }
}
