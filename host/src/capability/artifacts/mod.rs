//! The `airlock:connector/artifacts` capability: the files one run writes
//! for its installation to publish. The rules (names, content types, caps,
//! what the run has begun) are [`RunArtifacts`]'s, in [`crate::artifacts`];
//! the bytes go to the store ([`ArtifactStore`]) as they come, staged, and
//! are published with the run's record (`Airlock`), never here.
//!
//! Host memory per run is bounded: appended bytes wait in one buffer until
//! a whole stored chunk ([`ROW_BYTES`]) is there, and a buffer of another
//! artifact is written out first.

mod host;

use std::collections::BTreeSet;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::artifacts::{ArtifactError, ArtifactsEnd, RunArtifacts};
use crate::runtime::bindings::airlock::connector::artifacts as wit;
use crate::storage::{ArtifactStore, Scope, StorageError};

/// The size of a stored chunk: what the store writes per row and what
/// serving reads at a time.
pub const ROW_BYTES: usize = 1 << 20;

/// One run's artifacts: its bookkeeping, the store, and the bytes appended
/// but not stored yet.
pub struct ArtifactsCapability {
    store: Arc<dyn ArtifactStore>,
    scope: Scope,
    run: RunArtifacts,
    /// The names the installation has published, read at the first begin.
    published: Option<BTreeSet<String>>,
    /// The artifact whose bytes wait in `pending`.
    pending_for: Option<String>,
    pending: Vec<u8>,
}

impl ArtifactsCapability {
    /// The capability of `scope`'s run, staging in `store`.
    pub fn new(store: Arc<dyn ArtifactStore>, scope: Scope, run: RunArtifacts) -> Self {
        Self {
            store,
            scope,
            run,
            published: None,
            pending_for: None,
            pending: Vec::new(),
        }
    }

    /// Stores the bytes still waiting, once the call is over, and gives
    /// what the run did (published or dropped by `Airlock` as it ended).
    pub async fn finish(mut self) -> ArtifactsEnd {
        let error = self.flush(true).await.err();
        ArtifactsEnd {
            run: self.run,
            error,
        }
    }

    /// Writes the waiting bytes as whole chunks (all of them if `all`),
    /// keeping a partial chunk waiting otherwise.
    async fn flush(&mut self, all: bool) -> Result<(), StorageError> {
        let Some(name) = self.pending_for.clone() else {
            return Ok(());
        };
        let whole = if all {
            self.pending.len()
        } else {
            self.pending.len() / ROW_BYTES * ROW_BYTES
        };
        if whole == 0 {
            return Ok(());
        }
        let rows: Vec<Vec<u8>> = self.pending[..whole]
            .chunks(ROW_BYTES)
            .map(<[u8]>::to_vec)
            .collect();
        self.pending.drain(..whole);
        if self.pending.is_empty() {
            self.pending_for = None;
        }
        let Ok(begun) = self.run.get(&name) else {
            return Ok(());
        };
        let (staged, first, n) = (begun.staged, begun.chunks, rows.len() as i64);
        self.store.append_artifact(staged, first, rows).await?;
        self.run.stored(&name, n);
        Ok(())
    }

    /// Forgets the waiting bytes of `name`.
    fn forget_pending(&mut self, name: &str) {
        if self.pending_for.as_deref() == Some(name) {
            self.pending_for = None;
            self.pending.clear();
        }
    }

    async fn begin(&mut self, name: &str, content_type: &str) -> Result<(), ArtifactError> {
        if self.published.is_none() && self.run.allowed() {
            let current = self
                .store
                .artifacts(&self.scope)
                .await
                .map_err(unavailable)?;
            self.published = Some(current.into_iter().map(|v| v.name).collect());
        }
        let none = BTreeSet::new();
        let published = self.published.as_ref().unwrap_or(&none);
        self.run.may_begin(name, content_type, published)?;
        self.forget_pending(name);
        let now = chrono::Utc::now().timestamp();
        let staged = self
            .store
            .stage_artifact(&self.scope, name, content_type, now)
            .await
            .map_err(unavailable)?;
        if let Some(old) = self.run.begun(name, content_type, staged) {
            self.drop_staged(old).await?;
        }
        Ok(())
    }

    async fn append(&mut self, name: &str, chunk: Vec<u8>) -> Result<(), ArtifactError> {
        self.run.append(name, &chunk)?;
        if self.pending_for.as_deref() != Some(name) {
            self.flush(true).await.map_err(unavailable)?;
            self.pending_for = Some(name.to_string());
        }
        self.pending.extend_from_slice(&chunk);
        drop(chunk);
        if self.pending.len() >= ROW_BYTES
            && let Err(e) = self.flush(false).await
        {
            // Its bytes are not all stored: it can never be published.
            self.forget_pending(name);
            let _ = self.run.discard(name);
            return Err(unavailable(e));
        }
        Ok(())
    }

    async fn discard(&mut self, name: &str) -> Result<(), ArtifactError> {
        let staged = self.run.discard(name)?;
        self.forget_pending(name);
        self.drop_staged(staged).await
    }

    /// Deletes a staged version the run no longer wants, now (it is also
    /// listed in the run's effects, in case this fails).
    async fn drop_staged(&self, staged: i64) -> Result<(), ArtifactError> {
        self.store
            .drop_staged_artifacts(vec![staged])
            .await
            .map_err(unavailable)
    }
}

/// The store failed: the guest should end in `retry`.
fn unavailable(e: StorageError) -> ArtifactError {
    ArtifactError::Unavailable(e.to_string())
}

/// Registers `airlock:connector/artifacts`, served by the
/// [`ArtifactsCapability`] that `get` finds in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ArtifactsCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<ArtifactsCapability>>(linker, get)
}
