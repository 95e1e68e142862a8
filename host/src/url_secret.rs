//! Secrets carried in URLs: an installation's feed access token
//! (`/feeds/…?token=`) and its webhook secret (`/hooks/…/{secret}`). Each is
//! drawn from the operating system's RNG and shown once; the store keeps
//! only its sha256, and a presented one is compared in constant time.

use base64::Engine as _;
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// A new feed access token: 256 bits, URL-safe base64.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Letters and digits a short secret is drawn from.
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A new secret of `len` letters and digits (16 give 95 bits): the form
/// services that limit a URL's secret take, such as SALESmanago's
/// "security parameter" of at most 16 characters. Each character is drawn
/// without bias (bytes past the largest multiple of 62 are redrawn).
pub fn generate_alphanumeric(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let limit = 256 - 256 % ALPHANUMERIC.len();
    while out.len() < len {
        let mut byte = [0u8; 1];
        OsRng.fill_bytes(&mut byte);
        if usize::from(byte[0]) < limit {
            out.push(ALPHANUMERIC[usize::from(byte[0]) % ALPHANUMERIC.len()] as char);
        }
    }
    out
}

/// What the store keeps of `secret`.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `presented` is the secret whose hash is `stored`, compared in
/// constant time. With none stored, nothing matches (the comparison is
/// still made, against a hash no secret has).
pub fn matches(presented: Option<&str>, stored: Option<&[u8; 32]>) -> bool {
    let presented = hash(presented.unwrap_or_default());
    let nothing = [0u8; 32];
    let same: bool = presented.ct_eq(stored.unwrap_or(&nothing)).into();
    same && stored.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphanumeric_secrets_have_their_length_and_alphabet_and_differ() {
        let a = generate_alphanumeric(16);
        let b = generate_alphanumeric(16);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
        assert!(matches(Some(&a), Some(&hash(&a))));
        assert!(!matches(Some(&b), Some(&hash(&a))));
        assert!(!matches(None, None));
        assert!(!matches(Some(""), None));
    }
}
