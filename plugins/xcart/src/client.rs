//! X-Cart's REST API add-on (5.0–5.4) as the connector calls it:
//! `{endpoint}/admin.php?target=RESTAPI&_key=KEY&_path=ENTITY[/ID]`, search
//! conditions in `_cnd[...]`, pages by `_cnd[limit][0]=offset` and
//! `_cnd[limit][1]=count`, writes as real HTTP `PUT` with a form body of
//! `model[field]=value` (never the `_method` tunnel, so the host's test
//! mode, which holds back every write verb, sends none of them).
//!
//! The key travels in the query, as the add-on requires: no message this
//! module makes ever quotes a URL's query (only [`Endpoint::describe`]).

use airlock_sdk::Failure;
use airlock_sdk::http::{self, Response, Verdict, query_escape};
use serde_json::Value;

/// Entities asked for per page.
pub const PAGE: usize = 50;

/// The shop's API and its key.
#[derive(Clone)]
pub struct Endpoint {
    base: String,
    key: String,
}

/// What a write returned.
#[derive(Debug)]
pub enum Written {
    /// Applied: X-Cart's entity after the write.
    Done(Value),
    /// Not sent: the run is in test mode.
    Suppressed,
}

impl Endpoint {
    /// The API under the website end point `endpoint` with `key`. The end
    /// point must be an http(s) URL without a query.
    pub fn new(endpoint: &str, key: &str) -> Result<Self, Failure> {
        let base = endpoint.trim().trim_end_matches('/');
        let base = base.strip_suffix("/admin.php").unwrap_or(base);
        if !(base.starts_with("https://") || base.starts_with("http://"))
            || base.contains(['?', '#'])
        {
            return Err(Failure::error(format!(
                "config `endpoint` must be the shop's address (https://shop.example.com), not `{}`",
                http::path(endpoint)
            )));
        }
        if key.trim().is_empty() {
            return Err(Failure::error("config `api_key` is not set"));
        }
        Ok(Self {
            base: base.to_string(),
            key: key.trim().to_string(),
        })
    }

    /// `admin.php` of the shop, for messages (no query, so no key).
    pub fn describe(&self) -> String {
        format!("{}/admin.php", self.base)
    }

    fn url(&self, path: &str, conditions: &[(String, String)]) -> String {
        let mut url = format!(
            "{}/admin.php?target=RESTAPI&_key={}&_path={}",
            self.base,
            query_escape(&self.key),
            query_escape(path)
        );
        for (name, value) in conditions {
            url.push('&');
            url.push_str(&query_escape(name));
            url.push('=');
            url.push_str(&query_escape(value));
        }
        url
    }

    /// GET `path` (`order/12`) with `conditions` (`_cnd[...]` pairs).
    pub fn get(&self, path: &str, conditions: &[(String, String)]) -> Result<Value, Failure> {
        let response = http::send("GET", &self.url(path, conditions), &ACCEPT, None)?
            .ok_or_else(|| Failure::error("a GET was suppressed"))?;
        self.judge(&response, "GET", path)?;
        serde_json::from_slice(&response.body).map_err(|e| {
            Failure::error(format!(
                "X-Cart's answer to GET {path} is not JSON ({e}): is `endpoint` the shop's address?"
            ))
        })
    }

    /// One entity, or None if X-Cart has none with that id.
    pub fn get_one(&self, entity: &str, id: &str) -> Result<Option<Value>, Failure> {
        match self.get(&format!("{entity}/{id}"), &[]) {
            Ok(Value::Null) => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(Failure::Error(m)) if m.contains("(404)") => Ok(None),
            Err(f) => Err(f),
        }
    }

    /// Every entity of `entity` matching `conditions`, page by page.
    pub fn list(
        &self,
        entity: &str,
        conditions: &[(String, String)],
    ) -> Result<Vec<Value>, Failure> {
        let mut all = Vec::new();
        loop {
            let mut cnd = conditions.to_vec();
            cnd.push(("_cnd[limit][0]".into(), all.len().to_string()));
            cnd.push(("_cnd[limit][1]".into(), PAGE.to_string()));
            let page = match self.get(entity, &cnd)? {
                Value::Array(items) => items,
                Value::Null => Vec::new(),
                other => {
                    return Err(Failure::error(format!(
                        "X-Cart's answer to GET {entity} is not a list: {}",
                        short(&other.to_string())
                    )));
                }
            };
            let full = page.len() >= PAGE;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// PUT `fields` (as `model[name]=value`) to `path`.
    pub fn put(&self, path: &str, fields: &[(String, String)]) -> Result<Written, Failure> {
        let mut form = String::new();
        for (name, value) in fields {
            if !form.is_empty() {
                form.push('&');
            }
            form.push_str(&query_escape(&format!("model{name}")));
            form.push('=');
            form.push_str(&query_escape(value));
        }
        let headers = [
            ("accept", "application/json"),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        let Some(response) = http::send(
            "PUT",
            &self.url(path, &[]),
            &headers,
            Some(form.into_bytes()),
        )?
        else {
            return Ok(Written::Suppressed);
        };
        self.judge(&response, "PUT", path)?;
        Ok(Written::Done(
            serde_json::from_slice(&response.body).unwrap_or(Value::Null),
        ))
    }

    /// What a status means here: 401/403 is the key (a person must fix
    /// it), other 4xx are errors, 429 and 5xx pass.
    fn judge(&self, response: &Response, method: &str, path: &str) -> Result<(), Failure> {
        let body = short(response.text().trim());
        match response.verdict() {
            Verdict::Success => Ok(()),
            Verdict::Retry { after } => Err(Failure::Retry {
                message: format!(
                    "X-Cart answered {} to {method} {path}: {body}",
                    response.status
                ),
                after,
            }),
            Verdict::Unauthorized => Err(refused_key(401, &body)),
            Verdict::Reject if response.status == 403 => Err(refused_key(403, &body)),
            Verdict::Reject => Err(Failure::error(format!(
                "X-Cart refused {method} {path} ({}): {body}",
                response.status
            ))),
        }
    }
}

const ACCEPT: [(&str, &str); 1] = [("accept", "application/json")];

fn refused_key(status: u16, body: &str) -> Failure {
    Failure::error(format!(
        "X-Cart refused the API key ({status} {body}): check `api_key` is the REST API add-on's \
         read/write key, and reauthorise"
    ))
}

/// At most 200 characters of `text`, for messages.
pub fn short(text: &str) -> String {
    let mut out: String = text.chars().take(200).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// `_cnd[name][0]=a&_cnd[name][1]=b`: a two-value condition.
pub fn range(name: &str, from: i64, to: i64) -> Vec<(String, String)> {
    vec![
        (format!("_cnd[{name}][0]"), from.to_string()),
        (format!("_cnd[{name}][1]"), to.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_add_ons_grammar_and_messages_hide_the_key() {
        let e = Endpoint::new("https://shop.example.com/xcart/", "k&y 1").unwrap();
        assert_eq!(
            e.url("order", &range("dateRange", 1, 2)),
            "https://shop.example.com/xcart/admin.php?target=RESTAPI&_key=k%26y%201&_path=order\
             &_cnd%5BdateRange%5D%5B0%5D=1&_cnd%5BdateRange%5D%5B1%5D=2"
        );
        assert_eq!(e.describe(), "https://shop.example.com/xcart/admin.php");
        let e = Endpoint::new("https://shop.example.com/admin.php", "k").unwrap();
        assert_eq!(e.describe(), "https://shop.example.com/admin.php");
    }

    #[test]
    fn a_bad_endpoint_or_missing_key_is_a_clear_error() {
        for bad in ["shop.example.com", "ftp://x", "https://x/?_key=s3cret"] {
            let f = Endpoint::new(bad, "k").err().expect(bad);
            assert!(f.message().contains("config `endpoint`"), "{f:?}");
            assert!(!f.message().contains("s3cret"), "{f:?}");
        }
        assert!(Endpoint::new("https://x", " ").is_err());
    }
}
