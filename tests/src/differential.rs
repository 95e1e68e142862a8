//! The differential oracle for egress: what the pure matcher
//! (`EgressPolicy::check`) decides about a URL must be what happens in the
//! world when the enforcement point (`EgressClient::send`) is given it.
//!
//! The world is observed, not asked: a fake DNS ([`airlock::egress::Lookup`])
//! records every name the client resolves, and a [`Witness`] server on
//! loopback records the address each connection arrived at, the `Host`
//! header and the request target. A denied URL must leave no trace in
//! either; an allowed one must have resolved exactly the host the policy
//! checked (nothing for an IP literal), connected to that host's address and
//! named it in `Host`. An allowed URL must also be allowed again, by the same
//! rule, once normalised. Used by the randomized test in `tests/e2e/egress.rs`
//! and the cargo-fuzz target in `fuzz/`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock::egress::policy::RequestHost;
use airlock::egress::{
    AddressPolicy, EgressClient, EgressLimits, EgressPolicy, EgressRule, HttpError, HttpRequest,
    Lookup, ResolveOverrides, SendMode,
};
use airlock::manifest::EgressEntry;

use crate::fake_api::Witness;

/// Fake DNS: names under `two.test` are at 127.0.0.2, every other name at
/// 127.0.0.1; every name asked is recorded.
#[derive(Default)]
struct FakeDns {
    asked: Mutex<Vec<String>>,
}

/// Where [`FakeDns`] says `name` is.
fn address_of(name: &str) -> IpAddr {
    if name == "two.test" || name.ends_with(".two.test") {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

impl Lookup for FakeDns {
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        self.asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_string());
        Some(vec![address_of(name)])
    }
}

/// The policy, the enforcement point and the observers of the world.
pub struct Oracle {
    client: EgressClient,
    policy: EgressPolicy,
    dns: Arc<FakeDns>,
    witness: Witness,
}

/// A policy with domain entries on the witness's port (one of them at
/// another loopback address), and an IP entry.
fn policy(port: u16) -> EgressPolicy {
    let rule = |host: &str| {
        EgressRule::from_manifest(&EgressEntry {
            host: host.into(),
            service: host.into(),
            scheme: Some("http".into()),
            port: Some(port),
        })
        .expect("valid entry")
    };
    EgressPolicy::new(vec![
        rule("stripe.test"),
        rule("shop.test"),
        rule("two.test"),
        rule("127.0.0.1"),
    ])
}

impl Oracle {
    /// Starts the witness and builds the client (loopback allowed, names
    /// answered by the fake DNS) and the policy.
    pub async fn start() -> std::io::Result<Self> {
        let witness = Witness::start().await?;
        let dns = Arc::new(FakeDns::default());
        let client = EgressClient::new(
            EgressLimits::default(),
            ResolveOverrides::default().with_hook(dns.clone()),
            AddressPolicy::new(vec!["127.0.0.0/8".parse().expect("a network")]),
        )
        .map_err(std::io::Error::other)?;
        Ok(Self {
            policy: policy(witness.port),
            client,
            dns,
            witness,
        })
    }

    /// URLs to mutate: allowed and nearly allowed ones, on the witness's port.
    pub fn seeds(&self) -> Vec<String> {
        let p = self.witness.port;
        [
            "http://stripe.test:{P}/v1",
            "http://api.stripe.test:{P}/x?y=1",
            "http://shop.test:{P}/api/v1/orders",
            "http://a.two.test:{P}/",
            "http://127.0.0.1:{P}/",
            "http://evilstripe.test:{P}/",
            "https://stripe.test/v1",
        ]
        .iter()
        .map(|s| s.replace("{P}", &p.to_string()))
        .collect()
    }

    /// Whether the pure matcher allows `url`.
    pub fn allows(&self, url: &str) -> bool {
        self.policy.check(url).is_ok()
    }

    /// `Some(description)` if what happened to `url` differs from what the
    /// pure matcher decided.
    pub async fn disagreement(&self, url: &str) -> Option<String> {
        self.dns
            .asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.witness.take();
        let pure = self.policy.check(url);
        let request = HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: None,
            timeout: Some(Duration::from_secs(5)),
        };
        let (result, _) = self
            .client
            .send(&self.policy, SendMode::Live, request)
            .await;
        let asked = std::mem::take(&mut *self.dns.asked.lock().unwrap_or_else(|p| p.into_inner()));
        let arrived = self.witness.take();
        let grant = match pure {
            Err(denial) => {
                let refused_alike =
                    matches!(&result, Err(HttpError::Denied(d)) if d.rule == denial.rule);
                return (!refused_alike || !asked.is_empty() || !arrived.is_empty()).then(|| {
                    format!(
                        "{url:?}: the matcher denies ({denial}) but the client gave {result:?}, \
                         resolved {asked:?} and the server saw {arrived:?}"
                    )
                });
            }
            Ok(grant) => grant,
        };
        let (expected_names, address) = match &grant.host {
            RequestHost::Domain(name) => (vec![name.clone()], address_of(name)),
            RequestHost::Ip(ip) => (vec![], *ip),
        };
        let host_header = match grant.url.port() {
            Some(port) => format!("{}:{port}", grant.url.host_str().unwrap_or_default()),
            None => grant.url.host_str().unwrap_or_default().to_string(),
        };
        let target = match grant.url.query() {
            Some(q) => format!("{}?{q}", grant.url.path()),
            None => grant.url.path().to_string(),
        };
        let seen_right = matches!(
            arrived.as_slice(),
            [one] if one.local.ip() == address
                && one.local.port() == grant.port
                && one.host.as_deref() == Some(host_header.as_str())
                && one.target == target
        );
        if asked != expected_names || !seen_right || result.is_err() {
            return Some(format!(
                "{url:?}: the matcher allows {} by {}, expecting a lookup of {expected_names:?} \
                 and one request at {address}:{} for Host {host_header} {target}; \
                 the client gave {result:?}, resolved {asked:?} and the server saw {arrived:?}",
                grant.host, grant.rule, grant.port
            ));
        }
        match self.policy.check(grant.url.as_str()) {
            Ok(again) if again.rule == grant.rule => None,
            other => Some(format!(
                "{url:?} normalised to {} is judged {other:?}",
                grant.url
            )),
        }
    }
}
