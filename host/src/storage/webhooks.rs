//! Inbound webhooks as a backend offers them: each installation's webhook
//! secret (its sha256 only: the URL holding it is shown once, when it is
//! made) and the delivery ids its webhooks have handled.
//!
//! A delivery id is recorded by the transaction that records the run which
//! handled it (see [`super::RunEffects::webhook_delivery`]), and only when
//! that run committed (`ok` or `info`): a sender that delivers again what
//! failed is run again, one that replays what succeeded is not.

use super::{Scope, StorageError};

/// How long a handled delivery id is remembered: a replay older than this
/// runs again.
pub const DELIVERY_ID_RETENTION_SECS: i64 = 30 * 24 * 3600;

/// A delivery the run handled, recorded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReceipt {
    /// The webhook's name.
    pub webhook: String,
    /// The sender's delivery id.
    pub delivery_id: String,
    /// When the host received it (Unix seconds).
    pub received_at: i64,
}

/// The webhooks of every installation, as a backend offers them to async
/// code.
#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync {
    /// The sha256 of `scope`'s webhook secret; none until one is made.
    async fn webhook_secret_hash(&self, scope: &Scope) -> Result<Option<[u8; 32]>, StorageError>;

    /// Makes `hash` the sha256 of `scope`'s webhook secret (the old one
    /// stops working at once).
    async fn set_webhook_secret_hash(
        &self,
        scope: &Scope,
        hash: [u8; 32],
        now: i64,
    ) -> Result<(), StorageError>;

    /// The run that handled delivery `delivery_id` of `webhook` in `scope`,
    /// if one did (and committed) within [`DELIVERY_ID_RETENTION_SECS`].
    async fn handled_delivery(
        &self,
        scope: &Scope,
        webhook: &str,
        delivery_id: &str,
    ) -> Result<Option<i64>, StorageError>;
}
