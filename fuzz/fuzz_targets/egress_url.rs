//! Fuzzes URL parsing, normalisation and matching: no input may panic, and
//! what the pure matcher decides must be what the enforcement path does, as
//! seen by a fake DNS and a witness server on loopback
//! (`airlock_tests::differential`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// The runtime and the oracle, built once: building a client per input
/// would make the fuzzer measure TLS setup instead of URL handling.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    oracle: airlock_tests::differential::Oracle,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let oracle = runtime
            .block_on(airlock_tests::differential::Oracle::start())
            .expect("the witness server starts");
        Fixture { runtime, oracle }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    if let Some(problem) = f.runtime.block_on(f.oracle.disagreement(url)) {
        panic!("{problem}");
    }
});
