//! The data a run's wasmtime `Store` holds: a WASI context with nothing
//! granted, the memory limiter, and the run's capabilities (log, config,
//! storage, HTTP).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::wasi_http::PolicyHooks;

use super::RunSetup;
use super::stdio::CappedOutput;
use crate::config::{ConfigValues, Redactor};
use crate::egress::{
    EgressClient, EgressPolicy, HttpCall, HttpError, HttpRequest, HttpResponse, RequestCaps,
    SendMode, Throttle,
};
use crate::runs::{LogLimits, Mode, RunLog};
use crate::storage::RunStorage;

/// Caps a run's linear memory and remembers whether the cap was hit, so the
/// runner can tell a memory stop from any other trap.
pub struct MemoryLimiter {
    max_bytes: usize,
    /// Set when the guest asked for more than `max_bytes`.
    pub exceeded: bool,
}

impl MemoryLimiter {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            return Err(wasmtime::format_err!(
                "memory limit: growing to {desired} bytes is over the run's {} bytes",
                self.max_bytes
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The HTTP capability of one run, behind both `airlock:connector/http` and
/// `wasi:http`.
#[derive(Clone)]
pub struct HttpCapability {
    pub client: EgressClient,
    pub policy: Arc<EgressPolicy>,
    pub throttle: Arc<Throttle>,
    pub caps: RequestCaps,
    pub mode: SendMode,
    /// Audit records of both HTTP interfaces, in order.
    pub calls: Arc<Mutex<Vec<HttpCall>>>,
    /// The installation's secrets, redacted from every audit record.
    pub redactor: Redactor,
}

/// Everything a run's store holds.
pub struct RunState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub started: Instant,
    pub log: RunLog,
    pub config: ConfigValues,
    pub storage: RunStorage,
    pub http: HttpCapability,
    pub wasi_http: WasiHttpCtx,
    pub wasi_http_hooks: PolicyHooks,
    pub stdout: CappedOutput,
    pub stderr: CappedOutput,
}

impl HttpCapability {
    /// Sends through the enforcement point under this run's policy, mode,
    /// throttle and caps, and records the audit of every hop.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (result, hops) = self
            .client
            .send_throttled(
                &self.policy,
                self.mode,
                Some(&self.throttle),
                Some(self.caps),
                request,
            )
            .await;
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(hops.into_iter().map(|hop| hop.redacted(&self.redactor)));
        result
    }
}

impl RunState {
    /// The state of one run: its capabilities from `setup`, memory capped at
    /// `memory_bytes`, output captured into `stdout` and `stderr`.
    pub fn new(
        setup: RunSetup,
        memory_bytes: usize,
        log: LogLimits,
        stdout: &CappedOutput,
        stderr: &CappedOutput,
    ) -> Self {
        let mode = match setup.mode {
            Mode::Test => SendMode::Test,
            Mode::Live => SendMode::Live,
        };
        let http = HttpCapability {
            client: setup.client,
            policy: setup.policy,
            throttle: setup.throttle,
            caps: setup.caps,
            mode,
            calls: Arc::new(Mutex::new(Vec::new())),
            redactor: setup.config.redactor(),
        };
        Self {
            wasi: Self::sandboxed_wasi(stdout, stderr),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_bytes),
            started: Instant::now(),
            log: RunLog::new(log),
            config: setup.config,
            storage: setup.storage,
            wasi_http_hooks: PolicyHooks(http.clone()),
            http,
            wasi_http: WasiHttpCtx::new(),
            stdout: stdout.clone(),
            stderr: stderr.clone(),
        }
    }

    /// A WASI context that grants nothing: no preopened directories, no
    /// environment, no arguments, no sockets or name lookup, stdin empty,
    /// stdout and stderr captured.
    pub fn sandboxed_wasi(stdout: &CappedOutput, stderr: &CappedOutput) -> WasiCtx {
        WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build()
    }

    /// Milliseconds since the run started.
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.wasi_http,
            table: &mut self.table,
            hooks: &mut self.wasi_http_hooks,
        }
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
