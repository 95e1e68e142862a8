//! The `airlock:connector/config` capability: the installation's config
//! values and secrets, read-only.

mod host;

use wasmtime::component::{HasSelf, Linker};

use crate::config::ConfigValues;
use crate::runtime::bindings::airlock::connector::config as wit;

/// The installation's config as one run sees it.
pub struct ConfigCapability {
    values: ConfigValues,
    /// Secrets that are the host's alone (the OAuth client secret):
    /// `get-secret` answers none for them.
    host_only: Vec<String>,
}

impl ConfigCapability {
    /// The capability serving `values`.
    pub fn new(values: ConfigValues) -> Self {
        Self {
            values,
            host_only: Vec::new(),
        }
    }

    /// The same, with the secrets under `keys` kept from the guest.
    pub fn hiding(mut self, keys: impl IntoIterator<Item = String>) -> Self {
        self.host_only.extend(keys);
        self
    }
}

/// Registers `airlock:connector/config`, served by the [`ConfigCapability`]
/// that `get` finds in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ConfigCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<ConfigCapability>>(linker, get)
}
