//! Plugins given as bytes (the admin API's upload) rather than as a
//! directory: checked as an install checks them, then kept in the plugin
//! store, where installs and upgrades name them by digest.

use std::path::{Component, Path};

use super::{LifecycleError, validate_component};
use crate::Airlock;
use crate::manifest::{MANIFEST_FILE, Manifest, Plugin};
use crate::plugin_store::{self, PluginStore};

/// A plugin in the plugin store.
#[derive(Debug, Clone)]
pub struct StoredPlugin {
    /// Its entry's digest (of manifest and component), which names it.
    pub digest: String,
    /// The plugin.
    pub plugin: Plugin,
}

/// Checks `manifest_text` and `component` as an install would (a valid
/// manifest, a component that compiles and exports what the manifest
/// needs), and keeps them in the plugin store of `host`'s data directory.
pub async fn store_plugin(
    host: &Airlock,
    manifest_text: &str,
    component: &[u8],
) -> Result<StoredPlugin, LifecycleError> {
    let data_dir = host
        .store()
        .data_dir()
        .ok_or(LifecycleError::NoDataDir)?
        .to_path_buf();
    let manifest = Manifest::parse(manifest_text, Path::new(MANIFEST_FILE))?;
    let name = Path::new(&manifest.plugin.component);
    let plain = matches!(
        name.components().collect::<Vec<_>>()[..],
        [Component::Normal(_)]
    );
    if !plain {
        return Err(LifecycleError::NotAComponent {
            path: manifest.plugin.component.clone(),
            detail: ": an uploaded manifest names its component by a plain file name".into(),
        });
    }
    // Written next to the store (same file system), loaded as a directory
    // is, then pinned; the scratch directory goes when dropped.
    let scratch = tempfile::Builder::new()
        .prefix(".upload-")
        .tempdir_in(&data_dir)
        .map_err(|e| {
            LifecycleError::PluginStore(plugin_store::PluginStoreError::Io {
                path: data_dir.clone(),
                source: e,
            })
        })?;
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|source| {
            LifecycleError::PluginStore(plugin_store::PluginStoreError::Io {
                path: path.to_path_buf(),
                source,
            })
        })
    };
    write(
        &scratch.path().join(MANIFEST_FILE),
        manifest_text.as_bytes(),
    )?;
    write(&scratch.path().join(name), component)?;
    let plugin = Plugin::load(scratch.path())?;
    validate_component(host, &plugin)?;
    let (entry, digest) = PluginStore::in_data_dir(&data_dir).pin(&plugin)?;
    let plugin = plugin_store::load(&entry, &digest)?;
    Ok(StoredPlugin { digest, plugin })
}

/// The plugin stored under `digest` in `host`'s plugin store.
pub fn stored_plugin(host: &Airlock, digest: &str) -> Result<StoredPlugin, LifecycleError> {
    let data_dir = host.store().data_dir().ok_or(LifecycleError::NoDataDir)?;
    let store = PluginStore::in_data_dir(data_dir);
    let valid = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
    let entry = store.entry(digest);
    if !valid || !entry.is_dir() {
        return Err(LifecycleError::NoPlugin(digest.chars().take(80).collect()));
    }
    let plugin = plugin_store::load(&entry, digest)?;
    Ok(StoredPlugin {
        digest: digest.to_string(),
        plugin,
    })
}

/// Every plugin in `host`'s plugin store (uploaded or pinned by an
/// install), by id then version; entries that no longer verify are left
/// out.
pub fn stored_plugins(host: &Airlock) -> Result<Vec<StoredPlugin>, LifecycleError> {
    let Some(data_dir) = host.store().data_dir() else {
        return Ok(Vec::new());
    };
    let store = PluginStore::in_data_dir(data_dir);
    let mut found = Vec::new();
    for digest in store.digests()? {
        if let Ok(stored) = stored_plugin(host, &digest) {
            found.push(stored);
        }
    }
    found.sort_by(|a, b| {
        let key = |s: &StoredPlugin| {
            (
                s.plugin.manifest.plugin.id.clone(),
                s.plugin.manifest.plugin.version.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(found)
}
