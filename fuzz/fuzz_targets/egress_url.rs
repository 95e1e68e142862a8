//! Fuzzes URL parsing, normalisation and matching: no input may panic, and
//! the pure matcher and the enforcement path must agree on every input
//! (`airlock_tests::differential`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// The runtime, client and policy, built once: building a client per input
/// would make the fuzzer measure TLS setup instead of URL handling.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    client: airlock::egress::EgressClient,
    policy: airlock::egress::EgressPolicy,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = runtime.block_on(async { airlock_tests::differential::client() });
        Fixture {
            runtime,
            client,
            policy: airlock_tests::differential::policy(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    if let Some(problem) = f
        .runtime
        .block_on(airlock_tests::differential::disagreement(&f.client, &f.policy, url))
    {
        panic!("{problem}");
    }
});
