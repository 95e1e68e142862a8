//! WIT glue only: the connector world's imports implemented on [`RunState`]
//! by converting between generated types and the capability modules' types.

use std::time::Duration;

use super::bindings::airlock::connector::{config, http, log, storage, types};
use super::state::RunState;
use crate::egress::{self, HttpError};
use crate::runs::LogLevel;
use crate::storage::StorageError;

impl types::Host for RunState {}

impl log::Host for RunState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        let at = self.elapsed_ms();
        let message = self.config.redact(&message);
        self.log.write(at, level, &message);
        Ok(())
    }
}

impl config::Host for RunState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.get(&key).map(str::to_string))
    }

    async fn get_secret(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.secret(&key).map(str::to_string))
    }
}

/// Storage errors the guest can act on become its `storage-error`; a database
/// failure becomes `unavailable` (the guest should end in `retry`).
fn guest_storage_error(e: StorageError) -> storage::StorageError {
    match e {
        StorageError::InvalidKey(m) => storage::StorageError::InvalidKey(m),
        StorageError::QuotaExceeded(m) => storage::StorageError::QuotaExceeded(m),
        other => storage::StorageError::Unavailable(other.to_string()),
    }
}

type StorageResult<T> = wasmtime::Result<Result<T, storage::StorageError>>;

impl storage::Host for RunState {
    async fn get(&mut self, key: String) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.storage.get(&key).map_err(guest_storage_error))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> StorageResult<()> {
        Ok(self.storage.set(&key, value).map_err(guest_storage_error))
    }

    async fn delete(&mut self, key: String) -> StorageResult<()> {
        Ok(self.storage.delete(&key).map_err(guest_storage_error))
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> StorageResult<storage::KeyPage> {
        Ok(self
            .storage
            .list(&prefix, cursor.as_deref(), limit as usize)
            .map(|(keys, next_cursor)| storage::KeyPage { keys, next_cursor })
            .map_err(guest_storage_error))
    }

    async fn checkpoint(&mut self) -> StorageResult<()> {
        Ok(self.storage.commit().map_err(guest_storage_error))
    }
}

impl http::Host for RunState {
    async fn send(
        &mut self,
        request: http::Request,
    ) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        let request = egress::HttpRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout: request
                .timeout_ms
                .map(|ms| Duration::from_millis(ms.into())),
        };
        let result = self.http.send(request).await;
        Ok(result
            .map(|r| http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(|e| match e {
                HttpError::Denied(d) => http::HttpError::Denied(http::Denial {
                    rule: d.rule.as_str().to_string(),
                    reason: d.reason,
                }),
                HttpError::SuppressedInTestMode => http::HttpError::SuppressedInTestMode,
                HttpError::InvalidRequest(m) => http::HttpError::InvalidRequest(m),
                HttpError::Timeout => http::HttpError::Timeout,
                HttpError::ConnectionFailed(m) => http::HttpError::ConnectionFailed(m),
                HttpError::ResponseTooLarge => http::HttpError::ResponseTooLarge,
            }))
    }
}
