//! SQLite's side of [`StateHistory`]: the `kv_history` table (one row per
//! committed change of a key: who, when, and the value it replaced) and
//! `kv_history_pruned` (per installation, the newest change dropped by
//! retention, so a rewind that needs it is refused). Every key-value write
//! of the store goes through [`apply_in`], which writes a change and its
//! history row in the caller's transaction.

use rusqlite::{Connection, OptionalExtension, params};

use super::state_history::{
    Attribution, KeyVersion, PRUNE_PER_CHANGE, Restore, RewindPlan, RewindRefusal, RewindResult,
    StateHistory, StoredEntry, ValueHead, changed_by, value_head,
};
use super::{Scope, SqliteStore, StorageError};

/// Applies key-value `changes` (a value to set, or `None` to delete) to
/// `scope` inside `tx`, recording each real change (not a write of the
/// value already stored, nor a delete of a key not stored) in the history
/// with `by`, then dropping the key's oldest values beyond `keep_versions`
/// (a few at a time).
pub(super) fn apply_in(
    tx: &Connection,
    scope: &Scope,
    changes: &[(String, Option<Vec<u8>>)],
    by: &Attribution<'_>,
    keep_versions: u32,
) -> Result<(), StorageError> {
    if changes.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now().timestamp();
    let after_run = match by.run_id {
        Some(id) => id,
        None => newest_run(tx)?,
    };
    let (actor, rewound_to) = by.rewind.unzip();
    for (key, value) in changes {
        let old = stored_value(tx, scope, key)?;
        if old == *value {
            // Also refreshes `updated_at` of an unchanged value, as before.
            if value.is_some() {
                set_value(tx, scope, key, value.as_deref(), now)?;
            }
            continue;
        }
        tx.prepare_cached(
            "INSERT INTO kv_history (tenant, installation, key, old_value, at, run_id,
                checkpoint, actor, rewound_to, after_run)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            scope.tenant,
            scope.installation,
            key,
            old,
            now,
            by.run_id,
            by.checkpoint,
            actor,
            rewound_to,
            after_run
        ])?;
        set_value(tx, scope, key, value.as_deref(), now)?;
        prune_key(tx, scope, key, keep_versions)?;
    }
    Ok(())
}

fn set_value(
    tx: &Connection,
    scope: &Scope,
    key: &str,
    value: Option<&[u8]>,
    now: i64,
) -> Result<(), StorageError> {
    match value {
        Some(v) => tx
            .prepare_cached(
                "INSERT INTO kv (tenant, installation, key, value, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, installation, key)
                 DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )?
            .execute(params![scope.tenant, scope.installation, key, v, now])?,
        None => tx
            .prepare_cached("DELETE FROM kv WHERE tenant = ?1 AND installation = ?2 AND key = ?3")?
            .execute(params![scope.tenant, scope.installation, key])?,
    };
    Ok(())
}

/// The committed value of `key` in `scope`, read on `conn` (a transaction's
/// or a reader's).
pub(super) fn stored_value(
    conn: &Connection,
    scope: &Scope,
    key: &str,
) -> Result<Option<Vec<u8>>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT value FROM kv WHERE tenant = ?1 AND installation = ?2 AND key = ?3",
        )?
        .query_row(params![scope.tenant, scope.installation, key], |r| r.get(0))
        .optional()?)
}

/// The id of the newest recorded run (0: none).
fn newest_run(tx: &Connection) -> Result<i64, StorageError> {
    Ok(tx
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM runs")?
        .query_row([], |r| r.get(0))?)
}

/// Drops `key`'s oldest values beyond `keep_versions`, at most
/// [`PRUNE_PER_CHANGE`].
fn prune_key(
    tx: &Connection,
    scope: &Scope,
    key: &str,
    keep_versions: u32,
) -> Result<(), StorageError> {
    let dropped: Vec<(i64, i64)> = tx
        .prepare_cached(
            "DELETE FROM kv_history WHERE seq IN (
                SELECT seq FROM kv_history WHERE tenant = ?1 AND installation = ?2 AND key = ?3
                ORDER BY seq DESC LIMIT ?4 OFFSET ?5)
             RETURNING seq, MAX(COALESCE(run_id, 0), after_run)",
        )?
        .query_map(
            params![
                scope.tenant,
                scope.installation,
                key,
                PRUNE_PER_CHANGE,
                i64::from(keep_versions.max(1))
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    note_pruned(tx, scope, &dropped)
}

/// Remembers that changes of `scope` up to these (seq, run) were dropped.
fn note_pruned(tx: &Connection, scope: &Scope, dropped: &[(i64, i64)]) -> Result<(), StorageError> {
    let Some(seq) = dropped.iter().map(|d| d.0).max() else {
        return Ok(());
    };
    let run = dropped.iter().map(|d| d.1).max().unwrap_or(0);
    tx.prepare_cached(
        "INSERT INTO kv_history_pruned (tenant, installation, through_seq, through_run)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, installation) DO UPDATE SET
            through_seq = MAX(through_seq, excluded.through_seq),
            through_run = MAX(through_run, excluded.through_run)",
    )?
    .execute(params![scope.tenant, scope.installation, seq, run])?;
    Ok(())
}

/// Attributes the history rows of a run's checkpoints (`token`) to the
/// run, now recorded as `run_id`.
pub(super) fn attribute_checkpoints(
    tx: &Connection,
    scope: &Scope,
    token: i64,
    run_id: i64,
) -> Result<(), StorageError> {
    tx.prepare_cached(
        "UPDATE kv_history SET run_id = ?4, checkpoint = NULL
         WHERE tenant = ?1 AND installation = ?2 AND checkpoint = ?3",
    )?
    .execute(params![scope.tenant, scope.installation, token, run_id])?;
    Ok(())
}

impl SqliteStore {
    fn state_entries(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
        head_bytes: usize,
    ) -> Result<Vec<StoredEntry>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT k.key, length(k.value), substr(k.value, 1, ?4), k.updated_at,
                    h.run_id, h.checkpoint, h.actor, h.rewound_to, h.at
             FROM kv k LEFT JOIN kv_history h ON h.seq = (
                SELECT MAX(seq) FROM kv_history
                WHERE tenant = k.tenant AND installation = k.installation AND key = k.key)
             WHERE k.tenant = ?1 AND k.installation = ?2 AND (?3 IS NULL OR k.key > ?3)
             ORDER BY k.key LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![
                scope.tenant,
                scope.installation,
                after,
                head_bytes as i64,
                limit as i64
            ],
            |r| {
                let at: Option<i64> = r.get(8)?;
                let by = changed_by(r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?);
                Ok(StoredEntry {
                    key: r.get(0)?,
                    value: ValueHead {
                        size: r.get::<_, i64>(1)? as u64,
                        head: r.get(2)?,
                    },
                    updated_at: r.get(3)?,
                    changed: at.map(|at| (by, at)),
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn key_history(
        &self,
        scope: &Scope,
        key: &str,
        limit: usize,
        head_bytes: usize,
    ) -> Result<Vec<KeyVersion>, StorageError> {
        let conn = self.reader();
        // The value a change wrote is the value the next change replaced,
        // or, for the newest, the value stored now.
        let mut stmt = conn.prepare_cached(
            "SELECT seq, run_id, checkpoint, actor, rewound_to, at, next_seq, next_size, next_head
             FROM (SELECT seq, run_id, checkpoint, actor, rewound_to, at,
                          LEAD(seq) OVER w AS next_seq,
                          LEAD(length(old_value)) OVER w AS next_size,
                          LEAD(substr(old_value, 1, ?4)) OVER w AS next_head
                   FROM kv_history WHERE tenant = ?1 AND installation = ?2 AND key = ?3
                   WINDOW w AS (ORDER BY seq))
             ORDER BY seq DESC LIMIT ?5",
        )?;
        let current: Option<ValueHead> = conn
            .prepare_cached(
                "SELECT length(value), substr(value, 1, ?4) FROM kv
                 WHERE tenant = ?1 AND installation = ?2 AND key = ?3",
            )?
            .query_row(
                params![scope.tenant, scope.installation, key, head_bytes as i64],
                |r| Ok(value_head(r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .flatten();
        let rows = stmt.query_map(
            params![
                scope.tenant,
                scope.installation,
                key,
                head_bytes as i64,
                limit as i64
            ],
            |r| {
                let next_seq: Option<i64> = r.get(6)?;
                Ok(KeyVersion {
                    seq: r.get(0)?,
                    by: changed_by(r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                    at: r.get(5)?,
                    value: match next_seq {
                        Some(_) => value_head(r.get(7)?, r.get(8)?),
                        None => current.clone(),
                    },
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn plan_rewind(
        &self,
        scope: &Scope,
        before_run: i64,
        head_bytes: usize,
    ) -> Result<RewindResult, StorageError> {
        // A read only, on a read-only connection, in one transaction so
        // that it sees one state.
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let plan = plan_in(&tx, scope, before_run)?;
        drop(tx);
        Ok(plan.map(|(keys, as_of)| RewindPlan {
            keys: keys.into_iter().map(|k| k.shown(head_bytes)).collect(),
            as_of,
        }))
    }

    fn rewind(
        &self,
        scope: &Scope,
        before_run: i64,
        as_of: Option<i64>,
        actor: &str,
        keep_versions: u32,
    ) -> Result<RewindResult, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // In the restore's transaction (which holds the write lock from its
        // start): a run cannot be claimed between this check and the
        // restore.
        let running: Vec<String> = tx
            .prepare_cached(
                "SELECT feed FROM active_runs WHERE tenant = ?1 AND installation = ?2
                 ORDER BY feed",
            )?
            .query_map(params![scope.tenant, scope.installation], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if !running.is_empty() {
            return Ok(Err(RewindRefusal::RunInProgress(running)));
        }
        let (keys, now_as_of) = match plan_in(&tx, scope, before_run)? {
            Ok(plan) => plan,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if as_of.is_some_and(|a| a != now_as_of) {
            return Ok(Err(RewindRefusal::ChangedSince));
        }
        let changes: Vec<(String, Option<Vec<u8>>)> = keys
            .iter()
            .map(|k| (k.key.clone(), k.restored.clone()))
            .collect();
        let by = Attribution {
            rewind: Some((actor, before_run)),
            ..Attribution::default()
        };
        apply_in(&tx, scope, &changes, &by, keep_versions)?;
        tx.commit()?;
        Ok(Ok(RewindPlan {
            keys: keys.into_iter().map(|k| k.shown(usize::MAX)).collect(),
            as_of: now_as_of,
        }))
    }

    fn prune_state_history(&self, older_than: i64, limit: usize) -> Result<usize, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let dropped: Vec<(String, String, i64, i64)> = tx
            .prepare_cached(
                "DELETE FROM kv_history WHERE seq IN (
                    SELECT seq FROM kv_history WHERE at < ?1 ORDER BY at LIMIT ?2)
                 RETURNING tenant, installation, seq, MAX(COALESCE(run_id, 0), after_run)",
            )?
            .query_map(params![older_than, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut by_scope: std::collections::BTreeMap<(String, String), Vec<(i64, i64)>> =
            Default::default();
        for (tenant, installation, seq, run) in &dropped {
            by_scope
                .entry((tenant.clone(), installation.clone()))
                .or_default()
                .push((*seq, *run));
        }
        for ((tenant, installation), rows) in by_scope {
            note_pruned(
                &tx,
                &Scope {
                    tenant,
                    installation,
                },
                &rows,
            )?;
        }
        tx.commit()?;
        Ok(dropped.len())
    }
}

/// What rewinding `scope` to before run `before_run` restores, and the
/// newest change in its history (0: none), read in `tx`.
///
/// The storage before the run is the storage just before the first change
/// that the run or a later run made, or that was made after the run was
/// recorded (a checkpoint of the run counts: its changes are attributed to
/// the run when it is recorded). Every key changed from there on gets back
/// the value that first change replaced.
fn plan_in(
    tx: &Connection,
    scope: &Scope,
    before_run: i64,
) -> Result<Result<(Vec<Restore>, i64), RewindRefusal>, StorageError> {
    let owner: Option<(String, String)> = tx
        .prepare_cached("SELECT tenant, installation FROM runs WHERE id = ?1")?
        .query_row(params![before_run], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if owner != Some((scope.tenant.clone(), scope.installation.clone())) {
        return Ok(Err(RewindRefusal::NotARun));
    }
    let as_of: i64 = tx
        .prepare_cached(
            "SELECT COALESCE(MAX(seq), 0) FROM kv_history WHERE tenant = ?1 AND installation = ?2",
        )?
        .query_row(params![scope.tenant, scope.installation], |r| r.get(0))?;
    let from: Option<i64> = tx
        .prepare_cached(
            "SELECT MIN(seq) FROM kv_history WHERE tenant = ?1 AND installation = ?2
               AND (run_id >= ?3 OR after_run >= ?3)",
        )?
        .query_row(params![scope.tenant, scope.installation, before_run], |r| {
            r.get(0)
        })?;
    let pruned: Option<(i64, i64)> = tx
        .prepare_cached(
            "SELECT through_seq, through_run FROM kv_history_pruned
             WHERE tenant = ?1 AND installation = ?2",
        )?
        .query_row(params![scope.tenant, scope.installation], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if let Some((through_seq, through_run)) = pruned
        && (through_run >= before_run || from.is_some_and(|f| through_seq >= f))
    {
        return Ok(Err(RewindRefusal::Pruned));
    }
    let Some(from) = from else {
        return Ok(Ok((Vec::new(), as_of)));
    };
    let firsts: Vec<(String, Option<Vec<u8>>)> = tx
        .prepare_cached(
            "SELECT h.key, h.old_value FROM kv_history h
             WHERE h.tenant = ?1 AND h.installation = ?2 AND h.seq >= ?3
               AND h.seq = (SELECT MIN(seq) FROM kv_history
                            WHERE tenant = ?1 AND installation = ?2 AND key = h.key
                              AND seq >= ?3)
             ORDER BY h.key",
        )?
        .query_map(params![scope.tenant, scope.installation, from], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut keys = Vec::new();
    for (key, restored) in firsts {
        let current = stored_value(tx, scope, &key)?;
        if current != restored {
            keys.push(Restore {
                key,
                current,
                restored,
            });
        }
    }
    Ok(Ok((keys, as_of)))
}

#[async_trait::async_trait]
impl StateHistory for SqliteStore {
    async fn state_entries(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
        head_bytes: usize,
    ) -> Result<Vec<StoredEntry>, StorageError> {
        let (scope, after) = (scope.clone(), after.map(str::to_string));
        self.off_worker(move |s| {
            SqliteStore::state_entries(s, &scope, after.as_deref(), limit, head_bytes)
        })
        .await
    }

    async fn key_history(
        &self,
        scope: &Scope,
        key: &str,
        limit: usize,
        head_bytes: usize,
    ) -> Result<Vec<KeyVersion>, StorageError> {
        let (scope, key) = (scope.clone(), key.to_string());
        self.off_worker(move |s| SqliteStore::key_history(s, &scope, &key, limit, head_bytes))
            .await
    }

    async fn plan_rewind(
        &self,
        scope: &Scope,
        before_run: i64,
        head_bytes: usize,
    ) -> Result<RewindResult, StorageError> {
        let scope = scope.clone();
        self.off_worker(move |s| SqliteStore::plan_rewind(s, &scope, before_run, head_bytes))
            .await
    }

    async fn rewind(
        &self,
        scope: &Scope,
        before_run: i64,
        as_of: Option<i64>,
        actor: &str,
        keep_versions: u32,
    ) -> Result<RewindResult, StorageError> {
        let (scope, actor) = (scope.clone(), actor.to_string());
        self.off_worker(move |s| {
            SqliteStore::rewind(s, &scope, before_run, as_of, &actor, keep_versions)
        })
        .await
    }

    async fn prune_state_history(
        &self,
        older_than: i64,
        limit: usize,
    ) -> Result<usize, StorageError> {
        self.off_worker(move |s| SqliteStore::prune_state_history(s, older_than, limit))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::{
        ActiveRun, ChangedBy, InstallationRow, KvBackend, KvHistory, RunEffects, RunRow,
        RunStorage, StorageLimits, TenantRow,
    };

    fn scope(tenant: &str, installation: &str) -> Scope {
        Scope {
            tenant: tenant.into(),
            installation: installation.into(),
        }
    }

    fn install(store: &SqliteStore, tenant: &str, id: &str) {
        if !store.tenant_exists(tenant).unwrap() {
            store
                .add_tenant(&TenantRow {
                    id: tenant.into(),
                    name: tenant.into(),
                    created_at: 1,
                })
                .unwrap();
        }
        let row = InstallationRow {
            tenant: tenant.into(),
            id: id.into(),
            plugin_id: "p".into(),
            plugin_version: "1.0.0".into(),
            plugin_dir: "plugins/p".into(),
            plugin_digest: "d".into(),
            plugin_store: None,
            config: Default::default(),
            approved_egress: Vec::new(),
            approved_rules: None,
            approved_data: None,
            mode: "live".into(),
            enabled: true,
            created_at: 1,
            updated_at: 1,
            removed_at: None,
            revision: 0,
        };
        store.insert_installation(&row, &[], &[]).unwrap();
    }

    type Changes = Vec<(String, Option<Vec<u8>>)>;

    fn set(pairs: &[(&str, Option<&str>)]) -> Changes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(|v| v.as_bytes().to_vec())))
            .collect()
    }

    /// Records a run of `scope` that commits `changes` (with the history
    /// of checkpoints under `checkpoint`); returns its id.
    fn run(
        store: &SqliteStore,
        scope: &Scope,
        changes: Changes,
        checkpoint: Option<i64>,
        keep_versions: u32,
    ) -> i64 {
        let row = RunRow {
            tenant: scope.tenant.clone(),
            installation: scope.installation.clone(),
            plugin_id: "p".into(),
            plugin_version: "1.0.0".into(),
            plugin_digest: "d".into(),
            feed: "orders".into(),
            mode: "live".into(),
            trigger: "manual".into(),
            attempt: 1,
            scheduled_at: 1,
            started_at: 1,
            ended_at: 2,
            status: "ok".into(),
            message: String::new(),
            report: "{}".into(),
        };
        store
            .finish_run(RunEffects {
                run: row,
                kv_changes: changes,
                records: Default::default(),
                artifacts: Default::default(),
                http_calls: Vec::new(),
                settlement: None,
                settled_at: 2,
                webhook_delivery: None,
                kv_history: KvHistory {
                    checkpoint,
                    keep_versions,
                },
            })
            .unwrap()
    }

    /// The key's values, newest first, as text (`-` for a delete), with
    /// who wrote each.
    fn versions(store: &SqliteStore, scope: &Scope, key: &str) -> Vec<(String, ChangedBy)> {
        SqliteStore::key_history(store, scope, key, 100, 100)
            .unwrap()
            .into_iter()
            .map(|v| {
                let text = v
                    .value
                    .map_or("-".to_string(), |h| String::from_utf8(h.head).unwrap());
                (text, v.by)
            })
            .collect()
    }

    /// Every key of `scope` with its value, as text.
    fn stored(store: &SqliteStore, scope: &Scope) -> Vec<(String, String)> {
        SqliteStore::state_entries(store, scope, None, 100, 100)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, String::from_utf8(e.value.head).unwrap()))
            .collect()
    }

    fn rows(store: &SqliteStore) -> i64 {
        store
            .conn()
            .query_row("SELECT COUNT(*) FROM kv_history", [], |r| r.get(0))
            .unwrap()
    }

    fn by_run(run_id: i64) -> ChangedBy {
        ChangedBy::Run { run_id }
    }

    #[tokio::test]
    async fn history_is_written_with_a_runs_commit_and_its_checkpoints() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let shop = scope("acme", "shop");
        let first = run(&store, &shop, set(&[("cursor", Some("1"))]), None, 10);

        // A run checkpoints twice, then commits at its end.
        let mut storage = RunStorage::new(store.clone(), shop.clone(), StorageLimits::default());
        storage.set("cursor", b"2".to_vec()).await.unwrap();
        storage.commit().await.unwrap();
        assert_eq!(
            versions(&store, &shop, "cursor")[0],
            ("2".into(), ChangedBy::UnrecordedRun),
            "a checkpoint's change is in the history at once, its run not known yet"
        );
        storage.set("cursor", b"3".to_vec()).await.unwrap();
        storage.set("page", b"p1".to_vec()).await.unwrap();
        storage.commit().await.unwrap();
        storage.set("cursor", b"4".to_vec()).await.unwrap();
        let token = storage.checkpoint_token();
        assert!(token.is_some());
        let second = run(&store, &shop, storage.take_pending(), token, 10);

        assert_eq!(
            versions(&store, &shop, "cursor"),
            [
                ("4".into(), by_run(second)),
                ("3".into(), by_run(second)),
                ("2".into(), by_run(second)),
                ("1".into(), by_run(first)),
            ]
        );
        assert_eq!(
            versions(&store, &shop, "page"),
            [("p1".into(), by_run(second))]
        );
        let entries = SqliteStore::state_entries(&store, &shop, None, 10, 10).unwrap();
        assert_eq!(entries[0].changed.as_ref().unwrap().0, by_run(second));
        // Writing the value already stored is no change.
        run(
            &store,
            &shop,
            set(&[("cursor", Some("4")), ("gone", None)]),
            None,
            10,
        );
        assert_eq!(versions(&store, &shop, "cursor").len(), 4);
        assert!(versions(&store, &shop, "gone").is_empty());
    }

    #[tokio::test]
    async fn discarded_writes_leave_no_history() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let shop = scope("acme", "shop");
        let mut storage = RunStorage::new(store.clone(), shop.clone(), StorageLimits::default());
        storage.set("cursor", b"1".to_vec()).await.unwrap();
        drop(storage);
        // A failed run is recorded with none of its writes.
        run(&store, &shop, Vec::new(), None, 10);
        let mut scratch =
            RunStorage::scratch(store.clone(), shop.clone(), StorageLimits::default());
        scratch.set("cursor", b"1".to_vec()).await.unwrap();
        scratch.commit().await.unwrap();
        assert_eq!(rows(&store), 0);
        assert!(stored(&store, &shop).is_empty());
    }

    #[test]
    fn rewind_restores_exactly_the_state_before_the_run() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let shop = scope("acme", "shop");
        install(&store, "acme", "shop");
        let one = run(
            &store,
            &shop,
            set(&[("a", Some("1")), ("b", Some("1")), ("c", Some("1"))]),
            None,
            10,
        );
        let two = run(
            &store,
            &shop,
            set(&[("a", Some("2")), ("b", None), ("d", Some("2"))]),
            None,
            10,
        );
        run(
            &store,
            &shop,
            set(&[("a", Some("3")), ("e", Some("3")), ("d", None)]),
            None,
            10,
        );
        let before_two = vec![
            ("a".to_string(), "1".to_string()),
            ("b".into(), "1".into()),
            ("c".into(), "1".into()),
        ];

        let plan = SqliteStore::plan_rewind(&store, &shop, two, 100)
            .unwrap()
            .unwrap();
        let keys: Vec<&str> = plan.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(
            keys,
            ["a", "b", "e"],
            "d was created and deleted since: no change"
        );
        let done = SqliteStore::rewind(&store, &shop, two, Some(plan.as_of), "cli", 10)
            .unwrap()
            .unwrap();
        assert_eq!(done.keys.len(), 3);
        assert_eq!(stored(&store, &shop), before_two);
        let rewind = ChangedBy::Rewind {
            actor: "cli".into(),
            to_before_run: two,
        };
        assert_eq!(
            versions(&store, &shop, "a")[0],
            ("1".into(), rewind.clone())
        );
        assert_eq!(versions(&store, &shop, "e")[0], ("-".into(), rewind));

        // Rewinding again changes nothing; rewinding further goes back on.
        let again = SqliteStore::rewind(&store, &shop, two, None, "cli", 10)
            .unwrap()
            .unwrap();
        assert!(again.keys.is_empty());
        SqliteStore::rewind(&store, &shop, one, None, "cli", 10)
            .unwrap()
            .unwrap();
        assert!(stored(&store, &shop).is_empty());
    }

    #[tokio::test]
    async fn rewind_covers_the_runs_checkpoints_made_before_an_earlier_run_was_recorded() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let shop = scope("acme", "shop");
        install(&store, "acme", "shop");
        run(&store, &shop, set(&[("cursor", Some("0"))]), None, 10);
        // A long run checkpoints; another feed's run is recorded meanwhile;
        // then the long run is recorded.
        let mut long = RunStorage::new(store.clone(), shop.clone(), StorageLimits::default());
        long.set("cursor", b"1".to_vec()).await.unwrap();
        long.commit().await.unwrap();
        run(&store, &shop, set(&[("other", Some("x"))]), None, 10);
        let token = long.checkpoint_token();
        let long_id = run(&store, &shop, long.take_pending(), token, 10);
        SqliteStore::rewind(&store, &shop, long_id, None, "cli", 10)
            .unwrap()
            .unwrap();
        assert_eq!(
            stored(&store, &shop),
            [("cursor".to_string(), "0".to_string())],
            "the storage as it was before the long run's first change"
        );
    }

    #[test]
    fn rewind_is_refused_while_a_run_is_in_progress_and_changes_nothing() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let shop = scope("acme", "shop");
        install(&store, "acme", "shop");
        let one = run(&store, &shop, set(&[("cursor", Some("1"))]), None, 10);
        run(&store, &shop, set(&[("cursor", Some("2"))]), None, 10);
        let active = ActiveRun {
            tenant: "acme".into(),
            installation: "shop".into(),
            feed: "orders".into(),
            trigger: "manual".into(),
            attempt: 1,
            scheduled_at: 1,
            started_at: 1,
        };
        assert!(store.claim_unqueued(&active, 1).unwrap());
        let refused = SqliteStore::rewind(&store, &shop, one, None, "cli", 10).unwrap();
        assert_eq!(
            refused,
            Err(RewindRefusal::RunInProgress(vec!["orders".into()]))
        );
        assert_eq!(
            stored(&store, &shop),
            [("cursor".to_string(), "2".to_string())]
        );
        store.release(&active).unwrap();
        SqliteStore::rewind(&store, &shop, one, None, "cli", 10)
            .unwrap()
            .unwrap();
        assert!(stored(&store, &shop).is_empty());
    }

    #[test]
    fn rewind_refuses_another_installations_or_tenants_run() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let shop = scope("acme", "shop");
        for (tenant, id) in [("acme", "shop"), ("acme", "other"), ("globex", "shop")] {
            install(&store, tenant, id);
        }
        let theirs = run(&store, &shop, set(&[("cursor", Some("1"))]), None, 10);
        for other in [scope("acme", "other"), scope("globex", "shop")] {
            run(&store, &other, set(&[("cursor", Some("mine"))]), None, 10);
            assert_eq!(
                SqliteStore::rewind(&store, &other, theirs, None, "cli", 10).unwrap(),
                Err(RewindRefusal::NotARun)
            );
            assert_eq!(
                SqliteStore::plan_rewind(&store, &other, theirs, 10).unwrap(),
                Err(RewindRefusal::NotARun)
            );
            assert_eq!(
                stored(&store, &other),
                [("cursor".to_string(), "mine".to_string())]
            );
            assert_eq!(versions(&store, &other, "cursor").len(), 1);
        }
        assert_eq!(
            SqliteStore::rewind(&store, &shop, 999, None, "cli", 10).unwrap(),
            Err(RewindRefusal::NotARun)
        );
    }

    #[test]
    fn a_rewind_shown_before_a_run_committed_is_refused() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let shop = scope("acme", "shop");
        install(&store, "acme", "shop");
        let one = run(&store, &shop, set(&[("cursor", Some("1"))]), None, 10);
        run(&store, &shop, set(&[("cursor", Some("2"))]), None, 10);
        let plan = SqliteStore::plan_rewind(&store, &shop, one, 10)
            .unwrap()
            .unwrap();
        run(&store, &shop, set(&[("cursor", Some("3"))]), None, 10);
        assert_eq!(
            SqliteStore::rewind(&store, &shop, one, Some(plan.as_of), "cli", 10).unwrap(),
            Err(RewindRefusal::ChangedSince)
        );
        assert_eq!(
            stored(&store, &shop),
            [("cursor".to_string(), "3".to_string())]
        );
    }

    #[test]
    fn retention_bounds_versions_per_key_and_age_and_a_rewind_needing_more_is_refused() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let shop = scope("acme", "shop");
        install(&store, "acme", "shop");
        let ids: Vec<i64> = (1..=6)
            .map(|i| {
                let changes = set(&[("cursor", Some(&i.to_string())), ("once", Some("x"))]);
                run(&store, &shop, changes, None, 3)
            })
            .collect();
        let kept = versions(&store, &shop, "cursor");
        let texts: Vec<&str> = kept.iter().map(|v| v.0.as_str()).collect();
        assert_eq!(texts, ["6", "5", "4"], "three old values kept per key");
        assert_eq!(versions(&store, &shop, "once").len(), 1);
        // Back to before run 4: its old value (3) is still there.
        assert!(
            SqliteStore::plan_rewind(&store, &shop, ids[3], 10)
                .unwrap()
                .is_ok()
        );
        // Before run 3: the value it replaced was dropped.
        assert_eq!(
            SqliteStore::plan_rewind(&store, &shop, ids[2], 10).unwrap(),
            Err(RewindRefusal::Pruned)
        );
        assert_eq!(
            SqliteStore::rewind(&store, &shop, ids[2], None, "cli", 10).unwrap(),
            Err(RewindRefusal::Pruned)
        );
        // Age: everything recorded before a cutoff in the future goes, in
        // bounded batches.
        let future = chrono::Utc::now().timestamp() + 10;
        assert_eq!(
            SqliteStore::prune_state_history(&store, future, 2).unwrap(),
            2
        );
        assert_eq!(
            SqliteStore::prune_state_history(&store, future, 100).unwrap(),
            2
        );
        assert_eq!(
            SqliteStore::prune_state_history(&store, future, 100).unwrap(),
            0
        );
        assert_eq!(rows(&store), 0);
        assert_eq!(
            SqliteStore::plan_rewind(&store, &shop, ids[5], 10).unwrap(),
            Err(RewindRefusal::Pruned),
            "the history no longer reaches back to the last run"
        );
        let entries = SqliteStore::state_entries(&store, &shop, None, 10, 10).unwrap();
        assert!(
            entries.iter().all(|e| e.changed.is_none()),
            "writers unknown now"
        );
        assert_eq!(entries.len(), 2, "the values themselves stay");
    }

    #[tokio::test]
    async fn a_direct_write_is_recorded_as_such_and_removal_deletes_the_history() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let shop = scope("acme", "shop");
        install(&store, "acme", "shop");
        store
            .kv_apply(&shop, &set(&[("k", Some("v"))]))
            .await
            .unwrap();
        assert_eq!(
            versions(&store, &shop, "k"),
            [("v".into(), ChangedBy::Direct)]
        );
        store.remove_installation("acme", "shop", None, 5).unwrap();
        assert_eq!(rows(&store), 0);
    }
}
