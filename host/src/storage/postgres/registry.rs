//! Tenants and installations on PostgreSQL: the same semantics as
//! SQLite's (`../installations.rs`), held to the same conformance suite.
//! JSON columns hold the same text SQLite's do.
//!
//! Removal deletes the installation's data as SQLite's does, its artifacts
//! included; the tenant's records, and the installation's acknowledgements
//! and annotations of them, stay (as on SQLite: they are the tenant's, and
//! the operator still sees a removed installation's annotations).
//!
//! Not yet here, with the concerns that bring their tables: removal's
//! refusal while a run is in progress (the work queue's `active_runs`) and
//! its deletion of the installation's queued runs, artifacts and state
//! history.

use std::path::Path;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::secrets::SealedSecret;
use crate::storage::{
    InstallationRow, Registry, ScheduleRow, Scope, StorageError, StoredSecret, TenantRow,
};

const INSTALLATION_COLUMNS: &str = "tenant, id, plugin_id, plugin_version, plugin_dir, \
     plugin_digest, config, approved_egress, mode, enabled, created_at, updated_at, removed_at, \
     plugin_store, approved_rules, revision, approved_data";

const SCHEDULE_COLUMNS: &str =
    "tenant, installation, feed, cron, time_zone, overridden, next_fire_at, due_at";

/// A schedule never planned yet is due at once (as SQLite's `UNPLANNED`).
const UNPLANNED: i64 = 0;

fn installation_from_row(r: &Row) -> InstallationRow {
    let json = |i: usize| -> String { r.get(i) };
    InstallationRow {
        tenant: r.get(0),
        id: r.get(1),
        plugin_id: r.get(2),
        plugin_version: r.get(3),
        plugin_dir: r.get(4),
        plugin_digest: r.get(5),
        config: serde_json::from_str(&json(6)).unwrap_or_default(),
        approved_egress: serde_json::from_str(&json(7)).unwrap_or_default(),
        mode: r.get(8),
        enabled: r.get(9),
        created_at: r.get(10),
        updated_at: r.get(11),
        removed_at: r.get(12),
        plugin_store: r.get(13),
        approved_rules: r
            .get::<_, Option<String>>(14)
            .map(|text| serde_json::from_str(&text).unwrap_or_default()),
        revision: r.get(15),
        approved_data: r
            .get::<_, Option<String>>(16)
            .map(|text| serde_json::from_str(&text).unwrap_or_default()),
    }
}

fn schedule_from_row(r: &Row) -> ScheduleRow {
    ScheduleRow {
        tenant: r.get(0),
        installation: r.get(1),
        feed: r.get(2),
        cron: r.get(3),
        time_zone: r.get(4),
        overridden: r.get(5),
        next_fire_at: r.get(6),
        due_at: r.get(7),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("maps and lists of strings serialise")
}

/// The refusal of a change planned against a revision that is no longer
/// current (SQLite's words).
fn changed_since(label: &str) -> StorageError {
    StorageError::Conflict(format!(
        "`{label}` changed since you started (another change was saved first); nothing saved: \
         look at it again and retry"
    ))
}

/// Inserts `row`, or replaces the installation with its key.
async fn write_installation(
    tx: &tokio_postgres::Transaction<'_>,
    row: &InstallationRow,
) -> Result<(), StorageError> {
    let config = to_json(&row.config);
    let egress = to_json(&row.approved_egress);
    let rules = row.approved_rules.as_ref().map(to_json);
    let data = row.approved_data.as_ref().map(to_json);
    let values: [&(dyn ToSql + Sync); 17] = [
        &row.tenant,
        &row.id,
        &row.plugin_id,
        &row.plugin_version,
        &row.plugin_dir,
        &row.plugin_digest,
        &config,
        &egress,
        &row.mode,
        &row.enabled,
        &row.created_at,
        &row.updated_at,
        &row.removed_at,
        &row.plugin_store,
        &rules,
        &row.revision,
        &data,
    ];
    tx.execute(
        &format!(
            "INSERT INTO installations ({INSTALLATION_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (tenant, id) DO UPDATE SET
                plugin_id = excluded.plugin_id, plugin_version = excluded.plugin_version,
                plugin_dir = excluded.plugin_dir, plugin_digest = excluded.plugin_digest,
                config = excluded.config, approved_egress = excluded.approved_egress,
                mode = excluded.mode, enabled = excluded.enabled,
                created_at = excluded.created_at, updated_at = excluded.updated_at,
                removed_at = excluded.removed_at, plugin_store = excluded.plugin_store,
                approved_rules = excluded.approved_rules, revision = excluded.revision,
                approved_data = excluded.approved_data"
        ),
        &values,
    )
    .await?;
    Ok(())
}

async fn replace_secrets(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: &str,
    id: &str,
    secrets: &[StoredSecret],
) -> Result<(), StorageError> {
    tx.execute(
        "DELETE FROM secrets WHERE tenant = $1 AND installation = $2",
        &[&tenant, &id],
    )
    .await?;
    for s in secrets {
        tx.execute(
            "INSERT INTO secrets (tenant, installation, key, key_id, nonce, ciphertext)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &tenant,
                &id,
                &s.key,
                &s.sealed.key_id,
                &s.sealed.nonce,
                &s.sealed.ciphertext,
            ],
        )
        .await?;
    }
    Ok(())
}

async fn replace_schedules(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: &str,
    id: &str,
    schedules: &[ScheduleRow],
) -> Result<(), StorageError> {
    tx.execute(
        "DELETE FROM schedules WHERE tenant = $1 AND installation = $2",
        &[&tenant, &id],
    )
    .await?;
    for s in schedules {
        tx.execute(
            &format!(
                "INSERT INTO schedules ({SCHEDULE_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            &[
                &tenant,
                &id,
                &s.feed,
                &s.cron,
                &s.time_zone,
                &s.overridden,
                &s.next_fire_at,
                &s.due_at.unwrap_or(UNPLANNED),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The revision of installation `tenant/id`, which must exist and not be
/// removed; its row stays locked until the transaction ends.
async fn live_revision(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: &str,
    id: &str,
) -> Result<i64, StorageError> {
    tx.query_opt(
        "SELECT revision FROM installations
         WHERE tenant = $1 AND id = $2 AND removed_at IS NULL FOR UPDATE",
        &[&tenant, &id],
    )
    .await?
    .map(|r| r.get(0))
    .ok_or_else(|| StorageError::NotFound(format!("no installation `{tenant}/{id}`")))
}

#[async_trait::async_trait]
impl Registry for PgStore {
    async fn add_tenant(&self, tenant: TenantRow) -> Result<(), StorageError> {
        let client = self.client().await?;
        // One statement: of two nodes adding the same id, one inserts.
        let inserted = client
            .execute(
                "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
                &[&tenant.id, &tenant.name, &tenant.created_at],
            )
            .await?;
        if inserted == 1 {
            return Ok(());
        }
        let removed: Option<i64> = client
            .query_one(
                "SELECT removed_at FROM tenants WHERE id = $1",
                &[&tenant.id],
            )
            .await?
            .get(0);
        Err(StorageError::Conflict(match removed {
            None => format!("tenant `{}` already exists", tenant.id),
            Some(_) => format!(
                "tenant `{}` was removed; its run history and audit keep that id, so choose \
                 another",
                tenant.id
            ),
        }))
    }

    async fn tenants(&self) -> Result<Vec<TenantRow>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, name, created_at FROM tenants WHERE removed_at IS NULL ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| TenantRow {
                id: r.get(0),
                name: r.get(1),
                created_at: r.get(2),
            })
            .collect())
    }

    async fn tenant_exists(&self, id: &str) -> Result<bool, StorageError> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT 1 FROM tenants WHERE id = $1 AND removed_at IS NULL",
                &[&id],
            )
            .await?
            .is_some())
    }

    async fn remove_tenant(&self, id: &str) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Locks the tenant first: an installation added meanwhile waits.
        let found = tx
            .query_opt(
                "SELECT 1 FROM tenants WHERE id = $1 AND removed_at IS NULL FOR UPDATE",
                &[&id],
            )
            .await?;
        if found.is_none() {
            return Err(StorageError::NotFound(format!("no tenant `{id}`")));
        }
        let live: Vec<String> = tx
            .query(
                "SELECT id FROM installations WHERE tenant = $1 AND removed_at IS NULL ORDER BY id",
                &[&id],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !live.is_empty() {
            return Err(StorageError::Conflict(format!(
                "tenant `{id}` still has installations: {} (remove them first)",
                live.join(", ")
            )));
        }
        tx.execute(
            "UPDATE tenants SET removed_at = $2 WHERE id = $1",
            &[&id, &chrono::Utc::now().timestamp()],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_installation(
        &self,
        row: InstallationRow,
        secrets: Vec<StoredSecret>,
        schedules: Vec<ScheduleRow>,
    ) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The tenant row locked: it cannot be removed under this insert.
        let tenant_live = tx
            .query_opt(
                "SELECT 1 FROM tenants WHERE id = $1 AND removed_at IS NULL FOR SHARE",
                &[&row.tenant],
            )
            .await?;
        if tenant_live.is_none() {
            return Err(StorageError::NotFound(format!(
                "no tenant `{}`",
                row.tenant
            )));
        }
        let existing = tx
            .query_opt(
                "SELECT removed_at FROM installations WHERE tenant = $1 AND id = $2",
                &[&row.tenant, &row.id],
            )
            .await?;
        if let Some(existing) = existing {
            let removed: Option<i64> = existing.get(0);
            return Err(StorageError::Conflict(match removed {
                None => format!("installation `{}` already exists", row.label()),
                Some(_) => format!(
                    "installation `{}` was removed; its run history keeps that name, so choose \
                     another with --name",
                    row.label()
                ),
            }));
        }
        write_installation(&tx, &row).await?;
        replace_secrets(&tx, &row.tenant, &row.id, &secrets).await?;
        replace_schedules(&tx, &row.tenant, &row.id, &schedules).await?;
        // Two nodes inserting the same id: the second's commit fails on the
        // primary key, a conflict like the one above.
        tx.commit().await.map_err(|e| match e.code() {
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                StorageError::Conflict(format!("installation `{}` already exists", row.label()))
            }
            _ => e.into(),
        })?;
        Ok(())
    }

    async fn update_installation(
        &self,
        row: InstallationRow,
        secrets: Option<Vec<StoredSecret>>,
        schedules: Option<Vec<ScheduleRow>>,
    ) -> Result<i64, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let revision = live_revision(&tx, &row.tenant, &row.id).await?;
        if revision != row.revision {
            return Err(changed_since(&row.label()));
        }
        let next = InstallationRow {
            revision: revision + 1,
            ..row
        };
        write_installation(&tx, &next).await?;
        if let Some(secrets) = secrets {
            replace_secrets(&tx, &next.tenant, &next.id, &secrets).await?;
        }
        if let Some(schedules) = schedules {
            replace_schedules(&tx, &next.tenant, &next.id, &schedules).await?;
        }
        tx.commit().await?;
        Ok(next.revision)
    }

    async fn remove_installation(
        &self,
        tenant: &str,
        id: &str,
        revision: Option<i64>,
        now: i64,
    ) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let current = live_revision(&tx, tenant, id).await?;
        if revision.is_some_and(|r| r != current) {
            return Err(changed_since(&format!("{tenant}/{id}")));
        }
        // Locked as a claim would: a run claimed meanwhile waits, then
        // finds the installation removed.
        let running: Vec<String> = tx
            .query(
                "SELECT feed FROM active_runs WHERE tenant = $1 AND installation = $2
                 ORDER BY feed FOR UPDATE",
                &[&tenant, &id],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !running.is_empty() {
            // Its run would commit storage for a removed installation.
            return Err(StorageError::Conflict(format!(
                "`{tenant}/{id}` has a run in progress ({}); disable it, wait for the run to \
                 end, then remove it",
                running.join(", ")
            )));
        }
        tx.execute(
            "UPDATE installations SET removed_at = $3, updated_at = $3, enabled = false,
                config = '{}', approved_egress = '[]', approved_rules = '[]',
                revision = revision + 1
             WHERE tenant = $1 AND id = $2",
            &[&tenant, &id, &now],
        )
        .await?;
        for table in [
            "secrets",
            "kv",
            "schedules",
            "queue",
            "oauth_tokens",
            "oauth_pending",
            "webhook_secrets",
            "webhook_deliveries",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant = $1 AND installation = $2"),
                &[&tenant, &id],
            )
            .await?;
        }
        let scope = Scope {
            tenant: tenant.to_string(),
            installation: id.to_string(),
        };
        super::state_history::remove_in(&tx, &scope).await?;
        super::artifacts::remove_in(&tx, &scope).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn installation(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<InstallationRow>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {INSTALLATION_COLUMNS} FROM installations WHERE tenant = $1 AND id = $2"
            ))
            .await?;
        let row = client.query_opt(&statement, &[&tenant, &id]).await?;
        Ok(row.as_ref().map(installation_from_row))
    }

    async fn installations(
        &self,
        tenant: Option<&str>,
        include_removed: bool,
    ) -> Result<Vec<InstallationRow>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {INSTALLATION_COLUMNS} FROM installations
                     WHERE ($1::text IS NULL OR tenant = $1) AND ($2 OR removed_at IS NULL)
                     ORDER BY tenant, id"
                ),
                &[&tenant, &include_removed],
            )
            .await?;
        Ok(rows.iter().map(installation_from_row).collect())
    }

    async fn secrets(&self, tenant: &str, id: &str) -> Result<Vec<StoredSecret>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT key, key_id, nonce, ciphertext FROM secrets
                 WHERE tenant = $1 AND installation = $2 ORDER BY key",
                &[&tenant, &id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredSecret {
                key: r.get(0),
                sealed: SealedSecret {
                    key_id: r.get(1),
                    nonce: r.get(2),
                    ciphertext: r.get(3),
                },
            })
            .collect())
    }

    async fn schedules(&self, tenant: &str, id: &str) -> Result<Vec<ScheduleRow>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules
                     WHERE tenant = $1 AND installation = $2 ORDER BY feed"
                ),
                &[&tenant, &id],
            )
            .await?;
        Ok(rows.iter().map(schedule_from_row).collect())
    }

    /// The directory given at connect (`--data-dir`), which every node
    /// must see alike (a shared volume): the plugin store is there.
    fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }
}

impl PgStore {
    /// Schedules of enabled installations due at `now` (those never
    /// planned included), earliest first, at most `limit`.
    pub(super) async fn due_schedules_at(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<ScheduleRow>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT s.tenant, s.installation, s.feed, s.cron, s.time_zone, s.overridden,
                        s.next_fire_at, s.due_at
                 FROM schedules s
                 JOIN installations i ON i.tenant = s.tenant AND i.id = s.installation
                 WHERE s.due_at <= $1 AND i.enabled AND i.removed_at IS NULL
                 ORDER BY s.due_at, s.tenant, s.installation, s.feed LIMIT $2",
            )
            .await?;
        let rows = client.query(&statement, &[&now, &(limit as i64)]).await?;
        Ok(rows.iter().map(schedule_from_row).collect())
    }
}
