//! PostgreSQL's side of [`StateHistory`], a sibling of SQLite's
//! (`../state_history_sqlite.rs`) with the same tables: `kv_history` (one
//! row per committed change of a key: who, when, and the value it
//! replaced) and `kv_history_pruned` (per installation, the newest change
//! dropped by retention, so a rewind that needs it is refused). Every
//! key-value write of the store goes through [`apply_in`], which writes the
//! changes and their history rows in the caller's transaction.
//!
//! Several nodes write one database, so what SQLite gets from its single
//! writer is an installation's lock here ([`lock_installation`], a
//! transaction-scoped advisory lock): every writer of an installation's
//! storage or history takes it first (a change with its history, the
//! attribution of checkpoints, a rewind, pruning, removal). So one
//! installation's changes commit one at a time, in `seq` order, each
//! reading the value it replaces as committed; and a rewind sees the
//! history it plans from, and the runs in progress, unchanged until it
//! commits.

use std::collections::{BTreeMap, HashMap, HashSet};

use tokio_postgres::{IsolationLevel, Transaction};

use super::PgStore;
use crate::storage::state_history::{
    Attribution, KeyVersion, PRUNE_PER_CHANGE, Restore, RewindPlan, RewindRefusal, RewindResult,
    StateHistory, StoredEntry, ValueHead, changed_by, value_head,
};
use crate::storage::{Scope, StorageError};

/// The seed of the hash an installation's lock is keyed by, so that these
/// locks are told apart from other advisory locks keyed by a hash of text.
pub(super) const INSTALLATION_LOCK_SEED: i64 = 0x6b76_6869_7374; // "kvhist"

/// Takes `scope`'s lock until `tx` ends (again is no-op): every writer of
/// the installation's storage or history waits for the one holding it.
///
/// A run's record should take it before inserting its `runs` row, and a
/// claim of a run before inserting into `active_runs`: then run ids, the
/// history's `seq` and the runs in progress that a rewind checks agree
/// with the order in which they committed. Take it after any lock on the
/// installation's row (as removal does), never before.
pub(super) async fn lock_installation(
    tx: &Transaction<'_>,
    scope: &Scope,
) -> Result<(), StorageError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, $3))",
        &[&scope.tenant, &scope.installation, &INSTALLATION_LOCK_SEED],
    )
    .await?;
    Ok(())
}

/// Applies key-value `changes` (a value to set, or `None` to delete; the
/// last change of a key wins) to `scope` inside `tx`, under the
/// installation's lock, recording each real change (not a write of the
/// value already stored, nor a delete of a key not stored) in the history
/// with `by`, then dropping each changed key's oldest values beyond
/// `keep_versions` (a few at a time). SQLite's `apply_in`, in a few
/// statements for the whole batch rather than a few per key.
pub(super) async fn apply_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    changes: &[(String, Option<Vec<u8>>)],
    by: &Attribution<'_>,
    keep_versions: u32,
) -> Result<(), StorageError> {
    if changes.is_empty() {
        return Ok(());
    }
    lock_installation(tx, scope).await?;
    let now = chrono::Utc::now().timestamp();
    let after_run = match by.run_id {
        Some(id) => id,
        None => newest_run(tx).await?,
    };
    let mut stored = stored_values(tx, scope, changes.iter().map(|c| c.0.as_str())).await?;
    // Each change replaces the value the one before it left.
    let mut history: Vec<(&str, Option<Vec<u8>>)> = Vec::new();
    let mut last: BTreeMap<&str, Option<&[u8]>> = BTreeMap::new();
    for (key, value) in changes {
        let old = match value {
            Some(v) => stored.insert(key.as_str(), v.clone()),
            None => stored.remove(key.as_str()),
        };
        // An unchanged value is written again all the same: that refreshes
        // its `updated_at`, as SQLite does.
        last.insert(key, value.as_deref());
        if old != *value {
            history.push((key, old));
        }
    }
    insert_history(tx, scope, &history, by, now, after_run).await?;
    write_values(tx, scope, &last, now).await?;
    let changed: Vec<&str> = history.iter().map(|h| h.0).collect();
    prune_keys(tx, scope, &changed, keep_versions).await
}

/// The committed values of `keys` in `scope`, read in `tx`.
async fn stored_values<'k>(
    tx: &Transaction<'_>,
    scope: &Scope,
    keys: impl Iterator<Item = &'k str>,
) -> Result<HashMap<&'k str, Vec<u8>>, StorageError> {
    let keys: HashSet<&str> = keys.collect();
    let asked: Vec<&str> = keys.iter().copied().collect();
    let rows = tx
        .query(
            "SELECT key, value FROM kv
             WHERE tenant = $1 AND installation = $2 AND key = ANY($3)",
            &[&scope.tenant, &scope.installation, &asked],
        )
        .await?;
    // Keyed by the keys as asked for, borrowed from the caller.
    Ok(rows
        .iter()
        .filter_map(|r| Some((*keys.get(r.get::<_, &str>(0))?, r.get(1))))
        .collect())
}

/// Inserts the history rows of `changes` (each key with the value it
/// replaced), in order: their `seq` follow it.
async fn insert_history(
    tx: &Transaction<'_>,
    scope: &Scope,
    changes: &[(&str, Option<Vec<u8>>)],
    by: &Attribution<'_>,
    now: i64,
    after_run: i64,
) -> Result<(), StorageError> {
    if changes.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = changes.iter().map(|c| c.0).collect();
    let olds: Vec<Option<&[u8]>> = changes.iter().map(|c| c.1.as_deref()).collect();
    let (actor, rewound_to) = by.rewind.unzip();
    tx.execute(
        "INSERT INTO kv_history (tenant, installation, key, old_value, at, run_id, checkpoint,
            actor, rewound_to, after_run)
         SELECT $1, $2, c.key, c.old_value, $5, $6, $7, $8, $9, $10
         FROM unnest($3::text[], $4::bytea[]) WITH ORDINALITY AS c (key, old_value, n)
         ORDER BY c.n",
        &[
            &scope.tenant,
            &scope.installation,
            &keys,
            &olds,
            &now,
            &by.run_id,
            &by.checkpoint,
            &actor,
            &rewound_to,
            &after_run,
        ],
    )
    .await?;
    Ok(())
}

/// Writes the last value of each key (none: deletes it), stamped `now`.
async fn write_values(
    tx: &Transaction<'_>,
    scope: &Scope,
    last: &BTreeMap<&str, Option<&[u8]>>,
    now: i64,
) -> Result<(), StorageError> {
    let (set, delete): (Vec<_>, Vec<_>) = last.iter().partition(|(_, v)| v.is_some());
    if !set.is_empty() {
        let keys: Vec<&str> = set.iter().map(|(k, _)| **k).collect();
        let values: Vec<&[u8]> = set.iter().filter_map(|(_, v)| **v).collect();
        tx.execute(
            "INSERT INTO kv (tenant, installation, key, value, updated_at)
             SELECT $1, $2, c.key, c.value, $5 FROM unnest($3::text[], $4::bytea[]) AS c (key, value)
             ON CONFLICT (tenant, installation, key)
             DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            &[&scope.tenant, &scope.installation, &keys, &values, &now],
        )
        .await?;
    }
    if !delete.is_empty() {
        let keys: Vec<&str> = delete.iter().map(|(k, _)| **k).collect();
        tx.execute(
            "DELETE FROM kv WHERE tenant = $1 AND installation = $2 AND key = ANY($3)",
            &[&scope.tenant, &scope.installation, &keys],
        )
        .await?;
    }
    Ok(())
}

/// The id of the newest recorded run (0: none).
async fn newest_run(tx: &Transaction<'_>) -> Result<i64, StorageError> {
    Ok(tx
        .query_one("SELECT COALESCE(MAX(id), 0)::bigint FROM runs", &[])
        .await?
        .get(0))
}

/// Drops the oldest values of each of `keys` beyond `keep_versions`, at
/// most [`PRUNE_PER_CHANGE`] per key.
async fn prune_keys(
    tx: &Transaction<'_>,
    scope: &Scope,
    keys: &[&str],
    keep_versions: u32,
) -> Result<(), StorageError> {
    if keys.is_empty() {
        return Ok(());
    }
    let keep = i64::from(keep_versions.max(1));
    let rows = tx
        .query(
            "DELETE FROM kv_history WHERE seq IN (
                SELECT seq FROM (
                    SELECT seq, row_number() OVER (PARTITION BY key ORDER BY seq DESC) AS n
                    FROM kv_history
                    WHERE tenant = $1 AND installation = $2 AND key = ANY($3)) ranked
                WHERE n > $4 AND n <= $4 + $5)
             RETURNING seq, GREATEST(COALESCE(run_id, 0), after_run)",
            &[
                &scope.tenant,
                &scope.installation,
                &keys,
                &keep,
                &PRUNE_PER_CHANGE,
            ],
        )
        .await?;
    let dropped: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    note_pruned(tx, scope, &dropped).await
}

/// Remembers that changes of `scope` up to these (seq, run) were dropped.
async fn note_pruned(
    tx: &Transaction<'_>,
    scope: &Scope,
    dropped: &[(i64, i64)],
) -> Result<(), StorageError> {
    let Some(seq) = dropped.iter().map(|d| d.0).max() else {
        return Ok(());
    };
    let run = dropped.iter().map(|d| d.1).max().unwrap_or(0);
    tx.execute(
        "INSERT INTO kv_history_pruned (tenant, installation, through_seq, through_run)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant, installation) DO UPDATE SET
            through_seq = GREATEST(kv_history_pruned.through_seq, excluded.through_seq),
            through_run = GREATEST(kv_history_pruned.through_run, excluded.through_run)",
        &[&scope.tenant, &scope.installation, &seq, &run],
    )
    .await?;
    Ok(())
}

/// Attributes the history rows of a run's checkpoints (`token`) to the
/// run, now recorded as `run_id`, under the installation's lock.
pub(super) async fn attribute_checkpoints(
    tx: &Transaction<'_>,
    scope: &Scope,
    token: i64,
    run_id: i64,
) -> Result<(), StorageError> {
    lock_installation(tx, scope).await?;
    tx.execute(
        "UPDATE kv_history SET run_id = $4, checkpoint = NULL
         WHERE tenant = $1 AND installation = $2 AND checkpoint = $3",
        &[&scope.tenant, &scope.installation, &token, &run_id],
    )
    .await?;
    Ok(())
}

/// Drops `scope`'s history, for its removal, under its lock.
pub(super) async fn remove_in(tx: &Transaction<'_>, scope: &Scope) -> Result<(), StorageError> {
    lock_installation(tx, scope).await?;
    for table in ["kv_history", "kv_history_pruned"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE tenant = $1 AND installation = $2"),
            &[&scope.tenant, &scope.installation],
        )
        .await?;
    }
    Ok(())
}

/// `head_bytes` as SQL's `substr` takes it.
fn sql_len(head_bytes: usize) -> i32 {
    i32::try_from(head_bytes).unwrap_or(i32::MAX)
}

/// `limit` as SQL's `LIMIT` takes it.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// What rewinding `scope` to before run `before_run` restores, and the
/// newest change in its history (0: none), read in `tx`: SQLite's
/// `plan_in`, which says what "before the run" means.
async fn plan_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    before_run: i64,
) -> Result<Result<(Vec<Restore>, i64), RewindRefusal>, StorageError> {
    let owner = tx
        .query_opt(
            "SELECT tenant, installation FROM runs WHERE id = $1",
            &[&before_run],
        )
        .await?;
    let ours = owner.is_some_and(|r| {
        r.get::<_, &str>(0) == scope.tenant && r.get::<_, &str>(1) == scope.installation
    });
    if !ours {
        return Ok(Err(RewindRefusal::NotARun));
    }
    let span = tx
        .query_one(
            "SELECT COALESCE(MAX(seq), 0)::bigint,
                    MIN(seq) FILTER (WHERE run_id >= $3 OR after_run >= $3)
             FROM kv_history WHERE tenant = $1 AND installation = $2",
            &[&scope.tenant, &scope.installation, &before_run],
        )
        .await?;
    let (as_of, from): (i64, Option<i64>) = (span.get(0), span.get(1));
    let pruned = tx
        .query_opt(
            "SELECT through_seq, through_run FROM kv_history_pruned
             WHERE tenant = $1 AND installation = $2",
            &[&scope.tenant, &scope.installation],
        )
        .await?
        .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)));
    if let Some((through_seq, through_run)) = pruned
        && (through_run >= before_run || from.is_some_and(|f| through_seq >= f))
    {
        return Ok(Err(RewindRefusal::Pruned));
    }
    let Some(from) = from else {
        return Ok(Ok((Vec::new(), as_of)));
    };
    // Each key's first change from there on, with the value it replaced.
    let firsts: Vec<(String, Option<Vec<u8>>)> = tx
        .query(
            "SELECT DISTINCT ON (key) key, old_value FROM kv_history
             WHERE tenant = $1 AND installation = $2 AND seq >= $3
             ORDER BY key, seq",
            &[&scope.tenant, &scope.installation, &from],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut current = stored_values(tx, scope, firsts.iter().map(|f| f.0.as_str())).await?;
    let keys = firsts
        .iter()
        .filter_map(|(key, restored)| {
            let current = current.remove(key.as_str());
            (current != *restored).then(|| Restore {
                key: key.clone(),
                current,
                restored: restored.clone(),
            })
        })
        .collect();
    Ok(Ok((keys, as_of)))
}

#[async_trait::async_trait]
impl StateHistory for PgStore {
    async fn state_entries(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
        head_bytes: usize,
    ) -> Result<Vec<StoredEntry>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT k.key, octet_length(k.value)::bigint, substr(k.value, 1, $4), k.updated_at,
                        h.run_id, h.checkpoint, h.actor, h.rewound_to, h.at
                 FROM kv k LEFT JOIN LATERAL (
                    SELECT run_id, checkpoint, actor, rewound_to, at FROM kv_history
                    WHERE tenant = $1 AND installation = $2 AND key = k.key
                    ORDER BY seq DESC LIMIT 1) h ON true
                 WHERE k.tenant = $1 AND k.installation = $2 AND ($3::text IS NULL OR k.key > $3)
                 ORDER BY k.key LIMIT $5",
            )
            .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &scope.tenant,
                    &scope.installation,
                    &after,
                    &sql_len(head_bytes),
                    &sql_limit(limit),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let at: Option<i64> = r.get(8);
                let by = changed_by(r.get(4), r.get(5), r.get(6), r.get(7));
                StoredEntry {
                    key: r.get(0),
                    value: ValueHead {
                        size: r.get::<_, i64>(1) as u64,
                        head: r.get(2),
                    },
                    updated_at: r.get(3),
                    changed: at.map(|at| (by, at)),
                }
            })
            .collect())
    }

    async fn key_history(
        &self,
        scope: &Scope,
        key: &str,
        limit: usize,
        head_bytes: usize,
    ) -> Result<Vec<KeyVersion>, StorageError> {
        let mut client = self.client().await?;
        // One snapshot for the history and the value stored now.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let head_len = sql_len(head_bytes);
        let current = tx
            .query_opt(
                "SELECT octet_length(value)::bigint, substr(value, 1, $4) FROM kv
                 WHERE tenant = $1 AND installation = $2 AND key = $3",
                &[&scope.tenant, &scope.installation, &key, &head_len],
            )
            .await?
            .and_then(|r| value_head(r.get(0), r.get(1)));
        // The value a change wrote is the value the next change replaced,
        // or, for the newest, the value stored now.
        let rows = tx
            .query(
                "SELECT seq, run_id, checkpoint, actor, rewound_to, at, next_seq, next_size,
                        next_head
                 FROM (SELECT seq, run_id, checkpoint, actor, rewound_to, at,
                              LEAD(seq) OVER w AS next_seq,
                              LEAD(octet_length(old_value)::bigint) OVER w AS next_size,
                              LEAD(substr(old_value, 1, $4)) OVER w AS next_head
                       FROM kv_history WHERE tenant = $1 AND installation = $2 AND key = $3
                       WINDOW w AS (ORDER BY seq)) h
                 ORDER BY seq DESC LIMIT $5",
                &[
                    &scope.tenant,
                    &scope.installation,
                    &key,
                    &head_len,
                    &sql_limit(limit),
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|r| {
                let next_seq: Option<i64> = r.get(6);
                KeyVersion {
                    seq: r.get(0),
                    by: changed_by(r.get(1), r.get(2), r.get(3), r.get(4)),
                    at: r.get(5),
                    value: match next_seq {
                        Some(_) => value_head(r.get(7), r.get(8)),
                        None => current.clone(),
                    },
                }
            })
            .collect())
    }

    async fn plan_rewind(
        &self,
        scope: &Scope,
        before_run: i64,
        head_bytes: usize,
    ) -> Result<RewindResult, StorageError> {
        let mut client = self.client().await?;
        // A read only, in one snapshot, so that it sees one state; the
        // rewind checks that state is still current (`as_of`).
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let plan = plan_in(&tx, scope, before_run).await?;
        tx.commit().await?;
        Ok(plan.map(|(keys, as_of)| RewindPlan {
            keys: keys.into_iter().map(|k| k.shown(head_bytes)).collect(),
            as_of,
        }))
    }

    async fn rewind(
        &self,
        scope: &Scope,
        before_run: i64,
        as_of: Option<i64>,
        actor: &str,
        keep_versions: u32,
    ) -> Result<RewindResult, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Under the installation's lock, held to the commit: no change of
        // its storage or history, nor a claim of a run that takes the lock,
        // comes between these reads and the restore. Read committed: each
        // read below sees what committed before the lock was granted.
        lock_installation(&tx, scope).await?;
        let running: Vec<String> = tx
            .query(
                "SELECT feed FROM active_runs WHERE tenant = $1 AND installation = $2
                 ORDER BY feed COLLATE \"C\"",
                &[&scope.tenant, &scope.installation],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !running.is_empty() {
            return Ok(Err(RewindRefusal::RunInProgress(running)));
        }
        let (keys, now_as_of) = match plan_in(&tx, scope, before_run).await? {
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
        apply_in(&tx, scope, &changes, &by, keep_versions).await?;
        tx.commit().await?;
        Ok(Ok(RewindPlan {
            keys: keys.into_iter().map(|k| k.shown(usize::MAX)).collect(),
            as_of: now_as_of,
        }))
    }

    /// One installation at a time, oldest value first, each in a short
    /// transaction under the installation's lock (a batch spans many
    /// installations; holding all their locks at once could deadlock two
    /// nodes pruning together, and would fill the lock table).
    async fn prune_state_history(
        &self,
        older_than: i64,
        limit: usize,
    ) -> Result<usize, StorageError> {
        let mut client = self.client().await?;
        let mut dropped = 0;
        while dropped < limit {
            let Some(oldest) = client
                .query_opt(
                    "SELECT tenant, installation FROM kv_history WHERE at < $1 ORDER BY at LIMIT 1",
                    &[&older_than],
                )
                .await?
            else {
                break;
            };
            let scope = Scope {
                tenant: oldest.get(0),
                installation: oldest.get(1),
            };
            let tx = client.transaction().await?;
            lock_installation(&tx, &scope).await?;
            let rows = tx
                .query(
                    "DELETE FROM kv_history WHERE seq IN (
                        SELECT seq FROM kv_history
                        WHERE tenant = $1 AND installation = $2 AND at < $3
                        ORDER BY at LIMIT $4)
                     RETURNING seq, GREATEST(COALESCE(run_id, 0), after_run)",
                    &[
                        &scope.tenant,
                        &scope.installation,
                        &older_than,
                        &sql_limit(limit - dropped),
                    ],
                )
                .await?;
            let rows: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            note_pruned(&tx, &scope, &rows).await?;
            tx.commit().await?;
            dropped += rows.len();
        }
        Ok(dropped)
    }
}
