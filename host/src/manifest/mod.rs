//! The plugin manifest, `plugin.toml`: what a connector is, which feeds it has,
//! what config it needs, where it may send HTTP requests and what limits it runs
//! under. A reviewer reads it without running anything.
//!
//! This module parses and validates manifests and computes the component's
//! digest. It knows nothing about wasmtime, SQLite or HTTP; the config *values*
//! of an installation are checked against the schema in [`crate::config`].

mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

pub(crate) use schema::is_slug;
pub use schema::{
    ClientAuth, ConfigField, ConfigType, DataSection, Direction, EgressEntry, EgressSection, Feed,
    Limits, MANUAL_SCHEDULE, MAX_WEBHOOK_BODY_KB, Manifest, OAuthGrant, OAuthSection,
    PluginSection, Webhook, WebhookSignature,
};

/// The manifest's file name inside a plugin directory.
pub const MANIFEST_FILE: &str = "plugin.toml";

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest or component file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown or mistyped fields. The message
    /// names the field and its line.
    #[error("{path}: {message}")]
    Syntax {
        /// The manifest file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The TOML is well formed but says something invalid.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The manifest file.
        path: PathBuf,
        /// The offending field, e.g. `feeds[1].schedule`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

/// A plugin on disk: its validated manifest, where its component is, and the
/// component's content digest.
#[derive(Debug, Clone)]
pub struct Plugin {
    /// The validated manifest.
    pub manifest: Manifest,
    /// The manifest's text as read, for pinning it with the component.
    pub manifest_text: String,
    /// The plugin directory.
    pub dir: PathBuf,
    /// The component file (`[plugin] component`, relative to `dir`).
    pub component_path: PathBuf,
    /// The component's bytes, shared: a compile on the blocking pool takes
    /// them without copying.
    pub component: Arc<[u8]>,
    /// Lower-case hex sha256 of the component's bytes.
    pub digest: String,
}

impl Plugin {
    /// Loads `DIR/plugin.toml` and the component it names, and digests the
    /// component.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text =
            std::fs::read_to_string(&manifest_path).map_err(|source| ManifestError::Read {
                path: manifest_path.clone(),
                source,
            })?;
        let manifest = Manifest::parse(&text, &manifest_path)?;
        let component_path = dir.join(&manifest.plugin.component);
        let component = std::fs::read(&component_path).map_err(|source| ManifestError::Read {
            path: component_path.clone(),
            source,
        })?;
        let digest = sha256_hex(&component);
        let component = Arc::from(component);
        Ok(Self {
            manifest,
            manifest_text: text,
            dir: dir.to_path_buf(),
            component_path,
            component,
            digest,
        })
    }

    /// `id@version`, for messages.
    pub fn label(&self) -> String {
        format!(
            "{}@{}",
            self.manifest.plugin.id, self.manifest.plugin.version
        )
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Manifest {
    /// Parses and validates manifest text. `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        manifest
            .validate()
            .map_err(|(field, message)| ManifestError::Invalid {
                path: path.to_path_buf(),
                field,
                message,
            })?;
        Ok(manifest)
    }

    /// The feed called `name`, if the manifest declares it.
    pub fn feed(&self, name: &str) -> Option<&Feed> {
        self.feeds.iter().find(|f| f.name == name)
    }

    /// The webhook called `name`, if the manifest declares it.
    pub fn webhook(&self, name: &str) -> Option<&Webhook> {
        self.webhooks.iter().find(|w| w.name == name)
    }
}

#[cfg(test)]
mod tests;
