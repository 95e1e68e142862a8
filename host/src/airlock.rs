//! [`Airlock`], the embeddable host: it ties a plugin and an installation to
//! the runtime, storage and egress client, runs one feed, commits or rolls
//! back the run's storage by its outcome, and records the run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::ConfigValues;
use crate::egress::{
    AddressPolicy, EgressClient, EgressLimits, EgressPolicy, Grants, PermittedDomains, RateLimits,
    RequestCaps, ResolveOverrides, Throttle,
};
use crate::manifest::Plugin;
use crate::runs::{Mode, RunEnd, RunReport, RunRequest};
use crate::runtime::{
    CallOutput, FeedCall, HostLimits, HttpBudget, LoadedComponent, RunSetup, Runtime, RuntimeError,
};
use crate::storage::{
    KvBackend, RunRow, RunStorage, Scope, Settlement, SqliteStore, StorageError, StorageLimits,
};

/// One plugin enabled for one tenant, with its config and mode.
#[derive(Debug, Clone)]
pub struct Installation {
    /// The tenant that owns it.
    pub tenant: String,
    /// Its id, unique within the tenant.
    pub id: String,
    /// Its config values, checked against the manifest.
    pub config: ConfigValues,
    /// Test or live.
    pub mode: Mode,
    /// Per-destination rate limits for its requests.
    pub rate_limits: RateLimits,
}

impl Installation {
    /// The storage scope of this installation.
    pub fn scope(&self) -> Scope {
        Scope {
            tenant: self.tenant.clone(),
            installation: self.id.clone(),
        }
    }
}

/// How to build an [`Airlock`].
#[derive(Debug, Clone, Default)]
pub struct AirlockOptions {
    /// Host maxima for runs.
    pub limits: HostLimits,
    /// Limits on each run's storage writes.
    pub storage_limits: StorageLimits,
    /// Limits on outbound HTTP.
    pub egress_limits: EgressLimits,
    /// Test resolver: names resolved to these addresses instead of DNS.
    pub resolve: ResolveOverrides,
    /// Which addresses connections may go to: public ones plus the networks
    /// the operator allows.
    pub addresses: AddressPolicy,
    /// The operator's permitted-domains table (default: the shipped one).
    pub permitted: PermittedDomains,
    /// Directory for compiled components; none disables the disk cache.
    pub cache_dir: Option<PathBuf>,
}

/// Why the host itself failed (as opposed to a guest failing a run).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The runtime could not be set up or the component loaded.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    /// The feed is not in the manifest.
    #[error("plugin {plugin} has no feed `{feed}` (it has: {available})")]
    UnknownFeed {
        /// The plugin.
        plugin: String,
        /// The feed asked for.
        feed: String,
        /// The feeds it has.
        available: String,
    },
    /// The installation's egress grants could not be built.
    #[error("egress policy: {0}")]
    Policy(String),
}

/// The embeddable host.
pub struct Airlock {
    runtime: Runtime,
    store: Arc<SqliteStore>,
    client: EgressClient,
    storage_limits: StorageLimits,
    permitted: PermittedDomains,
    /// One throttle per installation, shared by all its runs.
    throttles: Mutex<HashMap<Scope, Arc<Throttle>>>,
}

impl Airlock {
    /// A host on `store` with these options.
    pub fn new(store: Arc<SqliteStore>, options: AirlockOptions) -> Result<Self, HostError> {
        let runtime = Runtime::new(options.limits, options.cache_dir)?;
        let client = EgressClient::new(options.egress_limits, options.resolve, options.addresses)
            .map_err(|e| HostError::Http(e.to_string()))?;
        Ok(Self {
            runtime,
            store,
            client,
            storage_limits: options.storage_limits,
            permitted: options.permitted,
            throttles: Mutex::new(HashMap::new()),
        })
    }

    /// The runtime, for inspecting components.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The store.
    pub fn store(&self) -> &Arc<SqliteStore> {
        &self.store
    }

    /// Compiles (or loads from cache) the plugin's component.
    pub fn load(&self, plugin: &Plugin) -> Result<Arc<LoadedComponent>, HostError> {
        Ok(self.runtime.load(&plugin.digest, &plugin.component)?)
    }

    /// What `installation` of `plugin` may reach, with where each grant came
    /// from and which manifest entries were refused.
    pub fn grants(
        &self,
        plugin: &Plugin,
        installation: &Installation,
    ) -> Result<Grants, HostError> {
        Grants::resolve(&plugin.manifest, &installation.config, &self.permitted)
            .map_err(HostError::Policy)
    }

    /// The egress policy of `installation` of `plugin`.
    pub fn policy(
        &self,
        plugin: &Plugin,
        installation: &Installation,
    ) -> Result<EgressPolicy, HostError> {
        Ok(self.grants(plugin, installation)?.policy())
    }

    /// The throttle of `installation`, replaced if its limits changed.
    fn throttle(&self, installation: &Installation) -> Arc<Throttle> {
        let mut throttles = self.throttles.lock().unwrap_or_else(|p| p.into_inner());
        let entry = throttles
            .entry(installation.scope())
            .or_insert_with(|| Arc::new(Throttle::new(installation.rate_limits)));
        if entry.limits() != installation.rate_limits {
            *entry = Arc::new(Throttle::new(installation.rate_limits));
        }
        entry.clone()
    }

    /// The inputs of a run of `installation`, for embedders and the
    /// benchmark's baseline.
    #[doc(hidden)]
    pub fn setup(
        &self,
        plugin: &Plugin,
        installation: &Installation,
    ) -> Result<RunSetup, HostError> {
        let backend: Arc<dyn KvBackend> = self.store.clone();
        let limits = &plugin.manifest.limits;
        Ok(RunSetup {
            tenant: installation.tenant.clone(),
            installation: installation.id.clone(),
            config: installation.config.clone(),
            storage: RunStorage::new(
                backend,
                installation.scope(),
                self.storage_limits.within(
                    u64::from(limits.storage_mb) << 20,
                    limits.storage_keys.into(),
                ),
            ),
            policy: Arc::new(self.policy(plugin, installation)?),
            client: self.client.clone(),
            throttle: self.throttle(installation),
            caps: RequestCaps {
                timeout: Duration::from_secs(limits.http_timeout_secs.into()),
                max_response_bytes: (limits.http_response_mb as usize) << 20,
            },
            mode: installation.mode,
            memory_bytes: u64::from(limits.memory_mb) << 20,
            timeout: Duration::from_secs(limits.run_timeout_secs.into()),
            http_budget: HttpBudget {
                max_requests: limits.http_requests,
                max_in_flight: limits.http_concurrency,
                max_audit_hops: u32::MAX,
            },
        })
    }

    /// Runs one feed once: instantiates the component in a fresh store, calls
    /// `run`, and records the run; its storage writes are kept if it ended
    /// `ok` or `info` and discarded otherwise. A guest that traps, times out
    /// or exceeds memory is a failed run, not a host error.
    pub async fn run_feed(
        &self,
        plugin: &Plugin,
        installation: &Installation,
        request: RunRequest,
    ) -> Result<RunReport, HostError> {
        Ok(self
            .run_feed_settled(plugin, installation, request, |_| None)
            .await?
            .0)
    }

    /// Like [`Self::run_feed`], and stores what `settle` works out from the
    /// report (the scheduler's retry or notification) in the same
    /// transaction as the run's storage writes and its record: all of it or
    /// none, whatever happens to the process.
    pub async fn run_feed_settled(
        &self,
        plugin: &Plugin,
        installation: &Installation,
        request: RunRequest,
        settle: impl FnOnce(&RunReport) -> Option<Settlement>,
    ) -> Result<(RunReport, Option<Settlement>), HostError> {
        if plugin.manifest.feed(&request.feed).is_none() {
            return Err(HostError::UnknownFeed {
                plugin: plugin.label(),
                feed: request.feed,
                available: plugin
                    .manifest
                    .feeds
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let component = self.load(plugin)?;
        let scope = installation.scope();
        let last_success_at = self.store.last_success(&scope, &request.feed)?;
        let setup = self.setup(plugin, installation)?;
        let started_at = chrono::Utc::now().timestamp();
        let started = Instant::now();
        let feed = FeedCall {
            feed: request.feed.clone(),
            trigger: request.trigger,
            scheduled_at: request.scheduled_at,
            attempt: request.attempt,
            last_success_at,
        };
        let output = self.runtime.call_run(&component, setup, feed).await;
        let CallOutput {
            result,
            mut storage,
            log,
            stdout,
            stderr,
            output_dropped_bytes,
            http,
            http_dropped,
        } = output;
        let end = match result {
            Ok(outcome) => RunEnd::Returned {
                status: outcome.status,
                message: installation.config.redact(&outcome.message),
                items: outcome.items,
                retry_after_seconds: outcome.retry_after_seconds,
            },
            Err(end) => end,
        };
        let committed = end.severity().commits();
        let (changes, discarded) = if committed {
            (storage.take_pending(), Vec::new())
        } else {
            (Vec::new(), storage.pending_changes())
        };
        let mut report = RunReport {
            run_id: None,
            tenant: installation.tenant.clone(),
            installation: installation.id.clone(),
            plugin: plugin.label(),
            digest: plugin.digest.clone(),
            feed: request.feed,
            mode: installation.mode,
            trigger: request.trigger,
            attempt: request.attempt,
            scheduled_at: request.scheduled_at,
            started_at,
            duration_ms: started.elapsed().as_millis() as u64,
            end,
            committed,
            storage_committed: storage.committed_changes(),
            storage_discarded: discarded,
            log: log.0,
            log_dropped: log.1,
            stdout: installation.config.redact(&stdout),
            stderr: installation.config.redact(&stderr),
            output_dropped_bytes,
            http,
            http_dropped,
        };
        let settlement = settle(&report);
        let row = Self::run_row(plugin, &report);
        let now = chrono::Utc::now().timestamp();
        report.run_id =
            Some(
                self.store
                    .finish_run(&row, &report.http, &changes, settlement.as_ref(), now)?,
            );
        Ok((report, settlement))
    }

    /// The row that records `report`.
    fn run_row(plugin: &Plugin, report: &RunReport) -> RunRow {
        RunRow {
            tenant: report.tenant.clone(),
            installation: report.installation.clone(),
            plugin_id: plugin.manifest.plugin.id.clone(),
            plugin_version: plugin.manifest.plugin.version.clone(),
            plugin_digest: plugin.digest.clone(),
            feed: report.feed.clone(),
            mode: report.mode.as_str().to_string(),
            trigger: report.trigger.as_str().to_string(),
            attempt: report.attempt,
            scheduled_at: report.scheduled_at,
            started_at: report.started_at,
            ended_at: chrono::Utc::now().timestamp(),
            status: report.severity().as_str().to_string(),
            message: report.end.summary(),
            report: serde_json::to_string(report).unwrap_or_default(),
        }
    }

    /// "Test connection": calls the guest's `check`. Storage writes made by
    /// `check` are discarded. The outer error is the host's; the inner is the
    /// guest's answer (or how the call failed).
    pub async fn check(
        &self,
        plugin: &Plugin,
        installation: &Installation,
    ) -> Result<Result<(), String>, HostError> {
        let component = self.load(plugin)?;
        let setup = self.setup(plugin, installation)?;
        let output = self.runtime.call_check(&component, setup).await;
        Ok(match output.result {
            Ok(answer) => answer.map_err(|m| installation.config.redact(&m)),
            Err(end) => Err(end.summary()),
        })
    }
}
