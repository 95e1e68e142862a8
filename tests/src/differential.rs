//! The differential oracle for egress: the pure matcher
//! (`EgressPolicy::check`) and the enforcement path (`EgressClient::explain`,
//! the same checks `send` runs before the socket) must agree on every URL,
//! and an allowed URL must be allowed again, by the same rule, once
//! normalised. Used by the randomized test in `tests/e2e/egress.rs` and the
//! cargo-fuzz target in `fuzz/`.

use airlock::egress::{
    AddressPolicy, Decision, EgressClient, EgressLimits, EgressPolicy, EgressRule, HttpRequest,
    ResolveOverrides, SendMode,
};
use airlock::manifest::EgressEntry;

/// A policy with a domain, a plain-http entry on a port and an IP entry.
pub fn policy() -> EgressPolicy {
    let rule = |host: &str, scheme: &str, port: Option<u16>| {
        EgressRule::from_manifest(&EgressEntry {
            host: host.into(),
            service: host.into(),
            scheme: Some(scheme.into()),
            port,
        })
        .expect("valid entry")
    };
    EgressPolicy::new(vec![
        rule("stripe.com", "https", None),
        rule("shop.test", "http", Some(8080)),
        rule("203.0.113.7", "https", None),
    ])
}

/// A client that allows no private networks and resolves nothing by itself.
pub fn client() -> EgressClient {
    EgressClient::new(
        EgressLimits::default(),
        ResolveOverrides::default(),
        AddressPolicy::default(),
    )
    .expect("client")
}

/// `Some(description)` if the two paths disagree about `url`.
pub async fn disagreement(
    client: &EgressClient,
    policy: &EgressPolicy,
    url: &str,
) -> Option<String> {
    let pure = policy.check(url);
    let request = HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: vec![],
        body: None,
        timeout: None,
    };
    let enforced = client
        .explain(policy, SendMode::Live, &request, false)
        .await
        .decision;
    match (&pure, &enforced) {
        (Ok(grant), Decision::Allowed { rule, .. }) if *rule == grant.rule.to_string() => {}
        // IP literals an entry names still face the address check.
        (Ok(_), Decision::Denied { rule, .. }) if rule.as_str() == "resolved-address" => {
            return None;
        }
        (Err(d), Decision::Denied { rule, .. }) if d.rule == *rule => return None,
        _ => return Some(format!("{url:?}: pure {pure:?} vs enforced {enforced:?}")),
    }
    let grant = pure.expect("allowed");
    match policy.check(grant.url.as_str()) {
        Ok(again) if again.rule == grant.rule => None,
        other => Some(format!(
            "{url:?} normalised to {} is judged {other:?}",
            grant.url
        )),
    }
}
