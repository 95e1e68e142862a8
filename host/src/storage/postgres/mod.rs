//! The PostgreSQL backend, a sibling of [`SqliteStore`](super::SqliteStore)
//! for a platform that runs several `serve` nodes on one database (issue 12).
//!
//! Every concern of [`Store`](super::Store) is here, each held to the
//! store's conformance suite (`../conformance/`) exactly as SQLite is: the
//! key-value data ([`KvBackend`](super::KvBackend), `kv.rs`) and its
//! history ([`StateHistory`](super::StateHistory), `state_history.rs`), the
//! registry of tenants and installations ([`Registry`](super::Registry),
//! `registry.rs`), the run ledger ([`RunLedger`](super::RunLedger),
//! [`History`](super::History), `ledger.rs`), the work queue with its
//! leases ([`WorkQueue`](super::WorkQueue), `queue.rs`), the tenant's
//! records ([`RecordStore`](super::RecordStore), `records.rs`), published
//! artifacts ([`ArtifactStore`](super::ArtifactStore), `artifacts.rs`),
//! OAuth2 credentials ([`OAuthStore`](super::OAuthStore), `oauth.rs`),
//! webhook secrets ([`WebhookStore`](super::WebhookStore), `webhooks.rs`),
//! the admin API's tokens and audit ([`AdminStore`](super::AdminStore),
//! `admin.rs`) and the gauges ([`Gauges`](super::Gauges), `gauges.rs`).
//!
//! - Connections come from a `deadpool-postgres` pool; every call takes one
//!   for its statement or transaction and gives it back.
//! - The schema is versioned (`migrations.rs`), applied at connect under a
//!   transaction-scoped advisory lock, so nodes starting together migrate
//!   once.
//! - Keys are `text COLLATE "C"`: they compare as their UTF-8 bytes, as
//!   Rust strings and SQLite's BINARY collation do, whatever the database's
//!   locale.

mod admin;
mod artifacts;
mod gauges;
mod kv;
mod ledger;
mod migrations;
mod oauth;
mod queue;
mod records;
mod registry;
mod state_history;
mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

pub use queue::DEFAULT_LEASE;

use super::StorageError;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a call waits for a free connection of the pool.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// The shortest lease: renewed every third of it, it must outlast a round
/// trip by far.
const MIN_LEASE: Duration = Duration::from_millis(300);

/// How a node connects to PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// The most connections the node's pool opens.
    pub max_connections: usize,
    /// How long a run's claim holds unless renewed (renewed every third of
    /// it): how soon a dead node's runs are recovered.
    pub lease: Duration,
    /// Where the plugin store is: a directory every node sees alike.
    pub data_dir: Option<PathBuf>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            lease: DEFAULT_LEASE,
            data_dir: None,
        }
    }
}

/// The PostgreSQL store: a pool of connections to one database, and the
/// leases of the runs this process claims.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    leases: Arc<queue::Leases>,
    data_dir: Option<PathBuf>,
}

impl std::fmt::Debug for PgStore {
    /// Never the URL: it holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// A PostgreSQL error, kept as the cause of a database error.
impl From<tokio_postgres::Error> for StorageError {
    fn from(e: tokio_postgres::Error) -> Self {
        StorageError::Database(Box::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StorageError::Database(Box::new(e))
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`,
    /// or the key=value form) with at most `max_connections` connections,
    /// and migrates its schema to this build's version. The error names the
    /// host and database, never the password.
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self, StorageError> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| StorageError::Open {
            path: "the PostgreSQL URL".into(),
            source: Box::new(e),
        })?;
        Self::with_config(config, options).await
    }

    /// [`Self::connect`] with a parsed configuration.
    pub async fn with_config(
        config: tokio_postgres::Config,
        options: PgOptions,
    ) -> Result<Self, StorageError> {
        let place = describe(&config);
        let mut config = config;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // An unreachable database fails a call after these, not never.
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StorageError::Open {
                path: place.clone(),
                source: Box::new(e),
            })?;
        let leases = queue::Leases::start(pool.clone(), options.lease.max(MIN_LEASE));
        let store = Self {
            pool,
            leases,
            data_dir: options.data_dir,
        };
        store
            .migrate()
            .await
            .map_err(|e| migration_failed(place, e))?;
        Ok(store)
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        Ok(self.pool.get().await?)
    }
}

/// Why the store cannot open, from why its migration failed: a schema
/// newer than this build is said as such (as SQLite's is), anything else
/// is a failure to open the database at `place`.
fn migration_failed(place: String, e: StorageError) -> StorageError {
    match e {
        StorageError::SchemaTooNew { .. } => e,
        other => StorageError::Open {
            path: place,
            source: Box::new(other),
        },
    }
}

impl PgStore {
    /// Whether `url` is a PostgreSQL URL (or key=value list); the error
    /// says why not, never the URL itself.
    pub fn check_url(url: &str) -> Result<(), String> {
        if url.trim().is_empty() {
            return Err("the PostgreSQL URL is empty".into());
        }
        let config = url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| format!("not a PostgreSQL URL or key=value list ({e})"))?;
        // A password with an unencoded `@` would be read partly as the host
        // (and shown as one in errors).
        if config.get_hosts().iter().any(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.contains('@'),
            _ => false,
        }) {
            return Err(
                "the URL's user or password holds an `@`: write it as %40 (percent-encoded)".into(),
            );
        }
        Ok(())
    }

    /// `postgres host:port/database` of `url`, for messages: no user, no
    /// password.
    pub fn describe_url(url: &str) -> String {
        url.parse::<tokio_postgres::Config>()
            .map(|c| describe(&c))
            .unwrap_or_else(|_| "PostgreSQL".into())
    }
}

/// `host:port/database` of `config`, for errors: no user, no password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        // Part of a password with an unencoded `@` is never shown.
        Some(tokio_postgres::config::Host::Tcp(h)) if h.contains('@') => "(hidden)".into(),
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("(default database)");
    format!("postgres {host}:{port}/{db}")
}

/// A fresh, empty PostgreSQL store for a test: a schema of its own in the
/// database at `$AIRLOCK_TEST_POSTGRES` (`scripts/postgres.sh` makes one;
/// `scripts/test.sh` sets it). None when that is not set, unless
/// `$AIRLOCK_REQUIRE_POSTGRES` is, when a missing database fails the test.
#[cfg(test)]
pub(crate) async fn test_store() -> Option<PgStore> {
    test_nodes(1).await.map(|mut nodes| nodes.remove(0))
}

/// `n` stores on one fresh test schema, as `n` nodes would be: each its own
/// pool and leases (see [`test_store`]).
#[cfg(test)]
pub(crate) async fn test_nodes(n: usize) -> Option<Vec<PgStore>> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let Ok(url) = std::env::var("AIRLOCK_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("AIRLOCK_REQUIRE_POSTGRES").is_none(),
            "AIRLOCK_REQUIRE_POSTGRES is set but AIRLOCK_TEST_POSTGRES is not"
        );
        eprintln!("skipped on PostgreSQL: AIRLOCK_TEST_POSTGRES is not set");
        return None;
    };
    let schema = format!(
        "test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros()
    );
    let mut config: tokio_postgres::Config = url.parse().expect("AIRLOCK_TEST_POSTGRES is a URL");
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("the test database answers");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("a test schema");
    config.options(format!("-c search_path={schema}"));
    let options = PgOptions {
        max_connections: 4,
        ..PgOptions::default()
    };
    let mut nodes = Vec::new();
    for _ in 0..n {
        let node = PgStore::with_config(config.clone(), options.clone())
            .await
            .expect("a test store");
        nodes.push(node);
    }
    Some(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_schema_is_said_as_such_and_no_error_shows_the_password() {
        let newer = StorageError::SchemaTooNew {
            found: 9,
            supported: 1,
        };
        let e = migration_failed("postgres h:5432/db".into(), newer);
        assert!(matches!(e, StorageError::SchemaTooNew { found: 9, .. }));
        let config: tokio_postgres::Config = "postgres://airlock:s3cr3t-pw@db.example:6432/shop"
            .parse()
            .unwrap();
        assert_eq!(describe(&config), "postgres db.example:6432/shop");
        let e = migration_failed(describe(&config), StorageError::Conflict("x".into()));
        assert_eq!(
            e.to_string(),
            "cannot open database postgres db.example:6432/shop"
        );
        let at_in_password = "postgres://airlock:s3cr3t@pw@db.example:6432/shop";
        let refused = PgStore::check_url(at_in_password).unwrap_err();
        assert!(
            refused.contains("%40") && !refused.contains("pw"),
            "{refused}"
        );
        assert!(!PgStore::describe_url(at_in_password).contains("pw"));
        assert!(PgStore::check_url(" ").unwrap_err().contains("empty"));
        let bad = "postgres://airlock:s3cr3t-pw@db.example:notaport/shop";
        let Err(e) = bad.parse::<tokio_postgres::Config>() else {
            panic!("a bad port parsed");
        };
        assert!(!format!("{e} {e:?}").contains("s3cr3t"));
    }
}

/// The store's conformance suite (`../conformance/`) on PostgreSQL: a
/// fresh schema for each behaviour.
#[cfg(test)]
mod conformance {
    use crate::storage::conformance::CommitEffects;
    use crate::storage::{ArtifactEffects, RecordEffects, Scope, StorageError};

    async fn fresh() -> Option<std::sync::Arc<super::PgStore>> {
        super::test_store().await.map(std::sync::Arc::new)
    }

    #[async_trait::async_trait]
    impl CommitEffects for super::PgStore {
        async fn commit_record_effects(
            &self,
            scope: &Scope,
            effects: &RecordEffects,
            now: i64,
        ) -> Result<(), StorageError> {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            super::records::apply_in(&tx, scope, effects, now).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn commit_artifact_effects(
            &self,
            scope: &Scope,
            effects: &ArtifactEffects,
            run_id: i64,
            now: i64,
        ) -> Result<(), StorageError> {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            super::artifacts::apply_in(&tx, scope, effects, run_id, now).await?;
            tx.commit().await?;
            Ok(())
        }
    }

    crate::storage::conformance::conformance_suite!(fresh);
}
