//! The SQLite backend: one file, WAL, versioned schema.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::group_commit::GroupCommit;
use super::state_history::{Attribution, DEFAULT_KEEP_VERSIONS};
use super::state_history_sqlite::{apply_in, attribute_checkpoints};
use super::{
    ActiveRun, AuditFilter, AuditRow, BoxedCause, History, Holder, InstallationRow, KvBackend,
    KvUsage, NotificationRow, QueuedRun, Registry, RuleUsage, RunEffects, RunFilter, RunLedger,
    RunRow, RunSummary, SchedulePlan, ScheduleRow, Scope, StorageError, StoredSecret, TenantRow,
    WorkQueue,
};
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
    // 4: removed tenants kept as tombstones (`removed_at`; the tenants
    // of tombstoned installations whose tenant row was deleted come back as
    // removed tenants), installations pinned to a plugin-store entry
    // (`plugin_store`, null for installations made before it: they keep
    // reading `plugin_dir`) with the egress rules the operator approved
    // (`approved_rules`, JSON) and a `revision` for compare-and-set, and
    // foreign keys from what belongs to an installation to it (SQLite adds
    // them only by rebuilding a table; rows of no installation are dropped).
    "ALTER TABLE tenants ADD COLUMN removed_at INTEGER;
    INSERT INTO tenants (id, name, created_at, removed_at)
        SELECT tenant, tenant, MIN(created_at), MAX(updated_at) FROM installations
        WHERE tenant NOT IN (SELECT id FROM tenants) GROUP BY tenant;
    CREATE TABLE installations_v4 (
        tenant          TEXT NOT NULL REFERENCES tenants (id),
        id              TEXT NOT NULL,
        plugin_id       TEXT NOT NULL,
        plugin_version  TEXT NOT NULL,
        plugin_dir      TEXT NOT NULL,
        plugin_digest   TEXT NOT NULL,
        plugin_store    TEXT,
        config          TEXT NOT NULL,
        approved_egress TEXT NOT NULL,
        approved_rules  TEXT,
        mode            TEXT NOT NULL,
        enabled         INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        removed_at      INTEGER,
        revision        INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, id)
    ) WITHOUT ROWID;
    INSERT INTO installations_v4 (tenant, id, plugin_id, plugin_version, plugin_dir,
            plugin_digest, config, approved_egress, mode, enabled, created_at, updated_at,
            removed_at)
        SELECT tenant, id, plugin_id, plugin_version, plugin_dir, plugin_digest, config,
            approved_egress, mode, enabled, created_at, updated_at, removed_at
        FROM installations;
    DROP TABLE installations;
    ALTER TABLE installations_v4 RENAME TO installations;
    CREATE TABLE secrets_v4 (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        key          TEXT NOT NULL,
        key_id       TEXT NOT NULL,
        nonce        BLOB NOT NULL,
        ciphertext   BLOB NOT NULL,
        PRIMARY KEY (tenant, installation, key),
        FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id)
    ) WITHOUT ROWID;
    INSERT INTO secrets_v4 SELECT s.* FROM secrets s
        JOIN installations i ON i.tenant = s.tenant AND i.id = s.installation;
    DROP TABLE secrets;
    ALTER TABLE secrets_v4 RENAME TO secrets;
    CREATE TABLE schedules_v4 (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        feed         TEXT NOT NULL,
        cron         TEXT NOT NULL,
        time_zone    TEXT NOT NULL,
        overridden   INTEGER NOT NULL,
        next_fire_at INTEGER,
        due_at       INTEGER,
        PRIMARY KEY (tenant, installation, feed),
        FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id)
    ) WITHOUT ROWID;
    INSERT INTO schedules_v4 SELECT s.* FROM schedules s
        JOIN installations i ON i.tenant = s.tenant AND i.id = s.installation;
    DROP TABLE schedules;
    ALTER TABLE schedules_v4 RENAME TO schedules;
    CREATE INDEX schedules_by_due ON schedules (due_at);
    CREATE TABLE queue_v4 (
        id           INTEGER PRIMARY KEY,
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        feed         TEXT NOT NULL,
        trigger      TEXT NOT NULL,
        attempt      INTEGER NOT NULL,
        scheduled_at INTEGER NOT NULL,
        due_at       INTEGER NOT NULL,
        created_at   INTEGER NOT NULL,
        FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id)
    );
    INSERT INTO queue_v4 SELECT q.* FROM queue q
        JOIN installations i ON i.tenant = q.tenant AND i.id = q.installation;
    DROP TABLE queue;
    ALTER TABLE queue_v4 RENAME TO queue;
    CREATE INDEX queue_by_due ON queue (due_at);
    CREATE TABLE active_runs_v4 (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        feed         TEXT NOT NULL,
        trigger      TEXT NOT NULL,
        attempt      INTEGER NOT NULL,
        scheduled_at INTEGER NOT NULL,
        started_at   INTEGER NOT NULL,
        PRIMARY KEY (tenant, installation, feed),
        FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id)
    ) WITHOUT ROWID;
    INSERT INTO active_runs_v4 SELECT a.* FROM active_runs a
        JOIN installations i ON i.tenant = a.tenant AND i.id = a.installation;
    DROP TABLE active_runs;
    ALTER TABLE active_runs_v4 RENAME TO active_runs;",
    // 5: who holds a run in progress: NULL for `serve`, or the pid of
    // the `airlock run` process that claimed it, so `serve` recovers such a
    // run only once that process is gone.
    "ALTER TABLE active_runs ADD COLUMN run_pid INTEGER;",
    // 6: the queued runs of one feed, found without reading the whole
    // queue (scheduling 10,000 due schedules counted each feed's waiting
    // runs by a scan of the queue: quadratic).
    "CREATE INDEX queue_by_feed ON queue (tenant, installation, feed, trigger);",
    // 7: the tenant's shared records (`records_sqlite.rs`): each tenant's
    // version counter, the records (a deleted one keeps its row, body NULL,
    // so change feeds see it), each consumer's acknowledgements and each
    // installation's annotations. No foreign keys: a run's effects must
    // never fail to commit because of what its guest named (an ack of a
    // record that is gone is dropped instead), and a tenant's records are
    // removed with nothing else.
    "CREATE TABLE record_versions (
        tenant  TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE records (
        tenant     TEXT NOT NULL,
        collection TEXT NOT NULL,
        id         TEXT NOT NULL,
        version    INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        writer     TEXT NOT NULL,
        body       TEXT,
        PRIMARY KEY (tenant, collection, id)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX records_by_version ON records (tenant, collection, version);
    CREATE TABLE record_acks (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        collection   TEXT NOT NULL,
        id           TEXT NOT NULL,
        version      INTEGER NOT NULL,
        acked_at     INTEGER NOT NULL,
        PRIMARY KEY (tenant, installation, collection, id)
    ) WITHOUT ROWID;
    CREATE INDEX record_acks_by_record ON record_acks (tenant, collection, id);
    CREATE TABLE record_annotations (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        collection   TEXT NOT NULL,
        id           TEXT NOT NULL,
        external_ref TEXT,
        notes        TEXT NOT NULL,
        flag         TEXT,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (tenant, installation, collection, id)
    ) WITHOUT ROWID;",
    // 8: the record collections approved per installation (`approved_data`,
    // JSON of the manifest's `[data]` as approved; NULL for installations
    // made before: they may use none), and the live records of a
    // collection by version, which the pending query walks without reading
    // each record's row (a partial index: deleted records are not pending).
    "ALTER TABLE installations ADD COLUMN approved_data TEXT;
    CREATE INDEX records_live_by_version ON records (tenant, collection, version)
        WHERE body IS NOT NULL;",
    // 9: OAuth2 credentials (`oauth_sqlite.rs`): each installation's token
    // set, the access and refresh tokens sealed together like a secret, and
    // the authorizations started and not finished, by the hash of their
    // state, with the sealed PKCE verifier, single use (`used_at`).
    "CREATE TABLE oauth_tokens (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        key_id       TEXT NOT NULL,
        nonce        BLOB NOT NULL,
        ciphertext   BLOB NOT NULL,
        expires_at   INTEGER,
        scopes       TEXT NOT NULL,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (tenant, installation)
    ) WITHOUT ROWID;
    CREATE TABLE oauth_pending (
        state_key    TEXT PRIMARY KEY,
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        key_id       TEXT,
        nonce        BLOB,
        ciphertext   BLOB,
        redirect_uri TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL,
        used_at      INTEGER
    ) WITHOUT ROWID;",
    // 10: published artifacts (`artifacts_sqlite.rs`): each version of an
    // installation's artifact (staged while a run writes it: no version
    // number yet), its bytes in chunks deleted with it, and each
    // installation's feed access token, as its sha256 only. No foreign key
    // to installations: a trial run (`airlock run`) publishes under a name
    // that may not be installed; removing an installation deletes them.
    // AUTOINCREMENT: an id is never reused, so neither a run's list of
    // versions to drop nor a reader of a version deleted meanwhile can
    // name a newer one.
    "CREATE TABLE artifact_versions (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        name         TEXT NOT NULL,
        version      INTEGER,
        content_type TEXT NOT NULL,
        size         INTEGER NOT NULL DEFAULT 0,
        sha256       TEXT,
        staged_at    INTEGER NOT NULL,
        published_at INTEGER,
        run_id       INTEGER,
        chunks       INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX artifact_versions_published
        ON artifact_versions (tenant, installation, name, version) WHERE version IS NOT NULL;
    CREATE INDEX artifact_versions_staged ON artifact_versions (staged_at)
        WHERE version IS NULL;
    CREATE TABLE artifact_chunks (
        version_id INTEGER NOT NULL REFERENCES artifact_versions (id) ON DELETE CASCADE,
        seq        INTEGER NOT NULL,
        data       BLOB NOT NULL,
        PRIMARY KEY (version_id, seq)
    );
    CREATE TABLE feed_tokens (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        token_sha256 BLOB NOT NULL,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (tenant, installation)
    ) WITHOUT ROWID;",
    // 11: inbound webhooks (`webhooks_sqlite.rs`): each installation's
    // webhook secret, as its sha256 only, and the delivery ids its
    // webhooks handled (recorded with the run that handled each).
    "CREATE TABLE webhook_secrets (
        tenant        TEXT NOT NULL,
        installation  TEXT NOT NULL,
        secret_sha256 BLOB NOT NULL,
        created_at    INTEGER NOT NULL,
        PRIMARY KEY (tenant, installation)
    ) WITHOUT ROWID;
    CREATE TABLE webhook_deliveries (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        webhook      TEXT NOT NULL,
        delivery_id  TEXT NOT NULL,
        run_id       INTEGER NOT NULL,
        received_at  INTEGER NOT NULL,
        PRIMARY KEY (tenant, installation, webhook, delivery_id)
    ) WITHOUT ROWID;",
    // 12: the admin API (`admin_sqlite.rs`): its tokens, as their sha256
    // only, and the audit of the changes made through it.
    "CREATE TABLE admin_tokens (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL,
        tenant        TEXT,
        permissions   TEXT NOT NULL,
        secret_sha256 BLOB NOT NULL UNIQUE,
        created_at    INTEGER NOT NULL,
        revoked_at    INTEGER
    );
    CREATE TABLE admin_actions (
        id       INTEGER PRIMARY KEY,
        at       INTEGER NOT NULL,
        actor    TEXT NOT NULL,
        token_id INTEGER,
        tenant   TEXT,
        action   TEXT NOT NULL,
        target   TEXT NOT NULL,
        detail   TEXT NOT NULL
    );
    CREATE INDEX admin_actions_by_tenant ON admin_actions (tenant, id);",
    // 13: the history of key-value storage (`state_history_sqlite.rs`):
    // one row per committed change of a key with the value it replaced
    // (NULL: none), who made it (a recorded run; a checkpoint of a run not
    // recorded yet, by its token; a rewind's actor) and the newest run
    // recorded then; and per installation the newest change dropped by
    // retention. AUTOINCREMENT: `seq` orders changes and is never reused.
    "CREATE TABLE kv_history (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        key          TEXT NOT NULL,
        old_value    BLOB,
        at           INTEGER NOT NULL,
        run_id       INTEGER,
        checkpoint   INTEGER,
        actor        TEXT,
        rewound_to   INTEGER,
        after_run    INTEGER NOT NULL
    );
    CREATE INDEX kv_history_by_key ON kv_history (tenant, installation, key, seq);
    CREATE INDEX kv_history_by_time ON kv_history (at);
    CREATE INDEX kv_history_by_checkpoint ON kv_history (tenant, installation, checkpoint)
        WHERE checkpoint IS NOT NULL;
    CREATE TABLE kv_history_pruned (
        tenant       TEXT NOT NULL,
        installation TEXT NOT NULL,
        through_seq  INTEGER NOT NULL,
        through_run  INTEGER NOT NULL,
        PRIMARY KEY (tenant, installation)
    ) WITHOUT ROWID;",
];

/// How many read-only connections a file database has.
const READERS: usize = 4;

/// How many prepared statements a connection keeps.
const STATEMENT_CACHE: usize = 96;

/// When a feed of a scope last succeeded (see [`SqliteStore::last_success`]).
const LAST_SUCCESS: &str = "SELECT MAX(ended_at) FROM runs
    WHERE tenant = ?1 AND installation = ?2 AND feed = ?3 AND status IN ('ok', 'info')";

/// Turns on SQLite's query planner stability guarantee on `conn`: a plan
/// never depends on the values bound. Without it the bundled SQLite (built
/// with STAT4) marks a cached statement whose index lookup takes a bound
/// value as "re-prepare on bind", so every run's last-success and secrets
/// reads were compiled afresh: a third of a run's host time, measured. This
/// store runs no `ANALYZE`, so the planner had nothing to gain from them.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map(|_| ())
}

/// The SQLite store: one connection, calls serialised on it, each short.
/// A clone shares the connection.
///
/// Its inherent methods block the calling thread on SQLite. The async
/// traits ([`RunLedger`]) run each call off the tokio workers instead (see
/// `off_worker`), so a slow disk or a write lock held by another process
/// (`airlock run`, the CLI) stalls that call only, never a tokio worker that
/// guests and the scheduler need. Not a store thread of its own: calls are
/// already serialised by the connection's mutex, so a dedicated thread would
/// add a queue and a channel without adding order.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Read-only connections for the reads on a run's path (see `reader`):
    /// in WAL mode a reader never waits for a writer, so a run's reads go
    /// on while the writing connection waits for the disk or a lock another
    /// process holds; and there are [`READERS`] of them, so one guest's
    /// long query (a pending set over a million records) does not hold up
    /// every other run's reads. None in memory (a second connection would
    /// be another database).
    readers: Option<Arc<[Mutex<Connection>]>>,
    /// The writes of the hot path (a run's record, claims) share
    /// transactions with those made at the same time: one disk flush for
    /// several (see [`GroupCommit`]).
    group: Arc<GroupCommit>,
    /// Which reader a call waits for when all are busy.
    next_reader: Arc<std::sync::atomic::AtomicUsize>,
    /// The directory of the database file (none in memory): the data
    /// directory, where the plugin store lives.
    data_dir: Option<PathBuf>,
}

/// Creates the database file readable and writable by its owner only
/// (0600), before SQLite opens it: it holds sealed secrets, configs and every
/// connector's data. SQLite gives its `-wal` and `-shm` files the mode of
/// the database file. An existing file is left as it is.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// SQLite's errors become [`StorageError::Database`] with the SQLite error
/// as the cause; `?` on any rusqlite call in this backend goes through here.
impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        StorageError::Database(Box::new(e))
    }
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) the database at `path` and
    /// migrates it.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let open_err = |source: BoxedCause| StorageError::Open {
            path: path.display().to_string(),
            source,
        };
        create_private(path).map_err(|e| StorageError::Create {
            path: path.display().to_string(),
            source: e,
        })?;
        let conn = Connection::open(path).map_err(|e| open_err(e.into()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_err(e.into()))?;
        let mut store = Self::prepare(conn).map_err(|e| match e {
            StorageError::Database(source) => open_err(source),
            other => other,
        })?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        store.data_dir = Some(dir.unwrap_or(Path::new(".")).to_path_buf());
        let open_reader = || {
            Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|r| {
                r.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                stable_plans(&r)?;
                r.busy_timeout(std::time::Duration::from_secs(10))
                    .map(|()| Mutex::new(r))
            })
            .map_err(|e| open_err(e.into()))
        };
        let readers = (0..READERS)
            .map(|_| open_reader())
            .collect::<Result<Vec<_>, _>>()?;
        store.readers = Some(readers.into());
        Ok(store)
    }

    /// An in-memory database, for tests and benchmarks.
    pub fn in_memory() -> Result<Self, StorageError> {
        Self::prepare(Connection::open_in_memory()?)
    }

    /// The directory the database file is in (none for an in-memory
    /// database): the data directory.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    fn prepare(mut conn: Connection) -> Result<Self, StorageError> {
        // Every statement of a run's path stays prepared (rusqlite keeps 16
        // by default; the hot path alone has more).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        stable_plans(&conn)?;
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
            conn: Arc::new(Mutex::new(conn)),
            readers: None,
            data_dir: None,
            group: Arc::default(),
            next_reader: Arc::default(),
        })
    }

    /// The connection for reads on a run's path (a guest's key-value reads,
    /// the installation, its secrets, the last success, the due runs): the
    /// read-only one of a file database, which in WAL mode never waits for
    /// a write (a commit waiting for the disk holds the other), else the
    /// only one. Every write through the other connection is committed
    /// before its call returns, so these reads see it.
    /// The first idle one of the read-only connections, or, when all are
    /// busy, the next in turn (waiting for it).
    pub(super) fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        use std::sync::TryLockError;
        let Some(readers) = &self.readers else {
            return self.conn();
        };
        for reader in readers.iter() {
            match reader.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let turn = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        readers[turn % readers.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `work` in a transaction shared with the grouped writes made at
    /// the same time ([`GroupCommit`]) and returns once it is committed.
    pub(super) fn write_grouped<T, F>(&self, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        self.group.write(&self.conn, work)
    }

    pub(super) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (an
        // open transaction rolls back when dropped), so the poison is ignored.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits a finished run's [`RunEffects`] in one transaction: its
    /// final key-value changes (to the run's own scope), its record, its
    /// HTTP calls and, for a scheduled run, its settlement. Either all of it
    /// is stored or none: a crash can never leave a run's writes applied but
    /// the run unrecorded. Returns the run's id.
    pub fn finish_run(&self, effects: RunEffects) -> Result<i64, StorageError> {
        self.write_grouped(move |tx| record_run(tx, &effects))
    }

    /// Records HTTP calls made outside a run (a `check()`) in the egress
    /// audit, attributed to `who`'s installation, plugin and feed.
    pub fn insert_audit(&self, who: &RunRow, calls: &[HttpCall]) -> Result<(), StorageError> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        super::audit::insert_calls(&tx, who, None, calls)?;
        tx.commit()?;
        Ok(())
    }

    /// When the last run of `feed` for `scope` that ended `ok` or `info` ended.
    pub fn last_success(&self, scope: &Scope, feed: &str) -> Result<Option<i64>, StorageError> {
        Ok(self
            .reader()
            .prepare_cached(LAST_SUCCESS)?
            .query_row(params![scope.tenant, scope.installation, feed], |r| {
                r.get::<_, Option<i64>>(0)
            })?)
    }

    /// Applies key-value `changes` to `scope` with their history, in one
    /// transaction.
    fn kv_write(
        &self,
        scope: &Scope,
        changes: &[(String, Option<Vec<u8>>)],
        by: &Attribution<'_>,
        keep_versions: u32,
    ) -> Result<(), StorageError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        apply_in(&tx, scope, changes, by, keep_versions)?;
        tx.commit()?;
        Ok(())
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

impl SqliteStore {
    /// Runs `call` off the tokio workers (see [`SqliteStore`] for why). On a
    /// multi-threaded runtime the calling worker turns itself into a
    /// blocking thread for the call (`block_in_place`: its other tasks move
    /// to another worker at once), which saves the two thread hand-offs of
    /// the blocking pool, about 60 µs a call on this machine's kind; on a
    /// current-thread runtime, where that is not possible, the call goes to
    /// the blocking pool. A call that panicked on the pool is reported as a
    /// database error, not propagated.
    pub(super) async fn off_worker<T, F>(&self, call: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteStore) -> Result<T, StorageError> + Send + 'static,
    {
        if crate::blocking::can_block_in_place() {
            return tokio::task::block_in_place(|| call(self));
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || call(&store))
            .await
            .map_err(|e| StorageError::Database(Box::new(e)))?
    }
}

#[async_trait::async_trait]
impl RunLedger for SqliteStore {
    async fn finish_run(&self, effects: RunEffects) -> Result<i64, StorageError> {
        self.off_worker(move |s| SqliteStore::finish_run(s, effects))
            .await
    }

    async fn record_calls(&self, who: RunRow, calls: Vec<HttpCall>) -> Result<(), StorageError> {
        self.off_worker(move |s| s.insert_audit(&who, &calls)).await
    }

    async fn last_success(&self, scope: &Scope, feed: &str) -> Result<Option<i64>, StorageError> {
        let (scope, feed) = (scope.clone(), feed.to_string());
        self.off_worker(move |s| SqliteStore::last_success(s, &scope, &feed))
            .await
    }
}

#[async_trait::async_trait]
impl History for SqliteStore {
    async fn runs(&self, filter: RunFilter) -> Result<Vec<RunSummary>, StorageError> {
        self.off_worker(move |s| SqliteStore::runs(s, &filter))
            .await
    }

    async fn run(&self, id: i64) -> Result<Option<(RunSummary, String)>, StorageError> {
        self.off_worker(move |s| SqliteStore::run(s, id)).await
    }

    async fn audit_log(&self, filter: AuditFilter) -> Result<Vec<AuditRow>, StorageError> {
        self.off_worker(move |s| SqliteStore::audit_log(s, &filter))
            .await
    }

    async fn rule_usage(
        &self,
        plugin_id: &str,
        tenant: Option<&str>,
    ) -> Result<Vec<RuleUsage>, StorageError> {
        let (plugin_id, tenant) = (plugin_id.to_string(), tenant.map(str::to_string));
        self.off_worker(move |s| SqliteStore::rule_usage(s, &plugin_id, tenant.as_deref()))
            .await
    }

    async fn notifications(
        &self,
        tenant: Option<&str>,
        include_acked: bool,
    ) -> Result<Vec<NotificationRow>, StorageError> {
        let tenant = tenant.map(str::to_string);
        self.off_worker(move |s| SqliteStore::notifications(s, tenant.as_deref(), include_acked))
            .await
    }

    async fn ack_notification(&self, id: i64, by: &str, now: i64) -> Result<(), StorageError> {
        let by = by.to_string();
        self.off_worker(move |s| SqliteStore::ack_notification(s, id, &by, now))
            .await
    }
}

#[async_trait::async_trait]
impl WorkQueue for SqliteStore {
    async fn due_schedules(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<ScheduleRow>, StorageError> {
        self.off_worker(move |s| SqliteStore::due_schedules(s, now, limit))
            .await
    }

    async fn apply_schedule_plans(
        &self,
        plans: Vec<SchedulePlan>,
    ) -> Result<Vec<bool>, StorageError> {
        self.off_worker(move |s| SqliteStore::apply_schedule_plans(s, &plans))
            .await
    }

    async fn enqueue(&self, run: QueuedRun) -> Result<i64, StorageError> {
        self.off_worker(move |s| SqliteStore::enqueue(s, &run))
            .await
    }

    async fn queued_count(
        &self,
        tenant: &str,
        installation: &str,
        feed: &str,
        trigger: &str,
    ) -> Result<u32, StorageError> {
        let key = [tenant, installation, feed, trigger].map(str::to_string);
        self.off_worker(move |s| SqliteStore::queued_count(s, &key[0], &key[1], &key[2], &key[3]))
            .await
    }

    async fn due_candidates(
        &self,
        now: i64,
        per_tenant: usize,
        limit: usize,
    ) -> Result<Vec<QueuedRun>, StorageError> {
        self.off_worker(move |s| SqliteStore::due_candidates(s, now, per_tenant, limit))
            .await
    }

    async fn claim_queued(
        &self,
        runs: Vec<QueuedRun>,
        started_at: i64,
        max_per_tenant: usize,
    ) -> Result<Vec<bool>, StorageError> {
        self.off_worker(move |s| SqliteStore::claim_many(s, runs, started_at, max_per_tenant))
            .await
    }

    async fn dequeue(&self, id: i64) -> Result<(), StorageError> {
        self.off_worker(move |s| SqliteStore::dequeue(s, id)).await
    }

    async fn claim_unqueued(&self, run: ActiveRun, holder: Holder) -> Result<bool, StorageError> {
        self.off_worker(move |s| match holder {
            Holder::Process(pid) => SqliteStore::claim_unqueued(s, &run, pid),
            // SQLite has no leases: a claim "under a lease" is serve's.
            Holder::Serve | Holder::Lease { .. } => super::queue::claim_for_serve(s, &run),
        })
        .await
    }

    async fn release(&self, run: ActiveRun) -> Result<(), StorageError> {
        self.off_worker(move |s| SqliteStore::release(s, &run))
            .await
    }

    async fn active_run(
        &self,
        tenant: &str,
        installation: &str,
        feed: &str,
    ) -> Result<Option<ActiveRun>, StorageError> {
        let key = (
            tenant.to_string(),
            installation.to_string(),
            feed.to_string(),
        );
        self.off_worker(move |s| SqliteStore::active_run(s, &key.0, &key.1, &key.2))
            .await
    }

    async fn held_runs(&self) -> Result<Vec<(ActiveRun, Holder)>, StorageError> {
        let held = self.off_worker(|s| s.active_runs_held()).await?;
        Ok(held
            .into_iter()
            .map(|(run, pid)| (run, pid.map_or(Holder::Serve, Holder::Process)))
            .collect())
    }
}

#[async_trait::async_trait]
impl Registry for SqliteStore {
    async fn add_tenant(&self, tenant: TenantRow) -> Result<(), StorageError> {
        self.off_worker(move |s| SqliteStore::add_tenant(s, &tenant))
            .await
    }

    async fn tenants(&self) -> Result<Vec<TenantRow>, StorageError> {
        self.off_worker(SqliteStore::tenants).await
    }

    async fn tenant_exists(&self, id: &str) -> Result<bool, StorageError> {
        let id = id.to_string();
        self.off_worker(move |s| SqliteStore::tenant_exists(s, &id))
            .await
    }

    async fn remove_tenant(&self, id: &str) -> Result<(), StorageError> {
        let id = id.to_string();
        self.off_worker(move |s| SqliteStore::remove_tenant(s, &id))
            .await
    }

    async fn insert_installation(
        &self,
        row: InstallationRow,
        secrets: Vec<StoredSecret>,
        schedules: Vec<ScheduleRow>,
    ) -> Result<(), StorageError> {
        self.off_worker(move |s| SqliteStore::insert_installation(s, &row, &secrets, &schedules))
            .await
    }

    async fn update_installation(
        &self,
        row: InstallationRow,
        secrets: Option<Vec<StoredSecret>>,
        schedules: Option<Vec<ScheduleRow>>,
    ) -> Result<i64, StorageError> {
        self.off_worker(move |s| {
            SqliteStore::update_installation(s, &row, secrets.as_deref(), schedules.as_deref())
        })
        .await
    }

    async fn remove_installation(
        &self,
        tenant: &str,
        id: &str,
        revision: Option<i64>,
        now: i64,
    ) -> Result<(), StorageError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.off_worker(move |s| SqliteStore::remove_installation(s, &tenant, &id, revision, now))
            .await
    }

    async fn installation(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<InstallationRow>, StorageError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.off_worker(move |s| SqliteStore::installation(s, &tenant, &id))
            .await
    }

    async fn installations(
        &self,
        tenant: Option<&str>,
        include_removed: bool,
    ) -> Result<Vec<InstallationRow>, StorageError> {
        let tenant = tenant.map(str::to_string);
        self.off_worker(move |s| SqliteStore::installations(s, tenant.as_deref(), include_removed))
            .await
    }

    async fn secrets(&self, tenant: &str, id: &str) -> Result<Vec<StoredSecret>, StorageError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.off_worker(move |s| SqliteStore::secrets(s, &tenant, &id))
            .await
    }

    async fn schedules(&self, tenant: &str, id: &str) -> Result<Vec<ScheduleRow>, StorageError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.off_worker(move |s| SqliteStore::schedules(s, &tenant, &id))
            .await
    }

    fn data_dir(&self) -> Option<&Path> {
        SqliteStore::data_dir(self)
    }
}

#[async_trait::async_trait]
impl KvBackend for SqliteStore {
    async fn kv_get(&self, scope: &Scope, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        super::state_history_sqlite::stored_value(&self.reader(), scope, key)
    }

    async fn kv_list(
        &self,
        scope: &Scope,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let conn = self.reader();
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

    async fn kv_apply(
        &self,
        scope: &Scope,
        changes: &[(String, Option<Vec<u8>>)],
    ) -> Result<(), StorageError> {
        if changes.is_empty() {
            return Ok(());
        }
        crate::blocking::in_place(|| {
            self.kv_write(
                scope,
                changes,
                &Attribution::default(),
                DEFAULT_KEEP_VERSIONS,
            )
        })
    }

    async fn kv_checkpoint(
        &self,
        scope: &Scope,
        changes: &[(String, Option<Vec<u8>>)],
        token: i64,
        keep_versions: u32,
    ) -> Result<(), StorageError> {
        let by = Attribution {
            checkpoint: Some(token),
            ..Attribution::default()
        };
        // It waits for the disk, or for a write lock another process
        // holds: on a multi-threaded runtime the worker hands its other
        // tasks on first, so that wait stalls this run only.
        crate::blocking::in_place(|| self.kv_write(scope, changes, &by, keep_versions))
    }

    async fn kv_usage(&self, scope: &Scope) -> Result<KvUsage, StorageError> {
        let (bytes, keys) = self
            .reader()
            .prepare_cached(
                "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(value)), 0), COUNT(*)
             FROM kv WHERE tenant = ?1 AND installation = ?2",
            )?
            .query_row(params![scope.tenant, scope.installation], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?;
        Ok(KvUsage {
            bytes: bytes as u64,
            keys: keys as u64,
        })
    }

    async fn kv_entry_bytes(&self, scope: &Scope, key: &str) -> Result<Option<u64>, StorageError> {
        Ok(self
            .reader()
            .prepare_cached(
                "SELECT length(CAST(key AS BLOB)) + length(value) FROM kv
                 WHERE tenant = ?1 AND installation = ?2 AND key = ?3",
            )?
            .query_row(params![scope.tenant, scope.installation, key], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .map(|n| n as u64))
    }
}

/// Writes a finished run's [`RunEffects`] (see [`SqliteStore::finish_run`])
/// in the caller's transaction.
fn record_run(tx: &Connection, effects: &RunEffects) -> Result<i64, StorageError> {
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
    } = effects;
    let scope = Scope {
        tenant: run.tenant.clone(),
        installation: run.installation.clone(),
    };
    if !records.is_empty() {
        super::records_sqlite::apply_in(tx, &scope, records, *settled_at)?;
    }
    // Cached statements: a run's record is the hot path of the host.
    tx.prepare_cached(
        "INSERT INTO runs (tenant, installation, plugin_id, plugin_version, plugin_digest,
            feed, mode, trigger, attempt, scheduled_at, started_at, ended_at, status,
            message, report)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
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
    ])?;
    let run_id = tx.last_insert_rowid();
    let by = Attribution {
        run_id: Some(run_id),
        ..Attribution::default()
    };
    apply_in(tx, &scope, kv_changes, &by, kv_history.keep_versions())?;
    if let Some(token) = kv_history.checkpoint {
        attribute_checkpoints(tx, &scope, token, run_id)?;
    }
    if !artifacts.is_empty() {
        super::artifacts_sqlite::apply_in(tx, &scope, artifacts, run_id, *settled_at)?;
    }
    super::audit::insert_calls(tx, run, Some(run_id), http_calls)?;
    if let Some(receipt) = webhook_delivery {
        super::webhooks_sqlite::record_in(tx, &scope, receipt, run_id)?;
    }
    if let Some(s) = settlement {
        super::queue::settle_in(tx, s, Some(run_id), *settled_at)?;
    }
    Ok(run_id)
}

/// The store's conformance suite (`conformance/`) on SQLite: a fresh
/// in-memory database for each behaviour.
#[cfg(test)]
mod conformance {
    use crate::storage::conformance::CommitEffects;
    use crate::storage::{ArtifactEffects, RecordEffects, Scope, StorageError};

    async fn fresh() -> Option<std::sync::Arc<super::SqliteStore>> {
        Some(std::sync::Arc::new(
            super::SqliteStore::in_memory().expect("an in-memory database"),
        ))
    }

    #[async_trait::async_trait]
    impl CommitEffects for super::SqliteStore {
        async fn commit_record_effects(
            &self,
            scope: &Scope,
            effects: &RecordEffects,
            now: i64,
        ) -> Result<(), StorageError> {
            let (scope, effects) = (scope.clone(), effects.clone());
            self.off_worker(move |s| {
                s.write_grouped(move |tx| {
                    crate::storage::records_sqlite::apply_in(tx, &scope, &effects, now)
                })
            })
            .await
        }

        async fn commit_artifact_effects(
            &self,
            scope: &Scope,
            effects: &ArtifactEffects,
            run_id: i64,
            now: i64,
        ) -> Result<(), StorageError> {
            let (scope, effects) = (scope.clone(), effects.clone());
            self.off_worker(move |s| {
                s.write_grouped(move |tx| {
                    crate::storage::artifacts_sqlite::apply_in(tx, &scope, &effects, run_id, now)
                })
            })
            .await
        }
    }

    crate::storage::conformance::conformance_suite!(fresh);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{ActiveRun, Settlement, TenantRow};

    #[test]
    fn a_read_held_long_does_not_hold_up_other_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        // One reader is busy with a long query (a guest's pending set).
        let busy = store.reader();
        let (done, finished) = std::sync::mpsc::channel();
        let other = store.clone();
        std::thread::spawn(move || {
            let scope = Scope {
                tenant: "t".into(),
                installation: "i".into(),
            };
            done.send(other.last_success(&scope, "orders").is_ok())
                .unwrap();
        });
        let read = finished.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(read, Ok(true), "the read found an idle connection");
        drop(busy);
    }

    #[test]
    fn a_cached_statement_is_not_compiled_again_when_other_values_are_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        for i in 0..5 {
            let scope = Scope {
                tenant: format!("t{i}"),
                installation: format!("i{i}"),
            };
            store.last_success(&scope, "orders").unwrap();
        }
        let reader = store.reader();
        let stmt = reader.prepare_cached(LAST_SUCCESS).unwrap();
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "the read was compiled again for new values (query planner stability is off)"
        );
    }

    fn effects(settlement: Option<Settlement>) -> RunEffects {
        let run = RunRow {
            tenant: "t".into(),
            installation: "i".into(),
            plugin_id: "p".into(),
            plugin_version: "1.0.0".into(),
            plugin_digest: "d".into(),
            feed: "orders".into(),
            mode: "live".into(),
            trigger: "schedule".into(),
            attempt: 1,
            scheduled_at: 10,
            started_at: 10,
            ended_at: 11,
            status: "error".into(),
            message: "m".into(),
            report: "{}".into(),
        };
        RunEffects {
            run,
            kv_changes: vec![("cursor".into(), Some(b"42".to_vec()))],
            records: Default::default(),
            artifacts: Default::default(),
            http_calls: Vec::new(),
            settlement,
            settled_at: 11,
            webhook_delivery: None,
            kv_history: Default::default(),
        }
    }

    #[test]
    fn a_runs_effects_are_committed_whole_or_not_at_all() {
        let store = SqliteStore::in_memory().unwrap();
        let scope = Scope {
            tenant: "t".into(),
            installation: "i".into(),
        };
        // The last step of the transaction (raising the notification) fails.
        store
            .conn()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON notifications
                 BEGIN SELECT RAISE(ABORT, 'notifications refused'); END;",
            )
            .unwrap();
        let settlement = Settlement {
            active: ActiveRun {
                tenant: "t".into(),
                installation: "i".into(),
                feed: "orders".into(),
                trigger: "schedule".into(),
                attempt: 1,
                scheduled_at: 10,
                started_at: 10,
            },
            follow_up: None,
            notification: Some("orders failed".into()),
        };
        assert!(store.finish_run(effects(Some(settlement))).is_err());
        let runs = |s: &SqliteStore| -> i64 {
            s.conn()
                .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(now(store.kv_get(&scope, "cursor")).unwrap(), None);
        assert_eq!(runs(&store), 0);

        let id = store.finish_run(effects(None)).unwrap();
        assert_eq!(
            now(store.kv_get(&scope, "cursor")).unwrap(),
            Some(b"42".to_vec())
        );
        assert_eq!(runs(&store), 1);
        assert!(id > 0);
    }

    /// Runs a store call that has nothing to wait for, from a plain test.
    fn now<T>(call: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(call)
    }

    #[test]
    fn a_write_lock_held_elsewhere_stalls_the_ledger_call_not_the_worker() {
        // One thread: the runtime's only worker (the call goes to the
        // blocking pool).
        let current = tokio::runtime::Builder::new_current_thread().build();
        a_stalled_ledger_call_leaves_the_worker_free(current.unwrap());
        // One worker of a multi-threaded runtime (the worker hands its
        // other tasks on and blocks in place).
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build();
        a_stalled_ledger_call_leaves_the_worker_free(multi.unwrap());
    }

    fn a_stalled_ledger_call_leaves_the_worker_free(runtime: tokio::runtime::Runtime) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("airlock.db");
        let store = SqliteStore::open(&path).unwrap();
        // Another process's transaction holds the write lock.
        let holder = Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        runtime.block_on(async {
            let finishing = tokio::spawn({
                let store = store.clone();
                async move { RunLedger::finish_run(&store, effects(None)).await }
            });
            tokio::task::yield_now().await;
            // Work queued after the stalled call still runs on the worker,
            // while the lock is held: the call waits off the worker.
            let other = tokio::spawn(async { "done" });
            assert_eq!(other.await.unwrap(), "done");
            assert!(!finishing.is_finished());
            holder.execute_batch("ROLLBACK").unwrap();
            let id = finishing
                .await
                .unwrap()
                .expect("recorded once the lock is free");
            assert!(id > 0);
        });
    }

    #[test]
    fn a_guests_reads_go_on_while_the_writer_waits_for_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("airlock.db");
        let store = SqliteStore::open(&path).unwrap();
        let scope = Scope {
            tenant: "acme".into(),
            installation: "shop".into(),
        };
        now(store.kv_apply(&scope, &[("cursor".into(), Some(b"41".to_vec()))])).unwrap();
        // Another process's transaction holds the write lock, and a run's
        // record waits for it on the writing connection.
        let holder = Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let writer = std::thread::spawn({
            let store = store.clone();
            let scope = scope.clone();
            move || now(store.kv_apply(&scope, &[("cursor".into(), Some(b"42".to_vec()))]))
        });
        while !writer.is_finished() && store.conn.try_lock().is_ok() {
            std::thread::yield_now();
        }
        // The writer holds its connection while it waits: a guest's reads
        // still answer, from the committed data.
        assert_eq!(
            now(store.kv_get(&scope, "cursor")).unwrap(),
            Some(b"41".to_vec())
        );
        assert_eq!(
            now(store.kv_list(&scope, "", None, 10)).unwrap(),
            ["cursor"]
        );
        assert_eq!(now(store.kv_usage(&scope)).unwrap().keys, 1);
        assert!(!writer.is_finished(), "the writer is still waiting");
        holder.execute_batch("ROLLBACK").unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(
            now(store.kv_get(&scope, "cursor")).unwrap(),
            Some(b"42".to_vec())
        );
    }

    #[test]
    fn a_database_that_cannot_open_names_the_file_and_keeps_sqlites_cause() {
        let dir = tempfile::tempdir().unwrap();
        let Err(e) = SqliteStore::open(dir.path()) else {
            panic!("a directory opened as a database");
        };
        assert!(matches!(e, StorageError::Open { .. }), "{e:?}");
        assert!(e.to_string().contains(&dir.path().display().to_string()));
        let cause = std::error::Error::source(&e).expect("a cause");
        assert!(cause.is::<rusqlite::Error>(), "{cause:?}");
    }

    /// A database at schema 3 with an installation and its rows, a
    /// tombstoned installation whose tenant was deleted, and an orphan secret.
    fn version_3() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for (i, sql) in MIGRATIONS[..3].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", (i + 1) as i64)
                .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO tenants VALUES ('acme', 'Acme', 1);
             INSERT INTO installations VALUES ('acme', 'shop', 'p', '1', 'plugins/p', 'd',
                 '{\"user\":\"demo\"}', '[\"https://shop.example\"]', 'live', 1, 1, 2, NULL);
             INSERT INTO installations VALUES ('gone', 'old', 'p', '1', 'plugins/p', 'd',
                 '{}', '[]', 'test', 0, 1, 3, 3);
             INSERT INTO secrets VALUES ('acme', 'shop', 'password', 'k1', x'00', x'01');
             INSERT INTO secrets VALUES ('acme', 'ghost', 'password', 'k1', x'00', x'01');
             INSERT INTO schedules VALUES ('acme', 'shop', 'orders', '0 0 * * * *', 'UTC', 0,
                 NULL, 0);
             INSERT INTO queue (tenant, installation, feed, trigger, attempt, scheduled_at,
                 due_at, created_at) VALUES ('acme', 'shop', 'orders', 'manual', 1, 0, 0, 0);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn migration_4_keeps_the_data_and_adds_tombstones_and_foreign_keys() {
        let store = SqliteStore::prepare(version_3()).unwrap();
        let row = store.installation("acme", "shop").unwrap().unwrap();
        assert_eq!(row.approved_egress, ["https://shop.example"]);
        assert_eq!(row.config["user"], "demo");
        assert_eq!(
            (row.plugin_store, row.approved_rules, row.revision),
            (None, None, 0),
            "not pinned yet"
        );
        assert_eq!(store.secrets("acme", "shop").unwrap().len(), 1);
        assert_eq!(store.schedules("acme", "shop").unwrap().len(), 1);
        let count = |sql: &str| -> i64 { store.conn().query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT COUNT(*) FROM queue"), 1);
        assert_eq!(
            count("SELECT COUNT(*) FROM secrets"),
            1,
            "the orphan is gone"
        );
        assert_eq!(count("SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);

        // The deleted tenant of a tombstone comes back as a removed tenant.
        assert!(!store.tenant_exists("gone").unwrap());
        let err = store
            .add_tenant(&TenantRow {
                id: "gone".into(),
                name: "Gone".into(),
                created_at: 9,
            })
            .unwrap_err();
        assert!(err.to_string().contains("was removed"), "{err}");
        let orphan = store.conn().execute(
            "INSERT INTO schedules VALUES ('acme', 'ghost', 'f', 'c', 'UTC', 0, NULL, 0)",
            [],
        );
        assert!(orphan.is_err(), "foreign keys are enforced");
    }
}
