//! The layering ARCHITECTURE.md promises, checked on the source tree: only
//! `runtime/` and `capability/` speak wasmtime, and inside `capability/`
//! only the WIT glue and each capability's `add_to_linker` do.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, as (path relative to `host/src`, its code
/// without comments).
fn host_sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path: PathBuf = entry.unwrap().path();
        if path.is_dir() {
            host_sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap().to_string_lossy();
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((relative.replace('\\', "/"), code_only(&text)));
        }
    }
}

/// `text` without `//` comments (doc comments included), which may name
/// wasmtime in prose.
fn code_only(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `code` uses wasmtime or the bindings generated with it.
fn speaks_wasmtime(code: &str) -> bool {
    [
        "wasmtime::",
        "wasmtime_",
        "use wasmtime",
        "bindings::",
        "bindgen!",
    ]
    .iter()
    .any(|needle| code.contains(needle))
}

/// Whether a file at `path` (relative to `host/src`) may speak wasmtime.
fn may_speak_wasmtime(path: &str) -> bool {
    if path.starts_with("runtime/") {
        return true;
    }
    let Some(rest) = path.strip_prefix("capability/") else {
        return false;
    };
    let file = rest.rsplit('/').next().unwrap();
    rest.contains('/') && ["mod.rs", "host.rs", "wasi_http.rs"].contains(&file)
}

#[test]
fn only_runtime_and_capability_glue_speak_wasmtime() {
    let root = airlock_tests::repo_root().join("host/src");
    let mut sources = Vec::new();
    host_sources(&root, &root, &mut sources);
    assert!(sources.len() > 20, "the host's sources were found");
    let speaking: Vec<&str> = sources
        .iter()
        .filter(|(_, code)| speaks_wasmtime(code))
        .map(|(path, _)| path.as_str())
        .collect();
    for expected in [
        "runtime/mod.rs",
        "capability/kv/host.rs",
        "capability/http/wasi_http.rs",
    ] {
        assert!(
            speaking.contains(&expected),
            "{expected} is seen speaking wasmtime"
        );
    }
    let strays: Vec<&str> = speaking
        .into_iter()
        .filter(|path| !may_speak_wasmtime(path))
        .collect();
    assert!(
        strays.is_empty(),
        "only runtime/ and capability/*/{{mod,host,wasi_http}}.rs may use wasmtime: {strays:?}"
    );
}

#[test]
fn the_layering_rule_tells_glue_from_logic() {
    let check = |path: &str, allowed: bool| {
        assert_eq!(may_speak_wasmtime(path), allowed, "{path}");
    };
    check("runtime/state.rs", true);
    check("capability/log/mod.rs", true);
    check("capability/http/host.rs", true);
    check("capability/http/wasi_http.rs", true);
    check("capability/http/budget.rs", false);
    check("capability/mod.rs", false);
    check("egress/policy.rs", false);
    check("manifest/mod.rs", false);
    check("airlock.rs", false);
    assert!(speaks_wasmtime("use wasmtime::component::Linker;"));
    assert!(!speaks_wasmtime(&code_only(
        "let x = 1; // see bindings::airlock"
    )));
    assert!(!speaks_wasmtime(&code_only(
        "//! Compared with bare wasmtime::Engine."
    )));
}
