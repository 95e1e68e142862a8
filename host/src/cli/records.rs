//! `airlock records import|list|show|export|unack`: the tenant's shared
//! records (products, orders…) for the operator. Each calls
//! `airlock::records::{import, admin}`; this file checks what the command
//! line names (tenant, installation, record) and prints.
//!
//! Exit status: 0 done, 2 bad input (an unknown tenant, collection,
//! installation or record, a file that is missing or refused), 1 the host
//! failed (the database, writing the output).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock::records::admin::{self, ListQuery, PendingReason, RecordDetail};
use airlock::records::import::{self, BATCH, ImportError, ImportProgress};
use airlock::records::{COLLECTIONS, check_record_id, is_collection};
use airlock::storage::Store;

use super::{DbArgs, bad, bad_input_exits, show_time, shown};

#[derive(Debug, clap::Subcommand)]
pub enum RecordsCommand {
    /// Import records from a JSON Lines file, as the platform (the shop).
    ///
    /// Each line is one record's body, a JSON object whose `id` is the
    /// record's id; blank lines are skipped. Every line is checked against
    /// the collection's schema first: if any is not valid (or an id is
    /// missing or repeated), the errors are printed as `line N: /field:
    /// message` (at most 20) and nothing is written. Then the records are
    /// written in batches of 1,000, each in one transaction, with progress
    /// on stderr. A record already stored is replaced and gets a new
    /// version, so consumers see it as changed.
    #[command(
        after_help = "Example:\n  airlock records import acme products products.jsonl\n  airlock records import acme orders orders.jsonl --dry-run"
    )]
    Import(ImportArgs),
    /// List records by version: every write (deleted ones included), or
    /// with --pending-for what one installation has still to export, and
    /// why (new: never acknowledged; changed: acknowledged at an older
    /// version).
    #[command(
        after_help = "Example:\n  airlock records list acme orders --pending-for xero\n  airlock records list acme products --after 2500 --limit 100"
    )]
    List(ListArgs),
    /// Show one record: its body, who acknowledged which version, and the
    /// annotations installations keep on it.
    Show(ShowArgs),
    /// Export the bodies of every live record of a collection as JSON
    /// Lines, by version: what `records import` reads back.
    #[command(after_help = "Example:\n  airlock records export acme products --out products.jsonl")]
    Export(ExportArgs),
    /// Remove an installation's acknowledgement of a record, so it is
    /// pending for that installation again and its next run exports it
    /// again. Other installations are not affected.
    #[command(
        after_help = "Example:\n  airlock records unack acme orders R1062 --installation xero"
    )]
    Unack(UnackArgs),
}

/// The tenant and collection every records command names.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The tenant whose records these are.
    #[arg(value_parser = parse_tenant)]
    tenant: String,
    /// The collection: products, categories, category-mappings, stock,
    /// orders, returns, purchase-orders, suppliers, customers, payments,
    /// refunds or shipments.
    #[arg(value_parser = parse_collection)]
    collection: String,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    target: Target,
    /// The JSON Lines file: one record body per line.
    file: PathBuf,
    /// Check every line and say how many records would be written, without
    /// writing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    target: Target,
    /// Only the records pending for this installation (of the tenant), with
    /// why: new or changed since it acknowledged them.
    #[arg(long, value_name = "INSTALLATION", value_parser = parse_installation)]
    pending_for: Option<String>,
    /// Only records whose version is after this one (to page on: the last
    /// version listed).
    #[arg(long, value_name = "VERSION", default_value_t = 0,
          value_parser = clap::value_parser!(i64).range(0..))]
    after: i64,
    /// At most this many (1 to 100,000).
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    target: Target,
    /// The record's id.
    #[arg(value_parser = parse_record_id)]
    id: String,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    target: Target,
    /// Write to this file (replaced whole once the export is complete)
    /// instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct UnackArgs {
    #[command(flatten)]
    target: Target,
    /// The record's id.
    #[arg(value_parser = parse_record_id)]
    id: String,
    /// The installation (of the tenant) whose acknowledgement is removed.
    #[arg(long, value_name = "INSTALLATION", value_parser = parse_installation)]
    installation: String,
    #[command(flatten)]
    db: DbArgs,
}

fn parse_tenant(s: &str) -> Result<String, String> {
    parse_slug("tenant", s)
}

fn parse_installation(s: &str) -> Result<String, String> {
    parse_slug("installation", s)
}

fn parse_slug(what: &str, s: &str) -> Result<String, String> {
    airlock::lifecycle::check_id(s).map_err(|_| {
        format!(
            "`{}` is not a valid {what} id: use 1-64 lower-case letters, digits, `-` and `_`",
            shown(s)
        )
    })?;
    Ok(s.to_string())
}

fn parse_collection(s: &str) -> Result<String, String> {
    if is_collection(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{}` is not a collection (known: {})",
            shown(s),
            COLLECTIONS.join(", ")
        ))
    }
}

fn parse_record_id(s: &str) -> Result<String, String> {
    check_record_id(s)?;
    Ok(s.to_string())
}

pub async fn records(command: RecordsCommand) -> anyhow::Result<u8> {
    let result = match command {
        RecordsCommand::Import(args) => import(args).await,
        RecordsCommand::List(args) => list(args).await,
        RecordsCommand::Show(args) => show(args).await,
        RecordsCommand::Export(args) => export(args).await,
        RecordsCommand::Unack(args) => unack(args).await,
    };
    bad_input_exits(result)
}

/// Opens the database and checks the tenant exists.
async fn open(db: &DbArgs, tenant: &str) -> anyhow::Result<Arc<dyn Store>> {
    let store = db.open().await?;
    if !store.tenant_exists(tenant).await? {
        return Err(bad(format!("no tenant `{tenant}`")));
    }
    Ok(store)
}

/// Checks the installation `tenant/id` exists (removed ones count: their
/// acknowledgements are kept).
async fn installation_exists(store: &dyn Store, tenant: &str, id: &str) -> anyhow::Result<()> {
    match store.installation(tenant, id).await? {
        Some(_) => Ok(()),
        None => Err(bad(format!("no installation `{tenant}/{id}`"))),
    }
}

/// `n` records, with thousands separators: "1 record", "10,000 records".
fn records_count(n: usize) -> String {
    match n {
        1 => "1 record".to_string(),
        _ => format!("{} records", thousands(n)),
    }
}

/// `n` with thousands separators: 10,000.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

async fn import(args: ImportArgs) -> anyhow::Result<u8> {
    let Target { tenant, collection } = &args.target;
    let open_file = |path: &Path| {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
    };
    let reader = open_file(&args.file)?;
    let store = open(&args.db, tenant).await?;
    if args.dry_run {
        let checked = import::check_jsonl(collection, reader).map_err(import_error)?;
        outln!(
            "{} is valid: {} of {collection} would be written (nothing was)",
            args.file.display(),
            records_count(checked.records)
        );
        return Ok(0);
    }
    let mut progress = |p: ImportProgress| {
        if p.total > BATCH {
            eprintln!(
                "imported {} of {} records",
                thousands(p.written),
                thousands(p.total)
            );
        }
    };
    let summary = import::import_jsonl(&*store, tenant, collection, reader, &mut progress)
        .await
        .map_err(import_error)?;
    let versions = match summary.records {
        0 => String::new(),
        _ => format!(
            " (versions {} to {})",
            summary.first_version, summary.last_version
        ),
    };
    outln!(
        "imported {} into {tenant}/{collection}{versions}",
        records_count(summary.records)
    );
    Ok(0)
}

/// What an import's error means for the exit status: the file or the names
/// given are wrong (2), or the host failed (1).
fn import_error(e: ImportError) -> anyhow::Error {
    match e {
        ImportError::UnknownCollection(_)
        | ImportError::UnknownTenant(_)
        | ImportError::Invalid { .. } => bad(e.to_string()),
        other => other.into(),
    }
}

async fn list(args: ListArgs) -> anyhow::Result<u8> {
    let Target { tenant, collection } = &args.target;
    let store = open(&args.db, tenant).await?;
    if let Some(installation) = &args.pending_for {
        installation_exists(&*store, tenant, installation).await?;
    }
    let query = ListQuery {
        pending_for: args.pending_for.clone(),
        after: args.after,
        limit: args.limit as usize,
    };
    let rows = admin::list(&*store, tenant, collection, &query).await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    let reason_header = if args.pending_for.is_some() {
        "  pending"
    } else {
        ""
    };
    let header = format!(
        "{:<24} {:>8}  {:<20}  {:<20}{reason_header}",
        "id", "version", "updated", "writer"
    );
    writeln!(out, "{}", header.trim_end())?;
    for row in &rows {
        let r = &row.record;
        let state = match (&row.pending, r.is_deleted()) {
            (Some(PendingReason::New), _) => "  new".to_string(),
            (Some(PendingReason::Changed { acknowledged }), _) => {
                format!("  changed (acknowledged version {acknowledged})")
            }
            (None, true) => "  (deleted)".to_string(),
            (None, false) => String::new(),
        };
        let line = format!(
            "{:<24} {:>8}  {:<20}  {:<20}{state}",
            r.id,
            r.version,
            show_time(r.updated_at),
            r.writer
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    match (rows.last(), &args.pending_for) {
        (None, Some(installation)) => writeln!(out, "nothing pending for {installation}")?,
        (None, None) => writeln!(out, "no records")?,
        (Some(last), _) if rows.len() == query.limit => {
            eprintln!("(more may follow: --after {})", last.record.version);
        }
        _ => {}
    }
    Ok(0)
}

async fn show(args: ShowArgs) -> anyhow::Result<u8> {
    let Target { tenant, collection } = &args.target;
    let store = open(&args.db, tenant).await?;
    let Some(detail) = admin::show(&*store, tenant, collection, &args.id).await? else {
        return Err(bad(format!(
            "no record {collection}/{} for tenant `{tenant}`",
            args.id
        )));
    };
    print_detail(tenant, &detail)?;
    Ok(0)
}

fn print_detail(tenant: &str, detail: &RecordDetail) -> anyhow::Result<()> {
    let r = &detail.record;
    let mut out = std::io::stdout().lock();
    writeln!(out, "record {}/{} of {tenant}", r.collection, r.id)?;
    writeln!(out, "  version    {}", r.version)?;
    writeln!(
        out,
        "  written    {} by {}",
        show_time(r.updated_at),
        r.writer
    )?;
    match &r.body {
        Some(body) => {
            let pretty = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| body.clone());
            writeln!(out, "  body")?;
            for line in pretty.lines() {
                writeln!(out, "    {line}")?;
            }
        }
        None => writeln!(out, "  deleted    (a tombstone: it has no body)")?,
    }
    writeln!(out, "  acknowledged")?;
    if detail.acks.is_empty() {
        writeln!(out, "    by no installation")?;
    }
    for ack in &detail.acks {
        let state = if ack.version >= r.version {
            "the current version"
        } else {
            "an older version: pending again"
        };
        writeln!(
            out,
            "    {:<20} version {} at {} ({state})",
            ack.installation,
            ack.version,
            show_time(ack.acked_at)
        )?;
    }
    // Annotations are written by guests: escaped, so a line break or a
    // direction override cannot forge the lines around them.
    for (installation, a) in &detail.annotations {
        writeln!(out, "  annotations of {installation}")?;
        if let Some(external) = &a.external_ref {
            writeln!(out, "    external ref  {}", external.escape_debug())?;
        }
        if let Some(flag) = &a.flag {
            writeln!(out, "    flag          {}", flag.escape_debug())?;
        }
        for note in &a.notes {
            writeln!(out, "    note          {}", note.escape_debug())?;
        }
        writeln!(out, "    changed       {}", show_time(a.updated_at))?;
    }
    Ok(())
}

async fn export(args: ExportArgs) -> anyhow::Result<u8> {
    let Target { tenant, collection } = &args.target;
    let store = open(&args.db, tenant).await?;
    let Some(path) = &args.out else {
        let mut out = std::io::BufWriter::new(std::io::stdout());
        let count = admin::export_jsonl(&*store, tenant, collection, &mut out).await?;
        eprintln!("exported {}", records_count(count));
        return Ok(0);
    };
    // Written beside the target, then moved over it: a failed export
    // leaves no half file.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| bad(format!("cannot write in {}: {e}", dir.display())))?;
    let mut out = std::io::BufWriter::new(temp);
    let count = admin::export_jsonl(&*store, tenant, collection, &mut out).await?;
    let temp = out.into_inner().map_err(|e| e.into_error())?;
    temp.persist(path)
        .map_err(|e| bad(format!("cannot write {}: {}", path.display(), e.error)))?;
    outln!(
        "exported {} of {collection} to {}",
        records_count(count),
        path.display()
    );
    Ok(0)
}

async fn unack(args: UnackArgs) -> anyhow::Result<u8> {
    let Target { tenant, collection } = &args.target;
    let store = open(&args.db, tenant).await?;
    installation_exists(&*store, tenant, &args.installation).await?;
    let (id, installation) = (&args.id, &args.installation);
    if store.record(tenant, collection, id).await?.is_none() {
        return Err(bad(format!(
            "no record {collection}/{id} for tenant `{tenant}`"
        )));
    }
    if admin::unack(&*store, tenant, collection, id, installation).await? {
        outln!(
            "removed {installation}'s acknowledgement of {collection}/{id}: it is pending for \
             {installation} again"
        );
    } else {
        outln!("{installation} had not acknowledged {collection}/{id}: nothing changed");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn counts_are_separated_by_thousands() {
        assert_eq!(records_count(1), "1 record");
        assert_eq!(records_count(2_500), "2,500 records");
        for (n, shown) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (2_500, "2,500"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), shown);
        }
    }

    #[test]
    fn bad_names_are_usage_errors_that_name_the_value() {
        for (args, needle) in [
            (
                &["records", "list", "acme", "widgets"][..],
                "`widgets` is not a collection",
            ),
            (
                &["records", "list", "Acme!", "orders"][..],
                "`Acme!` is not a valid tenant id",
            ),
            (
                &["records", "show", "acme", "orders", ""][..],
                "may not be empty",
            ),
            (
                &["records", "show", "acme", "orders", "a\u{7}b"][..],
                "control characters",
            ),
            (
                &["records", "list", "acme", "orders", "--limit", "0"][..],
                "--limit",
            ),
            (
                &["records", "list", "acme", "orders", "--after=-1"][..],
                "--after",
            ),
            (
                &["records", "unack", "acme", "orders", "R1"][..],
                "--installation",
            ),
        ] {
            let err = Cli::try_parse_from([&["airlock"][..], args].concat()).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            let text = err.to_string();
            assert!(text.contains(needle), "{args:?}: {text}");
        }
    }
}
