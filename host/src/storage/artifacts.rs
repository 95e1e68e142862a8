//! Published artifacts as a backend offers them: each installation's named
//! files, their published versions, the versions runs are writing, and the
//! installation's feed access token (its sha256 only).
//!
//! Semantics (see `docs/artifacts.md`):
//! - A run *stages* a version when it begins an artifact and appends its
//!   bytes in chunks as they come; a staged version has no version number
//!   and is never served.
//! - The run's [`ArtifactEffects`] publish its staged versions in the
//!   transaction that records the run (see `RunLedger::finish_run`): each
//!   gets the artifact's next version number and becomes its current one
//!   at once; versions past the newest `keep_versions` are deleted then.
//!   A run that does not succeed drops its staged versions in the same way.
//! - Staged versions older than an hour belong to no live run (a process
//!   that died mid-run): they are deleted at every publish and by
//!   [`ArtifactStore::drop_abandoned_artifacts`] (at `serve`'s start).

use serde::Serialize;

use super::{Scope, StorageError};

/// One published version of an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ArtifactVersion {
    /// The store's id of this version (what its chunks are read by).
    #[serde(skip)]
    pub id: i64,
    /// The artifact's name.
    pub name: String,
    /// Its version number: 1 for the first published, rising by one.
    pub version: i64,
    /// The media type it is served with.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The hex sha256 of its bytes: its ETag.
    pub sha256: String,
    /// When it was published (Unix seconds): its Last-Modified.
    pub published_at: i64,
    /// The run that published it.
    pub run_id: Option<i64>,
    /// How many chunks its bytes are stored in (read them by number).
    #[serde(skip)]
    pub chunks: i64,
}

/// A staged version a run publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPublish {
    /// The staged version's id.
    pub staged: i64,
    /// The artifact's name.
    pub name: String,
    /// Its size in bytes (what the run appended).
    pub size: u64,
    /// The hex sha256 of its bytes.
    pub sha256: String,
}

/// What a finished run does to its installation's artifacts, committed
/// with its record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtifactEffects {
    /// Staged versions to publish (the run succeeded).
    pub publish: Vec<ArtifactPublish>,
    /// Staged versions to delete (begun again or discarded, or the run
    /// failed).
    pub drop: Vec<i64>,
    /// Published versions kept per artifact (at least 1).
    pub keep_versions: u32,
}

impl ArtifactEffects {
    /// Whether the run did nothing to artifacts.
    pub fn is_empty(&self) -> bool {
        self.publish.is_empty() && self.drop.is_empty()
    }
}

/// The artifacts of every installation, as a backend offers them to async
/// code. Every call names its scope (or a staged version the caller was
/// given for it).
#[async_trait::async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Stages a new, empty version of `name` in `scope` at `now`; returns
    /// its id.
    async fn stage_artifact(
        &self,
        scope: &Scope,
        name: &str,
        content_type: &str,
        now: i64,
    ) -> Result<i64, StorageError>;

    /// Stores `chunks` of staged version `staged` as chunks number
    /// `first`, `first + 1`… in one transaction.
    async fn append_artifact(
        &self,
        staged: i64,
        first: i64,
        chunks: Vec<Vec<u8>>,
    ) -> Result<(), StorageError>;

    /// Deletes staged versions (never a published one).
    async fn drop_staged_artifacts(&self, staged: Vec<i64>) -> Result<(), StorageError>;

    /// Deletes staged versions staged before `before` (Unix seconds): those
    /// of runs that died. Returns how many.
    async fn drop_abandoned_artifacts(&self, before: i64) -> Result<u64, StorageError>;

    /// The current (newest published) version of each artifact of `scope`,
    /// by name.
    async fn artifacts(&self, scope: &Scope) -> Result<Vec<ArtifactVersion>, StorageError>;

    /// The published versions of `name` in `scope` kept, newest first.
    async fn artifact_versions(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Vec<ArtifactVersion>, StorageError>;

    /// The current version of `name` in `scope`, or version `version`.
    async fn artifact(
        &self,
        scope: &Scope,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<ArtifactVersion>, StorageError>;

    /// Chunk number `seq` of published version `id` of `scope`; none if
    /// the version is gone (deleted by retention meanwhile).
    async fn artifact_chunk(
        &self,
        scope: &Scope,
        id: i64,
        seq: i64,
    ) -> Result<Option<Vec<u8>>, StorageError>;

    /// The sha256 of `scope`'s feed access token, if it has one.
    async fn feed_token_hash(&self, scope: &Scope) -> Result<Option<[u8; 32]>, StorageError>;

    /// Replaces `scope`'s feed access token by the one hashed `hash` (the
    /// old one stops working at once), at `now`.
    async fn set_feed_token_hash(
        &self,
        scope: &Scope,
        hash: [u8; 32],
        now: i64,
    ) -> Result<(), StorageError>;
}
