//! The data a run's wasmtime `Store` holds: a WASI context with nothing
//! granted, the memory limiter (all memories and tables of the instance
//! together), and the run's capabilities (log, config, storage, and HTTP with
//! its per-run budget: requests, requests in flight, audit records).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

/// Resources (WASI streams, HTTP requests and their fields, pollables…) a
/// run may hold at once; one more traps. Each lives in host memory, outside
/// the guest's memory cap, so their number is capped instead.
const MAX_RESOURCES: usize = 10_000;

/// Bytes a table element costs the host: a pointer (see wasmtime's
/// `ResourceLimiter::table_growing`).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// Caps the memory of a run's whole instance: every linear memory and every
/// table of every core instance in the component count against one budget
/// (a component may define several memories; each under the cap alone is not
/// enough). Remembers whether the cap was hit, so the runner can tell a
/// memory stop from any other trap.
pub struct MemoryLimiter {
    max_bytes: usize,
    /// Bytes granted so far: linear memories plus tables.
    used_bytes: usize,
    /// The last growth granted, taken back if wasmtime then fails to grow.
    last_grant: usize,
    /// Set when the guest asked for more than `max_bytes` in all.
    pub exceeded: bool,
}

impl MemoryLimiter {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            used_bytes: 0,
            last_grant: 0,
            exceeded: false,
        }
    }

    /// Grants `current → desired` bytes of one memory or table if the
    /// instance's total stays within the cap.
    fn grow(&mut self, what: &str, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let more = desired.saturating_sub(current);
        let total = self.used_bytes.saturating_add(more);
        if total > self.max_bytes {
            self.exceeded = true;
            return Err(wasmtime::format_err!(
                "memory limit: growing a {what} would bring the instance to {total} bytes, \
                 over the run's {} bytes",
                self.max_bytes
            ));
        }
        self.used_bytes = total;
        self.last_grant = more;
        Ok(true)
    }

    /// Takes back the last grant: wasmtime could not grow after all.
    fn undo_last_grant(&mut self) {
        self.used_bytes -= std::mem::take(&mut self.last_grant);
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow("linear memory", current, desired)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last_grant();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let bytes = |elements: usize| elements.saturating_mul(TABLE_ELEMENT_BYTES);
        self.grow("table", bytes(current), bytes(desired))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last_grant();
        Ok(())
    }
}

/// The per-run bounds on HTTP, both interfaces together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpBudget {
    /// Requests a run may make (a request's redirect hops are part of it).
    pub max_requests: u32,
    /// Requests a run may have in flight at once; more wait their turn.
    pub max_in_flight: u32,
    /// Audit records (requests and redirect hops) kept for the run's report
    /// and the audit table; more are counted and dropped.
    pub max_audit_hops: u32,
}

/// The audit of one run's HTTP hops, capped like the log: past the cap,
/// hops are counted and dropped.
#[derive(Debug, Default)]
pub struct HttpAudit {
    /// The hops kept, in order.
    pub calls: Vec<HttpCall>,
    /// Hops not kept: over the audit cap, or requests refused over the
    /// request cap.
    pub dropped: u32,
}

/// A run's HTTP state shared by all its requests.
struct HttpRunBudget {
    budget: HttpBudget,
    in_flight: Arc<Semaphore>,
    requests: AtomicU32,
    audit: Mutex<HttpAudit>,
}

/// Held while one request is in flight; frees its slot when dropped.
pub struct InFlight {
    _permit: OwnedSemaphorePermit,
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
    /// The installation's secrets, redacted from every audit record.
    pub redactor: Redactor,
    run: Arc<HttpRunBudget>,
}

impl HttpCapability {
    /// The capability of one run, with nothing sent yet.
    pub fn new(
        client: EgressClient,
        policy: Arc<EgressPolicy>,
        throttle: Arc<Throttle>,
        caps: RequestCaps,
        mode: SendMode,
        budget: HttpBudget,
        redactor: Redactor,
    ) -> Self {
        let run = HttpRunBudget {
            budget,
            in_flight: Arc::new(Semaphore::new(budget.max_in_flight.max(1) as usize)),
            requests: AtomicU32::new(0),
            audit: Mutex::new(HttpAudit::default()),
        };
        Self {
            client,
            policy,
            throttle,
            caps,
            mode,
            redactor,
            run: Arc::new(run),
        }
    }

    /// Counts a request against the run's request cap, then waits for one
    /// of the run's in-flight slots. A request over the cap is refused:
    /// nothing is sent, and it is counted as a dropped audit record.
    pub async fn admit(&self) -> Result<InFlight, HttpError> {
        let max = self.run.budget.max_requests;
        if self.run.requests.fetch_add(1, Ordering::Relaxed) >= max {
            let mut audit = self.audit();
            audit.dropped = audit.dropped.saturating_add(1);
            return Err(HttpError::InvalidRequest(format!(
                "not sent: the run reached its limit of {max} HTTP requests"
            )));
        }
        let semaphore = self.run.in_flight.clone();
        // The semaphore is never closed, so acquiring only waits.
        let permit = semaphore
            .acquire_owned()
            .await
            .map_err(|_| HttpError::ConnectionFailed("the run is ending".into()))?;
        Ok(InFlight { _permit: permit })
    }

    /// Sends through the enforcement point under this run's policy, mode,
    /// throttle, caps and HTTP budget, and records the audit of every hop.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let _slot = self.admit().await?;
        self.send_admitted(request).await
    }

    /// [`send`](Self::send) for a request already [admitted](Self::admit).
    pub async fn send_admitted(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
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
        self.record(hops);
        result
    }

    /// Keeps `hops` in the audit up to its cap; counts the rest.
    fn record(&self, hops: Vec<HttpCall>) {
        let max = self.run.budget.max_audit_hops as usize;
        let mut audit = self.audit();
        let room = max.saturating_sub(audit.calls.len());
        let over = hops.len().saturating_sub(room);
        audit.calls.extend(
            hops.into_iter()
                .take(room)
                .map(|hop| hop.redacted(&self.redactor)),
        );
        audit.dropped = audit
            .dropped
            .saturating_add(u32::try_from(over).unwrap_or(u32::MAX));
    }

    fn audit(&self) -> std::sync::MutexGuard<'_, HttpAudit> {
        self.run.audit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the run's audit: the hops kept and the count dropped.
    pub fn take_audit(&self) -> HttpAudit {
        std::mem::take(&mut *self.audit())
    }
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
        let http = HttpCapability::new(
            setup.client,
            setup.policy,
            setup.throttle,
            setup.caps,
            mode,
            setup.http_budget,
            setup.config.redactor(),
        );
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Self {
            wasi: Self::sandboxed_wasi(stdout, stderr),
            table,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::egress::{AddressPolicy, EgressLimits};

    fn capability(budget: HttpBudget) -> HttpCapability {
        let client = EgressClient::new(
            EgressLimits::default(),
            Default::default(),
            AddressPolicy::new(vec![]),
        )
        .unwrap();
        HttpCapability::new(
            client,
            Arc::new(EgressPolicy::default()),
            Arc::new(Throttle::new(Default::default())),
            RequestCaps {
                timeout: Duration::from_secs(1),
                max_response_bytes: 1024,
            },
            SendMode::Live,
            budget,
            crate::config::Redactor::new([]),
        )
    }

    fn get(url: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: None,
            timeout: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_waits_for_an_in_flight_slot_and_stops_at_its_request_cap() {
        let http = capability(HttpBudget {
            max_requests: 4,
            max_in_flight: 2,
            max_audit_hops: 10,
        });
        let first = http.admit().await.unwrap();
        let _second = http.admit().await.unwrap();
        let third = tokio::time::timeout(Duration::from_secs(60), http.admit()).await;
        assert!(
            third.is_err(),
            "a third request waits while two are in flight"
        );
        drop(first);
        let _fourth = http.admit().await.unwrap();
        let Err(HttpError::InvalidRequest(refused)) = http.admit().await else {
            panic!("a fifth request is over the cap of 4");
        };
        assert!(refused.contains("limit of 4 HTTP requests"), "{refused}");
        assert_eq!(http.take_audit().dropped, 1, "the refusal is counted");
    }

    #[tokio::test]
    async fn the_audit_keeps_its_cap_and_counts_the_rest() {
        let http = capability(HttpBudget {
            max_requests: 100,
            max_in_flight: 1,
            max_audit_hops: 3,
        });
        for _ in 0..10 {
            let denied = http.send(get("https://evil.example/")).await;
            assert!(matches!(denied, Err(HttpError::Denied(_))), "{denied:?}");
        }
        let audit = http.take_audit();
        assert_eq!(audit.calls.len(), 3);
        assert_eq!(audit.dropped, 7);
    }

    #[test]
    fn the_memory_cap_counts_all_memories_and_tables_together() {
        let mut limiter = MemoryLimiter::new(32 << 20);
        // Two memories of 20 MiB: each under the cap, together over it.
        assert!(limiter.memory_growing(0, 20 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 20 << 20, None).is_err());
        assert!(limiter.exceeded);

        let mut limiter = MemoryLimiter::new(32 << 20);
        assert!(limiter.memory_growing(0, 30 << 20, None).unwrap());
        let elements = (4 << 20) / TABLE_ELEMENT_BYTES;
        assert!(
            limiter.table_growing(0, elements, None).is_err(),
            "a table's elements count too"
        );

        // A growth wasmtime then fails to make is not counted.
        let mut limiter = MemoryLimiter::new(32 << 20);
        assert!(limiter.memory_growing(0, 30 << 20, None).unwrap());
        limiter
            .memory_grow_failed(wasmtime::format_err!("no room"))
            .unwrap();
        assert!(limiter.memory_growing(0, 30 << 20, None).unwrap());
        assert!(!limiter.exceeded);
    }
}
