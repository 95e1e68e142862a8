//! The host capabilities a connector is granted, one module each: what the
//! guest can ask of the host, behind its WIT interface.
//!
//! Every capability has the same shape, so adding one (records, artifacts,
//! webhooks) is a new folder here and its field in the run's state:
//! - `mod.rs`: the capability's state for one run, its caps, and its
//!   `add_to_linker`, which registers its WIT interface(s) on a linker given
//!   a way to find the capability in the store's data;
//! - `host.rs`: the WIT glue only, converting between generated types and
//!   the capability's own (the inner `Result` goes to the guest, the outer
//!   error traps);
//! - the pure logic beside it, or in its own module elsewhere in the crate
//!   (the egress policy stays in [`crate::egress`], which knows nothing of
//!   wasmtime).
//!
//! This module does not own the engine, the store or the call: that is
//! [`crate::runtime`], which knows each capability only through its
//! `add_to_linker` and its state. WASI itself (with the guest's captured
//! stdout and stderr) is the runtime's too: it is the sandbox, not a grant.

pub(crate) mod artifacts;
pub(crate) mod config;
pub(crate) mod http;
pub(crate) mod kv;
pub(crate) mod log;
pub(crate) mod oauth;
pub(crate) mod records;
