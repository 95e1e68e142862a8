//! SQLite's side of [`Gauges`]: counts on the read-only connections, each
//! query bounded by an index and a limit.

use std::collections::BTreeMap;

use rusqlite::params;

use super::gauges::{PENDING_COUNT_CAP, PENDING_PAIRS_CAP};
use super::{GaugeReading, Gauges, PendingCount, SqliteStore, StorageError};

/// Per enabled installation and collection it reads (as approved), the
/// records pending for it, counted up to a cap; at most a number of pairs.
const PENDING_BY_CONSUMER: &str = "
    SELECT i.plugin_id, c.value,
        (SELECT COUNT(*) FROM (
            SELECT 1 FROM records r
            LEFT JOIN record_acks a ON a.tenant = r.tenant AND a.installation = i.id
                AND a.collection = r.collection AND a.id = r.id
            WHERE r.tenant = i.tenant AND r.collection = c.value AND r.body IS NOT NULL
                AND (a.version IS NULL OR a.version < r.version)
            LIMIT ?1))
    FROM installations i, json_each(i.approved_data, '$.reads') c
    WHERE i.removed_at IS NULL AND i.enabled AND i.approved_data IS NOT NULL
    ORDER BY i.tenant, i.id, c.value
    LIMIT ?2";

impl SqliteStore {
    /// See [`Gauges::gauges`].
    pub fn gauges(&self, now: i64) -> Result<GaugeReading, StorageError> {
        let conn = self.reader();
        let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<u64, StorageError> {
            Ok(conn
                .prepare_cached(sql)?
                .query_row(p, |r| r.get::<_, i64>(0))? as u64)
        };
        let queue_due = count("SELECT COUNT(*) FROM queue WHERE due_at <= ?1", &[&now])?;
        let in_progress = count("SELECT COUNT(*) FROM active_runs", &[])?;
        let open_notifications = count(
            "SELECT COUNT(*) FROM notifications WHERE acked_at IS NULL",
            &[],
        )?;
        let mut sums: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut stmt = conn.prepare_cached(PENDING_BY_CONSUMER)?;
        let rows = stmt.query_map(
            params![PENDING_COUNT_CAP as i64, PENDING_PAIRS_CAP as i64],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )?;
        for row in rows {
            let (plugin, collection, n) = row?;
            *sums.entry((plugin, collection)).or_default() += n as u64;
        }
        let records_pending = sums
            .into_iter()
            .map(|((plugin, collection), count)| PendingCount {
                plugin,
                collection,
                count,
            })
            .collect();
        Ok(GaugeReading {
            queue_due,
            in_progress,
            open_notifications,
            records_pending,
        })
    }
}

#[async_trait::async_trait]
impl Gauges for SqliteStore {
    async fn gauges(&self, now: i64) -> Result<GaugeReading, StorageError> {
        self.off_worker(move |s| SqliteStore::gauges(s, now)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{RecordWrite, TenantRow};

    /// An installation row of `plugin` approved to read `reads` (none:
    /// approved before records existed).
    fn install(s: &SqliteStore, id: &str, plugin: &str, reads: Option<&str>, enabled: bool) {
        s.conn()
            .execute(
                "INSERT INTO installations (tenant, id, plugin_id, plugin_version, plugin_dir,
                    plugin_digest, config, approved_egress, mode, enabled, created_at,
                    updated_at, approved_data)
                 VALUES ('acme', ?1, ?2, '1.0.0', '', '', '{}', '[]', 'live', ?3, 0, 0, ?4)",
                params![
                    id,
                    plugin,
                    enabled,
                    reads.map(|r| format!(r#"{{"reads":[{r}],"writes":[]}}"#))
                ],
            )
            .unwrap();
    }

    fn store() -> SqliteStore {
        let s = SqliteStore::in_memory().unwrap();
        s.add_tenant(&TenantRow {
            id: "acme".into(),
            name: "acme".into(),
            created_at: 0,
        })
        .unwrap();
        s
    }

    fn pending(plugin: &str, collection: &str, count: u64) -> PendingCount {
        PendingCount {
            plugin: plugin.into(),
            collection: collection.into(),
            count,
        }
    }

    #[test]
    fn the_gauges_count_what_is_due_open_and_pending() {
        let s = store();
        assert_eq!(s.gauges(100).unwrap(), GaugeReading::default());
        install(&s, "x1", "xero", Some(r#""orders","returns""#), true);
        install(&s, "x2", "xero", Some(r#""orders""#), true);
        install(&s, "st", "staingard", Some(r#""orders""#), false);
        install(&s, "old", "hello", None, true);
        let orders: Vec<RecordWrite> = ["a", "b", "c"]
            .iter()
            .map(|id| RecordWrite {
                collection: "orders".into(),
                id: (*id).into(),
                body: Some("{}".into()),
            })
            .collect();
        s.write_records("acme", "platform", &orders, 1).unwrap();
        // x1 exported a at its version (1) and b at an older one.
        let conn = s.conn();
        for (id, version) in [("a", 1), ("b", 0)] {
            conn.execute(
                "INSERT INTO record_acks VALUES ('acme', 'x1', 'orders', ?1, ?2, 1)",
                params![id, version],
            )
            .unwrap();
        }
        for (id, due) in [(1, 50), (2, 100), (3, 101)] {
            conn.execute(
                "INSERT INTO queue (id, tenant, installation, feed, trigger, attempt,
                    scheduled_at, due_at, created_at)
                 VALUES (?1, 'acme', 'x1', 'f', 'manual', 1, 0, ?2, 0)",
                params![id, due],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO active_runs (tenant, installation, feed, trigger, attempt,
                scheduled_at, started_at) VALUES ('acme', 'x2', 'f', 'manual', 1, 0, 0)",
            [],
        )
        .unwrap();
        for acked in [None, Some(5), None] {
            conn.execute(
                "INSERT INTO notifications (tenant, installation, feed, message, count,
                    first_at, last_at, acked_at) VALUES ('acme', 'x1', 'f', 'm', 1, 0, 0, ?1)",
                params![acked],
            )
            .unwrap();
        }
        drop(conn);
        let reading = s.gauges(100).unwrap();
        assert_eq!(
            reading,
            GaugeReading {
                queue_due: 2,
                in_progress: 1,
                open_notifications: 2,
                // x1: b and c pending (a exported); x2: all three; no
                // returns written; the disabled staingard is not counted.
                records_pending: vec![pending("xero", "orders", 5), pending("xero", "returns", 0)],
            }
        );
    }
}
