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

/// Runs `feed` of the Rust probe, with `allowed_url` on the fake API and
/// `extra` config.
async fn probe_feed(api: &FakeApi, h: &Harness, feed: &str, extra: &[String]) -> RunReport {
    let plugin = plugin("egress-probe");
    let mut config = vec![format!("allowed_url=http://api.test:{}", api.addr.port())];
    config.extend_from_slice(extra);
    let inst = installation(&plugin, "acme", "probe", &config);
    run(h, &plugin, &inst, feed, 1_795_000_000).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_gets_no_sockets_and_no_name_lookups() {
    let api = FakeApi::start().await.unwrap();
    let h = Harness::new();
    // A listener the guest is told to connect to: nothing may arrive.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = listener.local_addr().unwrap();
    let report = probe_feed(
        &api,
        &h,
        "sockets",
        &[
            format!("socket_addr={target}"),
            "lookup_host=api.test".to_string(),
        ],
    )
    .await;
    assert_eq!(report.severity(), Severity::Ok, "{:?}", report.end);
    for label in ["tcp", "udp", "lookup"] {
        assert!(
            log_line(&report, label).starts_with(&format!("{label} -> error")),
            "{:?}",
            report.log
        );
    }
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "a connection reached the listener"
    );
    assert!(report.http.is_empty(), "no HTTP was involved");
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_and_proxy_headers_never_reach_the_server() {
    let api = FakeApi::start().await.unwrap();
    let h = Harness::new();
    let report = probe_feed(&api, &h, "headers", &[]).await;
    assert_eq!(report.severity(), Severity::Ok, "{:?}", report.end);
    let names = [
        "Forwarded",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "X-Forwarded-Proto",
        "X-Real-IP",
        "Via",
        "Proxy-Authorization",
        "Proxy-Connection",
        "Host",
        "Connection",
        "Transfer-Encoding",
        "Upgrade",
    ];
    for name in names {
        assert_eq!(log_line(&report, name), format!("{name} -> denied header"));
    }
    assert!(
        log_line(&report, "plain").contains("status"),
        "{:?}",
        report.log
    );
    let seen = api.seen();
    assert_eq!(seen.len(), 1, "only the plain request arrived: {seen:?}");
    for name in names.iter().filter(|n| **n != "Host") {
        assert!(
            !seen[0].headers.contains(&name.to_ascii_lowercase()),
            "{name} reached the server: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_written_every_way_is_redacted_everywhere() {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let token = "tok-Sec/ret 42";
    let api = FakeApi::start().await.unwrap();
    let h = Harness::new();
    let output_cap = airlock::runtime::HostLimits::default().output_cap_bytes;
    let line_cap = airlock::runs::LogLimits::default().max_line_bytes;
    let report = probe_feed(
        &api,
        &h,
        "leak",
        &[
            format!("token={token}"),
            format!("output_cap={output_cap}"),
            format!("line_cap={line_cap}"),
        ],
    )
    .await;
    assert_eq!(report.severity(), Severity::Ok, "{:?}", report.end);
    assert_eq!(report.stdout, "token=[redacted]\n");
    assert!(
        report.stderr.len() <= output_cap && report.stderr.ends_with("x[re"),
        "the secret straddling the cap is redacted, then cut: {:?}",
        &report.stderr[report.stderr.len().saturating_sub(20)..]
    );
    assert!(
        report
            .log
            .iter()
            .any(|l| l.message == "Authorization: Basic [redacted]"),
        "{:#?}",
        report.log
    );
    assert!(
        report.http.iter().any(|c| c.path == "/ok/[redacted]"),
        "the redirect put the secret in a path: {:#?}",
        report.http
    );
    let stored: Vec<String> = h
        .store
        .audit_log(&airlock::storage::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|row| format!("{row:?}"))
        .collect();
    assert_eq!(stored.len(), 2, "both hops are audited");
    let everything = format!(
        "{}\n{}",
        serde_json::to_string(&report).unwrap(),
        stored.join("\n")
    );
    let percent: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
    for form in [
        token.to_string(),
        "Sec/ret".to_string(),
        STANDARD.encode(token),
        URL_SAFE_NO_PAD.encode(token),
        STANDARD.encode(format!("merchant:{token}")),
        percent,
        "%53%65%63".to_string(),
    ] {
        assert!(!everything.contains(&form), "`{form}` leaked");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wasi_http_refuses_the_same_forwarding_headers() {
    let api = FakeApi::start().await.unwrap();
    let h = Harness::new();
    let plugin = plugin("js-egress");
    let inst = installation(
        &plugin,
        "acme",
        "js",
        &[format!(
            "allowed_url=http://api.test:{}/echo",
            api.addr.port()
        )],
    );
    let report = run(&h, &plugin, &inst, "headers", 1_795_000_000).await;
    assert_eq!(report.severity(), Severity::Ok, "{:?}", report.end);
    assert!(
        log_line(&report, "plain").contains("status 200"),
        "{:?}",
        report.log
    );
    let seen = api.seen();
    assert!(!seen.is_empty());
    for name in [
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-real-ip",
        "via",
        "proxy-authorization",
        "upgrade",
    ] {
        assert!(
            seen.iter().all(|s| !s.headers.contains(&name.to_string())),
            "{name} reached the server: {seen:?}"
        );
    }
}
