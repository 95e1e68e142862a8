//! What the reviewer approved is what runs: a plugin's component validated
//! before it is installed, the plugin pinned in the plugin store, and a
//! stored installation's plugin and egress rules read back as approved.

use std::path::{Path, PathBuf};

use super::LifecycleError;
use crate::airlock::{Airlock, HostError};
use crate::config::ConfigValues;
use crate::egress::{ApprovedRule, Grants};
use crate::manifest::Plugin;
use crate::plugin_store::{self, PluginStore, PluginStoreError};
use crate::storage::{InstallationRow, Registry};

/// Checks that `plugin`'s component is a component and compiles it (which
/// also fills the compile cache), so a bad file is refused at install even
/// when its check() is skipped; a plugin that declares webhooks must export
/// their handler.
pub(super) fn validate_component(host: &Airlock, plugin: &Plugin) -> Result<(), LifecycleError> {
    if let Some(detail) = crate::runtime::not_a_component(&plugin.component) {
        return Err(LifecycleError::NotAComponent {
            path: plugin.component_path.display().to_string(),
            detail: detail.to_string(),
        });
    }
    // Compiling takes seconds for a big component: off the async workers
    // (the admin API calls this from a request).
    let loaded = crate::blocking::in_place(|| host.load(plugin))?;
    if !plugin.manifest.webhooks.is_empty() && !loaded.handles_webhooks() {
        return Err(LifecycleError::NoWebhookHandler {
            path: plugin.component_path.display().to_string(),
        });
    }
    Ok(())
}

/// Pins the plan's plugin in the plugin store of `store`'s data directory.
pub(super) fn pin(
    store: &dyn Registry,
    plugin: &Plugin,
) -> Result<(String, String), LifecycleError> {
    let data_dir = store.data_dir().ok_or(LifecycleError::NoDataDir)?;
    let (entry, digest) = PluginStore::in_data_dir(data_dir).pin(plugin)?;
    Ok((entry.display().to_string(), digest))
}

/// The plugin a stored installation runs: its entry in the plugin store of
/// `store`'s data directory (or, if the data directory moved without it,
/// where it was pinned), refused if its manifest or component changed since
/// it was pinned. An installation made before the plugin store reads the
/// directory it was installed from (only its component was pinned then);
/// its next upgrade or reauthorise pins it.
pub fn installed_plugin(
    store: &dyn Registry,
    row: &InstallationRow,
) -> Result<Plugin, LifecycleError> {
    let changed = |found: String| LifecycleError::DigestChanged {
        label: row.label(),
        installed: row
            .plugin_store
            .clone()
            .unwrap_or(row.plugin_digest.clone()),
        found,
    };
    let plugin = match &row.plugin_store {
        Some(digest) => match plugin_store::load(&pinned_entry(store, row, digest), digest) {
            Err(PluginStoreError::Changed { found, .. }) => return Err(changed(found)),
            other => other?,
        },
        None => Plugin::load(Path::new(&row.plugin_dir))?,
    };
    if plugin.digest != row.plugin_digest {
        return Err(changed(plugin.digest));
    }
    Ok(plugin)
}

/// The entry of a pinned installation: in the store of the data directory
/// if it is there (the database and its store may have moved together),
/// else the directory recorded at pinning.
fn pinned_entry(store: &dyn Registry, row: &InstallationRow, digest: &str) -> PathBuf {
    store
        .data_dir()
        .map(|dir| PluginStore::in_data_dir(dir).entry(digest))
        .filter(|entry| entry.is_dir())
        .unwrap_or_else(|| PathBuf::from(&row.plugin_dir))
}

/// The egress rules approved for a stored installation of `plugin` with
/// `config`: the stored rules, or for an installation approved before
/// rules were stored, the rules its manifest and config ask for whose text
/// the operator approved (never more).
pub fn approved_rules(
    row: &InstallationRow,
    plugin: &Plugin,
    config: &ConfigValues,
) -> Result<Vec<ApprovedRule>, LifecycleError> {
    if let Some(rules) = &row.approved_rules {
        return Ok(rules.clone());
    }
    let requested = Grants::requested(&plugin.manifest, config)
        .map_err(|e| LifecycleError::Host(HostError::Policy(e)))?;
    Ok(requested
        .iter()
        .filter(|rule| row.approved_egress.contains(&rule.to_string()))
        .map(ApprovedRule::from_rule)
        .collect())
}
