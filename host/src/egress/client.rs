//! The single enforcement point for outbound HTTP: every request a guest makes,
//! and every redirect hop, passes [`EgressClient::send`], which checks the
//! request and the policy, applies test-mode suppression, resolves the host
//! (through the explicit test resolver if one is configured), sends with
//! reqwest, caps the response and records a [`HttpCall`] for the audit.
//!
//! It knows nothing about wasmtime: the runtime converts its types to WIT.
//! The pieces it uses live beside it: [`request`](super::request) (the
//! types), [`headers`], `redirect` (the next hop),
//! [`resolve`](super::resolve) and [`audit`](super::audit).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tracing::Instrument;

use super::address::AddressPolicy;
use super::audit::{Decision, HttpCall};
use super::headers;
use super::policy::{Denial, DenialRule, EgressPolicy, Grant, RequestHost};
use super::redirect;
use super::request::{
    EgressLimits, HttpError, HttpRequest, HttpResponse, METHODS, RequestCaps, SAFE_METHODS,
    SendMode,
};
use super::resolve::{AddressDenied, CheckingResolver, ResolveOverrides, bound_here};
use super::throttle::Throttle;
use super::trust::ExtraRoots;

/// What [`EgressClient::explain`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The decision `send` would take for the first hop.
    #[serde(flatten)]
    pub decision: Decision,
    /// The normalised host, when the URL parsed.
    pub host: Option<String>,
    /// The addresses the host resolved to (all checked), when resolved.
    pub addresses: Vec<std::net::IpAddr>,
    /// Why resolution failed, if it did (not a denial: DNS had no answer).
    pub lookup_error: Option<String>,
}

/// What every hop of one `send` is held to.
struct Hop<'a> {
    policy: &'a EgressPolicy,
    mode: SendMode,
    throttle: Option<&'a Throttle>,
    caps: RequestCaps,
}

/// A refusal before the socket: what the guest gets and what the audit says.
type Refusal = (HttpError, Decision);

fn invalid(reason: String) -> Refusal {
    (
        HttpError::InvalidRequest(reason.clone()),
        Decision::Invalid { reason },
    )
}

fn denied(denial: Denial) -> Refusal {
    let decision = Decision::denied(&denial);
    (HttpError::Denied(denial), decision)
}

/// Told of every decision [`EgressClient::send`] takes, one per hop (the
/// host counts them in its metrics).
pub type DecisionObserver = Arc<dyn Fn(&Decision) + Send + Sync>;

/// The HTTP client every guest request goes through. Cheap to clone.
#[derive(Clone)]
pub struct EgressClient {
    client: reqwest::Client,
    limits: EgressLimits,
    addresses: AddressPolicy,
    resolver: CheckingResolver,
    observer: Option<DecisionObserver>,
}

impl EgressClient {
    /// A client with the given limits, test resolver overrides and address
    /// policy. Ignores proxy environment variables and never follows
    /// redirects on its own.
    pub fn new(
        limits: EgressLimits,
        overrides: ResolveOverrides,
        addresses: AddressPolicy,
    ) -> Result<Self, reqwest::Error> {
        Self::with_extra_roots(limits, overrides, addresses, &ExtraRoots::default())
    }

    /// [`EgressClient::new`] that also trusts `roots` beside the platform's
    /// certificates (a fake of a third party's fixed https host).
    pub fn with_extra_roots(
        limits: EgressLimits,
        overrides: ResolveOverrides,
        addresses: AddressPolicy,
        roots: &ExtraRoots,
    ) -> Result<Self, reqwest::Error> {
        let resolver = CheckingResolver {
            overrides,
            addresses: addresses.clone(),
        };
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(resolver.clone()))
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")));
        if !roots.is_empty() {
            builder = builder.tls_certs_merge(roots.certificates()?);
        }
        let client = builder.build()?;
        Ok(Self {
            client,
            limits,
            addresses,
            resolver,
            observer: None,
        })
    }

    /// The same client, telling `observer` of each decision it takes when
    /// it sends (not when it only explains).
    pub fn observed(mut self, observer: DecisionObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The host-wide limits it enforces.
    pub fn limits(&self) -> &EgressLimits {
        &self.limits
    }

    /// What [`send`](Self::send) would decide for `request`'s first hop,
    /// without sending anything: the same checks, and with `resolve` the same
    /// resolution and address checks, stopping before the socket.
    pub async fn explain(
        &self,
        policy: &EgressPolicy,
        mode: SendMode,
        request: &HttpRequest,
        resolve: bool,
    ) -> Explanation {
        let grant = match self.decide(policy, mode, request) {
            Ok(grant) => grant,
            Err((_, decision)) => {
                return Explanation {
                    decision,
                    host: None,
                    addresses: vec![],
                    lookup_error: None,
                };
            }
        };
        let mut explanation = Explanation {
            decision: Decision::allowed(&grant),
            host: Some(grant.host.to_string()),
            addresses: vec![],
            lookup_error: None,
        };
        match grant.host {
            RequestHost::Ip(ip) => explanation.addresses.push(ip),
            RequestHost::Domain(ref name) if resolve => {
                match self.resolver.resolve_checked(name).await {
                    Ok(addrs) => explanation.addresses = addrs.iter().map(SocketAddr::ip).collect(),
                    Err(e) => match e.downcast_ref::<AddressDenied>() {
                        Some(AddressDenied(d)) => explanation.decision = Decision::denied(d),
                        None => explanation.lookup_error = Some(e.to_string()),
                    },
                }
            }
            RequestHost::Domain(_) => {}
        }
        explanation
    }

    /// Checks and sends `request` under `policy`, following redirects (each
    /// hop re-checked). Returns the result for the guest and one audit record
    /// per hop, including a refused one.
    pub async fn send(
        &self,
        policy: &EgressPolicy,
        mode: SendMode,
        request: HttpRequest,
    ) -> (Result<HttpResponse, HttpError>, Vec<HttpCall>) {
        self.send_throttled(policy, mode, None, None, request).await
    }

    /// [`send`](Self::send) for one installation: each allowed hop first
    /// waits its turn under the installation's per-destination `throttle`,
    /// and is bounded by its `caps` (within the host-wide limits).
    pub async fn send_throttled(
        &self,
        policy: &EgressPolicy,
        mode: SendMode,
        throttle: Option<&Throttle>,
        caps: Option<RequestCaps>,
        request: HttpRequest,
    ) -> (Result<HttpResponse, HttpError>, Vec<HttpCall>) {
        let caps = self.effective_caps(caps);
        let hop = Hop {
            policy,
            mode,
            throttle,
            caps,
        };
        let mut calls = Vec::new();
        let result = self.send_following(&hop, request, &mut calls).await;
        if let Some(observe) = &self.observer {
            calls.iter().for_each(|call| observe(&call.decision));
        }
        (result, calls)
    }

    /// `caps` bounded by the host-wide limits (the host's own when none).
    fn effective_caps(&self, caps: Option<RequestCaps>) -> RequestCaps {
        let host = RequestCaps {
            timeout: self.limits.max_timeout,
            max_response_bytes: self.limits.max_response_bytes,
        };
        match caps {
            Some(c) => RequestCaps {
                timeout: c.timeout.min(host.timeout),
                max_response_bytes: c.max_response_bytes.min(host.max_response_bytes),
            },
            None => RequestCaps {
                timeout: self.limits.default_timeout.min(host.timeout),
                ..host
            },
        }
    }

    /// Sends hop after hop until a response is not a redirect; a hop past
    /// the limit, or to a location that is not a URL, is refused and audited.
    async fn send_following(
        &self,
        hop: &Hop<'_>,
        mut request: HttpRequest,
        calls: &mut Vec<HttpCall>,
    ) -> Result<HttpResponse, HttpError> {
        request.method = request.method.to_ascii_uppercase();
        let mut hops = 0;
        loop {
            let (response, call) = self.send_one(hop, &request).await;
            calls.push(call);
            let response = response?;
            let Some(location) = redirect::target(&response) else {
                return Ok(response);
            };
            let Some(next) = redirect::next_request(&request, response.status, &location) else {
                let (error, decision) = invalid("the redirect location is not a URL".into());
                calls.push(HttpCall::new(&request.method, &request.url, decision));
                return Err(error);
            };
            hops += 1;
            if hops > self.limits.max_redirects {
                let (error, decision) = denied(Denial::new(
                    DenialRule::RedirectLimit,
                    format!("more than {} redirects", self.limits.max_redirects),
                ));
                calls.push(HttpCall::new(&next.method, &next.url, decision));
                return Err(error);
            }
            request = next;
        }
    }

    /// One hop, in a client span of its own (see [`crate::telemetry`]):
    /// its method (`_OTHER` when not one the host sends), decision and
    /// status, and, when the policy allowed it, its host and port; never
    /// its path or query. A refused hop's host is the guest's text, which
    /// could hold anything (a secret as a subdomain): it stays out.
    async fn send_one(
        &self,
        hop: &Hop<'_>,
        request: &HttpRequest,
    ) -> (Result<HttpResponse, HttpError>, HttpCall) {
        use tracing::field::Empty;
        let method = match METHODS.contains(&request.method.as_str()) {
            true => request.method.as_str(),
            false => "_OTHER",
        };
        let span = tracing::debug_span!(
            "http.request",
            otel.name = method,
            otel.kind = "client",
            http.request.method = method,
            server.address = Empty,
            server.port = Empty,
            airlock.egress.decision = Empty,
            http.response.status_code = Empty,
            otel.status_code = Empty,
        );
        let (result, call) = self
            .decide_and_send(hop, request, &span)
            .instrument(span.clone())
            .await;
        span.record("airlock.egress.decision", call.decision.verdict());
        if matches!(call.decision, Decision::Allowed { .. }) {
            span.record("server.address", call.host.as_str());
            if let Some(port) = call.port {
                span.record("server.port", port);
            }
        }
        if let Some(status) = call.status {
            span.record("http.response.status_code", status);
        }
        if result.is_err() {
            span.record("otel.status_code", "error");
        }
        (result, call)
    }

    /// One hop: decide, then send, with the trace context of `span`.
    async fn decide_and_send(
        &self,
        hop: &Hop<'_>,
        request: &HttpRequest,
        span: &tracing::Span,
    ) -> (Result<HttpResponse, HttpError>, HttpCall) {
        let grant = match self.decide(hop.policy, hop.mode, request) {
            Ok(grant) => grant,
            Err((error, decision)) => {
                return (
                    Err(error),
                    HttpCall::new(&request.method, &request.url, decision),
                );
            }
        };
        let mut call = HttpCall::new(
            &request.method,
            grant.url.as_str(),
            Decision::allowed(&grant),
        );
        call.host = grant.host.to_string();
        let started = Instant::now();
        let _turn = match hop.throttle {
            Some(t) => Some(t.acquire(&call.host).await),
            None => None,
        };
        let trace = crate::telemetry::trace_headers(span);
        let result = self
            .transmit(request, &trace, &grant, hop.caps, &mut call)
            .await;
        call.duration_ms = started.elapsed().as_millis() as u64;
        match &result {
            // Refused after resolution: nothing was sent.
            Err(HttpError::Denied(d)) => call.decision = Decision::denied(d),
            Err(e) => call.error = Some(e.to_string()),
            Ok(_) => {}
        }
        (result, call)
    }

    /// Everything that can refuse a request before a socket is opened.
    fn decide(
        &self,
        policy: &EgressPolicy,
        mode: SendMode,
        request: &HttpRequest,
    ) -> Result<Grant, Refusal> {
        self.validate(request)?;
        let grant = policy.check(&request.url).map_err(denied)?;
        if let RequestHost::Ip(ip) = grant.host {
            // An IP literal skips the resolver; its address is checked here.
            self.addresses
                .check_with(&grant.host.to_string(), ip, bound_here)
                .map_err(denied)?;
        }
        if mode == SendMode::Test && !SAFE_METHODS.contains(&request.method.as_str()) {
            return Err((HttpError::SuppressedInTestMode, Decision::Suppressed));
        }
        Ok(grant)
    }

    /// The method, headers and body, whatever the URL.
    fn validate(&self, request: &HttpRequest) -> Result<(), Refusal> {
        if !METHODS.contains(&request.method.as_str()) {
            return Err(invalid(format!(
                "method `{}` is not supported",
                request.method
            )));
        }
        for (name, _) in &request.headers {
            if let Some(why) = headers::forbidden(name) {
                return Err(denied(Denial::new(
                    DenialRule::Header,
                    format!("header `{name}` is {why}"),
                )));
            }
        }
        if request
            .body
            .as_ref()
            .is_some_and(|b| b.len() > self.limits.max_request_bytes)
        {
            return Err(invalid(format!(
                "request body larger than {} bytes",
                self.limits.max_request_bytes
            )));
        }
        Ok(())
    }

    /// Sends an allowed request, with the host's `trace` headers after the
    /// guest's (a guest may not set those: [`headers::forbidden`]), and
    /// reads the response up to the cap.
    async fn transmit(
        &self,
        request: &HttpRequest,
        trace: &[(String, String)],
        grant: &Grant,
        caps: RequestCaps,
        call: &mut HttpCall,
    ) -> Result<HttpResponse, HttpError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
        let timeout = request.timeout.unwrap_or(caps.timeout).min(caps.timeout);
        let mut builder = self
            .client
            .request(method, grant.url.clone())
            .timeout(timeout);
        for (name, value) in request.headers.iter().chain(trace) {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::InvalidRequest(format!("bad header name `{name}`")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| HttpError::InvalidRequest(format!("bad value for header `{name}`")))?;
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let mut response = builder.send().await.map_err(transport_error)?;
        call.remote_addr = response.remote_addr();
        call.status = Some(response.status().as_u16());
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > caps.max_response_bytes {
                call.response_bytes = body.len();
                return Err(HttpError::ResponseTooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        call.response_bytes = body.len();
        Ok(HttpResponse {
            status: call.status.unwrap_or_default(),
            headers,
            body,
        })
    }
}

/// What a reqwest error means for the guest. Its text never holds the URL
/// (reqwest's own message does: it is dropped with `without_url`).
fn transport_error(e: reqwest::Error) -> HttpError {
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(AddressDenied(denial)) = s.downcast_ref::<AddressDenied>() {
            return HttpError::Denied(denial.clone());
        }
        message = format!("{message}: {s}");
        source = s.source();
    }
    if e.is_timeout() {
        return HttpError::Timeout;
    }
    HttpError::ConnectionFailed(message)
}
