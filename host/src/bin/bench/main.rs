//! `airlock-bench`: the per-run cost of Airlock against bare wasmtime.
//!
//! Both sides run the same component (default: `plugins/hello`, feed `noop`)
//! on the same engine and linker. "airlock" is a full run: fresh store with
//! limits and deadline, WASI sandbox, output capture, storage view, the
//! egress policy, commit, and the run recorded in SQLite. "bare" is
//! `instantiate` + `call run` in a plain store. Also prints the cost of
//! compiling the component and of loading it from the on-disk cache.
//!
//! With `--calls`, it then measures calls inside one run, with `plugins/bench`:
//! key-value operations per second, and guest HTTP through the host (policy,
//! resolver, throttle, audit) against native reqwest to the same loopback
//! server.
//!
//! With `--traces`, the same runs are measured again with OpenTelemetry
//! traces on: see `traces.rs`.
//!
//! With `--records N`, it measures the tenant's records instead: see
//! `records.rs`. With `--artifacts MIB`, publishing and serving an artifact:
//! see `artifacts.rs`.
//!
//! Run with `cargo run --release -p airlock --bin airlock-bench [-- --calls]`
//! after `scripts/build-plugins.sh`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use airlock::runs::{Mode, RunRequest, Trigger};
use airlock::runtime::{FeedCall, HostLimits, Runtime};
use airlock::{Airlock, AirlockOptions, ConfigValues, Installation, Plugin, SqliteStore};

mod artifacts;
mod calls;
mod records;
mod traces;

/// Measure the per-run overhead of Airlock over bare wasmtime.
#[derive(Parser)]
struct Args {
    /// Plugin directory.
    #[arg(long, default_value = "plugins/hello")]
    plugin: PathBuf,
    /// Feed to run.
    #[arg(long, default_value = "noop")]
    feed: String,
    /// SQLite file for storage and run records (default: in memory, which
    /// leaves out the fsync each recorded run costs on disk).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Runs measured on each side (after 10% warm-up).
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// Also measure the runs with OpenTelemetry traces on (spans recorded
    /// and batched, export counted and dropped).
    #[arg(long)]
    traces: bool,
    /// Also measure calls inside one run (key-value, HTTP) with `plugins/bench`.
    #[arg(long)]
    calls: bool,
    /// Key-value operations in the key-value run (half sets, half gets).
    #[arg(long, default_value_t = 200_000)]
    kv_operations: u32,
    /// Requests on each side of the HTTP comparison.
    #[arg(long, default_value_t = 2000)]
    http_requests: u32,
    /// Instead of the per-run cost, measure the tenant's records with this
    /// many orders on a SQLite file: writing them, and one consumer's
    /// pending set.
    #[arg(long, value_name = "ORDERS")]
    records: Option<usize>,
    /// Instead of the per-run cost, measure publishing and serving an
    /// artifact of this many MiB (with `plugins/artifacts-probe`).
    #[arg(long, value_name = "MIB")]
    artifacts: Option<u64>,
}

struct Stats {
    mean: Duration,
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let n = samples.len().max(1);
    let at = |q: f64| samples[((n as f64 * q) as usize).min(n - 1)];
    Stats {
        mean: samples.iter().sum::<Duration>() / n as u32,
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn print(name: &str, s: &Stats) {
    println!(
        "{name:<8} mean {:>8.1} µs   p50 {:>8.1} µs   p99 {:>8.1} µs   {:>8.0} runs/s",
        us(s.mean),
        us(s.p50),
        us(s.p99),
        1.0 / s.mean.as_secs_f64()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(mib) = args.artifacts {
        return artifacts::measure(mib).await;
    }
    if let Some(orders) = args.records {
        return records::measure(orders).await;
    }
    let plugin =
        Plugin::load(&args.plugin).context("build the plugins first: scripts/build-plugins.sh")?;
    let cache = tempfile::tempdir()?;

    // Compile once into an empty cache, then load from it in a fresh runtime
    // (what a restart does).
    let cold = Runtime::new(HostLimits::default(), Some(cache.path().to_path_buf()))?;
    let compiled = cold.load(&plugin.digest, &plugin.component)?;
    let warm = Runtime::new(HostLimits::default(), Some(cache.path().to_path_buf()))?;
    let cached = warm.load(&plugin.digest, &plugin.component)?;
    println!(
        "component {} ({} KiB)",
        plugin.label(),
        plugin.component.len() / 1024
    );
    println!(
        "load     compile {:.1} ms ({:?}), from disk cache {:.2} ms ({:?})",
        compiled.load_time.as_secs_f64() * 1e3,
        compiled.cache,
        cached.load_time.as_secs_f64() * 1e3,
        cached.cache
    );

    let store = Arc::new(match &args.db {
        Some(path) => SqliteStore::open(path)?,
        None => SqliteStore::in_memory()?,
    });
    let options = AirlockOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..AirlockOptions::default()
    };
    let host = Airlock::new(store, options)?;
    let installation = Installation {
        tenant: "bench".into(),
        id: "hello".into(),
        config: ConfigValues::resolve(&plugin.manifest, [])?,
        mode: Mode::Live,
        rate_limits: Default::default(),
        approved_egress: None,
        approved_data: None,
    };
    let component = host.load(&plugin)?;
    let warmup = args.iterations / 10;

    let airlock_samples = measure_runs(&host, &plugin, &installation, &args).await?;

    let mut bare_samples = Vec::with_capacity(args.iterations);
    for i in 0..warmup + args.iterations {
        let setup = host.setup(&plugin, &installation)?;
        let feed = FeedCall {
            feed: args.feed.clone(),
            trigger: Trigger::Schedule,
            scheduled_at: 0,
            attempt: 1,
            last_success_at: None,
        };
        let started = Instant::now();
        host.runtime()
            .call_run_bare(&component, setup, feed)
            .await
            .map_err(anyhow::Error::from)?;
        let took = started.elapsed();
        if i >= warmup {
            bare_samples.push(took);
        }
    }

    let a = stats(airlock_samples);
    let b = stats(bare_samples);
    let db = args
        .db
        .as_ref()
        .map_or("in-memory SQLite".to_string(), |p| {
            format!("SQLite file {}", p.display())
        });
    println!(
        "runs     {} per side, feed `{}`, {db}",
        args.iterations, args.feed
    );
    print("airlock", &a);
    print("bare", &b);
    println!(
        "ratio    airlock / bare: mean {:.2}x, p50 {:.2}x",
        a.mean.as_secs_f64() / b.mean.as_secs_f64(),
        a.p50.as_secs_f64() / b.p50.as_secs_f64()
    );
    if args.traces {
        let (subscriber, provider, counting) = traces::subscriber();
        let traced = {
            // This thread's runs (the benchmark calls them in turn, here).
            let _default = tracing::subscriber::set_default(subscriber);
            measure_runs(&host, &plugin, &installation, &args).await?
        };
        provider.force_flush()?;
        let runs = (warmup + args.iterations) as f64;
        let t = stats(traced);
        print("traced", &t);
        println!(
            "ratio    traced / airlock: mean {:.2}x, p50 {:.2}x ({:.1} spans per run exported)",
            t.mean.as_secs_f64() / a.mean.as_secs_f64(),
            t.p50.as_secs_f64() / a.p50.as_secs_f64(),
            counting.spans() as f64 / runs
        );
    }
    if args.calls {
        calls::measure(&args).await?;
    }
    Ok(())
}

/// Full runs of the feed, one after another: the time of each after the
/// warm-up (10%).
async fn measure_runs(
    host: &Airlock,
    plugin: &Plugin,
    installation: &Installation,
    args: &Args,
) -> anyhow::Result<Vec<Duration>> {
    let warmup = args.iterations / 10;
    let mut samples = Vec::with_capacity(args.iterations);
    for i in 0..warmup + args.iterations {
        let request = RunRequest {
            feed: args.feed.clone(),
            trigger: Trigger::Schedule,
            scheduled_at: 0,
            attempt: 1,
        };
        let started = Instant::now();
        let report = host.run_feed(plugin, installation, request).await?;
        let took = started.elapsed();
        anyhow::ensure!(report.severity().commits(), "run failed: {:?}", report.end);
        if i >= warmup {
            samples.push(took);
        }
    }
    Ok(samples)
}
