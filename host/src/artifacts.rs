//! Artifacts without I/O: the files a feed publishes (a product feed, a
//! sitemap), their name and content-type rules, the caps on what a run may
//! write, the bookkeeping of one run's artifacts, and the feed access token.
//!
//! What owns what: the guest's calls are `capability/artifacts/`; where the
//! bytes live (staged during the run, published with the run's record) is
//! [`crate::storage::ArtifactStore`]; serving them is `web/feeds.rs`.
//! Semantics: `docs/artifacts.md`.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

/// The longest artifact name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// The longest content type, in bytes.
pub const MAX_CONTENT_TYPE_BYTES: usize = 255;
/// Host maximum of `[limits] artifact_mb`: the largest artifact, MiB.
pub const MAX_ARTIFACT_MB: u32 = 512;
/// Host maximum of `[limits] artifact_run_mb`: bytes one run writes, MiB.
pub const MAX_ARTIFACT_RUN_MB: u32 = 2048;
/// Host maximum of `[limits] artifacts`: artifacts an installation keeps.
pub const MAX_ARTIFACTS: u32 = 1000;
/// Published versions kept per artifact unless the operator says otherwise
/// (`--artifact-versions`).
pub const DEFAULT_KEPT_VERSIONS: u32 = 3;
/// The most published versions the operator may keep per artifact.
pub const MAX_KEPT_VERSIONS: u32 = 100;
/// A staged version older than this (seconds) belongs to no live run (the
/// longest run takes 15 minutes): it is abandoned and deleted.
pub const ABANDONED_AFTER_SECS: i64 = 3600;

/// Why an artifacts call failed, as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// The name breaks the naming rule.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The content type is not a media type, or the artifact was not begun.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A cap would be exceeded.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// `check()` publishes nothing.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The store failed.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Whether `name` is a valid artifact name: 1 to 128 bytes of ASCII
/// letters, digits, `.`, `-` and `_`, starting with a letter or digit (so
/// never `.` or `..`, and always one path segment of a URL).
pub fn check_name(name: &str) -> Result<(), ArtifactError> {
    let bad = |why: &str| {
        Err(ArtifactError::InvalidName(format!(
            "artifact name `{}` {why}",
            name.escape_debug()
                .to_string()
                .chars()
                .take(64)
                .collect::<String>()
        )))
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("is over 128 bytes");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("must start with an ASCII letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return bad("may have only ASCII letters, digits, `.`, `-` and `_`");
    }
    Ok(())
}

/// RFC 9110 `token` characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `content_type` is a media type (`type/subtype` with optional
/// `; name=value` parameters, RFC 9110 §8.3), at most 255 bytes of
/// printable ASCII: it is sent as a header, so nothing may break out.
pub fn check_content_type(content_type: &str) -> Result<(), ArtifactError> {
    let bad = |why: &str| {
        Err(ArtifactError::InvalidArgument(format!(
            "content type `{}` {why}",
            content_type
                .escape_debug()
                .to_string()
                .chars()
                .take(64)
                .collect::<String>()
        )))
    };
    if content_type.len() > MAX_CONTENT_TYPE_BYTES {
        return bad("is over 255 bytes");
    }
    if !content_type.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return bad("must be printable ASCII");
    }
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return bad("is not a media type like `text/csv` or `application/rss+xml`");
    };
    if !is_token(kind) || !is_token(subtype) {
        return bad("is not a media type like `text/csv` or `application/rss+xml`");
    }
    for param in parts {
        let Some((name, value)) = param.trim().split_once('=') else {
            return bad("has a parameter without `=`");
        };
        let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
        if !is_token(name) || !(is_token(value) || quoted) {
            return bad("has a malformed parameter");
        }
    }
    Ok(())
}

/// The caps on one run's artifacts, from the manifest's `[limits]` within
/// the host maxima.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactLimits {
    /// Bytes one artifact may have.
    pub artifact_bytes: u64,
    /// Bytes one run may write to artifacts in all (discarded ones too).
    pub run_bytes: u64,
    /// Artifacts (names) the installation may keep published.
    pub artifacts: usize,
}

impl ArtifactLimits {
    /// The caps asked for in MiB and count, each within its host maximum.
    pub fn within_host(artifact_mb: u32, run_mb: u32, artifacts: u32) -> Self {
        Self {
            artifact_bytes: u64::from(artifact_mb.min(MAX_ARTIFACT_MB)) << 20,
            run_bytes: u64::from(run_mb.min(MAX_ARTIFACT_RUN_MB)) << 20,
            artifacts: artifacts.min(MAX_ARTIFACTS) as usize,
        }
    }
}

/// An artifact version a run has begun: where it is staged, and what it
/// holds so far.
#[derive(Debug, Clone)]
pub struct Begun {
    /// The store's id of the staged version.
    pub staged: i64,
    /// Its content type.
    pub content_type: String,
    /// Bytes appended so far.
    pub size: u64,
    /// Chunks (rows) stored so far: the next one's sequence number.
    pub chunks: i64,
    hasher: Sha256,
}

impl Begun {
    /// The hex sha256 of the bytes appended (the ETag).
    pub fn sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

/// One run's artifacts, without I/O: which are begun, the bytes written,
/// and the caps. The capability asks it before each store call.
#[derive(Debug)]
pub struct RunArtifacts {
    limits: ArtifactLimits,
    allowed: bool,
    begun: BTreeMap<String, Begun>,
    /// Staged versions this run dropped (begun again, discarded).
    dropped: Vec<i64>,
    written: u64,
}

impl RunArtifacts {
    /// A run's artifacts within `limits`; a `check()` is not `allowed` any.
    pub fn new(limits: ArtifactLimits, allowed: bool) -> Self {
        Self {
            limits,
            allowed,
            begun: BTreeMap::new(),
            dropped: Vec::new(),
            written: 0,
        }
    }

    /// Whether `begin` of `name` (of `content_type`) may go ahead, given the
    /// names the installation has `published`.
    pub fn may_begin(
        &self,
        name: &str,
        content_type: &str,
        published: &BTreeSet<String>,
    ) -> Result<(), ArtifactError> {
        if !self.allowed {
            return Err(ArtifactError::NotAllowed(
                "check() publishes no artifacts".into(),
            ));
        }
        check_name(name)?;
        check_content_type(content_type)?;
        let known = published.contains(name) || self.begun.contains_key(name);
        let mut names: BTreeSet<&str> = published.iter().map(String::as_str).collect();
        names.extend(self.begun.keys().map(String::as_str));
        if !known && names.len() >= self.limits.artifacts {
            return Err(ArtifactError::QuotaExceeded(format!(
                "the installation keeps at most {} artifacts (limits.artifacts); `{name}` \
                 would be one more",
                self.limits.artifacts
            )));
        }
        Ok(())
    }

    /// Records that `name` was begun, staged as `staged`; returns the
    /// staged version it replaces, if the run had begun it before.
    pub fn begun(&mut self, name: &str, content_type: &str, staged: i64) -> Option<i64> {
        let old = self.begun.insert(
            name.to_string(),
            Begun {
                staged,
                content_type: content_type.to_string(),
                size: 0,
                chunks: 0,
                hasher: Sha256::new(),
            },
        );
        old.map(|o| {
            self.dropped.push(o.staged);
            o.staged
        })
    }

    /// Counts `chunk` appended to `name` if the caps allow it.
    pub fn append(&mut self, name: &str, chunk: &[u8]) -> Result<(), ArtifactError> {
        if !self.allowed {
            return Err(ArtifactError::NotAllowed(
                "check() publishes no artifacts".into(),
            ));
        }
        let len = chunk.len() as u64;
        let size = self.get(name)?.size;
        if size + len > self.limits.artifact_bytes {
            return Err(ArtifactError::QuotaExceeded(format!(
                "artifact `{name}` would be over {} MiB (limits.artifact_mb)",
                self.limits.artifact_bytes >> 20
            )));
        }
        if self.written + len > self.limits.run_bytes {
            return Err(ArtifactError::QuotaExceeded(format!(
                "the run would write over {} MiB to artifacts (limits.artifact_run_mb)",
                self.limits.run_bytes >> 20
            )));
        }
        self.written += len;
        let begun = self.begun.get_mut(name).ok_or_else(|| not_begun(name))?;
        begun.size += len;
        begun.hasher.update(chunk);
        Ok(())
    }

    /// Notes that `rows` more chunks of `name` are stored.
    pub fn stored(&mut self, name: &str, rows: i64) {
        if let Some(b) = self.begun.get_mut(name) {
            b.chunks += rows;
        }
    }

    /// The version of `name` begun in this run.
    pub fn get(&self, name: &str) -> Result<&Begun, ArtifactError> {
        self.begun.get(name).ok_or_else(|| not_begun(name))
    }

    /// Drops the version of `name` begun in this run; returns its staged id.
    pub fn discard(&mut self, name: &str) -> Result<i64, ArtifactError> {
        if !self.allowed {
            return Err(ArtifactError::NotAllowed(
                "check() publishes no artifacts".into(),
            ));
        }
        let begun = self.begun.remove(name).ok_or_else(|| not_begun(name))?;
        self.dropped.push(begun.staged);
        Ok(begun.staged)
    }

    /// Whether the run may write artifacts at all (not a `check()`).
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// Bytes the run has written to artifacts.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The versions begun and not discarded, by name; and the staged
    /// versions dropped on the way.
    pub fn into_parts(self) -> (BTreeMap<String, Begun>, Vec<i64>) {
        (self.begun, self.dropped)
    }
}

/// What a run did to artifacts, once its call is over: what it begun and
/// dropped, and whether its last bytes failed to be stored (then nothing
/// of it may be published).
#[derive(Debug)]
pub struct ArtifactsEnd {
    /// The run's artifacts.
    pub run: RunArtifacts,
    /// Why the bytes still waiting at the end could not be stored.
    pub error: Option<crate::storage::StorageError>,
}

/// An artifact version a run published, for its report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishedArtifact {
    /// The artifact's name.
    pub name: String,
    /// Its content type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The hex sha256 of its bytes (its ETag, quoted).
    pub sha256: String,
}

fn not_begun(name: &str) -> ArtifactError {
    ArtifactError::InvalidArgument(format!(
        "artifact `{}` was not begun in this run",
        name.escape_debug()
            .to_string()
            .chars()
            .take(64)
            .collect::<String>()
    ))
}

/// The feed access token of an installation: 256 bits from the operating
/// system's RNG, URL-safe base64. Only its sha256 is stored.
pub use crate::url_secret as token;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, valid: bool) {
        assert_eq!(check_name(input).is_ok(), valid, "name {input:?}");
    }

    #[test]
    fn names_are_one_safe_url_segment() {
        for name in ["feed.xml", "sitemap-1.xml", "a", "Products_GB.csv", "0"] {
            check(name, true);
        }
        let long = "a".repeat(129);
        for name in [
            "", ".", "..", ".hidden", "-x", "a/b", "a b", "é.xml", "a%2F", &long,
        ] {
            check(name, false);
        }
        check(&"a".repeat(128), true);
    }

    #[test]
    fn content_types_are_media_types_that_cannot_break_a_header() {
        for (ct, valid) in [
            ("application/rss+xml", true),
            ("text/csv; charset=utf-8", true),
            ("text/plain;charset=\"utf-8\"", true),
            ("text", false),
            ("text/", false),
            ("/csv", false),
            ("text/csv\r\nSet-Cookie: a=b", false),
            ("text/csv; charset", false),
            ("text/c sv", false),
            ("", false),
        ] {
            assert_eq!(check_content_type(ct).is_ok(), valid, "{ct:?}");
        }
    }

    fn limits() -> ArtifactLimits {
        ArtifactLimits {
            artifact_bytes: 10,
            run_bytes: 15,
            artifacts: 2,
        }
    }

    #[test]
    fn a_run_is_held_to_its_caps_and_counts_discarded_bytes() {
        let mut run = RunArtifacts::new(limits(), true);
        let none = BTreeSet::new();
        run.may_begin("a", "text/plain", &none).unwrap();
        assert_eq!(run.begun("a", "text/plain", 1), None);
        run.append("a", b"12345").unwrap();
        let err = run.append("a", b"123456").unwrap_err();
        assert!(matches!(err, ArtifactError::QuotaExceeded(ref m) if m.contains("artifact_mb")));
        run.append("a", b"12345").unwrap();
        assert_eq!(run.discard("a").unwrap(), 1);
        run.begun("a", "text/plain", 2);
        run.append("a", b"12345").unwrap();
        let err = run.append("a", b"1").unwrap_err();
        assert!(
            matches!(err, ArtifactError::QuotaExceeded(ref m) if m.contains("artifact_run_mb"))
        );
        assert!(matches!(
            run.append("b", b"1"),
            Err(ArtifactError::InvalidArgument(_))
        ));
    }

    #[test]
    fn the_installation_keeps_at_most_its_number_of_artifacts() {
        let mut run = RunArtifacts::new(limits(), true);
        let published: BTreeSet<String> = ["old".to_string()].into();
        run.may_begin("new", "text/plain", &published).unwrap();
        run.begun("new", "text/plain", 1);
        assert!(matches!(
            run.may_begin("third", "text/plain", &published),
            Err(ArtifactError::QuotaExceeded(_))
        ));
        // Replacing what is there is always allowed.
        run.may_begin("old", "text/plain", &published).unwrap();
        run.may_begin("new", "text/plain", &published).unwrap();
    }

    #[test]
    fn a_check_may_not_write_artifacts() {
        let mut run = RunArtifacts::new(limits(), false);
        let none = BTreeSet::new();
        assert!(matches!(
            run.may_begin("a", "text/plain", &none),
            Err(ArtifactError::NotAllowed(_))
        ));
        assert!(matches!(
            run.append("a", b"x"),
            Err(ArtifactError::NotAllowed(_))
        ));
    }

    #[test]
    fn the_sha256_is_of_the_bytes_appended() {
        let mut run = RunArtifacts::new(limits(), true);
        run.begun("a", "text/plain", 1);
        run.append("a", b"ab").unwrap();
        run.append("a", b"c").unwrap();
        assert_eq!(
            run.get("a").unwrap().sha256(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_token_matches_only_itself_and_nothing_matches_no_token() {
        let t = token::generate();
        assert!(t.len() >= 43, "256 bits");
        assert_ne!(t, token::generate());
        let stored = token::hash(&t);
        assert!(token::matches(Some(&t), Some(&stored)));
        assert!(!token::matches(Some("x"), Some(&stored)));
        assert!(!token::matches(None, Some(&stored)));
        assert!(!token::matches(Some(""), None));
        assert!(!token::matches(None, None));
    }
}
