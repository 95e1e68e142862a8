//! Published artifacts (`plugins/artifacts-probe`): atomic publish with the
//! run, failed runs and checkpoints that publish nothing, retention, caps
//! tripped by a hostile guest, a 64 MiB artifact streamed by a guest with
//! 16 MiB of memory; and `airlock serve --listen` serving them to a real
//! HTTP client with ETag, 304, HEAD, gzip and a rotatable token that never
//! shows in the database file or the server's output.

use std::io::Read as _;

use airlock::runs::Mode;
use airlock::storage::{ArtifactStore, ArtifactVersion, Scope};
use airlock::{Airlock, AirlockOptions, Plugin, SqliteStore};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::serve_cli::{Site, file_bytes};
use crate::support::{Harness, installation, plugin, run, test_options};

fn scope(installation: &str) -> Scope {
    Scope {
        tenant: "acme".into(),
        installation: installation.into(),
    }
}

fn probe() -> Plugin {
    plugin("artifacts-probe")
}

/// The current version of `name` of `acme/feeds`.
async fn current(store: &SqliteStore, name: &str) -> Option<ArtifactVersion> {
    ArtifactStore::artifact(store, &scope("feeds"), name, None)
        .await
        .unwrap()
}

/// The bytes of a published version, read chunk by chunk as serving does.
async fn bytes_of(store: &SqliteStore, s: &Scope, v: &ArtifactVersion) -> Vec<u8> {
    let mut out = Vec::new();
    for seq in 0..v.chunks {
        let chunk = ArtifactStore::artifact_chunk(store, s, v.id, seq)
            .await
            .unwrap();
        out.extend(chunk.expect("every chunk of a published version"));
    }
    out
}

/// Staged versions left in the store (a failed run must leave none).
fn staged(store: &SqliteStore, db: &std::path::Path) -> i64 {
    let _ = store;
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM artifact_versions WHERE version IS NULL",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

fn db_of(h: &Harness) -> std::path::PathBuf {
    h.store.data_dir().unwrap().join("airlock.db")
}

async fn publish(h: &Harness, config: &[&str]) -> airlock::runs::RunReport {
    let config: Vec<String> = config.iter().map(|c| c.to_string()).collect();
    let inst = installation(&probe(), "acme", "feeds", &config);
    run(h, &probe(), &inst, "publish", 0).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_publishes_at_its_end_and_a_reader_meanwhile_sees_the_old_version() {
    let h = Harness::new();
    let first = publish(&h, &["tag=v1"]).await;
    assert!(first.committed, "{:?}", first.end);
    let v1 = current(&h.store, "feed.txt").await.expect("published");
    assert_eq!((v1.version, v1.size), (1, 4096));
    assert_eq!(first.artifacts.len(), 1);
    assert_eq!(first.artifacts[0].sha256, v1.sha256);
    let body = bytes_of(&h.store, &scope("feeds"), &v1).await;
    assert!(body.starts_with(b"v1-000000000\nv1-000000001\n"));
    assert_eq!(hex(&Sha256::digest(&body)), v1.sha256);

    // The next run writes v2, then waits on a request the test holds.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("wait_url=http://shop.test:{port}/hold");
    let running = {
        let (plugin, h_store) = (probe(), h.store.clone());
        let inst = installation(&plugin, "acme", "feeds", &["tag=v2".into(), url]);
        let host = Airlock::new(h_store, test_options()).unwrap();
        tokio::spawn(
            async move { crate::support::run_with(&host, &plugin, &inst, "publish").await },
        )
    };
    let (mut held, _) = listener.accept().await.unwrap();
    let mut request = [0u8; 1024];
    let _ = held.read(&mut request).await.unwrap();
    // The guest has written all of v2 and is waiting: v1 is still served.
    let during = current(&h.store, "feed.txt").await.unwrap();
    assert_eq!(
        during.sha256, v1.sha256,
        "nothing is visible before the run ends"
    );
    held.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let second = running.await.unwrap();
    assert!(second.committed, "{:?}", second.end);
    let v2 = current(&h.store, "feed.txt").await.unwrap();
    assert_eq!(v2.version, 2);
    let body = bytes_of(&h.store, &scope("feeds"), &v2).await;
    assert!(body.starts_with(b"v2-000000000\n"));
    assert_ne!(v2.sha256, v1.sha256);
    assert_eq!(staged(&h.store, &db_of(&h)), 0);

    // Test mode publishes too: an artifact is the installation's own output.
    let plugin = probe();
    let mut inst = installation(&plugin, "acme", "feeds", &["tag=v3".into()]);
    inst.mode = Mode::Test;
    let third = run(&h, &plugin, &inst, "publish", 0).await;
    assert_eq!(third.artifacts.len(), 1, "{:?}", third.end);
    assert_eq!(current(&h.store, "feed.txt").await.unwrap().version, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_runs_and_checkpoints_publish_nothing_and_leave_nothing_staged() {
    let h = Harness::new();
    publish(&h, &["tag=v1"]).await;
    let v1 = current(&h.store, "feed.txt").await.unwrap();
    for then in ["error", "retry", "trap", "checkpoint-trap"] {
        let report = publish(&h, &["tag=bad", &format!("then={then}"), "kib=2048"]).await;
        assert!(!report.committed, "{then}: {:?}", report.end);
        assert!(report.artifacts.is_empty(), "{then}");
        let now = current(&h.store, "feed.txt").await.unwrap();
        assert_eq!(now, v1, "{then}: the previous version stays served");
        assert_eq!(
            staged(&h.store, &db_of(&h)),
            0,
            "{then}: its staging is dropped"
        );
    }
    let conn = rusqlite::Connection::open(db_of(&h)).unwrap();
    let chunks: i64 = conn
        .query_row("SELECT COUNT(*) FROM artifact_chunks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(chunks, v1.chunks, "no bytes of the failed runs are kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_may_not_write_artifacts() {
    let h = Harness::new();
    let plugin = probe();
    let inst = installation(&plugin, "acme", "feeds", &[]);
    let answer = h.host.check(&plugin, &inst, Mode::Test).await.unwrap();
    let err = answer.expect_err("the probe's check reports what begin said");
    assert!(err.starts_with("not-allowed"), "{err}");
    assert!(h.store.artifacts(&scope("feeds")).unwrap().is_empty());
    assert_eq!(staged(&h.store, &db_of(&h)), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn beginning_again_replaces_and_a_discarded_artifact_is_never_published() {
    let h = Harness::new();
    let plugin = probe();
    let inst = installation(&plugin, "acme", "feeds", &[]);
    let report = run(&h, &plugin, &inst, "replace-and-discard", 0).await;
    assert!(report.committed, "{:?}", report.end);
    let names: Vec<_> = report.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["keep.txt"]);
    let keep = current(&h.store, "keep.txt").await.unwrap();
    assert_eq!(bytes_of(&h.store, &scope("feeds"), &keep).await, b"second");
    assert_eq!(current(&h.store, "dropped.txt").await, None);
    assert_eq!(staged(&h.store, &db_of(&h)), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_keeps_the_newest_versions_asked_for() {
    let h = Harness::with_options(AirlockOptions {
        artifact_versions: 2,
        ..test_options()
    });
    for i in 1..=4 {
        publish(&h, &[&format!("tag=v{i}")]).await;
    }
    let kept: Vec<i64> = h
        .store
        .artifact_versions(&scope("feeds"), "feed.txt")
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(kept, [4, 3]);
    let conn = rusqlite::Connection::open(db_of(&h)).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM artifact_versions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_64_mib_artifact_streams_from_a_guest_with_16_mib_of_memory() {
    let h = Harness::new();
    assert_eq!(probe().manifest.limits.memory_mb, 16);
    let report = publish(&h, &["kib=65536", "chunk_kib=256", "tag=big"]).await;
    assert!(report.committed, "{:?}", report.end);
    let v = current(&h.store, "feed.txt").await.unwrap();
    assert_eq!(v.size, 64 << 20);
    assert_eq!(v.chunks, 64, "stored as 1 MiB chunks");
    let mut hasher = Sha256::new();
    for seq in 0..v.chunks {
        let chunk = ArtifactStore::artifact_chunk(&*h.store, &scope("feeds"), v.id, seq)
            .await
            .unwrap()
            .unwrap();
        assert!(chunk.len() <= 1 << 20);
        hasher.update(&chunk);
    }
    assert_eq!(hex(&hasher.finalize()), v.sha256);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_guest_trips_every_cap_with_a_clear_error_and_the_host_goes_on() {
    let h = Harness::new();
    let plugin = probe();
    // One installation per attack: each keeps its own artifacts.
    let attack = |name: &str| installation(&plugin, "acme", name, &[format!("attack={name}")]);

    let names = run(&h, &plugin, &attack("names"), "hostile", 0).await;
    let message = names.end.summary();
    for expected in [
        "name[0]=invalid-name",
        "name[7]=invalid-name",
        "name[3]=invalid-name",
        "name[129]=invalid-name",
        "type=invalid-argument",
        "header=invalid-argument",
        "unbegun=invalid-argument",
        "discard-unbegun=invalid-argument",
    ] {
        assert!(message.contains(expected), "{expected} in {message}");
    }

    let count = run(&h, &plugin, &attack("count"), "hostile", 0).await;
    let message = count.end.summary();
    assert!(message.contains("n4=ok;n5=quota-exceeded ("), "{message}");
    assert!(
        message.contains("keeps at most 5 artifacts (limits.artifacts)"),
        "{message}"
    );
    assert_eq!(h.store.artifacts(&scope("count")).unwrap().len(), 5);

    let size = run(&h, &plugin, &attack("size"), "hostile", 0).await;
    let message = size.end.summary();
    for expected in [
        "fill=ok",
        "over=quota-exceeded (artifact `big.bin` would be over 64 MiB (limits.artifact_mb))",
        "run-total=quota-exceeded (the run would write over 96 MiB to artifacts \
         (limits.artifact_run_mb))",
    ] {
        assert!(message.contains(expected), "{expected} in {message}");
    }
    let kept: Vec<String> = h
        .store
        .artifacts(&scope("size"))
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(kept, ["second.bin"], "big.bin was discarded");

    let good = publish(&h, &["tag=after"]).await;
    assert!(good.committed, "{:?}", good.end);
}

#[test]
fn serve_serves_a_feed_with_etag_304_head_gzip_and_a_rotatable_token() {
    let site = Site::new();
    for tenant in ["acme", "globex"] {
        site.ok(&["tenant", "add", tenant]);
        let config = [
            "--config",
            "kib=3000",
            "--config",
            &format!("tag={tenant}"),
            "--config",
            "name=products.xml",
            "--config",
            "content_type=application/rss+xml",
        ];
        // Installed: only an installation's artifacts are served.
        let mut install = vec![
            "install",
            "plugins/artifacts-probe",
            "--tenant",
            tenant,
            "--name",
            "feeds",
            "--skip-check",
            "--yes",
        ];
        install.extend_from_slice(&config);
        site.ok(&install);
        let mut run = vec![
            "run",
            "plugins/artifacts-probe",
            "--feed",
            "publish",
            "--tenant",
            tenant,
            "--installation",
            "feeds",
        ];
        run.extend_from_slice(&config);
        let out = site.ok(&run);
        assert!(out.contains("artifacts (published):"), "{out}");
        assert!(
            out.contains("products.xml  application/rss+xml  3072000 bytes"),
            "{out}"
        );
    }
    let listed: serde_json::Value =
        serde_json::from_str(&site.ok(&["artifacts", "list", "acme/feeds", "--json"])).unwrap();
    let etag = listed[0]["etag"].as_str().unwrap().to_string();
    assert_eq!(listed[0]["path"], "/feeds/acme/feeds/products.xml");
    let runs = site.ok(&["runs", "list", "--json"]);
    let id = serde_json::from_str::<serde_json::Value>(&runs).unwrap()[0]["id"].to_string();
    let shown = site.ok(&["runs", "show", &id, "--json"]);
    assert!(
        shown.contains("\"artifacts\""),
        "the run report lists them: {shown}"
    );
    let text = site.ok(&["runs", "show", &id]);
    assert!(
        text.contains("  artifact   products.xml  application/rss+xml  3072000 bytes  etag \"")
            && text.contains("(published)"),
        "and so does its text: {text}"
    );

    let token_of = |out: &str| out.lines().nth(1).unwrap().trim().to_string();
    let acme = token_of(&site.ok(&["artifacts", "token", "acme/feeds"]));
    let globex = token_of(&site.ok(&["artifacts", "token", "globex/feeds"]));
    let again = site.ok(&["artifacts", "token", "acme/feeds"]);
    assert!(
        again.contains("cannot be shown again") && !again.contains(&acme),
        "{again}"
    );

    let server = site.serve(&["--listen", "127.0.0.1:0"]);
    server.wait_for(&["listening on http://"]);
    let output = server.output();
    let addr = output
        .lines()
        .find_map(|l| l.strip_prefix("listening on "))
        .unwrap()
        .to_string();
    let url = |tenant: &str, name: &str, token: &str| {
        format!("{addr}/feeds/{tenant}/feeds/{name}?token={token}")
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let get = |url: String, headers: &[(&str, &str)], method: reqwest::Method| {
        let mut req = client.request(method, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        rt.block_on(async {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap().to_vec();
            (status, headers, body)
        })
    };
    let h = |headers: &reqwest::header::HeaderMap, name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };

    // A trial run's artifacts under a name never installed are not served,
    // even with the token `artifacts token` gave for them.
    site.ok(&[
        "run",
        "plugins/artifacts-probe",
        "--feed",
        "publish",
        "--tenant",
        "acme",
        "--installation",
        "trial",
        "--config",
        "kib=1",
        "--config",
        "name=products.xml",
    ]);
    let trial = token_of(&site.ok(&["artifacts", "token", "acme/trial"]));
    let (status, _, body) = get(
        format!("{addr}/feeds/acme/trial/products.xml?token={trial}"),
        &[],
        reqwest::Method::GET,
    );
    assert_eq!(
        (status, body.len()),
        (404, 0),
        "a trial's artifact is not served"
    );

    // The feed, whole, with its validators.
    let (status, headers, body) = get(
        url("acme", "products.xml", &acme),
        &[],
        reqwest::Method::GET,
    );
    assert_eq!(status, 200);
    assert_eq!(body.len(), 3_072_000);
    assert!(body.starts_with(b"acme-000000000\n"));
    assert_eq!(format!("\"{}\"", hex(&Sha256::digest(&body))), etag);
    assert_eq!(h(&headers, "etag"), etag);
    assert_eq!(h(&headers, "content-length"), "3072000");
    assert_eq!(h(&headers, "content-type"), "application/rss+xml");
    let last_modified = h(&headers, "last-modified");
    assert!(last_modified.ends_with(" GMT"), "{last_modified}");
    // `airlock artifacts get` downloads the same bytes.
    let file = site.db.with_file_name("download.xml");
    site.ok(&[
        "artifacts",
        "get",
        "acme/feeds",
        "products.xml",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&file).unwrap(), body);

    // Conditional requests and HEAD.
    let not_modified = |headers: &[(&str, &str)]| {
        let (status, out, body) = get(
            url("acme", "products.xml", &acme),
            headers,
            reqwest::Method::GET,
        );
        assert_eq!(h(&out, "etag"), etag);
        (status, body)
    };
    assert_eq!(not_modified(&[("if-none-match", &etag)]), (304, Vec::new()));
    assert_eq!(
        not_modified(&[("if-modified-since", &last_modified)]),
        (304, Vec::new())
    );
    assert_eq!(not_modified(&[("if-none-match", "\"stale\"")]).0, 200);
    let (status, headers, empty) = get(
        url("acme", "products.xml", &acme),
        &[],
        reqwest::Method::HEAD,
    );
    assert_eq!((status, empty.len()), (200, 0));
    assert_eq!(h(&headers, "content-length"), "3072000");
    assert_eq!(h(&headers, "etag"), etag);

    // gzip, streamed: decompressed, the same bytes.
    let (status, headers, gz) = get(
        url("acme", "products.xml", &acme),
        &[("accept-encoding", "gzip")],
        reqwest::Method::GET,
    );
    assert_eq!(status, 200);
    assert_eq!(h(&headers, "content-encoding"), "gzip");
    assert_eq!(h(&headers, "vary"), "accept-encoding");
    assert!(gz.len() < body.len() / 4, "compressed: {} bytes", gz.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, body);

    // The bearer header works as the query does.
    let bearer = format!("Bearer {acme}");
    let plain = format!("{addr}/feeds/acme/feeds/products.xml");
    let (status, _, _) = get(
        plain.clone(),
        &[("authorization", &bearer)],
        reqwest::Method::GET,
    );
    assert_eq!(status, 200);

    // Everything wrong is the same bare 404: no oracle.
    for wrong in [
        url("acme", "products.xml", "not-the-token"),
        plain.clone(),
        url("globex", "products.xml", &acme),
        url("acme", "products.xml", &globex),
        url("acme", "missing.xml", &acme),
        format!("{addr}/feeds/nobody/feeds/products.xml?token={acme}"),
        format!("{addr}/feeds/acme/feeds/..%2F..?token={acme}"),
    ] {
        let (status, _, body) = get(wrong.clone(), &[], reqwest::Method::GET);
        assert_eq!((status, body.len()), (404, 0), "{wrong}");
    }
    // globex's token serves globex's artifact, never acme's.
    let (status, _, theirs) = get(
        url("globex", "products.xml", &globex),
        &[],
        reqwest::Method::GET,
    );
    assert_eq!(status, 200);
    assert!(theirs.starts_with(b"globex-000000000\n"));

    // Rotation: the old token is refused at once, the new one works.
    let rotated = site.ok(&["artifacts", "token", "acme/feeds", "--rotate"]);
    assert!(rotated.contains("the old one no longer works"), "{rotated}");
    let new = token_of(&rotated);
    assert_ne!(new, acme);
    let (status, _, _) = get(
        url("acme", "products.xml", &acme),
        &[],
        reqwest::Method::GET,
    );
    assert_eq!(status, 404);
    let (status, _, _) = get(url("acme", "products.xml", &new), &[], reqwest::Method::GET);
    assert_eq!(status, 200);

    let (_, output) = server.stop();
    let db = file_bytes(&site.db);
    for secret in [&acme, &globex, &new] {
        assert!(
            !output.contains(secret.as_str()),
            "a token in serve's output"
        );
        let found = db.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "a token in the database file");
    }
}

#[test]
fn older_versions_are_kept_as_asked_and_remove_deletes_them_with_the_token() {
    let site = Site::new();
    site.ok(&["tenant", "add", "acme"]);
    site.ok(&[
        "install",
        "plugins/artifacts-probe",
        "--tenant",
        "acme",
        "--name",
        "feeds",
        "--skip-check",
        "--yes",
    ]);
    for tag in ["v1", "v2", "v3"] {
        // Each version from other config, set as an operator would.
        site.ok(&[
            "reauthorise",
            "acme/feeds",
            "--config",
            &format!("tag={tag}"),
            "--skip-check",
            "--yes",
        ]);
        let out = site.ok(&[
            "run",
            "plugins/artifacts-probe",
            "--feed",
            "publish",
            "--tenant",
            "acme",
            "--installation",
            "feeds",
            "--artifact-versions",
            "2",
        ]);
        assert!(
            out.contains("feed.txt  text/plain; charset=utf-8  4096 bytes"),
            "{out}"
        );
    }
    let listed = site.ok(&["artifacts", "list", "acme/feeds"]);
    assert!(
        listed.contains("feed.txt") && listed.contains("v3 published"),
        "{listed}"
    );
    assert!(listed.contains("(2 kept)"), "{listed}");
    let old = site.ok(&[
        "artifacts",
        "get",
        "acme/feeds",
        "feed.txt",
        "--version",
        "2",
    ]);
    assert!(old.starts_with("v2-000000000\n"), "{old}");
    let out = site.run(&[
        "artifacts",
        "get",
        "acme/feeds",
        "feed.txt",
        "--version",
        "1",
    ]);
    crate::cli::expect(
        &out,
        2,
        "no version 1 of `feed.txt` in acme/feeds (kept: 3, 2)",
    );
    let out = site.run(&["artifacts", "get", "acme/feeds", "../x"]);
    crate::cli::expect(&out, 2, "invalid name");

    site.ok(&["artifacts", "token", "acme/feeds"]);
    site.ok(&["remove", "acme/feeds", "--yes"]);
    let listed = site.ok(&["artifacts", "list", "acme/feeds"]);
    assert!(listed.contains("has published no artifacts"), "{listed}");
    let out = site.run(&["artifacts", "get", "acme/feeds", "feed.txt"]);
    crate::cli::expect(
        &out,
        2,
        "no artifact `feed.txt` in acme/feeds (it has: none)",
    );
    let out = site.run(&["artifacts", "token", "acme/feeds"]);
    crate::cli::expect(&out, 2, "no installation `acme/feeds`");
    let conn = rusqlite::Connection::open(&site.db).unwrap();
    let tokens: i64 = conn
        .query_row("SELECT COUNT(*) FROM feed_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tokens, 0);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn staging_left_by_a_run_killed_mid_write_is_deleted_when_serve_starts() {
    let site = Site::new();
    // A server that accepts the guest's request and never answers: the
    // run is held after it has written its artifact, unpublished.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted, waiting) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (held, _) = listener.accept().unwrap();
        accepted.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_secs(120));
        drop(held);
    });
    let mut run = site
        .cmd(&[
            "run",
            "plugins/artifacts-probe",
            "--feed",
            "publish",
            "--tenant",
            "acme",
            "--installation",
            "feeds",
            "--config",
            "kib=3000",
            "--config",
            &format!("wait_url=http://shop.test:{port}/hold"),
            "--resolve",
            "shop.test=127.0.0.1",
            "--allow-network",
            "127.0.0.0/8",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    waiting
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the run reached its wait");
    run.kill().unwrap();
    run.wait().unwrap();
    let conn = rusqlite::Connection::open(&site.db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT COUNT(*) FROM artifact_versions WHERE version IS NULL"),
        1
    );
    assert!(
        count("SELECT COUNT(*) FROM artifact_chunks") >= 2,
        "its chunks were stored"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM artifact_versions WHERE version IS NOT NULL"),
        0
    );
    // An hour passes (the longest run takes 15 minutes).
    conn.execute(
        "UPDATE artifact_versions SET staged_at = staged_at - 3601",
        [],
    )
    .unwrap();

    let server = site.serve(&[]);
    server.wait_for(&["deleted 1 artifact version(s) left staged by runs that died"]);
    server.stop();
    assert_eq!(count("SELECT COUNT(*) FROM artifact_versions"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM artifact_chunks"), 0);
}

/// The host holds neither the guest's artifact nor its chunks whole: an
/// `airlock run` publishing 64 MiB peaks well under a good run's RSS plus
/// the guest's 16 MiB plus the artifact's 64 MiB.
#[test]
fn publishing_64_mib_keeps_the_hosts_memory_far_under_the_artifact() {
    const GUEST_KIB: u64 = 16 << 10;
    const ALLOWANCE_KIB: u64 = 24 << 10;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    let measure = |args: &[&str]| {
        let mut command = crate::cli::command(args, &db);
        command.env("RUST_BACKTRACE", "1");
        let (code, text, kib) = crate::caps::run_measured(command);
        assert_eq!(code, Some(0), "{text}");
        (kib, text)
    };
    let (baseline, _) = measure(&["run", "plugins/hello", "--feed", "greet"]);
    let (kib, text) = measure(&[
        "run",
        "plugins/artifacts-probe",
        "--feed",
        "publish",
        "--config",
        "kib=65536",
        "--config",
        "chunk_kib=1024",
    ]);
    assert!(text.contains("67108864 bytes"), "{text}");
    println!("peak RSS, KiB: {baseline} hello greet; {kib} publishing 64 MiB");
    assert!(
        kib <= baseline + GUEST_KIB + ALLOWANCE_KIB,
        "publishing 64 MiB peaked at {kib} KiB: over {baseline} + {GUEST_KIB} + {ALLOWANCE_KIB}"
    );
}
