//! An installation's key-value data (`KvBackend`), seen through a run's
//! [`RunStorage`] and directly.

use std::sync::Arc;

use crate::storage::{KvBackend, RunStorage, Scope, StorageError, StorageLimits};

fn scope(installation: &str) -> Scope {
    Scope {
        tenant: "acme".into(),
        installation: installation.into(),
    }
}

fn run(store: &Arc<dyn KvBackend>, installation: &str) -> RunStorage {
    RunStorage::new(store.clone(), scope(installation), StorageLimits::default())
}

/// Every key of `installation` starting with `prefix`, through pages of
/// `page` keys.
async fn all_keys(view: &RunStorage, prefix: &str, page: usize) -> Vec<String> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let (keys, next) = view.list(prefix, cursor.as_deref(), page).await.unwrap();
        assert!(keys.len() <= page);
        all.extend(keys);
        match next {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
}

pub(crate) async fn writes_are_invisible_until_commit_and_lost_on_drop(store: Arc<dyn KvBackend>) {
    let mut a = run(&store, "one");
    a.set("cursor", b"1".to_vec()).await.unwrap();
    assert_eq!(a.get("cursor").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(run(&store, "one").get("cursor").await.unwrap(), None);
    drop(a);
    assert_eq!(run(&store, "one").get("cursor").await.unwrap(), None);

    let mut b = run(&store, "one");
    b.set("cursor", b"2".to_vec()).await.unwrap();
    b.commit().await.unwrap();
    assert_eq!(
        run(&store, "one").get("cursor").await.unwrap(),
        Some(b"2".to_vec())
    );
    assert_eq!(
        run(&store, "two").get("cursor").await.unwrap(),
        None,
        "scopes are separate"
    );
    // Another tenant's installation of the same name sees none of it.
    let other_tenant = Scope {
        tenant: "globex".into(),
        installation: "one".into(),
    };
    assert_eq!(store.kv_get(&other_tenant, "cursor").await.unwrap(), None);
    assert!(
        store
            .kv_list(&other_tenant, "", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.kv_usage(&other_tenant).await.unwrap().keys, 0);
    assert_eq!(
        store.kv_entry_bytes(&other_tenant, "cursor").await.unwrap(),
        None
    );
}

/// The backend's own listing honours its limit and cursor (the run's view
/// pages on top of it), and deleting a key that is not there is no error.
pub(crate) async fn the_backend_lists_within_its_limit_and_deletes_idempotently(
    store: Arc<dyn KvBackend>,
) {
    let one = scope("one");
    let changes: Vec<(String, Option<Vec<u8>>)> =
        (0..10).map(|i| (format!("k{i}"), Some(vec![1]))).collect();
    store.kv_apply(&one, &changes).await.unwrap();
    assert_eq!(
        store.kv_list(&one, "k", None, 3).await.unwrap(),
        ["k0", "k1", "k2"]
    );
    assert_eq!(
        store.kv_list(&one, "k", Some("k7"), 3).await.unwrap(),
        ["k8", "k9"]
    );
    assert!(
        store
            .kv_list(&one, "k", Some("k9"), 3)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .kv_apply(&one, &[("never".into(), None), ("k0".into(), None)])
        .await
        .unwrap();
    assert_eq!(store.kv_usage(&one).await.unwrap().keys, 9);
    // The last change of a key in one apply wins.
    store
        .kv_apply(
            &one,
            &[
                ("k1".into(), Some(b"a".to_vec())),
                ("k1".into(), Some(b"b".to_vec())),
            ],
        )
        .await
        .unwrap();
    assert_eq!(store.kv_get(&one, "k1").await.unwrap(), Some(b"b".to_vec()));
}

pub(crate) async fn a_scratch_view_keeps_checkpointed_writes_to_itself(store: Arc<dyn KvBackend>) {
    let mut scratch = RunStorage::scratch(store.clone(), scope("one"), StorageLimits::default());
    scratch.set("cursor", b"1".to_vec()).await.unwrap();
    scratch.commit().await.unwrap();
    assert_eq!(scratch.get("cursor").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(scratch.list("", None, 10).await.unwrap().0, ["cursor"]);
    assert!(scratch.committed_changes().is_empty());
    assert_eq!(scratch.pending_changes().len(), 1);
    assert_eq!(
        run(&store, "one").get("cursor").await.unwrap(),
        None,
        "nothing written"
    );
}

pub(crate) async fn list_merges_pending_writes_and_deletes_across_pages(store: Arc<dyn KvBackend>) {
    let mut seed = run(&store, "one");
    for k in ["o/1", "o/2", "o/3", "o/5", "p/1"] {
        seed.set(k, vec![1]).await.unwrap();
    }
    seed.commit().await.unwrap();
    let mut r = run(&store, "one");
    r.delete("o/2").await.unwrap();
    r.set("o/4", vec![2]).await.unwrap();
    r.set("o/6", vec![2]).await.unwrap();
    assert_eq!(
        all_keys(&r, "o/", 2).await,
        ["o/1", "o/3", "o/4", "o/5", "o/6"]
    );
}

/// Keys order by their UTF-8 bytes (as Rust strings do), whatever the
/// database's collation; a prefix is matched literally (no `%` or `_`
/// wildcard, no case folding).
pub(crate) async fn keys_compare_as_bytes_and_prefixes_are_literal(store: Arc<dyn KvBackend>) {
    let keys = [
        "a%b", "a_b", "aXb", "a\\b", "B", "a", "é", "z", "ab", "A%", "a%", "日本",
    ];
    let changes: Vec<(String, Option<Vec<u8>>)> = keys
        .iter()
        .map(|k| (k.to_string(), Some(vec![1])))
        .collect();
    store.kv_apply(&scope("one"), &changes).await.unwrap();
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    let view = run(&store, "one");
    assert_eq!(all_keys(&view, "", 3).await, expected, "byte order");
    assert_eq!(all_keys(&view, "a%", 10).await, ["a%", "a%b"]);
    assert_eq!(all_keys(&view, "a_", 10).await, ["a_b"]);
    assert_eq!(all_keys(&view, "a\\", 10).await, ["a\\b"]);
    assert_eq!(all_keys(&view, "A", 10).await, ["A%"]);
    assert_eq!(
        store
            .kv_list(&scope("one"), "a", Some("a_b"), 10)
            .await
            .unwrap(),
        ["ab"],
        "after the cursor, in byte order"
    );
}

pub(crate) async fn limits_are_enforced(store: Arc<dyn KvBackend>) {
    let limits = StorageLimits {
        max_run_write_bytes: 20,
        ..StorageLimits::default()
    };
    let mut r = RunStorage::new(store, scope("one"), limits);
    for bad in ["", "a\nb", &"k".repeat(513)] {
        assert!(
            matches!(r.set(bad, vec![]).await, Err(StorageError::InvalidKey(_))),
            "{bad:?}"
        );
    }
    r.set("k", vec![0; 9]).await.unwrap();
    r.commit().await.unwrap();
    r.set("k", vec![0; 9]).await.unwrap();
    assert!(
        matches!(
            r.set("k", vec![0; 1]).await,
            Err(StorageError::QuotaExceeded(_))
        ),
        "a checkpoint does not reset the run's total writes"
    );
}

pub(crate) async fn the_installation_quota_holds_across_checkpoints_and_runs(
    store: Arc<dyn KvBackend>,
) {
    let quota = StorageLimits::default().within(100, 3);
    let mut r = RunStorage::new(store.clone(), scope("one"), quota.clone());
    // "Write, checkpoint, repeat" until the quota refuses.
    let mut stored = 0;
    let refused = loop {
        match r.set(&format!("k{stored}"), vec![0; 20]).await {
            Ok(()) => stored += 1,
            Err(e) => break e,
        }
        r.commit().await.unwrap();
    };
    assert_eq!(stored, 3, "3 keys of 22 bytes fit");
    assert!(refused.to_string().contains("at most 3 keys"), "{refused}");
    // Replacing a key with a value of the same size is allowed; growing
    // it past the byte quota is not; deleting always is.
    r.set("k0", vec![1; 20]).await.unwrap();
    let err = r.set("k1", vec![0; 60]).await.unwrap_err();
    assert!(err.to_string().contains("at most 100 bytes"), "{err}");
    r.delete("k2").await.unwrap();
    r.set("k3", vec![0; 20]).await.unwrap();
    r.commit().await.unwrap();

    let mut next = RunStorage::new(store.clone(), scope("one"), quota.clone());
    assert!(matches!(
        next.set("k9", vec![0; 1]).await,
        Err(StorageError::QuotaExceeded(_))
    ));
    let mut other = RunStorage::new(store, scope("two"), quota);
    other.set("k9", vec![0; 20]).await.unwrap();
}

/// Usage is the bytes of keys (as UTF-8) and values, and the key count.
pub(crate) async fn usage_counts_the_bytes_of_keys_and_values(store: Arc<dyn KvBackend>) {
    let one = scope("one");
    let empty = store.kv_usage(&one).await.unwrap();
    assert_eq!((empty.bytes, empty.keys), (0, 0));
    store
        .kv_apply(
            &one,
            &[
                ("é".into(), Some(vec![0; 10])),
                ("k".into(), Some(Vec::new())),
            ],
        )
        .await
        .unwrap();
    let usage = store.kv_usage(&one).await.unwrap();
    assert_eq!((usage.bytes, usage.keys), (2 + 10 + 1, 2));
    assert_eq!(store.kv_entry_bytes(&one, "é").await.unwrap(), Some(12));
    assert_eq!(store.kv_entry_bytes(&one, "k").await.unwrap(), Some(1));
    assert_eq!(store.kv_entry_bytes(&one, "gone").await.unwrap(), None);
    store.kv_apply(&one, &[("é".into(), None)]).await.unwrap();
    let usage = store.kv_usage(&one).await.unwrap();
    assert_eq!(
        (usage.bytes, usage.keys),
        (1, 1),
        "a delete frees its bytes"
    );
    assert_eq!(store.kv_get(&one, "é").await.unwrap(), None);
}
