//! Outbound HTTP for guests: who may be reached, and the one place that enforces it.
//!
//! - [`policy`] is pure: rules from the manifest and the installation's
//!   config, URL parsing and normalisation, matching, and a [`Denial`] that
//!   names the rule that refused. No I/O, no wasmtime.
//! - [`client`] is the single enforcement point: [`EgressClient::send`] checks
//!   every request and redirect hop against the policy, suppresses
//!   state-changing requests in test mode, resolves names (with the explicit
//!   test resolver when configured), sends with reqwest, caps bodies, and
//!   returns an audit record per hop.
//!
//! This module does not decide which rules an installation has; the caller
//! builds the [`EgressPolicy`] (see [`policy_for`]).

pub mod address;
pub mod client;
pub mod policy;

pub use address::AddressPolicy;
pub use client::{
    Decision, EgressClient, EgressLimits, HttpCall, HttpError, HttpRequest, HttpResponse,
    ResolveOverrides, SendMode,
};
pub use policy::{Denial, DenialRule, EgressPolicy, EgressRule, Grant, HostPattern, RuleSource};

use crate::config::ConfigValues;
use crate::manifest::Manifest;

/// The policy of one installation: the manifest's `[[egress.allow]]` entries
/// plus the origins of the config values named in `[egress] from_config`.
pub fn policy_for(manifest: &Manifest, config: &ConfigValues) -> Result<EgressPolicy, String> {
    let mut rules = manifest
        .egress
        .allow
        .iter()
        .map(EgressRule::from_manifest)
        .collect::<Result<Vec<_>, _>>()?;
    for key in &manifest.egress.from_config {
        if let Some(value) = config.get(key) {
            let service = format!("{} (installation config `{key}`)", manifest.plugin.id);
            rules.push(EgressRule::from_config_url(key, value, &service)?);
        }
    }
    Ok(EgressPolicy::new(rules))
}
