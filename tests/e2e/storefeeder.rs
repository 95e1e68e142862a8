//! The StoreFeeder connector end to end: a fake of StoreFeeder's REST API
//! over TLS at its real name (`--resolve rest.storefeeder.com=…`,
//! `--trust-root`) holding the fixture orders and listings
//! (`tests/fixtures/storefeeder/`), the catalogue fixture
//! (`tests/fixtures/catalog/`) imported as the platform, the connector
//! installed live (Test connection in live mode: StoreFeeder's token is a
//! POST), its feeds run by `airlock run` and `airlock serve`.
//!
//! What StoreFeeder must hold afterwards is derived from the fixtures here,
//! independently of the connector.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use airlock_tests::storefeeder::{FakeStoreFeeder, StoreFeederSettings};
use airlock_tests::tls::TestCa;

const INSTALLATION: &str = "acme/storefeeder";

fn fixture_json(path: &str) -> Value {
    let path = airlock_tests::repo_root().join("tests/fixtures").join(path);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn fixture_lines(path: &str) -> Vec<Value> {
    let path = airlock_tests::repo_root().join("tests/fixtures").join(path);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The orders StoreFeeder offers for download: ready to pick and not
/// downloaded.
fn ready_orders() -> BTreeSet<u64> {
    fixture_json("storefeeder/orders.json")
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["OrderStatus"] == "CompleteReadyToPick" && o["Downloaded"] == false)
        .map(|o| o["OrderNumber"].as_u64().unwrap())
        .collect()
}

/// The fake, a database with the catalogue imported and the connector
/// installed live, and the options every command needs.
struct Shop {
    dir: tempfile::TempDir,
    db: PathBuf,
    sf: FakeStoreFeeder,
    net: Vec<String>,
}

impl Shop {
    async fn new() -> Self {
        let ca = TestCa::for_names(&["rest.storefeeder.com"]);
        let sf = FakeStoreFeeder::start(StoreFeederSettings::default(), &ca)
            .await
            .unwrap();
        sf.add_orders(fixture_json("storefeeder/orders.json").as_array().unwrap());
        sf.add_products(
            fixture_json("storefeeder/listings.json")
                .as_array()
                .unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        let key = dir.path().join("master.key");
        let net = crate::support::fake_net(
            dir.path(),
            &ca.ca_pem,
            &[("rest.storefeeder.com", sf.addr.port())],
            &[("storefeeder.com", "StoreFeeder (this operator)")],
        );
        let shop = Self { dir, db, sf, net };
        let secrets = shop.secrets_file("secrets.toml", &StoreFeederSettings::default());
        shop.ok(&["keygen", key.to_str().unwrap()], false).await;
        shop.ok(&["tenant", "add", "acme"], false).await;
        for c in ["products", "stock"] {
            let file = airlock_tests::repo_root().join(format!("tests/fixtures/catalog/{c}.jsonl"));
            shop.ok(
                &["records", "import", "acme", c, file.to_str().unwrap()],
                false,
            )
            .await;
        }
        let secrets = format!("--config-file={}", secrets.display());
        // Schedules far off: every run here is asked for.
        shop.ok(
            &[
                "install",
                "plugins/storefeeder",
                "--tenant",
                "acme",
                "--mode",
                "live",
                "--config=username=api@shop.example",
                "--config=conflict_wait_seconds=1",
                &secrets,
                "--schedule=orders=0 0 0 1 1 *",
                "--schedule=despatches=0 0 0 1 1 *",
                "--schedule=listings=0 0 0 1 1 *",
                "--check-mode",
                "live",
                "--yes",
            ],
            true,
        )
        .await;
        shop
    }

    /// A config file with the secrets of `s` (mode 0600 is not needed in a
    /// temporary directory of the test's own).
    fn secrets_file(&self, name: &str, s: &StoreFeederSettings) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "password = \"{}\"\napi_key = \"{}\"\n",
                s.password, s.api_key
            ),
        )
        .unwrap();
        path
    }

    async fn cli(&self, args: &[&str], net: bool) -> Output {
        crate::cli::airlock_off_worker(&self.db, &self.net, args, net).await
    }

    async fn ok(&self, args: &[&str], net: bool) -> String {
        crate::cli::succeeded(args, &self.cli(args, net).await)
    }

    /// One `airlock run` of `feed` in `mode`: its exit code and output.
    async fn run(&self, feed: &str, mode: &str) -> (Option<i32>, String) {
        let args = [
            "run",
            "plugins/storefeeder",
            "--feed",
            feed,
            "--tenant",
            "acme",
            "--installation",
            "storefeeder",
            "--mode",
            mode,
        ];
        let out = self.cli(&args, true).await;
        (out.status.code(), crate::cli::text(&out))
    }

    async fn run_ok(&self, feed: &str) -> String {
        let (code, out) = self.run(feed, "live").await;
        assert_eq!(code, Some(0), "{out}");
        out
    }

    async fn records(&self, collection: &str, pending: bool) -> Vec<Value> {
        let mut args = vec![
            "records", "list", "acme", collection, "--json", "--limit", "1000",
        ];
        if pending {
            args.extend(["--pending-for", "storefeeder"]);
        }
        serde_json::from_str(&self.ok(&args, false).await).unwrap()
    }

    async fn record(&self, collection: &str, id: &str) -> String {
        self.ok(&["records", "show", "acme", collection, id], false)
            .await
    }

    async fn import(&self, collection: &str, file: &str) {
        let file = airlock_tests::repo_root().join("tests/fixtures").join(file);
        self.ok(
            &[
                "records",
                "import",
                "acme",
                collection,
                file.to_str().unwrap(),
            ],
            false,
        )
        .await;
    }

    /// `airlock serve` on the database, retrying soon after a failure.
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

    /// No secret, token or its encodings in `text`, the database or the
    /// egress log.
    async fn assert_no_secret_anywhere(&self, text: &str) {
        let log = self.ok(&["egress", "log"], false).await;
        let mut files = Vec::new();
        for suffix in ["", "-wal"] {
            let path = PathBuf::from(format!("{}{suffix}", self.db.display()));
            files.push(std::fs::read(&path).unwrap_or_default());
        }
        let s = StoreFeederSettings::default();
        let mut secrets = vec![s.password.clone(), s.api_key.clone()];
        secrets.extend(self.sf.tokens());
        for secret in secrets {
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
            for form in [secret.clone(), encoded, b64] {
                assert!(!text.contains(&form), "a secret in the output");
                assert!(!log.contains(&form), "a secret in the egress log");
                for f in &files {
                    assert!(
                        !f.windows(form.len()).any(|w| w == form.as_bytes()),
                        "a secret in the database file"
                    );
                }
            }
        }
    }
}

/// The calls to `path` that changed something, with their JSON bodies.
fn bodies(sf: &FakeStoreFeeder, path: &str) -> Vec<Vec<Value>> {
    sf.writes()
        .iter()
        .filter(|s| s.path == path && s.status == 200)
        .map(|s| serde_json::from_str::<Vec<Value>>(&s.body).unwrap())
        .collect()
}

fn numbers_in(calls: &[Vec<Value>]) -> Vec<u64> {
    let mut v: Vec<u64> = calls
        .iter()
        .flatten()
        .map(|i| i["OrderNumber"].as_u64().unwrap())
        .collect();
    v.sort();
    v
}

fn versions(records: &[Value]) -> BTreeMap<String, u64> {
    records
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["version"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_import_once_and_a_second_run_changes_nothing() {
    let shop = Shop::new().await;
    let ready = ready_orders();
    assert_eq!(
        ready.len(),
        120,
        "the fixture: 130 orders, 120 ready and not downloaded"
    );
    let out = shop.run_ok("orders").await;
    assert!(out.contains("outcome: OK"), "{out}");
    assert!(
        out.contains("StoreFeeder linked as api@shop.example"),
        "link status shown: {out}"
    );
    assert!(out.contains("120 orders imported"), "{out}");

    // Every ready order is an orders record, and only those.
    let records = shop.records("orders", false).await;
    let ids: BTreeSet<String> = records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = ready.iter().map(|n| format!("storefeeder-{n}")).collect();
    assert_eq!(ids, want);
    let shown = shop.record("orders", "storefeeder-5003").await;
    assert!(
        shown.contains("\"channel\": \"ebay\""),
        "channel from StoreFeeder's: {shown}"
    );
    assert!(
        shown.contains("\"channel_order_ref\": \"12-05003-00001\""),
        "{shown}"
    );
    assert!(
        shown.contains("\"total\": \"1303.95\""),
        "amounts kept exact: {shown}"
    );
    let amazon = shop.record("orders", "storefeeder-5001").await;
    assert!(amazon.contains("\"channel\": \"amazon\""), "{amazon}");

    // StoreFeeder: every imported order marked downloaded, at most 50 a call,
    // each once; the orders awaiting payment left alone.
    let marks = bodies(&shop.sf, "/orders/mark-orders-as-downloaded");
    assert!(marks.iter().all(|m| m.len() <= 50), "batches of at most 50");
    assert_eq!(marks.len(), 3, "120 orders: 50 + 50 + 20");
    assert_eq!(
        numbers_in(&marks),
        ready.iter().copied().collect::<Vec<_>>()
    );
    let downloaded = shop.sf.downloaded();
    assert!(ready.iter().all(|n| downloaded.contains(n)));
    assert!(
        (5121..=5126).all(|n| !downloaded.contains(&n)),
        "awaiting payment: not touched"
    );
    let queries: Vec<_> = shop
        .sf
        .seen()
        .into_iter()
        .filter(|s| s.path == "/orders")
        .collect();
    assert!(!queries.is_empty());
    for q in &queries {
        assert!(q.query.contains("Downloaded=false"), "{}", q.query);
        assert!(
            q.query.contains("OrderStatus=CompleteReadyToPick"),
            "{}",
            q.query
        );
    }

    // A second run: nothing new at StoreFeeder, nothing written.
    let writes = shop.sf.writes().len();
    let before = versions(&records);
    let out = shop.run_ok("orders").await;
    assert!(out.contains("outcome: INFO"), "{out}");
    assert!(out.contains("0 orders imported"), "{out}");
    assert_eq!(
        shop.sf.writes().len(),
        writes,
        "a second run changes nothing at StoreFeeder"
    );
    assert_eq!(
        versions(&shop.records("orders", false).await),
        before,
        "nor in the records"
    );
    shop.assert_no_secret_anywhere(&out).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn despatches_and_listings_push_once_to_existing_listings_only() {
    let shop = Shop::new().await;
    shop.run_ok("orders").await;
    shop.import("shipments", "storefeeder/shipments.jsonl")
        .await;

    let out = shop.run_ok("despatches").await;
    assert!(out.contains("70 orders despatched"), "{out}");
    assert!(
        out.contains("1 despatched before"),
        "the second parcel of 5001: {out}"
    );
    assert!(
        out.contains("3 shipments of orders from other channels left alone"),
        "{out}"
    );
    let calls = bodies(&shop.sf, "/orders/despatch-orders");
    assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![50, 20]);
    assert_eq!(
        numbers_in(&calls),
        (5001..=5070).collect::<Vec<_>>(),
        "each order once"
    );
    for n in 5001..=5070u64 {
        let o = shop.sf.order(n).unwrap();
        assert_eq!(o["OrderStatus"], "Despatched");
        assert_eq!(o["ShippingTrackingNumber"], format!("TRK{n}GB"));
        let via = if n % 2 == 1 { "Royal Mail" } else { "DPD" };
        assert_eq!(o["ShippedVia"], via);
    }
    assert!(
        shop.records("shipments", true).await.is_empty(),
        "every shipment acknowledged"
    );
    let shown = shop.record("orders", "storefeeder-5070").await;
    assert!(
        shown.contains("note          despatched at StoreFeeder"),
        "{shown}"
    );

    // Stock (absolute, the shop's totals) and prices, to listed SKUs only.
    let listed = shop.sf.skus();
    let out = shop.run_ok("listings").await;
    let mut want_stock = BTreeMap::new();
    for s in fixture_lines("catalog/stock.jsonl") {
        let sku = s["sku"].as_str().unwrap().to_string();
        if s.get("location").is_none() && listed.contains(&sku) {
            want_stock.insert(sku, s["quantity"].as_i64().unwrap());
        }
    }
    let mut want_price = BTreeMap::new();
    for p in fixture_lines("catalog/products.jsonl") {
        let sku = p["sku"].as_str().unwrap().to_string();
        if p["currency"] == "GBP" && listed.contains(&sku) {
            want_price.insert(sku, p["price"].as_str().unwrap().parse::<f64>().unwrap());
        }
    }
    assert_eq!(want_stock.len(), 3, "{out}");
    for sku in &listed {
        let (product, stock) = shop.sf.product(sku).unwrap();
        match want_stock.get(sku) {
            Some(n) => assert_eq!(stock, BTreeMap::from([(String::new(), *n)]), "{sku}"),
            None => assert!(stock.is_empty(), "{sku}: no stock sent"),
        }
        let price = product["Price"].as_f64().unwrap();
        assert_eq!(price, want_price.get(sku).copied().unwrap_or(1.0), "{sku}");
    }
    assert_eq!(shop.sf.skus(), listed, "no listing created");
    assert!(out.contains("3 stock levels and 5 prices sent"), "{out}");
    assert!(
        out.contains("SKUs without a StoreFeeder listing skipped"),
        "{out}"
    );
    assert!(out.contains("RUG-JUTE"), "{out}");
    let stock_calls = bodies(&shop.sf, "/products/stocklocationinventory");
    assert!(
        stock_calls
            .iter()
            .flatten()
            .all(|i| i["AdjustmentType"] == "AbsoluteAdjustment")
    );

    // Second runs send nothing.
    let writes = shop.sf.writes().len();
    let out = shop.run_ok("despatches").await;
    assert!(out.contains("outcome: INFO"), "{out}");
    let out2 = shop.run_ok("listings").await;
    assert!(out2.contains("outcome: INFO"), "{out2}");
    assert_eq!(shop.sf.writes().len(), writes, "second runs change nothing");
    let catalogue_reads = |sf: &FakeStoreFeeder| {
        sf.seen()
            .iter()
            .filter(|s| s.path == "/products" && s.method == "GET")
            .count()
    };
    let reads = catalogue_reads(&shop.sf);
    shop.run_ok("listings").await;
    assert_eq!(
        catalogue_reads(&shop.sf),
        reads,
        "nothing pending: the catalogue is not read"
    );
    shop.assert_no_secret_anywhere(&format!("{out}{out2}"))
        .await;
}

/// Waits until StoreFeeder has applied `writes` writes.
async fn wait_for_writes(shop: &Shop, writes: usize, server: &crate::serve_cli::Server) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while shop.sf.writes_done() < writes {
        assert!(
            std::time::Instant::now() < deadline,
            "never reached write {writes}:\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `serve` killed (SIGKILL) after StoreFeeder applied a write whose answer
/// the run never heard, then started again: the interrupted run is retried
/// and nothing is lost or sent twice.
#[tokio::test(flavor = "multi_thread")]
async fn runs_killed_mid_way_and_retried_lose_nothing_and_send_nothing_twice() {
    let shop = Shop::new().await;
    let ready = ready_orders();

    // Orders: killed after the second batch was marked downloaded.
    shop.sf.stall_after(1);
    let server = shop.serve().await;
    shop.ok(&["run-now", INSTALLATION, "orders"], false).await;
    wait_for_writes(&shop, 2, &server).await;
    server.signal("-KILL");
    drop(server);
    shop.sf.stall_after(usize::MAX / 2);
    let server = shop.serve().await;
    tokio::task::block_in_place(|| server.wait_for(&["OK", "acme/storefeeder orders"]));
    assert!(
        server.output().contains("INTERRUPTED"),
        "{}",
        server.output()
    );
    drop(server);
    let ids: BTreeSet<String> = shop
        .records("orders", false)
        .await
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = ready.iter().map(|n| format!("storefeeder-{n}")).collect();
    assert_eq!(
        ids, want,
        "the orders marked downloaded before the kill were imported"
    );
    let marks = bodies(&shop.sf, "/orders/mark-orders-as-downloaded");
    assert_eq!(
        numbers_in(&marks),
        ready.iter().copied().collect::<Vec<_>>(),
        "each marked once"
    );

    // Despatches: killed after StoreFeeder applied the second batch.
    shop.import("shipments", "storefeeder/shipments.jsonl")
        .await;
    let done = shop.sf.writes_done();
    shop.sf.stall_after(1);
    let server = shop.serve().await;
    shop.ok(&["run-now", INSTALLATION, "despatches"], false)
        .await;
    wait_for_writes(&shop, done + 2, &server).await;
    server.signal("-KILL");
    drop(server);
    shop.sf.stall_after(usize::MAX / 2);
    let server = shop.serve().await;
    tokio::task::block_in_place(|| server.wait_for(&["OK", "acme/storefeeder despatches"]));
    drop(server);
    let items = shop.sf.despatch_items();
    let mut sent: Vec<u64> = items
        .iter()
        .map(|i| i["OrderNumber"].as_u64().unwrap())
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        (5001..=5070).collect::<Vec<_>>(),
        "no order despatched twice"
    );
    let looked_up = shop
        .sf
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.path.starts_with("/orders/50"))
        .count();
    assert_eq!(
        looked_up, 20,
        "the unheard batch was looked up, not sent again"
    );
    assert!(shop.records("shipments", true).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn each_severity_as_storefeeder_answers() {
    let shop = Shop::new().await;
    shop.run_ok("orders").await;
    shop.import("shipments", "storefeeder/shipments.jsonl")
        .await;

    // retry: StoreFeeder locked twice (409), then 503; nothing despatched.
    shop.sf.inject(&[409, 409]);
    let (code, out) = shop.run("despatches", "live").await;
    assert_eq!(code, Some(3), "exit 3 = retry:\n{out}");
    assert!(out.contains("409 (locked) twice"), "{out}");
    shop.sf.inject(&[503]);
    let (code, out) = shop.run("despatches", "live").await;
    assert_eq!(code, Some(3), "{out}");
    assert!(shop.sf.despatch_items().is_empty());

    // error → notification: StoreFeeder refuses one order inside HTTP 200.
    shop.sf.refuse_despatch(5003, "Order 5003 is on hold");
    let server = shop.serve().await;
    shop.ok(&["run-now", INSTALLATION, "despatches"], false)
        .await;
    tokio::task::block_in_place(|| {
        server.wait_for(&[
            "ERROR",
            "acme/storefeeder despatches",
            "notification raised",
        ])
    });
    drop(server);
    let notes = shop.ok(&["notifications", "list"], false).await;
    assert!(notes.contains("Order 5003 is on hold"), "{notes}");
    assert_eq!(shop.sf.order(5004).unwrap()["OrderStatus"], "Despatched");
    assert_ne!(shop.sf.order(5003).unwrap()["OrderStatus"], "Despatched");
    // The hold lifted, the next run sends 5003 alone and settles the rest
    // (an error run keeps no acknowledgements; storage remembered them).
    shop.sf.clear_refusals();
    let before = shop.sf.despatch_items().len();
    let out = shop.run_ok("despatches").await;
    let items = shop.sf.despatch_items();
    assert_eq!(items.len(), before + 1, "{out}");
    assert_eq!(items[before]["OrderNumber"], 5003);
    assert!(shop.records("shipments", true).await.is_empty(), "{out}");

    // info: a stock level of a SKU StoreFeeder does not list is skipped.
    shop.run_ok("listings").await;
    let extra = shop.dir.path().join("extra-stock.jsonl");
    std::fs::write(
        &extra,
        "{\"id\": \"NEW-SKU\", \"sku\": \"NEW-SKU\", \"quantity\": 5}\n",
    )
    .unwrap();
    shop.ok(
        &[
            "records",
            "import",
            "acme",
            "stock",
            extra.to_str().unwrap(),
        ],
        false,
    )
    .await;
    let writes = shop.sf.writes().len();
    let out = shop.run_ok("listings").await;
    assert!(out.contains("outcome: INFO"), "{out}");
    assert!(out.contains("never created: NEW-SKU"), "{out}");
    assert_eq!(shop.sf.writes().len(), writes, "nothing created");
}

#[tokio::test(flavor = "multi_thread")]
async fn test_mode_sends_nothing_to_storefeeder() {
    let shop = Shop::new().await;
    shop.import("shipments", "storefeeder/shipments.jsonl")
        .await;
    let seen = shop.sf.seen().len();
    for feed in ["orders", "despatches", "listings"] {
        let (code, out) = shop.run(feed, "test").await;
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("outcome: INFO"), "{out}");
        assert!(
            out.contains("test mode: StoreFeeder not contacted"),
            "{out}"
        );
    }
    assert_eq!(shop.sf.seen().len(), seen, "not one request in test mode");
    assert!(shop.records("orders", false).await.is_empty());
    assert_eq!(
        shop.records("shipments", true).await.len(),
        74,
        "nothing acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reauthorisation_rechecks_new_credentials_and_refuses_wrong_ones() {
    let shop = Shop::new().await;
    // StoreFeeder's password is changed there: runs say the link is broken.
    let changed = StoreFeederSettings {
        password: "a-new-pass-42".into(),
        ..StoreFeederSettings::default()
    };
    shop.sf.set_credentials(changed.clone());
    let (code, out) = shop.run("orders", "live").await;
    assert_eq!(code, Some(4), "exit 4 = error:\n{out}");
    assert!(out.contains("StoreFeeder link broken"), "{out}");
    assert!(
        out.contains("airlock reauthorise acme/storefeeder"),
        "{out}"
    );

    // Wrong credentials fail Test connection and are not saved.
    let wrong = StoreFeederSettings {
        password: "wrong-pass-1".into(),
        ..StoreFeederSettings::default()
    };
    let wrong = format!(
        "--config-file={}",
        shop.secrets_file("wrong.toml", &wrong).display()
    );
    let out = shop
        .cli(
            &[
                "reauthorise",
                INSTALLATION,
                &wrong,
                "--check-mode",
                "live",
                "--yes",
            ],
            true,
        )
        .await;
    let text = crate::cli::text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("not linked"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(
        !text.contains("wrong-pass-1"),
        "the secret is never printed: {text}"
    );

    // Test mode cannot prove them (the token is a POST): refused, not saved.
    let right = format!(
        "--config-file={}",
        shop.secrets_file("right.toml", &changed).display()
    );
    let out = shop
        .cli(&["reauthorise", INSTALLATION, &right, "--yes"], true)
        .await;
    let text = crate::cli::text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("--check-mode live"), "{text}");
    let (code, _) = shop.run("orders", "live").await;
    assert_eq!(code, Some(4), "still the old password");

    // The new password, checked live: saved, and runs work again.
    let text = shop
        .ok(
            &[
                "reauthorise",
                INSTALLATION,
                &right,
                "--check-mode",
                "live",
                "--yes",
            ],
            true,
        )
        .await;
    assert!(text.contains("test connection: ok (live mode)"), "{text}");
    assert!(!text.contains("a-new-pass-42"), "{text}");
    let out = shop.run_ok("orders").await;
    assert!(out.contains("120 orders imported"), "{out}");
}
