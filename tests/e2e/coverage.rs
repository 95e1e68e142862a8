//! Every plugin in `plugins/` is exercised by some end-to-end test.

#[test]
fn every_plugin_has_an_end_to_end_test() {
    let e2e = airlock_tests::repo_root().join("tests/e2e");
    let mut files = Vec::new();
    rust_files(&e2e, &mut files);
    let sources: String = files
        .iter()
        .filter(|f| !f.ends_with("coverage.rs"))
        .map(|f| std::fs::read_to_string(f).unwrap())
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
    let neutral = [
        "mod.rs",
        "ledger.rs",
        "work.rs",
        "registry.rs",
        "state_history.rs",
    ]
    .map(|f| storage.join(f));
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

/// ARCHITECTURE.md: nothing outside `storage/` and the composition roots
/// names the SQLite backend; the host, the scheduler, `lifecycle/` and the
/// CLI's commands see the store only through its traits (`Arc<dyn Store>`),
/// so a PostgreSQL backend can be a sibling of SQLite's, not a rewrite. The
/// composition roots: the CLI's `DbArgs::open` (`cli/mod.rs`), the
/// benchmark binaries (`bin/`), `lib.rs`, which re-exports the backend
/// for embedders, and unit tests (`#[cfg(test)]` code, which tests against
/// the real backend rather than a fake of it).
/// `text` up to its unit tests: a `#[cfg(test)]` line followed by a
/// `mod tests` line.
fn before_unit_tests(text: &str) -> &str {
    let lines: Vec<&str> = text.lines().collect();
    let mut offset = 0;
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        if line.trim() == "#[cfg(test)]" && next.contains("mod tests") {
            return &text[..offset];
        }
        offset += line.len() + 1;
    }
    text
}

#[test]
fn only_the_composition_roots_name_the_sqlite_backend() {
    let root = airlock_tests::repo_root().join("host/src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let may_name = |relative: &str| {
        relative.starts_with("storage/")
            || relative.starts_with("bin/")
            || ["cli/mod.rs", "lib.rs"].contains(&relative)
    };
    let mut naming = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&root).unwrap().to_string_lossy();
        let text = std::fs::read_to_string(file).unwrap();
        // Unit tests are composition roots of their own: they may test
        // against the real backend.
        let text = before_unit_tests(&text);
        // Prose may name it; code may not.
        let code: String = text
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        if code.contains("SqliteStore") {
            naming.push(relative.replace('\\', "/"));
        }
    }
    assert!(
        naming.iter().any(|f| f == "cli/mod.rs"),
        "the CLI's composition root is seen naming the backend: {naming:?}"
    );
    let strays: Vec<&String> = naming.iter().filter(|f| !may_name(f)).collect();
    assert!(
        strays.is_empty(),
        "only storage/ and the composition roots may name SqliteStore: {strays:?}"
    );
}
