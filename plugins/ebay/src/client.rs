//! eBay's Sell APIs as the connector calls them: every call carries the
//! user's bearer token (the host's OAuth2: authorization code, refreshed
//! every 7,200 s); a 401 gets one refresh, then the installation needs
//! reauthorising. A 429 waits out a short `Retry-After`, else ends the run
//! `retry`; 5xx (eBay's 25001 system error, 25025 concurrent access) ends
//! it `retry`; other 4xx come back to the caller with eBay's error text.

use std::time::Duration;

use airlock_sdk::http::{self, Response, Verdict};
use airlock_sdk::{Failure, oauth};
use serde_json::Value;

/// The Fulfillment API (orders, shipping fulfilments).
pub const FULFILLMENT: &str = "https://api.ebay.com/sell/fulfillment/v1";
/// The Inventory API (offers, price and quantity).
pub const INVENTORY: &str = "https://api.ebay.com/sell/inventory/v1";
/// The Taxonomy API (category trees).
pub const TAXONOMY: &str = "https://api.ebay.com/commerce/taxonomy/v1";

/// eBay's retryable error ids: 25001 system error, 25025 concurrent access
/// to the same inventory object.
pub const RETRYABLE: [u64; 2] = [25001, 25025];

/// What a call came back with.
pub enum Reply {
    /// 2xx: the response.
    Done(Response),
    /// A 4xx other than 401 and 429: eBay's error, in one line.
    Refused(String),
    /// Not sent: the run is in test mode and the call would change eBay.
    Suppressed,
}

/// A connection to the seller's eBay account.
pub struct Ebay {
    token: String,
    refreshed: bool,
    max_wait_seconds: u32,
    content_language: String,
    /// Calls made (for the run's message).
    pub calls: u32,
}

impl Ebay {
    /// Takes the access token from the host.
    pub fn connect(max_wait_seconds: u32, content_language: &str) -> Result<Self, Failure> {
        Ok(Self {
            token: oauth::token()?,
            refreshed: false,
            max_wait_seconds,
            content_language: content_language.to_string(),
            calls: 0,
        })
    }

    /// Has the host get a fresh token now with the refresh token, proving
    /// the client id and secret as configured ("Test connection": a stored
    /// token would hide a wrong secret until it expires).
    pub fn prove_client(&mut self) -> Result<(), Failure> {
        self.token = oauth::refresh(&self.token)?;
        self.refreshed = true;
        Ok(())
    }

    /// GET `url` and parse the JSON; any refusal ends the run `error`.
    pub fn get(&mut self, url: &str) -> Result<Value, Failure> {
        match self.call("GET", url, None)? {
            Reply::Done(r) => r.json(),
            Reply::Refused(why) => Err(Failure::error(format!(
                "eBay refused GET {}: {why}",
                http::path(url)
            ))),
            Reply::Suppressed => Err(Failure::error("a GET was suppressed")),
        }
    }

    /// GET `url`, a refusal (404) returned to the caller.
    pub fn try_get(&mut self, url: &str) -> Result<Reply, Failure> {
        self.call("GET", url, None)
    }

    /// POST `body` as JSON to `url`.
    pub fn post(&mut self, url: &str, body: &Value) -> Result<Reply, Failure> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Failure::error(format!("cannot encode {}: {e}", http::path(url))))?;
        self.call("POST", url, Some(bytes))
    }

    fn call(&mut self, method: &str, url: &str, body: Option<Vec<u8>>) -> Result<Reply, Failure> {
        let mut waits = 0;
        loop {
            let bearer = format!("Bearer {}", self.token);
            let mut headers = vec![
                ("authorization", bearer.as_str()),
                ("accept", "application/json"),
            ];
            if body.is_some() {
                headers.push(("content-type", "application/json"));
                if url.starts_with(INVENTORY) {
                    headers.push(("content-language", self.content_language.as_str()));
                }
            }
            self.calls += 1;
            let Some(response) = http::send(method, url, &headers, body.clone())? else {
                return Ok(Reply::Suppressed);
            };
            match response.verdict() {
                Verdict::Success => return Ok(Reply::Done(response)),
                Verdict::Reject => return Ok(Reply::Refused(error_text(&response))),
                Verdict::Unauthorized if !self.refreshed => {
                    self.refreshed = true;
                    self.token = oauth::refresh(&self.token)?;
                }
                Verdict::Unauthorized => {
                    return Err(Failure::error(
                        "eBay refused the refreshed access token (401): the installation needs reauthorising",
                    ));
                }
                Verdict::Retry { after } if response.status == 429 => {
                    let wait = after.unwrap_or(60);
                    if wait <= self.max_wait_seconds && waits < 3 {
                        waits += 1;
                        airlock_sdk::warn(&format!(
                            "eBay call limit reached: waiting {wait} s as asked"
                        ));
                        std::thread::sleep(Duration::from_secs(u64::from(wait)));
                        continue;
                    }
                    return Err(Failure::Retry {
                        message: format!(
                            "eBay call limit reached (429): {}",
                            error_text(&response)
                        ),
                        after: Some(wait),
                    });
                }
                Verdict::Retry { after } => {
                    return Err(Failure::Retry {
                        message: format!(
                            "eBay answered {} to {method} {}: {}",
                            response.status,
                            http::path(url),
                            error_text(&response)
                        ),
                        after,
                    });
                }
            }
        }
    }
}

/// eBay's first error as `errorId message`, or the status.
pub fn error_text(response: &Response) -> String {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    errors_text(&body["errors"]).unwrap_or_else(|| format!("HTTP {}", response.status))
}

/// The first of an `errors` array as `errorId message`.
pub fn errors_text(errors: &Value) -> Option<String> {
    let first = errors.as_array()?.first()?;
    let id = first["errorId"].as_u64().unwrap_or(0);
    let message = first["message"].as_str().unwrap_or("");
    Some(format!("{id} {message}").trim().to_string())
}

/// True if an `errors` array holds only eBay's retryable ids.
pub fn retryable(errors: &Value) -> bool {
    let ids: Vec<u64> = errors
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["errorId"].as_u64())
        .collect();
    !ids.is_empty() && ids.iter().all(|id| RETRYABLE.contains(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_25001_and_25025_are_retryable() {
        assert!(retryable(&json!([{ "errorId": 25001 }])));
        assert!(retryable(
            &json!([{ "errorId": 25025 }, { "errorId": 25001 }])
        ));
        assert!(!retryable(&json!([{ "errorId": 25002 }])));
        assert!(!retryable(&json!([])));
        assert_eq!(
            errors_text(&json!([{ "errorId": 25002, "message": "bad" }])).as_deref(),
            Some("25002 bad")
        );
    }
}
