//! Command-line parsing and dispatch. Each subcommand lives in its own file
//! and only calls the library; nothing here decides policy.

mod egress;
mod inspect;
mod run;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use airlock::AirlockOptions;
use airlock::egress::{AddressPolicy, Grants, PermittedDomains, ResolveOverrides};

/// Exit code: the host itself failed (bad input, unreadable plugin, database).
pub const EXIT_HOST_FAILURE: u8 = 1;
/// Exit code: the run ended `retry`.
pub const EXIT_RETRY: u8 = 3;
/// Exit code: the run ended `error` (including trap, timeout, memory limit).
pub const EXIT_ERROR: u8 = 4;

/// Airlock runs commerce connectors as sandboxed WebAssembly components.
///
/// A plugin is a directory with a `plugin.toml` manifest and the component it
/// names. Connectors reach only the HTTP destinations their installation was
/// granted, and keep state in storage private to their installation.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one feed of a plugin once and print what happened.
    ///
    /// Prints the outcome, the guest's log and output, every HTTP request with
    /// the egress decision, and the storage changes (committed when the run
    /// ends ok or info, discarded otherwise). The run is recorded in the
    /// database.
    ///
    /// Exit status: 0 ok or info, 3 retry, 4 error (including trap, timeout and
    /// memory limit), 1 the host failed, 2 bad arguments.
    #[command(
        after_help = "Example:\n  airlock run plugins/custom-store --feed orders --tenant acme \\\n    --config endpoint=http://shop.test:8080/api/v1 --config username=demo \\\n    --config-file secrets.toml --resolve shop.test=127.0.0.1 \\\n    --allow-network 127.0.0.0/8"
    )]
    Run(Box<run::RunArgs>),
    /// Describe a plugin: manifest, component digest, WIT imports and exports,
    /// and the egress table a security reviewer checks.
    Inspect(inspect::InspectArgs),
    /// Egress for security reviewers: explain a URL's verdict, audit what
    /// plugins may reach and use, list recorded decisions.
    Egress {
        #[command(subcommand)]
        command: egress::EgressCommand,
    },
}

/// The database: storage, run records and the egress audit.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// The SQLite database file (storage, run records, egress audit).
    #[arg(
        long,
        env = "AIRLOCK_DB",
        default_value = "airlock.db",
        value_name = "FILE"
    )]
    db: PathBuf,
}

/// Options shared by commands that load components.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// Directory for compiled components (default: $XDG_CACHE_HOME/airlock or
    /// ~/.cache/airlock).
    #[arg(long, env = "AIRLOCK_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile components in memory only; do not read or write the cache.
    #[arg(long)]
    no_cache: bool,
}

impl CacheArgs {
    fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        if let Some(d) = &self.cache_dir {
            return Some(d.clone());
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("airlock").join("components"))
    }
}

/// How the host reaches third parties: the operator's tables and the test
/// resolver. Shared by every command that decides on or sends requests.
#[derive(Debug, clap::Args)]
pub struct NetArgs {
    /// Test resolver: connect to ADDRESS for HOST instead of asking DNS, like
    /// curl's --resolve. The egress policy still decides on the name first.
    /// Repeatable.
    #[arg(long, value_name = "HOST=ADDRESS")]
    resolve: Vec<String>,
    /// Allow connections to this network (CIDR, e.g. 127.0.0.0/8 for a local
    /// test server, 10.1.2.0/24 for an on-premises system). Only public
    /// addresses are allowed otherwise. Repeatable.
    #[arg(long, value_name = "CIDR")]
    allow_network: Vec<ipnet::IpNet>,
    #[command(flatten)]
    permitted: PermittedArgs,
}

/// The operator's permitted-domains table.
#[derive(Debug, clap::Args)]
pub struct PermittedArgs {
    /// The operator's permitted-domains table (TOML `[domains]` of
    /// "domain" = "service"); default: the shipped permitted-domains.toml.
    #[arg(long, env = "AIRLOCK_PERMITTED_DOMAINS", value_name = "FILE")]
    permitted_domains: Option<PathBuf>,
}

impl PermittedArgs {
    /// The table named, or the shipped one.
    pub fn load(&self) -> anyhow::Result<PermittedDomains> {
        match &self.permitted_domains {
            Some(path) => PermittedDomains::load(path).map_err(anyhow::Error::msg),
            None => Ok(PermittedDomains::default()),
        }
    }
}

impl NetArgs {
    fn resolve_overrides(&self) -> anyhow::Result<ResolveOverrides> {
        let mut resolve = ResolveOverrides::default();
        for spec in &self.resolve {
            resolve
                .add_spec(spec)
                .map_err(anyhow::Error::msg)
                .context("--resolve")?;
        }
        Ok(resolve)
    }

    /// Sets the resolver, address policy and permitted table of `options`.
    fn apply(&self, options: &mut AirlockOptions) -> anyhow::Result<()> {
        options.resolve = self.resolve_overrides()?;
        options.addresses = AddressPolicy::new(self.allow_network.clone());
        options.permitted = self.permitted.load()?;
        Ok(())
    }

    /// Prints what an installation may reach and how names resolve.
    fn print(&self, grants: &Grants) -> anyhow::Result<()> {
        for g in &grants.granted {
            let source = match &g.permitted_by {
                Some(p) => format!("manifest, permitted as {} ({})", p.domain, p.service),
                None => "installation config, approved by the operator".to_string(),
            };
            println!("  egress     {}  [{}; {source}]", g.rule, g.rule.service);
        }
        if grants.granted.is_empty() {
            println!("  egress     (none: every request is denied)");
        }
        for r in &grants.refused {
            println!("  NOT GRANTED {} [{}]: {}", r.host, r.service, r.reason);
        }
        for (host, addrs) in self.resolve_overrides()?.entries() {
            let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            println!(
                "  resolve    {host} -> {} (test resolver)",
                addrs.join(", ")
            );
        }
        for net in &self.allow_network {
            println!("  network    {net} allowed by the operator");
        }
        Ok(())
    }
}

/// `GET https://host:443/path`, for printing an audited request (never with
/// its query string).
pub fn request_line(
    method: &str,
    scheme: Option<&str>,
    host: &str,
    port: Option<u16>,
    path: &str,
) -> String {
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    format!("{method} {}://{host}{port}{path}", scheme.unwrap_or("?"))
}

/// Runs the parsed command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => run::run(*args).await,
        Command::Inspect(args) => inspect::inspect(args),
        Command::Egress { command } => egress::egress(command).await,
    }
}
