//! The admin API's tokens and audit (`AdminStore`).

use std::sync::Arc;

use crate::storage::{AdminActionRow, AdminStore, NewAdminToken};

fn token(name: &str, byte: u8) -> NewAdminToken {
    NewAdminToken {
        name: name.into(),
        tenant: Some("acme".into()),
        permissions: "read".into(),
        secret_sha256: [byte; 32],
        created_at: 100,
    }
}

pub(crate) async fn a_token_is_found_by_its_hash_until_it_is_revoked<S>(store: Arc<S>)
where
    S: AdminStore + ?Sized,
{
    let id = store.add_admin_token(token("a", 1)).await.unwrap();
    let other = store.add_admin_token(token("b", 2)).await.unwrap();
    assert!(other > id, "ids grow");
    let found = store.admin_token_by_hash([1; 32]).await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.name.as_str(), found.tenant.as_deref()),
        (id, "a", Some("acme"))
    );
    assert!(store.admin_token_by_hash([3; 32]).await.unwrap().is_none());
    assert!(store.revoke_admin_token(id, 200).await.unwrap());
    assert!(!store.revoke_admin_token(id, 300).await.unwrap(), "once");
    assert!(!store.revoke_admin_token(9_999, 300).await.unwrap());
    assert!(store.admin_token_by_hash([1; 32]).await.unwrap().is_none());
    let all = store.admin_tokens().await.unwrap();
    assert_eq!(all.len(), 2, "revoked ones listed too");
    assert_eq!(
        (all[0].id, all[0].revoked_at),
        (id, Some(200)),
        "oldest first"
    );
    assert_eq!(all[1].revoked_at, None);
    assert!(
        store.add_admin_token(token("again", 2)).await.is_err(),
        "a hash is stored once"
    );
}

pub(crate) async fn admin_actions_are_listed_newest_first_and_by_tenant<S>(store: Arc<S>)
where
    S: AdminStore + ?Sized,
{
    for (tenant, action) in [(Some("acme"), "a"), (None, "b"), (Some("wisla"), "c")] {
        let row = AdminActionRow {
            id: 0,
            at: 1,
            actor: "token #7 (shop-admin)".into(),
            token_id: Some(7),
            tenant: tenant.map(str::to_string),
            action: action.into(),
            target: "acme/shop".into(),
            detail: "mode live".into(),
        };
        store.record_admin_action(row).await.unwrap();
    }
    let all = store.admin_actions(None, 10).await.unwrap();
    let names: Vec<_> = all.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(names, ["c", "b", "a"]);
    assert_eq!(all[0].token_id, Some(7));
    assert_eq!(all[0].detail, "mode live");
    let acme = store.admin_actions(Some("acme"), 10).await.unwrap();
    assert_eq!(acme.len(), 1);
    assert_eq!(acme[0].tenant.as_deref(), Some("acme"));
    assert_eq!(store.admin_actions(None, 1).await.unwrap().len(), 1);
}
