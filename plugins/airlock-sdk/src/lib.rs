//! Helpers the Rust connectors share. The WIT (`wit/connector.wit`) stays
//! the contract; this crate only saves each connector the same glue:
//!
//! - [`bindings`]: the generated bindings for the `connector` world, and
//!   [`export_connector!`] to export a connector from its own crate;
//!   [`webhook_bindings`] the same for a connector that handles webhooks;
//! - [`Failure`]: a run that stops early, as `retry` (with a delay) or
//!   `error`, turned into an [`Outcome`];
//! - [`http`]: requests with JSON bodies, and what a status means
//!   (retry after `Retry-After`, refresh the token, give up);
//! - [`records`]: walking pending and changed records page by page;
//! - [`artifacts`]: an artifact written in chunks through `std::io::Write`;
//! - [`oauth`]: the access token the host holds for the installation.
//!
//! ```ignore
//! use airlock_sdk::{bindings::Guest, Outcome, RunContext};
//! struct MyConnector;
//! impl Guest for MyConnector { /* run, check */ }
//! airlock_sdk::bindings::export_connector!(MyConnector);
//! ```

/// The generated bindings of the `connector` world.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "connector",
        default_bindings_module: "airlock_sdk::bindings",
        pub_export_macro: true,
        export_macro_name: "export_connector",
    });
}

/// The generated bindings of the `webhook-connector` world (a connector
/// that also handles inbound webhooks), sharing every imported interface
/// with [`bindings`]. A webhook connector implements
/// `webhook_bindings::Guest` (run, check) and
/// `webhook_bindings::exports::airlock::connector::webhook_handler::Guest`
/// (handle), and exports itself with [`export_webhook_connector!`].
#[allow(missing_docs)]
pub mod webhook_bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "webhook-connector",
        default_bindings_module: "airlock_sdk::webhook_bindings",
        pub_export_macro: true,
        export_macro_name: "export_webhook_connector",
        with: {
            "airlock:connector/types@0.1.0": crate::bindings::airlock::connector::types,
            "airlock:connector/log@0.1.0": crate::bindings::airlock::connector::log,
            "airlock:connector/config@0.1.0": crate::bindings::airlock::connector::config,
            "airlock:connector/storage@0.1.0": crate::bindings::airlock::connector::storage,
            "airlock:connector/records@0.1.0": crate::bindings::airlock::connector::records,
            "airlock:connector/artifacts@0.1.0": crate::bindings::airlock::connector::artifacts,
            "airlock:connector/oauth@0.1.0": crate::bindings::airlock::connector::oauth,
            "airlock:connector/http@0.1.0": crate::bindings::airlock::connector::http,
        },
    });
}

pub mod artifacts;
mod failure;
pub mod http;
pub mod oauth;
pub mod records;

pub use bindings::airlock::connector::types::{Mode, Status, Trigger};
pub use bindings::airlock::connector::{config, log, storage};
pub use bindings::{Outcome, RunContext};
pub use failure::{Failure, outcome};
pub use webhook_bindings::exports::airlock::connector::webhook_handler::WebhookDelivery;

/// A config value that must be set.
pub fn required_config(key: &str) -> Result<String, Failure> {
    config::get(key)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| Failure::error(format!("config `{key}` is not set")))
}

/// A whole-number config value within `range`; `default` when it is not
/// set. A value that is not a whole number in the range is an error naming
/// the key, the value and the range.
pub fn config_number(
    key: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, Failure> {
    let Some(raw) = config::get(key) else {
        return Ok(default);
    };
    match raw.trim().parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(Failure::error(format!(
            "config `{key}` is `{raw}`: it must be a whole number from {} to {}",
            range.start(),
            range.end()
        ))),
    }
}

/// A config value, trimmed; `default` when it is not set or blank.
pub fn config_text(key: &str, default: &str) -> String {
    config::get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// A storage error as a run failure: storage being down is passing (the
/// run ends `retry`), a bad key or a full quota needs a person.
pub fn storage_failure(e: storage::StorageError) -> Failure {
    match e {
        storage::StorageError::Unavailable(m) => {
            Failure::retry(format!("storage unavailable: {m}"))
        }
        storage::StorageError::InvalidKey(m) => Failure::error(format!("storage key: {m}")),
        storage::StorageError::QuotaExceeded(m) => Failure::error(format!("storage quota: {m}")),
    }
}

/// Logs at info level.
pub fn info(message: &str) {
    log::write(log::Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log::write(log::Level::Warn, message);
}
