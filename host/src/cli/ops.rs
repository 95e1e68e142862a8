//! Operating installations: `tenant`, `install`, `installations`, `enable`,
//! `disable`, `mode`, `reauthorise`, `upgrade`, `remove`, `schedule`,
//! `keygen`. Each calls `airlock::lifecycle` and prints what changed; secrets
//! are never printed.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::Utc;

use airlock::Airlock;
use airlock::lifecycle::{self, InstallRequest, Plan, parse_reference};
use airlock::runs::Mode;
use airlock::secrets::MasterKey;
use airlock::storage::TenantRow;

use super::{CacheArgs, ConfigArgs, DbArgs, KeyArgs, NetArgs, confirm, show_time, store_of};

#[derive(Debug, clap::Subcommand)]
pub enum TenantCommand {
    /// Add a tenant.
    Add {
        /// Its id: lower-case letters, digits, `-` and `_`.
        id: String,
        /// Display name (default: the id).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove a tenant that has no installations left.
    Remove {
        /// The tenant's id.
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

pub async fn tenant(command: TenantCommand) -> anyhow::Result<u8> {
    match command {
        TenantCommand::Add { id, name, db } => {
            lifecycle::check_id(&id)?;
            let tenant = TenantRow {
                name: name.unwrap_or_else(|| id.clone()),
                id: id.clone(),
                created_at: Utc::now().timestamp(),
            };
            db.open().await?.add_tenant(tenant).await?;
            outln!("added tenant {id}");
        }
        TenantCommand::List { db } => {
            let store = db.open().await?;
            let tenants = store.tenants().await?;
            if !tenants.is_empty() {
                outln!("{:<20} {:<30} installations", "tenant", "name");
            }
            for t in tenants {
                let n = store.installations(Some(&t.id), false).await?.len();
                outln!(
                    "{:<20} {:<30} {n} installation(s), added {}",
                    t.id,
                    t.name,
                    show_time(t.created_at)
                );
            }
        }
        TenantCommand::Remove { id, db } => {
            db.open().await?.remove_tenant(&id).await?;
            outln!("removed tenant {id}");
        }
    }
    Ok(0)
}

/// Options every command that runs a plugin's check() needs.
#[derive(Debug, clap::Args)]
pub struct HostArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// Confirm without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Do not run the plugin's check() ("Test connection"). The component
    /// is still compiled and validated.
    #[arg(long)]
    skip_check: bool,
    /// The mode check() runs in: test (the default: state-changing requests
    /// are not sent) or live. Whatever it writes to storage is discarded, and
    /// its requests are recorded in the egress audit (feed `check`).
    #[arg(long, value_enum, default_value_t = Mode::Test, value_name = "MODE")]
    check_mode: Mode,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The plugin directory (plugin.toml and its component).
    plugin_dir: PathBuf,
    /// The tenant to install it for.
    #[arg(long)]
    tenant: String,
    /// The installation's id within the tenant (default: the plugin id).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    config: ConfigArgs,
    /// The initial mode.
    #[arg(long, value_enum, default_value_t = Mode::Test)]
    mode: Mode,
    /// Override a feed's schedule: FEED=CRON (with seconds, e.g.
    /// "orders=0 */15 * * * *"). Repeatable.
    #[arg(long = "schedule", value_name = "FEED=CRON")]
    schedules: Vec<String>,
    /// The IANA time zone the schedules are read in.
    #[arg(long, default_value = "UTC", value_name = "ZONE")]
    time_zone: String,
    #[command(flatten)]
    host: HostArgs,
}

fn print_plan(plan: &Plan) {
    let inst = &plan.installation;
    outln!("  plugin     {}", plan.plugin.label());
    outln!("  component  sha256:{}", plan.plugin.digest);
    outln!("  mode       {}", inst.mode.as_str());
    for (k, v) in inst.config.plain() {
        outln!("  config     {k} = {v}");
    }
    for k in inst.config.secret_keys() {
        outln!("  secret     {k} (set; sealed at rest, never shown)");
    }
    for g in &plan.grants.granted {
        let source = match &g.permitted_by {
            Some(p) => format!("permitted as {} ({})", p.domain, p.service),
            None => "from the installation's config: approving this change approves it".into(),
        };
        outln!("  egress     {} [{}; {source}]", g.rule, g.rule.service);
    }
    if plan.grants.granted.is_empty() {
        outln!("  egress     (none: every request is denied)");
    }
    for r in &plan.grants.refused {
        outln!("  NOT GRANTED {} [{}]: {}", r.host, r.service, r.reason);
    }
    let data = lifecycle::data_text(&plan.plugin.manifest.data);
    for grant in &data {
        outln!("  records    {grant} (the tenant's shared records)");
    }
    if data.is_empty() {
        outln!("  records    (none: it cannot read or write the tenant's records)");
    }
    for s in &plan.schedules {
        let note = if s.overridden { " (overridden)" } else { "" };
        outln!(
            "  schedule   {:<16} {} {}{note}",
            s.feed,
            s.cron,
            s.time_zone
        );
    }
}

/// Runs check() unless skipped; an error if it fails.
impl HostArgs {
    /// The host and the master keys. The host holds the keys too: the
    /// connection test of a plugin with [oauth] gets a token from the
    /// sealed set, proving the client.
    async fn open(
        &self,
    ) -> anyhow::Result<(Airlock, Option<std::sync::Arc<airlock::secrets::Keyring>>)> {
        let keyring = self.key.keyring()?.map(std::sync::Arc::new);
        let host =
            super::open_host_keyed(&self.db, &self.net, &self.cache, keyring.clone()).await?;
        Ok((host, keyring))
    }
}

async fn test_connection(host: &Airlock, plan: &Plan, args: &HostArgs) -> anyhow::Result<()> {
    if args.skip_check {
        outln!("test connection: skipped (--skip-check)");
        return Ok(());
    }
    match host
        .check(&plan.plugin, &plan.installation, args.check_mode)
        .await?
    {
        Ok(()) => {
            outln!("test connection: ok ({} mode)", args.check_mode.as_str());
            Ok(())
        }
        Err(message) => bail!("test connection failed: {message}\nnothing was changed"),
    }
}

fn parse_schedules(specs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    specs
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(f, c)| (f.trim().to_string(), c.trim().to_string()))
                .with_context(|| format!("--schedule `{s}` is not FEED=CRON"))
        })
        .collect()
}

pub async fn install(args: InstallArgs) -> anyhow::Result<u8> {
    let (host, keyring) = args.host.open().await?;
    let request = InstallRequest {
        tenant: args.tenant.clone(),
        id: args.name.clone(),
        plugin_dir: args.plugin_dir.clone(),
        assignments: args.config.assignments()?,
        mode: args.mode,
        schedules: parse_schedules(&args.schedules)?,
        time_zone: args.time_zone.clone(),
    };
    let plan = lifecycle::plan_install(&host, &request).await?;
    if plan.installation.config.secret_keys().next().is_some() && keyring.is_none() {
        return Err(lifecycle::LifecycleError::NoMasterKey.into());
    }
    outln!(
        "install {}/{}",
        plan.installation.tenant,
        plan.installation.id
    );
    print_plan(&plan);
    test_connection(&host, &plan, &args.host).await?;
    let question = match (plan.egress_added.is_empty(), plan.data_added.is_empty()) {
        (true, true) => "Install it (it may reach no host and no records)?",
        (false, true) => "Install with the egress above?",
        (true, false) => "Install with the record access above (it may reach no host)?",
        (false, false) => "Install with the egress and record access above?",
    };
    confirm(question, args.host.yes)?;
    let row = lifecycle::commit_install(
        store_of(&host),
        keyring.as_deref(),
        &plan,
        Utc::now().timestamp(),
    )
    .await?;
    outln!("installed {} (enabled, {} mode)", row.label(), row.mode);
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this tenant's.
    #[arg(long)]
    tenant: Option<String>,
    /// Include removed installations.
    #[arg(long)]
    all: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

pub async fn list(args: ListArgs) -> anyhow::Result<u8> {
    let store = args.db.open().await?;
    let rows = store
        .installations(args.tenant.as_deref(), args.all)
        .await?;
    if args.json {
        let mut out = Vec::new();
        for row in &rows {
            let schedules = store.schedules(&row.tenant, &row.id).await?;
            out.push(serde_json::json!({ "installation": row, "schedules": schedules }));
        }
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    for row in &rows {
        let state = match (row.removed_at, row.enabled) {
            (Some(t), _) => format!("removed {}", show_time(t)),
            (None, true) => "enabled".into(),
            (None, false) => "disabled".into(),
        };
        outln!(
            "{:<32} {:<28} {:<5} {state}",
            row.label(),
            format!("{}@{}", row.plugin_id, row.plugin_version),
            row.mode
        );
        if row.removed_at.is_none() && row.plugin_store.is_none() {
            outln!(
                "    warning: not pinned (installed before the plugin store): its plugin is read \
                 from {} and only its component is verified; `airlock reauthorise {}` pins it",
                row.plugin_dir,
                row.label()
            );
        }
        for s in store.schedules(&row.tenant, &row.id).await? {
            let next = match s.next_fire_at {
                _ if s.cron == airlock::scheduler::MANUAL => "when asked (airlock run-now)".into(),
                Some(t) => format!("next {}", show_time(t)),
                None => "not planned yet".into(),
            };
            outln!(
                "    {:<16} {:<18} {:<16} {next}",
                s.feed,
                s.cron,
                s.time_zone
            );
        }
    }
    if rows.is_empty() {
        outln!("no installations");
    }
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct RefArgs {
    /// TENANT/INSTALLATION, e.g. acme/custom-store.
    installation: String,
    #[command(flatten)]
    db: DbArgs,
}

pub async fn set_enabled(args: RefArgs, enabled: bool) -> anyhow::Result<u8> {
    let (tenant, id) = parse_reference(&args.installation)?;
    let store = args.db.open().await?;
    let now = Utc::now().timestamp();
    let row = lifecycle::set_enabled(&*store, &tenant, &id, enabled, None, now).await?;
    let state = if enabled { "enabled" } else { "disabled" };
    outln!("{} {state}", row.label());
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct ModeArgs {
    /// TENANT/INSTALLATION.
    installation: String,
    /// test or live.
    #[arg(value_enum)]
    mode: Mode,
    #[command(flatten)]
    db: DbArgs,
}

pub async fn mode(args: ModeArgs) -> anyhow::Result<u8> {
    let (tenant, id) = parse_reference(&args.installation)?;
    let store = args.db.open().await?;
    let now = Utc::now().timestamp();
    let row = lifecycle::set_mode(&*store, &tenant, &id, args.mode, None, now).await?;
    outln!("{} is now in {} mode", row.label(), row.mode);
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct ReauthoriseArgs {
    /// TENANT/INSTALLATION.
    installation: String,
    #[command(flatten)]
    config: ConfigArgs,
    /// Approve egress the new settings add, e.g. the origin of a new
    /// endpoint (it is refused otherwise).
    #[arg(long)]
    approve_egress: bool,
    /// Approve record access the change adds (it is refused otherwise).
    #[arg(long)]
    approve_data: bool,
    /// Authorise the installation's OAuth2 access (a plugin with [oauth])
    /// instead of changing its config: with --redirect-uri, prints the URL
    /// to open (the authorization-code flow, whose callback lands on `serve
    /// --listen`); without, gets a token by client credentials.
    #[arg(long)]
    oauth: bool,
    /// With --oauth: where the authorisation server sends the browser back,
    /// `https://HOST/oauth/callback` on `airlock serve --listen`'s listener
    /// (as registered with the third party), or the name registered for it
    /// where the service wants one (eBay's RuName).
    #[arg(long, value_name = "URI", requires = "oauth")]
    redirect_uri: Option<String>,
    #[command(flatten)]
    host: HostArgs,
}

/// `reauthorise --oauth`: starts the authorization-code flow (prints its
/// URL), or gets a token by client credentials. Prints no token.
async fn reauthorise_oauth(args: ReauthoriseArgs) -> anyhow::Result<u8> {
    if !args.config.assignments()?.is_empty() {
        bail!(
            "--oauth authorises the installation as configured: change its config first with \
             `airlock reauthorise {}` without --oauth",
            args.installation
        );
    }
    let keyring = args.host.key.keyring()?.map(std::sync::Arc::new);
    let host =
        super::open_host_keyed(&args.host.db, &args.host.net, &args.host.cache, keyring).await?;
    let (tenant, id) = parse_reference(&args.installation)?;
    let row = lifecycle::installation_row(store_of(&host), &tenant, &id).await?;
    let (plugin, installation) = lifecycle::load(store_of(&host), host.keyring(), &row).await?;
    match &args.redirect_uri {
        Some(uri) => {
            let start =
                airlock::oauth::flow::start_authorization(&host, &plugin, &installation, uri)
                    .await?;
            outln!(
                "authorise {} by opening this URL (valid until {}):",
                row.label(),
                show_time(start.expires_at)
            );
            outln!("{}", start.url);
            outln!(
                "the authorisation server sends the browser back to {uri}, which `airlock serve --listen` answers"
            );
        }
        None => {
            let set =
                airlock::oauth::flow::client_credentials(&host, &plugin, &installation).await?;
            let expiry = set.expires_at.map_or("no expiry given".to_string(), |at| {
                format!("expires {}", show_time(at))
            });
            outln!(
                "authorised {} by client credentials (access token {expiry})",
                row.label()
            );
        }
    }
    Ok(0)
}

fn print_egress_diff(plan: &Plan) {
    for rule in &plan.egress_added {
        outln!("  + egress   {rule}   (new: needs approval)");
    }
    for rule in &plan.egress_removed {
        outln!("  - egress   {rule}");
    }
    for key in &plan.config_dropped {
        outln!("  - config   {key} (the new version does not declare it)");
    }
    for grant in &plan.data_added {
        outln!("  + records  {grant}   (new: needs approval)");
    }
    for grant in &plan.data_removed {
        outln!("  - records  {grant}");
    }
}

pub async fn reauthorise(args: ReauthoriseArgs) -> anyhow::Result<u8> {
    if args.oauth {
        return reauthorise_oauth(args).await;
    }
    let (host, keyring) = args.host.open().await?;
    let (tenant, id) = parse_reference(&args.installation)?;
    let row = lifecycle::installation_row(store_of(&host), &tenant, &id).await?;
    let assignments = args.config.assignments()?;
    let plan = lifecycle::plan_reauthorise(&host, keyring.as_deref(), &row, &assignments).await?;
    outln!("reauthorise {}", row.label());
    print_plan(&plan);
    print_egress_diff(&plan);
    plan.require_approval(args.approve_egress)?;
    plan.require_data_approval(args.approve_data)?;
    test_connection(&host, &plan, &args.host).await?;
    confirm("Save the new settings?", args.host.yes)?;
    lifecycle::commit_change(
        store_of(&host),
        keyring.as_deref(),
        &row,
        &plan,
        Utc::now().timestamp(),
    )
    .await?;
    outln!("saved {}", row.label());
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct UpgradeArgs {
    /// TENANT/INSTALLATION.
    installation: String,
    /// The new version's plugin directory.
    plugin_dir: PathBuf,
    #[command(flatten)]
    config: ConfigArgs,
    /// Approve egress the new version adds (it is refused otherwise).
    #[arg(long)]
    approve_egress: bool,
    /// Approve record access the new version adds (it is refused
    /// otherwise).
    #[arg(long)]
    approve_data: bool,
    #[command(flatten)]
    host: HostArgs,
}

pub async fn upgrade(args: UpgradeArgs) -> anyhow::Result<u8> {
    let (host, keyring) = args.host.open().await?;
    let (tenant, id) = parse_reference(&args.installation)?;
    let row = lifecycle::installation_row(store_of(&host), &tenant, &id).await?;
    let plan = lifecycle::plan_upgrade(
        &host,
        keyring.as_deref(),
        &row,
        &args.plugin_dir,
        &args.config.assignments()?,
    )
    .await?;
    outln!(
        "upgrade {}: {}@{} -> {}",
        row.label(),
        row.plugin_id,
        row.plugin_version,
        plan.plugin.label()
    );
    print_plan(&plan);
    if plan.egress_added.is_empty() && plan.egress_removed.is_empty() {
        outln!("  egress unchanged");
    }
    print_egress_diff(&plan);
    plan.require_approval(args.approve_egress)?;
    plan.require_data_approval(args.approve_data)?;
    test_connection(&host, &plan, &args.host).await?;
    confirm("Upgrade?", args.host.yes)?;
    let new_row = lifecycle::commit_change(
        store_of(&host),
        keyring.as_deref(),
        &row,
        &plan,
        Utc::now().timestamp(),
    )
    .await?;
    outln!(
        "upgraded {} to {}@{}",
        new_row.label(),
        new_row.plugin_id,
        new_row.plugin_version
    );
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// TENANT/INSTALLATION.
    installation: String,
    /// Confirm without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    db: DbArgs,
}

pub async fn remove(args: RemoveArgs) -> anyhow::Result<u8> {
    let (tenant, id) = parse_reference(&args.installation)?;
    let store = args.db.open().await?;
    let row = lifecycle::installation_row(&*store, &tenant, &id).await?;
    confirm(
        &format!(
            "Remove {}? Its config, secrets, storage and schedules are deleted; run history is \
             kept under its name, which is never reused (a new install needs another name).",
            row.label()
        ),
        args.yes,
    )?;
    lifecycle::remove(&*store, &row, Utc::now().timestamp()).await?;
    outln!("removed {} (run history kept)", row.label());
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct ScheduleArgs {
    /// TENANT/INSTALLATION.
    installation: String,
    /// The feed.
    feed: String,
    /// The cron expression, with seconds (e.g. "0 */15 * * * *"). Without
    /// it, `--time-zone` alone keeps the feed's schedule and changes the zone.
    #[arg(required_unless_present_any = ["default", "time_zone"])]
    cron: Option<String>,
    /// Go back to the manifest's schedule.
    #[arg(long, conflicts_with = "cron")]
    default: bool,
    /// The IANA time zone the installation's schedules are read in (default:
    /// the zone they have).
    #[arg(long, value_name = "ZONE")]
    time_zone: Option<String>,
    #[command(flatten)]
    db: DbArgs,
}

pub async fn schedule(args: ScheduleArgs) -> anyhow::Result<u8> {
    let (tenant, id) = parse_reference(&args.installation)?;
    let store = args.db.open().await?;
    // Only a zone given: the feed keeps its own schedule (its override, if it
    // has one); `--default` drops the override.
    let cron = match (&args.cron, args.default) {
        (Some(cron), _) => Some(cron.clone()),
        (None, true) => None,
        (None, false) => store
            .schedules(&tenant, &id)
            .await?
            .into_iter()
            .find(|s| s.feed == args.feed && s.overridden)
            .map(|s| s.cron),
    };
    let s = lifecycle::set_schedule(
        &*store,
        &tenant,
        &id,
        lifecycle::ScheduleChange {
            feed: &args.feed,
            cron: cron.as_deref(),
            time_zone: args.time_zone.as_deref(),
        },
        None,
        Utc::now().timestamp(),
    )
    .await?;
    let note = if s.overridden {
        ""
    } else {
        " (the manifest's default)"
    };
    outln!("{tenant}/{id} {}: {} {}{note}", s.feed, s.cron, s.time_zone);
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the key (created with mode 0600; never overwritten).
    file: PathBuf,
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<u8> {
    let key = MasterKey::create_file(&args.file)?;
    outln!(
        "wrote master key {} to {} (mode 0600); keep a copy somewhere safe: sealed secrets \
         cannot be opened without it",
        key.id(),
        args.file.display()
    );
    Ok(0)
}

#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// Re-seal every secret sealed with an older master key under the
    /// current one. Give the new key as the master key and the old one with
    /// --previous-key-file; afterwards the old key is no longer needed.
    #[command(
        after_help = "Example:\n  airlock keygen new.key\n  airlock secrets rotate --master-key-file new.key --previous-key-file old.key"
    )]
    Rotate {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        key: KeyArgs,
    },
}

pub async fn secrets(command: SecretsCommand) -> anyhow::Result<u8> {
    match command {
        SecretsCommand::Rotate { db, key } => {
            let keyring = key
                .keyring()?
                .ok_or(lifecycle::LifecycleError::NoMasterKey)?;
            let n = lifecycle::reseal_secrets(&*db.open().await?, &keyring).await?;
            outln!(
                "re-sealed {n} secret(s) under master key {}",
                keyring.current_id()
            );
        }
    }
    Ok(0)
}
