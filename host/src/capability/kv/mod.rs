//! The `airlock:connector/storage` capability: the installation's key-value
//! storage as one run sees it. A thin wrapper: what a key may be, the quotas
//! and the commit-on-success rule are [`RunStorage`]'s, in
//! [`crate::storage`].
//!
//! Keys under `sealed/` hold credentials a connector must keep itself (a
//! token it refreshes, like Instagram's): their values are sealed with the
//! host's master key before they reach the store, bound to the tenant,
//! installation and key ([`crate::secrets::SecretSlot`]), and opened when
//! read back ([`sealed`]).

mod host;
mod sealed;

pub(crate) use sealed::SEALED_PREFIX;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::runtime::bindings::airlock::connector::storage as wit;
use crate::secrets::Keyring;
use crate::storage::RunStorage;

/// One run's view of its installation's storage, with its uncommitted writes.
pub struct KvCapability {
    storage: RunStorage,
    keyring: Option<Arc<Keyring>>,
}

impl KvCapability {
    /// The capability serving `storage`; `keyring` seals and opens the
    /// values of `sealed/` keys (without one, those keys are unavailable).
    pub fn new(storage: RunStorage, keyring: Option<Arc<Keyring>>) -> Self {
        Self { storage, keyring }
    }

    /// The run's storage, with its uncommitted writes, once the call is over.
    pub fn into_storage(self) -> RunStorage {
        self.storage
    }
}

/// Registers `airlock:connector/storage`, served by the [`KvCapability`]
/// that `get` finds in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut KvCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<KvCapability>>(linker, get)
}
