//! Operating connectors per tenant: install (config checked against the
//! manifest, egress shown, "Test connection"), enable, disable, test or live
//! mode, reauthorise, upgrade and remove. The CLI calls these functions; an
//! HTTP API would call the same ones. They reach the store only through
//! [`Registry`] (any backend's), and those that do are async.
//!
//! Changes that need the operator's eye come in two steps: `plan_*` works out
//! and validates everything without writing (so the caller can show the
//! egress granted, run `check()` and ask for confirmation), then `commit_*`
//! stores it in one transaction. Secrets are sealed with the [`Keyring`]
//! before they reach the store.
//!
//! What the reviewer approved is what runs: a commit pins the plugin's
//! manifest and component in the [`crate::plugin_store`] and stores the egress rules
//! the plan showed; [`load`] re-hashes the pinned files and hands runs the
//! stored rules. Every commit is a compare-and-set on the installation's
//! revision: a change planned against a revision that is no longer current
//! (another change landed while the operator looked at a prompt) is refused
//! and nothing is saved.

mod pinned;
mod settings;

use std::collections::BTreeSet;
use std::path::Path;

pub use pinned::{approved_rules, installed_plugin};
use pinned::{pin, validate_component};
mod run_now;
mod upload;
pub use run_now::{QueuedRunNow, run_now};
pub use settings::{
    ScheduleChange, check_revision, remove, reseal_secrets, set_enabled, set_mode, set_schedule,
};
pub use upload::{StoredPlugin, store_plugin, stored_plugin, stored_plugins};

use crate::airlock::{Airlock, HostError, Installation};
use crate::config::{ConfigError, ConfigValues};
use crate::egress::{ApprovedRule, Grants};
use crate::manifest::{DataSection, ManifestError, Plugin, is_slug};
use crate::plugin_store::PluginStoreError;
use crate::runs::Mode;
use crate::scheduler::{CronSchedule, ScheduleError};
use crate::secrets::{Keyring, SecretError, SecretSlot};
use crate::storage::{InstallationRow, Registry, ScheduleRow, StorageError, StoredSecret};

/// Why a lifecycle operation failed. Messages name what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// A tenant or installation id that is not a slug.
    #[error("`{0}` is not a valid id: use 1-64 lower-case letters, digits, `-` and `_`")]
    BadId(String),
    /// `TENANT/INSTALLATION` expected.
    #[error(
        "`{0}` does not name an installation: write TENANT/INSTALLATION, e.g. acme/custom-store"
    )]
    BadReference(String),
    /// The tenant does not exist.
    #[error("no tenant `{0}` (add it with `airlock tenant add {0}`)")]
    NoTenant(String),
    /// The installation does not exist or was removed.
    #[error("no installation `{0}`")]
    NoInstallation(String),
    /// The plugin could not be loaded.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The config does not fit the manifest.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A schedule or time zone is invalid.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// A schedule names a feed the plugin does not have.
    #[error("plugin {plugin} has no feed `{feed}`")]
    UnknownFeed {
        /// The plugin.
        plugin: String,
        /// The feed named.
        feed: String,
    },
    /// Secrets are involved but no master key was given.
    #[error(
        "this installation has secrets, and no master key was given: create one with \
         `airlock keygen FILE` and pass --master-key-file FILE (or set AIRLOCK_MASTER_KEY_FILE)"
    )]
    NoMasterKey,
    /// A secret could not be sealed or opened.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The plugin (its manifest or component) changed on disk since it was
    /// installed.
    #[error(
        "the plugin of {label} changed on disk since it was installed (installed sha256 \
         {installed}, now {found}): its manifest or component was edited; install the new \
         build with `airlock upgrade`"
    )]
    DigestChanged {
        /// The installation.
        label: String,
        /// The digest recorded at install.
        installed: String,
        /// The digest of the files now.
        found: String,
    },
    /// An upgrade to a plugin with another id: a different connector, not
    /// another version of the installed one.
    #[error(
        "{label} is an installation of `{installed}`; {path} holds `{offered}`: an upgrade \
         installs another version of the same plugin (install the other one under its own name)"
    )]
    AnotherPlugin {
        /// The installation.
        label: String,
        /// The plugin id installed.
        installed: String,
        /// The plugin id offered.
        offered: String,
        /// Where the offered plugin is.
        path: String,
    },
    /// The plugin's component is not a WebAssembly component.
    #[error("{path} is not a WebAssembly component{detail}")]
    NotAComponent {
        /// The component file.
        path: String,
        /// What it is instead, when known.
        detail: String,
    },
    /// The manifest declares webhooks the component cannot handle.
    #[error(
        "{path} declares [[webhooks]] but does not export `webhook-handler`: build it for the \
         `webhook-connector` world"
    )]
    NoWebhookHandler {
        /// The component file.
        path: String,
    },
    /// The plugin store failed.
    #[error(transparent)]
    PluginStore(#[from] PluginStoreError),
    /// An in-memory database has no data directory for the plugin store.
    #[error("installing needs a database file: its directory holds the plugin store")]
    NoDataDir,
    /// The change grants egress the operator did not approve.
    #[error(
        "this change widens egress ({added}); re-run with --approve-egress to approve it\n\
         nothing was changed"
    )]
    EgressWidened {
        /// The rules added, comma-separated.
        added: String,
    },
    /// The change grants record access the operator did not approve.
    #[error(
        "this change widens access to the tenant's records ({added}); re-run with \
         --approve-data to approve it\nnothing was changed"
    )]
    DataWidened {
        /// The grants added (`read orders`), comma-separated.
        added: String,
    },
    /// No plugin with this digest in the plugin store.
    #[error("no plugin `{0}` in the plugin store (upload it first)")]
    NoPlugin(String),
    /// The installation is switched off.
    #[error("{0} is disabled: nothing of it runs (enable it first)")]
    Disabled(String),
    /// The change was made against a revision of the installation that is
    /// no longer current: someone changed it meanwhile.
    #[error(
        "{label} changed since it was read (revision {expected}, now {current}): read it \
         again and redo the change"
    )]
    StaleRevision {
        /// The installation.
        label: String,
        /// The revision the change was made against.
        expected: i64,
        /// The revision it has now.
        current: i64,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The host failed.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// Splits `TENANT/INSTALLATION`.
pub fn parse_reference(text: &str) -> Result<(String, String), LifecycleError> {
    match text.split_once('/') {
        Some((t, i)) if is_slug(t) && is_slug(i) => Ok((t.to_string(), i.to_string())),
        _ => Err(LifecycleError::BadReference(text.to_string())),
    }
}

/// Checks a tenant or installation id.
pub fn check_id(id: &str) -> Result<(), LifecycleError> {
    if is_slug(id) {
        Ok(())
    } else {
        Err(LifecycleError::BadId(id.to_string()))
    }
}

/// What an operator asks to install.
#[derive(Debug, Clone)]
pub struct InstallRequest {
    /// The tenant.
    pub tenant: String,
    /// The installation id; default the plugin id.
    pub id: Option<String>,
    /// The plugin directory.
    pub plugin_dir: std::path::PathBuf,
    /// Config `KEY=VALUE` assignments, secrets included.
    pub assignments: Vec<String>,
    /// The initial mode (new installations start in test, as operators expect).
    pub mode: Mode,
    /// Schedule overrides, `(feed, cron)`.
    pub schedules: Vec<(String, String)>,
    /// The IANA time zone the schedules are read in.
    pub time_zone: String,
}

/// A validated change to an installation, not yet stored.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The plugin (version) it will run.
    pub plugin: Plugin,
    /// The installation as runs will see it.
    pub installation: Installation,
    /// What it will be allowed to reach.
    pub grants: Grants,
    /// Its feed schedules.
    pub schedules: Vec<ScheduleRow>,
    /// Egress rules granted now that were not approved before (all of them
    /// for a new installation): widening that needs the operator's approval.
    pub egress_added: Vec<String>,
    /// Egress rules approved before that are no longer granted.
    pub egress_removed: Vec<String>,
    /// Config keys the new version no longer declares (dropped on upgrade).
    pub config_dropped: Vec<String>,
    /// Record grants (`read orders`, `write stock`) not approved before
    /// (all of them for a new installation): widening that needs the
    /// operator's approval.
    pub data_added: Vec<String>,
    /// Record grants approved before that are no longer asked for.
    pub data_removed: Vec<String>,
}

impl Plan {
    /// The granted rules as text, as stored for later diffs.
    pub fn egress_text(&self) -> Vec<String> {
        egress_text(&self.grants)
    }

    /// Refuses a plan that widens egress unless the operator explicitly
    /// approved it (`--approve-egress`): the same rule for an upgrade and a
    /// reauthorise with a new config-derived origin.
    pub fn require_approval(&self, approved: bool) -> Result<(), LifecycleError> {
        if self.egress_added.is_empty() || approved {
            return Ok(());
        }
        Err(LifecycleError::EgressWidened {
            added: self.egress_added.join(", "),
        })
    }

    /// Refuses a plan that widens access to the tenant's records unless the
    /// operator explicitly approved it (`--approve-data`).
    pub fn require_data_approval(&self, approved: bool) -> Result<(), LifecycleError> {
        if self.data_added.is_empty() || approved {
            return Ok(());
        }
        Err(LifecycleError::DataWidened {
            added: self.data_added.join(", "),
        })
    }
}

/// Record grants as the operator reads them: `read orders`, `write stock`.
pub fn data_text(data: &DataSection) -> Vec<String> {
    let reads = data.reads.iter().map(|c| format!("read {c}"));
    reads
        .chain(data.writes.iter().map(|c| format!("write {c}")))
        .collect()
}

fn egress_text(grants: &Grants) -> Vec<String> {
    grants.granted.iter().map(|g| g.rule.to_string()).collect()
}

fn diff(before: &[String], after: &[String]) -> (Vec<String>, Vec<String>) {
    let b: BTreeSet<&String> = before.iter().collect();
    let a: BTreeSet<&String> = after.iter().collect();
    (
        a.difference(&b).map(|s| s.to_string()).collect(),
        b.difference(&a).map(|s| s.to_string()).collect(),
    )
}

/// The schedules of `plugin` for an installation: the manifest's defaults,
/// with `overrides` (feed, cron) and earlier overrides kept, in `time_zone`.
fn schedules_for(
    plugin: &Plugin,
    tenant: &str,
    id: &str,
    overrides: &[(String, String)],
    time_zone: &str,
) -> Result<Vec<ScheduleRow>, LifecycleError> {
    for (feed, _) in overrides {
        if plugin.manifest.feed(feed).is_none() {
            return Err(LifecycleError::UnknownFeed {
                plugin: plugin.label(),
                feed: feed.clone(),
            });
        }
    }
    plugin
        .manifest
        .feeds
        .iter()
        .map(|feed| {
            let custom = overrides.iter().rev().find(|(f, _)| *f == feed.name);
            let cron = custom.map_or(feed.schedule.as_str(), |(_, c)| c.as_str());
            CronSchedule::parse(cron, time_zone)?;
            Ok(ScheduleRow {
                tenant: tenant.to_string(),
                installation: id.to_string(),
                feed: feed.name.clone(),
                cron: cron.to_string(),
                time_zone: time_zone.to_string(),
                overridden: custom.is_some(),
                next_fire_at: None,
                due_at: None,
            })
        })
        .collect()
}

/// The registry of `host`'s store.
fn registry(host: &Airlock) -> &dyn Registry {
    &**host.store()
}

/// Validates an install without storing anything: the tenant exists, the
/// plugin loads, the config fits its schema, the schedules parse.
pub async fn plan_install(
    host: &Airlock,
    request: &InstallRequest,
) -> Result<Plan, LifecycleError> {
    check_id(&request.tenant)?;
    if !registry(host).tenant_exists(&request.tenant).await? {
        return Err(LifecycleError::NoTenant(request.tenant.clone()));
    }
    let plugin = Plugin::load(&request.plugin_dir)?;
    plan_install_of(host, request, plugin).await
}

/// [`plan_install`] of a plugin already loaded (an entry of the plugin
/// store, verified against its digest); `request.plugin_dir` is not read.
pub async fn plan_install_of(
    host: &Airlock,
    request: &InstallRequest,
    plugin: Plugin,
) -> Result<Plan, LifecycleError> {
    check_id(&request.tenant)?;
    if !registry(host).tenant_exists(&request.tenant).await? {
        return Err(LifecycleError::NoTenant(request.tenant.clone()));
    }
    validate_component(host, &plugin)?;
    let id = request
        .id
        .clone()
        .unwrap_or_else(|| plugin.manifest.plugin.id.clone());
    check_id(&id)?;
    let config = ConfigValues::from_assignments(&plugin.manifest, &request.assignments)?;
    let schedules = schedules_for(
        &plugin,
        &request.tenant,
        &id,
        &request.schedules,
        &request.time_zone,
    )?;
    let mut installation = Installation {
        tenant: request.tenant.clone(),
        id,
        config,
        mode: request.mode,
        rate_limits: Default::default(),
        approved_egress: None,
        approved_data: Some(plugin.manifest.data.clone()),
    };
    let grants = host.grants(&plugin, &installation)?;
    installation.approved_egress = Some(grants.approved());
    let egress_added = egress_text(&grants);
    let data_added = data_text(&plugin.manifest.data);
    Ok(Plan {
        plugin,
        installation,
        grants,
        schedules,
        egress_added,
        egress_removed: Vec::new(),
        config_dropped: Vec::new(),
        data_added,
        data_removed: Vec::new(),
    })
}

fn seal_all(
    keyring: Option<&Keyring>,
    installation: &Installation,
) -> Result<Vec<StoredSecret>, LifecycleError> {
    let keys: Vec<&str> = installation.config.secret_keys().collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let keyring = keyring.ok_or(LifecycleError::NoMasterKey)?;
    Ok(keys
        .into_iter()
        .map(|key| {
            let value = installation.config.secret(key).unwrap_or_default();
            let slot = SecretSlot {
                tenant: &installation.tenant,
                installation: &installation.id,
                key,
            };
            StoredSecret {
                key: key.to_string(),
                sealed: keyring.seal(slot, value),
            }
        })
        .collect())
}

/// The row that stores `plan`, pinned at `pinned` (entry directory and
/// digest), planned against `revision`.
fn row_for(
    plan: &Plan,
    pinned: (String, String),
    enabled: bool,
    (created_at, now): (i64, i64),
    revision: i64,
) -> InstallationRow {
    let manifest = &plan.plugin.manifest;
    InstallationRow {
        tenant: plan.installation.tenant.clone(),
        id: plan.installation.id.clone(),
        plugin_id: manifest.plugin.id.clone(),
        plugin_version: manifest.plugin.version.clone(),
        plugin_dir: pinned.0,
        plugin_digest: plan.plugin.digest.clone(),
        plugin_store: Some(pinned.1),
        config: plan.installation.config.plain().clone(),
        approved_egress: plan.egress_text(),
        approved_rules: Some(plan.grants.approved()),
        approved_data: plan.installation.approved_data.clone(),
        mode: plan.installation.mode.as_str().to_string(),
        enabled,
        created_at,
        updated_at: now,
        removed_at: None,
        revision,
    }
}

/// Stores a planned install: the plugin pinned in the plugin store, the
/// egress rules shown stored, enabled (as operators expect of a new
/// integration), secrets sealed.
pub async fn commit_install(
    store: &dyn Registry,
    keyring: Option<&Keyring>,
    plan: &Plan,
    now: i64,
) -> Result<InstallationRow, LifecycleError> {
    let secrets = seal_all(keyring, &plan.installation)?;
    let row = row_for(plan, pin(store, &plan.plugin)?, true, (now, now), 0);
    store
        .insert_installation(row.clone(), secrets, plan.schedules.clone())
        .await?;
    Ok(row)
}

/// The stored installation `tenant/id` (not removed).
pub async fn installation_row(
    store: &dyn Registry,
    tenant: &str,
    id: &str,
) -> Result<InstallationRow, LifecycleError> {
    match store.installation(tenant, id).await? {
        Some(row) if row.removed_at.is_none() => Ok(row),
        _ => Err(LifecycleError::NoInstallation(format!("{tenant}/{id}"))),
    }
}

/// The config of a stored installation (secrets opened), as `KEY=VALUE`
/// assignments.
async fn stored_assignments(
    store: &dyn Registry,
    keyring: Option<&Keyring>,
    row: &InstallationRow,
) -> Result<Vec<(String, String)>, LifecycleError> {
    let mut out: Vec<(String, String)> = row
        .config
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let secrets = store.secrets(&row.tenant, &row.id).await?;
    if !secrets.is_empty() {
        let keyring = keyring.ok_or(LifecycleError::NoMasterKey)?;
        for s in secrets {
            let slot = SecretSlot {
                tenant: &row.tenant,
                installation: &row.id,
                key: &s.key,
            };
            out.push((s.key.clone(), keyring.open(slot, &s.sealed)?));
        }
    }
    Ok(out)
}

/// The mode of a stored installation (anything but `live` is test).
pub fn stored_mode(row: &InstallationRow) -> Mode {
    if row.mode == Mode::Live.as_str() {
        Mode::Live
    } else {
        Mode::Test
    }
}

/// The installation a stored row describes, with `config`, the egress
/// rules approved for it (none while a change is being planned) and the
/// record grants approved (none stored: none granted).
fn runnable(
    row: &InstallationRow,
    config: ConfigValues,
    approved_egress: Option<Vec<ApprovedRule>>,
) -> Installation {
    Installation {
        tenant: row.tenant.clone(),
        id: row.id.clone(),
        config,
        mode: stored_mode(row),
        rate_limits: Default::default(),
        approved_egress,
        approved_data: Some(row.approved_data.clone().unwrap_or_default()),
    }
}

/// Loads a stored installation ready to run: its pinned plugin (refused if
/// its manifest or component changed since install), its config with
/// secrets opened, and the egress rules the operator approved.
pub async fn load(
    store: &dyn Registry,
    keyring: Option<&Keyring>,
    row: &InstallationRow,
) -> Result<(Plugin, Installation), LifecycleError> {
    let plugin = installed_plugin(store, row)?;
    let pairs = stored_assignments(store, keyring, row).await?;
    let config = ConfigValues::resolve(
        &plugin.manifest,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    let approved = approved_rules(row, &plugin, &config)?;
    let installation = runnable(row, config, Some(approved));
    Ok((plugin, installation))
}

/// The direction of `feed` in the installed plugin's manifest (as pinned);
/// None if the manifest cannot be read or has no such feed.
pub fn feed_direction(row: &InstallationRow, feed: &str) -> Option<crate::manifest::Direction> {
    let path = Path::new(&row.plugin_dir).join(crate::manifest::MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    let manifest = crate::manifest::Manifest::parse(&text, &path).ok()?;
    manifest.feed(feed).map(|f| f.direction)
}

/// Plans new credentials or settings for an installation ("Reauthorise"):
/// the stored config with `assignments` applied on top, re-validated.
pub async fn plan_reauthorise(
    host: &Airlock,
    keyring: Option<&Keyring>,
    row: &InstallationRow,
    assignments: &[String],
) -> Result<Plan, LifecycleError> {
    let plugin = installed_plugin(registry(host), row)?;
    plan_change(host, keyring, row, plugin, assignments).await
}

/// Plans moving an installation to another version of its plugin: config
/// carried over (keys the new version dropped are reported), schedule
/// overrides kept, and the egress diff against what was approved.
pub async fn plan_upgrade(
    host: &Airlock,
    keyring: Option<&Keyring>,
    row: &InstallationRow,
    plugin_dir: &Path,
    assignments: &[String],
) -> Result<Plan, LifecycleError> {
    let plugin = Plugin::load(plugin_dir)?;
    if plugin.manifest.plugin.id != row.plugin_id {
        return Err(LifecycleError::AnotherPlugin {
            label: row.label(),
            installed: row.plugin_id.clone(),
            offered: plugin.manifest.plugin.id.clone(),
            path: plugin_dir.display().to_string(),
        });
    }
    validate_component(host, &plugin)?;
    plan_change(host, keyring, row, plugin, assignments).await
}

async fn plan_change(
    host: &Airlock,
    keyring: Option<&Keyring>,
    row: &InstallationRow,
    plugin: Plugin,
    assignments: &[String],
) -> Result<Plan, LifecycleError> {
    let mut pairs = stored_assignments(registry(host), keyring, row).await?;
    let config_dropped: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| !plugin.manifest.config.contains_key(k))
        .map(|(k, _)| k.clone())
        .collect();
    pairs.retain(|(k, _)| plugin.manifest.config.contains_key(k));
    let mut merged: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    merged.extend(assignments.iter().cloned());
    let config = ConfigValues::from_assignments(&plugin.manifest, &merged)?;
    let stored = registry(host).schedules(&row.tenant, &row.id).await?;
    let overrides: Vec<(String, String)> = stored
        .iter()
        .filter(|s| s.overridden && plugin.manifest.feed(&s.feed).is_some())
        .map(|s| (s.feed.clone(), s.cron.clone()))
        .collect();
    let time_zone = stored
        .first()
        .map_or("UTC".to_string(), |s| s.time_zone.clone());
    let schedules = schedules_for(&plugin, &row.tenant, &row.id, &overrides, &time_zone)?;
    let mut installation = runnable(row, config, None);
    let grants = host.grants(&plugin, &installation)?;
    installation.approved_egress = Some(grants.approved());
    let (egress_added, egress_removed) = diff(&row.approved_egress, &egress_text(&grants));
    let approved_data = row.approved_data.clone().unwrap_or_default();
    let (data_added, data_removed) = diff(
        &data_text(&approved_data),
        &data_text(&plugin.manifest.data),
    );
    installation.approved_data = Some(plugin.manifest.data.clone());
    Ok(Plan {
        plugin,
        installation,
        grants,
        schedules,
        egress_added,
        egress_removed,
        config_dropped,
        data_added,
        data_removed,
    })
}

/// Stores a planned reauthorise or upgrade: plugin pinned, config, secrets,
/// egress rules and schedules replaced in one transaction, if `row` (the
/// installation as the plan read it) is still current. Schedules of feeds
/// whose expression did not change keep their plan.
pub async fn commit_change(
    store: &dyn Registry,
    keyring: Option<&Keyring>,
    row: &InstallationRow,
    plan: &Plan,
    now: i64,
) -> Result<InstallationRow, LifecycleError> {
    let secrets = seal_all(keyring, &plan.installation)?;
    let stored = store.schedules(&row.tenant, &row.id).await?;
    let schedules: Vec<ScheduleRow> = plan
        .schedules
        .iter()
        .map(|s| match stored.iter().find(|o| o.feed == s.feed) {
            Some(o) if o.cron == s.cron && o.time_zone == s.time_zone => o.clone(),
            _ => s.clone(),
        })
        .collect();
    let pinned = pin(store, &plan.plugin)?;
    let mut new_row = row_for(
        plan,
        pinned,
        row.enabled,
        (row.created_at, now),
        row.revision,
    );
    new_row.revision = store
        .update_installation(new_row.clone(), Some(secrets), Some(schedules))
        .await?;
    Ok(new_row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scheduler runs `load` in tasks of its own and an HTTP API would
    /// run the rest in its handlers: their futures are `Send`. It only has
    /// to compile.
    #[allow(dead_code)]
    fn lifecycle_futures_are_send(
        host: &Airlock,
        store: &dyn Registry,
        request: &InstallRequest,
        row: &InstallationRow,
        plan: &Plan,
    ) {
        fn send<F: std::future::Future + Send>(_: F) {}
        send(plan_install(host, request));
        send(commit_install(store, None, plan, 0));
        send(load(store, None, row));
        send(plan_reauthorise(host, None, row, &[]));
        send(commit_change(store, None, row, plan, 0));
        send(set_enabled(store, "t", "i", true, None, 0));
        send(set_schedule(
            store,
            "t",
            "i",
            settings::ScheduleChange {
                feed: "f",
                cron: None,
                time_zone: None,
            },
            None,
            0,
        ));
        send(remove(store, row, 0));
    }
}
