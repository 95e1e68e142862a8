//! `airlock runs list|show` (feed executions) and `airlock notifications
//! list|ack`.

use std::io::Write;

use anyhow::bail;
use chrono::Utc;

use airlock::storage::RunFilter;

use super::{DbArgs, parse_since, request_line, show_time, shown, valid_id};

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
        bail!(
            "--outcome `{}` is not one of: {}",
            shown(o),
            OUTCOMES.join(", ")
        );
    }
    let (tenant, installation) = match args.installation.as_deref() {
        Some(reference) => {
            let (tenant, id) = match reference.split_once('/') {
                Some((t, i)) => (Some(t.to_string()), i.to_string()),
                None => (args.tenant.clone(), reference.to_string()),
            };
            if let (Some(filter), Some(named)) = (&args.tenant, &tenant)
                && filter != named
            {
                bail!(
                    "--tenant `{}` and --installation `{}` name different tenants",
                    shown(filter),
                    shown(reference)
                );
            }
            valid_id("--installation", &id)?;
            (tenant, Some(id))
        }
        None => (args.tenant.clone(), None),
    };
    if let Some(tenant) = &tenant {
        valid_id("--tenant", tenant)?;
    }
    Ok(RunFilter {
        tenant,
        installation,
        feed: args.feed.clone(),
        status: args.outcome.clone(),
        since: args.since.as_deref().map(parse_since).transpose()?,
        limit: args.limit,
    })
}

/// How many items the list `key` of a stored report has.
fn count(report: &serde_json::Value, key: &str) -> usize {
    list_of(report, key).count()
}

pub async fn runs(command: RunsCommand) -> anyhow::Result<u8> {
    match command {
        RunsCommand::List(args) => list(*args).await,
        RunsCommand::Show { id, json, db } => show(id, json, &db).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<u8> {
    let store = args.db.open().await?;
    let rows = store.runs(filter(&args)?).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(0);
    }
    writeln!(
        out,
        "{:>6}  {:<20} {:<28} {:<14} {:<11} {:<9} {:>3} {:>8}  message",
        "run", "started", "installation", "feed", "outcome", "trigger", "att", "duration"
    )?;
    for r in &rows {
        writeln!(
            out,
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
        )?;
    }
    if rows.is_empty() {
        writeln!(out, "no runs match")?;
    }
    Ok(0)
}

async fn show(id: i64, json: bool, db: &DbArgs) -> anyhow::Result<u8> {
    let store = db.open().await?;
    let Some((run, report)) = store.run(id).await? else {
        bail!("no run #{id}");
    };
    let report: serde_json::Value = serde_json::from_str(&report).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(0);
    }
    writeln!(
        out,
        "run #{} {}/{} feed {}",
        run.id, run.tenant, run.installation, run.feed
    )?;
    writeln!(out, "  plugin     {}@{}", run.plugin_id, run.plugin_version)?;
    writeln!(
        out,
        "  outcome    {}  {}",
        run.status.to_uppercase(),
        run.message
    )?;
    writeln!(
        out,
        "  trigger    {}, attempt {}, {} mode",
        run.trigger, run.attempt, run.mode
    )?;
    writeln!(out, "  due        {}", show_time(run.scheduled_at))?;
    writeln!(
        out,
        "  ran        {} to {} ({} ms)",
        show_time(run.started_at),
        show_time(run.ended_at),
        report
            .get("duration_ms")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    )?;
    if let Some(items) = report.get("end").and_then(|e| e.get("items")) {
        writeln!(out, "  items      {items}")?;
    }
    for line in list_of(&report, "log") {
        writeln!(
            out,
            "  log        {:<5} {}",
            str_of(line, "level").unwrap_or(""),
            str_of(line, "message").unwrap_or("")
        )?;
    }
    for call in list_of(&report, "http") {
        writeln!(out, "  http       {}", http_line(call))?;
    }
    for (key, what) in [
        ("log_dropped", "log lines"),
        ("http_dropped", "HTTP requests (audit records)"),
    ] {
        let dropped = report.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        if dropped > 0 {
            writeln!(out, "  dropped    {dropped} {what} over the cap")?;
        }
    }
    writeln!(
        out,
        "  storage    {} committed, {} discarded",
        count(&report, "storage_committed"),
        count(&report, "storage_discarded")
    )?;
    let records: Option<airlock::runs::RecordCounts> = report
        .get("records")
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    if let Some(records) = records {
        writeln!(out, "  records    {}", records.summary())?;
    }
    for artifact in list_of(&report, "artifacts") {
        let published: Option<airlock::artifacts::PublishedArtifact> =
            serde_json::from_value(artifact.clone()).ok();
        if let Some(a) = published {
            writeln!(
                out,
                "  artifact   {}  {}  {} bytes  etag \"{}\" (published)",
                a.name, a.content_type, a.size, a.sha256
            )?;
        }
    }
    Ok(0)
}

/// The items of the list `key` of a stored report (none if it has none).
fn list_of<'a>(
    report: &'a serde_json::Value,
    key: &str,
) -> impl Iterator<Item = &'a serde_json::Value> {
    report
        .get(key)
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
}

fn str_of<'a>(value: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(|v| v.as_str())
}

/// One stored HTTP call: the request (with its port, never its query), the
/// response status and the egress decision with its rule.
fn http_line(call: &serde_json::Value) -> String {
    let port = call
        .get("port")
        .and_then(|p| p.as_u64())
        .and_then(|p| u16::try_from(p).ok());
    let target = request_line(
        str_of(call, "method").unwrap_or("?"),
        str_of(call, "scheme"),
        str_of(call, "host").unwrap_or("?"),
        port,
        str_of(call, "path").unwrap_or(""),
    );
    let status = call
        .get("status")
        .and_then(|v| v.as_u64())
        .map_or_else(|| "-".to_string(), |s| s.to_string());
    let rule = str_of(call, "rule").unwrap_or("?");
    let reason = str_of(call, "reason").unwrap_or("");
    let decision = match str_of(call, "decision") {
        Some("allowed") => format!("allowed by {rule}"),
        Some("denied") => format!("DENIED [{rule}] {reason}"),
        Some("suppressed") => "SUPPRESSED (test mode)".to_string(),
        Some("invalid") => format!("INVALID {reason}"),
        Some(other) => other.to_string(),
        None => "decision not recorded".to_string(),
    };
    format!("{target} -> {status} {decision}")
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

pub async fn notifications(command: NotificationsCommand) -> anyhow::Result<u8> {
    match command {
        NotificationsCommand::List {
            tenant,
            all,
            json,
            db,
        } => {
            let rows = db
                .open()
                .await?
                .notifications(tenant.as_deref(), all)
                .await?;
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
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
                writeln!(
                    out,
                    "#{:<5} {state:<12} {}/{} {} x{} last {}: {}{run}",
                    n.id,
                    n.tenant,
                    n.installation,
                    n.feed,
                    n.count,
                    show_time(n.last_at),
                    n.message
                )?;
            }
            if rows.is_empty() {
                writeln!(out, "no open notifications")?;
            }
        }
        NotificationsCommand::Ack { ids, by, db } => {
            let store = db.open().await?;
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "operator".into());
            let now = Utc::now().timestamp();
            for id in ids {
                store.ack_notification(id, &by, now).await?;
                outln!("acknowledged #{id}");
            }
        }
    }
    Ok(0)
}
