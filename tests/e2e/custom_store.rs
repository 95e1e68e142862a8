//! The custom-store connector, compiled from `plugins/custom-store`, against a
//! fake shop on loopback (reached as `shop.test` through the test resolver).

use airlock::runs::{Mode, RunEnd, Severity};
use airlock_tests::fake_store::{Behaviour, FakeStore};
use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::support::{Harness, installation, plugin, run};

const T0: i64 = 1_795_000_000; // 2026-11-18T09:46:40Z

fn t(offset_minutes: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(T0, 0).unwrap() + Duration::minutes(offset_minutes)
}

fn iso(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn config(shop: &FakeStore, password: &str) -> Vec<String> {
    vec![
        format!("endpoint=http://shop.test:{}/api/v1", shop.addr.port()),
        "username=demo".into(),
        format!("password={password}"),
    ]
}

async fn shop() -> FakeStore {
    FakeStore::start(0, "demo", "right-password")
        .await
        .expect("fake store")
}

#[tokio::test]
async fn imports_orders_then_asks_only_for_the_new_window() {
    let h = Harness::new();
    let shop = shop().await;
    for (n, minutes) in [("R1", -180), ("R2", -120), ("R3", -60), ("OLD", -60 * 30)] {
        shop.put_order(n, t(minutes));
    }
    let p = plugin("custom-store");
    let inst = installation(&p, "acme", "shop", &config(&shop, "right-password"));

    let first = run(&h, &p, &inst, "orders", T0).await;
    assert_eq!(
        first.severity(),
        Severity::Ok,
        "{:?}\n{:?}",
        first.end,
        first.log
    );
    assert!(
        matches!(first.end, RunEnd::Returned { items: 3, .. }),
        "{:?}",
        first.end
    );
    assert!(first.committed);
    assert_eq!(
        h.stored("acme", "shop", "cursor/orders").await.as_deref(),
        Some(iso(t(0)).as_str())
    );
    let stored = h
        .stored("acme", "shop", "order/R2")
        .await
        .expect("order stored");
    assert!(stored.contains("\"OrderNumber\":\"R2\""), "{stored}");
    assert_eq!(
        h.stored("acme", "shop", "order/OLD").await,
        None,
        "outside the first window"
    );

    shop.put_order("R4", t(30));
    shop.put_order("R2", t(45)); // modified again
    let second = run(&h, &p, &inst, "orders", T0 + 3600).await;
    assert_eq!(second.severity(), Severity::Ok, "{:?}", second.end);
    assert_eq!(
        second.end.summary().split(" modified").next(),
        Some("imported 2 orders (1 new, 1 updated)")
    );

    let third = run(&h, &p, &inst, "orders", T0 + 7200).await;
    assert_eq!(third.severity(), Severity::Info, "{:?}", third.end);

    assert_eq!(
        shop.order_windows(),
        vec![
            (iso(t(-24 * 60)), iso(t(0))),
            (iso(t(0)), iso(t(60))),
            (iso(t(60)), iso(t(120))),
        ],
        "each run asks only for the window since the last successful one"
    );
    let allowed = first.http.iter().filter(|c| c.status == Some(200)).count();
    assert_eq!(allowed, 2, "authenticate + orders: {:?}", first.http);
}

#[tokio::test]
async fn bad_credentials_are_an_error_and_the_cursor_stays() {
    let h = Harness::new();
    let shop = shop().await;
    shop.put_order("R1", t(-10));
    let p = plugin("custom-store");
    let inst = installation(&p, "acme", "shop", &config(&shop, "wrong-password"));
    let report = run(&h, &p, &inst, "orders", T0).await;
    assert_eq!(report.severity(), Severity::Error);
    assert!(
        report
            .end
            .summary()
            .contains("rejected the user name and password"),
        "{}",
        report.end.summary()
    );
    assert!(
        !report.end.summary().contains("wrong-password"),
        "secret leaked into the outcome"
    );
    assert_eq!(h.stored("acme", "shop", "cursor/orders").await, None);
    assert!(
        shop.order_windows().is_empty(),
        "no order request after failed authentication"
    );
}

#[tokio::test]
async fn an_unavailable_or_unreachable_store_is_retried_later() {
    let h = Harness::new();
    let shop = shop().await;
    let p = plugin("custom-store");
    let inst = installation(&p, "acme", "shop", &config(&shop, "right-password"));
    shop.set_behaviour(Behaviour::Unavailable);
    let report = run(&h, &p, &inst, "orders", T0).await;
    assert_eq!(report.severity(), Severity::Retry, "{:?}", report.end);
    assert_eq!(h.stored("acme", "shop", "cursor/orders").await, None);

    // Nothing listens on the port any more.
    let port = shop.addr.port();
    drop(shop);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let gone = vec![
        format!("endpoint=http://shop.test:{port}/api/v1"),
        "username=demo".into(),
        "password=right-password".into(),
    ];
    let inst = installation(&p, "acme", "shop", &gone);
    let report = run(&h, &p, &inst, "orders", T0).await;
    assert_eq!(report.severity(), Severity::Retry, "{:?}", report.end);
    assert!(
        report.end.summary().contains("unreachable"),
        "{}",
        report.end.summary()
    );
}

#[tokio::test]
async fn a_malformed_answer_is_an_error_and_nothing_is_stored() {
    let h = Harness::new();
    let shop = shop().await;
    shop.put_order("R1", t(-10));
    shop.set_behaviour(Behaviour::Garbage);
    let p = plugin("custom-store");
    let inst = installation(&p, "acme", "shop", &config(&shop, "right-password"));
    let report = run(&h, &p, &inst, "orders", T0).await;
    assert_eq!(report.severity(), Severity::Error);
    assert!(
        report.end.summary().contains("not JSON"),
        "{}",
        report.end.summary()
    );
    assert!(!report.committed);
    assert_eq!(h.stored("acme", "shop", "cursor/orders").await, None);
}

#[tokio::test]
async fn check_is_a_test_connection() {
    let h = Harness::new();
    let shop = shop().await;
    let p = plugin("custom-store");
    let good = installation(&p, "acme", "shop", &config(&shop, "right-password"));
    assert_eq!(h.host.check(&p, &good, Mode::Test).await.unwrap(), Ok(()));
    let bad = installation(&p, "acme", "shop", &config(&shop, "wrong-password"));
    let answer = h
        .host
        .check(&p, &bad, Mode::Test)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        answer.contains("user name and password is incorrect"),
        "{answer}"
    );
}

#[tokio::test]
async fn the_connector_reaches_only_its_configured_shop() {
    let h = Harness::new();
    let shop = shop().await;
    let p = plugin("custom-store");
    // Only the origin of the configured endpoint is granted.
    let cfg = config(&shop, "right-password");
    let inst = installation(&p, "acme", "shop", &cfg);
    let policy = h.host.policy(&p, &inst).unwrap();
    assert_eq!(policy.rules().len(), 1);
    assert!(
        policy
            .check(&format!("http://shop.test:{}/x", shop.addr.port()))
            .is_ok()
    );
    assert!(policy.check("http://shop.test/x").is_err(), "other port");
    assert!(
        policy
            .check(&format!("https://shop.test:{}/x", shop.addr.port()))
            .is_err(),
        "other scheme"
    );
    assert!(
        policy
            .check(&format!("http://evil.shop.test:{}/x", shop.addr.port()))
            .is_err(),
        "config origins do not cover subdomains"
    );
    assert!(
        policy
            .check(&format!("http://127.0.0.1:{}/x", shop.addr.port()))
            .is_err(),
        "IP literal"
    );
}

/// A third party's https host, faked on loopback with a certificate of a
/// test authority: the run verifies it only when the operator trusts that
/// authority (`--trust-root`), and trusting it changes no egress decision.
#[tokio::test]
async fn an_https_fake_is_reached_only_with_its_root_trusted() {
    let ca = airlock_tests::tls::TestCa::for_names(&["shop.test"]);
    let shop = FakeStore::start_tls("demo", "right-password", &ca)
        .await
        .expect("fake store");
    shop.put_order("R1", t(-10));
    let p = plugin("custom-store");
    let https = vec![
        format!("endpoint=https://shop.test:{}/api/v1", shop.addr.port()),
        "username=demo".into(),
        "password=right-password".into(),
    ];
    let inst = installation(&p, "acme", "shop", &https);

    // Not trusted: the handshake fails, the run is retried later.
    let untrusted = Harness::new();
    let report = run(&untrusted, &p, &inst, "orders", T0).await;
    assert_eq!(report.severity(), Severity::Retry, "{:?}", report.end);
    assert_eq!(shop.request_count(), 0, "nothing reached the shop");

    let mut options = crate::support::test_options();
    options
        .extra_roots
        .add_pem("test CA", ca.ca_pem.as_bytes())
        .unwrap();
    let trusted = Harness::with_options(options);
    let report = run(&trusted, &p, &inst, "orders", T0).await;
    assert_eq!(report.severity(), Severity::Ok, "{:?}", report.end);
    assert!(matches!(report.end, RunEnd::Returned { items: 1, .. }));
    assert!(
        report
            .http
            .iter()
            .all(|call| matches!(call.decision, airlock::egress::Decision::Allowed { .. })),
        "{:?}",
        report.http
    );

    // The trusted root opens no door the policy keeps shut: a host the
    // installation was not granted is still denied before any connection.
    let elsewhere = vec![
        format!("endpoint=https://shop.test:{}/api/v1", shop.addr.port()),
        "username=demo".into(),
        "password=right-password".into(),
    ];
    let mut inst = installation(&p, "acme", "shop", &elsewhere);
    inst.approved_egress = Some(Vec::new());
    let before = shop.request_count();
    let denied = run(&trusted, &p, &inst, "orders", T0).await;
    assert_ne!(denied.severity(), Severity::Ok);
    assert_eq!(shop.request_count(), before);
    assert!(
        denied
            .http
            .iter()
            .all(|call| matches!(call.decision, airlock::egress::Decision::Denied { .. })),
        "{:?}",
        denied.http
    );
}

/// `airlock run plugins/custom-store` against an https fake shop with its
/// test root trusted (`--trust-root`): the shop, and what the run printed.
/// `endpoint` and `resolve` are made from the fake's port.
async fn run_against_https_shop(
    endpoint: impl Fn(u16) -> String,
    resolve: impl Fn(u16) -> String,
) -> (FakeStore, std::process::Output) {
    let ca = airlock_tests::tls::TestCa::for_names(&["shop.test"]);
    let shop = FakeStore::start_tls("demo", "right-password", &ca)
        .await
        .expect("fake store");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let db = dir.path().join("airlock.db");
    let args: Vec<String> = [
        "run",
        "plugins/custom-store",
        "--feed",
        "orders",
        "--tenant",
        "acme",
        "--config",
        &format!("endpoint={}", endpoint(shop.addr.port())),
        "--config",
        "username=demo",
        "--config",
        "password=right-password",
        "--resolve",
        &resolve(shop.addr.port()),
        "--allow-network",
        "127.0.0.0/8",
        "--trust-root",
        &ca_file.display().to_string(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::cli::command(&args, &db).output().unwrap()
    })
    .await
    .unwrap();
    drop(dir);
    (shop, out)
}

/// A fixed https host (a URL without a port, as `https://api.xero.com`)
/// reaches a fake on any free loopback port through `--resolve
/// HOST=ADDRESS:PORT`; the policy decides on the URL as written (port 443).
#[tokio::test]
async fn a_url_without_a_port_reaches_a_fake_on_the_port_the_resolver_names() {
    let (shop, out) = run_against_https_shop(
        |_| "https://shop.test/api/v1".to_string(),
        |port| format!("shop.test=127.0.0.1:{port}"),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "resolve    shop.test -> 127.0.0.1:{}",
            shop.addr.port()
        )),
        "{text}"
    );
    assert!(text.contains("outcome: INFO  no orders modified"), "{text}");
    assert!(shop.request_count() >= 1, "the fake was reached");
}

/// The operator's side of the same: `airlock run --trust-root FILE` says it
/// trusts the file's root, and the run reaches the https fake.
#[tokio::test]
async fn airlock_run_trusts_a_root_it_is_given_and_says_so() {
    let (shop, out) = run_against_https_shop(
        |port| format!("https://shop.test:{port}/api/v1"),
        |_| "shop.test=127.0.0.1".to_string(),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("(extra root certificate: a test setting)"),
        "{text}"
    );
    // Nothing was modified in the last day: the shop answered, over TLS.
    assert!(text.contains("outcome: INFO  no orders modified"), "{text}");
    assert!(shop.request_count() >= 1);
}
