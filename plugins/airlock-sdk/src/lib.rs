//! Helpers the Rust connectors share. The WIT (`wit/connector.wit`) stays
//! the contract; this crate only saves each connector the same glue:
//!
//! - [`bindings`]: the generated bindings for the `connector` world, and
//!   [`export_connector!`] to export a connector from its own crate;
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

pub mod artifacts;
mod failure;
pub mod http;
pub mod oauth;
pub mod records;

pub use bindings::airlock::connector::types::{Mode, Status, Trigger};
pub use bindings::airlock::connector::{config, log, storage};
pub use bindings::{Outcome, RunContext};
pub use failure::{Failure, outcome};

/// A config value that must be set.
pub fn required_config(key: &str) -> Result<String, Failure> {
    config::get(key)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| Failure::error(format!("config `{key}` is not set")))
}

/// Logs at info level.
pub fn info(message: &str) {
    log::write(log::Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log::write(log::Level::Warn, message);
}
