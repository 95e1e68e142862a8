//! Verifying a sender's signature on a delivery: HMAC-SHA256 of the body,
//! or of `{timestamp}.{body}` when the sender signs a timestamp too (then a
//! delivery signed more than [`SIGNATURE_TOLERANCE_SECS`] away from now is a
//! replay). The MAC is compared in constant time.

use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};

use crate::manifest::WebhookSignature;

/// How far a signed timestamp may be from the host's clock.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature header (or the timestamp header) is missing or not
    /// text.
    #[error("the delivery has no `{0}` header")]
    Missing(String),
    /// The header is not a MAC in the declared encoding.
    #[error("the `{0}` header is not a signature in the declared encoding")]
    Malformed(String),
    /// The timestamp is not Unix seconds within the tolerance of now.
    #[error("the signed timestamp is not within {SIGNATURE_TOLERANCE_SECS} s of now")]
    Stale,
    /// The MAC does not match.
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks the signature `spec` describes on a delivery with `headers` and
/// `body`, made with `secret`, at `now` (Unix seconds).
pub fn verify_signature(
    spec: &WebhookSignature,
    secret: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .ok_or_else(|| SignatureError::Missing(name.to_string()))
    };
    let presented = header(&spec.header)?;
    let presented = match &spec.prefix {
        Some(prefix) => presented
            .strip_prefix(prefix.as_str())
            .ok_or_else(|| SignatureError::Malformed(spec.header.clone()))?,
        None => presented,
    };
    let mac = match spec.encoding.as_str() {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(presented)
            .ok(),
        _ => hex::decode(presented).ok(),
    }
    .ok_or_else(|| SignatureError::Malformed(spec.header.clone()))?;
    let mut expected =
        HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    if let Some(name) = &spec.timestamp_header {
        let timestamp = header(name)?;
        let at: i64 = timestamp.parse().map_err(|_| SignatureError::Stale)?;
        // `abs_diff`: a timestamp far from now (i64::MIN) must not overflow.
        if now.abs_diff(at) > SIGNATURE_TOLERANCE_SECS.unsigned_abs() {
            return Err(SignatureError::Stale);
        }
        expected.update(timestamp.as_bytes());
        expected.update(b".");
    }
    expected.update(body);
    expected
        .verify_slice(&mac)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(timestamp: bool) -> WebhookSignature {
        WebhookSignature {
            header: "x-signature".into(),
            secret_field: "signing_secret".into(),
            algorithm: "hmac-sha256".into(),
            encoding: "hex".into(),
            prefix: Some("sha256=".into()),
            timestamp_header: timestamp.then(|| "x-timestamp".into()),
        }
    }

    fn sign(secret: &str, text: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(text);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_body_signed_with_the_secret_verifies_and_any_change_does_not() {
        let body = br#"{"email":"a@example.com"}"#;
        let mut headers = http::HeaderMap::new();
        headers.insert("x-signature", sign("s3cret", body).parse().unwrap());
        assert_eq!(
            verify_signature(&spec(false), "s3cret", &headers, body, 0),
            Ok(())
        );
        assert_eq!(
            verify_signature(&spec(false), "other", &headers, body, 0),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&spec(false), "s3cret", &headers, b"{}", 0),
            Err(SignatureError::Mismatch)
        );
        headers.insert("x-signature", "sha256=zz".parse().unwrap());
        assert_eq!(
            verify_signature(&spec(false), "s3cret", &headers, body, 0),
            Err(SignatureError::Malformed("x-signature".into()))
        );
        assert_eq!(
            verify_signature(&spec(false), "s3cret", &http::HeaderMap::new(), body, 0),
            Err(SignatureError::Missing("x-signature".into()))
        );
    }

    #[test]
    fn a_signed_timestamp_must_be_recent() {
        let body = b"{}";
        let mut headers = http::HeaderMap::new();
        headers.insert("x-timestamp", "1000".parse().unwrap());
        headers.insert("x-signature", sign("k", b"1000.{}").parse().unwrap());
        assert_eq!(
            verify_signature(&spec(true), "k", &headers, body, 1200),
            Ok(())
        );
        assert_eq!(
            verify_signature(&spec(true), "k", &headers, body, 1000 + 301),
            Err(SignatureError::Stale)
        );
        // Timestamps at the ends of i64 are stale, not an overflow.
        for far in [i64::MIN, i64::MAX] {
            let text = format!("{far}.{{}}");
            headers.insert("x-timestamp", far.to_string().parse().unwrap());
            headers.insert("x-signature", sign("k", text.as_bytes()).parse().unwrap());
            assert_eq!(
                verify_signature(&spec(true), "k", &headers, body, 1200),
                Err(SignatureError::Stale)
            );
        }
        headers.insert("x-timestamp", "1000".parse().unwrap());
        // The body alone signed is not the timestamped text.
        headers.insert("x-signature", sign("k", body).parse().unwrap());
        assert_eq!(
            verify_signature(&spec(true), "k", &headers, body, 1000),
            Err(SignatureError::Mismatch)
        );
    }
}
