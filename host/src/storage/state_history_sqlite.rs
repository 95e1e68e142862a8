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
