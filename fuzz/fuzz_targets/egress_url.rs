//! Fuzzes URL parsing, normalisation and matching: no input may panic, and
//! the pure matcher and the enforcement path must agree on every input
//! (`airlock_tests::differential`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    });
    let (client, policy) = runtime.block_on(async {
        (airlock_tests::differential::client(), airlock_tests::differential::policy())
    });
    if let Some(problem) = runtime.block_on(airlock_tests::differential::disagreement(&client, &policy, url)) {
        panic!("{problem}");
    }
});
