//! Tenants, their installations, the installations' sealed secrets and their
//! per-feed schedules. Removing an installation deletes its config, secrets,
//! storage, schedules and queued runs but keeps its row as a tombstone, so run
//! history keeps pointing at a stable identity and the name is not reused;
//! a removed tenant is kept as a tombstone for the same reason.
//!
//! Every change to an installation is a compare-and-set on its `revision`:
//! the caller says which revision it read (and planned against), and the
//! change is refused if another one was saved in between.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;

use super::{Scope, SqliteStore, StorageError};
use crate::egress::ApprovedRule;
use crate::manifest::DataSection;
use crate::secrets::SealedSecret;

/// A tenant: one merchant on the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRow {
    /// Stable id, used in every command.
    pub id: String,
    /// Display name.
    pub name: String,
    /// When it was added (Unix seconds).
    pub created_at: i64,
}

/// An installation as stored: a plugin version enabled for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallationRow {
    /// The tenant.
    pub tenant: String,
    /// Its id within the tenant.
    pub id: String,
    /// The plugin's id.
    pub plugin_id: String,
    /// The plugin's version.
    pub plugin_version: String,
    /// The plugin directory it was installed from (for messages; runs read
    /// the plugin store entry, or this directory for installations made
    /// before the plugin store, which have none).
    pub plugin_dir: String,
    /// The component's sha256 at install; a changed file is refused.
    pub plugin_digest: String,
    /// The plugin store entry (digest of manifest and component) it runs;
    /// none for an installation made before the plugin store.
    pub plugin_store: Option<String>,
    /// Non-secret config values (secrets are in [`StoredSecret`]s).
    pub config: BTreeMap<String, String>,
    /// The egress rules the operator saw and approved, as text.
    pub approved_egress: Vec<String>,
    /// The same rules as runs enforce them; none for an installation made
    /// before they were stored (its runs get the rules its manifest grants
    /// that are in `approved_egress`, never more).
    pub approved_rules: Option<Vec<ApprovedRule>>,
    /// The record collections the operator approved it to read and write;
    /// none for an installation made before records existed, whose runs
    /// may use none.
    pub approved_data: Option<DataSection>,
    /// `test` or `live`.
    pub mode: String,
    /// Whether its schedules run.
    pub enabled: bool,
    /// When it was installed (Unix seconds).
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
    /// When it was removed; removed installations are tombstones.
    pub removed_at: Option<i64>,
    /// Bumped by every stored change: a change planned against an older
    /// revision is refused.
    pub revision: i64,
}

impl InstallationRow {
    /// `tenant/id`, as commands name it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.tenant, self.id)
    }
}

/// One sealed secret of an installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    /// The config key.
    pub key: String,
    /// The value, encrypted.
    pub sealed: SealedSecret,
}

/// The schedule of one feed of one installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleRow {
    /// The tenant.
    pub tenant: String,
    /// The installation.
    pub installation: String,
    /// The feed.
    pub feed: String,
    /// Cron expression with seconds.
    pub cron: String,
    /// IANA time zone the expression is read in.
    pub time_zone: String,
    /// Whether the operator overrode the manifest's default.
    pub overridden: bool,
    /// The cron fire the schedule waits for (Unix seconds); none until planned.
    pub next_fire_at: Option<i64>,
    /// `next_fire_at` plus the installation's jitter: when the run is queued.
    /// None (stored as 0: due at once) until the scheduler plans it;
    /// [`NEVER`] once the expression has no further fires.
    pub due_at: Option<i64>,
}

/// `due_at` of a schedule whose expression has no further fires.
pub const NEVER: i64 = i64::MAX;

/// `due_at` stored for a schedule not planned yet (`next_fire_at` is
/// null): due at once, so the scheduler plans it at its next tick, and the
/// due-time index serves the query.
const UNPLANNED: i64 = 0;

const INSTALLATION_COLUMNS: &str = "tenant, id, plugin_id, plugin_version, plugin_dir, \
     plugin_digest, config, approved_egress, mode, enabled, created_at, updated_at, removed_at, \
     plugin_store, approved_rules, revision, approved_data";

fn installation_from_row(r: &Row<'_>) -> rusqlite::Result<InstallationRow> {
    let json = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    Ok(InstallationRow {
        tenant: r.get(0)?,
        id: r.get(1)?,
        plugin_id: r.get(2)?,
        plugin_version: r.get(3)?,
        plugin_dir: r.get(4)?,
        plugin_digest: r.get(5)?,
        config: serde_json::from_str(&json(6)?).unwrap_or_default(),
        approved_egress: serde_json::from_str(&json(7)?).unwrap_or_default(),
        mode: r.get(8)?,
        enabled: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        removed_at: r.get(12)?,
        plugin_store: r.get(13)?,
        approved_rules: r
            .get::<_, Option<String>>(14)?
            .map(|text| serde_json::from_str(&text).unwrap_or_default()),
        revision: r.get(15)?,
        approved_data: r
            .get::<_, Option<String>>(16)?
            .map(|text| serde_json::from_str(&text).unwrap_or_default()),
    })
}

fn schedule_from_row(r: &Row<'_>) -> rusqlite::Result<ScheduleRow> {
    Ok(ScheduleRow {
        tenant: r.get(0)?,
        installation: r.get(1)?,
        feed: r.get(2)?,
        cron: r.get(3)?,
        time_zone: r.get(4)?,
        overridden: r.get(5)?,
        next_fire_at: r.get(6)?,
        due_at: r.get(7)?,
    })
}

const SCHEDULE_COLUMNS: &str =
    "s.tenant, s.installation, s.feed, s.cron, s.time_zone, s.overridden, s.next_fire_at, s.due_at";

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("maps and lists of strings serialise")
}

fn replace_secrets(
    tx: &Transaction<'_>,
    tenant: &str,
    id: &str,
    secrets: &[StoredSecret],
) -> Result<(), StorageError> {
    tx.execute(
        "DELETE FROM secrets WHERE tenant = ?1 AND installation = ?2",
        params![tenant, id],
    )?;
    for s in secrets {
        tx.execute(
            "INSERT INTO secrets (tenant, installation, key, key_id, nonce, ciphertext)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                tenant,
                id,
                s.key,
                s.sealed.key_id,
                s.sealed.nonce,
                s.sealed.ciphertext
            ],
        )?;
    }
    Ok(())
}

fn replace_schedules(
    tx: &Transaction<'_>,
    tenant: &str,
    id: &str,
    schedules: &[ScheduleRow],
) -> Result<(), StorageError> {
    tx.execute(
        "DELETE FROM schedules WHERE tenant = ?1 AND installation = ?2",
        params![tenant, id],
    )?;
    for s in schedules {
        tx.execute(
            "INSERT INTO schedules (tenant, installation, feed, cron, time_zone, overridden,
                next_fire_at, due_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                tenant,
                id,
                s.feed,
                s.cron,
                s.time_zone,
                s.overridden,
                s.next_fire_at,
                s.due_at.unwrap_or(UNPLANNED)
            ],
        )?;
    }
    Ok(())
}

/// The revision of installation `tenant/id`, which must exist and not be
/// removed.
fn live_revision(tx: &Transaction<'_>, tenant: &str, id: &str) -> Result<i64, StorageError> {
    tx.query_row(
        "SELECT revision FROM installations WHERE tenant = ?1 AND id = ?2 AND removed_at IS NULL",
        params![tenant, id],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StorageError::NotFound(format!("no installation `{tenant}/{id}`")))
}

/// The refusal of a change planned against a revision that is no longer
/// current.
fn changed_since(label: &str) -> StorageError {
    StorageError::Conflict(format!(
        "`{label}` changed since you started (another change was saved first); nothing saved: \
         look at it again and retry"
    ))
}

/// Whether tenant `id` exists and is not removed, read in `conn` (inside
/// the caller's transaction).
pub(super) fn tenant_exists_in(conn: &Connection, id: &str) -> Result<bool, StorageError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM tenants WHERE id = ?1 AND removed_at IS NULL",
            [id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn write_installation(conn: &Connection, row: &InstallationRow) -> Result<(), StorageError> {
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO installations ({INSTALLATION_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                ?17)"
        ),
        params![
            row.tenant,
            row.id,
            row.plugin_id,
            row.plugin_version,
            row.plugin_dir,
            row.plugin_digest,
            to_json(&row.config),
            to_json(&row.approved_egress),
            row.mode,
            row.enabled,
            row.created_at,
            row.updated_at,
            row.removed_at,
            row.plugin_store,
            row.approved_rules.as_ref().map(to_json),
            row.revision,
            row.approved_data.as_ref().map(to_json)
        ],
    )?;
    Ok(())
}

impl SqliteStore {
    /// Adds a tenant; a tenant with that id must never have existed (a
    /// removed tenant's id stays taken: its runs, audit and installation
    /// tombstones would be inherited).
    pub fn add_tenant(&self, tenant: &TenantRow) -> Result<(), StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let existing: Option<Option<i64>> = tx
            .query_row(
                "SELECT removed_at FROM tenants WHERE id = ?1",
                [&tenant.id],
                |r| r.get(0),
            )
            .optional()?;
        match existing {
            Some(None) => Err(StorageError::Conflict(format!(
                "tenant `{}` already exists",
                tenant.id
            ))),
            Some(Some(_)) => Err(StorageError::Conflict(format!(
                "tenant `{}` was removed; its run history and audit keep that id, so choose \
                 another",
                tenant.id
            ))),
            None => {
                tx.execute(
                    "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                    params![tenant.id, tenant.name, tenant.created_at],
                )?;
                tx.commit()?;
                Ok(())
            }
        }
    }

    /// Every tenant, by id.
    pub fn tenants(&self) -> Result<Vec<TenantRow>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, created_at FROM tenants WHERE removed_at IS NULL ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TenantRow {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether tenant `id` exists (and was not removed).
    pub fn tenant_exists(&self, id: &str) -> Result<bool, StorageError> {
        tenant_exists_in(&self.conn(), id)
    }

    /// Removes tenant `id`, keeping it as a tombstone so its id is never
    /// reused. Refused while it has installations that are not removed:
    /// remove those first (their run history is kept).
    pub fn remove_tenant(&self, id: &str) -> Result<(), StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let live: Vec<String> = tx
            .prepare("SELECT id FROM installations WHERE tenant = ?1 AND removed_at IS NULL")?
            .query_map([id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if !live.is_empty() {
            return Err(StorageError::Conflict(format!(
                "tenant `{id}` still has installations: {} (remove them first)",
                live.join(", ")
            )));
        }
        let changed = tx.execute(
            "UPDATE tenants SET removed_at = ?2 WHERE id = ?1 AND removed_at IS NULL",
            params![id, chrono::Utc::now().timestamp()],
        )?;
        if changed == 0 {
            return Err(StorageError::NotFound(format!("no tenant `{id}`")));
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores a new installation with its sealed secrets and schedules, all or
    /// nothing. The id must be new within the tenant (removed ones included).
    pub fn insert_installation(
        &self,
        row: &InstallationRow,
        secrets: &[StoredSecret],
        schedules: &[ScheduleRow],
    ) -> Result<(), StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let existing: Option<Option<i64>> = tx
            .query_row(
                "SELECT removed_at FROM installations WHERE tenant = ?1 AND id = ?2",
                params![row.tenant, row.id],
                |r| r.get(0),
            )
            .optional()?;
        match existing {
            Some(None) => {
                return Err(StorageError::Conflict(format!(
                    "installation `{}` already exists",
                    row.label()
                )));
            }
            Some(Some(_)) => {
                return Err(StorageError::Conflict(format!(
                    "installation `{}` was removed; its run history keeps that name, so choose \
                     another with --name",
                    row.label()
                )));
            }
            None => {}
        }
        write_installation(&tx, row)?;
        replace_secrets(&tx, &row.tenant, &row.id, secrets)?;
        replace_schedules(&tx, &row.tenant, &row.id, schedules)?;
        tx.commit()?;
        Ok(())
    }

    /// Updates an installation that is not removed, if it is still at
    /// `row.revision` (compare-and-set: the revision the caller read and
    /// planned against); replaces its secrets and schedules too when given.
    /// All or nothing. Returns the new revision.
    pub fn update_installation(
        &self,
        row: &InstallationRow,
        secrets: Option<&[StoredSecret]>,
        schedules: Option<&[ScheduleRow]>,
    ) -> Result<i64, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let revision = live_revision(&tx, &row.tenant, &row.id)?;
        if revision != row.revision {
            return Err(changed_since(&row.label()));
        }
        let next = InstallationRow {
            revision: revision + 1,
            ..row.clone()
        };
        write_installation(&tx, &next)?;
        if let Some(secrets) = secrets {
            replace_secrets(&tx, &row.tenant, &row.id, secrets)?;
        }
        if let Some(schedules) = schedules {
            replace_schedules(&tx, &row.tenant, &row.id, schedules)?;
        }
        tx.commit()?;
        Ok(next.revision)
    }

    /// Removes an installation: deletes its config, secrets, stored data,
    /// schedules and queued runs, and keeps a tombstone (run history stays).
    /// Refused while one of its runs is in progress, and, when `revision` is
    /// given, if the installation changed since that revision was read.
    pub fn remove_installation(
        &self,
        tenant: &str,
        id: &str,
        revision: Option<i64>,
        now: i64,
    ) -> Result<(), StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current = live_revision(&tx, tenant, id)?;
        if revision.is_some_and(|r| r != current) {
            return Err(changed_since(&format!("{tenant}/{id}")));
        }
        let running: Vec<String> = tx
            .prepare("SELECT feed FROM active_runs WHERE tenant = ?1 AND installation = ?2")?
            .query_map(params![tenant, id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if !running.is_empty() {
            // Its run would commit storage for a removed installation.
            return Err(StorageError::Conflict(format!(
                "`{tenant}/{id}` has a run in progress ({}); disable it, wait for the run to \
                 end, then remove it",
                running.join(", ")
            )));
        }
        let changed = tx.execute(
            "UPDATE installations SET removed_at = ?3, updated_at = ?3, enabled = 0,
                config = '{}', approved_egress = '[]', approved_rules = '[]',
                revision = revision + 1
             WHERE tenant = ?1 AND id = ?2 AND removed_at IS NULL",
            params![tenant, id, now],
        )?;
        if changed == 0 {
            return Err(StorageError::NotFound(format!(
                "no installation `{tenant}/{id}`"
            )));
        }
        for table in [
            "secrets",
            "kv",
            "schedules",
            "queue",
            "oauth_tokens",
            "oauth_pending",
            "webhook_secrets",
            "webhook_deliveries",
            "kv_history",
            "kv_history_pruned",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant = ?1 AND installation = ?2"),
                params![tenant, id],
            )?;
        }
        let scope = Scope {
            tenant: tenant.to_string(),
            installation: id.to_string(),
        };
        super::artifacts_sqlite::remove_in(&tx, &scope)?;
        tx.commit()?;
        Ok(())
    }

    /// The installation `tenant/id`, removed or not.
    pub fn installation(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<InstallationRow>, StorageError> {
        // The read connection: it never waits for a write in progress.
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {INSTALLATION_COLUMNS} FROM installations WHERE tenant = ?1 AND id = ?2"
        ))?;
        Ok(stmt
            .query_row(params![tenant, id], installation_from_row)
            .optional()?)
    }

    /// Installations (of one tenant, or all), by tenant and id.
    pub fn installations(
        &self,
        tenant: Option<&str>,
        include_removed: bool,
    ) -> Result<Vec<InstallationRow>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {INSTALLATION_COLUMNS} FROM installations
             WHERE (?1 IS NULL OR tenant = ?1) AND (?2 OR removed_at IS NULL)
             ORDER BY tenant, id"
        ))?;
        let rows = stmt.query_map(params![tenant, include_removed], installation_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The sealed secrets of an installation.
    pub fn secrets(&self, tenant: &str, id: &str) -> Result<Vec<StoredSecret>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT key, key_id, nonce, ciphertext FROM secrets
             WHERE tenant = ?1 AND installation = ?2 ORDER BY key",
        )?;
        let rows = stmt.query_map(params![tenant, id], |r| {
            Ok(StoredSecret {
                key: r.get(0)?,
                sealed: SealedSecret {
                    key_id: r.get(1)?,
                    nonce: r.get(2)?,
                    ciphertext: r.get(3)?,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The schedules of an installation, by feed.
    pub fn schedules(&self, tenant: &str, id: &str) -> Result<Vec<ScheduleRow>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules s
             WHERE s.tenant = ?1 AND s.installation = ?2 ORDER BY s.feed"
        ))?;
        let rows = stmt.query_map(params![tenant, id], schedule_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Schedules of enabled installations that are due at `now` (those never
    /// planned included), at most `limit`, earliest first.
    pub fn due_schedules(&self, now: i64, limit: usize) -> Result<Vec<ScheduleRow>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules s
             JOIN installations i ON i.tenant = s.tenant AND i.id = s.installation
             WHERE s.due_at <= ?1 AND i.enabled AND i.removed_at IS NULL
             ORDER BY s.due_at LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![now, limit as i64], schedule_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
