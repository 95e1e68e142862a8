use super::*;
use crate::manifest::EgressEntry;

fn entry(host: &str, scheme: Option<&str>, port: Option<u16>) -> EgressRule {
    EgressRule::from_manifest(&EgressEntry {
        host: host.into(),
        service: format!("svc:{host}"),
        scheme: scheme.map(Into::into),
        port,
    })
    .unwrap()
}

fn policy() -> EgressPolicy {
    EgressPolicy::new(vec![
        entry("stripe.com", None, None),
        entry("API.Xero.com.", None, None),
        entry("xn--bcher-kva.example", None, None),
        entry("legacy.example", Some("http"), Some(8080)),
        entry("203.0.113.7", None, None),
        entry("2001:db8::1", None, None),
        EgressRule::from_config_url("endpoint", "http://shop.test:8080/api", "shop").unwrap(),
    ])
}

/// `Ok(service)` for an allowed URL, `Err(rule)` for a denied one.
fn check(url: &str, expected: Result<&str, &str>) {
    let got = policy()
        .check(url)
        .map(|g| g.rule.service)
        .map_err(|d| d.rule.as_str().to_string());
    assert_eq!(
        got.as_ref().map(String::as_str).map_err(String::as_str),
        expected,
        "{url}"
    );
}

#[test]
fn domains_cover_their_subdomains_only() {
    check("https://stripe.com/v1/charges", Ok("svc:stripe.com"));
    check("https://api.stripe.com/v1", Ok("svc:stripe.com"));
    check("https://a.b.stripe.com", Ok("svc:stripe.com"));
    check("https://STRIPE.COM./x", Ok("svc:stripe.com"));
    check("https://evilstripe.com/", Err("no-matching-entry"));
    check("https://stripe.com.evil.com/", Err("no-matching-entry"));
    check("https://stripe.co/", Err("no-matching-entry"));
    check("https://tripe.com/", Err("no-matching-entry"));
    check("https://api.xero.com/", Ok("svc:API.Xero.com."));
    check("https://xero.com/", Err("no-matching-entry"));
    check(
        "https://xn--bcher-kva.example/",
        Ok("svc:xn--bcher-kva.example"),
    );
    check(
        "https://shop.xn--bcher-kva.example/",
        Ok("svc:xn--bcher-kva.example"),
    );
}

#[test]
fn scheme_and_port_must_match_the_entry() {
    check("http://stripe.com/", Err("scheme"));
    check("https://stripe.com:443/", Ok("svc:stripe.com"));
    check("https://stripe.com:8443/", Err("port"));
    check("http://legacy.example:8080/", Ok("svc:legacy.example"));
    check("http://legacy.example/", Err("port"));
    check("https://legacy.example:8080/", Err("scheme"));
    check("ftp://stripe.com/", Err("scheme"));
    check("http://shop.test:8080/api/v1/orders?x=1", Ok("shop"));
    check("http://shop.test/api", Err("port"));
    check("http://www.shop.test:8080/", Err("no-matching-entry"));
}

#[test]
fn ambiguous_urls_are_refused() {
    check("https://user:pw@stripe.com/", Err("userinfo"));
    check("https://stripe.com@evil.com/", Err("userinfo"));
    check("https://evil.com\\@stripe.com/", Err("userinfo"));
    check("https://evil.com\\.stripe.com/", Err("malformed-url"));
    check("https://stri%70e.com/", Err("malformed-url"));
    check("https://stripe.com /", Err("malformed-url"));
    check("https://stripe.com\t/", Err("malformed-url"));
    check("https://bücher.example/", Err("malformed-url"));
    check("stripe.com/v1", Err("malformed-url"));
    check("//stripe.com/v1", Err("malformed-url"));
    check("https:///", Err("malformed-url"));
    check("https://stripe..com/", Err("malformed-url"));
    check("https://api..stripe.com/", Err("malformed-url"));
    check("https://stripe.com:/", Err("malformed-url"));
    check("https://[2001:db8::1]:/", Err("malformed-url"));
    check("", Err("malformed-url"));
}

#[test]
fn ip_literals_need_an_entry_naming_them() {
    check("https://203.0.113.7/", Ok("svc:203.0.113.7"));
    check("https://[2001:db8::1]/", Ok("svc:2001:db8::1"));
    check("https://[2001:0db8:0:0::1]/", Ok("svc:2001:db8::1"));
    check("https://3405803783/", Ok("svc:203.0.113.7"));
    check("https://127.0.0.1/", Err("ip-literal"));
    check("https://2130706433/", Err("ip-literal"));
    check("https://0x7f000001/", Err("ip-literal"));
    check("https://0177.0.0.1/", Err("ip-literal"));
    check("https://127.1/", Err("ip-literal"));
    check("https://[::1]/", Err("ip-literal"));
    check("https://[::ffff:127.0.0.1]/", Err("ip-literal"));
    check("http://169.254.169.254/latest/meta-data", Err("ip-literal"));
    check("https://[fd00:ec2::254]/", Err("ip-literal"));
}

#[test]
fn an_empty_policy_denies_everything() {
    let empty = EgressPolicy::default();
    assert_eq!(
        empty.check("https://stripe.com/").unwrap_err().rule,
        DenialRule::NoMatchingEntry
    );
}

#[test]
fn bad_entries_are_rejected() {
    for host in [
        "",
        "*.stripe.com",
        "stripe.com/x",
        "user@stripe.com",
        "a b.com",
        "stripe.com:443",
        "https://stripe.com",
        "stripe..com",
        ".stripe.com",
        "bücher.example",
        "com",
        "test",
        "localhost",
        "co.uk",
        "CO.UK.",
        "myshopify.com",
        "github.io",
    ] {
        let e = EgressEntry {
            host: host.into(),
            service: "s".into(),
            scheme: None,
            port: None,
        };
        assert!(EgressRule::from_manifest(&e).is_err(), "`{host}` accepted");
    }
    let e = EgressEntry {
        host: "x.com".into(),
        service: "s".into(),
        scheme: Some("ftp".into()),
        port: None,
    };
    assert!(EgressRule::from_manifest(&e).is_err());
}

#[test]
fn entries_under_a_public_suffix_are_accepted() {
    for host in [
        "stripe.com",
        "shop.myshopify.com",
        "example.co.uk",
        "api.test",
    ] {
        entry(host, None, None);
    }
}

#[test]
fn config_urls_with_an_empty_port_are_rejected() {
    assert!(EgressRule::from_config_url("k", "https://shop.test:/x", "s").is_err());
    assert!(EgressRule::from_config_url("k", "https://shop.test:443/x", "s").is_ok());
}

#[test]
fn a_malformed_url_is_not_quoted_back() {
    let secret = "tok3n-in-path";
    for url in [
        format!("https://stripe.com/{secret} x"),
        format!("https://stripe.com:/{secret}?q={secret}"),
        format!("https://stri%70e.com/{secret}"),
        format!("https://stripe..com/{secret}"),
    ] {
        let denial = policy().check(&url).unwrap_err();
        assert_eq!(denial.rule, DenialRule::MalformedUrl, "{url}");
        assert!(!denial.reason.contains(secret), "{}", denial.reason);
    }
}
