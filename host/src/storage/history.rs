//! Feed executions: the recorded runs, filtered for `airlock runs list` and
//! read whole for `airlock runs show`.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::{SqliteStore, StorageError};

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this installation.
    pub installation: Option<String>,
    /// Only this feed.
    pub feed: Option<String>,
    /// Only this outcome: `ok`, `info`, `retry`, `error` or `interrupted`.
    pub status: Option<String>,
    /// Only runs started at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// One recorded run, without its full report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    /// The run's id.
    pub id: i64,
    /// Tenant.
    pub tenant: String,
    /// Installation.
    pub installation: String,
    /// Plugin id.
    pub plugin_id: String,
    /// Plugin version.
    pub plugin_version: String,
    /// Feed.
    pub feed: String,
    /// `test` or `live`.
    pub mode: String,
    /// `schedule`, `manual` or `retry`.
    pub trigger: String,
    /// Attempt.
    pub attempt: u32,
    /// When it was due.
    pub scheduled_at: i64,
    /// When it started.
    pub started_at: i64,
    /// When it ended.
    pub ended_at: i64,
    /// Outcome.
    pub status: String,
    /// One line.
    pub message: String,
}

const SUMMARY_COLUMNS: &str = "id, tenant, installation, plugin_id, plugin_version, feed, mode, \
     trigger, attempt, scheduled_at, started_at, ended_at, status, message";

fn summary_from_row(r: &Row<'_>) -> rusqlite::Result<RunSummary> {
    Ok(RunSummary {
        id: r.get(0)?,
        tenant: r.get(1)?,
        installation: r.get(2)?,
        plugin_id: r.get(3)?,
        plugin_version: r.get(4)?,
        feed: r.get(5)?,
        mode: r.get(6)?,
        trigger: r.get(7)?,
        attempt: r.get(8)?,
        scheduled_at: r.get(9)?,
        started_at: r.get(10)?,
        ended_at: r.get(11)?,
        status: r.get(12)?,
        message: r.get(13)?,
    })
}

impl SqliteStore {
    /// Runs matching `filter`, newest first.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM runs
             WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR installation = ?2)
               AND (?3 IS NULL OR feed = ?3) AND (?4 IS NULL OR status = ?4)
               AND (?5 IS NULL OR started_at >= ?5)
             ORDER BY id DESC LIMIT ?6"
        ))?;
        let rows = stmt.query_map(
            params![
                filter.tenant,
                filter.installation,
                filter.feed,
                filter.status,
                filter.since,
                filter.limit as i64
            ],
            summary_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Run `id` with its full report (JSON).
    pub fn run(&self, id: i64) -> Result<Option<(RunSummary, String)>, StorageError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {SUMMARY_COLUMNS}, report FROM runs WHERE id = ?1"),
                [id],
                |r| Ok((summary_from_row(r)?, r.get(14)?)),
            )
            .optional()?)
    }
}
