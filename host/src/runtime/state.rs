//! The data a run's wasmtime `Store` holds: a WASI context with nothing
//! granted, the memory limiter (all memories and tables of the instance
//! together), and one field per capability (log, config, kv storage,
//! records, artifacts, HTTP with its per-run budget), each built from the run's
//! [`RunSetup`].

use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use super::RunSetup;
use super::stdio::CappedOutput;
use crate::capability::artifacts::ArtifactsCapability;
use crate::capability::config::ConfigCapability;
use crate::capability::http::{HttpCapability, WasiHttpState};
use crate::capability::kv::KvCapability;
use crate::capability::log::LogCapability;
use crate::capability::oauth::OAuthCapability;
use crate::capability::records::RecordsCapability;
use crate::egress::SendMode;
use crate::runs::{LogLimits, Mode};

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
    /// The most `used_bytes` has been: the instance's peak memory.
    peak_bytes: usize,
    /// Set when the guest asked for more than `max_bytes` in all.
    pub exceeded: bool,
}

impl MemoryLimiter {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            used_bytes: 0,
            last_grant: 0,
            peak_bytes: 0,
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
        self.peak_bytes = self.peak_bytes.max(total);
        Ok(true)
    }

    /// The most memory (linear memories and tables) the instance has held
    /// at once, in bytes.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
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

/// Everything a run's store holds.
pub struct RunState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub log: LogCapability,
    pub config: ConfigCapability,
    pub kv: KvCapability,
    pub records: RecordsCapability,
    pub artifacts: ArtifactsCapability,
    pub oauth: OAuthCapability,
    pub http: HttpCapability,
    pub wasi_http: WasiHttpState,
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
        let redactor = setup.config.redactor();
        let http = HttpCapability::new(
            setup.client,
            setup.policy,
            setup.throttle,
            setup.caps,
            mode,
            setup.http_budget,
            redactor.clone(),
        );
        let scope = crate::storage::Scope {
            tenant: setup.tenant.clone(),
            installation: setup.installation.clone(),
        };
        let host_only: Vec<String> = setup
            .oauth
            .as_ref()
            .and_then(|o| o.client.as_ref().ok())
            .map(|c| c.section.client_secret_field.clone())
            .into_iter()
            .collect();
        let oauth = OAuthCapability::new(setup.oauth, scope, &http);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Self {
            wasi: Self::sandboxed_wasi(stdout, stderr),
            table,
            limiter: MemoryLimiter::new(memory_bytes),
            log: LogCapability::new(log, redactor, Instant::now()),
            config: ConfigCapability::new(setup.config).hiding(host_only),
            kv: KvCapability::new(setup.storage, setup.keyring),
            artifacts: ArtifactsCapability::new(
                setup.artifact_store,
                crate::storage::Scope {
                    tenant: setup.tenant.clone(),
                    installation: setup.installation.clone(),
                },
                setup.artifacts,
            ),
            records: RecordsCapability::new(
                setup.record_store,
                setup.tenant,
                setup.installation,
                setup.records,
            ),
            oauth,
            wasi_http: WasiHttpState::new(&http),
            http,
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
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.wasi_http.view(&mut self.table)
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
    use super::*;

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
