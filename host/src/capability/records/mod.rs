//! The `airlock:connector/records` capability: the tenant's shared records
//! as one run sees them. The rules (grants, ids, sizes, schemas, caps, what
//! the run has changed so far) are [`RunRecords`]'s, in
//! [`crate::records`]; the records themselves are the store's
//! ([`RecordStore`]). This module holds the two together for one run.

mod host;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::records::RunRecords;
use crate::runtime::bindings::airlock::connector::records as wit;
use crate::storage::{RecordEffects, RecordStore};

/// One run's view of its tenant's records, with the changes it has made.
pub struct RecordsCapability {
    store: Arc<dyn RecordStore>,
    tenant: String,
    installation: String,
    run: RunRecords,
}

impl RecordsCapability {
    /// The capability of `installation` of `tenant`, reading from `store`,
    /// within `run`'s grants and caps.
    pub fn new(
        store: Arc<dyn RecordStore>,
        tenant: String,
        installation: String,
        run: RunRecords,
    ) -> Self {
        Self {
            store,
            tenant,
            installation,
            run,
        }
    }

    /// What the run changed in the records, once the call is over.
    pub fn into_effects(self) -> RecordEffects {
        self.run.into_effects()
    }
}

/// Registers `airlock:connector/records`, served by the
/// [`RecordsCapability`] that `get` finds in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut RecordsCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<RecordsCapability>>(linker, get)
}
