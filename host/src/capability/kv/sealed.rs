//! Values of `sealed/` keys, sealed with the host's master key at rest:
//! XChaCha20-Poly1305 bound to (tenant, installation, `storage:` + key), so
//! a value copied to another installation or key does not open. Stored as
//! one version byte, the key id's length and bytes, the 24-byte nonce, then
//! the ciphertext and tag.

use crate::secrets::{SealedSecret, SecretSlot};

use super::KvCapability;

/// Why a sealed value could not be sealed or opened (the WIT glue turns it
/// into the guest's `storage-error`).
#[derive(Debug)]
pub(super) enum SealError {
    /// The value is not UTF-8 text.
    NotText(String),
    /// No master key, or the stored value does not open.
    Unavailable(String),
}

/// Keys under this prefix have their values sealed.
pub(crate) const SEALED_PREFIX: &str = "sealed/";

const FORMAT: u8 = 1;
const NONCE: usize = 24;

/// Whether `key`'s value is sealed.
pub(super) fn is_sealed(key: &str) -> bool {
    key.starts_with(SEALED_PREFIX)
}

fn no_keyring() -> SealError {
    SealError::Unavailable(
        "`sealed/` keys need the host's master key (--master-key-file), and this host has none"
            .into(),
    )
}

fn encode(sealed: &SealedSecret) -> Vec<u8> {
    let mut out = vec![FORMAT, sealed.key_id.len() as u8];
    out.extend_from_slice(sealed.key_id.as_bytes());
    out.extend_from_slice(&sealed.nonce);
    out.extend_from_slice(&sealed.ciphertext);
    out
}

fn decode(bytes: &[u8]) -> Option<SealedSecret> {
    let (&format, rest) = bytes.split_first()?;
    let (&id_len, rest) = rest.split_first()?;
    if format != FORMAT || rest.len() < usize::from(id_len) + NONCE {
        return None;
    }
    let (id, rest) = rest.split_at(usize::from(id_len));
    let (nonce, ciphertext) = rest.split_at(NONCE);
    Some(SealedSecret {
        key_id: String::from_utf8(id.to_vec()).ok()?,
        nonce: nonce.to_vec(),
        ciphertext: ciphertext.to_vec(),
    })
}

impl KvCapability {
    /// Calls `f` with the keyring and the slot `key`'s value is bound to:
    /// this installation, and `storage:` + the key.
    fn with_slot<T>(
        &self,
        key: &str,
        f: impl FnOnce(&crate::secrets::Keyring, SecretSlot<'_>) -> Result<T, SealError>,
    ) -> Result<T, SealError> {
        let keyring = self.keyring.as_ref().ok_or_else(no_keyring)?;
        let scope = self.storage.scope();
        let slot_key = format!("storage:{key}");
        let slot = SecretSlot {
            tenant: &scope.tenant,
            installation: &scope.installation,
            key: &slot_key,
        };
        f(keyring, slot)
    }

    /// `value` of `key`, sealed (it must be UTF-8 text: tokens are).
    pub(super) fn seal(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>, SealError> {
        let text = String::from_utf8(value).map_err(|_| {
            SealError::NotText(format!(
                "the value of `{key}` must be UTF-8 text to be sealed"
            ))
        })?;
        self.with_slot(key, |keyring, slot| Ok(encode(&keyring.seal(slot, &text))))
    }

    /// The plaintext of `key`'s stored `value`.
    pub(super) fn open(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, SealError> {
        let sealed = decode(value).ok_or_else(|| {
            SealError::Unavailable(format!("the stored value of `{key}` is not sealed"))
        })?;
        self.with_slot(key, |keyring, slot| {
            keyring
                .open(slot, &sealed)
                .map(String::into_bytes)
                .map_err(|e| SealError::Unavailable(format!("`{key}` cannot be opened: {e}")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_round_trips_and_garbage_is_refused() {
        let sealed = SealedSecret {
            key_id: "k1".into(),
            nonce: vec![7; NONCE],
            ciphertext: vec![1, 2, 3],
        };
        assert_eq!(decode(&encode(&sealed)), Some(sealed));
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&[FORMAT, 200, 1, 2]), None);
        assert_eq!(decode(&[9, 0]), None);
        assert!(is_sealed("sealed/token") && !is_sealed("token"));
    }
}
