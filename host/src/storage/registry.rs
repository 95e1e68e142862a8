//! The registry as async code sees it: tenants, and their installations
//! with revisions (compare-and-set updates), sealed secrets and schedules.

use std::path::Path;

use super::{InstallationRow, ScheduleRow, StorageError, StoredSecret, TenantRow};

/// Tenants and installations, as a backend offers them to async code: no
/// call blocks a tokio worker (SQLite runs each on the blocking pool). The
/// semantics of each call are those of `SqliteStore`'s method of the same
/// name.
#[async_trait::async_trait]
pub trait Registry: Send + Sync {
    /// Adds a tenant whose id was never used.
    async fn add_tenant(&self, tenant: TenantRow) -> Result<(), StorageError>;
    /// The tenants, by id.
    async fn tenants(&self) -> Result<Vec<TenantRow>, StorageError>;
    /// Whether tenant `id` exists and is not removed.
    async fn tenant_exists(&self, id: &str) -> Result<bool, StorageError>;
    /// Removes a tenant (kept as a tombstone), refused while it has
    /// installations that are not removed.
    async fn remove_tenant(&self, id: &str) -> Result<(), StorageError>;
    /// Stores a new installation with its sealed secrets and schedules, all
    /// or nothing.
    async fn insert_installation(
        &self,
        row: InstallationRow,
        secrets: Vec<StoredSecret>,
        schedules: Vec<ScheduleRow>,
    ) -> Result<(), StorageError>;
    /// Updates an installation still at `row.revision` (compare-and-set),
    /// replacing its secrets and schedules when given; returns the new
    /// revision.
    async fn update_installation(
        &self,
        row: InstallationRow,
        secrets: Option<Vec<StoredSecret>>,
        schedules: Option<Vec<ScheduleRow>>,
    ) -> Result<i64, StorageError>;
    /// Removes an installation (keeping a tombstone), if it is not running
    /// and, when `revision` is given, unchanged since then.
    async fn remove_installation(
        &self,
        tenant: &str,
        id: &str,
        revision: Option<i64>,
        now: i64,
    ) -> Result<(), StorageError>;
    /// The installation `tenant/id`, removed or not.
    async fn installation(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<InstallationRow>, StorageError>;
    /// Installations (of one tenant, or all), by tenant and id.
    async fn installations(
        &self,
        tenant: Option<&str>,
        include_removed: bool,
    ) -> Result<Vec<InstallationRow>, StorageError>;
    /// The sealed secrets of an installation.
    async fn secrets(&self, tenant: &str, id: &str) -> Result<Vec<StoredSecret>, StorageError>;
    /// The schedules of an installation, by feed.
    async fn schedules(&self, tenant: &str, id: &str) -> Result<Vec<ScheduleRow>, StorageError>;
    /// The data directory, where the plugin store keeps the plugins
    /// installations are pinned to; None for a store that has none (SQLite
    /// in memory), which therefore cannot install.
    fn data_dir(&self) -> Option<&Path>;
}
