//! Encryption at rest for installation secrets (API keys, passwords a tenant
//! enters). This module owns the master key (generation, its text form, the
//! key file and its permissions), the keyring used for rotation, and sealing
//! and opening secrets with XChaCha20-Poly1305. Each sealed value is bound to
//! its tenant, installation and key name through the associated data, so a
//! value copied to another slot fails to open. It does no storage: callers
//! persist the fields of [`SealedSecret`] wherever they like.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// Prefix of the text form of a master key.
const KEY_TEXT_PREFIX: &str = "airlock-key-v1:";
/// Domain separator hashed in front of the key bytes to derive a key id.
const KEY_ID_DOMAIN: &[u8] = b"airlock-key-id-v1";
/// Version tag at the start of the associated data of every sealed secret.
const AAD_DOMAIN: &[u8] = b"airlock-secret-v1";
/// Length of a master key in bytes.
const KEY_LEN: usize = 32;
/// Length of an XChaCha20-Poly1305 nonce in bytes.
const NONCE_LEN: usize = 24;
/// Largest key file `load` will read; a key file is well under 100 bytes.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// Errors from key handling and from opening sealed secrets. No variant ever
/// carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file is unreadable, malformed or readable by group or others.
    #[error("key file {}: {reason}", path.display())]
    KeyFile {
        /// The key file's path.
        path: PathBuf,
        /// What is wrong with it (never includes key material).
        reason: String,
    },
    /// The key text (for instance from an environment variable) is malformed.
    #[error("malformed master key text: {0}")]
    KeyText(String),
    /// The secret was sealed with a key whose id is not in the keyring.
    #[error(
        "secret was sealed with key {key_id}, which is not in the keyring: pass the key file it \
         was sealed with (--master-key-file, or --previous-key-file while rotating)"
    )]
    UnknownKey {
        /// Id of the key the secret was sealed with.
        key_id: String,
    },
    /// Authentication failed: the value was tampered with, or it was sealed
    /// for another tenant, installation or key name, or under another key.
    #[error(
        "secret {what} failed authentication: tampered with, or sealed for another slot or key"
    )]
    Tampered {
        /// The slot being opened, as `tenant/installation/key`.
        what: String,
    },
    /// The key file already exists; key generation refuses to overwrite it.
    #[error("key file {} already exists; refusing to overwrite it", .0.display())]
    Exists(PathBuf),
}

/// A 256-bit master key. `Debug` prints only its id.
pub struct MasterKey {
    bytes: [u8; KEY_LEN],
    id: String,
}

impl MasterKey {
    /// Generates a fresh random key from the operating system's RNG.
    pub fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        Self::from_bytes(key.into())
    }

    /// Parses the text form `"airlock-key-v1:"` followed by the standard
    /// base64 of the 32 key bytes. Surrounding whitespace (such as a trailing
    /// newline) is ignored; anything else is a [`SecretError::KeyText`].
    pub fn from_text(text: &str) -> Result<Self, SecretError> {
        let encoded = text.trim().strip_prefix(KEY_TEXT_PREFIX).ok_or_else(|| {
            key_text_error(format!("expected it to start with {KEY_TEXT_PREFIX}"))
        })?;
        // The decoder's own message may quote key characters, so drop it.
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| key_text_error("the part after the prefix is not valid base64".into()))?;
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            key_text_error(format!(
                "expected {KEY_LEN} key bytes, found {}",
                bytes.len()
            ))
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The text form: `"airlock-key-v1:"` followed by the standard base64 of
    /// the key bytes. This is key material; never log it.
    pub fn to_text(&self) -> String {
        format!("{KEY_TEXT_PREFIX}{}", STANDARD.encode(self.bytes))
    }

    /// Reads a key file holding the text form. On unix, a file readable or
    /// writable by group or others is refused with a message telling to
    /// `chmod 600` it.
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let file = File::open(path).map_err(|e| key_file_error(path, io_reason("open", &e)))?;
        check_private(path, &file)?;
        let mut text = String::new();
        file.take(MAX_KEY_FILE_LEN)
            .read_to_string(&mut text)
            .map_err(|e| key_file_error(path, io_reason("read", &e)))?;
        Self::from_text(&text).map_err(|e| match e {
            SecretError::KeyText(reason) => key_file_error(path, reason),
            other => other,
        })
    }

    /// Writes a new random key to `path` with mode 0600 and returns it.
    /// Refuses to overwrite an existing file ([`SecretError::Exists`]).
    pub fn create_file(path: &Path) -> Result<Self, SecretError> {
        let mut file = create_private(path)?;
        let key = Self::generate();
        let written = write_key(&mut file, &key);
        if let Err(e) = written {
            drop(file);
            let _ = fs::remove_file(path);
            return Err(key_file_error(path, io_reason("write", &e)));
        }
        Ok(key)
    }

    /// Stable id used to pick the key for opening during rotation: the first
    /// 16 hex characters of sha256(`"airlock-key-id-v1"` || key bytes).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Builds a key from raw bytes, deriving its id.
    fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let digest = Sha256::new()
            .chain_update(KEY_ID_DOMAIN)
            .chain_update(bytes)
            .finalize();
        let id = hex::encode(&digest[..8]);
        Self { bytes, id }
    }

    /// The AEAD cipher for this key.
    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(&self.bytes))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SecretError::KeyText`].
fn key_text_error(reason: String) -> SecretError {
    SecretError::KeyText(reason)
}

/// Builds a [`SecretError::KeyFile`] for `path`.
fn key_file_error(path: &Path, reason: String) -> SecretError {
    SecretError::KeyFile {
        path: path.to_path_buf(),
        reason,
    }
}

/// Describes a failed I/O operation on the key file.
fn io_reason(action: &str, error: &io::Error) -> String {
    format!("cannot {action} it: {error}")
}

/// Refuses a key file that group or others may access (unix only).
#[cfg(unix)]
fn check_private(path: &Path, file: &File) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = file
        .metadata()
        .map_err(|e| key_file_error(path, io_reason("stat", &e)))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        let reason = format!(
            "mode {mode:04o} lets group or others access it; run `chmod 600 {}`",
            path.display()
        );
        return Err(key_file_error(path, reason));
    }
    Ok(())
}

/// Permission bits are not checked on non-unix platforms.
#[cfg(not(unix))]
fn check_private(_path: &Path, _file: &File) -> Result<(), SecretError> {
    Ok(())
}

/// Creates `path` exclusively, readable and writable by the owner only.
fn create_private(path: &Path) -> Result<File, SecretError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let missing_dir = || {
        path.parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    };
    options.open(path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => SecretError::Exists(path.to_path_buf()),
        io::ErrorKind::NotFound if let Some(dir) = missing_dir() => key_file_error(
            path,
            format!(
                "cannot create it: the directory {0} does not exist (create it first, readable \
                 by its owner only: mkdir -p -m 700 {0})",
                dir.display()
            ),
        ),
        _ => key_file_error(path, io_reason("create", &e)),
    })
}

/// Writes the key's text form and a newline, pinning the mode to 0600 in
/// case the umask removed owner bits.
fn write_key(file: &mut File, key: &MasterKey) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    writeln!(file, "{}", key.to_text())?;
    file.sync_all()
}

/// Where a secret belongs. Bound into the ciphertext as associated data, so
/// a sealed value copied to another tenant, installation or key name fails
/// to open.
#[derive(Debug, Clone, Copy)]
pub struct SecretSlot<'a> {
    /// The tenant owning the installation.
    pub tenant: &'a str,
    /// The installation id within the tenant.
    pub installation: &'a str,
    /// The configuration key name of the secret.
    pub key: &'a str,
}

impl SecretSlot<'_> {
    /// Versioned, unambiguous associated data: the version tag, then each of
    /// tenant, installation and key as a u32 big-endian length plus bytes.
    fn associated_data(&self) -> Vec<u8> {
        let parts = [self.tenant, self.installation, self.key];
        let mut aad = AAD_DOMAIN.to_vec();
        for part in parts {
            let len = u32::try_from(part.len()).expect("secret slot part longer than 4 GiB");
            aad.extend_from_slice(&len.to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }

    /// The slot as `tenant/installation/key`, for error messages.
    fn describe(&self) -> String {
        format!("{}/{}/{}", self.tenant, self.installation, self.key)
    }
}

/// A sealed secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// Id of the master key it was sealed with (see [`MasterKey::id`]).
    pub key_id: String,
    /// The 24-byte XChaCha20-Poly1305 nonce, fresh for every seal.
    pub nonce: Vec<u8>,
    /// The ciphertext followed by the 16-byte authentication tag.
    pub ciphertext: Vec<u8>,
}

/// The current key, which seals, plus previous keys, which only open; this
/// is what makes key rotation possible. `Debug` shows key ids only.
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring sealing with `current` and also opening with `previous`.
    /// Previous keys with the same id as `current` are dropped.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        let previous = previous
            .into_iter()
            .filter(|key| key.id() != current.id())
            .collect();
        Self { current, previous }
    }

    /// Id of the key used for sealing.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// Seals `plaintext` for `slot` with the current key and a fresh random
    /// 24-byte nonce. Infallible: encryption with a valid key only fails for
    /// inputs far beyond any real secret's size, which panics.
    pub fn seal(&self, slot: SecretSlot<'_>, plaintext: &str) -> SealedSecret {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = slot.associated_data();
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: &aad,
        };
        let ciphertext = self
            .current
            .cipher()
            .encrypt(&nonce, payload)
            .expect("XChaCha20-Poly1305 encryption with a valid key cannot fail");
        SealedSecret {
            key_id: self.current_id().to_owned(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Opens `sealed` for `slot` with the key named by its key id (current or
    /// previous). [`SecretError::UnknownKey`] if the keyring has no such key;
    /// [`SecretError::Tampered`] if authentication fails (tampering, another
    /// slot, a malformed nonce) or the plaintext is not UTF-8.
    pub fn open(&self, slot: SecretSlot<'_>, sealed: &SealedSecret) -> Result<String, SecretError> {
        let key = self.find(&sealed.key_id)?;
        let tampered = || SecretError::Tampered {
            what: slot.describe(),
        };
        if sealed.nonce.len() != NONCE_LEN {
            return Err(tampered());
        }
        let aad = slot.associated_data();
        let payload = Payload {
            msg: &sealed.ciphertext,
            aad: &aad,
        };
        let plaintext = key
            .cipher()
            .decrypt(XNonce::from_slice(&sealed.nonce), payload)
            .map_err(|_| tampered())?;
        String::from_utf8(plaintext).map_err(|_| tampered())
    }

    /// Whether `sealed` was not sealed with the current key, so a rotation
    /// should re-seal it. A secret under an unknown key also reports `true`;
    /// opening it then reports [`SecretError::UnknownKey`].
    pub fn needs_reseal(&self, sealed: &SealedSecret) -> bool {
        sealed.key_id != self.current_id()
    }

    /// The key with id `key_id`, current first.
    fn find(&self, key_id: &str) -> Result<&MasterKey, SecretError> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id() == key_id)
            .ok_or_else(|| SecretError::UnknownKey {
                key_id: key_id.to_owned(),
            })
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(MasterKey::id).collect();
        f.debug_struct("Keyring")
            .field("current", &self.current.id())
            .field("previous", &previous)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT: SecretSlot<'static> = SecretSlot {
        tenant: "acme",
        installation: "shop",
        key: "password",
    };

    fn keyring() -> Keyring {
        Keyring::new(MasterKey::generate(), Vec::new())
    }

    fn assert_tampered(result: Result<String, SecretError>) {
        assert!(
            matches!(result, Err(SecretError::Tampered { .. })),
            "expected Tampered, got {result:?}"
        );
    }

    fn key_text_of_len(len: usize) -> String {
        format!("{KEY_TEXT_PREFIX}{}", STANDARD.encode(vec![7u8; len]))
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn round_trip_returns_plaintext() {
        let ring = keyring();
        let sealed = ring.seal(SLOT, "hunter2 ünïcode");
        assert_eq!(sealed.key_id, ring.current_id());
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert_eq!(ring.open(SLOT, &sealed).unwrap(), "hunter2 ünïcode");
        assert!(!ring.needs_reseal(&sealed));
    }

    #[test]
    fn round_trip_empty_secret() {
        let ring = keyring();
        assert_eq!(ring.open(SLOT, &ring.seal(SLOT, "")).unwrap(), "");
    }

    #[test]
    fn seals_use_fresh_nonce_and_hide_plaintext() {
        let ring = keyring();
        let secret = "sk_live_0123456789abcdef";
        let a = ring.seal(SLOT, secret);
        let b = ring.seal(SLOT, secret);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert!(!contains(&a.ciphertext, secret.as_bytes()));
        assert!(!contains(&a.ciphertext, b"sk_live"));
    }

    #[test]
    fn other_tenant_installation_or_key_name_is_tampered() {
        let ring = keyring();
        let sealed = ring.seal(SLOT, "secret");
        let others = [
            SecretSlot {
                tenant: "evil",
                ..SLOT
            },
            SecretSlot {
                installation: "other",
                ..SLOT
            },
            SecretSlot {
                key: "api_key",
                ..SLOT
            },
        ];
        for other in others {
            assert_tampered(ring.open(other, &sealed));
        }
    }

    #[test]
    fn tampered_error_names_slot() {
        let ring = keyring();
        let sealed = ring.seal(SLOT, "secret");
        let other = SecretSlot {
            tenant: "evil",
            ..SLOT
        };
        match ring.open(other, &sealed) {
            Err(SecretError::Tampered { what }) => assert_eq!(what, "evil/shop/password"),
            result => panic!("expected Tampered, got {result:?}"),
        }
    }

    #[test]
    fn length_prefix_prevents_ambiguous_slots() {
        let ring = keyring();
        let ab_c = SecretSlot {
            tenant: "t",
            installation: "ab",
            key: "c",
        };
        let a_bc = SecretSlot {
            tenant: "t",
            installation: "a",
            key: "bc",
        };
        let sealed = ring.seal(ab_c, "secret");
        assert_tampered(ring.open(a_bc, &sealed));
        assert_eq!(ring.open(ab_c, &sealed).unwrap(), "secret");
    }

    #[test]
    fn flipped_ciphertext_bit_is_tampered() {
        let ring = keyring();
        let sealed = ring.seal(SLOT, "secret");
        for index in [0, sealed.ciphertext.len() - 1] {
            let mut bad = sealed.clone();
            bad.ciphertext[index] ^= 0x01;
            assert_tampered(ring.open(SLOT, &bad));
        }
    }

    #[test]
    fn flipped_nonce_bit_is_tampered() {
        let ring = keyring();
        let mut sealed = ring.seal(SLOT, "secret");
        sealed.nonce[NONCE_LEN - 1] ^= 0x80;
        assert_tampered(ring.open(SLOT, &sealed));
    }

    #[test]
    fn wrong_length_nonce_is_tampered_not_panic() {
        let ring = keyring();
        let mut sealed = ring.seal(SLOT, "secret");
        sealed.nonce.pop();
        assert_tampered(ring.open(SLOT, &sealed));
        sealed.nonce.clear();
        assert_tampered(ring.open(SLOT, &sealed));
    }

    #[test]
    fn truncated_ciphertext_is_tampered() {
        let ring = keyring();
        let mut sealed = ring.seal(SLOT, "secret");
        sealed.ciphertext.truncate(3);
        assert_tampered(ring.open(SLOT, &sealed));
    }

    #[test]
    fn same_id_with_other_key_bytes_is_tampered() {
        let ring = keyring();
        let other = keyring();
        let mut sealed = other.seal(SLOT, "secret");
        sealed.key_id = ring.current_id().to_owned();
        assert_tampered(ring.open(SLOT, &sealed));
    }

    #[test]
    fn rotation_opens_with_previous_key_and_needs_reseal() {
        let a = MasterKey::generate();
        let a_text = a.to_text();
        let sealed = Keyring::new(a, Vec::new()).seal(SLOT, "old secret");
        let a = MasterKey::from_text(&a_text).unwrap();
        let rotated = Keyring::new(MasterKey::generate(), vec![a]);
        assert_eq!(rotated.open(SLOT, &sealed).unwrap(), "old secret");
        assert!(rotated.needs_reseal(&sealed));
        let resealed = rotated.seal(SLOT, "old secret");
        assert_eq!(resealed.key_id, rotated.current_id());
        assert!(!rotated.needs_reseal(&resealed));
    }

    #[test]
    fn missing_previous_key_is_unknown_key_with_its_id() {
        let a = MasterKey::generate();
        let a_id = a.id().to_owned();
        let sealed = Keyring::new(a, Vec::new()).seal(SLOT, "secret");
        let b_only = keyring();
        match b_only.open(SLOT, &sealed) {
            Err(e @ SecretError::UnknownKey { .. }) => {
                assert!(matches!(&e, SecretError::UnknownKey { key_id } if *key_id == a_id));
                let said = e.to_string();
                assert!(
                    said.contains(&a_id) && said.contains("--master-key-file"),
                    "the error says which key and how to give it: {said}"
                );
            }
            result => panic!("expected UnknownKey, got {result:?}"),
        }
    }

    #[test]
    fn keyring_drops_previous_key_equal_to_current() {
        let text = MasterKey::generate().to_text();
        let current = MasterKey::from_text(&text).unwrap();
        let ring = Keyring::new(current, vec![MasterKey::from_text(&text).unwrap()]);
        assert!(ring.previous.is_empty());
    }

    #[test]
    fn key_id_is_known_answer() {
        let key = MasterKey::from_bytes([0u8; KEY_LEN]);
        assert_eq!(key.id(), "ee36c4727d034f0a");
        let other = MasterKey::generate();
        assert_eq!(other.id().len(), 16);
        assert_ne!(other.id(), key.id());
    }

    #[test]
    fn key_text_round_trip() {
        let key = MasterKey::generate();
        let text = key.to_text();
        assert!(text.starts_with(KEY_TEXT_PREFIX));
        let parsed = MasterKey::from_text(&text).unwrap();
        assert_eq!(parsed.bytes, key.bytes);
        assert_eq!(parsed.id(), key.id());
    }

    #[test]
    fn key_text_known_form() {
        let key = MasterKey::from_bytes([0u8; KEY_LEN]);
        assert_eq!(
            key.to_text(),
            "airlock-key-v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        );
    }

    #[test]
    fn key_text_trims_whitespace_and_newline() {
        let key = MasterKey::generate();
        let padded = format!("  \t{}\r\n", key.to_text());
        assert_eq!(MasterKey::from_text(&padded).unwrap().id(), key.id());
    }

    #[test]
    fn key_text_rejects_malformed_input() {
        let good = MasterKey::generate().to_text();
        let body = good.strip_prefix(KEY_TEXT_PREFIX).unwrap();
        let bad = [
            String::new(),
            "   \n".to_owned(),
            format!("airlock-key-v2:{body}"),
            body.to_owned(),
            format!("{KEY_TEXT_PREFIX}not*base64!"),
            KEY_TEXT_PREFIX.to_owned(),
            key_text_of_len(31),
            key_text_of_len(33),
        ];
        for text in &bad {
            let result = MasterKey::from_text(text);
            assert!(
                matches!(result, Err(SecretError::KeyText(_))),
                "accepted {text:?}: {result:?}"
            );
        }
    }

    #[test]
    fn key_text_error_does_not_echo_input() {
        let text = format!("{KEY_TEXT_PREFIX}c2VjcmV0LWtleS1tYXRlcmlhbA*=");
        let message = MasterKey::from_text(&text).unwrap_err().to_string();
        assert!(!message.contains("c2VjcmV0"), "{message}");
        assert!(!message.contains('*'), "{message}");
    }

    #[test]
    fn debug_hides_key_material() {
        let key = MasterKey::generate();
        let text = key.to_text();
        let body = text.strip_prefix(KEY_TEXT_PREFIX).unwrap().to_owned();
        let key_debug = format!("{key:?}");
        assert!(key_debug.contains(key.id()));
        let previous = MasterKey::generate();
        let previous_body = previous.to_text()[KEY_TEXT_PREFIX.len()..].to_owned();
        let ring = Keyring::new(key, vec![previous]);
        let ring_debug = format!("{ring:?}");
        for debug in [&key_debug, &ring_debug] {
            assert!(!debug.contains(&body), "{debug}");
            assert!(!debug.contains(&body[..12]), "{debug}");
            assert!(!debug.contains(&previous_body[..12]), "{debug}");
        }
        assert!(ring_debug.contains(ring.current_id()));
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn create_file_writes_mode_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::create_file(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(MasterKey::load(&path).unwrap().id(), key.id());
        let contents = fs::read_to_string(&path).unwrap();
        assert_eq!(contents, format!("{}\n", key.to_text()));
    }

    #[test]
    fn create_file_in_a_missing_directory_says_to_create_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("airlock");
        let err = MasterKey::create_file(&missing.join("master.key"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("mkdir -p -m 700 {}", missing.display())),
            "{err}"
        );
    }

    #[test]
    fn create_file_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = MasterKey::create_file(&path).unwrap();
        match MasterKey::create_file(&path) {
            Err(SecretError::Exists(existing)) => assert_eq!(existing, path),
            result => panic!("expected Exists, got {result:?}"),
        }
        assert_eq!(MasterKey::load(&path).unwrap().id(), first.id());
    }

    #[cfg(unix)]
    #[test]
    fn load_refuses_group_readable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::create_file(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = MasterKey::load(&path).unwrap_err();
        assert!(matches!(error, SecretError::KeyFile { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("chmod 600"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    #[test]
    fn load_missing_file_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.key");
        match MasterKey::load(&path) {
            Err(SecretError::KeyFile { path: named, .. }) => assert_eq!(named, path),
            result => panic!("expected KeyFile, got {result:?}"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn load_malformed_file_is_key_file_error_without_contents() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, "airlock-key-v1:dG9vLXNob3J0LXNlY3JldA==\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let error = MasterKey::load(&path).unwrap_err();
        assert!(matches!(error, SecretError::KeyFile { .. }), "{error:?}");
        assert!(!error.to_string().contains("dG9vLXNob3J0"), "{error}");
    }
}
