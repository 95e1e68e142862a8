//! [`Airlock`], the embeddable host: it ties a plugin and an installation to
//! the runtime, storage and egress client, runs one feed, commits or rolls
//! back the run's storage by its outcome, and records the run.
//!
//! One run model everywhere: a run's egress is what the operator approved
//! for the installation; a `check()` ("Test connection") and a test-mode run
//! of an outbound feed (a dry run) never write storage, even at a
//! checkpoint; every HTTP request, a check's included, is audited.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::artifacts::{
    ArtifactLimits, ArtifactsEnd, DEFAULT_KEPT_VERSIONS, MAX_KEPT_VERSIONS, PublishedArtifact,
    RunArtifacts,
};
use crate::config::ConfigValues;
use crate::egress::{
    AddressPolicy, ApprovedRule, EgressClient, EgressLimits, EgressPolicy, ExtraRoots, Grants,
    HttpCall, PermittedDomains, RateLimits, RequestCaps, ResolveOverrides, Throttle,
};
use crate::manifest::{DataSection, Direction, Plugin};
use crate::metrics::Metrics;
use crate::oauth::{InstallationLocks, OAuthClient, TokenKeeper};
use crate::records::run::MAX_RECORD_CHANGES;
use crate::records::{DataGrants, RunRecords};
use crate::runs::{Mode, RecordCounts, RunEnd, RunReport, RunRequest, Severity, Trigger};
use crate::runtime::OAuthSetup;
use crate::runtime::{
    CallOutput, FeedCall, HostLimits, HttpBudget, LoadedComponent, RunSetup, Runtime, RuntimeError,
    WebhookDelivery,
};
use crate::secrets::Keyring;
use crate::storage::{
    ArtifactEffects, ArtifactPublish, DeliveryReceipt, KeyChange, KvBackend, KvHistory, RunEffects,
    RunLedger, RunRow, RunStorage, Scope, Settlement, StorageError, StorageLimits, Store,
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
    /// The egress rules the operator approved for it, which its runs
    /// enforce. None only for an ad-hoc run of a plugin directory (`airlock
    /// run`) or a change being planned: the rules are then worked out from
    /// the manifest and config.
    pub approved_egress: Option<Vec<ApprovedRule>>,
    /// The record collections the operator approved for it to read and
    /// write, which its runs enforce. None grants none: unlike egress,
    /// records are the tenant's real data, so a trial run gets them only
    /// when its caller says so (`airlock run --grant-data`).
    pub approved_data: Option<DataSection>,
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
    /// Root certificates trusted beside the platform's (a test setting,
    /// like `resolve`: never changes a decision).
    pub extra_roots: ExtraRoots,
    /// Directory for compiled components; none disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// The master keys, for the OAuth tokens the host keeps sealed (runs of
    /// plugins with `[oauth]` need it; nothing else does).
    pub keyring: Option<Arc<Keyring>>,
    /// Published versions kept per artifact (0: the default, 3; at most
    /// 100); older ones are deleted when a new one is published.
    pub artifact_versions: u32,
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
    /// Work sent to the blocking pool (compiling a component) panicked or
    /// was cancelled.
    #[error("host task failed")]
    BlockingTask(#[from] tokio::task::JoinError),
}

/// The embeddable host.
pub struct Airlock {
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    client: EgressClient,
    storage_limits: StorageLimits,
    permitted: PermittedDomains,
    /// Published versions kept per artifact.
    artifact_versions: u32,
    /// One throttle per installation, shared by all its runs.
    throttles: Mutex<HashMap<Scope, Arc<Throttle>>>,
    /// The OAuth tokens of every installation, refreshed one at a time per
    /// installation.
    oauth: TokenKeeper,
    keyring: Option<Arc<Keyring>>,
    /// What its runs, decisions and deliveries add up to.
    metrics: Arc<Metrics>,
}

impl Airlock {
    /// A host on `store` (any backend: the caller opens it) with these
    /// options.
    pub fn new(store: Arc<dyn Store>, options: AirlockOptions) -> Result<Self, HostError> {
        let runtime = Arc::new(Runtime::new(options.limits, options.cache_dir)?);
        let client = EgressClient::with_extra_roots(
            options.egress_limits,
            options.resolve,
            options.addresses,
            &options.extra_roots,
        )
        .map_err(|e| HostError::Http(e.to_string()))?;
        let metrics = Arc::new(Metrics::new());
        let counted = metrics.clone();
        let client = client.observed(Arc::new(move |d| counted.egress_decision(d.verdict())));
        let oauth_store: Arc<dyn crate::storage::OAuthStore> = store.clone();
        let oauth = TokenKeeper::new(
            oauth_store,
            options.keyring.clone(),
            InstallationLocks::default(),
        );
        Ok(Self {
            runtime,
            store,
            oauth,
            keyring: options.keyring,
            client,
            storage_limits: options.storage_limits,
            permitted: options.permitted,
            artifact_versions: match options.artifact_versions {
                0 => DEFAULT_KEPT_VERSIONS,
                n => n.min(MAX_KEPT_VERSIONS),
            },
            throttles: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Its metrics: what its runs, egress decisions and webhook deliveries
    /// add up to (served by `airlock serve --metrics-listen`).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The runtime, for inspecting components.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The store, as its traits offer it.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The keeper of the installations' OAuth tokens.
    pub fn oauth_keeper(&self) -> &TokenKeeper {
        &self.oauth
    }

    /// The master keys the host was given, if any.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_deref()
    }

    /// The enforcement point every outbound request goes through.
    pub fn egress_client(&self) -> &EgressClient {
        &self.client
    }

    /// Compiles (or loads from cache) the plugin's component. It blocks the
    /// calling thread while it compiles: runs and checks call it on the
    /// blocking pool.
    pub fn load(&self, plugin: &Plugin) -> Result<Arc<LoadedComponent>, HostError> {
        Ok(self.runtime.load(&plugin.digest, &plugin.component)?)
    }

    /// [`Airlock::load`] on tokio's blocking pool: compiling a component on a
    /// cache miss takes long enough to stall a tokio worker, and with it the
    /// guests and the scheduler that share it.
    /// A component already in memory is returned at once: the pool is only
    /// worth its hand-off when there is work to hand off.
    async fn load_off_worker(&self, plugin: &Plugin) -> Result<Arc<LoadedComponent>, HostError> {
        if let Some(loaded) = self.runtime.loaded(&plugin.digest) {
            return Ok(loaded);
        }
        let runtime = self.runtime.clone();
        let (digest, bytes) = (plugin.digest.clone(), plugin.component.clone());
        tokio::task::spawn_blocking(move || runtime.load(&digest, &bytes))
            .await?
            .map_err(HostError::from)
    }

    /// What `installation` of `plugin` may reach, with where each grant came
    /// from and which rules were refused: the rules approved for it (never
    /// wider, and narrowed by the permitted-domains table), or for an
    /// installation with none, what the manifest and config grant.
    pub fn grants(
        &self,
        plugin: &Plugin,
        installation: &Installation,
    ) -> Result<Grants, HostError> {
        match &installation.approved_egress {
            Some(approved) => Grants::from_approved(approved, &self.permitted),
            None => Grants::resolve(&plugin.manifest, &installation.config, &self.permitted),
        }
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
        self.setup_writing(plugin, installation, Writes::Store)
    }

    /// The inputs of a run whose checkpoints go where `writes` says.
    fn setup_writing(
        &self,
        plugin: &Plugin,
        installation: &Installation,
        writes: Writes,
    ) -> Result<RunSetup, HostError> {
        let backend: Arc<dyn KvBackend> = self.store.clone();
        let limits = &plugin.manifest.limits;
        let storage_limits = self.storage_limits.within(
            u64::from(limits.storage_mb) << 20,
            limits.storage_keys.into(),
        );
        let storage = match writes {
            Writes::Store => RunStorage::new(backend, installation.scope(), storage_limits),
            Writes::Scratch | Writes::Check => {
                RunStorage::scratch(backend, installation.scope(), storage_limits)
            }
        };
        let none = DataSection::default();
        let data = match (&installation.approved_data, writes) {
            // "Test connection" checks credentials: it reads no records,
            // before or after the operator approved any.
            (_, Writes::Check) | (None, _) => &none,
            (Some(approved), _) => approved,
        };
        let record_changes = limits.record_changes.min(MAX_RECORD_CHANGES) as usize;
        let oauth = plugin.manifest.oauth.as_ref().map(|section| OAuthSetup {
            keeper: self.oauth.clone(),
            client: OAuthClient::new(section, &installation.config),
            checking: matches!(writes, Writes::Check),
        });
        Ok(RunSetup {
            tenant: installation.tenant.clone(),
            installation: installation.id.clone(),
            config: installation.config.clone(),
            storage,
            record_store: self.store.clone(),
            artifact_store: self.store.clone(),
            // A check publishes nothing; every run may, dry runs included
            // (an artifact is the installation's own output).
            artifacts: RunArtifacts::new(
                ArtifactLimits::within_host(
                    limits.artifact_mb,
                    limits.artifact_run_mb,
                    limits.artifacts,
                ),
                !matches!(writes, Writes::Check),
            ),
            records: RunRecords::new(
                DataGrants::of(data),
                record_changes,
                (u64::from(limits.memory_mb) << 20) as usize,
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
            oauth,
            keyring: self.keyring.clone(),
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
        self.run_settled(plugin, installation, request, None, settle)
            .await
    }

    /// Handles one webhook `delivery` as a run of the feed named after the
    /// webhook (trigger `webhook`): the component's `webhook-handler.handle` is
    /// called like a feed's `run`, under the same limits, and its effects
    /// are committed with its record in the same way, with
    /// `settle`'s notification. A delivery with an id, handled by a run that
    /// committed, is remembered in that transaction so a replay is not run
    /// again (see [`crate::storage::WebhookStore::handled_delivery`]).
    pub async fn run_webhook_settled(
        &self,
        plugin: &Plugin,
        installation: &Installation,
        delivery: WebhookDelivery,
        settle: impl FnOnce(&RunReport) -> Option<Settlement>,
    ) -> Result<(RunReport, Option<Settlement>), HostError> {
        let request = RunRequest {
            feed: delivery.name.clone(),
            trigger: Trigger::Webhook,
            scheduled_at: delivery.received_at,
            attempt: 1,
        };
        self.run_settled(plugin, installation, request, Some(delivery), settle)
            .await
    }

    /// A feed's run, or with `delivery` a webhook's, in its trace's root
    /// span (`run`, see [`crate::telemetry`]).
    async fn run_settled(
        &self,
        plugin: &Plugin,
        installation: &Installation,
        request: RunRequest,
        delivery: Option<WebhookDelivery>,
        settle: impl FnOnce(&RunReport) -> Option<Settlement>,
    ) -> Result<(RunReport, Option<Settlement>), HostError> {
        let span = tracing::info_span!(
            parent: None,
            "run",
            airlock.tenant = %installation.tenant,
            airlock.installation = %installation.id,
            airlock.plugin = %plugin.manifest.plugin.id,
            airlock.feed = %request.feed,
            airlock.trigger = request.trigger.as_str(),
            airlock.attempt = request.attempt,
            airlock.run_id = tracing::field::Empty,
            airlock.outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let result = self
            .run_untraced(plugin, installation, request, delivery, settle)
            .instrument(span.clone())
            .await;
        match &result {
            Ok((report, _)) => {
                let severity = report.severity();
                span.record("airlock.outcome", severity.as_str());
                if let Some(id) = report.run_id {
                    span.record("airlock.run_id", id);
                }
                if matches!(severity, Severity::Retry | Severity::Error) {
                    span.record("otel.status_code", "error");
                }
            }
            Err(_) => {
                span.record("airlock.outcome", "host-failure");
                span.record("otel.status_code", "error");
            }
        }
        result
    }

    /// [`Self::run_settled`] inside its span.
    async fn run_untraced(
        &self,
        plugin: &Plugin,
        installation: &Installation,
        request: RunRequest,
        delivery: Option<WebhookDelivery>,
        settle: impl FnOnce(&RunReport) -> Option<Settlement>,
    ) -> Result<(RunReport, Option<Settlement>), HostError> {
        // A delivery brings data in: it runs in test mode too, like an
        // inbound feed (its writes to third parties are still not sent).
        let direction = match &delivery {
            Some(_) if plugin.manifest.webhook(&request.feed).is_some() => Direction::Inbound,
            _ => feed_direction(plugin, &request.feed)?,
        };
        let component = self
            .load_off_worker(plugin)
            .instrument(tracing::debug_span!("load"))
            .await?;
        let scope = installation.scope();
        let last_success_at = RunLedger::last_success(&*self.store, &scope, &request.feed).await?;
        // A test-mode run of an outbound feed is a dry run: it keeps nothing.
        let dry_run = installation.mode == Mode::Test && direction == Direction::Outbound;
        let writes = if dry_run {
            Writes::Scratch
        } else {
            Writes::Store
        };
        let setup = self.setup_writing(plugin, installation, writes)?;
        let started_at = chrono::Utc::now().timestamp();
        let started = Instant::now();
        let feed = FeedCall {
            feed: request.feed.clone(),
            trigger: request.trigger,
            scheduled_at: request.scheduled_at,
            attempt: request.attempt,
            last_success_at,
        };
        let receipt = delivery.as_ref().and_then(|d| {
            Some(DeliveryReceipt {
                webhook: d.name.clone(),
                delivery_id: d.delivery_id.clone()?,
                received_at: d.received_at,
            })
        });
        let output = match delivery {
            Some(delivery) => {
                self.runtime
                    .call_webhook(&component, setup, delivery)
                    .instrument(tracing::debug_span!("guest"))
                    .await
            }
            None => {
                self.runtime
                    .call_run(&component, setup, feed)
                    .instrument(tracing::debug_span!("guest"))
                    .await
            }
        };
        let CallOutput {
            result,
            mut storage,
            records,
            artifacts,
            log,
            stdout,
            stderr,
            output_dropped_bytes,
            http,
            http_dropped,
            peak_memory_bytes,
            reauthorisation,
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
        let end = match reauthorisation {
            Some(why) => needs_reauthorisation(end, &why),
            None => end,
        };
        let committed = end.severity().commits() && !dry_run;
        let kept = StorageOutcome::of(&mut storage, committed, dry_run);
        // The tenant's records are shared with other installations and the
        // shop: a test-mode run, inbound or outbound, changes none of them.
        let records_kept = committed && installation.mode == Mode::Live;
        // Artifacts are the installation's own output: published whenever
        // the run succeeds, in test mode and dry runs too.
        let (artifacts, published) = self.artifact_effects(artifacts, end.severity().commits())?;
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
            storage_committed: kept.committed,
            storage_discarded: kept.discarded,
            storage_note: kept.note,
            records: RecordCounts::of(&records, records_kept),
            artifacts: published,
            log: log.0,
            log_dropped: log.1,
            stdout: installation.config.redact(&stdout),
            stderr: installation.config.redact(&stderr),
            output_dropped_bytes,
            http,
            http_dropped,
            peak_memory_bytes,
        };
        let settlement = settle(&report);
        let row = Self::run_row(plugin, &report);
        let now = chrono::Utc::now().timestamp();
        let effects = RunEffects {
            run: row,
            kv_changes: kept.changes,
            records: if records_kept {
                records
            } else {
                Default::default()
            },
            artifacts,
            http_calls: report.http.clone(),
            settlement: settlement.clone(),
            settled_at: now,
            webhook_delivery: receipt.filter(|_| report.committed),
            kv_history: KvHistory {
                checkpoint: storage.checkpoint_token(),
                keep_versions: self.storage_limits.history_versions,
            },
        };
        report.run_id = Some(
            RunLedger::finish_run(&*self.store, effects)
                .instrument(tracing::debug_span!("commit"))
                .await?,
        );
        self.metrics.run_recorded(
            &plugin.manifest.plugin.id,
            report.severity().as_str(),
            Some(Duration::from_millis(report.duration_ms)),
        );
        Ok((report, settlement))
    }

    /// What a finished run does to its artifacts: publishes what it wrote
    /// if it succeeded (`publish`), else drops it. Bytes that could not be
    /// stored fail the run's record (a host failure: nothing of it is
    /// published, and the scheduler tries again).
    fn artifact_effects(
        &self,
        end: ArtifactsEnd,
        publish: bool,
    ) -> Result<(ArtifactEffects, Vec<PublishedArtifact>), HostError> {
        let (begun, mut drop) = end.run.into_parts();
        if let (Some(e), true) = (end.error, publish) {
            return Err(HostError::Storage(e));
        }
        let mut effects = ArtifactEffects {
            keep_versions: self.artifact_versions,
            ..ArtifactEffects::default()
        };
        let mut published = Vec::new();
        for (name, b) in begun {
            if !publish {
                drop.push(b.staged);
                continue;
            }
            let sha256 = b.sha256();
            effects.publish.push(ArtifactPublish {
                staged: b.staged,
                name: name.clone(),
                size: b.size,
                sha256: sha256.clone(),
            });
            published.push(PublishedArtifact {
                name,
                content_type: b.content_type,
                size: b.size,
                sha256,
            });
        }
        effects.drop = drop;
        Ok((effects, published))
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

    /// "Test connection": calls the guest's `check` in `mode` (callers
    /// choose test unless the operator asked for live). It never writes
    /// storage, not even at a checkpoint; its HTTP requests are recorded in
    /// the egress audit under the feed name `check`. The outer error
    /// is the host's; the inner is the guest's answer (or how the call
    /// failed).
    pub async fn check(
        &self,
        plugin: &Plugin,
        installation: &Installation,
        mode: Mode,
    ) -> Result<Result<(), String>, HostError> {
        let span = tracing::info_span!(
            parent: None,
            "check",
            airlock.tenant = %installation.tenant,
            airlock.installation = %installation.id,
            airlock.plugin = %plugin.manifest.plugin.id,
            airlock.mode = mode.as_str(),
            airlock.outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let answer = self.check_untraced(plugin, installation, mode, &span).await;
        let outcome = match &answer {
            Ok(Ok(())) => "ok",
            Ok(Err(_)) => "failed",
            Err(_) => "host-failure",
        };
        span.record("airlock.outcome", outcome);
        if outcome != "ok" {
            span.record("otel.status_code", "error");
        }
        answer
    }

    /// [`Self::check`] under its `span`.
    async fn check_untraced(
        &self,
        plugin: &Plugin,
        installation: &Installation,
        mode: Mode,
        span: &tracing::Span,
    ) -> Result<Result<(), String>, HostError> {
        let component = self
            .load_off_worker(plugin)
            .instrument(tracing::debug_span!(parent: span, "load"))
            .await?;
        let checking = Installation {
            mode,
            ..installation.clone()
        };
        let setup = self.setup_writing(plugin, &checking, Writes::Check)?;
        let output = self
            .runtime
            .call_check(&component, setup)
            .instrument(tracing::debug_span!(parent: span, "guest"))
            .await;
        self.audit_outside_runs(plugin, &checking, CHECK_FEED, output.http)
            .await?;
        Ok(match output.result {
            Ok(answer) => answer.map_err(|m| installation.config.redact(&m)),
            Err(end) => Err(end.summary()),
        })
    }

    /// Records HTTP requests made outside a run (a check's, the OAuth
    /// callback's token request) in the egress audit under the feed name
    /// `feed`.
    pub async fn audit_outside_runs(
        &self,
        plugin: &Plugin,
        installation: &Installation,
        feed: &str,
        calls: Vec<HttpCall>,
    ) -> Result<(), HostError> {
        if calls.is_empty() {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp();
        let row = RunRow {
            tenant: installation.tenant.clone(),
            installation: installation.id.clone(),
            plugin_id: plugin.manifest.plugin.id.clone(),
            plugin_version: plugin.manifest.plugin.version.clone(),
            plugin_digest: plugin.digest.clone(),
            feed: feed.to_string(),
            mode: installation.mode.as_str().to_string(),
            trigger: feed.to_string(),
            attempt: 1,
            scheduled_at: now,
            started_at: now,
            ended_at: now,
            status: String::new(),
            message: String::new(),
            report: String::new(),
        };
        Ok(self.store.record_calls(row, calls).await?)
    }
}

/// How a run ends when it found that its installation needs reauthorising
/// (`why`): `error`, whatever the guest returned, saying so first.
fn needs_reauthorisation(end: RunEnd, why: &str) -> RunEnd {
    match end {
        RunEnd::Returned { message, items, .. } => RunEnd::Returned {
            status: Severity::Error,
            message: if message.is_empty() {
                why.to_string()
            } else {
                format!("{why} (the connector said: {message})")
            },
            items,
            retry_after_seconds: None,
        },
        other => other,
    }
}

/// The direction of `feed` in `plugin`'s manifest; an error naming the
/// feeds it has if there is no such feed.
fn feed_direction(plugin: &Plugin, feed: &str) -> Result<Direction, HostError> {
    match plugin.manifest.feed(feed) {
        Some(f) => Ok(f.direction),
        None => Err(HostError::UnknownFeed {
            plugin: plugin.label(),
            feed: feed.to_string(),
            available: plugin
                .manifest
                .feeds
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// What becomes of a finished run's storage writes.
struct StorageOutcome {
    /// The final writes to apply with the run's record.
    changes: Vec<(String, Option<Vec<u8>>)>,
    /// Writes committed (at checkpoints and the end), for the report.
    committed: Vec<KeyChange>,
    /// Writes discarded, for the report.
    discarded: Vec<KeyChange>,
    /// Why a successful run kept nothing, if it did not.
    note: Option<String>,
}

impl StorageOutcome {
    /// Keeps the run's final writes if `commit`; a `dry_run` ran on scratch
    /// storage, so even what it checkpointed is still pending, and dropped.
    fn of(storage: &mut RunStorage, commit: bool, dry_run: bool) -> Self {
        if dry_run {
            return Self {
                changes: Vec::new(),
                committed: Vec::new(),
                discarded: storage.pending_changes(),
                note: Some(NOT_COMMITTED_TEST_MODE.to_string()),
            };
        }
        let (changes, discarded) = if commit {
            (storage.take_pending(), Vec::new())
        } else {
            (Vec::new(), storage.pending_changes())
        };
        Self {
            changes,
            committed: storage.committed_changes(),
            discarded,
            note: None,
        }
    }
}

/// The feed name a check's HTTP requests are audited under.
pub const CHECK_FEED: &str = "check";

/// Why a test-mode run of an outbound feed kept none of its writes.
const NOT_COMMITTED_TEST_MODE: &str =
    "not committed: test mode (an outbound feed's dry run keeps none of its writes)";

/// Where a run's checkpoints go.
#[derive(Debug, Clone, Copy)]
enum Writes {
    /// The store: they are committed.
    Store,
    /// Nowhere: checkpoints keep the writes pending and the run drops them
    /// (dry runs; see [`RunStorage::scratch`]).
    Scratch,
    /// Nowhere, as `Scratch`, for a `check()`, which is also given no
    /// access to the tenant's records.
    Check,
}
