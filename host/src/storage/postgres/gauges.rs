//! PostgreSQL's side of [`Gauges`]: the same bounded counts as SQLite's
//! (`gauges_sqlite.rs`), over every node's work, since the queue, the runs
//! in progress and the notifications are the database's.

use std::collections::BTreeMap;

use super::PgStore;
use crate::storage::gauges::{PENDING_COUNT_CAP, PENDING_PAIRS_CAP};
use crate::storage::{GaugeReading, Gauges, PendingCount, StorageError};

/// Per enabled installation and collection it reads (as approved), the
/// records pending for it, counted up to a cap; at most a number of pairs.
const PENDING_BY_CONSUMER: &str = "
    SELECT i.plugin_id, c.collection,
        (SELECT COUNT(*) FROM (
            SELECT 1 FROM records r
            LEFT JOIN record_acks a ON a.tenant = r.tenant AND a.installation = i.id
                AND a.collection = r.collection AND a.id = r.id
            WHERE r.tenant = i.tenant AND r.collection = c.collection AND r.body IS NOT NULL
                AND (a.version IS NULL OR a.version < r.version)
            LIMIT $1) pending)
    FROM installations i,
        jsonb_array_elements_text(i.approved_data::jsonb -> 'reads') AS c (collection)
    WHERE i.removed_at IS NULL AND i.enabled AND i.approved_data IS NOT NULL
    ORDER BY i.tenant, i.id, c.collection
    LIMIT $2";

#[async_trait::async_trait]
impl Gauges for PgStore {
    async fn gauges(&self, now: i64) -> Result<GaugeReading, StorageError> {
        let client = self.client().await?;
        let counts = client
            .query_one(
                "SELECT (SELECT COUNT(*) FROM queue WHERE due_at <= $1),
                        (SELECT COUNT(*) FROM active_runs),
                        (SELECT COUNT(*) FROM notifications WHERE acked_at IS NULL)",
                &[&now],
            )
            .await?;
        let mut sums: BTreeMap<(String, String), u64> = BTreeMap::new();
        let rows = client
            .query(
                PENDING_BY_CONSUMER,
                &[&(PENDING_COUNT_CAP as i64), &(PENDING_PAIRS_CAP as i64)],
            )
            .await?;
        for row in rows {
            let n: i64 = row.get(2);
            *sums.entry((row.get(0), row.get(1))).or_default() += n as u64;
        }
        Ok(GaugeReading {
            queue_due: counts.get::<_, i64>(0) as u64,
            in_progress: counts.get::<_, i64>(1) as u64,
            open_notifications: counts.get::<_, i64>(2) as u64,
            records_pending: sums
                .into_iter()
                .map(|((plugin, collection), count)| PendingCount {
                    plugin,
                    collection,
                    count,
                })
                .collect(),
        })
    }
}
