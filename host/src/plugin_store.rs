//! The plugin store: what the reviewer approved is what runs. `install` and
//! `upgrade` copy a plugin's manifest and component into an entry of their
//! own under the data directory, `<data dir>/plugin-store/<digest>/`, named by a
//! sha256 over both files; runs read the entry and re-hash both files, so an
//! edited manifest is refused exactly like an edited component, and the
//! directory the operator typed at install no longer matters.
//!
//! Entries are written whole or not at all (a temporary directory renamed
//! into place) and made read-only. The same plugin installed twice shares one
//! entry. This module knows files and digests, not installations.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::manifest::{MANIFEST_FILE, Manifest, ManifestError, Plugin, sha256_hex};

/// The component's file name inside an entry (whatever the manifest's
/// `[plugin] component` said in the source directory).
pub const COMPONENT_FILE: &str = "plugin.wasm";

/// The store's directory inside the data directory (not `plugins`: a
/// database in a checkout's root would mix entries with the example
/// plugins' sources).
const STORE_DIR: &str = "plugin-store";

/// Why the plugin store failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginStoreError {
    /// A file or directory of the store could not be read or written.
    #[error("plugin store: cannot write or read {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An entry's files no longer hash to its name: someone edited them.
    #[error(
        "the plugin in {path} changed since it was installed (manifest and component pinned \
         as {pinned}, now {found})"
    )]
    Changed {
        /// The entry.
        path: PathBuf,
        /// The digest it was pinned as.
        pinned: String,
        /// The digest of its files now.
        found: String,
    },
    /// The entry's manifest does not parse.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// The digest naming a store entry: sha256 over the manifest's and the
/// component's bytes, each preceded by its length, so no two different
/// pairs of files share one.
pub fn entry_digest(manifest: &[u8], component: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [manifest, component] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hex::encode(hash.finalize())
}

/// The plugin store under one data directory.
#[derive(Debug, Clone)]
pub struct PluginStore {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PluginStoreError + '_ {
    move |source| PluginStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl PluginStore {
    /// The store of data directory `data_dir` (`<data_dir>/plugins`).
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join(STORE_DIR),
        }
    }

    /// Where the entry named `digest` is (whether or not it exists).
    pub fn entry(&self, digest: &str) -> PathBuf {
        self.root.join(digest)
    }

    /// Copies `plugin` into the store (if it is not there already) and
    /// returns its entry's directory and digest.
    pub fn pin(&self, plugin: &Plugin) -> Result<(PathBuf, String), PluginStoreError> {
        let digest = entry_digest(plugin.manifest_text.as_bytes(), &plugin.component);
        let entry = self.entry(&digest);
        if !entry.exists() {
            self.write_entry(plugin, &entry)?;
        }
        load(&entry, &digest)?;
        let entry = std::fs::canonicalize(&entry).map_err(io(&entry))?;
        Ok((entry, digest))
    }

    /// Writes an entry under a temporary name, then renames it into place.
    fn write_entry(&self, plugin: &Plugin, entry: &Path) -> Result<(), PluginStoreError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let unique = format!(
            ".tmp-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let tmp = self.root.join(unique);
        std::fs::create_dir(&tmp).map_err(io(&tmp))?;
        let written = write_read_only(&tmp.join(MANIFEST_FILE), plugin.manifest_text.as_bytes())
            .and_then(|()| write_read_only(&tmp.join(COMPONENT_FILE), &plugin.component));
        let renamed = written.and_then(|()| std::fs::rename(&tmp, entry).map_err(io(entry)));
        if renamed.is_err() {
            // Leave no half-written entry; another process may have won the race.
            let _ = std::fs::remove_dir_all(&tmp);
            if entry.exists() {
                return Ok(());
            }
        }
        renamed
    }
}

/// Writes `bytes` to a new file, flushes it to disk and makes it read-only.
fn write_read_only(path: &Path, bytes: &[u8]) -> Result<(), PluginStoreError> {
    use std::io::Write;
    let mut file = std::fs::File::create_new(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    let mut permissions = file.metadata().map_err(io(path))?.permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(path, permissions).map_err(io(path))
}

/// Loads the plugin in store entry `entry`, refusing it unless its manifest
/// and component still hash to `digest`.
pub fn load(entry: &Path, digest: &str) -> Result<Plugin, PluginStoreError> {
    let manifest_path = entry.join(MANIFEST_FILE);
    let component_path = entry.join(COMPONENT_FILE);
    let manifest_text = std::fs::read(&manifest_path).map_err(io(&manifest_path))?;
    let component = std::fs::read(&component_path).map_err(io(&component_path))?;
    let found = entry_digest(&manifest_text, &component);
    if found != digest {
        return Err(PluginStoreError::Changed {
            path: entry.to_path_buf(),
            pinned: digest.to_string(),
            found,
        });
    }
    // The digest covers these bytes, so they are the UTF-8 text pinned.
    let manifest_text = String::from_utf8_lossy(&manifest_text).into_owned();
    let manifest = Manifest::parse(&manifest_text, &manifest_path)?;
    Ok(Plugin {
        manifest,
        manifest_text,
        dir: entry.to_path_buf(),
        component_path,
        digest: sha256_hex(&component),
        component: component.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_separates_manifest_from_component() {
        assert_ne!(entry_digest(b"ab", b"c"), entry_digest(b"a", b"bc"));
        assert_eq!(entry_digest(b"a", b"b"), entry_digest(b"a", b"b"));
    }
}
