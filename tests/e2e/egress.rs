//! The egress enforcement point (`EgressClient::send`) against hostile and
//! benign requests: a fake API on loopback, fake DNS answers through the
//! explicit test resolver, and a redirect endpoint that bounces anywhere; and
//! random URLs judged against what a fake DNS and a witness server observe.

use std::time::Duration;

use airlock::egress::{
    AddressPolicy, Decision, EgressClient, EgressLimits, EgressPolicy, EgressRule, HttpError,
    HttpRequest, RateLimits, RequestCaps, ResolveOverrides, SendMode, Throttle,
};
use airlock::manifest::EgressEntry;
use airlock_tests::differential::Oracle;
use airlock_tests::fake_api::FakeApi;

/// What a request should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Sent; the final response has this status.
    Status(u16),
    /// Allowed by the policy and sent, but the transport failed.
    Failed,
    /// Refused by this rule; nothing sent for the refused hop.
    Denied(&'static str),
    /// Not sent: test mode.
    Suppressed,
    /// Malformed request.
    Invalid,
}

struct Env {
    api: FakeApi,
    client: EgressClient,
    policy: EgressPolicy,
}

fn rule(host: &str, scheme: &str, port: u16) -> EgressRule {
    EgressRule::from_manifest(&EgressEntry {
        host: host.into(),
        service: format!("svc {host}"),
        scheme: Some(scheme.into()),
        port: Some(port),
    })
    .unwrap()
}

async fn env(limits: EgressLimits) -> Env {
    let api = FakeApi::start().await.unwrap();
    let port = api.addr.port();
    let mut resolve = ResolveOverrides::default();
    for spec in [
        "api.test=127.0.0.1",
        "sub.api.test=127.0.0.1",
        "other.test=127.0.0.1",
        "secure.test=127.0.0.1",
        "internal.test=10.0.0.1",
        "metadata.test=169.254.169.254",
        "mixed.test=127.0.0.1",
        "mixed.test=10.0.0.1",
        "v6loop.test=::1",
        "cgnat.test=100.64.0.1",
        "ula.test=fd00::1",
        "mcast.test=224.0.0.1",
        "zero.test=0.0.0.0",
    ] {
        resolve.add_spec(spec).unwrap();
    }
    let mut rules = vec![rule("secure.test", "https", 443)];
    for host in [
        "api.test",
        "other.test",
        "internal.test",
        "metadata.test",
        "mixed.test",
        "v6loop.test",
        "cgnat.test",
        "ula.test",
        "mcast.test",
        "zero.test",
    ] {
        rules.push(rule(host, "http", port));
    }
    let addresses = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
    Env {
        client: EgressClient::new(limits, resolve, addresses).unwrap(),
        policy: EgressPolicy::new(rules),
        api,
    }
}

fn request(method: &str, url: &str) -> HttpRequest {
    HttpRequest {
        method: method.into(),
        url: url.into(),
        headers: vec![],
        body: None,
        timeout: Some(Duration::from_secs(5)),
    }
}

/// Sends `req` and checks the outcome and the audit; a refused first hop
/// must not reach the server.
async fn check(env: &Env, mode: SendMode, req: HttpRequest, expected: Expect) {
    let label = format!("{} {} ({mode:?})", req.method, req.url.escape_debug());
    let hits_before = env.api.hits().len();
    let (result, calls) = env.client.send(&env.policy, mode, req).await;
    assert!(!calls.is_empty(), "{label}: every decision is audited");
    let got = match &result {
        Ok(r) => Expect::Status(r.status),
        Err(HttpError::Denied(d)) => Expect::Denied(d.rule.as_str()),
        Err(HttpError::SuppressedInTestMode) => Expect::Suppressed,
        Err(HttpError::InvalidRequest(_)) => Expect::Invalid,
        Err(_) => Expect::Failed,
    };
    assert_eq!(got, expected, "{label}: {result:?}\naudit: {calls:#?}");
    let last = calls.last().unwrap();
    match expected {
        Expect::Denied(rule) if rule != "redirect-limit" => {
            assert!(
                matches!(&last.decision, Decision::Denied { rule: r, .. } if r.as_str() == rule),
                "{label}: audit says {:?}",
                last.decision
            );
            if calls.len() == 1 {
                assert_eq!(
                    env.api.hits().len(),
                    hits_before,
                    "{label}: a denied request reached the server"
                );
            }
        }
        Expect::Suppressed => {
            assert!(matches!(last.decision, Decision::Suppressed));
            assert_eq!(
                env.api.hits().len(),
                hits_before,
                "{label}: suppressed request was sent"
            );
        }
        Expect::Status(_) | Expect::Failed => {
            assert!(
                matches!(last.decision, Decision::Allowed { .. }),
                "{label}: {:?}",
                last.decision
            );
        }
        _ => {}
    }
}

#[tokio::test]
async fn the_enforcement_path_holds_against_a_table_of_requests() {
    use Expect::*;
    let e = env(EgressLimits::default()).await;
    let p = e.api.addr.port();
    let q = p.wrapping_add(1);
    let u = |s: &str| {
        s.replace("{P}", &p.to_string())
            .replace("{Q}", &q.to_string())
    };
    let live = SendMode::Live;
    let cases: Vec<(&str, String, SendMode, Expect)> = vec![
        // Allowed, in several spellings.
        ("GET", u("http://api.test:{P}/ok"), live, Status(200)),
        ("GET", u("http://API.TEST:{P}/ok"), live, Status(200)),
        ("GET", u("http://api.test.:{P}/ok"), live, Status(200)),
        ("GET", u("HTTP://api.test:{P}/ok"), live, Status(200)),
        ("GET", u("http://sub.api.test:{P}/ok"), live, Status(200)),
        ("GET", u("http://api.test:0{P}/ok"), live, Status(200)),
        ("get", u("http://api.test:{P}/ok"), live, Status(200)),
        ("HEAD", u("http://api.test:{P}/ok"), live, Status(200)),
        ("OPTIONS", u("http://api.test:{P}/ok"), live, Status(200)),
        ("POST", u("http://api.test:{P}/echo"), live, Status(200)),
        ("PUT", u("http://api.test:{P}/echo"), live, Status(200)),
        ("PATCH", u("http://api.test:{P}/echo"), live, Status(200)),
        ("DELETE", u("http://api.test:{P}/echo"), live, Status(200)),
        ("GET", "https://secure.test/".into(), live, Failed),
        // Test mode: state-changing methods are not sent; reads are.
        (
            "POST",
            u("http://api.test:{P}/echo"),
            SendMode::Test,
            Suppressed,
        ),
        (
            "PUT",
            u("http://api.test:{P}/echo"),
            SendMode::Test,
            Suppressed,
        ),
        (
            "PATCH",
            u("http://api.test:{P}/echo"),
            SendMode::Test,
            Suppressed,
        ),
        (
            "DELETE",
            u("http://api.test:{P}/echo"),
            SendMode::Test,
            Suppressed,
        ),
        (
            "GET",
            u("http://api.test:{P}/ok"),
            SendMode::Test,
            Status(200),
        ),
        (
            "HEAD",
            u("http://api.test:{P}/ok"),
            SendMode::Test,
            Status(200),
        ),
        (
            "POST",
            u("http://evil.test:{P}/"),
            SendMode::Test,
            Denied("no-matching-entry"),
        ),
        // Names no entry covers.
        (
            "GET",
            u("http://evil.test:{P}/"),
            live,
            Denied("no-matching-entry"),
        ),
        (
            "GET",
            u("http://api.test.evil.test:{P}/"),
            live,
            Denied("no-matching-entry"),
        ),
        (
            "GET",
            u("http://evilapi.test:{P}/"),
            live,
            Denied("no-matching-entry"),
        ),
        (
            "GET",
            u("http://apitest:{P}/"),
            live,
            Denied("no-matching-entry"),
        ),
        (
            "GET",
            u("http://test:{P}/"),
            live,
            Denied("no-matching-entry"),
        ),
        (
            "GET",
            u("http://api.tes:{P}/"),
            live,
            Denied("no-matching-entry"),
        ),
        (
            "GET",
            u("http://xn--api-test.example:{P}/"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http://xn--80ak6aa92e.test:{P}/"),
            live,
            Denied("no-matching-entry"),
        ),
        (
            "GET",
            u("http://evil.test#@api.test:{P}/"),
            live,
            Denied("no-matching-entry"),
        ),
        (
            "GET",
            u("http://evil.test?@api.test:{P}/"),
            live,
            Denied("no-matching-entry"),
        ),
        // Scheme and port.
        ("GET", u("https://api.test:{P}/"), live, Denied("scheme")),
        ("GET", "http://api.test/ok".into(), live, Denied("port")),
        ("GET", u("http://api.test:{Q}/"), live, Denied("port")),
        ("GET", "http://secure.test/".into(), live, Denied("scheme")),
        (
            "GET",
            "https://secure.test:8443/".into(),
            live,
            Denied("port"),
        ),
        ("GET", "ftp://api.test/".into(), live, Denied("scheme")),
        ("GET", u("ws://api.test:{P}/"), live, Denied("scheme")),
        ("GET", "file:///etc/passwd".into(), live, Denied("scheme")),
        ("GET", u("gopher://api.test:{P}/"), live, Denied("scheme")),
        // Userinfo.
        (
            "GET",
            u("http://user@api.test:{P}/"),
            live,
            Denied("userinfo"),
        ),
        (
            "GET",
            u("http://user:pw@api.test:{P}/"),
            live,
            Denied("userinfo"),
        ),
        (
            "GET",
            u("http://api.test:{P}@evil.test/"),
            live,
            Denied("userinfo"),
        ),
        (
            "GET",
            u("http://api.test:{P}\\@evil.test/"),
            live,
            Denied("userinfo"),
        ),
        ("GET", u("http://@api.test:{P}/"), live, Denied("userinfo")),
        // Ambiguous or malformed.
        (
            "GET",
            u("http://api%2etest:{P}/"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http://api.test%00:{P}/"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http://apı.test:{P}/"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http://ａｐｉ.test:{P}/"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http://api.test :{P}/"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http://api.test\t:{P}/"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http://api.test:{P}/ok\n"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http:/api.test:{P}/ok"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http:\\\\api.test:{P}/ok"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http://api.test:{P}:{P}/"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http://[api.test]:{P}/"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http://api..test:{P}/"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            u("http://api.test:/ok"),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            "data:text/plain,hello".into(),
            live,
            Denied("malformed-url"),
        ),
        (
            "GET",
            "javascript:alert(1)".into(),
            live,
            Denied("malformed-url"),
        ),
        ("GET", "".into(), live, Denied("malformed-url")),
        (
            "GET",
            "/relative/path".into(),
            live,
            Denied("malformed-url"),
        ),
        // IP literals in every notation.
        (
            "GET",
            u("http://127.0.0.1:{P}/ok"),
            live,
            Denied("ip-literal"),
        ),
        (
            "GET",
            u("http://2130706433:{P}/ok"),
            live,
            Denied("ip-literal"),
        ),
        (
            "GET",
            u("http://0x7f000001:{P}/ok"),
            live,
            Denied("ip-literal"),
        ),
        (
            "GET",
            u("http://0177.0.0.1:{P}/ok"),
            live,
            Denied("ip-literal"),
        ),
        ("GET", u("http://127.1:{P}/ok"), live, Denied("ip-literal")),
        (
            "GET",
            u("http://0x7f.0x0.0x0.0x1:{P}/ok"),
            live,
            Denied("ip-literal"),
        ),
        (
            "GET",
            u("http://127.000.000.001:{P}/ok"),
            live,
            Denied("ip-literal"),
        ),
        ("GET", u("http://[::1]:{P}/ok"), live, Denied("ip-literal")),
        (
            "GET",
            u("http://[::ffff:127.0.0.1]:{P}/ok"),
            live,
            Denied("ip-literal"),
        ),
        (
            "GET",
            u("http://[0:0:0:0:0:ffff:7f00:1]:{P}/ok"),
            live,
            Denied("ip-literal"),
        ),
        (
            "GET",
            "http://169.254.169.254/latest/meta-data/".into(),
            live,
            Denied("ip-literal"),
        ),
        (
            "GET",
            "http://[fd00:ec2::254]/latest/meta-data/".into(),
            live,
            Denied("ip-literal"),
        ),
        ("GET", "http://0/".into(), live, Denied("ip-literal")),
        ("GET", "http://10.0.0.1/".into(), live, Denied("ip-literal")),
        // Allowed names whose DNS answers point inside the network.
        (
            "GET",
            u("http://internal.test:{P}/ok"),
            live,
            Denied("resolved-address"),
        ),
        (
            "GET",
            u("http://metadata.test:{P}/ok"),
            live,
            Denied("resolved-address"),
        ),
        (
            "GET",
            u("http://mixed.test:{P}/ok"),
            live,
            Denied("resolved-address"),
        ),
        (
            "GET",
            u("http://v6loop.test:{P}/ok"),
            live,
            Denied("resolved-address"),
        ),
        (
            "GET",
            u("http://cgnat.test:{P}/ok"),
            live,
            Denied("resolved-address"),
        ),
        (
            "GET",
            u("http://ula.test:{P}/ok"),
            live,
            Denied("resolved-address"),
        ),
        (
            "GET",
            u("http://mcast.test:{P}/ok"),
            live,
            Denied("resolved-address"),
        ),
        (
            "GET",
            u("http://zero.test:{P}/ok"),
            live,
            Denied("resolved-address"),
        ),
        // Methods.
        ("TRACE", u("http://api.test:{P}/ok"), live, Invalid),
        ("CONNECT", u("http://api.test:{P}/ok"), live, Invalid),
        ("BREW", u("http://api.test:{P}/ok"), live, Invalid),
        // Redirects: each hop is a new request, checked again.
        (
            "GET",
            u("http://api.test:{P}/redirect?to=/ok"),
            live,
            Status(200),
        ),
        (
            "GET",
            u("http://api.test:{P}/redirect?to=/ok&status=301"),
            live,
            Status(200),
        ),
        (
            "GET",
            u("http://api.test:{P}/redirect?to=/ok&status=307"),
            live,
            Status(200),
        ),
        (
            "GET",
            u("http://api.test:{P}/redirect?to=/ok&status=308"),
            live,
            Status(200),
        ),
        (
            "GET",
            u("http://api.test:{P}/redirect?to=http://other.test:{P}/ok"),
            live,
            Status(200),
        ),
        (
            "GET",
            u("http://api.test:{P}/redirect?to=http://evil.test/"),
            live,
            Denied("no-matching-entry"),
        ),
        (
            "GET",
            u("http://api.test:{P}/redirect?to=http://internal.test:{P}/ok"),
            live,
            Denied("resolved-address"),
        ),
        (
            "GET",
            u("http://api.test:{P}/redirect?to=http://169.254.169.254/"),
            live,
            Denied("ip-literal"),
        ),
        (
            "GET",
            u("http://api.test:{P}/redirect?to=http://127.0.0.1:{P}/ok"),
            live,
            Denied("ip-literal"),
        ),
        (
            "GET",
            u("http://api.test:{P}/redirect?to=https://api.test:{P}/ok"),
            live,
            Denied("scheme"),
        ),
        (
            "GET",
            u("http://api.test:{P}/redirect?to=http://api.test:{Q}/"),
            live,
            Denied("port"),
        ),
        (
            "GET",
            u("http://api.test:{P}/redirect?to=http://user@api.test:{P}/ok"),
            live,
            Denied("userinfo"),
        ),
        (
            "GET",
            u("http://api.test:{P}/redirect?to=file:///etc/passwd"),
            live,
            Denied("scheme"),
        ),
        (
            "GET",
            u("http://api.test:{P}/loop"),
            live,
            Denied("redirect-limit"),
        ),
    ];
    assert!(cases.len() >= 80, "{} cases", cases.len());
    for (method, url, mode, expected) in cases {
        check(&e, mode, request(method, &url), expected).await;
    }
}

#[tokio::test]
async fn headers_that_retarget_a_request_are_refused() {
    let e = env(EgressLimits::default()).await;
    let url = format!("http://api.test:{}/ok", e.api.addr.port());
    for name in [
        "Host",
        "host",
        "Proxy-Authorization",
        "X-Forwarded-For",
        "x-forwarded-host",
        "Forwarded",
        "X-Real-IP",
        "Via",
        "Connection",
        "Keep-Alive",
        "TE",
        "Transfer-Encoding",
        "Upgrade",
    ] {
        let mut req = request("GET", &url);
        req.headers.push((name.into(), "evil.test".into()));
        check(&e, SendMode::Live, req, Expect::Denied("header")).await;
    }
    let mut req = request("GET", &url);
    req.headers.push(("bad header".into(), "x".into()));
    check(&e, SendMode::Live, req, Expect::Invalid).await;
}

/// What `/echo` saw of a request sent through `env` after a redirect.
struct Echoed {
    method: String,
    headers: Vec<String>,
    body_bytes: u64,
}

async fn redirected(e: &Env, method: &str, to: &str, status: u16) -> (Echoed, usize) {
    let p = e.api.addr.port();
    let mut req = request(
        method,
        &format!("http://api.test:{p}/redirect?status={status}&to={to}"),
    );
    for (name, value) in [
        ("Authorization", "Bearer secret"),
        ("Cookie", "session=secret"),
        ("X-Api-Key", "secret"),
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ] {
        req.headers.push((name.into(), value.into()));
    }
    req.body = Some(b"payload".to_vec());
    let (r, calls) = e.client.send(&e.policy, SendMode::Live, req).await;
    let v: serde_json::Value = serde_json::from_slice(&r.unwrap().body).unwrap();
    let mut headers: Vec<String> = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .filter(|h| {
            [
                "authorization",
                "cookie",
                "x-api-key",
                "content-type",
                "accept",
            ]
            .contains(&h.as_str())
        })
        .collect();
    headers.sort();
    let echoed = Echoed {
        method: v["method"].as_str().unwrap().to_string(),
        headers,
        body_bytes: v["body_bytes"].as_u64().unwrap(),
    };
    (echoed, calls.len())
}

#[tokio::test]
async fn redirects_drop_credentials_across_origins_and_the_body_with_its_headers() {
    let e = env(EgressLimits::default()).await;
    let p = e.api.addr.port();
    let other = format!("http://other.test:{p}/echo");
    let all = [
        "accept",
        "authorization",
        "content-type",
        "cookie",
        "x-api-key",
    ];
    let no_body = ["accept", "authorization", "cookie", "x-api-key"];
    for (method, to, status, expected_method, expected_headers, body) in [
        ("GET", "/echo", 302, "GET", &all[..], 7),
        ("POST", "/echo", 307, "POST", &all[..], 7),
        ("POST", "/echo", 303, "GET", &no_body[..], 0),
        ("POST", "/echo", 302, "GET", &no_body[..], 0),
        (
            "POST",
            other.as_str(),
            307,
            "POST",
            &["accept", "content-type"][..],
            7,
        ),
        ("POST", other.as_str(), 303, "GET", &["accept"][..], 0),
        (
            "GET",
            other.as_str(),
            302,
            "GET",
            &["accept", "content-type"][..],
            7,
        ),
    ] {
        let (echoed, hops) = redirected(&e, method, to, status).await;
        assert_eq!(
            (
                echoed.method.as_str(),
                echoed.headers.as_slice(),
                echoed.body_bytes
            ),
            (
                expected_method,
                expected_headers
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .as_slice(),
                body
            ),
            "{method} redirected by {status} to {to}"
        );
        assert_eq!(hops, 2, "one audit record per hop");
    }
}

#[tokio::test]
async fn the_hop_past_the_redirect_limit_is_audited_as_denied() {
    let limits = EgressLimits {
        max_redirects: 3,
        ..EgressLimits::default()
    };
    let e = env(limits).await;
    let url = format!("http://api.test:{}/loop", e.api.addr.port());
    let (r, calls) = e
        .client
        .send(&e.policy, SendMode::Live, request("GET", &url))
        .await;
    assert!(
        matches!(r, Err(HttpError::Denied(ref d)) if d.rule.as_str() == "redirect-limit"),
        "{r:?}"
    );
    assert_eq!(
        e.api.hits().len(),
        4,
        "the first request and three redirects"
    );
    assert_eq!(
        calls.len(),
        5,
        "four sent and the refused fifth: {calls:#?}"
    );
    assert!(
        calls[..4]
            .iter()
            .all(|c| matches!(c.decision, Decision::Allowed { .. }))
    );
    assert!(
        matches!(&calls[4].decision, Decision::Denied { rule, .. } if rule.as_str() == "redirect-limit"),
        "{:?}",
        calls[4]
    );
    assert_eq!(calls[4].path, "/loop");
}

#[tokio::test]
async fn a_failed_connection_does_not_quote_the_url() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut resolve = ResolveOverrides::default();
    resolve.add_spec("closed.test=127.0.0.1").unwrap();
    let client = EgressClient::new(
        EgressLimits::default(),
        resolve,
        AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]),
    )
    .unwrap();
    let policy = EgressPolicy::new(vec![rule("closed.test", "http", port)]);
    let url = format!("http://closed.test:{port}/p/path-secret?token=query-secret");
    let (r, calls) = client
        .send(&policy, SendMode::Live, request("GET", &url))
        .await;
    let error = match r {
        Err(HttpError::ConnectionFailed(m)) => m,
        other => panic!("{other:?}"),
    };
    let audited = calls[0].error.clone().unwrap();
    for text in [&error, &audited] {
        assert!(!text.contains("query-secret"), "{text}");
        assert!(!text.contains("path-secret"), "{text}");
        assert!(!text.contains("closed.test:"), "{text}");
    }
}

#[tokio::test]
async fn bodies_and_time_are_capped() {
    let limits = EgressLimits {
        max_response_bytes: 1000,
        max_request_bytes: 100,
        max_timeout: Duration::from_millis(300),
        ..EgressLimits::default()
    };
    let e = env(limits).await;
    let p = e.api.addr.port();
    let (r, _) = e
        .client
        .send(
            &e.policy,
            SendMode::Live,
            request("GET", &format!("http://api.test:{p}/big?bytes=1000")),
        )
        .await;
    assert_eq!(r.unwrap().body.len(), 1000);
    let (r, _) = e
        .client
        .send(
            &e.policy,
            SendMode::Live,
            request("GET", &format!("http://api.test:{p}/big?bytes=1001")),
        )
        .await;
    assert_eq!(r.unwrap_err(), HttpError::ResponseTooLarge);
    let mut big = request("POST", &format!("http://api.test:{p}/echo"));
    big.body = Some(vec![0; 101]);
    let (r, _) = e.client.send(&e.policy, SendMode::Live, big).await;
    assert!(matches!(r, Err(HttpError::InvalidRequest(_))), "{r:?}");
    // The guest asks for 5 s; the host's maximum is 300 ms.
    let (r, _) = e
        .client
        .send(
            &e.policy,
            SendMode::Live,
            request("GET", &format!("http://api.test:{p}/slow?ms=2000")),
        )
        .await;
    assert_eq!(r.unwrap_err(), HttpError::Timeout);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_installation_throttle_spaces_and_caps_requests_per_host() {
    let e = env(EgressLimits::default()).await;
    let throttle = std::sync::Arc::new(Throttle::new(RateLimits {
        requests_per_second: Some(20.0),
        max_concurrent: Some(1),
    }));
    let url = format!("http://api.test:{}/slow?ms=30", e.api.addr.port());
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, policy, throttle, url) = (
            e.client.clone(),
            e.policy.clone(),
            throttle.clone(),
            url.clone(),
        );
        tasks.push(tokio::spawn(async move {
            client
                .send_throttled(
                    &policy,
                    SendMode::Live,
                    Some(&throttle),
                    None,
                    request("GET", &url),
                )
                .await
                .0
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.unwrap().unwrap().status,
            200,
            "excess requests wait, they are not dropped"
        );
    }
    assert_eq!(e.api.max_in_flight(), 1);
    let arrivals = e.api.arrivals("/slow");
    assert_eq!(arrivals.len(), 4);
    for pair in arrivals.windows(2) {
        // 20 per second: starts at least 50 ms apart (a lower bound, so it cannot flake).
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(45),
            "{:?}",
            pair[1] - pair[0]
        );
    }
}

/// Mutates seed URLs with characters attackers use, deterministically.
fn mutants(seeds: &[String], count: usize) -> Vec<String> {
    const PIECES: &[&str] = &[
        "@",
        ":",
        ".",
        "..",
        "/",
        "\\",
        "%2e",
        "%00",
        "#",
        "?",
        "[",
        "]",
        "::1",
        "0x7f",
        "127.0.0.1",
        "xn--",
        "ß",
        "İ",
        "\u{3002}",
        "\t",
        " ",
        "stripe.test",
        "two.test",
        "evil",
        "-",
        "_",
        "8080",
        "443",
        "//",
        "https://",
        "http:",
        "ｓｔｒｉｐｅ",
        "\u{200b}",
        "1",
        "0",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    (0..count)
        .map(|_| {
            let mut url = seeds[next(seeds.len())].clone();
            for _ in 0..1 + next(3) {
                let at = next(url.len() + 1);
                let at = (0..=at)
                    .rev()
                    .find(|i| url.is_char_boundary(*i))
                    .unwrap_or(0);
                url.insert_str(at, PIECES[next(PIECES.len())]);
            }
            url
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_enforcement_path_does_what_the_pure_matcher_decides_on_random_urls() {
    let oracle = Oracle::start().await.unwrap();
    let mut allowed = 0;
    for url in mutants(&oracle.seeds(), 20_000) {
        if let Some(problem) = oracle.disagreement(&url).await {
            panic!("{problem}");
        }
        allowed += usize::from(oracle.allows(&url));
    }
    assert!(
        allowed > 100,
        "the mutants exercise the allowed path too ({allowed})"
    );
}

#[tokio::test]
async fn manifest_caps_apply_within_the_host_maxima() {
    let host = EgressLimits {
        max_response_bytes: 1000,
        ..EgressLimits::default()
    };
    let e = env(host).await;
    let p = e.api.addr.port();
    let send = |path: String, caps: RequestCaps| {
        let req = request("GET", &format!("http://api.test:{p}{path}"));
        e.client
            .send_throttled(&e.policy, SendMode::Live, None, Some(caps), req)
    };
    let tight = RequestCaps {
        timeout: Duration::from_millis(200),
        max_response_bytes: 500,
    };
    assert_eq!(
        send("/big?bytes=500".into(), tight)
            .await
            .0
            .unwrap()
            .body
            .len(),
        500
    );
    assert_eq!(
        send("/big?bytes=501".into(), tight).await.0.unwrap_err(),
        HttpError::ResponseTooLarge
    );
    assert_eq!(
        send("/slow?ms=1500".into(), tight).await.0.unwrap_err(),
        HttpError::Timeout
    );
    let generous = RequestCaps {
        timeout: Duration::from_secs(5),
        max_response_bytes: 1 << 30,
    };
    assert_eq!(
        send("/big?bytes=1001".into(), generous)
            .await
            .0
            .unwrap_err(),
        HttpError::ResponseTooLarge,
        "a manifest cannot raise the host maximum"
    );
}
