//! Published artifacts (`ArtifactStore`): staged versions served only once
//! published, version numbers and times, retention, abandoned staging, the
//! feed token. A run's effects are committed through [`CommitEffects`], as
//! the backend's run ledger commits them.

use std::sync::Arc;

use super::CommitEffects;
use crate::artifacts::ABANDONED_AFTER_SECS;
use crate::storage::{ArtifactEffects, ArtifactPublish, ArtifactStore, Scope, StorageError};

pub(crate) fn scope(installation: &str) -> Scope {
    Scope {
        tenant: "acme".into(),
        installation: installation.into(),
    }
}

/// What a run that staged `staged` as `name` with `bytes` commits to
/// publish it, keeping `keep` versions.
fn publishing(staged: i64, name: &str, bytes: usize, keep: u32) -> ArtifactEffects {
    ArtifactEffects {
        publish: vec![ArtifactPublish {
            staged,
            name: name.into(),
            size: bytes as u64,
            sha256: "x".into(),
        }],
        drop: Vec::new(),
        keep_versions: keep,
    }
}

/// Stages `bytes` as `name` of `installation` and publishes it as run
/// `run` at time `run`, keeping `keep`; returns the staged id.
pub(crate) async fn publish<S>(
    store: &S,
    installation: &str,
    name: &str,
    bytes: &[u8],
    run: i64,
    keep: u32,
) -> i64
where
    S: ArtifactStore + CommitEffects + ?Sized,
{
    let s = scope(installation);
    let staged = store
        .stage_artifact(&s, name, "text/plain", run)
        .await
        .unwrap();
    store
        .append_artifact(staged, 0, vec![bytes.to_vec()])
        .await
        .unwrap();
    store
        .commit_artifact_effects(&s, &publishing(staged, name, bytes.len(), keep), run, run)
        .await
        .unwrap();
    staged
}

pub(crate) async fn a_staged_version_is_served_only_once_published<S>(store: Arc<S>)
where
    S: ArtifactStore + CommitEffects + ?Sized,
{
    let s = scope("shop");
    let staged = store
        .stage_artifact(&s, "feed.xml", "text/xml", 1)
        .await
        .unwrap();
    store
        .append_artifact(staged, 0, vec![b"<a>".to_vec(), b"1".to_vec()])
        .await
        .unwrap();
    store
        .append_artifact(staged, 2, vec![b"</a>".to_vec()])
        .await
        .unwrap();
    assert_eq!(store.artifact(&s, "feed.xml", None).await.unwrap(), None);
    assert_eq!(store.artifact_chunk(&s, staged, 0).await.unwrap(), None);
    assert!(store.artifacts(&s).await.unwrap().is_empty());
    assert!(
        store
            .artifact_versions(&s, "feed.xml")
            .await
            .unwrap()
            .is_empty()
    );

    store
        .commit_artifact_effects(&s, &publishing(staged, "feed.xml", 8, 3), 42, 10)
        .await
        .unwrap();
    let current = store.artifact(&s, "feed.xml", None).await.unwrap().unwrap();
    assert_eq!(
        (
            current.id,
            current.version,
            current.size,
            current.chunks,
            current.run_id,
            current.published_at,
            current.content_type.as_str(),
            current.sha256.as_str(),
        ),
        (staged, 1, 8, 3, Some(42), 10, "text/xml", "x")
    );
    let mut bytes = Vec::new();
    for seq in 0..current.chunks {
        bytes.extend(
            store
                .artifact_chunk(&s, current.id, seq)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(bytes, b"<a>1</a>");
    assert_eq!(store.artifact_chunk(&s, current.id, 3).await.unwrap(), None);
    // Another installation's scope, or another tenant's, reads nothing of it.
    let globex = Scope {
        tenant: "globex".into(),
        installation: "shop".into(),
    };
    for other in [scope("other"), globex] {
        assert_eq!(
            store.artifact_chunk(&other, current.id, 0).await.unwrap(),
            None
        );
        assert_eq!(
            store.artifact(&other, "feed.xml", None).await.unwrap(),
            None
        );
        assert!(store.artifacts(&other).await.unwrap().is_empty());
    }
    // The current version of each artifact, by name.
    publish(&*store, "shop", "a.csv", b"a", 11, 3).await;
    publish(&*store, "shop", "feed.xml", b"v2", 12, 3).await;
    let listed: Vec<(String, i64)> = store
        .artifacts(&s)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.name, v.version))
        .collect();
    assert_eq!(
        listed,
        [("a.csv".to_string(), 1), ("feed.xml".to_string(), 2)]
    );
    let first = store
        .artifact(&s, "feed.xml", Some(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, current, "an older version kept is still served");
    assert_eq!(store.artifact(&s, "feed.xml", Some(9)).await.unwrap(), None);
}

pub(crate) async fn a_version_published_in_the_same_second_is_a_second_later<S>(store: Arc<S>)
where
    S: ArtifactStore + CommitEffects + ?Sized,
{
    let s = scope("shop");
    publish(&*store, "shop", "feed.xml", b"v1", 10, 3).await;
    publish(&*store, "shop", "feed.xml", b"v2", 10, 3).await;
    let v1 = store
        .artifact(&s, "feed.xml", Some(1))
        .await
        .unwrap()
        .unwrap();
    let v2 = store
        .artifact(&s, "feed.xml", Some(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((v1.published_at, v2.published_at), (10, 11));
    // Later publications keep the clock's time.
    publish(&*store, "shop", "feed.xml", b"v3", 50, 3).await;
    let v3 = store.artifact(&s, "feed.xml", None).await.unwrap().unwrap();
    assert_eq!((v3.version, v3.published_at), (3, 50));
    // Another artifact's times are its own.
    publish(&*store, "shop", "other.xml", b"o", 10, 3).await;
    let other = store
        .artifact(&s, "other.xml", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((other.version, other.published_at), (1, 10));
}

pub(crate) async fn retention_keeps_the_newest_versions_and_serves_no_other<S>(store: Arc<S>)
where
    S: ArtifactStore + CommitEffects + ?Sized,
{
    let s = scope("shop");
    let mut ids = Vec::new();
    for run in 1..=5 {
        ids.push(
            publish(
                &*store,
                "shop",
                "feed.xml",
                format!("v{run}").as_bytes(),
                run,
                2,
            )
            .await,
        );
    }
    let versions: Vec<i64> = store
        .artifact_versions(&s, "feed.xml")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, [5, 4], "newest first");
    assert_eq!(store.artifact(&s, "feed.xml", Some(3)).await.unwrap(), None);
    for gone in &ids[..3] {
        assert_eq!(store.artifact_chunk(&s, *gone, 0).await.unwrap(), None);
    }
    let v4 = store
        .artifact(&s, "feed.xml", Some(4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.artifact_chunk(&s, v4.id, 0).await.unwrap(),
        Some(b"v4".to_vec())
    );
    // A keep of 0 keeps the one just published.
    publish(&*store, "shop", "feed.xml", b"v6", 6, 0).await;
    let versions = store.artifact_versions(&s, "feed.xml").await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].version, 6);
}

pub(crate) async fn abandoned_staging_is_deleted_at_the_next_publish_and_on_demand<S>(store: Arc<S>)
where
    S: ArtifactStore + CommitEffects + ?Sized,
{
    let s = scope("shop");
    let old = store
        .stage_artifact(&s, "a", "text/plain", 0)
        .await
        .unwrap();
    store
        .append_artifact(old, 0, vec![vec![1; 10]])
        .await
        .unwrap();
    let now = ABANDONED_AFTER_SECS + 10;
    store
        .stage_artifact(&s, "b", "text/plain", now - 5)
        .await
        .unwrap();
    publish(&*store, "shop", "c", b"c", now, 3).await;
    assert_eq!(
        store.drop_abandoned_artifacts(1).await.unwrap(),
        0,
        "the hour-old staging went with the publish"
    );
    assert_eq!(
        store.drop_abandoned_artifacts(now).await.unwrap(),
        1,
        "a live run's staging was kept until asked"
    );
    assert_eq!(store.drop_abandoned_artifacts(now).await.unwrap(), 0);
    assert!(
        store.artifact(&s, "c", None).await.unwrap().is_some(),
        "a published version is never abandoned"
    );
}

pub(crate) async fn a_dropped_or_abandoned_staging_cannot_be_published<S>(store: Arc<S>)
where
    S: ArtifactStore + CommitEffects + ?Sized,
{
    let s = scope("shop");
    let dropped = store
        .stage_artifact(&s, "feed.xml", "text/plain", 1)
        .await
        .unwrap();
    store.drop_staged_artifacts(vec![dropped]).await.unwrap();
    let refused = store
        .commit_artifact_effects(&s, &publishing(dropped, "feed.xml", 0, 3), 1, 1)
        .await;
    assert!(
        matches!(refused, Err(StorageError::NotFound(_))),
        "{refused:?}"
    );
    // Nor as another installation's, or under another name.
    let staged = store
        .stage_artifact(&s, "feed.xml", "text/plain", 1)
        .await
        .unwrap();
    for (who, name) in [(scope("other"), "feed.xml"), (s.clone(), "other.xml")] {
        let refused = store
            .commit_artifact_effects(&who, &publishing(staged, name, 0, 3), 1, 1)
            .await;
        assert!(
            matches!(refused, Err(StorageError::NotFound(_))),
            "{refused:?}"
        );
    }
    assert_eq!(store.artifact(&s, "feed.xml", None).await.unwrap(), None);
    // A run's drop list is applied before its publications: naming the
    // version it publishes fails the whole commit, which changes nothing.
    let effects = ArtifactEffects {
        drop: vec![staged],
        ..publishing(staged, "feed.xml", 0, 3)
    };
    let refused = store.commit_artifact_effects(&s, &effects, 1, 1).await;
    assert!(
        matches!(refused, Err(StorageError::NotFound(_))),
        "{refused:?}"
    );
    store
        .commit_artifact_effects(&s, &publishing(staged, "feed.xml", 0, 3), 2, 2)
        .await
        .expect("the refused commit dropped nothing");
    // A published version is never dropped as staged.
    store.drop_staged_artifacts(vec![staged]).await.unwrap();
    let current = store.artifact(&s, "feed.xml", None).await.unwrap().unwrap();
    assert_eq!(
        (current.id, current.version, current.run_id),
        (staged, 1, Some(2))
    );
}

pub(crate) async fn an_id_is_never_given_again_so_a_drop_list_names_only_its_own_versions<S>(
    store: Arc<S>,
) where
    S: ArtifactStore + ?Sized,
{
    let s = scope("shop");
    let first = store
        .stage_artifact(&s, "big.bin", "text/plain", 1)
        .await
        .unwrap();
    store.drop_staged_artifacts(vec![first]).await.unwrap();
    let second = store
        .stage_artifact(&s, "second.bin", "text/plain", 1)
        .await
        .unwrap();
    assert_ne!(first, second, "the dropped version's id was reused");
}

pub(crate) async fn the_feed_token_is_kept_as_its_hash_and_replaced_at_once<S>(store: Arc<S>)
where
    S: ArtifactStore + ?Sized,
{
    let s = scope("shop");
    assert_eq!(store.feed_token_hash(&s).await.unwrap(), None);
    store.set_feed_token_hash(&s, [1; 32], 1).await.unwrap();
    store.set_feed_token_hash(&s, [2; 32], 2).await.unwrap();
    assert_eq!(store.feed_token_hash(&s).await.unwrap(), Some([2; 32]));
    assert_eq!(store.feed_token_hash(&scope("other")).await.unwrap(), None);
    let globex = Scope {
        tenant: "globex".into(),
        installation: "shop".into(),
    };
    assert_eq!(store.feed_token_hash(&globex).await.unwrap(), None);
}

/// Runs of one installation publishing one artifact at once (on several
/// nodes): each is numbered after the other, none fails.
pub(crate) async fn concurrent_publishers_of_one_artifact_are_numbered_in_turn<S>(store: Arc<S>)
where
    S: ArtifactStore + CommitEffects + 'static + ?Sized,
{
    const RUNS: i64 = 6;
    let mut tasks = Vec::new();
    for run in 1..=RUNS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Two artifacts, in either order: no deadlock either.
            let s = scope("shop");
            let mut effects = ArtifactEffects {
                keep_versions: 100,
                ..Default::default()
            };
            for name in ["feed.xml", "index.json"] {
                let staged = store
                    .stage_artifact(&s, name, "text/plain", 5)
                    .await
                    .unwrap();
                store
                    .append_artifact(staged, 0, vec![run.to_string().into_bytes()])
                    .await
                    .unwrap();
                effects
                    .publish
                    .extend(publishing(staged, name, 1, 100).publish);
            }
            if run % 2 == 0 {
                effects.publish.reverse();
            }
            store
                .commit_artifact_effects(&s, &effects, run, 5)
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let s = scope("shop");
    for name in ["feed.xml", "index.json"] {
        let versions = store.artifact_versions(&s, name).await.unwrap();
        let numbers: Vec<i64> = versions.iter().map(|v| v.version).collect();
        assert_eq!(numbers, (1..=RUNS).rev().collect::<Vec<_>>(), "{name}");
        let mut times: Vec<i64> = versions.iter().map(|v| v.published_at).collect();
        times.reverse();
        assert_eq!(
            times,
            (5..5 + RUNS).collect::<Vec<_>>(),
            "{name}: each a second after the one before"
        );
    }
}
