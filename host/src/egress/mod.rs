//! Outbound HTTP for guests: who may be reached, and the one place that enforces it.
//!
//! - [`policy`] is pure: rules from the manifest and the installation's
//!   config, URL parsing and normalisation, matching, and a [`Denial`] that
//!   names the rule that refused. No I/O, no wasmtime.
//! - [`client`] is the single enforcement point: [`EgressClient::send`] checks
//!   every request and redirect hop against the policy, suppresses
//!   state-changing requests in test mode, resolves names (with the explicit
//!   test resolver when configured), sends with reqwest, caps bodies, and
//!   returns an audit record per hop. Beside it: [`request`] (the types a
//!   guest's request and its outcome have), [`headers`] (which headers a
//!   guest may set and which follow a redirect, for both HTTP interfaces),
//!   `redirect` (the next hop's request), [`resolve`] (test resolver, lookup
//!   hook, checked resolution) and [`audit`] (the record of each hop).
//!
//! - [`grants`] works out which rules an installation has: the operator's
//!   permitted-domains table ∩ the manifest's entries, plus approved config
//!   origins, keeping refused entries for reporting.
//! - [`address`] decides which IP addresses connections may go to.
//! - [`throttle`] spaces an installation's requests per destination host.

pub mod address;
pub mod audit;
pub mod client;
pub mod grants;
pub mod headers;
pub mod policy;
mod redirect;
pub mod request;
pub mod resolve;
pub mod throttle;
pub mod trust;

pub use address::AddressPolicy;
pub use audit::{Decision, HttpCall};
pub use client::{EgressClient, Explanation};
pub use grants::{ApprovedRule, Grants, PermittedDomains};
pub use policy::{Denial, DenialRule, EgressPolicy, EgressRule, Grant, HostPattern, RuleSource};
pub use request::{EgressLimits, HttpError, HttpRequest, HttpResponse, RequestCaps, SendMode};
pub use resolve::{Lookup, ResolveOverrides};
pub use throttle::{RateLimits, Throttle};
pub use trust::ExtraRoots;
