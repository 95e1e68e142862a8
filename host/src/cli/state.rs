//! `airlock state show|history|rewind|prune`: an installation's connector
//! state (its key-value storage) for the operator. Each calls
//! [`airlock::state`]; this file parses what the command line names and
//! prints.
//!
//! Exit status: 0 done, 2 bad input (an unknown tenant or installation, a
//! run that is not the installation's), 1 refused or failed (a run in
//! progress, history pruned, the database).

use std::io::Write as _;

use chrono::Utc;

use airlock::lifecycle::parse_reference;
use airlock::state::{self, Change, RewindSummary, ShownValue, StateError};
use airlock::storage::{ChangedBy, HistoryRetention};

use super::{DbArgs, bad, bad_input_exits, confirm, show_time};

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// List an installation's storage: each key with its size, its value
    /// (text when printable UTF-8, else hex, cut to 200 characters; values
    /// of `sealed/` keys are never shown, only their size) and which run
    /// last wrote it, and when.
    #[command(after_help = "Example:\n  airlock state show acme/custom-store")]
    Show(ShowArgs),
    /// The values one key had, newest first: which run (or rewind) wrote
    /// each and when, or "(deleted)". Old values are kept for a limited
    /// time and number (`serve --state-history-days`,
    /// `--state-history-versions`).
    #[command(after_help = "Example:\n  airlock state history acme/custom-store cursor")]
    History(HistoryArgs),
    /// Restore an installation's storage as it was before run N: every key
    /// changed by run N or later gets back the value it had before run N
    /// (keys created since are deleted, keys deleted since come back), in
    /// one transaction. Shows what changes and asks to confirm. Refused
    /// while a run of the installation is in progress (disable it first),
    /// when N is not one of its runs, and when the history no longer reaches
    /// back to run N. The rewind is itself recorded in the history.
    #[command(
        after_help = "Example:\n  airlock runs list --installation acme/custom-store\n  airlock disable acme/custom-store\n  airlock state rewind acme/custom-store --to-before-run 42\n  airlock enable acme/custom-store"
    )]
    Rewind(RewindArgs),
    /// Drop old storage values older than --keep-days, of every
    /// installation, in batches (`serve` does this itself every ten
    /// minutes; this is for hosts that run without it).
    Prune(PruneArgs),
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// TENANT/INSTALLATION, e.g. acme/custom-store.
    installation: String,
    /// Only keys after this one (to page on: the last key listed).
    #[arg(long, value_name = "KEY")]
    after: Option<String>,
    /// At most this many keys (1 to 1,000).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// TENANT/INSTALLATION, e.g. acme/custom-store.
    installation: String,
    /// The storage key.
    key: String,
    /// At most this many versions (1 to 1,000).
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct RewindArgs {
    /// TENANT/INSTALLATION, e.g. acme/custom-store.
    installation: String,
    /// The run (from `airlock runs list`) whose before-state is restored.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    to_before_run: i64,
    /// Show what would change, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Confirm without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Print JSON (what changed, or with --dry-run what would); needs
    /// --yes or --dry-run.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Days old values are kept (1 to 3,650).
    #[arg(long, value_name = "DAYS", default_value_t = airlock::storage::DEFAULT_KEEP_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=3_650))]
    keep_days: u32,
    #[command(flatten)]
    db: DbArgs,
}

pub async fn state(command: StateCommand) -> anyhow::Result<u8> {
    bad_input_exits(match command {
        StateCommand::Show(args) => show(args).await,
        StateCommand::History(args) => history(args).await,
        StateCommand::Rewind(args) => rewind(args).await,
        StateCommand::Prune(args) => prune(args).await,
    })
}

/// An error of the library, as bad input (exit 2) when the command line
/// named something that is not there.
fn failed(e: StateError) -> anyhow::Error {
    match e {
        StateError::Installation(_) | StateError::NotARun { .. } => bad(e.to_string()),
        other => other.into(),
    }
}

fn reference(text: &str) -> anyhow::Result<(String, String)> {
    parse_reference(text).map_err(|e| bad(e.to_string()))
}

/// Who made a change, in a few words.
fn by(change: &Option<Change>) -> (String, String) {
    let Some(change) = change else {
        return ("(history pruned)".into(), String::new());
    };
    let who = match &change.by {
        ChangedBy::Run { run_id } => format!("run #{run_id}"),
        ChangedBy::UnrecordedRun => "a run not recorded".into(),
        ChangedBy::Rewind {
            actor,
            to_before_run,
        } => format!("rewind by {actor} (to before run #{to_before_run})"),
        ChangedBy::Direct => "outside a run".into(),
    };
    (who, show_time(change.at))
}

fn value_line(value: Option<&ShownValue>, size: Option<u64>) -> String {
    match (value, size) {
        (Some(v), Some(size)) => v.line(size),
        _ => "(deleted)".into(),
    }
}

async fn show(args: ShowArgs) -> anyhow::Result<u8> {
    let (tenant, id) = reference(&args.installation)?;
    let store = args.db.open().await?;
    let entries = state::show(
        &*store,
        &tenant,
        &id,
        args.after.as_deref(),
        args.limit as usize,
    )
    .await
    .map_err(failed)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&entries)?)?;
        return Ok(0);
    }
    if entries.is_empty() {
        writeln!(out, "{tenant}/{id} stores nothing")?;
        return Ok(0);
    }
    writeln!(
        out,
        "{:<32} {:>8}  {:<24} {:<20}  value",
        "key", "bytes", "written by", "at"
    )?;
    for e in &entries {
        let (who, at) = by(&e.changed);
        let at = if at.is_empty() {
            show_time(e.updated_at)
        } else {
            at
        };
        writeln!(
            out,
            "{:<32} {:>8}  {:<24} {:<20}  {}",
            e.key,
            e.size,
            who,
            at,
            e.value.line(e.size)
        )?;
    }
    if entries.len() == args.limit as usize
        && let Some(last) = entries.last()
    {
        writeln!(out, "(more: --after {:?})", last.key)?;
    }
    Ok(0)
}

async fn history(args: HistoryArgs) -> anyhow::Result<u8> {
    let (tenant, id) = reference(&args.installation)?;
    let store = args.db.open().await?;
    let versions = state::history(&*store, &tenant, &id, &args.key, args.limit as usize)
        .await
        .map_err(failed)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&versions)?)?;
        return Ok(0);
    }
    if versions.is_empty() {
        writeln!(
            out,
            "no history of `{}` in {tenant}/{id} (never written, or older than the history kept)",
            super::shown(&args.key)
        )?;
        return Ok(0);
    }
    for v in &versions {
        let (who, at) = by(&Some(v.change.clone()));
        writeln!(
            out,
            "{at}  {who:<36}  {}",
            value_line(v.value.as_ref(), v.size)
        )?;
    }
    Ok(0)
}

fn print_changes(out: &mut impl std::io::Write, summary: &RewindSummary) -> anyhow::Result<()> {
    for c in &summary.changes {
        writeln!(
            out,
            "  {:<32} {} -> {}",
            c.key,
            value_line(c.from.as_ref(), c.from_size),
            value_line(c.to.as_ref(), c.to_size)
        )?;
    }
    Ok(())
}

async fn rewind(args: RewindArgs) -> anyhow::Result<u8> {
    if args.json && !(args.yes || args.dry_run) {
        return Err(bad(
            "--json needs --yes or --dry-run (it cannot ask to confirm)",
        ));
    }
    let (tenant, id) = reference(&args.installation)?;
    let run = args.to_before_run;
    let store = args.db.open().await?;
    let plan = state::plan_rewind(&*store, &tenant, &id, run)
        .await
        .map_err(failed)?;
    if args.json && args.dry_run {
        outln!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(0);
    }
    if plan.changes.is_empty() && !args.json {
        outln!(
            "the storage of {tenant}/{id} is as it was before run #{run} already: nothing to do"
        );
        return Ok(0);
    }
    if !args.json {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "rewind {tenant}/{id} to before run #{run}: {} key(s) change",
            plan.changes.len()
        )?;
        print_changes(&mut out, &plan)?;
    }
    if args.dry_run {
        return Ok(0);
    }
    confirm(
        &format!("Restore these keys of {tenant}/{id} as they were before run #{run}?"),
        args.yes,
    )?;
    let done = state::rewind(&*store, &tenant, &id, run, "cli", Some(plan.as_of))
        .await
        .map_err(failed)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        outln!(
            "rewound {tenant}/{id} to before run #{run}: {} key(s) restored",
            done.changes.len()
        );
    }
    Ok(0)
}

async fn prune(args: PruneArgs) -> anyhow::Result<u8> {
    let store = args.db.open().await?;
    let retention = HistoryRetention {
        keep_days: args.keep_days,
        ..HistoryRetention::default()
    };
    let dropped = state::prune(&*store, &retention, Utc::now().timestamp(), usize::MAX)
        .await
        .map_err(failed)?;
    outln!(
        "dropped {dropped} old storage value(s) older than {} days",
        args.keep_days
    );
    Ok(0)
}

/// How often `serve` drops old storage values.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
/// Batches `serve` drops at most each time (the rest waits for the next).
const PRUNE_BATCHES: usize = 100;

/// `serve`'s pruning of old storage values: now, then every
/// [`PRUNE_EVERY`], each time at most [`PRUNE_BATCHES`] short
/// transactions; a failure is printed and tried again the next time.
pub async fn prune_every(store: std::sync::Arc<dyn airlock::storage::Store>, keep_days: u32) {
    let retention = HistoryRetention {
        keep_days,
        ..HistoryRetention::default()
    };
    let mut timer = tokio::time::interval(PRUNE_EVERY);
    loop {
        timer.tick().await;
        match state::prune(&*store, &retention, Utc::now().timestamp(), PRUNE_BATCHES).await {
            Ok(0) => {}
            Ok(n) => println!("dropped {n} old storage value(s) older than {keep_days} days"),
            Err(e) => eprintln!("warning: dropping old storage values failed: {e}"),
        }
    }
}
