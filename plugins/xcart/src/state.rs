//! What the connector remembers between runs, in the installation's
//! private storage: the order import's window, the orders put aside
//! (pending payment) and the orders held for a person (already reported).
//! Records are the truth for what was imported; storage only for what has
//! no record.

use airlock_sdk::{Failure, storage};
use serde_json::Value;

/// A remembered JSON value.
pub fn recall(key: &str) -> Result<Option<Value>, Failure> {
    let value = storage::get(key).map_err(airlock_sdk::storage_failure)?;
    Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
}

/// Remembers `value` under `key` (committed with the run, or at a
/// [`checkpoint`]).
pub fn remember(key: &str, value: &Value) -> Result<(), Failure> {
    let bytes = serde_json::to_vec(value).map_err(|e| Failure::error(e.to_string()))?;
    storage::set(key, &bytes).map_err(airlock_sdk::storage_failure)
}

/// Forgets `key`.
pub fn forget(key: &str) -> Result<(), Failure> {
    storage::delete(key).map_err(airlock_sdk::storage_failure)
}

/// Commits what the run remembered so far, whatever its outcome.
pub fn checkpoint() -> Result<(), Failure> {
    storage::checkpoint().map_err(airlock_sdk::storage_failure)
}

/// Every key under `prefix` with its value.
pub fn all(prefix: &str) -> Result<Vec<(String, Value)>, Failure> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = storage::list_keys(prefix, cursor.as_deref(), 500)
            .map_err(airlock_sdk::storage_failure)?;
        for key in page.keys {
            if let Some(v) = recall(&key)? {
                out.push((key, v));
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}
