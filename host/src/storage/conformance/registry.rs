//! Tenants and installations (`Registry`): tombstones, revisions
//! (compare-and-set), sealed secrets and schedules, removal.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::CommitEffects;
use crate::secrets::SealedSecret;
use crate::storage::{
    AnnotationChange, ArtifactStore, InstallationRow, KvBackend, OAuthStore, PageLimit, RecordAck,
    RecordAnnotation, RecordEffects, RecordStore, RecordWrite, Registry, ScheduleRow, Scope,
    StorageError, StoredSecret, TenantRow, WebhookStore,
};

pub(crate) fn tenant(id: &str) -> TenantRow {
    TenantRow {
        id: id.into(),
        name: format!("{id} Ltd"),
        created_at: 1_700_000_000,
    }
}

pub(crate) fn installation(tenant: &str, id: &str) -> InstallationRow {
    InstallationRow {
        tenant: tenant.into(),
        id: id.into(),
        plugin_id: "hello".into(),
        plugin_version: "0.1.0".into(),
        plugin_dir: "plugins/hello".into(),
        plugin_digest: "ab".repeat(32),
        plugin_store: Some("ab".repeat(32)),
        config: BTreeMap::from([("greeting".to_string(), "héllo".to_string())]),
        approved_egress: vec!["api.example.com".into()],
        approved_rules: None,
        approved_data: None,
        mode: "test".into(),
        enabled: true,
        created_at: 1_700_000_100,
        updated_at: 1_700_000_100,
        removed_at: None,
        revision: 1,
    }
}

fn secret(key: &str, byte: u8) -> StoredSecret {
    StoredSecret {
        key: key.into(),
        sealed: SealedSecret {
            key_id: "k1".into(),
            nonce: vec![byte; 24],
            ciphertext: vec![byte; 40],
        },
    }
}

pub(crate) fn schedule(tenant: &str, installation: &str, feed: &str) -> ScheduleRow {
    ScheduleRow {
        tenant: tenant.into(),
        installation: installation.into(),
        feed: feed.into(),
        cron: "0 */5 * * * *".into(),
        time_zone: "Europe/London".into(),
        overridden: false,
        next_fire_at: Some(1_700_000_400),
        due_at: Some(1_700_000_400),
    }
}

pub(crate) async fn a_tenant_is_added_once_and_removed_as_a_tombstone<S>(store: Arc<S>)
where
    S: Registry + ?Sized,
{
    store.add_tenant(tenant("acme")).await.unwrap();
    store.add_tenant(tenant("globex")).await.unwrap();
    assert!(matches!(
        store.add_tenant(tenant("acme")).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        store.tenants().await.unwrap(),
        [tenant("acme"), tenant("globex")],
        "by id"
    );
    assert!(store.tenant_exists("acme").await.unwrap());
    assert!(!store.tenant_exists("initech").await.unwrap());

    store
        .insert_installation(installation("acme", "shop"), vec![], vec![])
        .await
        .unwrap();
    let refused = store.remove_tenant("acme").await.unwrap_err();
    assert!(
        matches!(&refused, StorageError::Conflict(m) if m.contains("shop")),
        "refused while it has installations: {refused}"
    );
    store
        .remove_installation("acme", "shop", None, 1_700_000_200)
        .await
        .unwrap();
    store.remove_tenant("acme").await.unwrap();
    assert!(!store.tenant_exists("acme").await.unwrap());
    assert_eq!(store.tenants().await.unwrap(), [tenant("globex")]);
    assert!(matches!(
        store.remove_tenant("acme").await,
        Err(StorageError::NotFound(_))
    ));
    assert!(
        matches!(
            store.add_tenant(tenant("acme")).await,
            Err(StorageError::Conflict(_))
        ),
        "a removed tenant's id stays taken"
    );
}

pub(crate) async fn an_installation_changes_only_from_the_revision_it_was_read_at<S>(store: Arc<S>)
where
    S: Registry + ?Sized,
{
    store.add_tenant(tenant("acme")).await.unwrap();
    store.add_tenant(tenant("globex")).await.unwrap();
    let shop = installation("acme", "shop");
    store
        .insert_installation(
            shop.clone(),
            vec![secret("password", 1), secret("api_key", 2)],
            vec![
                schedule("acme", "shop", "orders"),
                schedule("acme", "shop", "stock"),
            ],
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_installation(shop.clone(), vec![], vec![])
            .await,
        Err(StorageError::Conflict(_))
    ));
    store
        .insert_installation(installation("globex", "shop"), vec![], vec![])
        .await
        .unwrap();
    assert_eq!(
        store.installation("acme", "shop").await.unwrap(),
        Some(shop.clone()),
        "stored as given"
    );
    assert_eq!(store.installation("acme", "nope").await.unwrap(), None);
    let keys: Vec<String> = store
        .secrets("acme", "shop")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect();
    assert_eq!(keys, ["api_key", "password"], "by key");
    assert_eq!(
        store.secrets("acme", "shop").await.unwrap()[1],
        secret("password", 1)
    );
    assert_eq!(
        store.schedules("acme", "shop").await.unwrap(),
        [
            schedule("acme", "shop", "orders"),
            schedule("acme", "shop", "stock")
        ]
    );
    assert!(store.secrets("globex", "shop").await.unwrap().is_empty());

    // Compare-and-set: an update from the revision read wins once.
    let mut changed = shop.clone();
    changed.enabled = false;
    changed.config.insert("greeting".into(), "bye".into());
    let next = store
        .update_installation(changed.clone(), None, Some(vec![]))
        .await
        .unwrap();
    assert_eq!(next, shop.revision + 1);
    let stale = store
        .update_installation(changed.clone(), Some(vec![]), None)
        .await;
    assert!(matches!(stale, Err(StorageError::Conflict(_))), "{stale:?}");
    let stored = store.installation("acme", "shop").await.unwrap().unwrap();
    assert_eq!((stored.enabled, stored.revision), (false, next));
    assert_eq!(stored.config["greeting"], "bye");
    assert_eq!(
        store.secrets("acme", "shop").await.unwrap().len(),
        2,
        "secrets kept when not given (and the refused update changed nothing)"
    );
    assert!(
        store.schedules("acme", "shop").await.unwrap().is_empty(),
        "schedules replaced when given"
    );
    let missing = store
        .update_installation(installation("acme", "nope"), None, None)
        .await;
    assert!(
        matches!(missing, Err(StorageError::NotFound(_))),
        "{missing:?}"
    );

    let listed: Vec<(String, String)> = store
        .installations(None, false)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.tenant, i.id))
        .collect();
    assert_eq!(
        listed,
        [
            ("acme".to_string(), "shop".to_string()),
            ("globex".to_string(), "shop".to_string())
        ],
        "by tenant and id"
    );
    assert_eq!(
        store
            .installations(Some("globex"), false)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub(crate) async fn removal_keeps_a_tombstone_and_drops_the_installations_data<S>(store: Arc<S>)
where
    S: Registry
        + KvBackend
        + OAuthStore
        + WebhookStore
        + ArtifactStore
        + RecordStore
        + CommitEffects
        + ?Sized,
{
    store.add_tenant(tenant("acme")).await.unwrap();
    let shop = installation("acme", "shop");
    store
        .insert_installation(
            shop.clone(),
            vec![secret("password", 1)],
            vec![schedule("acme", "shop", "orders")],
        )
        .await
        .unwrap();
    let scope = Scope {
        tenant: "acme".into(),
        installation: "shop".into(),
    };
    store
        .kv_apply(&scope, &[("cursor".into(), Some(b"1".to_vec()))])
        .await
        .unwrap();
    store
        .put_oauth_token_set("acme", "shop", super::oauth::token_set(1))
        .await
        .unwrap();
    store
        .set_webhook_secret_hash(&scope, [9; 32], 1_700_000_250)
        .await
        .unwrap();
    super::artifacts::publish(&*store, "shop", "feed.xml", b"v1", 1_700_000_250, 3).await;
    let staged = store
        .stage_artifact(&scope, "half.xml", "text/xml", 1_700_000_250)
        .await
        .unwrap();
    store
        .set_feed_token_hash(&scope, [8; 32], 1_700_000_250)
        .await
        .unwrap();
    let other = Scope {
        tenant: "acme".into(),
        installation: "other".into(),
    };
    store
        .set_feed_token_hash(&other, [7; 32], 1_700_000_250)
        .await
        .unwrap();
    // The installation's run writes, acknowledges and annotates a record.
    let effects = RecordEffects {
        writes: vec![RecordWrite {
            collection: "orders".into(),
            id: "1".into(),
            body: Some("{}".into()),
        }],
        acks: vec![RecordAck {
            collection: "orders".into(),
            id: "1".into(),
            version: 1,
        }],
        annotations: vec![RecordAnnotation {
            collection: "orders".into(),
            id: "1".into(),
            change: AnnotationChange::Note("exported".into()),
        }],
    };
    store
        .commit_record_effects(&scope, &effects, 1_700_000_250)
        .await
        .unwrap();
    let stale = store
        .remove_installation("acme", "shop", Some(shop.revision + 7), 1_700_000_300)
        .await;
    assert!(matches!(stale, Err(StorageError::Conflict(_))), "{stale:?}");
    store
        .remove_installation("acme", "shop", Some(shop.revision), 1_700_000_300)
        .await
        .unwrap();

    let tombstone = store.installation("acme", "shop").await.unwrap().unwrap();
    assert_eq!(tombstone.removed_at, Some(1_700_000_300));
    assert!(!tombstone.enabled);
    assert!(tombstone.config.is_empty(), "its config is gone");
    assert!(tombstone.revision > shop.revision);
    assert!(
        store
            .installations(Some("acme"), false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.installations(Some("acme"), true).await.unwrap().len(),
        1
    );
    assert!(store.secrets("acme", "shop").await.unwrap().is_empty());
    assert!(store.schedules("acme", "shop").await.unwrap().is_empty());
    assert_eq!(store.kv_get(&scope, "cursor").await.unwrap(), None);
    assert_eq!(store.oauth_token_set("acme", "shop").await.unwrap(), None);
    assert_eq!(store.webhook_secret_hash(&scope).await.unwrap(), None);
    assert!(store.artifacts(&scope).await.unwrap().is_empty());
    assert_eq!(store.feed_token_hash(&scope).await.unwrap(), None);
    assert_eq!(
        store.feed_token_hash(&other).await.unwrap(),
        Some([7; 32]),
        "another installation's artifacts stay"
    );
    assert_eq!(
        store.drop_abandoned_artifacts(i64::MAX).await.unwrap(),
        0,
        "its staged version {staged} went too"
    );
    // The records are the tenant's: they, and what the installation made
    // of them, stay (the operator still sees its annotations).
    let record = store.record("acme", "orders", "1").await.unwrap().unwrap();
    assert_eq!(record.writer, "shop");
    assert_eq!(
        store
            .record_acks("acme", "orders", "1")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .all_record_annotations("acme", "orders", "1")
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .pending_records("acme", "shop", "orders", 0, PageLimit::records(10))
            .await
            .unwrap()
            .records
            .is_empty()
    );
    assert!(matches!(
        store.insert_installation(shop, vec![], vec![]).await,
        Err(StorageError::Conflict(_))
    ));
    assert!(matches!(
        store
            .remove_installation("acme", "shop", None, 1_700_000_400)
            .await,
        Err(StorageError::NotFound(_))
    ));
}
