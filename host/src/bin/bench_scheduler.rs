//! `airlock-bench-scheduler`: many installations of a trivial plugin, all due
//! in the same minute, run by the real scheduler on a SQLite file. Prints
//! runs per second, the lag between the due time and each run's start
//! (p50/p99/max), and the process's peak RSS; then, as the baseline, bare
//! wasmtime instantiate + call of the same component on one core in the same
//! process, and the scheduler's throughput as a ratio to it.
//!
//! The scheduler's clock is the real clock shifted so that the shared fire
//! time comes two seconds after setup: lag is measured in real time.
//!
//! With `--database postgres://…` the store is PostgreSQL (a schema of its
//! own, dropped at the end) and `--nodes N` schedulers run on it, each with
//! its own connection pool, leases and host, as N `serve` processes would
//! (in one process: they share its cores, as nodes on this machine would).
//!
//! Run with `cargo run --release -p airlock --bin airlock-bench-scheduler`
//! after `scripts/build-plugins.sh`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, DurationRound, Utc};
use clap::Parser;
use tokio::sync::Notify;

use airlock::lifecycle::{self, InstallRequest};
use airlock::runs::Mode;
use airlock::scheduler::{Clock, Event, Scheduler, ServeOptions};
use airlock::storage::{PgOptions, PgStore, TenantRow};
use airlock::{Airlock, AirlockOptions, SqliteStore};

/// Measure the scheduler with many installations due at once.
#[derive(Parser)]
struct Args {
    /// Plugin directory.
    #[arg(long, default_value = "plugins/hello")]
    plugin: PathBuf,
    /// The feed every installation runs (the others never fire).
    #[arg(long, default_value = "noop")]
    feed: String,
    /// Installations.
    #[arg(long, default_value_t = 10_000)]
    installations: usize,
    /// Tenants they are spread over.
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    /// Runs at once, over all tenants.
    #[arg(long, default_value_t = 8)]
    max_concurrent: usize,
    /// Runs at once per tenant.
    #[arg(long, default_value_t = 2)]
    max_per_tenant: usize,
    /// SQLite file (default: a new temporary file).
    #[arg(long)]
    db: Option<PathBuf>,
    /// A PostgreSQL database instead of a SQLite file (a schema of its own
    /// is made and dropped).
    #[arg(long, env = "AIRLOCK_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// Schedulers on the PostgreSQL database, each as a `serve` node.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
}

/// A fresh schema on the database at `url`: the URL that uses it, and the
/// schema's name.
async fn fresh_schema(url: &str) -> anyhow::Result<(String, String)> {
    let schema = format!("bench_{}_{}", std::process::id(), Utc::now().timestamp());
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to the database")?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await?;
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok((
        format!("{url}{separator}options=-c%20search_path%3D{schema}"),
        schema,
    ))
}

async fn drop_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await?;
    Ok(())
}

/// The hosts of the nodes: one on a SQLite file, or `nodes` on PostgreSQL
/// (each its own store: pool and leases).
async fn hosts(
    args: &Args,
    db: &std::path::Path,
    url: Option<&str>,
) -> anyhow::Result<Vec<Arc<Airlock>>> {
    let Some(url) = url else {
        let store = Arc::new(SqliteStore::open(db)?);
        return Ok(vec![Arc::new(Airlock::new(
            store,
            AirlockOptions::default(),
        )?)]);
    };
    let mut hosts = Vec::new();
    for _ in 0..args.nodes.max(1) {
        let options = PgOptions {
            max_connections: 2 * args.max_concurrent + 4,
            // The plugin store beside where SQLite's file would be.
            data_dir: db.parent().map(std::path::Path::to_path_buf),
            ..PgOptions::default()
        };
        let store = Arc::new(PgStore::connect(url, options).await?);
        hosts.push(Arc::new(Airlock::new(store, AirlockOptions::default())?));
    }
    Ok(hosts)
}

/// The real clock plus a fixed offset.
struct ShiftedClock(chrono::Duration);

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Installs them all; their feed fires once, at `fire` (a cron expression
/// naming that exact minute), and their other feeds never.
async fn install_all(host: &Airlock, args: &Args, fire: DateTime<Utc>) -> anyhow::Result<()> {
    let plugin = airlock::Plugin::load(&args.plugin)?;
    let once = fire.format("0 %M %H %d %m * %Y").to_string();
    let schedules: Vec<(String, String)> = plugin
        .manifest
        .feeds
        .iter()
        .map(|f| {
            let cron = if f.name == args.feed {
                once.as_str()
            } else {
                "0 0 0 1 1 * 2099"
            };
            (f.name.clone(), cron.to_string())
        })
        .collect();
    for t in 0..args.tenants {
        host.store()
            .add_tenant(TenantRow {
                id: format!("t{t}"),
                name: format!("tenant {t}"),
                created_at: 0,
            })
            .await?;
    }
    let started = Instant::now();
    for i in 0..args.installations {
        let request = InstallRequest {
            tenant: format!("t{}", i % args.tenants),
            id: Some(format!("i{i}")),
            plugin_dir: args.plugin.clone(),
            assignments: Vec::new(),
            mode: Mode::Live,
            schedules: schedules.clone(),
            time_zone: "UTC".into(),
        };
        let plan = lifecycle::plan_install(host, &request).await?;
        lifecycle::commit_install(&**host.store(), None, &plan, 0).await?;
        if (i + 1) % 2000 == 0 {
            eprintln!(
                "  installed {} ({:.1} s)",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| dir.path().join("bench.db"));
    if args.nodes > 1 && args.database.is_none() {
        anyhow::bail!("--nodes needs --database: SQLite has one `serve`");
    }
    let schema = match &args.database {
        Some(url) => Some(fresh_schema(url).await?),
        None => None,
    };
    let hosts = hosts(&args, &db, schema.as_ref().map(|(url, _)| url.as_str())).await?;
    let host = hosts[0].clone();
    eprintln!(
        "installing {} installations over {} tenants",
        args.installations, args.tenants
    );
    // They all fire at one whole minute an hour ahead; the scheduler's clock
    // is shifted so that minute comes 2 s after setup.
    let target =
        (Utc::now() + chrono::Duration::hours(1)).duration_trunc(chrono::Duration::minutes(1))?;
    let setup = Instant::now();
    install_all(&host, &args, target)
        .await
        .context("installing")?;
    let setup = setup.elapsed();
    let lead = Duration::from_secs(2);
    let offset = target - (Utc::now() + chrono::Duration::from_std(lead)?);
    let due_at = Instant::now() + lead;

    let starts: Arc<Mutex<Vec<Duration>>> = Arc::default();
    // When each run started, by installation, and how long each lasted
    // (started -> finished and recorded; its guest's slot is freed before).
    let begun: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let held: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let finished = Arc::new(Mutex::new(0usize));
    let done = Arc::new(Notify::new());
    let total = args.installations;
    let sink = {
        let (starts, finished, done) = (starts.clone(), finished.clone(), done.clone());
        let (begun, held) = (begun.clone(), held.clone());
        Arc::new(move |e: &Event| match e {
            Event::Started { installation, .. } => {
                let now = Instant::now();
                starts
                    .lock()
                    .unwrap()
                    .push(now.saturating_duration_since(due_at));
                begun.lock().unwrap().insert(installation.clone(), now);
            }
            Event::Finished { installation, .. } => {
                if let Some(at) = begun.lock().unwrap().remove(installation) {
                    held.lock().unwrap().push(at.elapsed());
                }
                let mut n = finished.lock().unwrap();
                *n += 1;
                if *n == total {
                    done.notify_one();
                }
            }
            _ => {}
        })
    };
    let options = ServeOptions {
        tick: Duration::from_millis(100),
        max_concurrent: args.max_concurrent,
        max_per_tenant: args.max_per_tenant,
        jitter: chrono::Duration::zero(),
        ..ServeOptions::default()
    };
    // Every node stops when the last run is recorded, by whichever node.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut serving = Vec::new();
    for node in &hosts {
        let scheduler = Arc::new(Scheduler::new(
            node.clone(),
            None,
            Arc::new(ShiftedClock(offset)),
            options.clone(),
            sink.clone(),
        ));
        let mut stopped = stopped.clone();
        serving.push(tokio::spawn(scheduler.serve(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })));
    }
    done.notified().await;
    let elapsed = due_at.elapsed();
    let _ = stop.send(true);
    for node in serving {
        node.await??;
    }

    let mut lags = starts.lock().unwrap().clone();
    lags.sort();
    let ok_runs = host
        .store()
        .runs(airlock::storage::RunFilter {
            status: Some("ok".into()),
            limit: usize::MAX >> 1,
            ..Default::default()
        })
        .await?
        .len();
    let database = match &args.database {
        Some(_) => format!("PostgreSQL, {} node(s)", hosts.len()),
        None => "SQLite file".to_string(),
    };
    println!(
        "scheduler  {} installations, {} tenants, feed `{}`, {} at once ({} per tenant) per node, {database}",
        args.installations, args.tenants, args.feed, args.max_concurrent, args.max_per_tenant
    );
    println!(
        "setup      {:.1} s to install them all",
        setup.as_secs_f64()
    );
    println!(
        "runs       {} started, {} ok, all done {:.1} s after the due time: {:.0} runs/s",
        lags.len(),
        ok_runs,
        elapsed.as_secs_f64(),
        lags.len() as f64 / elapsed.as_secs_f64()
    );
    if !lags.is_empty() {
        println!(
            "lag        due -> start: first {:.0} ms, p50 {:.1} s, p99 {:.1} s, max {:.1} s",
            lags[0].as_secs_f64() * 1e3,
            percentile(&lags, 0.50).as_secs_f64(),
            percentile(&lags, 0.99).as_secs_f64(),
            lags[lags.len() - 1].as_secs_f64()
        );
    }
    let mut held = held.lock().unwrap().clone();
    held.sort();
    if !held.is_empty() {
        let total: Duration = held.iter().sum();
        println!(
            "run        started -> recorded: mean {:.2} ms, p99 {:.2} ms; {:.1} runs in progress on average (limit {} guests at once)",
            total.as_secs_f64() * 1e3 / held.len() as f64,
            percentile(&held, 0.99).as_secs_f64() * 1e3,
            total.as_secs_f64() / elapsed.as_secs_f64(),
            args.max_concurrent
        );
    }
    if let Some(rss) = peak_rss_mib() {
        println!("memory     peak RSS {rss:.0} MiB");
    }
    let runs_per_second = lags.len() as f64 / elapsed.as_secs_f64();
    let bare = bare_runs_per_second(&host, &args).await?;
    println!("baseline   bare wasmtime instantiate + call, one at a time: {bare:.0} runs/s");
    println!("ratio      scheduler / bare: {:.3}", runs_per_second / bare);
    if let (Some(url), Some((_, schema))) = (&args.database, &schema) {
        drop(hosts);
        drop_schema(url, schema).await?;
    }
    Ok(())
}

/// Runs per second of bare wasmtime (instantiate + call in a plain store, no
/// limits, storage or recording) of the same feed, one after another.
async fn bare_runs_per_second(host: &Airlock, args: &Args) -> anyhow::Result<f64> {
    let plugin = airlock::Plugin::load(&args.plugin)?;
    let installation = airlock::Installation {
        tenant: "t0".into(),
        id: "i0".into(),
        config: airlock::ConfigValues::resolve(&plugin.manifest, [])?,
        mode: Mode::Live,
        rate_limits: Default::default(),
        approved_egress: None,
        approved_data: None,
    };
    let component = host.load(&plugin)?;
    let iterations = 2000;
    let mut elapsed = Duration::ZERO;
    for i in 0..iterations + iterations / 10 {
        let setup = host.setup(&plugin, &installation)?;
        let feed = airlock::runtime::FeedCall {
            feed: args.feed.clone(),
            trigger: airlock::runs::Trigger::Schedule,
            scheduled_at: 0,
            attempt: 1,
            last_success_at: None,
        };
        let started = Instant::now();
        host.runtime()
            .call_run_bare(&component, setup, feed)
            .await?;
        if i >= iterations / 10 {
            elapsed += started.elapsed();
        }
    }
    Ok(f64::from(iterations) / elapsed.as_secs_f64())
}
