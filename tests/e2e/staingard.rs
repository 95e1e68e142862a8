//! The Staingard connector end to end, against a fake of the **assumed**
//! warranty API (no public one exists: `tests/src/staingard.rs`) over TLS at
//! `api.staingard.example` (`--resolve`, `--trust-root`), the configured
//! endpoint approved as the installation's config origin. The shop's orders
//! are `tests/fixtures/staingard/orders.jsonl`, imported as the platform.
//!
//! Which orders Staingard must hold is derived here from the seed's rule
//! ("the whole order once the first item on it is marked delivered"),
//! independently of the connector.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use airlock_tests::staingard::FakeStaingard;
use airlock_tests::tls::TestCa;

const INSTALLATION: &str = "acme/staingard";
const KEY: &str = "sg-live-key-4f7a9b2c";
const RETAILER: &str = "R-0042";

fn fixture() -> Vec<Value> {
    let path = airlock_tests::repo_root().join("tests/fixtures/staingard/orders.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The orders the seed's rule submits: not cancelled, a live line with
/// cover, a live line delivered.
fn due(orders: &[Value]) -> BTreeSet<String> {
    orders
        .iter()
        .filter(|o| o["status"] != "cancelled")
        .filter(|o| {
            let lines: Vec<&Value> = o["lines"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| l["cancelled"] != true)
                .collect();
            lines.iter().any(|l| l["warranty"].is_object())
                && lines.iter().any(|l| l["delivered"] == true)
        })
        .map(|o| o["number"].as_str().unwrap().to_string())
        .collect()
}

struct Shop {
    dir: tempfile::TempDir,
    db: PathBuf,
    sg: FakeStaingard,
    net: Vec<String>,
}

impl Shop {
    /// The fake, the fixture orders but `leave_out` imported, the
    /// connector installed live.
    async fn new(leave_out: &[&str]) -> Self {
        let ca = TestCa::for_names(&["api.staingard.example"]);
        let sg = FakeStaingard::start(KEY, RETAILER, &ca).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        let key = dir.path().join("master.key");
        let net = crate::support::fake_net(
            dir.path(),
            &ca.ca_pem,
            &[("api.staingard.example", sg.addr.port())],
            &[],
        );
        let shop = Self { dir, db, sg, net };
        shop.ok(&["keygen", key.to_str().unwrap()], false).await;
        shop.ok(&["tenant", "add", "acme"], false).await;
        let orders: Vec<Value> = fixture()
            .into_iter()
            .filter(|o| !leave_out.contains(&o["id"].as_str().unwrap()))
            .collect();
        shop.import(&orders).await;
        let secrets = shop.key_file("secrets.toml", KEY);
        shop.ok(
            &[
                "install",
                "plugins/staingard",
                "--tenant",
                "acme",
                "--mode",
                "live",
                "--config=endpoint=https://api.staingard.example/v1",
                &format!("--config=retailer_id={RETAILER}"),
                &secrets,
                "--schedule=warranties=0 0 0 1 1 *",
                "--yes",
            ],
            true,
        )
        .await;
        shop
    }

    fn key_file(&self, name: &str, key: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("api_key = \"{key}\"\n")).unwrap();
        format!("--config-file={}", path.display())
    }

    async fn import(&self, orders: &[Value]) {
        let file = self.dir.path().join("orders.jsonl");
        let text: String = orders.iter().map(|o| format!("{o}\n")).collect();
        std::fs::write(&file, text).unwrap();
        self.ok(
            &[
                "records",
                "import",
                "acme",
                "orders",
                file.to_str().unwrap(),
            ],
            false,
        )
        .await;
    }

    async fn cli(&self, args: &[&str], net: bool) -> Output {
        crate::cli::airlock_off_worker(&self.db, &self.net, args, net).await
    }

    async fn ok(&self, args: &[&str], net: bool) -> String {
        crate::cli::succeeded(args, &self.cli(args, net).await)
    }

    async fn run(&self, mode: &str) -> (Option<i32>, String) {
        let args = [
            "run",
            "plugins/staingard",
            "--feed",
            "warranties",
            "--tenant",
            "acme",
            "--installation",
            "staingard",
            "--mode",
            mode,
        ];
        let out = self.cli(&args, true).await;
        (out.status.code(), crate::cli::text(&out))
    }

    async fn run_ok(&self) -> String {
        let (code, out) = self.run("live").await;
        assert_eq!(code, Some(0), "{out}");
        out
    }

    async fn show(&self, id: &str) -> String {
        self.ok(&["records", "show", "acme", "orders", id], false)
            .await
    }

    async fn pending(&self) -> BTreeSet<String> {
        let out = self
            .ok(
                &[
                    "records",
                    "list",
                    "acme",
                    "orders",
                    "--pending-for",
                    "staingard",
                    "--json",
                ],
                false,
            )
            .await;
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
        rows.iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    }

    async fn serve(&self) -> crate::serve_cli::Server {
        let mut args: Vec<String> = crate::serve_cli::QUICK_SERVE
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(self.net.iter().cloned());
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::serve_cli::Server::start(crate::cli::command(&args, &db))
        })
        .await
        .unwrap()
    }

    /// The API key, as written, percent- or base64-encoded, is nowhere:
    /// not in `text`, the egress log, the database or its WAL.
    async fn assert_key_nowhere(&self, text: &str) {
        use base64::Engine as _;
        let log = self.ok(&["egress", "log"], false).await;
        let mut files = Vec::new();
        for suffix in ["", "-wal"] {
            files.push(std::fs::read(format!("{}{suffix}", self.db.display())).unwrap_or_default());
        }
        let encoded: String = url::form_urlencoded::byte_serialize(KEY.as_bytes()).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(KEY);
        for form in [KEY.to_string(), encoded, b64] {
            assert!(!text.contains(&form), "the key in the output");
            assert!(!log.contains(&form), "the key in the egress log");
            for f in &files {
                assert!(
                    !f.windows(form.len()).any(|w| w == form.as_bytes()),
                    "the key in the database"
                );
            }
        }
    }
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_are_submitted_once_a_line_is_delivered_and_the_warranty_number_noted() {
    let shop = Shop::new(&["SG1013"]).await;
    // SG1008 was registered before (by the shop's old system).
    shop.sg.preload("SG1008", "SG-OLD-0008");
    let orders: Vec<Value> = fixture()
        .into_iter()
        .filter(|o| o["id"] != "SG1013")
        .collect();
    let want = due(&orders);
    assert_eq!(want.len(), 8, "the fixture: SG1001–SG1008");

    let out = shop.run_ok().await;
    assert!(out.contains("outcome: OK"), "{out}");
    assert!(out.contains("7 orders submitted"), "{out}");
    assert!(
        out.contains("1 submitted before (the first warranty number kept)"),
        "{out}"
    );
    let held = shop.sg.warranties();
    assert_eq!(held.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(shop.sg.posts().len(), 8, "each order sent once");

    // The whole order, delivered on its first line's date, cover per line.
    let s2 = shop.sg.submission("SG1002").unwrap();
    assert_eq!(
        s2["items"].as_array().unwrap().len(),
        2,
        "both lines, one not delivered yet"
    );
    assert_eq!(s2["retailerId"], RETAILER);
    let s3 = shop.sg.submission("SG1003").unwrap();
    assert_eq!(
        s3["items"].as_array().unwrap().len(),
        1,
        "the cancelled line left out"
    );
    assert_eq!(s3["deliveryDate"], "2026-11-13T14:00:00Z");
    let o3 = orders.iter().find(|o| o["id"] == "SG1003").unwrap();
    let cover = &o3["lines"][0]["warranty"];
    assert_eq!(s3["items"][0]["coverType"], cover["cover_type"]);
    assert_eq!(s3["items"][0]["planCode"], cover["plan_code"]);
    let price: f64 = cover["price"].as_str().unwrap().parse().unwrap();
    assert_eq!(s3["items"][0]["planPrice"], price);

    // The warranty number is a note on the order (the first one for SG1008).
    for (reference, warranty) in &held {
        let shown = shop.show(reference).await;
        assert_eq!(
            count(&shown, &format!("note          {warranty}")),
            1,
            "{shown}"
        );
    }
    assert!(shop.show("SG1008").await.contains("SG-OLD-0008"));
    assert_eq!(
        shop.pending().await,
        BTreeSet::from(["SG1009".to_string(), "SG1010".to_string()]),
        "only orders waiting for a delivery stay pending"
    );

    // A second run sends nothing and notes nothing twice.
    let out = shop.run_ok().await;
    assert!(out.contains("outcome: INFO"), "{out}");
    assert_eq!(shop.sg.posts().len(), 8);
    let w1 = &held["SG1001"];
    let shown = shop.show("SG1001").await;
    assert_eq!(count(&shown, &format!("note          {w1}")), 1, "{shown}");

    // SG1009 delivered: submitted alone. SG1001 changed: no update is sent.
    let mut changed: Vec<Value> = orders
        .iter()
        .filter(|o| o["id"] == "SG1009" || o["id"] == "SG1001")
        .cloned()
        .collect();
    for o in &mut changed {
        o["lines"][0]["delivered"] = Value::Bool(true);
        o["lines"][0]["delivered_at"] = Value::String("2026-11-24T09:00:00Z".into());
        o["notes"] = Value::String("updated".into());
    }
    shop.import(&changed).await;
    let out = shop.run_ok().await;
    assert!(out.contains("1 orders submitted"), "{out}");
    assert!(
        out.contains("1 submitted earlier (no update is sent)"),
        "{out}"
    );
    assert_eq!(shop.sg.posts().len(), 9);
    assert!(shop.sg.warranties().contains_key("SG1009"));
    assert!(
        shop.sg
            .seen()
            .iter()
            .all(|s| s.method == "POST" || s.method == "GET"),
        "no update or cancel"
    );
    shop.assert_key_nowhere(&out).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_upload_flags_the_order_awaiting_action_with_a_notification_and_each_severity() {
    let shop = Shop::new(&[]).await;

    // retry: Staingard unavailable; nothing created.
    shop.sg.inject(&[503]);
    let (code, out) = shop.run("live").await;
    assert_eq!(code, Some(3), "exit 3 = retry:\n{out}");
    assert_eq!(shop.sg.created(), 0);

    // error → notification: SG1013 has no postcode; Staingard refuses it.
    let server = shop.serve().await;
    shop.ok(&["run-now", INSTALLATION, "warranties"], false)
        .await;
    tokio::task::block_in_place(|| {
        server.wait_for(&["ERROR", "acme/staingard warranties", "notification raised"])
    });
    drop(server);
    let notes = shop.ok(&["notifications", "list"], false).await;
    assert!(notes.contains("customer.address.postcode"), "{notes}");
    assert!(notes.contains("awaiting-action"), "{notes}");
    assert!(!shop.sg.warranties().contains_key("SG1013"));
    assert_eq!(shop.sg.warranties().len(), 8, "the others went");

    // The next run flags it (the host keeps no annotation of an error run)
    // and notes the others' warranty numbers; SG1013 is not sent again.
    let posts = shop.sg.posts().len();
    let out = shop.run_ok().await;
    assert!(out.contains("newly flagged awaiting-action"), "{out}");
    assert_eq!(
        shop.sg.posts().len(),
        posts,
        "an unchanged refused order is not resent"
    );
    let shown = shop.show("SG1013").await;
    assert!(shown.contains("flag          awaiting-action"), "{shown}");
    let w = &shop.sg.warranties()["SG1004"];
    assert!(shop.show("SG1004").await.contains(w.as_str()));

    // info: nothing to do.
    let out = shop.run_ok().await;
    assert!(out.contains("outcome: INFO"), "{out}");
    assert!(out.contains("1 awaiting-action"), "{out}");

    // The order fixed in the shop: submitted, the flag cleared.
    let mut fixed: Vec<Value> = fixture()
        .into_iter()
        .filter(|o| o["id"] == "SG1013")
        .collect();
    fixed[0]["shipping_address"]["postcode"] = Value::String("LS2 7EW".into());
    shop.import(&fixed).await;
    let out = shop.run_ok().await;
    assert!(out.contains("1 orders submitted"), "{out}");
    let shown = shop.show("SG1013").await;
    assert!(!shown.contains("flag          awaiting-action"), "{shown}");
    assert!(
        shown.contains(shop.sg.warranties()["SG1013"].as_str()),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_after_staingard_answered_reuses_the_first_warranty_number() {
    let shop = Shop::new(&["SG1013"]).await;
    shop.sg.stall_after(3);
    let server = shop.serve().await;
    shop.ok(&["run-now", INSTALLATION, "warranties"], false)
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while shop.sg.created() < 4 {
        assert!(std::time::Instant::now() < deadline, "{}", server.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.signal("-KILL");
    drop(server);
    shop.sg.stall_after(usize::MAX / 2);
    let server = shop.serve().await;
    tokio::task::block_in_place(|| server.wait_for(&["OK", "acme/staingard warranties"]));
    assert!(
        server.output().contains("INTERRUPTED"),
        "{}",
        server.output()
    );
    drop(server);
    let held = shop.sg.warranties();
    assert_eq!(held.len(), 8, "each order once");
    let duplicates: Vec<_> = shop
        .sg
        .posts()
        .into_iter()
        .filter(|p| p.status == 409)
        .collect();
    assert_eq!(
        duplicates.len(),
        1,
        "the unheard submission was sent again and answered 409"
    );
    let reference: Value = serde_json::from_str(&duplicates[0].body).unwrap();
    let reference = reference["orderReference"].as_str().unwrap();
    let shown = shop.show(reference).await;
    assert_eq!(
        count(&shown, &format!("note          {}", held[reference])),
        1,
        "{shown}"
    );
    let mut notes: BTreeMap<String, usize> = BTreeMap::new();
    for r in held.keys() {
        notes.insert(r.clone(), count(&shop.show(r).await, "note          SG-"));
    }
    assert!(notes.values().all(|n| *n == 1), "one note each: {notes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn test_mode_submits_nothing() {
    let shop = Shop::new(&[]).await;
    let (code, out) = shop.run("test").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("outcome: INFO"), "{out}");
    assert!(
        out.contains("test mode: nothing sent; would submit 9 orders"),
        "{out}"
    );
    assert!(shop.sg.posts().is_empty(), "nothing reached Staingard");
    assert!(!shop.show("SG1001").await.contains("annotations of"));
    assert_eq!(shop.pending().await.len(), 14, "nothing acknowledged");
}

#[tokio::test(flavor = "multi_thread")]
async fn reauthorisation_rechecks_the_new_key_and_refuses_a_wrong_one() {
    let shop = Shop::new(&["SG1013"]).await;
    shop.sg.set_api_key("sg-rotated-key-88");
    let (code, out) = shop.run("live").await;
    assert_eq!(code, Some(4), "exit 4 = error:\n{out}");
    assert!(out.contains("Staingard refused the API key"), "{out}");
    assert!(out.contains("airlock reauthorise acme/staingard"), "{out}");

    let wrong = shop.key_file("wrong.toml", "sg-not-the-key");
    let out = shop
        .cli(&["reauthorise", INSTALLATION, &wrong, "--yes"], true)
        .await;
    let text = crate::cli::text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("test connection failed"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(!text.contains("sg-not-the-key"), "{text}");

    let right = shop.key_file("right.toml", "sg-rotated-key-88");
    let text = shop
        .ok(&["reauthorise", INSTALLATION, &right, "--yes"], true)
        .await;
    assert!(text.contains("test connection: ok"), "{text}");
    let out = shop.run_ok().await;
    assert!(out.contains("8 orders submitted"), "{out}");
}
