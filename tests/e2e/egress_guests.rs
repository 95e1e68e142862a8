//! The same four requests from a Rust guest (`airlock:connector/http`) and a
//! JavaScript guest (`fetch`, i.e. standard wasi:http): allowed, denied,
//! redirected to a host not granted, and a POST in test mode. The host's one
//! enforcement point decides all of them and the audit shows all of them.

use airlock::egress::{Decision, DenialRule};
use airlock::runs::{Mode, RunReport, Severity};
use airlock_tests::fake_api::FakeApi;

use crate::support::{Harness, installation, plugin, run};

async fn probe(name: &str, mode: Mode) -> (RunReport, FakeApi) {
    let api = FakeApi::start().await.unwrap();
    let p = api.addr.port();
    let h = Harness::new();
    let plugin = plugin(name);
    let mut inst = installation(
        &plugin,
        "acme",
        name,
        &[
            format!("allowed_url=http://api.test:{p}/ok"),
            format!("denied_url=http://evil.test:{p}/ok"),
            format!("redirect_url=http://api.test:{p}/redirect?to=http://evil.test:{p}/ok"),
            format!("post_url=http://api.test:{p}/echo"),
        ],
    );
    inst.mode = mode;
    let report = run(&h, &plugin, &inst, "probe", 1_795_000_000).await;
    (report, api)
}

fn denied(report: &RunReport) -> Vec<DenialRule> {
    report
        .http
        .iter()
        .filter_map(|c| match c.decision {
            Decision::Denied { rule, .. } => Some(rule),
            _ => None,
        })
        .collect()
}

fn log_line<'a>(report: &'a RunReport, label: &str) -> &'a str {
    let prefix = format!("{label} -> ");
    report
        .log
        .iter()
        .find(|l| l.message.starts_with(&prefix))
        .map(|l| l.message.as_str())
        .unwrap_or_else(|| panic!("no `{label}` line in {:#?}", report.log))
}

async fn four_requests_in_test_mode(name: &str) {
    let (report, api) = probe(name, Mode::Test).await;
    assert_eq!(
        report.severity(),
        Severity::Ok,
        "{:?}\n{}",
        report.end,
        report.stderr
    );
    assert!(
        log_line(&report, "allowed").contains("status 200"),
        "{:?}",
        report.log
    );
    assert!(!log_line(&report, "denied").contains("status"));
    assert!(!log_line(&report, "redirect").contains("status"));
    assert!(!log_line(&report, "post").contains("status"));
    assert_eq!(
        denied(&report),
        [DenialRule::NoMatchingEntry, DenialRule::NoMatchingEntry],
        "the denied request and the redirect's second hop: {:#?}",
        report.http
    );
    let suppressed = report
        .http
        .iter()
        .filter(|c| matches!(c.decision, Decision::Suppressed))
        .count();
    assert_eq!(suppressed, 1, "{:#?}", report.http);
    assert_eq!(
        report.http.len(),
        5,
        "allowed, denied, redirect hop 1 (302) and 2, suppressed POST"
    );
    assert_eq!(
        api.hits(),
        ["/ok", "/redirect"],
        "nothing denied or suppressed reached the server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rust_guest_is_held_to_the_policy() {
    four_requests_in_test_mode("egress-probe").await;
    let (report, _) = probe("egress-probe", Mode::Test).await;
    assert_eq!(
        log_line(&report, "denied"),
        "denied -> denied no-matching-entry"
    );
    assert_eq!(log_line(&report, "post"), "post -> suppressed-in-test-mode");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_javascript_guest_using_fetch_is_held_to_the_same_policy() {
    four_requests_in_test_mode("js-egress").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn live_mode_sends_the_post() {
    for name in ["egress-probe", "js-egress"] {
        let (report, api) = probe(name, Mode::Live).await;
        assert!(
            log_line(&report, "post").contains("status 200"),
            "{name}: {:?}",
            report.log
        );
        assert!(api.hits().contains(&"/echo".to_string()), "{name}");
    }
}
