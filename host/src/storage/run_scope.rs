//! One run's view of its installation's key-value data: committed state
//! underneath, the run's own uncommitted writes on top, and the caps that
//! hold across checkpoints: the installation's quota (bytes and keys
//! stored) and the run's total writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::{KvBackend, KvUsage, Scope, StorageError};

/// Bounds on what one run may store, and on what its installation may keep.
#[derive(Debug, Clone)]
pub struct StorageLimits {
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Total bytes (keys and values) one run may write, checkpoints
    /// included: a run cannot reset it by checkpointing.
    pub max_run_write_bytes: usize,
    /// Most keys one `list` call returns.
    pub max_list_limit: usize,
    /// Old values the storage history keeps per key (see
    /// [`super::StateHistory`]).
    pub history_versions: u32,
    /// Bytes of keys and values the installation may keep stored
    /// (committed, plus the run's pending writes).
    pub max_installation_bytes: u64,
    /// Keys the installation may keep stored.
    pub max_installation_keys: u64,
}

impl Default for StorageLimits {
    fn default() -> Self {
        Self {
            max_key_bytes: 512,
            max_value_bytes: 1 << 20,
            max_run_write_bytes: 64 << 20,
            max_list_limit: 1000,
            history_versions: super::DEFAULT_KEEP_VERSIONS,
            max_installation_bytes: 1 << 30,
            max_installation_keys: 1_000_000,
        }
    }
}

impl StorageLimits {
    /// These limits with the installation's quota lowered to what its
    /// manifest asks for (never raised past the host's maxima).
    pub fn within(&self, installation_bytes: u64, installation_keys: u64) -> Self {
        Self {
            max_installation_bytes: self.max_installation_bytes.min(installation_bytes),
            max_installation_keys: self.max_installation_keys.min(installation_keys),
            ..self.clone()
        }
    }
}

/// A change a run made, for its report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyChange {
    /// The key.
    pub key: String,
    /// The new value's size, or `None` for a delete.
    pub set_bytes: Option<usize>,
}

/// What one run sees of its scope's storage. Writes stay here until
/// [`commit`](Self::commit); dropping discards them.
pub struct RunStorage {
    backend: Arc<dyn KvBackend>,
    scope: Scope,
    limits: StorageLimits,
    pending: BTreeMap<String, Option<Vec<u8>>>,
    /// Bytes written by the run so far, checkpoints included.
    written_bytes: usize,
    /// The scope's usage once the run's pending writes are applied; read
    /// from the backend at the run's first write.
    usage: Option<KvUsage>,
    /// The last change committed to each key (at checkpoints or the end).
    committed: BTreeMap<String, Option<usize>>,
    /// False for a run that must write nothing (a check, a dry run): its
    /// checkpoints keep the writes pending, visible to the rest of the run
    /// and dropped with it.
    checkpoints_commit: bool,
    /// The token this run's checkpoints are committed under, once one has
    /// committed something: random, so no two runs share one.
    checkpoint_token: Option<i64>,
}

/// A fresh random checkpoint token (positive, from the OS RNG).
fn new_token() -> i64 {
    use chacha20poly1305::aead::rand_core::RngCore;
    (chacha20poly1305::aead::OsRng.next_u64() >> 1) as i64
}

/// Bytes a stored entry takes: its key and its value.
fn entry_bytes(key: &str, value: Option<&Vec<u8>>) -> Option<u64> {
    value.map(|v| (key.len() + v.len()) as u64)
}

impl RunStorage {
    /// A run's view of `scope`.
    pub fn new(backend: Arc<dyn KvBackend>, scope: Scope, limits: StorageLimits) -> Self {
        Self {
            backend,
            scope,
            limits,
            pending: BTreeMap::new(),
            written_bytes: 0,
            usage: None,
            committed: BTreeMap::new(),
            checkpoints_commit: true,
            checkpoint_token: None,
        }
    }

    /// A view of `scope` for a run that must write nothing: the same reads,
    /// writes and caps, but a checkpoint commits nothing (the writes stay
    /// pending, seen by the rest of the run, and are dropped with it).
    pub fn scratch(backend: Arc<dyn KvBackend>, scope: Scope, limits: StorageLimits) -> Self {
        Self {
            checkpoints_commit: false,
            ..Self::new(backend, scope, limits)
        }
    }

    fn check_key(&self, key: &str) -> Result<(), StorageError> {
        if key.is_empty() {
            return Err(StorageError::InvalidKey("empty key".into()));
        }
        if key.len() > self.limits.max_key_bytes {
            return Err(StorageError::InvalidKey(format!(
                "key longer than {} bytes",
                self.limits.max_key_bytes
            )));
        }
        if key.chars().any(char::is_control) {
            return Err(StorageError::InvalidKey("control character in key".into()));
        }
        Ok(())
    }

    /// The installation whose storage this is.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The value of `key` as this run sees it.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.check_key(key)?;
        match self.pending.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.backend.kv_get(&self.scope, key).await,
        }
    }

    /// Sets `key` for the rest of this run, and after it if it commits.
    pub async fn set(&mut self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        self.check_key(key)?;
        if value.len() > self.limits.max_value_bytes {
            return Err(StorageError::QuotaExceeded(format!(
                "value of {} bytes is over the {}-byte limit",
                value.len(),
                self.limits.max_value_bytes
            )));
        }
        self.account(key, Some(value)).await
    }

    /// Deletes `key` for the rest of this run, and after it if it commits.
    pub async fn delete(&mut self, key: &str) -> Result<(), StorageError> {
        self.check_key(key)?;
        self.account(key, None).await
    }

    /// Checks a write against the run's total writes and the installation's
    /// quota (deleting never breaks the quota), then holds it as pending.
    async fn account(&mut self, key: &str, value: Option<Vec<u8>>) -> Result<(), StorageError> {
        let written = key.len() + value.as_ref().map_or(0, Vec::len);
        if self.written_bytes + written > self.limits.max_run_write_bytes {
            return Err(StorageError::QuotaExceeded(format!(
                "a run may write at most {} bytes in all, checkpoints included",
                self.limits.max_run_write_bytes
            )));
        }
        let before = match self.pending.get(key) {
            Some(pending) => entry_bytes(key, pending.as_ref()),
            None => self.backend.kv_entry_bytes(&self.scope, key).await?,
        };
        let after = entry_bytes(key, value.as_ref());
        let usage = self.usage().await?;
        // Saturating: another run of the installation may have committed
        // since the usage was read.
        let next = KvUsage {
            bytes: (usage.bytes.saturating_sub(before.unwrap_or(0))) + after.unwrap_or(0),
            keys: usage.keys.saturating_sub(u64::from(before.is_some()))
                + u64::from(after.is_some()),
        };
        let grows = next.bytes > usage.bytes || next.keys > usage.keys;
        if grows && next.bytes > self.limits.max_installation_bytes {
            return Err(StorageError::QuotaExceeded(format!(
                "the installation may store at most {} bytes of keys and values",
                self.limits.max_installation_bytes
            )));
        }
        if grows && next.keys > self.limits.max_installation_keys {
            return Err(StorageError::QuotaExceeded(format!(
                "the installation may store at most {} keys",
                self.limits.max_installation_keys
            )));
        }
        self.usage = Some(next);
        self.written_bytes += written;
        self.pending.insert(key.to_string(), value);
        Ok(())
    }

    /// The scope's usage with the run's pending writes applied.
    async fn usage(&mut self) -> Result<KvUsage, StorageError> {
        match self.usage {
            Some(usage) => Ok(usage),
            None => {
                let usage = self.backend.kv_usage(&self.scope).await?;
                self.usage = Some(usage);
                Ok(usage)
            }
        }
    }

    /// Up to `limit` keys starting with `prefix` and after `cursor`, as this
    /// run sees them, and the cursor for the next page.
    pub async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>), StorageError> {
        let limit = limit.clamp(1, self.limits.max_list_limit);
        // Pending deletes can hide at most `pending.len()` committed keys, so
        // asking the backend for that many more (plus one to detect a next
        // page) is enough to fill the page.
        let wanted = limit + self.pending.len() + 1;
        let mut keys: std::collections::BTreeSet<String> = self
            .backend
            .kv_list(&self.scope, prefix, cursor, wanted)
            .await?
            .into_iter()
            .collect();
        let backend_exhausted = keys.len() < wanted;
        let backend_last = keys.last().cloned();
        for (key, value) in self.in_range(prefix, cursor) {
            match value {
                Some(_) => keys.insert(key.clone()),
                None => keys.remove(key),
            };
        }
        // Beyond the last key the backend returned, only pending keys are
        // known; drop them unless the backend had nothing more, or they would
        // be listed out of order with later committed keys.
        if !backend_exhausted && let Some(last) = backend_last {
            keys.retain(|k| *k <= last);
        }
        let mut page: Vec<String> = keys.into_iter().collect();
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more { page.last().cloned() } else { None };
        Ok((page, next))
    }

    fn in_range<'a>(
        &'a self,
        prefix: &'a str,
        cursor: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a String, &'a Option<Vec<u8>>)> + 'a {
        self.pending
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .filter(move |(k, _)| cursor.is_none_or(|c| k.as_str() > c))
    }

    /// Applies the run's writes in one transaction and starts afresh (for a
    /// [`scratch`](Self::scratch) view: keeps them pending).
    pub async fn commit(&mut self) -> Result<(), StorageError> {
        if !self.checkpoints_commit {
            return Ok(());
        }
        let changes: Vec<(String, Option<Vec<u8>>)> =
            std::mem::take(&mut self.pending).into_iter().collect();
        if changes.is_empty() {
            return Ok(());
        }
        let token = *self.checkpoint_token.get_or_insert_with(new_token);
        let kept = self.limits.history_versions;
        if let Err(e) = self
            .backend
            .kv_checkpoint(&self.scope, &changes, token, kept)
            .await
        {
            self.pending = changes.into_iter().collect();
            return Err(e);
        }
        self.note_committed(&changes);
        Ok(())
    }

    /// The token this run's checkpoints were committed under, if it
    /// committed any: the run's record names it, so their history is
    /// attributed to the run ([`super::KvHistory`]).
    pub fn checkpoint_token(&self) -> Option<i64> {
        self.checkpoint_token
    }

    fn note_committed(&mut self, changes: &[(String, Option<Vec<u8>>)]) {
        for (key, value) in changes {
            self.committed
                .insert(key.clone(), value.as_ref().map(Vec::len));
        }
    }

    /// Takes the run's uncommitted writes, for the caller to apply in its own
    /// transaction (with the run's record); they count as committed from
    /// here on.
    pub fn take_pending(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let changes: Vec<(String, Option<Vec<u8>>)> =
            std::mem::take(&mut self.pending).into_iter().collect();
        self.note_committed(&changes);
        changes
    }

    /// Changes committed so far (at checkpoints or the final commit), the
    /// last one of each key, in key order.
    pub fn committed_changes(&self) -> Vec<KeyChange> {
        self.committed
            .iter()
            .map(|(key, set_bytes)| KeyChange {
                key: key.clone(),
                set_bytes: *set_bytes,
            })
            .collect()
    }

    /// Changes not committed yet.
    pub fn pending_changes(&self) -> Vec<KeyChange> {
        self.pending
            .iter()
            .map(|(k, v)| KeyChange {
                key: k.clone(),
                set_bytes: v.as_ref().map(Vec::len),
            })
            .collect()
    }
}

// Tested by the store's conformance suite (`conformance/kv.rs`), on every
// backend.
