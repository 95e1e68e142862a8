//! Inbound webhooks (`WebhookStore`): each installation's secret, by its
//! sha256. (Which deliveries were handled is written with a run's record:
//! tested with the run ledger.)

use std::sync::Arc;

use crate::storage::{Scope, WebhookStore};

pub(crate) async fn a_webhook_secret_is_replaced_and_kept_per_installation<S>(store: Arc<S>)
where
    S: WebhookStore + ?Sized,
{
    let scope = |tenant: &str, installation: &str| Scope {
        tenant: tenant.into(),
        installation: installation.into(),
    };
    let shop = scope("acme", "shop");
    assert_eq!(store.webhook_secret_hash(&shop).await.unwrap(), None);
    store
        .set_webhook_secret_hash(&shop, [1; 32], 100)
        .await
        .unwrap();
    store
        .set_webhook_secret_hash(&shop, [2; 32], 200)
        .await
        .unwrap();
    assert_eq!(
        store.webhook_secret_hash(&shop).await.unwrap(),
        Some([2; 32]),
        "the old one stops working at once"
    );
    assert_eq!(
        store
            .webhook_secret_hash(&scope("globex", "shop"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .webhook_secret_hash(&scope("acme", "other"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .handled_delivery(&shop, "orders", "d-1")
            .await
            .unwrap(),
        None,
        "no delivery handled yet"
    );
}
