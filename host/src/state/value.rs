//! How a stored value is shown to people, without I/O: printable UTF-8 as
//! text, anything else as hex, cut to a length; values of `sealed/` keys
//! never (only their size).

use serde::Serialize;

use crate::capability::kv::SEALED_PREFIX;
use crate::storage::ValueHead;

/// Bytes of a value read to show it: enough for [`SHOWN_CHARS`] of text.
pub const HEAD_BYTES: usize = 1024;
/// Characters of text (or bytes as hex) shown of a value.
pub const SHOWN_CHARS: usize = 200;

/// A value as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ShownValue {
    /// Printable UTF-8.
    Text {
        /// The text (its start, if `truncated`).
        text: String,
        /// Whether only the start is shown.
        truncated: bool,
    },
    /// Anything else, as lower-case hex.
    Hex {
        /// The hex (of the first bytes, if `truncated`).
        hex: String,
        /// Whether only the start is shown.
        truncated: bool,
    },
    /// The value of a `sealed/` key: never shown, sealed or not.
    Sealed,
}

/// Whether `key`'s values are sealed (and so never shown).
pub fn is_sealed_key(key: &str) -> bool {
    key.starts_with(SEALED_PREFIX)
}

/// How `value` of `key` is shown.
pub fn shown(key: &str, value: &ValueHead) -> ShownValue {
    if is_sealed_key(key) {
        return ShownValue::Sealed;
    }
    let cut_short = value.size as usize > value.head.len();
    match text_of(&value.head, cut_short) {
        Some(text) => {
            let truncated = cut_short || text.chars().count() > SHOWN_CHARS;
            ShownValue::Text {
                text: text.chars().take(SHOWN_CHARS).collect(),
                truncated,
            }
        }
        None => {
            let bytes = &value.head[..value.head.len().min(SHOWN_CHARS / 2)];
            ShownValue::Hex {
                hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
                truncated: value.size as usize > bytes.len(),
            }
        }
    }
}

/// `bytes` as text if they are printable UTF-8 (tabs and newlines
/// allowed); a head cut inside a character is still text.
fn text_of(bytes: &[u8], cut_short: bool) -> Option<&str> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) if cut_short && e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    let printable = text
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'));
    printable.then_some(text)
}

impl ShownValue {
    /// One line for a terminal: text quoted with escapes, hex as `0x…`,
    /// `(sealed, N bytes)`; `…` when cut.
    pub fn line(&self, size: u64) -> String {
        match self {
            Self::Text { text, truncated } => {
                format!("{:?}{}", text, if *truncated { "…" } else { "" })
            }
            Self::Hex { hex, truncated } => {
                format!("0x{hex}{}", if *truncated { "…" } else { "" })
            }
            Self::Sealed => format!("(sealed, {size} bytes)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, bytes: &[u8], size: u64, expected: &str) {
        let value = ValueHead {
            size,
            head: bytes.to_vec(),
        };
        assert_eq!(shown(key, &value).line(size), expected, "{key} {bytes:?}");
    }

    #[test]
    fn values_are_text_hex_or_sealed() {
        check("cursor", b"2026-11-01", 10, "\"2026-11-01\"");
        check("cursor", b"line\nnext", 9, "\"line\\nnext\"");
        check("blob", &[0, 1, 0xff], 3, "0x0001ff");
        check("bell", b"a\x07b", 3, "0x610762");
        check("sealed/token", b"secret-token", 12, "(sealed, 12 bytes)");
        check("sealed/token", &[1, 2, 3], 3, "(sealed, 3 bytes)");
        // Cut by the store: the rest is not read.
        check("long", b"abc", 5000, "\"abc\"…");
        // Cut inside a character by the store: still text.
        check(
            "e",
            "caf\u{e9}".as_bytes().split_last().unwrap().1,
            5,
            "\"caf\"…",
        );
        // Long values are cut for the screen.
        let long = "x".repeat(SHOWN_CHARS + 1);
        check(
            "x",
            long.as_bytes(),
            long.len() as u64,
            &format!("\"{}\"…", &long[..SHOWN_CHARS]),
        );
        let bytes = vec![0u8; SHOWN_CHARS];
        check(
            "z",
            &bytes,
            bytes.len() as u64,
            &format!("0x{}…", "00".repeat(SHOWN_CHARS / 2)),
        );
    }

    #[test]
    fn a_sealed_value_never_shows_its_bytes_in_json() {
        let value = ValueHead {
            size: 6,
            head: b"hunter".to_vec(),
        };
        let json = serde_json::to_string(&shown("sealed/password", &value)).unwrap();
        assert_eq!(json, r#"{"kind":"sealed"}"#);
    }
}
