//! Finding an installation's secrets in text, in the forms they travel in, and
//! replacing them with `[redacted]`.
//!
//! A secret is caught as written, percent-encoded (any mix of encoded and
//! plain bytes, upper- or lower-case hex, `+` for a space) and base64-encoded
//! (standard or URL-safe alphabet, padded or not, alone or inside a longer
//! token such as the `user:password` of HTTP Basic auth). The rule for base64
//! is deliberately wide: any run of base64 characters that decodes, at any
//! alignment, to bytes containing a secret is redacted whole.
//!
//! This module knows nothing about where the text goes; callers redact before
//! they cap, store or print (see [`Redactor::redact_capped`]).

use std::ops::Range;
use std::sync::Arc;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not searched for: they would match ordinary
/// text everywhere.
pub const MIN_SECRET_LEN: usize = 4;

/// The secrets of one installation, ready to be searched for. Cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<[Vec<u8>]>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor for these secret values (shorter than [`MIN_SECRET_LEN`]
    /// are ignored).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let secrets: Vec<Vec<u8>> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .map(|s| s.as_bytes().to_vec())
            .collect();
        Self {
            secrets: secrets.into(),
        }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// How many bytes past a cut may still belong to a secret that starts
    /// before it, in any form but base64 inside a longer token (which is
    /// caught by decoding whatever part of the token is present): the longest
    /// percent-encoded secret.
    pub fn reach(&self) -> usize {
        self.secrets.iter().map(|s| 3 * s.len()).max().unwrap_or(0)
    }

    /// `text` with every secret, in every form it is caught in, replaced by
    /// [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        let mut spans = Vec::new();
        for secret in self.secrets.iter() {
            spans.extend(decoded_matches(text, secret, false));
            spans.extend(decoded_matches(text, secret, true));
        }
        spans.extend(base64_tokens_with_secret(text, &self.secrets));
        replace_spans(text, spans)
    }

    /// `text` redacted, then cut to at most `max` bytes (on a character
    /// boundary). Redacting first means a secret straddling the cut is
    /// caught whole, never leaving its prefix behind.
    pub fn redact_capped(&self, text: &str, max: usize) -> String {
        let mut out = self.redact(text);
        if out.len() > max {
            let mut end = max;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
        }
        out
    }
}

/// Byte ranges of `text` that decode (percent-decoding, and `+` as a space
/// when `plus_is_space`) to `secret`. Plain text decodes to itself, so this
/// also finds the secret as written.
fn decoded_matches(text: &str, secret: &[u8], plus_is_space: bool) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    // Each decoded byte, and the range of `text` it came from.
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut origin = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let (byte, width) = match bytes[i] {
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => (hi << 4 | lo, 3),
                _ => (b'%', 1),
            },
            b'+' if plus_is_space => (b' ', 1),
            b => (b, 1),
        };
        decoded.push(byte);
        origin.push(i..i + width);
        i += width;
    }
    find_all(&decoded, secret)
        .map(|at| origin[at].start..origin[at + secret.len() - 1].end)
        .collect()
}

fn hex(b: Option<&u8>) -> Option<u8> {
    (*b? as char).to_digit(16).map(|d| d as u8)
}

/// Start offsets of every occurrence of `needle` in `haystack`.
fn find_all<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}

/// The value of a character in either base64 alphabet.
fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Decodes base64 leniently: either alphabet, no padding needed, a trailing
/// partial group decoded as far as it goes.
fn decode_lenient(chars: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chars.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in chars {
        let Some(v) = base64_value(c) else { break };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Ranges of the runs of base64 characters in `text` (with their `=`
/// padding) that decode, starting at any of the four alignments, to bytes
/// containing one of `secrets`.
fn base64_tokens_with_secret(text: &str, secrets: &[Vec<u8>]) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let shortest = secrets.iter().map(Vec::len).min().unwrap_or(0);
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if base64_value(bytes[i]).is_none() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && base64_value(bytes[i]).is_some() {
            i += 1;
        }
        let chars = &bytes[start..i];
        while i < bytes.len() && bytes[i] == b'=' {
            i += 1;
        }
        // Fewer characters than encode the shortest secret cannot hold one.
        if chars.len() * 3 / 4 < shortest {
            continue;
        }
        let holds_secret = (0..4.min(chars.len())).any(|offset| {
            let decoded = decode_lenient(&chars[offset..]);
            secrets
                .iter()
                .any(|s| find_all(&decoded, s).next().is_some())
        });
        if holds_secret {
            spans.push(start..i);
        }
    }
    spans
}

/// `text` with each of `spans` (merged where they overlap, widened to
/// character boundaries) replaced by [`REDACTED`].
fn replace_spans(text: &str, mut spans: Vec<Range<usize>>) -> String {
    if spans.is_empty() {
        return text.to_string();
    }
    spans.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut current: Option<Range<usize>> = None;
    let flush = |out: &mut String, copied: &mut usize, span: Range<usize>| {
        let mut start = span.start.max(*copied);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = span.end;
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push_str(&text[*copied..start.max(*copied)]);
        out.push_str(REDACTED);
        *copied = end;
    };
    for span in spans {
        current = match current {
            Some(c) if span.start <= c.end => Some(c.start..c.end.max(span.end)),
            Some(c) => {
                flush(&mut out, &mut copied, c);
                Some(span)
            }
            None => Some(span),
        };
    }
    if let Some(c) = current {
        flush(&mut out, &mut copied, c);
    }
    out.push_str(&text[copied.min(text.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

    /// The secret of these tests: a `/` and a space make its encodings differ.
    const SECRET: &str = "s3cr/t pass?";

    fn check(input: &str, expected: &str) {
        let redactor = Redactor::new([SECRET, "k3y!"]);
        assert_eq!(redactor.redact(input), expected, "input: {input:?}");
    }

    #[test]
    fn catches_a_secret_as_written_and_percent_encoded() {
        check("auth s3cr/t pass? failed", "auth [redacted] failed");
        check("k3y!k3y!", "[redacted]");
        check("no secret here", "no secret here");
        check("short ones: k3y", "short ones: k3y");
        check("/p/s3cr%2Ft%20pass%3F/x", "/p/[redacted]/x");
        check("/p/s3cr%2ft%20pass%3f/x", "/p/[redacted]/x");
        check("q=s3cr%2Ft+pass%3F&b=1", "q=[redacted]&b=1");
        check("q=%73%33%63%72%2F%74%20%70%61%73%73%3F", "q=[redacted]");
        check("k%33y%21.", "[redacted].");
        check("100% sure, %zz", "100% sure, %zz");
        check("é s3cr/t pass? é", "é [redacted] é");
    }

    #[test]
    fn catches_base64_forms_alone_and_inside_basic_auth() {
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            let encoded = engine.encode(SECRET);
            check(&format!("token {encoded} sent"), "token [redacted] sent");
        }
        for user in ["u", "us", "usr", "merchant-api-user"] {
            let basic = STANDARD.encode(format!("{user}:{SECRET}"));
            check(
                &format!("Authorization: Basic {basic}"),
                "Authorization: Basic [redacted]",
            );
        }
        let inside = URL_SAFE_NO_PAD.encode(format!("{{\"key\":\"{SECRET}\",\"n\":1}}"));
        check(&format!("jwt x.{inside}.y"), "jwt x.[redacted].y");
        // A base64 run with other text glued in front still decodes at some
        // alignment.
        let glued = format!("/v1/{}", STANDARD.encode(format!("ab:{SECRET}")));
        check(&glued, "[redacted]");
        let innocent = STANDARD.encode("nothing to see in here");
        check(&innocent, &innocent);
    }

    #[test]
    fn redacting_before_capping_leaves_no_prefix_at_the_cut() {
        let redactor = Redactor::new([SECRET]);
        let text = format!("0123456789{SECRET}tail");
        for max in 0..text.len() {
            let out = redactor.redact_capped(&text, max);
            assert!(out.len() <= max, "{out:?} is over {max}");
            assert!(!out.contains("s3cr"), "{max}: {out:?}");
        }
        assert_eq!(
            redactor.redact_capped(&text, 100),
            "0123456789[redacted]tail"
        );
        assert!(redactor.reach() >= 3 * SECRET.len());
    }
}
