//! The HTTP capability: `airlock:connector/http` and standard `wasi:http`,
//! both served by one [`HttpCapability`] per run, so both go through the same
//! enforcement point ([`EgressClient`]) under the same per-run budget
//! (requests, requests in flight) and into the same capped, redacted audit.
//!
//! What a request may reach is the egress policy's ([`crate::egress`], no
//! wasmtime); this module only counts, waits and records.

mod host;
mod wasi_http;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi_http::WasiHttpView;

pub use wasi_http::WasiHttpState;

use crate::config::Redactor;
use crate::egress::{
    EgressClient, EgressPolicy, HttpCall, HttpError, HttpRequest, HttpResponse, RequestCaps,
    SendMode, Throttle,
};
use crate::runtime::bindings::airlock::connector::http as wit;

/// The per-run bounds on HTTP, both interfaces together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpBudget {
    /// Requests a run may make (a request's redirect hops are part of it).
    pub max_requests: u32,
    /// Requests a run may have in flight at once; more wait their turn.
    pub max_in_flight: u32,
    /// Audit records (requests and redirect hops) kept for the run's report
    /// and the audit table; more are counted and dropped.
    pub max_audit_hops: u32,
}

/// The audit of one run's HTTP hops, capped like the log: past the cap,
/// hops are counted and dropped.
#[derive(Debug, Default)]
pub struct HttpAudit {
    /// The hops kept, in order.
    pub calls: Vec<HttpCall>,
    /// Hops not kept: over the audit cap, or requests refused over the
    /// request cap.
    pub dropped: u32,
}

/// A run's HTTP state shared by all its requests.
struct HttpRunBudget {
    budget: HttpBudget,
    in_flight: Arc<Semaphore>,
    requests: AtomicU32,
    audit: Mutex<HttpAudit>,
    /// Told of every response a guest's request got (the OAuth capability,
    /// which watches for a refreshed token refused with 401).
    watch: OnceLock<Weak<dyn ResponseWatch>>,
}

/// What another capability may learn of a guest's responses: the status,
/// and the bearer token the request carried, if any. Nothing else (no body,
/// no URL).
pub trait ResponseWatch: Send + Sync {
    /// A guest's request carrying `bearer` (its `Authorization: Bearer`
    /// token, if any) got `status`.
    fn note_response(&self, status: u16, bearer: Option<&str>);
}

/// Held while one request is in flight; frees its slot when dropped.
pub struct InFlight {
    _permit: OwnedSemaphorePermit,
}

/// The HTTP capability of one run, behind both `airlock:connector/http` and
/// `wasi:http`.
#[derive(Clone)]
pub struct HttpCapability {
    /// The enforcement point every request goes through.
    client: EgressClient,
    /// What the installation may reach.
    policy: Arc<EgressPolicy>,
    /// The installation's per-destination rate limits.
    throttle: Arc<Throttle>,
    /// The manifest's bounds on each request.
    caps: RequestCaps,
    /// Test mode suppresses what would change a third party.
    mode: SendMode,
    /// The installation's secrets, redacted from every audit record.
    redactor: Redactor,
    /// The run's request count, in-flight slots and audit, shared by clones.
    run: Arc<HttpRunBudget>,
}

impl HttpCapability {
    /// The capability of one run, with nothing sent yet.
    pub fn new(
        client: EgressClient,
        policy: Arc<EgressPolicy>,
        throttle: Arc<Throttle>,
        caps: RequestCaps,
        mode: SendMode,
        budget: HttpBudget,
        redactor: Redactor,
    ) -> Self {
        let run = HttpRunBudget {
            budget,
            in_flight: Arc::new(Semaphore::new(budget.max_in_flight.max(1) as usize)),
            requests: AtomicU32::new(0),
            audit: Mutex::new(HttpAudit::default()),
            watch: OnceLock::new(),
        };
        Self {
            client,
            policy,
            throttle,
            caps,
            mode,
            redactor,
            run: Arc::new(run),
        }
    }

    /// Counts a request against the run's request cap, then waits for one
    /// of the run's in-flight slots. A request over the cap is refused:
    /// nothing is sent, and it is counted as a dropped audit record.
    pub async fn admit(&self) -> Result<InFlight, HttpError> {
        let max = self.run.budget.max_requests;
        if self.run.requests.fetch_add(1, Ordering::Relaxed) >= max {
            let mut audit = self.audit();
            audit.dropped = audit.dropped.saturating_add(1);
            return Err(HttpError::InvalidRequest(format!(
                "not sent: the run reached its limit of {max} HTTP requests"
            )));
        }
        let semaphore = self.run.in_flight.clone();
        // The semaphore is never closed, so acquiring only waits.
        let permit = semaphore
            .acquire_owned()
            .await
            .map_err(|_| HttpError::ConnectionFailed("the run is ending".into()))?;
        Ok(InFlight { _permit: permit })
    }

    /// Sends through the enforcement point under this run's policy, mode,
    /// throttle, caps and HTTP budget, and records the audit of every hop.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let _slot = self.admit().await?;
        self.send_admitted(request).await
    }

    /// [`send`](Self::send) for a request already [admitted](Self::admit).
    pub async fn send_admitted(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let bearer = bearer_token(&request.headers).map(str::to_string);
        let result = self.send_in_mode(self.mode, request).await;
        if let (Ok(response), Some(watch)) = (&result, self.run.watch.get())
            && let Some(watch) = watch.upgrade()
        {
            watch.note_response(response.status, bearer.as_deref());
        }
        result
    }

    async fn send_in_mode(
        &self,
        mode: SendMode,
        request: HttpRequest,
    ) -> Result<HttpResponse, HttpError> {
        let (result, hops) = self
            .client
            .send_throttled(
                &self.policy,
                mode,
                Some(&self.throttle),
                Some(self.caps),
                request,
            )
            .await;
        self.record(hops);
        result
    }

    /// A request the host makes for the run (an OAuth token request): like
    /// a guest's, it is checked by the egress policy, counted against the
    /// run's requests and audited; unlike one, it is sent in test mode too
    /// (getting a token changes nothing at the third party), and no
    /// [`ResponseWatch`] hears of it.
    pub async fn send_for_host(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let _slot = self.admit().await?;
        self.send_in_mode(SendMode::Live, request).await
    }

    /// Tells `watch` of every response a guest's request gets from now on
    /// (once per run; a second watch is ignored). Held weakly: the watch
    /// may hold this capability.
    pub fn watch_responses(&self, watch: Weak<dyn ResponseWatch>) {
        let _ = self.run.watch.set(watch);
    }

    /// Keeps `hops` in the audit up to its cap; counts the rest.
    fn record(&self, hops: Vec<HttpCall>) {
        let max = self.run.budget.max_audit_hops as usize;
        let mut audit = self.audit();
        let room = max.saturating_sub(audit.calls.len());
        let over = hops.len().saturating_sub(room);
        audit.calls.extend(
            hops.into_iter()
                .take(room)
                .map(|hop| hop.redacted(&self.redactor)),
        );
        audit.dropped = audit
            .dropped
            .saturating_add(u32::try_from(over).unwrap_or(u32::MAX));
    }

    fn audit(&self) -> std::sync::MutexGuard<'_, HttpAudit> {
        self.run.audit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the run's audit: the hops kept and the count dropped.
    pub fn take_audit(&self) -> HttpAudit {
        std::mem::take(&mut *self.audit())
    }
}

/// The token of an `Authorization: Bearer …` header, if `headers` have one.
fn bearer_token(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
}

/// Registers `airlock:connector/http`, served by the [`HttpCapability`] that
/// `get` finds in the store's data, and `wasi:http`, served through the
/// store's [`WasiHttpView`] (whose hooks are the same capability's, see
/// [`WasiHttpState`]).
pub fn add_to_linker<T: WasiHttpView + Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut HttpCapability,
) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    wit::add_to_linker::<T, HasSelf<HttpCapability>>(linker, get)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::egress::{AddressPolicy, EgressLimits};

    fn capability(budget: HttpBudget) -> HttpCapability {
        let client = EgressClient::new(
            EgressLimits::default(),
            Default::default(),
            AddressPolicy::new(vec![]),
        )
        .unwrap();
        HttpCapability::new(
            client,
            Arc::new(EgressPolicy::default()),
            Arc::new(Throttle::new(Default::default())),
            RequestCaps {
                timeout: Duration::from_secs(1),
                max_response_bytes: 1024,
            },
            SendMode::Live,
            budget,
            crate::config::Redactor::new([]),
        )
    }

    fn get(url: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: None,
            timeout: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_waits_for_an_in_flight_slot_and_stops_at_its_request_cap() {
        let http = capability(HttpBudget {
            max_requests: 4,
            max_in_flight: 2,
            max_audit_hops: 10,
        });
        let first = http.admit().await.unwrap();
        let _second = http.admit().await.unwrap();
        let third = tokio::time::timeout(Duration::from_secs(60), http.admit()).await;
        assert!(
            third.is_err(),
            "a third request waits while two are in flight"
        );
        drop(first);
        let _fourth = http.admit().await.unwrap();
        let Err(HttpError::InvalidRequest(refused)) = http.admit().await else {
            panic!("a fifth request is over the cap of 4");
        };
        assert!(refused.contains("limit of 4 HTTP requests"), "{refused}");
        assert_eq!(http.take_audit().dropped, 1, "the refusal is counted");
    }

    #[test]
    fn the_bearer_token_a_watch_is_told_of() {
        let check = |headers: &[(&str, &str)], expected: Option<&str>| {
            let headers: Vec<(String, String)> = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(bearer_token(&headers), expected, "{headers:?}");
        };
        check(&[("Authorization", "Bearer abc")], Some("abc"));
        check(&[("authorization", "bearer  abc ")], Some("abc"));
        check(&[("authorization", "Basic YWJj")], None);
        check(&[("x-token", "Bearer abc")], None);
        check(&[], None);
    }

    #[tokio::test]
    async fn the_audit_keeps_its_cap_and_counts_the_rest() {
        let http = capability(HttpBudget {
            max_requests: 100,
            max_in_flight: 1,
            max_audit_hops: 3,
        });
        for _ in 0..10 {
            let denied = http.send(get("https://evil.example/")).await;
            assert!(matches!(denied, Err(HttpError::Denied(_))), "{denied:?}");
        }
        let audit = http.take_audit();
        assert_eq!(audit.calls.len(), 3);
        assert_eq!(audit.dropped, 7);
    }
}
