//! WIT glue for `airlock:connector/storage`.

use super::KvCapability;
use crate::runtime::bindings::airlock::connector::storage;
use crate::storage::StorageError;

/// Storage errors the guest can act on become its `storage-error`; a database
/// failure becomes `unavailable` (the guest should end in `retry`).
fn guest_storage_error(e: StorageError) -> storage::StorageError {
    match e {
        StorageError::InvalidKey(m) => storage::StorageError::InvalidKey(m),
        StorageError::QuotaExceeded(m) => storage::StorageError::QuotaExceeded(m),
        other => storage::StorageError::Unavailable(other.to_string()),
    }
}

fn guest_seal_error(e: super::sealed::SealError) -> storage::StorageError {
    match e {
        super::sealed::SealError::NotText(m) => storage::StorageError::InvalidKey(m),
        super::sealed::SealError::Unavailable(m) => storage::StorageError::Unavailable(m),
    }
}

type StorageResult<T> = wasmtime::Result<Result<T, storage::StorageError>>;

impl storage::Host for KvCapability {
    #[tracing::instrument(name = "storage.get", level = "debug", skip_all)]
    async fn get(&mut self, key: String) -> StorageResult<Option<Vec<u8>>> {
        let stored = self.storage.get(&key).await.map_err(guest_storage_error);
        Ok(match (stored, super::sealed::is_sealed(&key)) {
            (Ok(Some(value)), true) => self.open(&key, &value).map(Some).map_err(guest_seal_error),
            (other, _) => other,
        })
    }

    #[tracing::instrument(name = "storage.set", level = "debug", skip_all)]
    async fn set(&mut self, key: String, value: Vec<u8>) -> StorageResult<()> {
        let value = if super::sealed::is_sealed(&key) {
            match self.seal(&key, value) {
                Ok(sealed) => sealed,
                Err(e) => return Ok(Err(guest_seal_error(e))),
            }
        } else {
            value
        };
        Ok(self
            .storage
            .set(&key, value)
            .await
            .map_err(guest_storage_error))
    }

    #[tracing::instrument(name = "storage.delete", level = "debug", skip_all)]
    async fn delete(&mut self, key: String) -> StorageResult<()> {
        Ok(self.storage.delete(&key).await.map_err(guest_storage_error))
    }

    #[tracing::instrument(name = "storage.list-keys", level = "debug", skip_all)]
    async fn list_keys(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> StorageResult<storage::KeyPage> {
        Ok(self
            .storage
            .list(&prefix, cursor.as_deref(), limit as usize)
            .await
            .map(|(keys, next_cursor)| storage::KeyPage { keys, next_cursor })
            .map_err(guest_storage_error))
    }

    /// A checkpoint commits the run's writes so far (the backend keeps the
    /// wait for its disk or lock off the other runs' way).
    #[tracing::instrument(name = "storage.checkpoint", level = "debug", skip_all)]
    async fn checkpoint(&mut self) -> StorageResult<()> {
        let result = self.storage.commit().await;
        Ok(result.map_err(guest_storage_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Maps `error` and compares what the guest sees, by its debug form.
    fn check(error: StorageError, expected: storage::StorageError) {
        let what = format!("{error:?}");
        assert_eq!(
            format!("{:?}", guest_storage_error(error)),
            format!("{expected:?}"),
            "for {what}"
        );
    }

    #[test]
    fn storage_errors_map_to_what_the_guest_can_act_on() {
        use storage::StorageError as Guest;
        check(
            StorageError::InvalidKey("empty key".into()),
            Guest::InvalidKey("empty key".into()),
        );
        check(
            StorageError::QuotaExceeded("100 keys".into()),
            Guest::QuotaExceeded("100 keys".into()),
        );
        // Anything else is the host's trouble: the guest should retry later.
        check(
            StorageError::Conflict("changed meanwhile".into()),
            Guest::Unavailable("changed meanwhile".into()),
        );
        check(
            StorageError::NotFound("no such run".into()),
            Guest::Unavailable("no such run".into()),
        );
    }
}
