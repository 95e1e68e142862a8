//! `airlock egress check|audit|log`: what a security reviewer asks of the
//! egress policy, answered from the same code the host enforces with.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use airlock::egress::{
    ApprovedRule, Decision, EgressClient, Explanation, Grants, HttpRequest, SendMode,
};
use airlock::runs::Mode;
use airlock::storage::{AuditFilter, InstallationRow, RuleUsage};
use airlock::{AirlockOptions, ConfigValues, Plugin, lifecycle};

use super::{DbArgs, NetArgs, PermittedArgs, request_line};

/// Exit status when a URL would be refused (or could not be decided).
pub const EXIT_DENIED: u8 = 1;

#[derive(Debug, clap::Subcommand)]
pub enum EgressCommand {
    /// Explain the verdict for a URL without sending anything.
    ///
    /// Runs the same checks as a real request up to the socket: URL parsing
    /// and normalisation, the installation's grants (permitted-domains table ∩
    /// manifest, plus config origins), test mode, and DNS resolution with the
    /// address check (skip with --no-resolve). Exit 0 allow, 1 deny.
    Check(Box<CheckArgs>),
    /// The effective allow-list of plugins per installation, each entry with
    /// its service and where it came from, request counts, last use, and
    /// entries granted but never used.
    Audit(AuditArgs),
    /// List recorded egress decisions, newest first.
    Log(LogArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// A plugin directory, or TENANT/INSTALLATION to judge as that stored
    /// installation (its config and mode). An existing directory wins.
    target: PathBuf,
    /// The URL to judge.
    url: String,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Config values (KEY=VALUE) whose origins the plugin may reach
    /// (`[egress] from_config`); required fields may be left out.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Judge as a test-mode installation (state-changing methods
    /// suppressed) or a live one. A plugin directory is judged in the mode
    /// it would run in: default test, like a new installation (and `airlock
    /// run`); a stored installation in its own mode.
    #[arg(long, value_enum, value_name = "MODE")]
    mode: Option<Mode>,
    /// Do not resolve the host (no DNS, no address check).
    #[arg(long)]
    no_resolve: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    db: DbArgs,
}

/// Output formats for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// One JSON array.
    Json,
    /// Comma-separated values with a header.
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Plugin directories to audit.
    #[arg(required_unless_present = "installed")]
    plugin_dirs: Vec<PathBuf>,
    /// Audit what is installed in the database instead: each installed
    /// plugin version, and each installation's approved config origins (the
    /// merchant's own shop).
    #[arg(long)]
    installed: bool,
    /// Only this tenant's installations.
    #[arg(long)]
    tenant: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    permitted: PermittedArgs,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Only denials.
    #[arg(long)]
    denied: bool,
    /// Only since this time: RFC 3339 (2026-11-23T10:00:00Z) or an age
    /// (30m, 12h, 7d).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this plugin id.
    #[arg(long)]
    plugin: Option<String>,
    /// At most this many rows.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    db: DbArgs,
}

pub async fn egress(command: EgressCommand) -> anyhow::Result<u8> {
    match command {
        EgressCommand::Check(args) => check(*args).await,
        EgressCommand::Audit(args) => audit(args).await,
        EgressCommand::Log(args) => log(args).await,
    }
}

/// What `egress check` judges: a plugin directory with `--config` (grants
/// worked out from its manifest), or a stored installation (the egress
/// rules stored when the operator approved them; its non-secret config is
/// all a legacy installation's rules depend on).
struct CheckTarget {
    plugin: Plugin,
    config: ConfigValues,
    mode: Mode,
    approved: Option<Vec<ApprovedRule>>,
}

async fn check_target(args: &CheckArgs) -> anyhow::Result<CheckTarget> {
    if args.target.is_dir() {
        let plugin = Plugin::load(&args.target)?;
        let config = ConfigValues::from_assignments_partial(&plugin.manifest, &args.config)?;
        return Ok(CheckTarget {
            plugin,
            config,
            mode: args.mode.unwrap_or(Mode::Test),
            approved: None,
        });
    }
    let text = args.target.to_string_lossy();
    let (tenant, id) = lifecycle::parse_reference(&text).with_context(|| {
        format!("`{text}` is neither a plugin directory nor TENANT/INSTALLATION")
    })?;
    if !args.config.is_empty() {
        anyhow::bail!("--config applies to a plugin directory; {text} uses its stored config");
    }
    let store = args.db.open().await?;
    let row = lifecycle::installation_row(&*store, &tenant, &id).await?;
    let plugin = lifecycle::installed_plugin(&*store, &row)?;
    let stored: Vec<String> = row.config.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let config = ConfigValues::from_assignments_partial(&plugin.manifest, &stored)?;
    let approved = lifecycle::approved_rules(&row, &plugin, &config)?;
    Ok(CheckTarget {
        plugin,
        config,
        mode: args.mode.unwrap_or(lifecycle::stored_mode(&row)),
        approved: Some(approved),
    })
}

async fn check(args: CheckArgs) -> anyhow::Result<u8> {
    let CheckTarget {
        plugin,
        config,
        mode,
        approved,
    } = check_target(&args).await?;
    let mut options = AirlockOptions::default();
    args.net.apply(&mut options)?;
    let grants = match &approved {
        Some(rules) => Grants::from_approved(rules, &options.permitted),
        None => Grants::resolve(&plugin.manifest, &config, &options.permitted),
    }
    .map_err(anyhow::Error::msg)?;
    let client = EgressClient::new(options.egress_limits, options.resolve, options.addresses)?;
    let request = HttpRequest {
        method: args.method.to_ascii_uppercase(),
        url: args.url.clone(),
        headers: vec![],
        body: None,
        timeout: None,
    };
    let mode = match mode {
        Mode::Test => SendMode::Test,
        Mode::Live => SendMode::Live,
    };
    let explanation = client
        .explain(&grants.policy(), mode, &request, !args.no_resolve)
        .await;
    let allowed = matches!(explanation.decision, Decision::Allowed { .. })
        && explanation.lookup_error.is_none();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print_explanation(&args, &config, &grants, &explanation);
    }
    Ok(if allowed { 0 } else { EXIT_DENIED })
}

/// `text` with the query and fragment of every URL in it replaced by `?…`.
fn without_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let url_end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>'))
            .map_or(rest.len(), |e| at + e);
        let query = rest[at..url_end].find(['?', '#']).map(|q| at + q);
        match query {
            Some(q) => {
                out.push_str(&rest[..q]);
                out.push_str("?…");
            }
            None => out.push_str(&rest[..url_end]),
        }
        rest = &rest[url_end..];
    }
    out.push_str(rest);
    out
}

/// `url` as it may be printed: without its query or fragment, secrets redacted.
fn shown_url(url: &str, config: &ConfigValues) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let elided = if end < url.len() { "?…" } else { "" };
    format!("{}{elided}", config.redact(&url[..end]).escape_debug())
}

fn print_explanation(args: &CheckArgs, config: &ConfigValues, grants: &Grants, e: &Explanation) {
    outln!(
        "url        {} {}",
        args.method.to_ascii_uppercase(),
        shown_url(&args.url, config)
    );
    if let Some(host) = &e.host {
        outln!("host       {host}");
    }
    match &e.decision {
        Decision::Allowed { rule, service } => {
            let source = grants
                .granted
                .iter()
                .find(|g| g.rule.to_string() == *rule)
                .map(|g| match &g.permitted_by {
                    Some(p) => format!("manifest, permitted as {} ({})", p.domain, p.service),
                    None => "installation config".to_string(),
                })
                .unwrap_or_default();
            outln!("verdict    ALLOW by {rule} [{service}; {source}]");
        }
        Decision::Denied { rule, reason } => {
            outln!("verdict    DENY [{}] {reason}", rule.as_str())
        }
        Decision::Suppressed => {
            outln!("verdict    DENY [test-mode] not sent: the method changes state")
        }
        Decision::Invalid { reason } => outln!("verdict    DENY [invalid-request] {reason}"),
    }
    if !e.addresses.is_empty() {
        let addrs: Vec<String> = e.addresses.iter().map(ToString::to_string).collect();
        outln!("addresses  {} (all allowed)", addrs.join(", "));
    } else if args.no_resolve && matches!(e.decision, Decision::Allowed { .. }) {
        outln!("addresses  not resolved (--no-resolve)");
    }
    if let Some(err) = &e.lookup_error {
        outln!("lookup     failed: {err} (a real request would fail to connect)");
    }
    for r in &grants.refused {
        outln!(
            "note       manifest entry {} [{}] is NOT granted: {}",
            r.host,
            r.service,
            r.reason
        );
    }
}

/// One line of `egress audit`.
#[derive(Debug, Serialize)]
struct AuditEntry {
    plugin: String,
    tenant: String,
    installation: String,
    decision: String,
    entry: String,
    service: String,
    source: String,
    requests: u64,
    last_used: String,
    note: String,
}

fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn audit_entries(plugin: &Plugin, grants: &Grants, usage: &[RuleUsage]) -> Vec<AuditEntry> {
    let id = &plugin.manifest.plugin.id;
    let mut out = Vec::new();
    let granted_source = |rule: &str| {
        grants
            .granted
            .iter()
            .find(|g| g.rule.to_string() == rule)
            .map(|g| {
                let p = g
                    .permitted_by
                    .as_ref()
                    .expect("manifest grants are permitted");
                (
                    g.rule.service.clone(),
                    format!("manifest; permitted as {} ({})", p.domain, p.service),
                )
            })
    };
    for u in usage {
        let (service, source) = match u.decision.as_str() {
            "allowed" => granted_source(&u.rule).unwrap_or_else(|| {
                (
                    u.service.clone().unwrap_or_default(),
                    "installation config".into(),
                )
            }),
            _ => (String::new(), "refused by the host".into()),
        };
        out.push(AuditEntry {
            plugin: plugin.label(),
            tenant: u.tenant.clone(),
            installation: u.installation.clone(),
            decision: u.decision.clone(),
            entry: u.rule.clone(),
            service,
            source,
            requests: u.count,
            last_used: time(u.last_ms),
            note: String::new(),
        });
    }
    for g in &grants.granted {
        let rule = g.rule.to_string();
        if usage
            .iter()
            .any(|u| u.decision == "allowed" && u.rule == rule)
        {
            continue;
        }
        let (service, source) = granted_source(&rule).unwrap_or_default();
        out.push(AuditEntry {
            plugin: plugin.label(),
            tenant: "*".into(),
            installation: "*".into(),
            decision: "allowed".into(),
            entry: rule,
            service,
            source,
            requests: 0,
            last_used: String::new(),
            note: "granted but never used: consider removing it".into(),
        });
    }
    for key in &plugin.manifest.egress.from_config {
        if !usage
            .iter()
            .any(|u| u.decision == "allowed" && granted_source(&u.rule).is_none())
        {
            out.push(AuditEntry {
                plugin: plugin.label(),
                tenant: "*".into(),
                installation: "*".into(),
                decision: "allowed".into(),
                entry: format!("<origin of config `{key}`>"),
                service: format!("{id} (installation config)"),
                source: "installation config, approved per installation".into(),
                requests: 0,
                last_used: String::new(),
                note: "no recorded use".into(),
            });
        }
    }
    for r in &grants.refused {
        out.push(AuditEntry {
            plugin: plugin.label(),
            tenant: "*".into(),
            installation: "*".into(),
            decision: "not granted".into(),
            entry: r.host.clone(),
            service: r.service.clone(),
            source: "manifest".into(),
            requests: 0,
            last_used: String::new(),
            note: r.reason.clone(),
        });
    }
    out
}

/// Origins of config URLs the operator approved for an installation that it
/// has not used yet, as audit rows (used ones are already rows of `usage`).
fn approved_origins(
    plugin: &Plugin,
    row: &InstallationRow,
    manifest_rules: &[String],
    usage: &[RuleUsage],
) -> Vec<AuditEntry> {
    let used = |rule: &String| {
        usage.iter().any(|u| {
            u.decision == "allowed"
                && &u.rule == rule
                && u.tenant == row.tenant
                && u.installation == row.id
        })
    };
    row.approved_egress
        .iter()
        .filter(|rule| !manifest_rules.contains(rule) && !used(rule))
        .map(|rule| AuditEntry {
            plugin: plugin.label(),
            tenant: row.tenant.clone(),
            installation: row.id.clone(),
            decision: "allowed".into(),
            entry: rule.clone(),
            service: format!("{} (installation config)", plugin.manifest.plugin.id),
            source: format!(
                "installation config, approved {}",
                time(row.updated_at * 1000)
            ),
            requests: 0,
            last_used: String::new(),
            note: "no recorded use".into(),
        })
        .collect()
}

/// Manifest rules the permitted table grants today that were not approved
/// for an installation (the table was widened after it was approved): its
/// runs are denied them until an upgrade or reauthorise approves them.
fn unapproved_rules(
    plugin: &Plugin,
    row: &InstallationRow,
    manifest_rules: &[String],
) -> Vec<AuditEntry> {
    manifest_rules
        .iter()
        .filter(|rule| !row.approved_egress.contains(rule))
        .map(|rule| AuditEntry {
            plugin: plugin.label(),
            tenant: row.tenant.clone(),
            installation: row.id.clone(),
            decision: "not approved".into(),
            entry: rule.clone(),
            service: String::new(),
            source: "manifest".into(),
            requests: 0,
            last_used: String::new(),
            note: "not in the egress approved for this installation: its runs are denied it \
                   (approve it with `airlock reauthorise --approve-egress`)"
                .into(),
        })
        .collect()
}

async fn audit(args: AuditArgs) -> anyhow::Result<u8> {
    let store = args.db.open().await?;
    let permitted = args.permitted.load()?;
    let mut entries = Vec::new();
    let mut dirs = args.plugin_dirs.clone();
    let installed = if args.installed {
        store.installations(args.tenant.as_deref(), false).await?
    } else {
        Vec::new()
    };
    for row in &installed {
        let dir = PathBuf::from(&row.plugin_dir);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in &dirs {
        // An installation's plugin is read from its pinned (and verified) entry.
        let plugin = match installed.iter().find(|r| Path::new(&r.plugin_dir) == dir) {
            Some(row) => lifecycle::installed_plugin(&*store, row)?,
            None => Plugin::load(dir)?,
        };
        let grants = Grants::resolve(&plugin.manifest, &ConfigValues::default(), &permitted)
            .map_err(anyhow::Error::msg)?;
        let usage = store
            .rule_usage(&plugin.manifest.plugin.id, args.tenant.as_deref())
            .await?;
        entries.extend(audit_entries(&plugin, &grants, &usage));
        let manifest_rules: Vec<String> =
            grants.granted.iter().map(|g| g.rule.to_string()).collect();
        for row in installed.iter().filter(|r| Path::new(&r.plugin_dir) == dir) {
            entries.extend(approved_origins(&plugin, row, &manifest_rules, &usage));
            entries.extend(unapproved_rules(&plugin, row, &manifest_rules));
        }
    }
    print_rows(
        args.format,
        &entries,
        |e| {
            vec![
                e.plugin.clone(),
                e.tenant.clone(),
                e.installation.clone(),
                e.decision.clone(),
                e.entry.clone(),
                e.service.clone(),
                e.requests.to_string(),
                e.last_used.clone(),
                if e.note.is_empty() {
                    e.source.clone()
                } else {
                    format!("{}; {}", e.source, e.note)
                },
            ]
        },
        &[
            "plugin",
            "tenant",
            "installation",
            "decision",
            "entry",
            "service",
            "requests",
            "last used",
            "source / note",
        ],
    )?;
    Ok(0)
}

async fn log(args: LogArgs) -> anyhow::Result<u8> {
    let store = args.db.open().await?;
    let filter = AuditFilter {
        denied_only: args.denied,
        since_ms: args
            .since
            .as_deref()
            .map(super::parse_since_ms)
            .transpose()?,
        tenant: args.tenant,
        plugin: args.plugin,
        limit: args.limit,
    };
    // Rows stored before errors stopped quoting URLs may still hold a query.
    let rows: Vec<_> = store
        .audit_log(filter)
        .await?
        .into_iter()
        .map(|mut row| {
            row.reason = row.reason.as_deref().map(without_url_queries);
            row.error = row.error.as_deref().map(without_url_queries);
            row
        })
        .collect();
    print_rows(
        args.format,
        &rows,
        |r| {
            vec![
                time(r.at_ms),
                format!("{}/{}", r.tenant, r.installation),
                format!("{}@{}", r.plugin_id, r.plugin_version),
                r.run_id
                    .map(|id| format!("#{id} {}", r.feed))
                    .unwrap_or_default(),
                request_line(&r.method, r.scheme.as_deref(), &r.host, r.port, &r.path),
                r.decision.clone(),
                r.rule.clone().unwrap_or_default(),
                r.status.map(|s| s.to_string()).unwrap_or_default(),
                r.reason.clone().or(r.error.clone()).unwrap_or_default(),
            ]
        },
        &[
            "time",
            "tenant/installation",
            "plugin",
            "run",
            "request",
            "decision",
            "rule",
            "status",
            "reason",
        ],
    )?;
    Ok(0)
}

/// Prints `rows` as a table, JSON or CSV.
fn print_rows<T: Serialize>(
    format: Format,
    rows: &[T],
    cells: impl Fn(&T) -> Vec<String>,
    header: &[&str],
) -> anyhow::Result<()> {
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(rows)?),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            for row in rows {
                w.serialize(row)?;
            }
            w.flush()?;
        }
        Format::Table => {
            let lines: Vec<Vec<String>> = rows.iter().map(&cells).collect();
            let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
            for line in &lines {
                for (w, c) in widths.iter_mut().zip(line) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let print = |cols: Vec<String>| {
                let text: Vec<String> = cols
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}", w = *w))
                    .collect();
                outln!("{}", text.join("  ").trim_end());
            };
            print(header.iter().map(|h| h.to_string()).collect());
            for line in lines {
                print(line);
            }
            if rows.is_empty() {
                outln!("(nothing recorded)");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(without_url_queries(input), expected, "{input:?}");
    }

    #[test]
    fn printed_errors_keep_no_url_query() {
        check(
            "error sending request for url (http://shop.test/p?token=abc): refused",
            "error sending request for url (http://shop.test/p?…): refused",
        );
        check(
            "see https://a.test/x#frag and https://b.test/?q=1",
            "see https://a.test/x?… and https://b.test/?…",
        );
        check("https://a.test/no-query", "https://a.test/no-query");
        check("no url? none", "no url? none");
        check("é://x?y", "é://x?…");
    }
}
