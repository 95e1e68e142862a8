//! Inbound webhooks: a third party calling into a connector.
//!
//! A manifest declares its webhooks (`[[webhooks]]`); the component then
//! exports `webhook-handler` (world `webhook-connector`). Each declared
//! webhook of an installation has a stable URL on `serve`'s listener,
//! `/hooks/{tenant}/{installation}/{webhook}/{secret}`, where the secret is
//! the installation's (one for all its webhooks, made and rotated with
//! `airlock webhooks secret`; 16 letters and digits, so it also fits
//! services that cap it, like SALESmanago's "security parameter").
//!
//! What a delivery goes through, in order (`web/hooks.rs`), nothing of it
//! running until every check has passed:
//! 1. the secret, compared by its sha256 in constant time; a wrong one, an
//!    unknown tenant, installation or webhook, a disabled installation: a
//!    bare 404, as for a feed;
//! 2. the method (405) and the installation's rate
//!    (`webhook_deliveries_per_minute`, 429 with `Retry-After`: [`RateLimiter`]);
//! 3. the body, read up to the webhook's `max_body_kb` (413 past it);
//! 4. the signature, when the manifest asks for one ([`verify_signature`]:
//!    HMAC-SHA256 with a config secret, 401 when it does not verify);
//! 5. the delivery id, when the sender gives one: one already handled by a
//!    committed run is answered 200 and not run again.
//!
//! The delivery is then a run (trigger `webhook`, feed = the webhook's name)
//! through [`crate::Airlock::run_webhook_settled`]: same sandbox, limits,
//! audit and test mode as a feed's run, its effects committed with its
//! record all or nothing. Deliveries of one installation run one at a time
//! ([`Deliveries::installation_lock`]), and at most
//! [`MAX_CONCURRENT_DELIVERIES`] run at once on the host.

mod limiter;
mod signature;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

pub use limiter::RateLimiter;
pub use signature::{SIGNATURE_TOLERANCE_SECS, SignatureError, verify_signature};

use crate::storage::Scope;

/// Length of a webhook secret made by the host.
pub const SECRET_LEN: usize = 16;

/// Deliveries that may run at once on one host, all installations together;
/// one more is answered 503 (the sender delivers it again).
pub const MAX_CONCURRENT_DELIVERIES: usize = 16;

/// Deliveries of one tenant's installations that may run at once: a
/// quarter of the host's, so one tenant's slow deliveries (across many
/// installations) leave slots to the others.
pub const MAX_TENANT_DELIVERIES: usize = 4;

/// Request headers never passed to the guest: they carry credentials meant
/// for the host or a proxy, not for the connector.
pub const WITHHELD_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// A new webhook secret: [`SECRET_LEN`] letters and digits from the OS RNG.
pub fn new_secret() -> String {
    crate::url_secret::generate_alphanumeric(SECRET_LEN)
}

/// Whether `secret` may be set as an installation's webhook secret (by an
/// operator moving an existing integration whose URL a third party already
/// has): 8 to 64 letters, digits, `-` and `_`.
pub fn check_secret(secret: &str) -> Result<(), String> {
    let ok = (8..=64).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err("a webhook secret is 8 to 64 letters, digits, `-` and `_`".to_string())
    }
}

/// The headers of a delivery as the guest gets them: names lower case,
/// values that are not text dropped, credentials withheld.
pub fn headers_for_guest(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !WITHHELD_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.into())))
        .collect()
}

/// What `serve`'s listener keeps between deliveries: each installation's
/// rate limiter and lock, and the host-wide cap on deliveries running.
pub struct Deliveries {
    limiters: Mutex<HashMap<Scope, Arc<RateLimiter>>>,
    locks: Mutex<HashMap<Scope, Arc<tokio::sync::Mutex<()>>>>,
    running: Arc<Semaphore>,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A delivery's place among those running: one of the host's slots and one
/// of its tenant's, given back when dropped.
pub struct Slot {
    _host: tokio::sync::OwnedSemaphorePermit,
    _tenant: tokio::sync::OwnedSemaphorePermit,
}

impl Default for Deliveries {
    fn default() -> Self {
        Self {
            limiters: Mutex::default(),
            locks: Mutex::default(),
            running: Arc::new(Semaphore::new(MAX_CONCURRENT_DELIVERIES)),
            tenants: Mutex::default(),
        }
    }
}

impl Deliveries {
    /// The rate limiter of `scope`, allowing `per_minute` deliveries a
    /// minute (a limiter made with another rate, before an upgrade changed
    /// it, is replaced).
    pub fn limiter(&self, scope: &Scope, per_minute: u32) -> Arc<RateLimiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        let entry = limiters
            .entry(scope.clone())
            .or_insert_with(|| Arc::new(RateLimiter::per_minute(per_minute)));
        if entry.rate() != per_minute {
            *entry = Arc::new(RateLimiter::per_minute(per_minute));
        }
        entry.clone()
    }

    /// The rate limiter of `scope`, if one was made (at an earlier
    /// delivery, with the rate its manifest gave then).
    pub fn known_limiter(&self, scope: &Scope) -> Option<Arc<RateLimiter>> {
        self.limiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope)
            .cloned()
    }

    /// The lock a delivery of `scope` holds while it runs: one delivery of
    /// an installation at a time, so a replay racing its original sees it
    /// handled.
    pub fn installation_lock(&self, scope: &Scope) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(scope.clone())
            .or_default()
            .clone()
    }

    /// A slot to run a delivery of `tenant` in, if one of the host's
    /// [`MAX_CONCURRENT_DELIVERIES`] and one of the tenant's
    /// [`MAX_TENANT_DELIVERIES`] are free.
    pub fn try_slot(&self, tenant: &str) -> Option<Slot> {
        let of_tenant = self
            .tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_TENANT_DELIVERIES)))
            .clone();
        let tenant = of_tenant.try_acquire_owned().ok()?;
        let host = self.running.clone().try_acquire_owned().ok()?;
        Some(Slot {
            _host: host,
            _tenant: tenant,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_withheld_from_the_guest_and_names_are_lower_case() {
        let mut headers = http::HeaderMap::new();
        headers.insert("Authorization", "Bearer abc".parse().unwrap());
        headers.insert("Cookie", "s=1".parse().unwrap());
        headers.insert("X-Signature", "sha256=00".parse().unwrap());
        headers.insert("Content-Type", "application/json".parse().unwrap());
        let got = headers_for_guest(&headers);
        assert_eq!(
            got,
            vec![
                ("x-signature".to_string(), "sha256=00".to_string()),
                ("content-type".to_string(), "application/json".to_string()),
            ]
        );
    }

    #[test]
    fn one_tenant_takes_at_most_its_share_of_the_slots() {
        let deliveries = Deliveries::default();
        let acme: Vec<Slot> = (0..MAX_TENANT_DELIVERIES)
            .map(|_| deliveries.try_slot("acme").expect("acme's share"))
            .collect();
        assert!(deliveries.try_slot("acme").is_none(), "acme past its share");
        // The others still get the rest of the host's slots, then no more.
        let others: Vec<Slot> = (0..MAX_CONCURRENT_DELIVERIES - MAX_TENANT_DELIVERIES)
            .map(|n| {
                deliveries
                    .try_slot(&format!("t{}", n / MAX_TENANT_DELIVERIES))
                    .expect("another tenant's slot")
            })
            .collect();
        assert!(deliveries.try_slot("globex").is_none(), "past the host's");
        drop(acme);
        assert!(
            deliveries.try_slot("acme").is_some(),
            "slots are given back"
        );
        drop(others);
    }

    #[test]
    fn operator_secrets_are_checked() {
        assert!(check_secret("abcdEFGH").is_ok());
        assert!(check_secret("short").is_err());
        assert!(check_secret("has space in it").is_err());
        assert!(check_secret(&"a".repeat(65)).is_err());
        assert!(check_secret(&new_secret()).is_ok());
    }
}
