//! An installation's OAuth2 credentials (`OAuthStore`): the sealed token
//! set, and authorizations started and taken once.

use std::sync::Arc;

use crate::secrets::SealedSecret;
use crate::storage::{OAuthStore, PendingAuthorization, StoredTokenSet};

pub(crate) fn sealed(n: u8) -> SealedSecret {
    SealedSecret {
        key_id: "k".into(),
        nonce: vec![n; 24],
        ciphertext: vec![n; 40],
    }
}

pub(crate) fn token_set(n: u8) -> StoredTokenSet {
    StoredTokenSet {
        sealed: sealed(n),
        expires_at: Some(10),
        scopes: "a b".into(),
        updated_at: 1,
    }
}

pub(crate) async fn a_token_set_is_replaced_and_deleted<S>(store: Arc<S>)
where
    S: OAuthStore + ?Sized,
{
    assert_eq!(store.oauth_token_set("t", "i").await.unwrap(), None);
    store
        .put_oauth_token_set("t", "i", token_set(1))
        .await
        .unwrap();
    let mut set = token_set(2);
    set.expires_at = None;
    store
        .put_oauth_token_set("t", "i", set.clone())
        .await
        .unwrap();
    assert_eq!(store.oauth_token_set("t", "i").await.unwrap(), Some(set));
    assert_eq!(store.oauth_token_set("t", "other").await.unwrap(), None);
    assert_eq!(store.oauth_token_set("u", "i").await.unwrap(), None);
    store.delete_oauth_token_set("t", "i").await.unwrap();
    assert_eq!(store.oauth_token_set("t", "i").await.unwrap(), None);
    store.delete_oauth_token_set("t", "i").await.unwrap();
}

pub(crate) async fn a_pending_authorization_is_taken_once_and_not_after_it_expires<S>(store: Arc<S>)
where
    S: OAuthStore + ?Sized,
{
    let pending =
        |key: &str, created_at: i64, verifier: Option<SealedSecret>| PendingAuthorization {
            state_key: key.into(),
            tenant: "t".into(),
            installation: "i".into(),
            verifier,
            redirect_uri: "https://h/oauth/callback".into(),
            created_at,
            expires_at: created_at + 600,
        };
    store
        .put_oauth_pending(pending("a", 100, Some(sealed(3))))
        .await
        .unwrap();
    store
        .put_oauth_pending(pending("b", 100, None))
        .await
        .unwrap();
    assert_eq!(store.take_oauth_pending("nope", 200).await.unwrap(), None);
    assert_eq!(
        store.take_oauth_pending("a", 200).await.unwrap(),
        Some(pending("a", 100, Some(sealed(3))))
    );
    assert_eq!(
        store.take_oauth_pending("a", 201).await.unwrap(),
        None,
        "used"
    );
    assert_eq!(
        store.take_oauth_pending("b", 700).await.unwrap(),
        None,
        "expired"
    );
    store
        .put_oauth_pending(pending("c", 800, None))
        .await
        .unwrap();
    assert_eq!(
        store.take_oauth_pending("c", 801).await.unwrap(),
        Some(pending("c", 800, None)),
        "without PKCE"
    );
}
