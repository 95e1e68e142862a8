//! The Instagram connector (JavaScript) end to end: `plugins/instagram`
//! built from source with componentize-js, installed on a real SQLite
//! file, run with `airlock run` and `serve` against a fake of
//! `graph.instagram.com` over TLS (`--resolve`, `--trust-root`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use airlock_tests::instagram::{FakeInstagram, NAME};
use airlock_tests::tls::TestCa;

use crate::serve_cli::Server;

const DAY: i64 = 86_400;
const TOKEN: &str = "IGAAconfigured0123456789abcdefLONGLIVED";

/// `n` media, newest first; every third a video, captions needing escapes.
fn media(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let video = i % 3 == 2;
            json!({
                "id": format!("1790000000{i:05}"),
                "caption": format!("Sofa <{i}> & cushions \"new\""),
                "media_type": if video { "VIDEO" } else { "IMAGE" },
                "media_url": format!("https://scontent.cdninstagram.com/m{i}.{}", if video { "mp4" } else { "jpg" }),
                "thumbnail_url": if video { json!(format!("https://scontent.cdninstagram.com/t{i}.jpg")) } else { Value::Null },
                "permalink": format!("https://www.instagram.com/p/P{i}/"),
                "timestamp": "2026-11-20T10:00:00+0000",
            })
        })
        .collect()
}

struct Shop {
    dir: tempfile::TempDir,
    db: PathBuf,
    ig: FakeInstagram,
    net: Vec<String>,
    outputs: std::sync::Mutex<Vec<String>>,
}

impl Shop {
    /// The connector installed live with a token `age_days` old.
    async fn new(age_days: i64, extra: &[&str]) -> Self {
        let ca = TestCa::for_names(&[NAME]);
        let ig = FakeInstagram::start("acme_shop", &ca).await.unwrap();
        ig.add_token(TOKEN, age_days * DAY);
        ig.set_media(media(160));
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        let key = dir.path().join("master.key");
        let secrets = dir.path().join("secrets.toml");
        std::fs::write(&secrets, format!("access_token = \"{TOKEN}\"\n")).unwrap();
        let net = crate::support::fake_net(
            dir.path(),
            &ca.ca_pem,
            &[(NAME, ig.addr.port())],
            &[("instagram.com", "Instagram (this operator)")],
        );
        let shop = Self {
            dir,
            db,
            ig,
            net,
            outputs: Default::default(),
        };
        shop.ok(&["keygen", key.to_str().unwrap()], false).await;
        shop.ok(&["tenant", "add", "acme"], false).await;
        let issued = (chrono::Utc::now() - chrono::Duration::days(age_days))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut install = vec![
            "install".to_string(),
            "plugins/instagram".into(),
            "--tenant".into(),
            "acme".into(),
            "--mode".into(),
            "live".into(),
            "--yes".into(),
            format!("--config-file={}", secrets.display()),
            format!("--config=token_issued_at={issued}"),
            "--config=max_items=150".into(),
        ];
        install.extend(extra.iter().map(|e| format!("--config={e}")));
        let install: Vec<&str> = install.iter().map(String::as_str).collect();
        shop.ok(&install, true).await;
        shop
    }

    fn command(&self, args: &[&str], net: bool) -> std::process::Command {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if net {
            all.extend(self.net.iter().cloned());
        }
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut cmd = crate::cli::command(&all, &self.db);
        cmd.stdin(std::process::Stdio::null());
        cmd
    }

    async fn cli(&self, args: &[&str], net: bool) -> (Option<i32>, String) {
        let out = crate::cli::airlock_off_worker(&self.db, &self.net, args, net).await;
        let text = crate::cli::text(&out);
        self.outputs.lock().unwrap().push(text.clone());
        (out.status.code(), text)
    }

    async fn ok(&self, args: &[&str], net: bool) -> String {
        let (code, text) = self.cli(args, net).await;
        assert_eq!(code, Some(0), "airlock {args:?}:\n{text}");
        text
    }

    async fn run_in(&self, feed: &str, mode: &str) -> (Option<i32>, String) {
        let args = [
            "run",
            "plugins/instagram",
            "--feed",
            feed,
            "--tenant",
            "acme",
            "--installation",
            "instagram",
            "--mode",
            mode,
        ];
        self.cli(&args, true).await
    }

    async fn run(&self, feed: &str) -> (Option<i32>, String) {
        self.run_in(feed, "live").await
    }

    async fn artifact(&self, name: &str) -> String {
        self.ok(&["artifacts", "get", "acme/instagram", name], false)
            .await
    }

    fn serve(&self) -> Server {
        Server::start(self.command(&crate::serve_cli::QUICK_SERVE, true))
    }

    /// No token is in any command's output or the egress log, nor in the
    /// database: the configured one is a sealed secret, the refreshed ones
    /// are kept under a `sealed/` storage key, sealed by the host.
    async fn assert_no_token_leaked(&self) {
        let audit = self.ok(&["egress", "log", "--tenant", "acme"], false).await;
        let outputs = self.outputs.lock().unwrap().join("\n");
        for token in self.ig.issued_tokens() {
            assert!(!audit.contains(&token), "a token in the egress log");
            assert!(!outputs.contains(&token), "a token in the output");
        }
        let mut db = std::fs::read(&self.db).unwrap();
        let wal = PathBuf::from(format!("{}-wal", self.db.display()));
        if wal.exists() {
            db.extend(std::fs::read(wal).unwrap());
        }
        assert!(
            !db.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "the configured token is sealed"
        );
        for token in self.ig.issued_tokens() {
            assert!(
                !db.windows(token.len()).any(|w| w == token.as_bytes()),
                "a refreshed token is in the database unsealed"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instagram_refreshes_the_token_when_due_and_publishes_the_feed_once() {
    // 55 days old: 5 left, inside the 10-day margin.
    let shop = Shop::new(55, &[]).await;
    let (code, out) = shop.run("media").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("outcome: OK"), "{out}");
    assert!(out.contains("token refreshed, valid until"), "{out}");
    assert_eq!(shop.ig.refreshes(), 1);
    let seen = shop.ig.seen();
    assert_eq!(seen[0].path, "/v21.0/me", "install's connection test");
    assert_eq!(
        seen[1].path, "/refresh_access_token",
        "then the run's refresh"
    );
    assert_eq!(seen[1].token, TOKEN);
    let reads: Vec<_> = seen
        .iter()
        .filter(|s| s.path.ends_with("/me/media"))
        .collect();
    assert_eq!(reads.len(), 2, "100 + 50 over two pages");
    assert!(
        reads.iter().all(|s| s.token != TOKEN),
        "the refreshed token is used"
    );

    let feed: Value = serde_json::from_str(&shop.artifact("instagram-feed.json").await).unwrap();
    assert_eq!(feed["username"], "acme_shop");
    let items = feed["items"].as_array().unwrap();
    assert_eq!(items.len(), 150);
    assert_eq!(items[0]["id"], "179000000000000");
    assert_eq!(
        items[2]["image_url"],
        "https://scontent.cdninstagram.com/t2.jpg"
    );
    let html = shop.artifact("instagram-feed.html").await;
    assert_eq!(html.matches("<li ").count(), 150);
    assert!(
        html.contains("alt=\"Sofa &lt;0&gt; &amp; cushions &quot;new&quot;\""),
        "{html}"
    );

    // A second run: the token is fresh, the feed unchanged.
    let (code, out) = shop.run("media").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("outcome: INFO"), "{out}");
    assert!(out.contains("feed unchanged"), "{out}");
    assert_eq!(shop.ig.refreshes(), 1, "not refreshed again");
    let (code, out) = shop.run("token").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("not due for a refresh"), "{out}");
    shop.assert_no_token_leaked().await;
}

/// `serve` killed while the run reads the media, after the token was
/// refreshed: the retried run uses the stored new token (no second
/// refresh) and publishes the feed once.
#[tokio::test(flavor = "multi_thread")]
async fn a_media_run_killed_mid_read_and_retried_refreshes_once_and_publishes_once() {
    let shop = Shop::new(55, &[]).await;
    shop.ig.hold_media(true);
    let server = tokio::task::block_in_place(|| shop.serve());
    shop.ok(&["run-now", "acme/instagram", "media"], false)
        .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !shop.ig.seen().iter().any(|s| s.status == 0) {
        assert!(
            Instant::now() < deadline,
            "never read:\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.signal("-KILL");
    drop(server);
    shop.ig.hold_media(false);
    let server = tokio::task::block_in_place(|| shop.serve());
    tokio::task::block_in_place(|| server.wait_for(&["OK", "acme/instagram media"]));
    assert!(
        server.output().contains("INTERRUPTED"),
        "{}",
        server.output()
    );
    drop(server);
    assert_eq!(
        shop.ig.refreshes(),
        1,
        "the refreshed token survived the kill"
    );
    let feed: Value = serde_json::from_str(&shop.artifact("instagram-feed.json").await).unwrap();
    let ids: std::collections::BTreeSet<&str> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 150, "each media once");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retry_a_refused_token_is_an_error_with_a_notification_and_test_mode_refreshes_nothing()
 {
    let shop = Shop::new(55, &[]).await;
    // test mode: the refresh is due but not sent; the media are read.
    let (code, out) = shop.run_in("media", "test").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("token refresh due: not sent in test mode"),
        "{out}"
    );
    assert_eq!(shop.ig.refreshes(), 0);
    // retry: Instagram throttles the app (code 4); the retry waits
    // throttle_wait_seconds.
    shop.ig.throttle(4, 1);
    let (code, out) = shop.run("media").await;
    assert_eq!(code, Some(3), "exit 3 = retry:\n{out}");
    assert!(out.contains("Instagram throttled the app"), "{out}");
    assert!(out.contains("900"), "{out}");
    // ok, then info.
    let (code, out) = shop.run("media").await;
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = shop.run("media").await;
    assert!(code == Some(0) && out.contains("outcome: INFO"), "{out}");
    // error: the token is revoked (190).
    shop.ig.revoke_all();
    let (code, out) = shop.run("media").await;
    assert_eq!(code, Some(4), "exit 4 = error:\n{out}");
    assert!(out.contains("code 190"), "{out}");
    assert!(
        out.contains("airlock reauthorise acme/instagram --config-file FILE"),
        "{out}"
    );
    // Under serve, the error raises a notification.
    let server = tokio::task::block_in_place(|| shop.serve());
    shop.ok(&["run-now", "acme/instagram", "media"], false)
        .await;
    tokio::task::block_in_place(|| server.wait_for(&["ERROR", "acme/instagram media"]));
    drop(server);
    let open = shop.ok(&["notifications", "list"], false).await;
    assert!(open.contains("acme/instagram media"), "{open}");
    assert!(open.contains("code 190"), "{open}");
    shop.assert_no_token_leaked().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reauthorisation_with_a_new_token_is_checked_and_replaces_the_stored_one() {
    let shop = Shop::new(55, &[]).await;
    let (code, out) = shop.run("media").await;
    assert_eq!(code, Some(0), "{out}");
    // A token Instagram does not know fails "Test connection" (190).
    let bad = shop.dir.path().join("bad.toml");
    std::fs::write(&bad, "access_token = \"IGAAnot-a-real-token\"\n").unwrap();
    let (code, out) = shop
        .cli(
            &[
                "reauthorise",
                "acme/instagram",
                &format!("--config-file={}", bad.display()),
                "--yes",
            ],
            true,
        )
        .await;
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("code 190"), "{out}");
    // A new long-lived token is checked, saved, and replaces the stored
    // (refreshed) one.
    let fresh = "IGAAsecond0123456789abcdefLONGLIVED";
    shop.ig.add_token(fresh, 2 * DAY);
    let good = shop.dir.path().join("good.toml");
    std::fs::write(&good, format!("access_token = \"{fresh}\"\n")).unwrap();
    let issued = (chrono::Utc::now() - chrono::Duration::days(2))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    shop.ok(
        &[
            "reauthorise",
            "acme/instagram",
            &format!("--config-file={}", good.display()),
            &format!("--config=token_issued_at={issued}"),
            "--yes",
        ],
        true,
    )
    .await;
    shop.ig.set_media(media(3));
    let (code, out) = shop.run("media").await;
    assert_eq!(code, Some(0), "{out}");
    let last = shop.ig.seen().last().cloned().unwrap();
    assert_eq!(last.token, fresh, "the new token is used");
    assert_eq!(shop.ig.refreshes(), 1, "2 days old: not due");
    let feed: Value = serde_json::from_str(&shop.artifact("instagram-feed.json").await).unwrap();
    assert_eq!(feed["items"].as_array().unwrap().len(), 3);
}
