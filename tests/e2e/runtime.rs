//! The runtime's compiled-component cache, with a real component.

use airlock::runtime::{CacheOutcome, HostLimits, Runtime};

use crate::support::plugin;

#[test]
fn a_restart_loads_the_compiled_component_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugin("hello");
    let load = || {
        let runtime = Runtime::new(HostLimits::default(), Some(dir.path().to_path_buf())).unwrap();
        runtime.load(&p.digest, &p.component).unwrap().cache
    };
    assert_eq!(load(), CacheOutcome::Compiled);
    assert_eq!(
        load(),
        CacheOutcome::Hit,
        "a second runtime (a restart) must not recompile"
    );

    // A damaged cache entry is recompiled, not trusted or fatal.
    let entry = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        entry.to_string_lossy().contains(&p.digest),
        "keyed by digest: {}",
        entry.display()
    );
    std::fs::write(&entry, b"not a compiled component").unwrap();
    assert_eq!(load(), CacheOutcome::Compiled);
    assert_eq!(load(), CacheOutcome::Hit);
}

#[test]
fn a_file_that_is_not_a_connector_is_refused_clearly() {
    let runtime = Runtime::new(HostLimits::default(), None).unwrap();
    let refused = |bytes: &[u8]| runtime.load("0", bytes).err().unwrap().to_string();
    for (bytes, expected) in [
        (
            &b"\x8f\x13 random bytes"[..],
            "is not a WebAssembly component",
        ),
        (b"(component)", "is not a WebAssembly component"), // WAT text
        (b"\0asm\x01\0\0\0", "it is a core WebAssembly module"),
    ] {
        let err = refused(bytes);
        assert!(err.contains(expected), "{err}");
        assert_eq!(err.matches(expected).count(), 1, "said once: {err}");
    }
    let err = refused(&empty_component());
    assert!(
        err.contains("no export `check`"),
        "names the missing export: {err}"
    );
}

/// A valid component binary that exports nothing: the header alone.
fn empty_component() -> Vec<u8> {
    b"\0asm\x0d\0\x01\0".to_vec()
}

/// The benchmark's guest does what `airlock-bench --calls` measures: many
/// storage calls in one run, all committed with it, and many HTTP calls
/// through the enforcement point, each audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_guest_makes_many_calls_in_one_run() {
    let h = crate::support::Harness::new();
    let p = plugin("bench");
    let api = airlock_tests::fake_api::FakeApi::start().await.unwrap();
    let url = format!("http://shop.test:{}/ok", api.addr.port());
    let config = ["operations=500".to_string(), format!("url={url}")];
    let inst = crate::support::installation(&p, "acme", "bench", &config);

    let kv = crate::support::run(&h, &p, &inst, "kv", 0).await;
    assert_eq!(kv.end.summary(), "1000 calls", "{:?}", kv.end);
    assert_eq!(
        h.stored("acme", "bench", "k00000010").await.as_deref(),
        Some("\n\0\0\0"),
        "the run's writes are committed with it (10 as u32, little-endian)"
    );

    let http = crate::support::run(&h, &p, &inst, "http", 0).await;
    assert_eq!(http.end.summary(), "500 calls", "{:?}", http.end);
    assert_eq!(api.hits().len(), 500, "every request reached the server");
    assert_eq!(http.http.len(), 500, "every request is audited");
}
