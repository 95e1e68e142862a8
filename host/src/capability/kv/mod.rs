//! The `airlock:connector/storage` capability: the installation's key-value
//! storage as one run sees it. A thin wrapper: what a key may be, the quotas
//! and the commit-on-success rule are [`RunStorage`]'s, in
//! [`crate::storage`].

mod host;

use wasmtime::component::{HasSelf, Linker};

use crate::runtime::bindings::airlock::connector::storage as wit;
use crate::storage::RunStorage;

/// One run's view of its installation's storage, with its uncommitted writes.
pub struct KvCapability {
    storage: RunStorage,
}

impl KvCapability {
    /// The capability serving `storage`.
    pub fn new(storage: RunStorage) -> Self {
        Self { storage }
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
