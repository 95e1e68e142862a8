//! The process's wasmtime [`Engine`]: its configuration (component model,
//! epoch interruption, a pooling allocator sized so that no guest can
//! exhaust it for the others) and the thread that advances its epoch, the
//! clock of every run's deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::HostLimits;

/// How often the epoch advances; the granularity of run deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances, linear memories and tables one component may have. The
/// memory cap counts all its memories and tables together
/// ([`MemoryLimiter`](super::state::MemoryLimiter)), so these only bound the pool's bookkeeping.
const CORE_INSTANCES_PER_COMPONENT: u32 = 50;
const MEMORIES_PER_COMPONENT: u32 = 10;
const TABLES_PER_COMPONENT: u32 = 50;

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub(super) fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("airlock-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The engine's configuration for these host maxima.
pub(super) fn engine_config(limits: &HostLimits) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    let mut pool = PoolingAllocationConfig::default();
    let slots = limits.max_concurrent_runs.max(1);
    // Every instance may use its full share, so no guest can exhaust the
    // pool for the others: only more than `slots` runs at once can.
    pool.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * MEMORIES_PER_COMPONENT)
        .total_tables(slots * TABLES_PER_COMPONENT)
        .total_stacks(slots)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_memory_size(limits.max_memory_bytes as usize)
        .table_elements(100_000)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}
