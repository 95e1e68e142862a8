//! The single enforcement point for outbound HTTP: every request a guest makes,
//! and every redirect hop, passes [`EgressClient::send`], which checks the
//! policy, applies test-mode suppression, resolves the host (through the
//! explicit test resolver if one is configured), sends with reqwest, caps the
//! response and records a [`HttpCall`] for the audit.
//!
//! It knows nothing about wasmtime: the runtime converts its types to WIT.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::address::AddressPolicy;
use super::policy::{Denial, DenialRule, EgressPolicy, Grant, RequestHost};
use super::throttle::Throttle;

/// Host-wide bounds on outbound HTTP.
#[derive(Debug, Clone)]
pub struct EgressLimits {
    /// Timeout when the guest does not ask for one.
    pub default_timeout: Duration,
    /// The longest timeout a guest may ask for.
    pub max_timeout: Duration,
    /// Largest request body a guest may send.
    pub max_request_bytes: usize,
    /// Largest response body read; larger is `response-too-large`.
    pub max_response_bytes: usize,
    /// Redirect hops followed (each re-checked) before giving up.
    pub max_redirects: u32,
}

impl Default for EgressLimits {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(120),
            max_request_bytes: 8 << 20,
            max_response_bytes: 16 << 20,
            max_redirects: 5,
        }
    }
}

/// One installation's bounds on its requests (from its manifest), applied
/// within the host-wide [`EgressLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestCaps {
    /// Timeout of a request, and the most a guest may ask for.
    pub timeout: Duration,
    /// Largest response body read.
    pub max_response_bytes: usize,
}

/// A request as the guest made it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Method name, upper-case.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// Body, if any.
    pub body: Option<Vec<u8>>,
    /// Requested timeout, bounded by [`EgressLimits::max_timeout`].
    pub timeout: Option<Duration>,
}

/// A response, redirects already followed.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// The full body.
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The policy refused it.
    #[error("{0}")]
    Denied(Denial),
    /// Test mode: a state-changing method was not sent.
    #[error("not sent: test mode suppresses state-changing requests")]
    SuppressedInTestMode,
    /// Malformed method, header or body.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Connection could not be made or broke.
    #[error("connection failed: {0}")]
    ConnectionFailed(String),
    /// The body exceeded the cap.
    #[error("response too large")]
    ResponseTooLarge,
}

/// Whether a run may change third parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendMode {
    /// Only GET, HEAD and OPTIONS are sent.
    Test,
    /// Everything allowed by the policy is sent.
    Live,
}

/// What was decided about one request or redirect hop.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Allowed by a rule and sent.
    Allowed {
        /// The rule, as text.
        rule: String,
        /// The rule's service.
        service: String,
    },
    /// Refused by the policy; nothing sent.
    Denied {
        /// The rule that refused.
        rule: DenialRule,
        /// Why.
        reason: String,
    },
    /// Allowed, but not sent because the run is in test mode.
    Suppressed,
    /// Malformed request; nothing sent.
    Invalid {
        /// What was wrong.
        reason: String,
    },
}

/// One audited request (or redirect hop). Never holds query strings, headers
/// or bodies: those carry secrets.
#[derive(Debug, Clone, Serialize)]
pub struct HttpCall {
    /// Method.
    pub method: String,
    /// Scheme, when the URL parsed.
    pub scheme: Option<String>,
    /// Normalised host, or the raw URL's host part when it did not parse.
    pub host: String,
    /// Port, when known.
    pub port: Option<u16>,
    /// Path only.
    pub path: String,
    /// The decision.
    #[serde(flatten)]
    pub decision: Decision,
    /// The address actually connected to.
    pub remote_addr: Option<SocketAddr>,
    /// Response status.
    pub status: Option<u16>,
    /// Response body bytes read.
    pub response_bytes: usize,
    /// Transport error, if the request was sent and failed.
    pub error: Option<String>,
    /// Time from decision to full response, in milliseconds.
    pub duration_ms: u64,
    /// When the decision was taken, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

impl HttpCall {
    fn new(method: &str, url: &str, decision: Decision) -> Self {
        let parsed = url::Url::parse(url).ok();
        Self {
            method: method.to_string(),
            scheme: parsed.as_ref().map(|u| u.scheme().to_string()),
            host: parsed
                .as_ref()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default(),
            port: parsed.as_ref().and_then(url::Url::port_or_known_default),
            path: parsed
                .as_ref()
                .map(|u| u.path().to_string())
                .unwrap_or_default(),
            decision,
            remote_addr: None,
            status: None,
            response_bytes: 0,
            error: None,
            duration_ms: 0,
            at_ms: chrono::Utc::now().timestamp_millis(),
        }
    }
}

/// Name → address overrides used instead of DNS: the explicit test resolver
/// (like curl's `--resolve`). The policy still runs first; this only decides
/// which address an allowed name connects to.
#[derive(Debug, Clone, Default)]
pub struct ResolveOverrides {
    map: HashMap<String, Vec<IpAddr>>,
}

impl ResolveOverrides {
    /// Parses `HOST=ADDR` (repeatable for several addresses).
    pub fn add_spec(&mut self, spec: &str) -> Result<(), String> {
        let (host, addr) = spec
            .split_once('=')
            .ok_or_else(|| format!("`{spec}` is not HOST=ADDRESS"))?;
        let ip: IpAddr = addr
            .trim_matches(['[', ']'])
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address"))?;
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err(format!("`{spec}` has no host"));
        }
        self.map.entry(host).or_default().push(ip);
        Ok(())
    }

    /// The overrides, sorted by host, for display.
    pub fn entries(&self) -> Vec<(String, Vec<IpAddr>)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A resolved address the [`AddressPolicy`] refused, carried through
/// reqwest's error chain back to [`EgressClient::send`].
#[derive(Debug)]
struct AddressDenied(Denial);

impl std::fmt::Display for AddressDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AddressDenied {}

/// The resolver reqwest uses: overrides first, then the system's; then every
/// address is checked, and the connection goes only to checked addresses (no
/// second lookup). One refused address refuses the whole answer: a name that
/// resolves partly inside the network is not trusted.
#[derive(Clone)]
struct CheckingResolver {
    overrides: ResolveOverrides,
    addresses: AddressPolicy,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl CheckingResolver {
    /// Resolves `host` and checks every address; an [`AddressDenied`] error
    /// when one is refused.
    async fn resolve_checked(&self, host: &str) -> Result<Vec<SocketAddr>, BoxError> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let addrs: Vec<SocketAddr> = match self.overrides.map.get(&host) {
            Some(ips) => ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect(),
            None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
        };
        for addr in &addrs {
            self.addresses
                .check(&host, addr.ip())
                .map_err(|d| Box::new(AddressDenied(d)) as BoxError)?;
        }
        Ok(addrs)
    }
}

impl reqwest::dns::Resolve for CheckingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolver.resolve_checked(&host).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

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

/// Headers a guest may not set: they would let it address a different host
/// than the policy checked, or talk to a proxy.
fn forbidden_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "host" || n == "forwarded" || n.starts_with("proxy-") || n.starts_with("x-forwarded-")
}

const SAFE_METHODS: [&str; 3] = ["GET", "HEAD", "OPTIONS"];
const METHODS: [&str; 7] = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"];

/// What every hop of one `send` is held to.
struct Hop<'a> {
    policy: &'a EgressPolicy,
    mode: SendMode,
    throttle: Option<&'a Throttle>,
    caps: RequestCaps,
}

/// The HTTP client every guest request goes through. Cheap to clone.
#[derive(Clone)]
pub struct EgressClient {
    client: reqwest::Client,
    limits: EgressLimits,
    addresses: AddressPolicy,
    resolver: CheckingResolver,
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
        let resolver = CheckingResolver {
            overrides,
            addresses: addresses.clone(),
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(resolver.clone()))
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            limits,
            addresses,
            resolver,
        })
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
            decision: Decision::Allowed {
                rule: grant.rule.to_string(),
                service: grant.rule.service.clone(),
            },
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
                        Some(AddressDenied(d)) => {
                            explanation.decision = Decision::Denied {
                                rule: d.rule,
                                reason: d.reason.clone(),
                            }
                        }
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
    /// per hop.
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
            let Some(location) = redirect_target(&response) else {
                return Ok(response);
            };
            hops += 1;
            if hops > self.limits.max_redirects {
                let denial = Denial::new(
                    DenialRule::RedirectLimit,
                    format!("more than {} redirects", self.limits.max_redirects),
                );
                return Err(HttpError::Denied(denial));
            }
            request = redirected(request, response.status, &location)?;
        }
    }

    /// One hop: decide, then send.
    async fn send_one(
        &self,
        hop: &Hop<'_>,
        request: &HttpRequest,
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
            Decision::Allowed {
                rule: grant.rule.to_string(),
                service: grant.rule.service.clone(),
            },
        );
        call.host = grant.host.to_string();
        let started = Instant::now();
        let _turn = match hop.throttle {
            Some(t) => Some(t.acquire(&call.host).await),
            None => None,
        };
        let result = self.transmit(request, &grant, hop.caps, &mut call).await;
        call.duration_ms = started.elapsed().as_millis() as u64;
        match &result {
            // Refused after resolution: nothing was sent.
            Err(HttpError::Denied(d)) => {
                call.decision = Decision::Denied {
                    rule: d.rule,
                    reason: d.reason.clone(),
                };
            }
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
    ) -> Result<Grant, (HttpError, Decision)> {
        let invalid = |reason: String| {
            (
                HttpError::InvalidRequest(reason.clone()),
                Decision::Invalid { reason },
            )
        };
        let denied = |d: Denial| {
            (
                HttpError::Denied(d.clone()),
                Decision::Denied {
                    rule: d.rule,
                    reason: d.reason,
                },
            )
        };
        if !METHODS.contains(&request.method.as_str()) {
            return Err(invalid(format!(
                "method `{}` is not supported",
                request.method
            )));
        }
        if let Some((name, _)) = request.headers.iter().find(|(n, _)| forbidden_header(n)) {
            return Err(denied(Denial::new(
                DenialRule::Header,
                format!("header `{name}` is set by the host only"),
            )));
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
        let grant = policy.check(&request.url).map_err(denied)?;
        if let RequestHost::Ip(ip) = grant.host {
            // An IP literal skips the resolver; its address is checked here.
            self.addresses
                .check(&grant.host.to_string(), ip)
                .map_err(denied)?;
        }
        if mode == SendMode::Test && !SAFE_METHODS.contains(&request.method.as_str()) {
            return Err((HttpError::SuppressedInTestMode, Decision::Suppressed));
        }
        Ok(grant)
    }

    /// Sends an allowed request and reads the response up to the cap.
    async fn transmit(
        &self,
        request: &HttpRequest,
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
        for (name, value) in &request.headers {
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

fn transport_error(e: reqwest::Error) -> HttpError {
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

/// The Location of a redirect response, if it is one.
fn redirect_target(response: &HttpResponse) -> Option<String> {
    if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    response
        .headers
        .iter()
        .find(|(n, _)| n == "location")
        .map(|(_, v)| v.clone())
}

/// The next hop's request: URL resolved against the current one; 303 (and
/// 301/302 after POST) become GET without a body; credentials are dropped when
/// the origin changes.
fn redirected(
    previous: HttpRequest,
    status: u16,
    location: &str,
) -> Result<HttpRequest, HttpError> {
    let base =
        url::Url::parse(&previous.url).map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
    let next = base
        .join(location)
        .map_err(|e| HttpError::InvalidRequest(format!("bad redirect location: {e}")))?;
    let to_get = status == 303 || (matches!(status, 301 | 302) && previous.method == "POST");
    let same_origin = next.origin() == base.origin();
    let headers = previous
        .headers
        .into_iter()
        .filter(|(n, _)| {
            same_origin
                || !n.eq_ignore_ascii_case("authorization") && !n.eq_ignore_ascii_case("cookie")
        })
        .collect();
    Ok(HttpRequest {
        method: if to_get {
            "GET".to_string()
        } else {
            previous.method
        },
        url: next.to_string(),
        headers,
        body: if to_get { None } else { previous.body },
        timeout: previous.timeout,
    })
}
