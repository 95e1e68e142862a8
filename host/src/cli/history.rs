//! `airlock runs list|show` (feed executions) and `airlock notifications
//! list|ack`.

use anyhow::bail;
use chrono::Utc;

use airlock::storage::RunFilter;

use super::{DbArgs, parse_since, show_time};

#[derive(Debug, clap::Subcommand)]
pub enum RunsCommand {
    /// Recorded runs, newest first.
    List(Box<ListArgs>),
    /// One run in full: outcome, log, HTTP calls with their egress decision,
    /// storage changes.
    Show {
        /// The run's id (from `runs list`).
        id: i64,
        /// Print the stored report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this tenant's.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this installation's (TENANT/INSTALLATION, or the installation id
    /// with --tenant).
    #[arg(long)]
    installation: Option<String>,
    /// Only this feed's.
    #[arg(long)]
    feed: Option<String>,
    /// Only runs with this outcome: ok, info, retry, error or interrupted.
    #[arg(long, value_name = "OUTCOME")]
    outcome: Option<String>,
    /// Only runs started since: an age (30m, 12h, 7d) or an RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

const OUTCOMES: [&str; 5] = ["ok", "info", "retry", "error", "interrupted"];

fn filter(args: &ListArgs) -> anyhow::Result<RunFilter> {
    if let Some(o) = &args.outcome
        && !OUTCOMES.contains(&o.as_str())
    {
        bail!("--outcome `{o}` is not one of: {}", OUTCOMES.join(", "));
    }
    let (tenant, installation) = match args.installation.as_deref().map(|i| i.split_once('/')) {
        Some(Some((t, i))) => (Some(t.to_string()), Some(i.to_string())),
        Some(None) => (args.tenant.clone(), args.installation.clone()),
        None => (args.tenant.clone(), None),
    };
    Ok(RunFilter {
        tenant,
        installation,
        feed: args.feed.clone(),
        status: args.outcome.clone(),
        since: args.since.as_deref().map(parse_since).transpose()?,
        limit: args.limit,
    })
}

/// A number from a report, for the list's columns.
fn count(report: &serde_json::Value, key: &str) -> usize {
    report
        .get(key)
        .and_then(|v| v.as_array())
        .map_or(0, Vec::len)
}

pub fn runs(command: RunsCommand) -> anyhow::Result<u8> {
    match command {
        RunsCommand::List(args) => list(*args),
        RunsCommand::Show { id, json, db } => show(id, json, &db),
    }
}

fn list(args: ListArgs) -> anyhow::Result<u8> {
    let store = args.db.open()?;
    let rows = store.runs(&filter(&args)?)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    println!(
        "{:>6}  {:<20} {:<28} {:<14} {:<11} {:<9} {:>3} {:>8}  message",
        "run", "started", "installation", "feed", "outcome", "trigger", "att", "duration"
    );
    for r in &rows {
        println!(
            "{:>6}  {:<20} {:<28} {:<14} {:<11} {:<9} {:>3} {:>7}s  {}",
            r.id,
            show_time(r.started_at),
            format!("{}/{}", r.tenant, r.installation),
            r.feed,
            r.status,
            r.trigger,
            r.attempt,
            r.ended_at - r.started_at,
            r.message
        );
    }
    if rows.is_empty() {
        println!("no runs match");
    }
    Ok(0)
}

fn show(id: i64, json: bool, db: &DbArgs) -> anyhow::Result<u8> {
    let store = db.open()?;
    let Some((run, report)) = store.run(id)? else {
        bail!("no run #{id}");
    };
    let report: serde_json::Value = serde_json::from_str(&report).unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    println!(
        "run #{} {}/{} feed {}",
        run.id, run.tenant, run.installation, run.feed
    );
    println!("  plugin     {}@{}", run.plugin_id, run.plugin_version);
    println!(
        "  outcome    {}  {}",
        run.status.to_uppercase(),
        run.message
    );
    println!(
        "  trigger    {}, attempt {}, {} mode",
        run.trigger, run.attempt, run.mode
    );
    println!("  due        {}", show_time(run.scheduled_at));
    println!(
        "  ran        {} to {} ({} ms)",
        show_time(run.started_at),
        show_time(run.ended_at),
        report
            .get("duration_ms")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    );
    if let Some(items) = report.get("end").and_then(|e| e.get("items")) {
        println!("  items      {items}");
    }
    for line in report
        .get("log")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
    {
        println!(
            "  log        {:<5} {}",
            line.get("level").and_then(|v| v.as_str()).unwrap_or(""),
            line.get("message").and_then(|v| v.as_str()).unwrap_or("")
        );
    }
    for call in report
        .get("http")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
    {
        let text = |k: &str| {
            call.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string()
        };
        let decision = call
            .get("decision")
            .and_then(|d| d.get("decision"))
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        let status = call
            .get("status")
            .and_then(|v| v.as_u64())
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "  http       {} {}://{}{} -> {status} {decision}",
            text("method"),
            text("scheme"),
            text("host"),
            text("path")
        );
    }
    for (key, what) in [
        ("log_dropped", "log lines"),
        ("http_dropped", "HTTP requests (audit records)"),
    ] {
        let dropped = report.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        if dropped > 0 {
            println!("  dropped    {dropped} {what} over the cap");
        }
    }
    println!(
        "  storage    {} committed, {} discarded",
        count(&report, "storage_committed"),
        count(&report, "storage_discarded")
    );
    Ok(0)
}

#[derive(Debug, clap::Subcommand)]
pub enum NotificationsCommand {
    /// Open notifications (acknowledged ones too with --all), newest first.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// Include acknowledged ones.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Acknowledge notifications: they leave the open list.
    Ack {
        /// Their ids.
        #[arg(required = true)]
        ids: Vec<i64>,
        /// Who acknowledges (default: $USER).
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
}

pub fn notifications(command: NotificationsCommand) -> anyhow::Result<u8> {
    match command {
        NotificationsCommand::List {
            tenant,
            all,
            json,
            db,
        } => {
            let rows = db.open()?.notifications(tenant.as_deref(), all)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(0);
            }
            for n in &rows {
                let state = match (&n.acked_at, &n.acked_by) {
                    (Some(t), by) => format!(
                        "acknowledged {} by {}",
                        show_time(*t),
                        by.as_deref().unwrap_or("?")
                    ),
                    (None, _) => "OPEN".into(),
                };
                let run = n.run_id.map(|r| format!(" (run #{r})")).unwrap_or_default();
                println!(
                    "#{:<5} {state:<12} {}/{} {} x{} last {}: {}{run}",
                    n.id,
                    n.tenant,
                    n.installation,
                    n.feed,
                    n.count,
                    show_time(n.last_at),
                    n.message
                );
            }
            if rows.is_empty() {
                println!("no open notifications");
            }
        }
        NotificationsCommand::Ack { ids, by, db } => {
            let store = db.open()?;
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "operator".into());
            let now = Utc::now().timestamp();
            for id in ids {
                store.ack_notification(id, &by, now)?;
                println!("acknowledged #{id}");
            }
        }
    }
    Ok(0)
}
