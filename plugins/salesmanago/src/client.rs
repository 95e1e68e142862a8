//! SALESmanago's legacy API as this connector calls it: every request a
//! POST of JSON to `{endpoint}/api/…`, authenticated in the body with
//! `clientId`, a fresh `apiKey`, `requestTime` (milliseconds), `owner` and
//! `sha = SHA1(apiKey + clientId + apiSecret)` (lower-case hex). The API
//! secret itself is never sent.
//!
//! What an answer means: `success: false` with an authentication message is
//! an `error` (the credentials are wrong, a person must fix them); other
//! `success: false` answers are the request's own fault (`error` naming the
//! message); 429, 5xx, timeouts are `retry`. Calls are paced to
//! `calls_per_minute` within a run.

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_sdk::http::{self, Verdict};
use airlock_sdk::{Failure, config};
use serde_json::{Value, json};
use sha1::{Digest as _, Sha1};

/// Who the connector is at SALESmanago, from the installation's config.
pub struct Client {
    endpoint: String,
    client_id: String,
    api_secret: String,
    owner: String,
    pace: Duration,
    last: Option<SystemTime>,
}

/// Whether `endpoint` is an https URL on one of SALESmanago's servers.
pub fn check_endpoint(endpoint: &str) -> Result<String, Failure> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    let host = trimmed
        .strip_prefix("https://")
        .ok_or_else(|| Failure::error(format!("endpoint `{trimmed}` must start with https://")))?;
    let on_salesmanago = [".salesmanago.pl", ".salesmanago.com"]
        .iter()
        .any(|domain| host.ends_with(domain) && !host.contains(['/', '?', '#', '@']));
    if !on_salesmanago {
        return Err(Failure::error(format!(
            "endpoint `{trimmed}` is not a SALESmanago server (e.g. https://app2.salesmanago.pl)"
        )));
    }
    Ok(trimmed.to_string())
}

impl Client {
    /// The client the installation's config describes.
    pub fn from_config() -> Result<Self, Failure> {
        let endpoint = check_endpoint(&airlock_sdk::required_config("endpoint")?)?;
        let per_minute = config::get("calls_per_minute")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(60);
        Ok(Client {
            endpoint,
            client_id: airlock_sdk::required_config("client_id")?,
            api_secret: config::get_secret("api_secret")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Failure::error("config `api_secret` is not set"))?,
            owner: airlock_sdk::required_config("owner")?,
            pace: Duration::from_millis(60_000 / per_minute),
            last: None,
        })
    }

    /// The account user the contacts belong to.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The authentication fields of one request, with a fresh `apiKey`.
    fn auth(&self, now_ms: u64) -> Value {
        let api_key = format!(
            "{:016x}{:016x}",
            std::hash::RandomState::new().build_hasher().finish(),
            now_ms
        );
        let sha = hex::encode(Sha1::digest(
            format!("{api_key}{}{}", self.client_id, self.api_secret).as_bytes(),
        ));
        json!({
            "clientId": self.client_id,
            "apiKey": api_key,
            "requestTime": now_ms,
            "sha": sha,
            "owner": self.owner,
        })
    }

    /// Waits until the pace allows the next call.
    fn wait_turn(&mut self) {
        if let Some(last) = self.last {
            let since = SystemTime::now()
                .duration_since(last)
                .unwrap_or(Duration::ZERO);
            if since < self.pace {
                std::thread::sleep(self.pace - since);
            }
        }
        self.last = Some(SystemTime::now());
    }

    /// POSTs `body` (with the authentication fields added) to
    /// `/api/{path}`. `Ok(None)`: not sent, the run is in test mode.
    pub fn call(&mut self, path: &str, body: Value) -> Result<Option<Value>, Failure> {
        self.wait_turn();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut request = self.auth(now_ms);
        if let (Some(all), Value::Object(fields)) = (request.as_object_mut(), body) {
            all.extend(fields);
        }
        let url = format!("{}/api/{path}", self.endpoint);
        let Some(response) = http::send_json(
            "POST",
            &url,
            &[("content-type", "application/json;charset=UTF-8")],
            &request,
        )?
        else {
            return Ok(None);
        };
        match response.verdict() {
            Verdict::Success => {}
            Verdict::Retry { after } => {
                return Err(Failure::Retry {
                    message: format!("SALESmanago answered {} to {path}", response.status),
                    after,
                });
            }
            Verdict::Unauthorized | Verdict::Reject => {
                return Err(Failure::error(format!(
                    "SALESmanago refused {path} with HTTP {}: {}",
                    response.status,
                    short(&response.text())
                )));
            }
        }
        let answer: Value = response.json()?;
        if answer.get("success").and_then(Value::as_bool) == Some(true) {
            return Ok(Some(answer));
        }
        let message = messages(&answer);
        if message.to_lowercase().contains("authenticat") {
            Err(Failure::error(format!(
                "SALESmanago did not accept the credentials ({message}): check client_id, \
                 api_secret, owner and endpoint, then `airlock reauthorise`"
            )))
        } else {
            Err(Failure::error(format!(
                "SALESmanago refused {path}: {message}"
            )))
        }
    }
}

/// The `message` list of an answer, joined.
fn messages(answer: &Value) -> String {
    match answer.get("message") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|m| {
                m.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| m.to_string())
            })
            .collect::<Vec<_>>()
            .join("; "),
        Some(Value::String(s)) => s.clone(),
        _ => "no message".to_string(),
    }
}

fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_salesmanago_servers_over_https_are_endpoints() {
        assert_eq!(
            check_endpoint("https://app2.salesmanago.pl/").unwrap(),
            "https://app2.salesmanago.pl"
        );
        assert!(check_endpoint("https://www.salesmanago.com").is_ok());
        for bad in [
            "http://app2.salesmanago.pl",
            "https://salesmanago.pl.evil.example",
            "https://evil.example/?.salesmanago.pl",
            "https://app2.salesmanago.pl@evil.example",
            "app2.salesmanago.pl",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn business_messages_are_joined() {
        let answer = json!({"success": false, "message": ["Not authenticated", "x"]});
        assert_eq!(messages(&answer), "Not authenticated; x");
    }
}
