//! Compiled components cached on disk, keyed by the component's sha256 and
//! the engine's compatibility hash, so a restart does not recompile.
//!
//! A cached file is native code that wasmtime loads without re-validating it:
//! the cache directory must be writable only by the operator.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from on this load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Compiled now (and written to the cache, if there is one).
    Compiled,
    /// Loaded from the cache.
    Hit,
}

/// The on-disk cache of compiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl ComponentCache {
    /// A cache in `dir`, or no cache at all with `None`.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn path_for(&self, digest: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{digest}-{}.cwasm", self.engine_key)))
    }

    /// The compiled component for `bytes` (whose sha256 is `digest`): from
    /// the cache if present and loadable, else compiled and cached.
    pub fn load(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(path) = self.path_for(digest) else {
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Compiled));
        };
        if path.exists() {
            // SAFETY: the file was written by `store` below from
            // `Component::serialize` of this engine configuration (the key
            // includes the engine's compatibility hash), in a directory only
            // the operator can write. wasmtime also checks the header.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(_) => {
                    // Stale or damaged: fall through and recompile over it.
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        // A cache that cannot be written only costs a recompile next time.
        let _ = store(&path, &component.serialize()?);
        Ok((component, CacheOutcome::Compiled))
    }
}

/// Writes `data` to `path` atomically (temporary file, then rename).
fn store(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("component"),
        std::process::id()
    ));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}
