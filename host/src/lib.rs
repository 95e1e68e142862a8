//! Airlock: a WebAssembly plugin host for commerce connectors.
//!
//! A connector is a WebAssembly component built against the `connector`
//! world in `wit/connector.wit`, shipped with a `plugin.toml` manifest. The
//! host runs one feed of one installation at a time in a fresh sandbox: no
//! filesystem, environment or sockets; memory and wall-clock capped; HTTP only
//! to the destinations the installation was granted; storage private to the
//! installation and committed only when the run succeeds.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use airlock::{Airlock, AirlockOptions, Installation, ConfigValues, Plugin, SqliteStore};
//! use airlock::runs::{Mode, RunRequest, Trigger};
//!
//! let plugin = Plugin::load("plugins/custom-store".as_ref())?;
//! let store = Arc::new(SqliteStore::open("airlock.db".as_ref())?);
//! let host = Airlock::new(store, AirlockOptions::default())?;
//! let config = ConfigValues::from_assignments(&plugin.manifest, &[
//!     "endpoint=https://shop.example/api/v1".into(),
//!     "username=demo".into(),
//!     "password=not-a-real-password".into(),
//! ])?;
//! let installation = Installation { tenant: "acme".into(), id: "shop".into(), config, mode: Mode::Live,
//!     rate_limits: Default::default(), approved_egress: None, approved_data: None };
//! let request = RunRequest { feed: "orders".into(), trigger: Trigger::Manual, scheduled_at: 0, attempt: 1 };
//! let report = host.run_feed(&plugin, &installation, request).await?;
//! println!("{}", report.end.summary());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod admin;
mod airlock;
pub mod artifacts;
mod blocking;
mod capability;
pub mod config;
pub mod egress;
pub mod lifecycle;
pub mod manifest;
pub mod metrics;
pub mod oauth;
pub mod plugin_store;
pub mod records;
pub mod runs;
pub mod runtime;
pub mod scheduler;
pub mod secrets;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod url_secret;
pub mod web;
pub mod webhooks;

pub use airlock::{Airlock, AirlockOptions, HostError, Installation};
pub use config::ConfigValues;
pub use manifest::{Manifest, Plugin};
pub use storage::SqliteStore;
