//! The SQLite backend: one file, WAL, versioned schema.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::{KvBackend, KvUsage, Scope, Settlement, StorageError};
use crate::egress::HttpCall;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many have run. Never edit one that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: key-value data and run records.
    "CREATE TABLE kv (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        key          TEXT NOT NULL,
        value        BLOB NOT NULL,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (tenant, installation, key)
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        id             INTEGER PRIMARY KEY,
        tenant         TEXT NOT NULL,
        installation   TEXT NOT NULL,
        plugin_id      TEXT NOT NULL,
        plugin_version TEXT NOT NULL,
        plugin_digest  TEXT NOT NULL,
        feed           TEXT NOT NULL,
        mode           TEXT NOT NULL,
        trigger        TEXT NOT NULL,
        attempt        INTEGER NOT NULL,
        scheduled_at   INTEGER NOT NULL,
        started_at     INTEGER NOT NULL,
        ended_at       INTEGER NOT NULL,
        status         TEXT NOT NULL,
        message        TEXT NOT NULL,
        report         TEXT NOT NULL
    );
    CREATE INDEX runs_by_feed ON runs (tenant, installation, feed, status, ended_at);",
    // 2: the egress audit trail: one row per request or redirect hop.
    "CREATE TABLE egress_audit (
        id             INTEGER PRIMARY KEY,
        at_ms          INTEGER NOT NULL,
        run_id         INTEGER REFERENCES runs (id),
        tenant         TEXT NOT NULL,
        installation   TEXT NOT NULL,
        plugin_id      TEXT NOT NULL,
        plugin_version TEXT NOT NULL,
        feed           TEXT NOT NULL,
        method         TEXT NOT NULL,
        scheme         TEXT,
        host           TEXT NOT NULL,
        port           INTEGER,
        path           TEXT NOT NULL,
        remote_addr    TEXT,
        decision       TEXT NOT NULL,
        rule           TEXT,
        service        TEXT,
        reason         TEXT,
        status         INTEGER,
        bytes          INTEGER NOT NULL,
        duration_ms    INTEGER NOT NULL,
        error          TEXT
    );
    CREATE INDEX egress_audit_by_time ON egress_audit (at_ms);
    CREATE INDEX egress_audit_by_plugin ON egress_audit (plugin_id, tenant, installation);",
    // 3: operations: tenants, installations (removed ones kept as tombstones so
    // run history keeps its identity), sealed secrets, per-feed schedules, the
    // run queue, the runs in progress (one per installation and feed) and
    // notifications that wait for a person.
    "CREATE TABLE tenants (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE installations (
        tenant          TEXT NOT NULL,
        id              TEXT NOT NULL,
        plugin_id       TEXT NOT NULL,
        plugin_version  TEXT NOT NULL,
        plugin_dir      TEXT NOT NULL,
        plugin_digest   TEXT NOT NULL,
        config          TEXT NOT NULL,
        approved_egress TEXT NOT NULL,
        mode            TEXT NOT NULL,
        enabled         INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        removed_at      INTEGER,
        PRIMARY KEY (tenant, id)
    ) WITHOUT ROWID;
    CREATE TABLE secrets (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        key          TEXT NOT NULL,
        key_id       TEXT NOT NULL,
        nonce        BLOB NOT NULL,
        ciphertext   BLOB NOT NULL,
        PRIMARY KEY (tenant, installation, key)
    ) WITHOUT ROWID;
    CREATE TABLE schedules (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        feed         TEXT NOT NULL,
        cron         TEXT NOT NULL,
        time_zone    TEXT NOT NULL,
        overridden   INTEGER NOT NULL,
        next_fire_at INTEGER,
        due_at       INTEGER,
        PRIMARY KEY (tenant, installation, feed)
    ) WITHOUT ROWID;
    CREATE INDEX schedules_by_due ON schedules (due_at);
    CREATE TABLE queue (
        id           INTEGER PRIMARY KEY,
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        feed         TEXT NOT NULL,
        trigger      TEXT NOT NULL,
        attempt      INTEGER NOT NULL,
        scheduled_at INTEGER NOT NULL,
        due_at       INTEGER NOT NULL,
        created_at   INTEGER NOT NULL
    );
    CREATE INDEX queue_by_due ON queue (due_at);
    CREATE TABLE active_runs (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        feed         TEXT NOT NULL,
        trigger      TEXT NOT NULL,
        attempt      INTEGER NOT NULL,
        scheduled_at INTEGER NOT NULL,
        started_at   INTEGER NOT NULL,
        PRIMARY KEY (tenant, installation, feed)
    ) WITHOUT ROWID;
    CREATE TABLE notifications (
        id           INTEGER PRIMARY KEY,
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        feed         TEXT NOT NULL,
        message      TEXT NOT NULL,
        run_id       INTEGER,
        count        INTEGER NOT NULL,
        first_at     INTEGER NOT NULL,
        last_at      INTEGER NOT NULL,
        acked_at     INTEGER,
        acked_by     TEXT
    );
    CREATE INDEX notifications_open ON notifications (acked_at, tenant);
    CREATE INDEX runs_by_time ON runs (started_at);",
    // 4 (serve): who holds a run in progress: NULL for `serve`, or the pid of
    // the `airlock run` process that claimed it, so `serve` recovers such a
    // run only once that process is gone.
    "ALTER TABLE active_runs ADD COLUMN run_pid INTEGER;",
];

/// A run as recorded in the `runs` table.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// Tenant.
    pub tenant: String,
    /// Installation.
    pub installation: String,
    /// Plugin id.
    pub plugin_id: String,
    /// Plugin version.
    pub plugin_version: String,
    /// Component sha256.
    pub plugin_digest: String,
    /// Feed.
    pub feed: String,
    /// `test` or `live`.
    pub mode: String,
    /// `schedule`, `manual` or `retry`.
    pub trigger: String,
    /// Attempt number.
    pub attempt: u32,
    /// When it was due (Unix seconds).
    pub scheduled_at: i64,
    /// When it started (Unix seconds).
    pub started_at: i64,
    /// When it ended (Unix seconds).
    pub ended_at: i64,
    /// `ok`, `info`, `retry`, `error`, `trap`, `timeout`, `memory`…
    pub status: String,
    /// One line.
    pub message: String,
    /// The full report as JSON.
    pub report: String,
}

/// The SQLite store. Cheap to share behind an `Arc`; calls are serialised on
/// one connection, each short.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let open_err = |source| StorageError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        Self::prepare(conn).map_err(|e| match e {
            StorageError::Database(source) => open_err(source),
            other => other,
        })
    }

    /// An in-memory database, for tests and benchmarks.
    pub fn in_memory() -> Result<Self, StorageError> {
        Self::prepare(Connection::open_in_memory()?)
    }

    fn prepare(mut conn: Connection) -> Result<Self, StorageError> {
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Transactions take the write lock when they begin: a deferred one
        // that reads first fails at once (SQLITE_BUSY, no waiting) when
        // another process (serve, the CLI) wrote since its read.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StorageError::SchemaTooNew {
                found: version,
                supported,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    pub(super) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (an
        // open transaction rolls back when dropped), so the poison is ignored.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a finished run and its HTTP calls (the egress audit) in one
    /// transaction; returns the run's id.
    pub fn insert_run(&self, run: &RunRow, calls: &[HttpCall]) -> Result<i64, StorageError> {
        self.finish_run(run, calls, &[], None, 0)
    }

    /// Ends a run in one transaction: applies its final storage `changes`
    /// (to the run's own scope), records it with its HTTP calls, and settles
    /// it (see [`Settlement`]) if it was a scheduled run. Either all of it
    /// is stored or none: a crash can never leave a run's writes applied but
    /// the run unrecorded. Returns the run's id.
    pub fn finish_run(
        &self,
        run: &RunRow,
        calls: &[HttpCall],
        changes: &[(String, Option<Vec<u8>>)],
        settlement: Option<&Settlement>,
        now: i64,
    ) -> Result<i64, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let scope = Scope {
            tenant: run.tenant.clone(),
            installation: run.installation.clone(),
        };
        apply_changes(&tx, &scope, changes)?;
        tx.execute(
            "INSERT INTO runs (tenant, installation, plugin_id, plugin_version, plugin_digest,
                feed, mode, trigger, attempt, scheduled_at, started_at, ended_at, status,
                message, report)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                run.tenant,
                run.installation,
                run.plugin_id,
                run.plugin_version,
                run.plugin_digest,
                run.feed,
                run.mode,
                run.trigger,
                run.attempt,
                run.scheduled_at,
                run.started_at,
                run.ended_at,
                run.status,
                run.message,
                run.report
            ],
        )?;
        let run_id = tx.last_insert_rowid();
        super::audit::insert_calls(&tx, run, run_id, calls)?;
        if let Some(s) = settlement {
            super::queue::settle_in(&tx, s, Some(run_id), now)?;
        }
        tx.commit()?;
        Ok(run_id)
    }

    /// When the last run of `feed` for `scope` that ended `ok` or `info` ended.
    pub fn last_success(&self, scope: &Scope, feed: &str) -> Result<Option<i64>, StorageError> {
        Ok(self.conn().query_row(
            "SELECT MAX(ended_at) FROM runs
             WHERE tenant = ?1 AND installation = ?2 AND feed = ?3 AND status IN ('ok', 'info')",
            params![scope.tenant, scope.installation, feed],
            |r| r.get::<_, Option<i64>>(0),
        )?)
    }

    /// The number of keys stored for `scope`.
    pub fn kv_count(&self, scope: &Scope) -> Result<u64, StorageError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM kv WHERE tenant = ?1 AND installation = ?2",
            params![scope.tenant, scope.installation],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}

impl KvBackend for SqliteStore {
    fn kv_get(&self, scope: &Scope, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT value FROM kv WHERE tenant = ?1 AND installation = ?2 AND key = ?3",
                params![scope.tenant, scope.installation, key],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn kv_list(
        &self,
        scope: &Scope,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let conn = self.conn();
        // Keys compare as bytes (BINARY collation on UTF-8), like Rust strings.
        let mut stmt = conn.prepare_cached(
            "SELECT key FROM kv
             WHERE tenant = ?1 AND installation = ?2
               AND key >= ?3 AND substr(key, 1, length(?3)) = ?3
               AND (?4 IS NULL OR key > ?4)
             ORDER BY key LIMIT ?5",
        )?;
        let keys = stmt
            .query_map(
                params![
                    scope.tenant,
                    scope.installation,
                    prefix,
                    after,
                    limit as i64
                ],
                |r| r.get(0),
            )?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(keys)
    }

    fn kv_apply(
        &self,
        scope: &Scope,
        changes: &[(String, Option<Vec<u8>>)],
    ) -> Result<(), StorageError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        apply_changes(&tx, scope, changes)?;
        tx.commit()?;
        Ok(())
    }

    fn kv_usage(&self, scope: &Scope) -> Result<KvUsage, StorageError> {
        let (bytes, keys) = self.conn().query_row(
            "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(value)), 0), COUNT(*)
             FROM kv WHERE tenant = ?1 AND installation = ?2",
            params![scope.tenant, scope.installation],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )?;
        Ok(KvUsage {
            bytes: bytes as u64,
            keys: keys as u64,
        })
    }

    fn kv_entry_bytes(&self, scope: &Scope, key: &str) -> Result<Option<u64>, StorageError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT length(CAST(key AS BLOB)) + length(value) FROM kv
                 WHERE tenant = ?1 AND installation = ?2 AND key = ?3",
                params![scope.tenant, scope.installation, key],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|n| n as u64))
    }
}

/// Applies key-value `changes` (a value to set, or `None` to delete) to
/// `scope` inside `tx`.
fn apply_changes(
    tx: &rusqlite::Transaction<'_>,
    scope: &Scope,
    changes: &[(String, Option<Vec<u8>>)],
) -> Result<(), StorageError> {
    let now = chrono::Utc::now().timestamp();
    for (key, value) in changes {
        match value {
            Some(v) => tx.execute(
                "INSERT INTO kv (tenant, installation, key, value, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, installation, key)
                 DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![scope.tenant, scope.installation, key, v, now],
            )?,
            None => tx.execute(
                "DELETE FROM kv WHERE tenant = ?1 AND installation = ?2 AND key = ?3",
                params![scope.tenant, scope.installation, key],
            )?,
        };
    }
    Ok(())
}
