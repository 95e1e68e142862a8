//! `airlock serve` (the scheduler, until SIGTERM/SIGINT) and `airlock
//! run-now` (queue an immediate run for it).
//!
//! One `serve` per database: it holds an exclusive lock on `DB.serve.lock`,
//! which the OS releases if the process dies, so a restart after SIGKILL can
//! take over and recover the interrupted runs.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;

use airlock::lifecycle::{self, parse_reference};
use airlock::metrics::listener::MetricsServer;
use airlock::runtime::HostLimits;
use airlock::scheduler::{
    CatchUp, Event, Overlap, RetryPolicy, Scheduler, ServeOptions, SystemClock, TestOutbound,
};
use airlock::web::{WebServer, WebState};

use super::logging::LogArgs;
use super::{
    CacheArgs, DbArgs, KeyArgs, NetArgs, PublishArgs, open_host_with, parse_duration, show_time,
};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    publish: PublishArgs,
    /// Guests running at once, over all tenants (a run whose guest has
    /// ended is recorded without holding a slot; its feed stays busy until
    /// then).
    #[arg(long, default_value_t = 8, value_name = "N")]
    max_concurrent: usize,
    /// Guests running at once for one tenant (so one tenant with many
    /// installations cannot starve the others).
    #[arg(long, default_value_t = 2, value_name = "N")]
    max_per_tenant: usize,
    /// Spread each schedule's runs by up to this much after the fire time,
    /// the same offset every time for an installation (capped at half the
    /// schedule's period). 0s for none.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    jitter: Duration,
    /// A scheduled run that comes due while the previous run of the same
    /// feed is still going: wait for it, or skip this one.
    #[arg(long, default_value = "wait", value_name = "wait|skip")]
    overlap: Overlap,
    /// Fires missed while no server ran: skip them, run one catch-up run, or
    /// run up to N of them (all:N).
    #[arg(long, default_value = "one", value_name = "skip|one|all:N")]
    catch_up: CatchUp,
    /// How late a fire may be and still run as on time.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    misfire_grace: Duration,
    /// Outbound feeds of installations in test mode: skip them, or run them
    /// with every request that changes a third party suppressed.
    #[arg(long, default_value = "skip", value_name = "skip|dry-run")]
    test_outbound: TestOutbound,
    /// Attempts for a run that ends `retry` (or is interrupted) before a
    /// notification is raised.
    #[arg(long, default_value_t = 5, value_name = "N")]
    retry_attempts: u32,
    /// First retry delay; it doubles each attempt up to --retry-max.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    retry_base: Duration,
    /// Longest retry delay (a guest may ask for up to a day).
    #[arg(long, default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    retry_max: Duration,
    /// On SIGTERM/SIGINT, how long runs in progress may take to end before
    /// they are recorded as interrupted.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    grace: Duration,
    /// How often to look for due work.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    tick: Duration,
    /// Also listen for HTTP on this address (e.g. 127.0.0.1:8440; port 0
    /// for any free port, printed): published feeds at
    /// /feeds/TENANT/INSTALLATION/NAME and OAuth callbacks at
    /// /oauth/callback. Without it, nothing listens.
    #[arg(long, value_name = "ADDRESS:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// Days old storage values are kept for `airlock state history` and
    /// `state rewind` (1 to 3,650); older ones are dropped every ten
    /// minutes, in batches.
    #[arg(long, env = "AIRLOCK_STATE_HISTORY_DAYS", value_name = "DAYS",
          default_value_t = airlock::storage::DEFAULT_KEEP_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=3_650))]
    state_history_days: u32,
    /// Serve Prometheus metrics at /metrics on this address, a listener
    /// of its own (e.g. 127.0.0.1:9440, or an internal interface's
    /// address; port 0 for any free port, printed). Bind it where only
    /// your monitoring reaches: it tells which plugins run and how they
    /// fare. Without it, metrics are not served.
    #[arg(long, value_name = "ADDRESS:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    log: LogArgs,
}

fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".serve.lock");
    PathBuf::from(name)
}

/// Takes the database's serve lock; None if another process holds it.
fn try_lock(db: &Path) -> anyhow::Result<Option<File>> {
    let path = lock_path(db);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// `tenant/installation` as its two fields.
fn split_label(label: &str) -> (&str, &str) {
    label.split_once('/').unwrap_or((label, ""))
}

/// Logs a scheduler event: a human line as `serve` always printed it (see
/// `logging`), and its fields for the JSON format. Never a secret: the
/// message of a run is redacted before it is an event.
fn log_event(event: &Event) {
    match event {
        Event::Queued {
            installation: label,
            feed,
            scheduled_at,
            missed,
        } => {
            let (tenant, installation) = split_label(label);
            let due = show_time(*scheduled_at);
            let note = if *missed > 0 {
                format!(" (catch-up; {missed} missed fires not run)")
            } else {
                String::new()
            };
            tracing::info!(
                event = "queued",
                tenant,
                installation,
                feed = %feed,
                scheduled_at = %due,
                missed,
                "queued   {label} {feed} due {due}{note}"
            );
        }
        Event::Skipped {
            installation: label,
            feed,
            reason,
        } => {
            let (tenant, installation) = split_label(label);
            tracing::info!(
                event = "skipped",
                tenant,
                installation,
                feed = %feed,
                reason = %reason,
                "skipped  {label} {feed}: {reason}"
            );
        }
        Event::Started {
            installation: label,
            feed,
            trigger,
            attempt,
        } => {
            let (tenant, installation) = split_label(label);
            tracing::info!(
                event = "start",
                tenant,
                installation,
                feed = %feed,
                trigger = %trigger,
                attempt,
                "start    {label} {feed} ({trigger}, attempt {attempt})"
            );
        }
        Event::Finished {
            installation: label,
            feed,
            run_id,
            outcome,
            message,
            retry_at,
            notified,
        } => {
            let (tenant, installation) = split_label(label);
            let id = run_id.map(|i| format!(" #{i}")).unwrap_or_default();
            let retry = retry_at.map(show_time);
            let retry_note = retry
                .as_ref()
                .map(|t| format!(" [retry at {t}]"))
                .unwrap_or_default();
            let bell = if *notified {
                " [notification raised]"
            } else {
                ""
            };
            tracing::info!(
                event = "finished",
                tenant,
                installation,
                feed = %feed,
                run_id,
                outcome = %outcome,
                summary = %message,
                retry_at = retry.as_deref(),
                notified,
                "{:<8} {label} {feed}{id}: {message}{retry_note}{bell}",
                outcome.to_uppercase()
            );
        }
        Event::LeaseLost {
            installation: label,
            feed,
            message,
        } => {
            let (tenant, installation) = split_label(label);
            tracing::warn!(
                event = "lease_lost",
                tenant,
                installation,
                feed = %feed,
                reason = %message,
                "FENCED   {label} {feed}: {message}"
            );
        }
        Event::HostFault { error, retry_in } => {
            let next = match retry_in {
                Some(d) => format!("trying again in {} ms", d.as_millis()),
                None => "giving up until the next start".to_string(),
            };
            tracing::error!(
                event = "fault",
                error = %error,
                retry_in_ms = retry_in.map(|d| d.as_millis() as u64),
                "FAULT    {error}; {next}"
            );
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: no new runs start; waiting for runs in progress");
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    let traces = args.log.init()?;
    let served = serve_with(args).await;
    if let Some(traces) = traces {
        // Sends the last spans: blocking, so off the async workers.
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    served
}

async fn serve_with(args: ServeArgs) -> anyhow::Result<u8> {
    if args.max_concurrent == 0 || args.max_per_tenant == 0 {
        bail!("--max-concurrent and --max-per-tenant must be at least 1");
    }
    // On SQLite one `serve` at a time; on PostgreSQL any number of nodes.
    let _lock = match args.db.is_sqlite() {
        true => match try_lock(&args.db.db)? {
            Some(lock) => Some(lock),
            None => bail!(
                "another `airlock serve` is running on {} (it holds {})",
                args.db.db.display(),
                lock_path(&args.db.db).display()
            ),
        },
        false => None,
    };
    // One instance slot per run the scheduler may start at once: more is a
    // host failure (retried), never the guest's.
    let limits = HostLimits {
        max_concurrent_runs: u32::try_from(args.max_concurrent).unwrap_or(u32::MAX),
        ..HostLimits::default()
    };
    let keyring = args.key.keyring()?.map(Arc::new);
    let host = Arc::new(
        open_host_with(
            &args.db,
            &args.net,
            &args.cache,
            limits,
            &args.publish,
            keyring.clone(),
        )
        .await?,
    );
    // Artifacts staged by runs of a process that died are deleted.
    let abandoned = host
        .store()
        .drop_abandoned_artifacts(Utc::now().timestamp() - airlock::artifacts::ABANDONED_AFTER_SECS)
        .await?;
    if abandoned > 0 {
        tracing::info!(
            abandoned,
            "deleted {abandoned} artifact version(s) left staged by runs that died"
        );
    }
    let chrono_secs = |d: Duration| chrono::Duration::seconds(d.as_secs() as i64);
    let options = ServeOptions {
        tick: args.tick.max(Duration::from_millis(100)),
        max_concurrent: args.max_concurrent,
        max_per_tenant: args.max_per_tenant,
        jitter: chrono_secs(args.jitter),
        overlap: args.overlap,
        catch_up: args.catch_up,
        misfire_grace: chrono_secs(args.misfire_grace),
        test_outbound: args.test_outbound,
        retry: RetryPolicy {
            max_attempts: args.retry_attempts.max(1),
            base: chrono_secs(args.retry_base),
            max: chrono_secs(args.retry_max),
        },
        grace: args.grace,
    };
    let installations = host.store().installations(None, false).await?;
    tracing::info!(
        installations = installations.len(),
        "airlock serve: {} installation(s) in {}; up to {} runs at once ({} per tenant); \
         catch-up {}, overlap {}, test-mode outbound {}",
        installations.len(),
        args.db.describe(),
        options.max_concurrent,
        options.max_per_tenant,
        options.catch_up,
        options.overlap,
        options.test_outbound
    );
    if keyring.is_none() {
        let mut sealed = 0;
        for row in &installations {
            if !host.store().secrets(&row.tenant, &row.id).await?.is_empty() {
                sealed += 1;
            }
        }
        if sealed > 0 {
            tracing::warn!(
                installations = sealed,
                "{sealed} installation(s) have sealed secrets and no master key was given \
                 (--master-key-file or $AIRLOCK_MASTER_KEY_FILE): their runs will fail"
            );
        }
    }
    let web = match args.listen {
        Some(addr) => {
            let state = WebState::new(Arc::clone(&host)).with_events(Arc::new(log_event));
            let server = WebServer::bind(addr, state)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let bound = server.local_addr()?;
            tracing::info!(addr = %bound, "listening on http://{bound}");
            tracing::info!(
                "admin API at http://{bound}/api (OpenAPI: /api/openapi.json), web console at \
                 http://{bound}/console (a token: `airlock tokens create`)"
            );
            Some(tokio::spawn(server.run()))
        }
        None => None,
    };
    let metrics = match args.metrics_listen {
        Some(addr) => {
            let server = MetricsServer::bind(addr, Arc::clone(&host))
                .await
                .with_context(|| format!("cannot listen on {addr} for metrics"))?;
            let addr = server.local_addr()?;
            tracing::info!(%addr, "metrics at http://{addr}/metrics");
            Some(tokio::spawn(server.run()))
        }
        None => None,
    };
    let pruner = tokio::spawn(super::state::prune_every(
        Arc::clone(host.store()),
        args.state_history_days,
    ));
    let scheduler = Arc::new(Scheduler::new(
        host,
        keyring,
        Arc::new(SystemClock),
        options,
        Arc::new(log_event),
    ));
    // serve() first settles runs a previous server left unfinished (printed
    // as INTERRUPTED), then ticks until a signal.
    let served = scheduler.serve(shutdown_signal()).await;
    for listener in [web, metrics].into_iter().flatten() {
        listener.abort();
    }
    pruner.abort();
    served?;
    tracing::info!("stopped");
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct RunNowArgs {
    /// TENANT/INSTALLATION.
    installation: String,
    /// The feed to run.
    feed: String,
    #[command(flatten)]
    db: DbArgs,
}

pub async fn run_now(args: RunNowArgs) -> anyhow::Result<u8> {
    let (tenant, id) = parse_reference(&args.installation)?;
    let store = args.db.open().await?;
    let now = Utc::now().timestamp();
    let queued = lifecycle::run_now(&*store, &tenant, &id, &args.feed, now).await?;
    let label = format!("{tenant}/{id}");
    println!(
        "queued {label} {} now (queue #{})",
        args.feed, queued.queue_id
    );
    if queued.waits_for_run_in_progress {
        println!("a run of this feed is in progress: this one starts when it ends");
    }
    if queued.skipped_in_test_mode {
        println!(
            "note: {label} is in test mode and `{}` is an outbound feed: `airlock serve` skips it \
             (nothing runs) unless it was started with --test-outbound dry-run",
            args.feed
        );
    }
    if args.db.is_sqlite() && try_lock(&args.db.db)?.is_some() {
        println!(
            "note: no `airlock serve` is running on {}; the run starts when one does",
            args.db.db.display()
        );
    }
    Ok(0)
}
