//! Every plugin in `plugins/` is exercised by some end-to-end test.

#[test]
fn every_plugin_has_an_end_to_end_test() {
    let sources: String = [
        "custom_store.rs",
        "sandbox.rs",
        "cli.rs",
        "egress_guests.rs",
        "operations.rs",
        "serve_cli.rs",
        "runtime.rs",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(airlock_tests::repo_root().join("tests/e2e").join(f)).unwrap())
    .collect();
    for name in airlock_tests::plugin_names() {
        assert!(
            sources.contains(&format!("\"{name}\""))
                || sources.contains(&format!("plugins/{name}")),
            "plugins/{name} has no end-to-end test in tests/e2e/"
        );
    }
}

/// The `.rs` files under `dir`, recursively, as paths relative to the repo.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// ARCHITECTURE.md: "only `storage/` speaks SQL". No host file outside
/// `host/src/storage/` names SQLite's crate, and the backend-neutral parts of
/// `storage/` (the error, the scopes, the ledger's, queue's and registry's traits) do
/// not either, so another backend can sit beside SQLite's.
#[test]
fn only_storage_speaks_sql() {
    let root = airlock_tests::repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("host/src"), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let storage = root.join("host/src/storage");
    let neutral = ["mod.rs", "ledger.rs", "work.rs", "registry.rs"].map(|f| storage.join(f));
    for file in &files {
        if file.starts_with(&storage) && !neutral.contains(file) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains("rusqlite"),
            "{} names rusqlite: only the SQLite backend in host/src/storage/ may",
            file.display()
        );
    }
}
