//! Outbound HTTP through the host's `http` interface, with JSON bodies, and
//! what a response's status means for the run.
//!
//! [`classify`] is the one place a status becomes a decision: 2xx and 3xx
//! succeed; 429, 500, 502, 503 and 504 are passing (retry, after
//! `Retry-After` when given); 401 means the access token was refused
//! (refresh it once); any other 4xx needs a person.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Failure;
use crate::bindings::airlock::connector::http::{self as wit, HttpError, Request};

/// A response: status, lower-case header names, the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON into `T`; a body that does not parse is an
    /// error naming what was expected.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Failure::error(format!(
                "unexpected answer (HTTP {}): not the JSON expected: {e}",
                self.status
            ))
        })
    }

    /// What this response means: see [`classify`].
    pub fn verdict(&self) -> Verdict {
        classify(self.status, &self.headers)
    }
}

/// What a response means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 1xx, 2xx or 3xx: go on.
    Success,
    /// A passing condition: try again, after this many seconds if the
    /// server said (`Retry-After`).
    Retry {
        /// Seconds from `Retry-After`, when given and understood.
        after: Option<u32>,
    },
    /// 401: the credentials (the access token) were refused.
    Unauthorized,
    /// Any other 4xx: the request itself is wrong; retrying will not help.
    Reject,
}

/// The verdict for `status` with these response headers.
pub fn classify(status: u16, headers: &[(String, String)]) -> Verdict {
    match status {
        401 => Verdict::Unauthorized,
        429 | 500 | 502 | 503 | 504 => Verdict::Retry {
            after: retry_after(headers),
        },
        400..=499 => Verdict::Reject,
        500..=599 => Verdict::Retry { after: None },
        _ => Verdict::Success,
    }
}

/// Seconds to wait from a `Retry-After` header: delay-seconds, or an
/// HTTP-date measured against the response's own `Date` header (the guest
/// has no trusted clock of its own). None if absent or not understood.
pub fn retry_after(headers: &[(String, String)]) -> Option<u32> {
    let value = header(headers, "retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(u32::try_from(seconds).unwrap_or(u32::MAX));
    }
    let at = http_date(value)?;
    let now = http_date(header(headers, "date")?)?;
    Some(u32::try_from(at.saturating_sub(now)).unwrap_or(u32::MAX))
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(value: &str) -> Option<u64> {
    let mut parts = value.split_ascii_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: u64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends a request. `Ok(None)` means the run is in test mode and the
/// method would change the third party, so the host did not send it.
/// Timeouts and failed connections are [`Failure::Retry`]; a request the
/// egress policy denies, or a malformed one, is [`Failure::Error`].
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<Option<Response>, Failure> {
    let request = Request {
        method: method.to_string(),
        url: url.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body,
        timeout_ms: None,
    };
    match wit::send(&request) {
        Ok(r) => Ok(Some(Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })),
        Err(HttpError::SuppressedInTestMode) => Ok(None),
        Err(HttpError::Denied(d)) => Err(Failure::error(format!(
            "request refused by the egress policy ({}): {}",
            d.rule, d.reason
        ))),
        Err(HttpError::InvalidRequest(m)) => Err(Failure::error(format!("invalid request: {m}"))),
        Err(HttpError::Timeout) => Err(Failure::retry(format!("{method} {} timed out", path(url)))),
        Err(HttpError::ConnectionFailed(m)) => Err(Failure::retry(format!(
            "{method} {}: connection failed: {m}",
            path(url)
        ))),
        Err(HttpError::ResponseTooLarge) => Err(Failure::error(format!(
            "{method} {}: the response is larger than the host allows",
            path(url)
        ))),
    }
}

/// Sends `body` serialised as JSON (with `Content-Type` and `Accept` set).
pub fn send_json<B: Serialize + ?Sized>(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &B,
) -> Result<Option<Response>, Failure> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| Failure::error(format!("cannot encode the request: {e}")))?;
    let mut all = vec![
        ("content-type", "application/json"),
        ("accept", "application/json"),
    ];
    all.extend_from_slice(headers);
    send(method, url, &all, Some(bytes))
}

/// The URL without its query, for messages: a query may carry secrets.
pub fn path(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Percent-encodes `value` for a URL query (RFC 3986 unreserved kept).
pub fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn statuses_become_verdicts() {
        assert_eq!(classify(200, &[]), Verdict::Success);
        assert_eq!(classify(304, &[]), Verdict::Success);
        assert_eq!(classify(401, &[]), Verdict::Unauthorized);
        assert_eq!(classify(400, &[]), Verdict::Reject);
        assert_eq!(classify(404, &[]), Verdict::Reject);
        assert_eq!(classify(503, &[]), Verdict::Retry { after: None });
        assert_eq!(classify(501, &[]), Verdict::Retry { after: None });
        assert_eq!(
            classify(429, &h(&[("Retry-After", "17")])),
            Verdict::Retry { after: Some(17) }
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after(&h(&[("retry-after", " 42 ")])), Some(42));
        assert_eq!(retry_after(&h(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&[]), None);
        let dated = h(&[
            ("retry-after", "Wed, 25 Nov 2026 10:01:30 GMT"),
            ("date", "Wed, 25 Nov 2026 09:59:50 GMT"),
        ]);
        assert_eq!(retry_after(&dated), Some(100));
        // A date in the past means "now".
        let past = h(&[
            ("retry-after", "Wed, 25 Nov 2026 09:00:00 GMT"),
            ("date", "Wed, 25 Nov 2026 09:59:50 GMT"),
        ]);
        assert_eq!(retry_after(&past), Some(0));
        // Without the server's Date there is no clock to measure against.
        assert_eq!(
            retry_after(&h(&[("retry-after", "Wed, 25 Nov 2026 10:01:30 GMT")])),
            None
        );
    }

    #[test]
    fn http_dates_match_the_epoch() {
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(http_date("Sun, 32 Nov 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn messages_never_carry_a_query() {
        assert_eq!(
            path("https://a.example/x?token=s3cret#f"),
            "https://a.example/x"
        );
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
