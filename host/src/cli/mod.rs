//! Command-line parsing and dispatch. Each subcommand lives in its own file
//! and only calls the library; nothing here decides policy. The database is
//! opened in one place, [`DbArgs`], and handed out as `Arc<dyn Store>`:
//! commands call the store's traits, never the backend's own methods.

/// `println!` for a command's output: when the reader stopped reading
/// (`airlock installations | head -1`) the command ends quietly, as `main`
/// does for a broken pipe, instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::cli::output_failed(e);
        }
    }};
}

/// `print!` for a command's output, like [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout().lock(), $($arg)*) {
            $crate::cli::output_failed(e);
        }
    }};
}

mod artifacts;
mod egress;
mod history;
mod inspect;
mod logging;
mod ops;
mod parse;
mod records;
mod run;
mod serve;
mod state;
mod tokens;
mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use airlock::egress::{AddressPolicy, ExtraRoots, Grants, PermittedDomains, ResolveOverrides};
use airlock::secrets::{Keyring, MasterKey};
use airlock::storage::{PgOptions, PgStore, Store};
use airlock::{Airlock, AirlockOptions, SqliteStore};

pub use parse::{
    parse_duration, parse_rate, parse_since, parse_since_ms, parse_time, shown, valid_id,
};

/// Exit code: the host itself failed (bad input, unreadable plugin, database).
pub const EXIT_HOST_FAILURE: u8 = 1;
/// Exit code: the run ended `retry`.
pub const EXIT_RETRY: u8 = 3;
/// Exit code: the run ended `error` (including trap, timeout, memory limit).
pub const EXIT_ERROR: u8 = 4;
/// Exit code: the input named on the command line is wrong (a record or
/// artifact that does not exist, a file that is not valid), as opposed to
/// the host failing.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Input the command line named that is wrong (exit [`EXIT_BAD_INPUT`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(String);

/// A [`BadInput`] error.
pub fn bad(message: impl Into<String>) -> anyhow::Error {
    BadInput(message.into()).into()
}

/// A command's result with [`BadInput`] printed and turned into its exit
/// code; other errors go on to the caller (exit 1).
pub fn bad_input_exits(result: anyhow::Result<u8>) -> anyhow::Result<u8> {
    match result {
        Err(e) if e.is::<BadInput>() => {
            eprintln!("error: {e}");
            Ok(EXIT_BAD_INPUT)
        }
        other => other,
    }
}

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
    /// Tenants: the merchants that own installations.
    Tenant {
        #[command(subcommand)]
        command: ops::TenantCommand,
    },
    /// Install a plugin for a tenant: checks the config against the manifest,
    /// shows the egress it grants, runs the plugin's check() ("Test
    /// connection"), then asks to confirm.
    ///
    /// A new installation is enabled and starts in test mode: inbound feeds
    /// run, nothing that changes a third party is sent. Secrets are sealed
    /// with the master key before they are stored.
    #[command(
        after_help = "Example:\n  airlock keygen /etc/airlock/master.key\n  airlock tenant add acme\n  airlock install plugins/custom-store --tenant acme \\\n    --config endpoint=https://shop.example/api/v1 --config username=demo \\\n    --config-file secrets.toml --master-key-file /etc/airlock/master.key"
    )]
    Install(Box<ops::InstallArgs>),
    /// List installations with their mode, state and feed schedules.
    Installations(ops::ListArgs),
    /// Switch an installation on: its schedules run again (from now on).
    Enable(ops::RefArgs),
    /// Switch an installation off: its schedules stop; config, storage and
    /// history stay.
    Disable(ops::RefArgs),
    /// Set an installation to test (nothing that changes a third party is
    /// sent) or live.
    Mode(ops::ModeArgs),
    /// Replace an installation's credentials or settings and re-run its
    /// check(); nothing is saved if the check fails.
    Reauthorise(Box<ops::ReauthoriseArgs>),
    /// Move an installation to another version of its plugin, showing what
    /// changes; more egress needs --approve-egress.
    Upgrade(Box<ops::UpgradeArgs>),
    /// Remove an installation: deletes its config, secrets, storage,
    /// schedules, published artifacts, feed token and webhook secret. Its
    /// run history is kept, and its name is not reused.
    Remove(ops::RemoveArgs),
    /// Override a feed's schedule for one installation (or go back to the
    /// manifest's default with --default).
    Schedule(ops::ScheduleArgs),
    /// Create a new master key file (mode 0600) for sealing secrets.
    Keygen(ops::KeygenArgs),
    /// Secrets at rest: re-seal them under a new master key.
    Secrets {
        #[command(subcommand)]
        command: ops::SecretsCommand,
    },
    /// Run the scheduler: feeds run on their schedules until SIGTERM/SIGINT.
    #[command(
        after_help = "Example:\n  airlock serve --master-key-file /etc/airlock/master.key --max-concurrent 16"
    )]
    Serve(Box<serve::ServeArgs>),
    /// Queue an immediate run of one feed ("Run now") for a running
    /// `airlock serve`; it waits if a run of that feed is in progress.
    RunNow(serve::RunNowArgs),
    /// Feed executions: list and show recorded runs.
    Runs {
        #[command(subcommand)]
        command: history::RunsCommand,
    },
    /// Notifications raised by failing feeds; they stay until acknowledged.
    Notifications {
        #[command(subcommand)]
        command: history::NotificationsCommand,
    },
    /// The tenant's shared records (products, orders, stock…): import,
    /// list, show, export, and un-acknowledge to export one again.
    Records {
        #[command(subcommand)]
        command: records::RecordsCommand,
    },
    /// The files installations' feeds publish (product feeds, sitemaps):
    /// list, download, and the feed access token for `serve --listen`.
    Artifacts {
        #[command(subcommand)]
        command: artifacts::ArtifactsCommand,
    },
    /// Inbound webhooks (third parties calling a connector): list an
    /// installation's, and make or rotate the secret their URLs hold.
    Webhooks {
        #[command(subcommand)]
        command: webhooks::WebhooksCommand,
    },
    /// Admin tokens for the HTTP API and the web console (`serve
    /// --listen`): make, list, revoke; and the audit of what they changed.
    Tokens {
        #[command(subcommand)]
        command: tokens::TokensCommand,
    },
    /// Print the admin API's OpenAPI 3.1 document (JSON): the same one
    /// `serve --listen` serves at /api/openapi.json.
    Openapi,
    /// An installation's connector state (its storage): show it, a key's
    /// history, and rewind it to before a run.
    State {
        #[command(subcommand)]
        command: state::StateCommand,
    },
}

/// The database: storage, run records and the egress audit. SQLite (a
/// file, the default) or PostgreSQL (`--database`, for several `serve`
/// nodes on one database).
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// The SQLite database file (storage, run records, egress audit); its
    /// directory holds the plugin store.
    #[arg(
        long,
        env = "AIRLOCK_DB",
        default_value = "airlock.db",
        value_name = "FILE"
    )]
    db: PathBuf,
    /// Use this PostgreSQL database instead of the SQLite file:
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE (or key=value pairs).
    /// Several `serve` processes may share it. Give it in the environment
    /// rather than on the command line, where other users see it.
    #[arg(
        long,
        env = "AIRLOCK_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database: Option<DatabaseUrl>,
    /// With --database: the directory of the plugin store (the plugins
    /// installations are pinned to). Every node must see the same one, e.g.
    /// a shared volume. Default: the current directory.
    #[arg(long, env = "AIRLOCK_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// With --database: how long a run's claim holds unless its node renews
    /// it (every third of this). A node that dies has its runs recovered by
    /// another node this long after its last renewal.
    #[arg(long, env = "AIRLOCK_LEASE", default_value = "30s",
          value_parser = parse_duration, value_name = "DURATION")]
    lease: std::time::Duration,
    /// With --database: the most connections this process opens.
    #[arg(long, default_value_t = 16, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    database_connections: u32,
}

/// A PostgreSQL URL, which may hold a password: never shown.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(..)")
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    /// Never fails: clap would print the rejected value, password and all.
    /// The URL is checked when the database is opened.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

impl DbArgs {
    /// Opens (creating and migrating) the database, as the store's traits
    /// offer it: what every command but the host's construction uses.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        self.open_backend().await
    }

    /// Whether this is the SQLite file (one `serve` at a time, held by the
    /// lock file beside it) rather than PostgreSQL.
    pub fn is_sqlite(&self) -> bool {
        self.database.is_none()
    }

    /// Where the data is, for messages: the SQLite file, or PostgreSQL's
    /// host, port and database (never a user or password).
    pub fn describe(&self) -> String {
        match &self.database {
            None => self.db.display().to_string(),
            Some(url) => PgStore::describe_url(&url.0),
        }
    }

    /// The composition root: the one place the CLI names the backends.
    async fn open_backend(&self) -> anyhow::Result<Arc<dyn Store>> {
        let Some(url) = &self.database else {
            return Ok(Arc::new(SqliteStore::open(&self.db)?));
        };
        PgStore::check_url(&url.0).map_err(|why| anyhow::anyhow!("--database: {why}"))?;
        let data_dir = match &self.data_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().context("the current directory")?,
        };
        let options = PgOptions {
            max_connections: self.database_connections as usize,
            lease: self.lease,
            data_dir: Some(data_dir),
        };
        Ok(Arc::new(PgStore::connect(&url.0, options).await?))
    }
}

/// The store of `host`, as its traits offer it.
pub fn store_of(host: &Airlock) -> &dyn Store {
    &**host.store()
}

/// The master key that seals installation secrets.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// The master key file that seals installation secrets (create one with
    /// `airlock keygen FILE`). The key may instead be given as text in
    /// $AIRLOCK_MASTER_KEY.
    #[arg(long, env = "AIRLOCK_MASTER_KEY_FILE", value_name = "FILE")]
    master_key_file: Option<PathBuf>,
    /// A master key used before a rotation: secrets sealed with it can still
    /// be opened (and are re-sealed with the current key when changed).
    /// Repeatable.
    #[arg(long, value_name = "FILE")]
    previous_key_file: Vec<PathBuf>,
}

impl KeyArgs {
    /// The keyring, if a master key was given.
    pub fn keyring(&self) -> anyhow::Result<Option<Keyring>> {
        let current = match (&self.master_key_file, std::env::var("AIRLOCK_MASTER_KEY")) {
            (Some(path), _) => MasterKey::load(path)?,
            (None, Ok(text)) => MasterKey::from_text(&text).context("$AIRLOCK_MASTER_KEY")?,
            (None, Err(_)) => return Ok(None),
        };
        let previous = self
            .previous_key_file
            .iter()
            .map(|p| MasterKey::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Keyring::new(current, previous)))
    }
}

/// A host on the database, with the network and cache options and the
/// master keys (the OAuth tokens it keeps are sealed with them).
pub async fn open_host_keyed(
    db: &DbArgs,
    net: &NetArgs,
    cache: &CacheArgs,
    keyring: Option<Arc<Keyring>>,
) -> anyhow::Result<Airlock> {
    open_host_with_limits(
        db,
        net,
        cache,
        airlock::runtime::HostLimits::default(),
        keyring,
    )
    .await
}

/// [`open_host_keyed`] with these host maxima (`serve` sizes the instance pool
/// from its concurrency) and master keys.
pub async fn open_host_with_limits(
    db: &DbArgs,
    net: &NetArgs,
    cache: &CacheArgs,
    limits: airlock::runtime::HostLimits,
    keyring: Option<Arc<Keyring>>,
) -> anyhow::Result<Airlock> {
    open_host_with(db, net, cache, limits, &PublishArgs::default(), keyring).await
}

/// [`open_host_with_limits`], keeping as many versions of each artifact as
/// `publish` says (`run` and `serve` publish).
pub async fn open_host_with(
    db: &DbArgs,
    net: &NetArgs,
    cache: &CacheArgs,
    limits: airlock::runtime::HostLimits,
    publish: &PublishArgs,
    keyring: Option<Arc<Keyring>>,
) -> anyhow::Result<Airlock> {
    let store = db.open_backend().await?;
    let mut options = AirlockOptions {
        cache_dir: cache.dir(),
        limits,
        keyring,
        artifact_versions: publish.artifact_versions,
        ..AirlockOptions::default()
    };
    options.storage_limits.history_versions = publish.state_history_versions;
    net.apply(&mut options)?;
    Ok(Airlock::new(store, options)?)
}

/// Asks the operator to confirm `question` unless `yes`; without a terminal
/// to ask on, refuses and says to pass --yes.
pub fn confirm(question: &str, yes: bool) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("not confirmed: {question} Pass --yes to confirm without a terminal");
    }
    out!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        anyhow::bail!("cancelled: nothing was changed")
    }
}

/// A Unix time as `2026-11-23 10:00:00Z`.
pub fn show_time(secs: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// What runs keep: published artifact versions, old storage values.
#[derive(Debug, Default, clap::Args)]
pub struct PublishArgs {
    /// Old values of each storage key kept for `airlock state history` and
    /// `state rewind` (1 to 100,000); the oldest are dropped as the key
    /// changes.
    #[arg(long, env = "AIRLOCK_STATE_HISTORY_VERSIONS", value_name = "N",
          default_value_t = airlock::storage::DEFAULT_KEEP_VERSIONS,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    state_history_versions: u32,
    /// Published versions kept of each artifact (1 to 100); older ones are
    /// deleted when a new one is published. `airlock artifacts get
    /// --version N` downloads one still kept.
    #[arg(long, env = "AIRLOCK_ARTIFACT_VERSIONS", value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    artifact_versions: u32,
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
    /// ADDRESS:PORT also sends URLs without a port of their own to PORT (a
    /// fake of https://api.example.com on a free loopback port).
    /// Repeatable.
    #[arg(long, value_name = "HOST=ADDRESS[:PORT]")]
    resolve: Vec<String>,
    /// Allow connections to this network (CIDR, e.g. 127.0.0.0/8 for a local
    /// test server, 10.1.2.0/24 for an on-premises system). Only public
    /// addresses are allowed otherwise. Repeatable.
    #[arg(long, value_name = "CIDR")]
    allow_network: Vec<ipnet::IpNet>,
    /// Also trust the root certificate(s) in this PEM file, for a fake of a
    /// third party's https host on loopback (with --resolve). Like
    /// --resolve it never changes what the egress policy allows: it only
    /// lets an allowed connection verify. Repeatable.
    #[arg(long, value_name = "FILE.pem")]
    trust_root: Vec<PathBuf>,
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
        options.extra_roots = self.extra_roots()?;
        Ok(())
    }

    fn extra_roots(&self) -> anyhow::Result<ExtraRoots> {
        let mut roots = ExtraRoots::default();
        for path in &self.trust_root {
            roots
                .add_pem_file(path)
                .map_err(anyhow::Error::msg)
                .context("--trust-root")?;
        }
        Ok(roots)
    }

    /// Prints what an installation may reach and how names resolve.
    fn print(&self, grants: &Grants) -> anyhow::Result<()> {
        for g in &grants.granted {
            let source = match &g.permitted_by {
                Some(p) => format!("manifest, permitted as {} ({})", p.domain, p.service),
                None => "installation config, approved by the operator".to_string(),
            };
            outln!("  egress     {}  [{}; {source}]", g.rule, g.rule.service);
        }
        if grants.granted.is_empty() {
            outln!("  egress     (none: every request is denied)");
        }
        for r in &grants.refused {
            outln!("  NOT GRANTED {} [{}]: {}", r.host, r.service, r.reason);
        }
        for (host, addrs) in self.resolve_overrides()?.entries() {
            let addrs: Vec<String> = addrs
                .iter()
                .map(|a| match a.port() {
                    0 => a.ip().to_string(),
                    _ => a.to_string(),
                })
                .collect();
            outln!(
                "  resolve    {host} -> {} (test resolver)",
                addrs.join(", ")
            );
        }
        for net in &self.allow_network {
            outln!("  network    {net} allowed by the operator");
        }
        for root in &self.trust_root {
            outln!(
                "  trust      {} (extra root certificate: a test setting)",
                root.display()
            );
        }
        Ok(())
    }
}

/// An installation's config values on the command line.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// A config value, KEY=VALUE; repeatable. Checked against the manifest.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// A TOML file of config values (key = "value"), to keep secrets out of
    /// shell history. --config values override it.
    #[arg(long, value_name = "FILE")]
    config_file: Option<PathBuf>,
}

impl ConfigArgs {
    /// `KEY=VALUE` assignments: the file's first, then the command line's.
    pub fn assignments(&self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        if let Some(path) = &self.config_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| config_file_error(path, &text, &e))?;
            for (key, value) in table {
                let value = match value {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                out.push(format!("{key}={value}"));
            }
        }
        for (i, assignment) in self.config.iter().enumerate() {
            // The value may be a secret: a malformed one is never echoed.
            if !assignment.contains('=') {
                bail!(
                    "--config #{} is not KEY=VALUE (it has no `=`); it is not shown, in case it \
                     holds a secret",
                    i + 1
                );
            }
            out.push(assignment.clone());
        }
        Ok(out)
    }
}

/// Ends the command when its output cannot be written: quietly with success
/// if the reader closed the pipe (it has all it wanted), else with the error.
pub fn output_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write the output: {e}");
    std::process::exit(i32::from(EXIT_HOST_FAILURE));
}

/// Why a config file is not valid TOML, without the line itself (toml's own
/// message quotes it, and the file is where secrets go): the line number and
/// what is wrong.
fn config_file_error(path: &std::path::Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let line = e
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| before.matches('\n').count() + 1);
    let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
    anyhow::anyhow!(
        "{} is not valid TOML{at}: {} (the line is not shown, in case it holds a secret)",
        path.display(),
        e.message().trim_end()
    )
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
        Command::Tenant { command } => ops::tenant(command).await,
        Command::Install(args) => ops::install(*args).await,
        Command::Installations(args) => ops::list(args).await,
        Command::Enable(args) => ops::set_enabled(args, true).await,
        Command::Disable(args) => ops::set_enabled(args, false).await,
        Command::Mode(args) => ops::mode(args).await,
        Command::Reauthorise(args) => ops::reauthorise(*args).await,
        Command::Upgrade(args) => ops::upgrade(*args).await,
        Command::Remove(args) => ops::remove(args).await,
        Command::Schedule(args) => ops::schedule(args).await,
        Command::Keygen(args) => ops::keygen(args),
        Command::Secrets { command } => ops::secrets(command).await,
        Command::Serve(args) => serve::serve(*args).await,
        Command::RunNow(args) => serve::run_now(args).await,
        Command::Runs { command } => history::runs(command).await,
        Command::Notifications { command } => history::notifications(command).await,
        Command::Records { command } => records::records(command).await,
        Command::Artifacts { command } => artifacts::artifacts(command).await,
        Command::Webhooks { command } => webhooks::webhooks(command).await,
        Command::Tokens { command } => tokens::tokens(command).await,
        Command::Openapi => {
            outln!("{}", airlock::web::api::document_json());
            Ok(0)
        }
        Command::State { command } => state::state(command).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn a_malformed_config_file_is_refused_without_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        for (text, line) in [
            (
                "endpoint = \"https://shop.example\"\npassword = \"Leak3dPa55 \n",
                2,
            ),
            ("password = Leak3dPa55\n", 1),
            ("password = \"Leak3dPa55\"\npassword = \"Leak3dPa55\"\n", 2),
        ] {
            let path = dir.path().join("secrets.toml");
            std::fs::write(&path, text).unwrap();
            let args = ConfigArgs {
                config: Vec::new(),
                config_file: Some(path),
            };
            let e = format!("{:#}", args.assignments().unwrap_err());
            assert!(!e.contains("Leak3dPa55"), "the secret is echoed: {e}");
            assert!(e.contains(&format!("at line {line}")), "{e}");
        }
    }

    #[test]
    fn a_malformed_config_assignment_is_refused_without_its_value() {
        let cli = Cli::try_parse_from([
            "airlock",
            "run",
            "plugins/hello",
            "--feed",
            "greet",
            "--config",
            "greeting=hi",
            "--config",
            "password:hunter2",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not a run");
        };
        let err = args.config_assignments().unwrap_err().to_string();
        assert!(err.contains("--config #2 is not KEY=VALUE"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn out_of_range_numbers_and_bad_times_are_usage_errors() {
        for args in [
            ["--max-rps", "1e-20"],
            ["--max-rps", "NaN"],
            ["--max-concurrent", "0"],
            ["--at", "yesterday"],
        ] {
            let parsed = Cli::try_parse_from(
                [
                    &["airlock", "run", "plugins/hello", "--feed", "greet"][..],
                    &args[..],
                ]
                .concat(),
            );
            let err = parsed.unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}"
            );
        }
    }
}
