//! Test support for Airlock's end-to-end tests: fake third-party servers on
//! loopback and helpers to find the example plugins built from source.
//!
//! The tests themselves live in `tests/e2e/`. Plugins are built by
//! `scripts/build-plugins.sh` (the README's test command runs it first).

pub mod differential;
pub mod ebay;
pub mod fake_api;
pub mod fake_store;
pub mod identity;
pub mod instagram;
pub mod salesmanago;
pub mod staingard;
pub mod storefeeder;
pub mod tls;
pub mod xcart;
pub mod xero;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The names of every plugin directory under `plugins/` (those with a
/// `plugin.toml`).
pub fn plugin_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("plugins"))
        .expect("plugins/ exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("plugin.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `plugins/NAME`, after checking its component was built.
///
/// # Panics
/// If the component is missing, with the command that builds it.
pub fn plugin_dir(name: &str) -> PathBuf {
    let dir = repo_root().join("plugins").join(name);
    assert!(
        dir.join("plugin.wasm").is_file(),
        "{}/plugin.wasm is missing: build the plugins first with scripts/build-plugins.sh \
         (scripts/test.sh does both)",
        dir.display()
    );
    dir
}
