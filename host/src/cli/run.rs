//! `airlock run`: one feed, once, with everything it did printed. A run
//! for a stored installation claims its feed like `serve` does, so it never
//! overlaps a scheduled run of the same feed.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::Utc;

use airlock::egress::{Decision, RateLimits};
use airlock::runs::{Mode, RunReport, RunRequest, Severity, Trigger};
use airlock::storage::{ActiveRun, Holder, Registry, Settlement, Store};
use airlock::{ConfigValues, Installation, Plugin};

use super::{
    CacheArgs, ConfigArgs, DbArgs, EXIT_ERROR, EXIT_RETRY, NetArgs, PublishArgs, open_host_with,
    parse_rate, parse_time, request_line, show_time, store_of, valid_id,
};

/// Exit code: the run was interrupted (SIGINT/SIGTERM) before it ended.
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The plugin directory (holding plugin.toml and its component).
    plugin_dir: PathBuf,
    /// The feed to run, as named in the manifest's [[feeds]].
    #[arg(long)]
    feed: String,
    /// The tenant the installation belongs to.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The installation id (default: the plugin id). Storage is private to
    /// (tenant, installation).
    #[arg(long)]
    installation: Option<String>,
    #[command(flatten)]
    config: ConfigArgs,
    /// test: requests that change third parties are not sent (the default,
    /// like a new installation); live: all are.
    #[arg(long, value_enum, default_value_t = Mode::Test)]
    mode: Mode,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    net: NetArgs,
    /// At most this many requests per second to any one host (excess waits);
    /// 0.001 to 1000000.
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    max_rps: Option<f64>,
    /// At most this many requests in flight to any one host (excess waits).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent: Option<u32>,
    /// If the feed of this stored installation is running already (under
    /// `serve` or another `airlock run`), wait for it instead of refusing.
    #[arg(long)]
    wait: bool,
    /// The run's due time (RFC 3339, e.g. 2026-11-23T10:00:00Z); default now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: Option<i64>,
    /// The attempt number the guest is told.
    #[arg(long, default_value_t = 1)]
    attempt: u32,
    /// Print the full run report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// For a trial run (an installation name that is not stored), give it
    /// the record access its manifest's [data] asks for, on the tenant's
    /// real records (the tenant must exist). Without it a trial run can
    /// read and write no records; a stored installation always has what
    /// was approved for it.
    #[arg(long)]
    grant_data: bool,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(flatten)]
    key: super::KeyArgs,
    #[command(flatten)]
    publish: PublishArgs,
}

pub async fn run(args: RunArgs) -> anyhow::Result<u8> {
    valid_id("--tenant", &args.tenant)?;
    if let Some(id) = &args.installation {
        valid_id("--installation", id)?;
    }
    let plugin = Plugin::load(&args.plugin_dir)?;
    let assignments = args.config_assignments()?;
    let scheduled_at = args.at.unwrap_or_else(|| Utc::now().timestamp());
    if args.attempt == 0 {
        bail!("--attempt starts at 1");
    }
    // The master keys open the OAuth tokens the host keeps (a plugin with
    // [oauth]); nothing else in a run needs them.
    let keyring = args.key.keyring()?.map(std::sync::Arc::new);
    let host = open_host_with(
        &args.db,
        &args.net,
        &args.cache,
        airlock::runtime::HostLimits::default(),
        &args.publish,
        keyring,
    )
    .await?;
    let store = store_of(&host);
    let id = args
        .installation
        .clone()
        .unwrap_or_else(|| plugin.manifest.plugin.id.clone());
    let config = run_config(&host, &plugin, &args.tenant, &id, &assignments).await?;
    let installation = Installation {
        tenant: args.tenant.clone(),
        id,
        config,
        mode: args.mode,
        rate_limits: RateLimits {
            requests_per_second: args.max_rps,
            max_concurrent: args.max_concurrent,
        },
        approved_egress: None,
        // A trial run may use the records its manifest asks for only when
        // told to (--grant-data); a stored installation, what was approved
        // (below).
        approved_data: None,
    };
    let mut installation = held_to_what_was_installed(store, &plugin, installation).await?;
    if args.grant_data && installation.approved_data.is_none() {
        if !store.tenant_exists(&installation.tenant).await? {
            bail!(
                "--grant-data: no tenant `{}`: records belong to a tenant (add it with \
                 `airlock tenant add`)",
                installation.tenant
            );
        }
        installation.approved_data = Some(plugin.manifest.data.clone());
    }
    let grants = host.grants(&plugin, &installation)?;
    if !args.json {
        outln!(
            "run {} feed={} tenant={} installation={} mode={}",
            plugin.label(),
            args.feed,
            installation.tenant,
            installation.id,
            installation.mode.as_str()
        );
        outln!("  component  sha256:{}", plugin.digest);
        args.net.print(&grants)?;
        let data = installation
            .approved_data
            .as_ref()
            .map(airlock::lifecycle::data_text)
            .unwrap_or_default();
        if data.is_empty() {
            outln!("  records    none (a trial run gets its manifest's with --grant-data)");
        } else {
            outln!("  records    {}", data.join(", "));
        }
    }
    let request = RunRequest {
        feed: args.feed.clone(),
        trigger: Trigger::Manual,
        scheduled_at,
        attempt: args.attempt,
    };
    let claim = claim_feed(store, &installation, &request, args.wait).await?;
    let settle = |_: &RunReport| {
        claim.clone().map(|active| Settlement {
            active,
            follow_up: None,
            notification: None,
        })
    };
    let result = tokio::select! {
        result = host.run_feed_settled(&plugin, &installation, request, settle) => Some(result),
        _ = interrupted() => None,
    };
    let report = match result {
        Some(Ok((report, _))) => report,
        other => {
            // The run was not recorded: its claim is released here.
            if let Some(active) = &claim {
                store.release(active.clone()).await?;
            }
            return match other {
                Some(Err(e)) => Err(e.into()),
                _ => {
                    eprintln!("interrupted: the run was stopped; none of its writes were applied");
                    Ok(EXIT_INTERRUPTED)
                }
            };
        }
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, &args.db.describe());
    }
    Ok(match report.severity() {
        Severity::Ok | Severity::Info => 0,
        Severity::Retry => EXIT_RETRY,
        Severity::Error => EXIT_ERROR,
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A run under the name of a stored installation runs as that installation,
/// so it is held to what was installed and approved there: the same
/// component, only the egress the operator approved, never a removed or
/// disabled installation, and live only if the installation is live. A name
/// that is not stored is a trial run of its own.
/// The config a run uses: an installed installation's own (secrets opened
/// with the master key), so a trial run of it needs none on the command
/// line and never publishes or exports with other settings than its
/// scheduled runs (config given that differs is refused); otherwise the
/// config given.
async fn run_config(
    host: &airlock::Airlock,
    plugin: &Plugin,
    tenant: &str,
    id: &str,
    assignments: &[String],
) -> anyhow::Result<ConfigValues> {
    let store = store_of(host);
    let row = store
        .installation(tenant, id)
        .await?
        .filter(|row| row.removed_at.is_none() && row.plugin_digest == plugin.digest);
    let Some(row) = row else {
        return Ok(ConfigValues::from_assignments(
            &plugin.manifest,
            assignments,
        )?);
    };
    let label = row.label();
    let (_, installed) = airlock::lifecycle::load(store, host.keyring(), &row)
        .await
        .with_context(|| format!("{label}'s installed config"))?;
    if !assignments.is_empty() {
        let given = ConfigValues::from_assignments_partial(&plugin.manifest, assignments)?;
        let value = |c: &ConfigValues, key: &str| c.get(key).or(c.secret(key)).map(str::to_owned);
        let differs = assignments
            .iter()
            .filter_map(|a| a.split_once('=').map(|(k, _)| k.trim()))
            .any(|key| value(&given, key) != value(&installed.config, key));
        if differs {
            bail!(
                "{label} is installed with other config than given here: a run of it uses its \
                 installed config (leave out --config and --config-file), change that with \
                 `airlock reauthorise {label}`, or try this config under another --installation"
            );
        }
    }
    Ok(installed.config)
}

async fn held_to_what_was_installed(
    store: &dyn Registry,
    plugin: &Plugin,
    mut installation: Installation,
) -> anyhow::Result<Installation> {
    let Some(row) = store
        .installation(&installation.tenant, &installation.id)
        .await?
    else {
        return Ok(installation);
    };
    let label = row.label();
    if row.removed_at.is_some() {
        bail!("{label} was removed: its name is not free for runs; pick another --installation");
    }
    if !row.enabled {
        bail!(
            "{label} is disabled, so nothing runs for it (enable it with `airlock enable {label}`)"
        );
    }
    if row.plugin_digest != plugin.digest {
        bail!(
            "{label} is installed with {}@{} (sha256:{}), not this component (sha256:{}): \
             run it under another --installation, or install it with `airlock upgrade {label}`",
            row.plugin_id,
            row.plugin_version,
            row.plugin_digest,
            plugin.digest
        );
    }
    if installation.mode == Mode::Live && row.mode != Mode::Live.as_str() {
        bail!("{label} is in test mode: a live run needs `airlock mode {label} live` first");
    }
    if installation.mode == Mode::Test && row.mode == Mode::Live.as_str() {
        eprintln!(
            "note: {label} is live, but this trial run is in test mode (nothing that changes a \
             third party is sent, no record change is kept): add --mode live to run it as \
             installed"
        );
    }
    let rules = airlock::lifecycle::approved_rules(&row, plugin, &installation.config)?;
    installation.approved_egress = Some(rules);
    installation.approved_data = Some(row.approved_data.clone().unwrap_or_default());
    Ok(installation)
}

/// Claims the feed if `installation` is stored (and not removed), as
/// `serve` claims a run, so the two never run one feed at once. Refuses if
/// the feed is running already, or with `wait` waits for it to end.
async fn claim_feed(
    store: &dyn Store,
    installation: &Installation,
    request: &RunRequest,
    wait: bool,
) -> anyhow::Result<Option<ActiveRun>> {
    let stored = store
        .installation(&installation.tenant, &installation.id)
        .await?;
    if stored.is_none_or(|row| row.removed_at.is_some()) {
        return Ok(None);
    }
    let (tenant, id, feed) = (&installation.tenant, &installation.id, &request.feed);
    let mut said = false;
    loop {
        let active = ActiveRun {
            tenant: tenant.clone(),
            installation: id.clone(),
            feed: feed.clone(),
            trigger: request.trigger.as_str().to_string(),
            attempt: request.attempt,
            scheduled_at: request.scheduled_at,
            started_at: Utc::now().timestamp(),
        };
        let holder = Holder::Process(std::process::id());
        if store.claim_unqueued(active.clone(), holder).await? {
            return Ok(Some(active));
        }
        let Some(other) = store.active_run(tenant, id, feed).await? else {
            continue; // it ended just now
        };
        let running = format!(
            "{tenant}/{id} {feed} is running already (a {} run, attempt {}, started {})",
            other.trigger,
            other.attempt,
            show_time(other.started_at)
        );
        if !wait {
            bail!(
                "{running}: wait for it with --wait. A run whose process was killed is \
                 recorded as interrupted by `airlock serve`"
            );
        }
        if !said {
            eprintln!("{running}: waiting for it to end");
            said = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

impl RunArgs {
    /// The `KEY=VALUE` config assignments given.
    pub fn config_assignments(&self) -> anyhow::Result<Vec<String>> {
        self.config.assignments()
    }
}

/// `peak memory 23.4 MiB`: what the guest's instance held at its largest.
fn peak_memory(report: &RunReport) -> String {
    format!(
        "peak memory {:.1} MiB",
        report.peak_memory_bytes as f64 / f64::from(1 << 20)
    )
}

fn print_report(report: &RunReport, db: &str) {
    let severity = report.severity().as_str().to_uppercase();
    outln!();
    outln!("outcome: {severity}  {}", report.end.summary());
    if let airlock::runs::RunEnd::Returned {
        items,
        retry_after_seconds,
        ..
    } = &report.end
    {
        out!("  items {items}");
        if let Some(s) = retry_after_seconds {
            out!(", retry after {s}s");
        }
        outln!(", {} ms, {}", report.duration_ms, peak_memory(report));
    } else {
        outln!("  {} ms, {}", report.duration_ms, peak_memory(report));
    }
    if !report.log.is_empty() || report.log_dropped > 0 {
        outln!("log:");
        for line in &report.log {
            outln!(
                "  +{:>5}ms {:<5} {}",
                line.at_ms,
                line.level.as_str(),
                line.message
            );
        }
        if report.log_dropped > 0 {
            outln!("  ({} more lines dropped over the cap)", report.log_dropped);
        }
    }
    for (name, text) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
        if !text.is_empty() {
            outln!("{name}:");
            for line in text.lines() {
                outln!("  {line}");
            }
        }
    }
    if report.output_dropped_bytes > 0 {
        outln!(
            "  ({} bytes of output dropped over the cap)",
            report.output_dropped_bytes
        );
    }
    if !report.http.is_empty() || report.http_dropped > 0 {
        outln!("http:");
        for call in &report.http {
            let target = request_line(
                &call.method,
                call.scheme.as_deref(),
                &call.host,
                call.port,
                &call.path,
            );
            let verdict = match &call.decision {
                Decision::Allowed { rule, .. } => match (call.status, &call.error) {
                    (Some(status), _) => {
                        format!("{status} (allowed by {rule}) {} ms", call.duration_ms)
                    }
                    (None, Some(e)) => format!("failed: {e} (allowed by {rule})"),
                    (None, None) => format!("allowed by {rule}"),
                },
                Decision::Denied { rule, reason } => format!("DENIED [{}] {reason}", rule.as_str()),
                Decision::Suppressed => "SUPPRESSED (test mode)".to_string(),
                Decision::Invalid { reason } => format!("INVALID {reason}"),
            };
            outln!("  {target} -> {verdict}");
        }
        if report.http_dropped > 0 {
            outln!(
                "  ({} more requests dropped over the audit cap)",
                report.http_dropped
            );
        }
    }
    let (label, changes) = if report.committed {
        (
            "storage (committed):".to_string(),
            &report.storage_committed,
        )
    } else {
        let why = report
            .storage_note
            .as_deref()
            .unwrap_or("discarded, run did not succeed");
        (format!("storage ({why}):"), &report.storage_discarded)
    };
    if !changes.is_empty() {
        outln!("{label}");
        for change in changes {
            match change.set_bytes {
                Some(n) => outln!("  set    {} ({n} bytes)", change.key),
                None => outln!("  delete {}", change.key),
            }
        }
    }
    if !report.committed && !report.storage_committed.is_empty() {
        outln!("storage (committed at checkpoints):");
        for change in &report.storage_committed {
            outln!("  {}", change.key);
        }
    }
    if !report.records.is_empty() {
        outln!("records: {}", report.records.summary());
    }
    if !report.artifacts.is_empty() {
        outln!("artifacts (published):");
        for a in &report.artifacts {
            outln!(
                "  {}  {}  {} bytes  etag \"{}\"",
                a.name,
                a.content_type,
                a.size,
                a.sha256
            );
        }
    }
    if let Some(id) = report.run_id {
        outln!("run recorded as #{id} in {db}");
    }
}
