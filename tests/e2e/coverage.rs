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
