//! The WebAssembly side: one wasmtime [`Engine`] (component model, pooling
//! allocator, epoch interruption), the [`Linker`] with WASI and each host
//! capability, compiled components cached on disk with an instance-pre per
//! component, and the execution of one export call in a fresh `Store` under
//! memory and wall-clock limits.
//!
//! This module owns the engine, the store and the call. It knows the host
//! capabilities (`capability/`) only through their `add_to_linker`
//! and their per-run state, one field each of the store's data. WASI is
//! its own: the sandbox that grants nothing, with the guest's stdout and
//! stderr captured (`stdio.rs`). It does not decide what a run is for or
//! where its results go: [`crate::Airlock`] builds a [`RunSetup`] and
//! records the [`CallOutput`].

pub(crate) mod bindings;
mod cache;
mod classify;
mod engine;
mod state;
mod stdio;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, ComponentExportIndex, HasSelf, Linker};
use wasmtime::{Engine, Store};

pub use crate::capability::http::HttpBudget;
pub use crate::capability::oauth::OAuthSetup;
pub use cache::CacheOutcome;

use bindings::airlock::connector::types as wit;
use bindings::{Connector, ConnectorPre};
use classify::{classify, instantiation_failure};
use engine::{EpochTicker, engine_config};
use state::RunState;
use stdio::CappedOutput;

use crate::artifacts::{ArtifactsEnd, RunArtifacts};
use crate::capability;
use crate::config::ConfigValues;
use crate::egress::{EgressClient, EgressPolicy, HttpCall, RequestCaps, Throttle};
use crate::records::RunRecords;
use crate::runs::{LogLimits, LogLine, Mode, RunEnd, Severity, Trigger};
use crate::storage::{ArtifactStore, RecordEffects, RecordStore, RunStorage};

/// Host-wide maxima. A manifest may ask for less, never more. Each is
/// documented, with its default, in `docs/limits.md`.
#[derive(Debug, Clone)]
pub struct HostLimits {
    /// Most memory any run's instance may have, in bytes: all its linear
    /// memories and tables together.
    pub max_memory_bytes: u64,
    /// Longest wall-clock time any run may take.
    pub max_run_timeout: Duration,
    /// Caps on each run's log.
    pub log: LogLimits,
    /// Bytes of stdout and of stderr kept per run.
    pub output_cap_bytes: usize,
    /// Component instances that may run at once (pooling allocator slots);
    /// one more is refused as a host failure, not the guest's.
    pub max_concurrent_runs: u32,
    /// The most of each per-run HTTP bound a manifest may ask for.
    pub max_http: HttpBudget,
}

impl Default for HostLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 512 << 20,
            max_run_timeout: Duration::from_secs(15 * 60),
            log: LogLimits::default(),
            output_cap_bytes: 64 << 10,
            max_concurrent_runs: 64,
            max_http: HttpBudget {
                max_requests: 100_000,
                max_in_flight: 32,
                max_audit_hops: 1000,
            },
        }
    }
}

/// Why the runtime could not be set up or a component loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Engine or linker setup failed.
    #[error("cannot set up the wasmtime engine: {0:#}")]
    Engine(anyhow::Error),
    /// The bytes are not a WebAssembly component binary at all.
    #[error("the component {digest} is not a WebAssembly component{detail}")]
    NotAComponent {
        /// The component's sha256.
        digest: String,
        /// What it is instead, when that can be told.
        detail: &'static str,
    },
    /// The file is not a component, or does not fit the connector world.
    #[error("cannot load component {digest}: {source:#}")]
    Component {
        /// The component's sha256.
        digest: String,
        /// What wasmtime said.
        source: anyhow::Error,
    },
}

/// Why `bytes` are not a component binary, or none if they start like one:
/// a text file (wasmtime would accept WAT text), random bytes or a core
/// module each get a plain answer instead of the parser's.
pub fn not_a_component(bytes: &[u8]) -> Option<&'static str> {
    const WASM_MAGIC: &[u8] = b"\0asm";
    const COMPONENT_LAYER: &[u8] = &[0x0d, 0x00, 0x01, 0x00];
    if !bytes.starts_with(WASM_MAGIC) {
        return Some("");
    }
    if bytes.get(4..8) != Some(COMPONENT_LAYER) {
        return Some(
            " (it is a core WebAssembly module: build it for wasm32-wasip2, or wrap it with \
             `wasm-tools component new`)",
        );
    }
    None
}

/// A component compiled and pre-linked, ready to instantiate per run.
pub struct LoadedComponent {
    pre: ConnectorPre<RunState>,
    component: Component,
    /// Its `webhook-handler.handle` export (world `webhook-connector`), if
    /// it has one.
    handle_webhook: Option<ComponentExportIndex>,
    /// Whether it came from the disk cache.
    pub cache: CacheOutcome,
    /// How long compiling or loading took.
    pub load_time: Duration,
}

impl LoadedComponent {
    /// Whether it exports `webhook-handler` (world `webhook-connector`).
    pub fn handles_webhooks(&self) -> bool {
        self.handle_webhook.is_some()
    }

    /// `(name, kind)` of every import of the component, sorted.
    pub fn imports(&self, engine: &Engine) -> Vec<(String, String)> {
        let ty = self.component.component_type();
        describe(ty.imports(engine))
    }

    /// `(name, kind)` of every export of the component, sorted.
    pub fn exports(&self, engine: &Engine) -> Vec<(String, String)> {
        let ty = self.component.component_type();
        describe(ty.exports(engine))
    }
}

fn describe<'a>(
    items: impl Iterator<Item = (&'a str, wasmtime::component::types::ComponentExtern<'a>)>,
) -> Vec<(String, String)> {
    use wasmtime::component::types::ComponentItem as I;
    let mut out: Vec<(String, String)> = items
        .map(|(name, item)| {
            let kind = match item.ty {
                I::ComponentFunc(_) => "function",
                I::CoreFunc(_) => "core function",
                I::Module(_) => "module",
                I::Component(_) => "component",
                I::ComponentInstance(_) => "interface",
                I::Type(_) => "type",
                I::Resource(_) => "resource",
            };
            (name.to_string(), kind.to_string())
        })
        .collect();
    out.sort();
    out
}

/// Everything one export call needs besides the component.
pub struct RunSetup {
    /// Tenant, for the guest's context.
    pub tenant: String,
    /// Installation, for the guest's context.
    pub installation: String,
    /// The installation's config.
    pub config: ConfigValues,
    /// The run's view of storage.
    pub storage: RunStorage,
    /// Where the tenant's records are read from.
    pub record_store: Arc<dyn RecordStore>,
    /// The run's grants on the records, and its changes to them.
    pub records: RunRecords,
    /// Where the run stages its artifacts.
    pub artifact_store: Arc<dyn ArtifactStore>,
    /// The run's artifacts: its caps, and what it has begun.
    pub artifacts: RunArtifacts,
    /// The installation's egress policy.
    pub policy: Arc<EgressPolicy>,
    /// The HTTP client (the enforcement point).
    pub client: EgressClient,
    /// The installation's per-destination rate limits.
    pub throttle: Arc<Throttle>,
    /// The manifest's bounds on each HTTP request.
    pub caps: RequestCaps,
    /// Test or live.
    pub mode: Mode,
    /// Linear memory cap asked for by the manifest, bytes.
    pub memory_bytes: u64,
    /// Wall-clock deadline asked for by the manifest.
    pub timeout: Duration,
    /// HTTP requests and requests in flight asked for by the manifest (the
    /// audit cap is the host's).
    pub http_budget: HttpBudget,
    /// The installation's OAuth2 access, for a plugin with `[oauth]`.
    pub oauth: Option<OAuthSetup>,
    /// The master keys, sealing the values of `sealed/` storage keys.
    pub keyring: Option<Arc<crate::secrets::Keyring>>,
}

/// What an export call produced, before anything is committed.
pub struct CallOutput<T> {
    /// The guest's return value, or how the call ended otherwise.
    pub result: Result<T, RunEnd>,
    /// The run's storage, with its uncommitted writes.
    pub storage: RunStorage,
    /// The run's changes to the records, not applied yet.
    pub records: RecordEffects,
    /// The run's artifacts, staged and not published yet.
    pub artifacts: ArtifactsEnd,
    /// Log lines and the count dropped.
    pub log: (Vec<LogLine>, u32),
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
    /// Bytes of output dropped over the cap.
    pub output_dropped_bytes: u64,
    /// HTTP calls, with decisions, up to the audit cap.
    pub http: Vec<HttpCall>,
    /// HTTP audit records dropped over the cap (and requests refused over
    /// the request cap).
    pub http_dropped: u32,
    /// The most memory the instance held at once (linear memories and
    /// tables), in bytes.
    pub peak_memory_bytes: u64,
    /// Why the installation needs reauthorising, if the run found out (a
    /// refreshed token refused, or the refresh refused): the run ends
    /// `error` whatever the guest returned.
    pub reauthorisation: Option<String>,
}

/// The feed-specific part of a `run` call.
pub struct FeedCall {
    /// Feed name.
    pub feed: String,
    /// Trigger.
    pub trigger: Trigger,
    /// Due time, Unix seconds.
    pub scheduled_at: i64,
    /// Attempt number.
    pub attempt: u32,
    /// Last `ok`/`info` end, Unix seconds.
    pub last_success_at: Option<i64>,
}

/// The interface a component exports to handle webhooks (world
/// `webhook-connector`).
const WEBHOOK_HANDLER: &str = "airlock:connector/webhook-handler@0.1.0";

/// An instantiated component: its `connector` world exports, and the
/// instance for exports beyond them (`webhook-handler`).
struct Guest {
    connector: Connector,
    instance: wasmtime::component::Instance,
}

/// WIT `webhook-handler.webhook-delivery`, as the host lowers it into the
/// guest (the `connector` world's bindings do not have it).
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lower)]
#[component(record)]
struct WitDelivery {
    tenant: String,
    installation: String,
    mode: wit::Mode,
    name: String,
    method: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    #[component(name = "delivery-id")]
    delivery_id: Option<String>,
    #[component(name = "received-at")]
    received_at: i64,
}

/// One inbound webhook delivery, as the host accepted it (the guest also
/// gets the installation's tenant, id and mode with it).
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    /// The webhook's name.
    pub name: String,
    /// GET, POST or PUT.
    pub method: String,
    /// The query's parameters, decoded.
    pub query: Vec<(String, String)>,
    /// Headers, names lower-case, credentials left out.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The sender's delivery id, if it sent one.
    pub delivery_id: Option<String>,
    /// When it was received, Unix seconds.
    pub received_at: i64,
}

impl From<wit::Outcome> for GuestOutcome {
    fn from(outcome: wit::Outcome) -> Self {
        GuestOutcome {
            status: match outcome.status {
                wit::Status::Ok => Severity::Ok,
                wit::Status::Info => Severity::Info,
                wit::Status::Retry => Severity::Retry,
                wit::Status::Error => Severity::Error,
            },
            message: outcome.message,
            items: outcome.items,
            retry_after_seconds: outcome.retry_after_seconds,
        }
    }
}

/// The guest's `outcome`, in host types.
#[derive(Debug, Clone)]
pub struct GuestOutcome {
    /// Severity.
    pub status: Severity,
    /// Message.
    pub message: String,
    /// Items processed.
    pub items: u32,
    /// Requested retry delay.
    pub retry_after_seconds: Option<u32>,
}

/// The engine, linker, cache and loaded components. One per process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RunState>,
    cache: cache::ComponentCache,
    limits: HostLimits,
    loaded: Mutex<HashMap<String, Arc<LoadedComponent>>>,
    _ticker: EpochTicker,
}

impl Runtime {
    /// An engine with the pooling allocator sized by `limits`, compiled
    /// components cached in `cache_dir` (none: no disk cache).
    pub fn new(
        limits: HostLimits,
        cache_dir: Option<std::path::PathBuf>,
    ) -> Result<Self, RuntimeError> {
        let engine =
            Engine::new(&engine_config(&limits)).map_err(|e| RuntimeError::Engine(e.into()))?;
        let linker = link(&engine).map_err(|e| RuntimeError::Engine(e.into()))?;
        let cache = cache::ComponentCache::new(&engine, cache_dir);
        let ticker = EpochTicker::start(engine.clone());
        Ok(Self {
            engine,
            linker,
            cache,
            limits,
            loaded: Mutex::new(HashMap::new()),
            _ticker: ticker,
        })
    }

    /// The engine, for inspecting components.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The host maxima.
    pub fn limits(&self) -> &HostLimits {
        &self.limits
    }

    /// The component with this digest if it is loaded in memory already: a
    /// lookup that never compiles or reads the disk.
    pub fn loaded(&self, digest: &str) -> Option<Arc<LoadedComponent>> {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
    }

    /// The loaded component for these bytes: from memory, the disk cache, or
    /// compiled now. Fails if it is not a component of the connector world.
    pub fn load(&self, digest: &str, bytes: &[u8]) -> Result<Arc<LoadedComponent>, RuntimeError> {
        if let Some(found) = self.loaded(digest) {
            return Ok(found);
        }
        if let Some(detail) = not_a_component(bytes) {
            return Err(RuntimeError::NotAComponent {
                digest: digest.to_string(),
                detail,
            });
        }
        let err = |e: wasmtime::Error| RuntimeError::Component {
            digest: digest.to_string(),
            source: e.into(),
        };
        let started = Instant::now();
        let (component, cache) = self.cache.load(&self.engine, digest, bytes).map_err(err)?;
        let pre = self.linker.instantiate_pre(&component).map_err(err)?;
        let pre = ConnectorPre::new(pre).map_err(err)?;
        let handle_webhook = component
            .get_export_index(None, WEBHOOK_HANDLER)
            .and_then(|interface| component.get_export_index(Some(&interface), "handle"));
        let loaded = Arc::new(LoadedComponent {
            pre,
            component,
            handle_webhook,
            cache,
            load_time: started.elapsed(),
        });
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_string(), loaded.clone());
        Ok(loaded)
    }

    /// `asked` bounded by the host's maxima; the audit cap is the host's.
    fn http_budget(&self, asked: HttpBudget) -> HttpBudget {
        let max = self.limits.max_http;
        HttpBudget {
            max_requests: asked.max_requests.min(max.max_requests),
            max_in_flight: asked.max_in_flight.min(max.max_in_flight),
            max_audit_hops: max.max_audit_hops,
        }
    }

    /// Calls the guest's `run` export in a fresh store.
    pub async fn call_run(
        &self,
        component: &LoadedComponent,
        setup: RunSetup,
        feed: FeedCall,
    ) -> CallOutput<GuestOutcome> {
        let ctx = run_context(&setup, feed);
        self.call(component, setup, async move |guest, store| {
            let outcome = guest.connector.call_run(store, &ctx).await?;
            Ok(GuestOutcome::from(outcome))
        })
        .await
    }

    /// Calls the guest's `webhook-handler.handle` export with `delivery` in a fresh
    /// store (the component must have it: see
    /// [`LoadedComponent::handles_webhooks`]).
    pub async fn call_webhook(
        &self,
        component: &LoadedComponent,
        setup: RunSetup,
        delivery: WebhookDelivery,
    ) -> CallOutput<GuestOutcome> {
        let index = component.handle_webhook;
        let delivery = WitDelivery {
            tenant: setup.tenant.clone(),
            installation: setup.installation.clone(),
            mode: wit_mode(setup.mode),
            name: delivery.name,
            method: delivery.method,
            query: delivery.query,
            headers: delivery.headers,
            body: delivery.body,
            delivery_id: delivery.delivery_id,
            received_at: delivery.received_at,
        };
        self.call(component, setup, async move |guest, store| {
            let index = index.ok_or_else(|| {
                wasmtime::Error::msg("the component does not export webhook-handler")
            })?;
            let handle = guest
                .instance
                .get_typed_func::<(WitDelivery,), (wit::Outcome,)>(&mut *store, &index)?;
            let (outcome,) = handle.call_async(&mut *store, (delivery,)).await?;
            Ok(GuestOutcome::from(outcome))
        })
        .await
    }

    /// The baseline the benchmark compares against: the same component and
    /// linker, instantiated in a plain store and called, with none of a run's
    /// limits, deadline, output capture or classification.
    #[doc(hidden)]
    pub async fn call_run_bare(
        &self,
        component: &LoadedComponent,
        setup: RunSetup,
        feed: FeedCall,
    ) -> wasmtime::Result<u32> {
        let out = CappedOutput::new(0);
        let ctx = run_context(&setup, feed);
        let state = RunState::new(setup, usize::MAX, self.limits.log.clone(), &out, &out);
        let mut store = Store::new(&self.engine, state);
        // Far enough never to interrupt (the deadline is relative to the current epoch).
        store.set_epoch_deadline(u64::MAX / 2);
        let connector = component.pre.instantiate_async(&mut store).await?;
        Ok(connector.call_run(&mut store, &ctx).await?.items)
    }

    /// Calls the guest's `check` export ("Test connection") in a fresh store.
    pub async fn call_check(
        &self,
        component: &LoadedComponent,
        setup: RunSetup,
    ) -> CallOutput<Result<(), String>> {
        self.call(component, setup, async |guest, store| {
            guest.connector.call_check(store).await
        })
        .await
    }

    /// Instantiates the component in a fresh store with the run's limits,
    /// calls `f`, and classifies how it ended.
    async fn call<T>(
        &self,
        component: &LoadedComponent,
        setup: RunSetup,
        f: impl AsyncFnOnce(&Guest, &mut Store<RunState>) -> wasmtime::Result<T>,
    ) -> CallOutput<T> {
        let memory_bytes = setup.memory_bytes.min(self.limits.max_memory_bytes);
        let timeout = setup.timeout.min(self.limits.max_run_timeout);
        let setup = RunSetup {
            http_budget: self.http_budget(setup.http_budget),
            ..setup
        };
        let redactor = setup.config.redactor();
        let stdout = CappedOutput::redacting(self.limits.output_cap_bytes, redactor.clone());
        let stderr = CappedOutput::redacting(self.limits.output_cap_bytes, redactor);
        let state = RunState::new(
            setup,
            memory_bytes as usize,
            self.limits.log.clone(),
            &stdout,
            &stderr,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // At every epoch tick the guest yields to the executor, so a guest
        // that computes without end cannot hold a worker thread (other runs
        // and the scheduler keep going); past its deadline it is stopped
        // with an interrupt trap.
        let started = std::time::Instant::now();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if started.elapsed() >= timeout {
                wasmtime::UpdateDeadline::Interrupt
            } else {
                wasmtime::UpdateDeadline::Yield(1)
            })
        });

        let pre = &component.pre;
        let call = async {
            let instantiated = match pre.instance_pre().instantiate_async(&mut store).await {
                Ok(instance) => Connector::new(&mut store, &instance).map(|connector| Guest {
                    connector,
                    instance,
                }),
                Err(e) => Err(e),
            };
            let guest = match instantiated {
                Ok(guest) => guest,
                Err(e) => {
                    return Err(instantiation_failure(
                        e,
                        store.data(),
                        memory_bytes,
                        timeout,
                    ));
                }
            };
            let returned = f(&guest, &mut store).await;
            returned.map_err(|e| classify(e, store.data(), memory_bytes, timeout))
        };
        // The epoch deadline stops guest code; this outer deadline also stops
        // a run that is waiting in a host call (a slow HTTP response).
        let result = match tokio::time::timeout(timeout + Duration::from_secs(1), call).await {
            Ok(result) => result,
            Err(_) => Err(RunEnd::TimedOut {
                after_secs: timeout.as_secs() as u32,
            }),
        };
        let state = store.into_data();
        let (stdout, out_dropped) = state.stdout.take();
        let (stderr, err_dropped) = state.stderr.take();
        let audit = state.http.take_audit();
        let peak_memory_bytes = state.limiter.peak_bytes() as u64;
        let reauthorisation = state.oauth.reauthorisation();
        let artifacts = state.artifacts.finish().await;
        CallOutput {
            result,
            storage: state.kv.into_storage(),
            records: state.records.into_effects(),
            artifacts,
            log: state.log.into_parts(),
            stdout,
            stderr,
            output_dropped_bytes: out_dropped + err_dropped,
            http: audit.calls,
            http_dropped: audit.dropped,
            peak_memory_bytes,
            reauthorisation,
        }
    }
}

/// The linker every component is instantiated with: WASI (granting
/// nothing, see [`RunState::sandboxed_wasi`]), the connector world's shared
/// types, and each capability through its own `add_to_linker`.
fn link(engine: &Engine) -> wasmtime::Result<Linker<RunState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wit::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)?;
    capability::log::add_to_linker(&mut linker, |s| &mut s.log)?;
    capability::config::add_to_linker(&mut linker, |s| &mut s.config)?;
    capability::kv::add_to_linker(&mut linker, |s| &mut s.kv)?;
    capability::records::add_to_linker(&mut linker, |s| &mut s.records)?;
    capability::artifacts::add_to_linker(&mut linker, |s| &mut s.artifacts)?;
    capability::oauth::add_to_linker(&mut linker, |s| &mut s.oauth)?;
    capability::http::add_to_linker(&mut linker, |s| &mut s.http)?;
    Ok(linker)
}

/// `airlock:connector/types` holds only types shared by the capabilities.
impl wit::Host for RunState {}

fn wit_mode(mode: Mode) -> wit::Mode {
    match mode {
        Mode::Test => wit::Mode::Test,
        Mode::Live => wit::Mode::Live,
    }
}

/// The guest's view of the run.
fn run_context(setup: &RunSetup, feed: FeedCall) -> wit::RunContext {
    wit::RunContext {
        tenant: setup.tenant.clone(),
        installation: setup.installation.clone(),
        feed: feed.feed,
        mode: wit_mode(setup.mode),
        trigger: match feed.trigger {
            Trigger::Schedule => wit::Trigger::Schedule,
            Trigger::Manual => wit::Trigger::Manual,
            Trigger::Retry => wit::Trigger::Retry,
            // Never asked for: a delivery gets its webhook-delivery, not a
            // run-context (the WIT's trigger has no webhook case, so
            // connectors built before webhooks still load).
            Trigger::Webhook => wit::Trigger::Manual,
        },
        scheduled_at: feed.scheduled_at,
        attempt: feed.attempt,
        last_success_at: feed.last_success_at,
    }
}
