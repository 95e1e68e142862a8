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
use std::time::Duration;

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

    /// The digests of the entries in the store (none if it was never
    /// written).
    pub fn digests(&self) -> Result<Vec<String>, PluginStoreError> {
        let read = match std::fs::read_dir(&self.root) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.root)(e)),
        };
        let mut digests = Vec::new();
        for entry in read {
            let entry = entry.map_err(io(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Not a temporary directory of a write or upload in progress.
            let digest = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if digest && entry.path().is_dir() {
                digests.push(name);
            }
        }
        digests.sort();
        Ok(digests)
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

    /// The entries in the store, by plugin id then version: each one's
    /// digest and manifest (read, not verified: [`load`] verifies an entry
    /// before it is installed). An entry whose manifest cannot be read is
    /// left out. What the web console's "Add an integration" offers.
    pub fn list(&self) -> Result<Vec<(String, Manifest)>, PluginStoreError> {
        let mut out = Vec::new();
        for digest in self.digests()? {
            let path = self.entry(&digest).join(MANIFEST_FILE);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if let Ok(manifest) = Manifest::parse(&text, &path) {
                out.push((digest, manifest));
            }
        }
        out.sort_by(|(_, a), (_, b)| {
            (&a.plugin.id, &a.plugin.version).cmp(&(&b.plugin.id, &b.plugin.version))
        });
        Ok(out)
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
///
/// Hashing and parsing on every run was a fifth of the scheduler's time, so
/// a plugin verified once is kept in memory with the
/// identity of its two files, and returned again while both files still
/// have that identity. Any write to a file changes its `ctime`, which no
/// unprivileged process can set back, so a file that still has the identity
/// it had when it was hashed still has those bytes.
pub fn load(entry: &Path, digest: &str) -> Result<Plugin, PluginStoreError> {
    load_cached(entry, digest, verified::SETTLED)
}

/// [`load`], trusting file times once they are `settled` old.
fn load_cached(entry: &Path, digest: &str, settled: Duration) -> Result<Plugin, PluginStoreError> {
    let identity = verified::identity(entry, settled);
    if let Some(plugin) = identity
        .as_ref()
        .and_then(|id| verified::get(entry, digest, id))
    {
        return Ok(plugin);
    }
    // Reading and hashing is blocking work (a JavaScript component is
    // megabytes): off the async worker if called from one.
    let plugin = crate::blocking::in_place(|| load_and_verify(entry, digest))?;
    if let Some(id) = identity {
        verified::put(entry, digest, id, &plugin);
    }
    Ok(plugin)
}

/// [`load`] without the in-memory cache: reads, hashes and parses.
fn load_and_verify(entry: &Path, digest: &str) -> Result<Plugin, PluginStoreError> {
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

/// Plugins already verified against their digest, with the identity of the
/// files they were read from. Process-wide and small: entries are shared by
/// every installation of a plugin, and there are few plugins.
mod verified {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, MutexGuard};
    use std::time::{Duration, SystemTime};

    use super::{COMPONENT_FILE, MANIFEST_FILE, Plugin};

    /// More plugins than this, and the cache starts again empty.
    const CAPACITY: usize = 256;

    /// A file whose status changed less than this long ago is not cached:
    /// a write in the same clock tick as the hash could leave `ctime` as it
    /// was ("racy" timestamps, as git calls them).
    pub(super) const SETTLED: Duration = Duration::from_secs(2);

    /// Device, inode, size, modification and status-change times (ns) of
    /// the manifest, then the component.
    pub(super) type Identity = [(u64, u64, u64, i128, i128); 2];

    type Entries = HashMap<(PathBuf, String), (Identity, Plugin)>;

    static VERIFIED: Mutex<Option<Entries>> = Mutex::new(None);

    fn entries() -> MutexGuard<'static, Option<Entries>> {
        VERIFIED.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The identity of `entry`'s two files; `None` if either cannot be
    /// read, changed too recently to trust its times, or this platform
    /// has no inode times (then every load hashes).
    pub(super) fn identity(entry: &Path, settled: Duration) -> Option<Identity> {
        let one = |name: &str| file_identity(&entry.join(name), settled);
        Some([one(MANIFEST_FILE)?, one(COMPONENT_FILE)?])
    }

    #[cfg(unix)]
    fn file_identity(path: &Path, settled: Duration) -> Option<(u64, u64, u64, i128, i128)> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        let ctime = ns(meta.ctime(), meta.ctime_nsec());
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_nanos() as i128;
        if now - ctime < settled.as_nanos() as i128 {
            return None;
        }
        Some((
            meta.dev(),
            meta.ino(),
            meta.size(),
            ns(meta.mtime(), meta.mtime_nsec()),
            ctime,
        ))
    }

    #[cfg(not(unix))]
    fn file_identity(_: &Path, _: Duration) -> Option<(u64, u64, u64, i128, i128)> {
        None
    }

    /// The plugin verified from `entry` as `digest`, if its files still have
    /// `identity`.
    pub(super) fn get(entry: &Path, digest: &str, identity: &Identity) -> Option<Plugin> {
        let key = (entry.to_path_buf(), digest.to_string());
        let guard = entries();
        let (seen, plugin) = guard.as_ref()?.get(&key)?;
        (seen == identity).then(|| plugin.clone())
    }

    /// Remembers `plugin`, verified from `entry` as `digest` while its files
    /// had `identity`.
    pub(super) fn put(entry: &Path, digest: &str, identity: Identity, plugin: &Plugin) {
        let mut guard = entries();
        let map = guard.get_or_insert_with(HashMap::new);
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(
            (entry.to_path_buf(), digest.to_string()),
            (identity, plugin.clone()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_separates_manifest_from_component() {
        assert_ne!(entry_digest(b"ab", b"c"), entry_digest(b"a", b"bc"));
        assert_eq!(entry_digest(b"a", b"b"), entry_digest(b"a", b"b"));
    }

    const MANIFEST: &str = "[plugin]\nid = \"cached\"\nversion = \"1.0.0\"\n\n\
                            [[feeds]]\nname = \"f\"\ndirection = \"inbound\"\nschedule = \"0 0 * * * *\"\n";

    /// An entry of the store in a new directory, and its digest.
    fn entry() -> (tempfile::TempDir, PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("entry");
        std::fs::create_dir(&entry).unwrap();
        std::fs::write(entry.join(MANIFEST_FILE), MANIFEST).unwrap();
        std::fs::write(entry.join(COMPONENT_FILE), b"component bytes").unwrap();
        let digest = entry_digest(MANIFEST.as_bytes(), b"component bytes");
        (dir, entry, digest)
    }

    #[test]
    fn a_plugin_verified_once_is_refused_after_its_manifest_is_edited() {
        let (_dir, entry, digest) = entry();
        let trusting = Duration::ZERO;
        load_cached(&entry, &digest, trusting).expect("the pinned files load");
        load_cached(&entry, &digest, trusting).expect("and load again from memory");
        // The same length, one byte changed: only the file's times and the
        // bytes differ.
        let edited = MANIFEST.replace("1.0.0", "9.0.0");
        std::fs::write(entry.join(MANIFEST_FILE), edited).unwrap();
        match load_cached(&entry, &digest, trusting) {
            Err(PluginStoreError::Changed { pinned, .. }) => assert_eq!(pinned, digest),
            other => panic!("an edited manifest must be refused, got {other:?}"),
        }
    }

    #[test]
    fn a_component_replaced_by_another_file_is_refused_after_it_was_verified() {
        let (_dir, entry, digest) = entry();
        load_cached(&entry, &digest, Duration::ZERO).expect("the pinned files load");
        let other = entry.join("other.wasm");
        std::fs::write(&other, b"COMPONENT BYTES").unwrap();
        std::fs::rename(&other, entry.join(COMPONENT_FILE)).unwrap();
        assert!(matches!(
            load_cached(&entry, &digest, Duration::ZERO),
            Err(PluginStoreError::Changed { .. })
        ));
    }

    #[test]
    fn files_changed_moments_ago_are_hashed_on_every_load() {
        let (_dir, entry, _digest) = entry();
        assert!(
            verified::identity(&entry, verified::SETTLED).is_none(),
            "a file written just now must not be trusted by its times"
        );
        assert!(verified::identity(&entry, Duration::ZERO).is_some());
    }
}
