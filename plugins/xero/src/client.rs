//! Xero's Accounting API as the connector calls it: every call carries the
//! bearer token and `xero-tenant-id`; every PUT/POST an `Idempotency-Key`.
//! Calls are paced to the per-minute limit (60 per tenant by default); a
//! 429 waits out its `Retry-After` when that is short, else ends the run
//! `retry` after it; a 401 gets one token refresh, then the run needs a
//! person (the host raises "reauthorise").

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use airlock_sdk::http::{self, Response, Verdict};
use airlock_sdk::{Failure, oauth};
use serde_json::Value;

/// Where Xero's API lives (a fixed host; tests point the name at a fake
/// with the host's `--resolve` and `--trust-root`).
pub const API: &str = "https://api.xero.com";
/// The Accounting API's base path.
pub const ACCOUNTING: &str = "https://api.xero.com/api.xro/2.0";

/// How the client paces itself and waits.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Calls allowed in any 60 seconds.
    pub calls_per_minute: u32,
    /// The longest `Retry-After` waited out inside the run; longer ends the
    /// run `retry`.
    pub max_wait_seconds: u32,
}

/// The calls of the last window, to keep under a per-window limit.
#[derive(Debug)]
pub struct Pacer {
    window: Duration,
    limit: usize,
    recent: VecDeque<Instant>,
}

impl Pacer {
    /// At most `limit` calls in any `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            window,
            limit: limit.max(1) as usize,
            recent: VecDeque::new(),
        }
    }

    /// How long to wait before a call at `now` fits the limit (zero if it
    /// does); the caller waits, then calls [`Pacer::record`].
    pub fn wait_needed(&mut self, now: Instant) -> Duration {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.recent.pop_front();
        }
        match self.recent.front() {
            Some(oldest) if self.recent.len() >= self.limit => {
                self.window.saturating_sub(now.duration_since(*oldest))
            }
            _ => Duration::ZERO,
        }
    }

    /// Notes a call made at `at`.
    pub fn record(&mut self, at: Instant) {
        self.recent.push_back(at);
        while self.recent.len() > self.limit {
            self.recent.pop_front();
        }
    }
}

/// A connection to one Xero organisation.
pub struct Xero {
    tenant_id: String,
    token: String,
    refreshed: bool,
    pacing: Pacing,
    pacer: Pacer,
    /// Calls made (for the run's message).
    pub calls: u32,
}

/// What a write returned.
pub enum Written {
    /// Created or updated: the response body.
    Done(Value),
    /// Refused as invalid (400): Xero's validation messages.
    Refused(String),
    /// Not sent: the run is in test mode.
    Suppressed,
}

impl Xero {
    /// Connects: takes the access token from the host and finds the
    /// organisation (`tenant_id` from config, else the only connection).
    pub fn connect(tenant_id: Option<String>, pacing: Pacing) -> Result<Self, Failure> {
        let mut xero = Self {
            tenant_id: String::new(),
            token: oauth::token()?,
            refreshed: false,
            // Xero counts calls as they arrive; the pacer as they leave. A
            // second of margin keeps network jitter (a slow first TLS
            // handshake, a fast later call) from putting one call too many
            // into Xero's minute.
            pacer: Pacer::new(pacing.calls_per_minute, Duration::from_secs(61)),
            pacing,
            calls: 0,
        };
        xero.tenant_id = match tenant_id {
            Some(id) => id,
            None => xero.only_connection()?,
        };
        Ok(xero)
    }

    /// Has the host get a fresh token now (client credentials or the
    /// refresh token), proving the client id and secret as configured:
    /// "Test connection" calls it, since a stored token would otherwise
    /// hide a wrong secret until the next refresh.
    pub fn prove_client(&mut self) -> Result<(), Failure> {
        self.token = oauth::refresh(&self.token)?;
        Ok(())
    }

    fn only_connection(&mut self) -> Result<String, Failure> {
        let response = self
            .call("GET", &format!("{API}/connections"), None, None)?
            .ok_or_else(|| Failure::error("GET /connections was suppressed"))?;
        let connections: Vec<Value> = response.json()?;
        let orgs: Vec<&str> = connections
            .iter()
            .filter(|c| c["tenantType"] == "ORGANISATION")
            .filter_map(|c| c["tenantId"].as_str())
            .collect();
        match orgs.as_slice() {
            [one] => Ok(one.to_string()),
            [] => Err(Failure::error(
                "the authorised Xero user has no organisation connected: reauthorise and pick one",
            )),
            _ => Err(Failure::error(format!(
                "{} Xero organisations are connected: set config `xero_tenant_id` to one of {}",
                orgs.len(),
                orgs.join(", ")
            ))),
        }
    }

    /// GET `path` (under the Accounting API) and parse the JSON.
    pub fn get(&mut self, path: &str) -> Result<Value, Failure> {
        let url = format!("{ACCOUNTING}{path}");
        let response = self
            .call("GET", &url, None, None)?
            .ok_or_else(|| Failure::error("a GET was suppressed"))?;
        if response.status != 200 {
            return Err(rejected(&response));
        }
        response.json()
    }

    /// PUT (create) or POST (update) `body` at `path` with `key`.
    pub fn write(
        &mut self,
        method: &str,
        path: &str,
        body: &Value,
        key: &str,
    ) -> Result<Written, Failure> {
        let url = format!("{ACCOUNTING}{path}");
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Failure::error(format!("cannot encode {path}: {e}")))?;
        match self.call(method, &url, Some(bytes), Some(key))? {
            None => Ok(Written::Suppressed),
            Some(r) if r.status == 200 => Ok(Written::Done(r.json()?)),
            Some(r) if r.status == 400 => Ok(Written::Refused(validation_messages(&r))),
            Some(r) => Err(rejected(&r)),
        }
    }

    /// One call, paced, with the refresh-once and wait-out rules.
    fn call(
        &mut self,
        method: &str,
        url: &str,
        body: Option<Vec<u8>>,
        key: Option<&str>,
    ) -> Result<Option<Response>, Failure> {
        let mut waits = 0;
        loop {
            self.pace();
            let bearer = format!("Bearer {}", self.token);
            let mut headers = vec![
                ("authorization", bearer.as_str()),
                ("accept", "application/json"),
            ];
            if !self.tenant_id.is_empty() {
                headers.push(("xero-tenant-id", self.tenant_id.as_str()));
            }
            if let Some(key) = key {
                headers.push(("idempotency-key", key));
                headers.push(("content-type", "application/json"));
            }
            self.calls += 1;
            let Some(response) = http::send(method, url, &headers, body.clone())? else {
                return Ok(None);
            };
            match response.verdict() {
                Verdict::Success | Verdict::Reject => return Ok(Some(response)),
                Verdict::Unauthorized if !self.refreshed => {
                    self.refreshed = true;
                    self.token = oauth::refresh(&self.token)?;
                }
                Verdict::Unauthorized => {
                    return Err(Failure::error(
                        "Xero refused the refreshed access token (401): the installation needs reauthorising",
                    ));
                }
                Verdict::Retry { after } if response.status == 429 => {
                    let problem = response.header("x-rate-limit-problem").unwrap_or("rate");
                    let wait = after.unwrap_or(60);
                    if wait <= self.pacing.max_wait_seconds && waits < 3 {
                        waits += 1;
                        airlock_sdk::warn(&format!(
                            "Xero {problem} limit reached: waiting {wait} s as asked"
                        ));
                        std::thread::sleep(Duration::from_secs(u64::from(wait)));
                        continue;
                    }
                    return Err(Failure::Retry {
                        message: format!("Xero {problem} limit reached (429)"),
                        after: Some(wait),
                    });
                }
                Verdict::Retry { after } => {
                    return Err(Failure::Retry {
                        message: format!(
                            "Xero answered {} to {method} {}",
                            response.status,
                            http::path(url)
                        ),
                        after,
                    });
                }
            }
        }
    }

    /// Waits until a call fits in the last minute's allowance.
    fn pace(&mut self) {
        let wait = self.pacer.wait_needed(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        self.pacer.record(Instant::now());
    }
}

/// Xero's validation messages from a 400 body.
fn validation_messages(response: &Response) -> String {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let mut messages: Vec<String> = body["Elements"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["ValidationErrors"].as_array().into_iter().flatten())
        .filter_map(|v| v["Message"].as_str().map(str::to_string))
        .collect();
    if messages.is_empty() {
        messages.push(
            body["Message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {}", response.status)),
        );
    }
    messages.join("; ")
}

fn rejected(response: &Response) -> Failure {
    let detail = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|b| {
            b["Detail"]
                .as_str()
                .or(b["Message"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    match response.status {
        403 => Failure::error(format!(
            "Xero refused access (403 {detail}): is `xero_tenant_id` an organisation this authorisation covers?"
        )),
        404 => Failure::error(format!("Xero: not found (404) {detail}")),
        s => Failure::error(format!("Xero answered {s}: {detail}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_keeps_to_the_limit_in_any_window() {
        let window = Duration::from_secs(60);
        let mut pacer = Pacer::new(3, window);
        let t0 = Instant::now();
        for i in 0..3 {
            let at = t0 + Duration::from_secs(i);
            assert_eq!(pacer.wait_needed(at), Duration::ZERO);
            pacer.record(at);
        }
        // The fourth call must wait until the first leaves the window.
        let at = t0 + Duration::from_secs(10);
        assert_eq!(pacer.wait_needed(at), Duration::from_secs(50));
        pacer.record(t0 + Duration::from_secs(60));
        // Then the second must leave before a fifth.
        assert_eq!(
            pacer.wait_needed(t0 + Duration::from_secs(60)),
            Duration::from_secs(1)
        );
        assert_eq!(
            pacer.wait_needed(t0 + Duration::from_secs(200)),
            Duration::ZERO
        );
    }
}
