//! The eBay connector end to end: `plugins/ebay` built from source,
//! installed on a real SQLite file, authorised through `airlock serve
//! --listen`'s OAuth callback (the test is the seller's browser), run with
//! `airlock run` and `serve` against a fake of eBay (`airlock_tests::ebay`)
//! at eBay's real names over TLS (`--resolve`, `--trust-root`).
//!
//! The shop's side is `tests/fixtures/ebay/` (products, stock, category
//! mappings, shipments) plus the shop fixture's orders; eBay's side is
//! `tests/fixtures/ebay/orders.json` (times relative to now) and offers
//! set up here. What must change where is derived here from the fixtures,
//! independently of the connector.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use airlock_tests::ebay::{EbaySettings, FakeEbay, NAMES, PriceQuantity};
use airlock_tests::tls::TestCa;

use crate::serve_cli::Server;

fn fixture(name: &str) -> PathBuf {
    airlock_tests::repo_root()
        .join("tests/fixtures/ebay")
        .join(name)
}

/// eBay's orders from the fixture, dated relative to now, plus `extra`
/// generated ones (to make the orders search page).
fn ebay_orders(extra: usize) -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("orders.json")).unwrap();
    let mut orders: Vec<Value> = serde_json::from_str(&text).unwrap();
    for i in 0..extra {
        orders.push(json!({
            "orderId": format!("13-{i:05}-00000"), "hours_ago": 40 + i % 100,
            "orderFulfillmentStatus": "NOT_STARTED", "orderPaymentStatus": "PAID",
            "buyer": { "username": format!("buyer{i}"),
                "buyerRegistrationAddress": { "fullName": format!("Buyer {i}"), "email": format!("buyer{i}@members.ebay.com") } },
            "pricingSummary": { "total": { "value": "12.50", "currency": "GBP" } },
            "lineItems": [{ "lineItemId": format!("2{i:05}-1"), "sku": "MUG-BLU", "title": "Blue stoneware mug",
                "quantity": 1, "lineItemCost": { "value": "12.50", "currency": "GBP" } }]
        }));
    }
    let now = chrono::Utc::now();
    for o in &mut orders {
        let hours = o["hours_ago"].as_i64().unwrap();
        let at = |h: i64| {
            (now - chrono::Duration::hours(h))
                .format("%Y-%m-%dT%H:%M:%S.000Z")
                .to_string()
        };
        o["creationDate"] = json!(at(hours + 1));
        o["lastModifiedDate"] = json!(at(hours));
        o.as_object_mut().unwrap().remove("hours_ago");
    }
    orders
}

const CLIENT_ID: &str = "Shop-Airlock-PRD-0123456789-abcdef";

/// A database with the shop's records, the connector installed live and
/// authorised, and the fake eBay.
struct Shop {
    dir: tempfile::TempDir,
    db: PathBuf,
    ebay: FakeEbay,
    net: Vec<String>,
    config: Vec<String>,
    outputs: std::sync::Mutex<Vec<String>>,
}

impl Shop {
    async fn new() -> Self {
        Self::with_orders(0).await
    }

    async fn with_orders(extra: usize) -> Self {
        let ca = TestCa::for_names(&NAMES);
        let ebay = FakeEbay::start(EbaySettings::default(), &ca).await.unwrap();
        for order in ebay_orders(extra) {
            ebay.put_order(order);
        }
        for (sku, price) in [
            ("MUG-BLU", "11.00"),
            ("TEA-ENG", "5.00"),
            ("LAMP-DSK", "60.00"),
            ("SOFA-3S", "850.00"),
        ] {
            ebay.add_offer(sku, "EBAY_GB", price, "GBP");
        }
        let tree: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture("category-tree.json")).unwrap())
                .unwrap();
        ebay.set_category_tree(tree, "119");
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        let key = dir.path().join("master.key");
        let secrets = dir.path().join("secrets.toml");
        std::fs::write(
            &secrets,
            format!(
                "client_secret = \"{}\"\n",
                EbaySettings::default().client_secret
            ),
        )
        .unwrap();
        let port = ebay.addr.port();
        let net = crate::support::fake_net(
            dir.path(),
            &ca.ca_pem,
            &[("api.ebay.com", port), ("auth.ebay.com", port)],
            &[("ebay.com", "eBay marketplace (this operator)")],
        );
        let config = vec![
            format!("--config=client_id={CLIENT_ID}"),
            format!("--config-file={}", secrets.display()),
        ];
        let shop = Self {
            dir,
            db,
            ebay,
            net,
            config,
            outputs: Default::default(),
        };
        shop.ok(&["keygen", key.to_str().unwrap()], false).await;
        shop.ok(&["tenant", "add", "acme"], false).await;
        for c in ["products", "category-mappings", "stock"] {
            shop.import(c, &fixture(&format!("{c}.jsonl"))).await;
        }
        let shop_orders = airlock_tests::repo_root().join("tests/fixtures/shop/orders.jsonl");
        shop.import("orders", &shop_orders).await;
        let mut install: Vec<String> = [
            "install",
            "plugins/ebay",
            "--tenant",
            "acme",
            "--mode",
            "live",
            "--yes",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        install.extend(shop.config.iter().cloned());
        let install: Vec<&str> = install.iter().map(String::as_str).collect();
        let out = shop.ok(&install, true).await;
        assert!(out.contains("write orders (the tenant"), "{out}");
        shop.authorise().await;
        shop
    }

    async fn import(&self, collection: &str, file: &std::path::Path) {
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

    /// One run of `feed` in `mode`: its exit code and output.
    async fn run_in(&self, feed: &str, mode: &str) -> (Option<i32>, String) {
        let mut args = vec![
            "run",
            "plugins/ebay",
            "--feed",
            feed,
            "--tenant",
            "acme",
            "--installation",
            "ebay",
            "--mode",
            mode,
        ];
        let config = self.config.clone();
        args.extend(config.iter().map(String::as_str));
        self.cli(&args, true).await
    }

    async fn run(&self, feed: &str) -> (Option<i32>, String) {
        self.run_in(feed, "live").await
    }

    /// `airlock serve --listen 127.0.0.1:0` and its address.
    fn serve(&self) -> (Server, String) {
        let mut args = crate::serve_cli::QUICK_SERVE.to_vec();
        args.extend(["--listen", "127.0.0.1:0"]);
        let server = Server::start(self.command(&args, true));
        server.wait_for(&["listening on http://"]);
        let line = server
            .output()
            .lines()
            .find(|l| l.contains("listening on http://"))
            .unwrap()
            .to_string();
        let addr = line.rsplit("http://").next().unwrap().trim().to_string();
        (server, addr)
    }

    /// The seller's consent, through `serve`'s callback: `reauthorise
    /// --oauth` prints eBay's consent URL, the browser opens it, eBay sends
    /// it back to the callback, which exchanges the code.
    async fn authorise(&self) {
        let (server, addr) = tokio::task::block_in_place(|| self.serve());
        let redirect = format!("http://{addr}/oauth/callback");
        let out = self
            .ok(
                &[
                    "reauthorise",
                    "acme/ebay",
                    "--oauth",
                    "--redirect-uri",
                    &redirect,
                ],
                true,
            )
            .await;
        let url = out
            .lines()
            .find(|l| l.starts_with("https://auth.ebay.com/oauth2/authorize?"))
            .unwrap_or_else(|| panic!("no consent URL in:\n{out}"))
            .to_string();
        assert!(
            url.contains("scope=https%3A%2F%2Fapi.ebay.com%2Foauth%2Fapi_scope"),
            "{url}"
        );
        let ca = std::fs::read(self.dir.path().join("ca.pem")).unwrap();
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
            .resolve("auth.ebay.com", self.ebay.addr)
            .build()
            .unwrap();
        let answer = browser.get(&url).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 302, "{url}");
        let back = answer.headers()["location"].to_str().unwrap().to_string();
        assert!(back.starts_with(&redirect), "{back}");
        let page = reqwest::get(&back).await.unwrap();
        let status = page.status().as_u16();
        let text = page.text().await.unwrap();
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("acme/ebay is authorised"), "{text}");
        let (_, output) = tokio::task::block_in_place(|| server.stop());
        self.outputs.lock().unwrap().push(output);
    }

    /// The bodies of the records of `collection` with channel ebay, by id.
    async fn ebay_records(&self) -> BTreeMap<String, Value> {
        let out = self
            .ok(&["records", "export", "acme", "orders"], false)
            .await;
        out.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["channel"] == "ebay")
            .map(|r| (r["id"].as_str().unwrap().to_string(), r))
            .collect()
    }

    /// Versions of every record of `collection`.
    async fn versions(&self, collection: &str) -> Vec<(String, u64)> {
        let out = self
            .ok(
                &[
                    "records", "list", "acme", collection, "--json", "--limit", "1000",
                ],
                false,
            )
            .await;
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
        rows.iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["version"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    async fn pending_for_ebay(&self, collection: &str) -> Vec<String> {
        let out = self
            .ok(
                &[
                    "records",
                    "list",
                    "acme",
                    collection,
                    "--pending-for",
                    "ebay",
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

    /// No token eBay issued, nor the client secret in any form, is in the
    /// database, its WAL, any command's output or the egress log.
    async fn assert_no_secret_anywhere(&self) {
        let audit = self.ok(&["egress", "log", "--tenant", "acme"], false).await;
        let mut haystacks: Vec<(String, Vec<u8>)> = vec![("egress log".into(), audit.into_bytes())];
        haystacks.push(("database".into(), std::fs::read(&self.db).unwrap()));
        let wal = PathBuf::from(format!("{}-wal", self.db.display()));
        if wal.exists() {
            haystacks.push(("WAL".into(), std::fs::read(wal).unwrap()));
        }
        for (i, out) in self.outputs.lock().unwrap().iter().enumerate() {
            haystacks.push((format!("output {i}"), out.clone().into_bytes()));
        }
        let secret = EbaySettings::default().client_secret;
        let mut needles = self.ebay.issued_tokens();
        needles.push(secret.clone());
        use base64::Engine as _;
        needles.push(
            base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{secret}")),
        );
        needles.extend(
            self.ebay
                .issued_tokens()
                .iter()
                .map(|t| url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()),
        );
        for (what, bytes) in &haystacks {
            for needle in &needles {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{what} holds the secret `{needle}`"
                );
            }
        }
        assert!(
            self.ebay.issued_tokens().len() >= 3,
            "code, access and refresh issued"
        );
    }

    fn posts(&self, path_part: &str) -> usize {
        self.ebay
            .seen()
            .iter()
            .filter(|s| s.method == "POST" && s.path.contains(path_part))
            .count()
    }
}

fn update(sku: &str, offer: &str, quantity: u64, price: &str) -> PriceQuantity {
    PriceQuantity {
        sku: sku.into(),
        offer_id: offer.into(),
        quantity,
        price: price.into(),
        currency: "GBP".into(),
    }
}

/// The offers `Shop` lists, in order.
const MUG: &str = "500000000001";
const TEA: &str = "500000000002";
const LAMP: &str = "500000000003";

#[tokio::test(flavor = "multi_thread")]
async fn ebay_orders_fulfilments_inventory_and_categories_sync_once_and_a_second_run_changes_nothing()
 {
    let shop = Shop::with_orders(200).await;

    // Orders: every order modified in the last 30 days (the first window),
    // over two pages of 200; the 40-day-old one is outside it.
    let (code, out) = shop.run("orders").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("outcome: OK"), "{out}");
    let records = shop.ebay_records().await;
    assert_eq!(records.len(), 205, "5 fixture orders + 200 generated");
    assert!(
        !records.contains_key("ebay-12-00006-00006"),
        "outside the window"
    );
    let status = |id: &str| records[id]["status"].as_str().unwrap().to_string();
    assert_eq!(status("ebay-12-00001-00001"), "processing");
    assert_eq!(status("ebay-12-00003-00003"), "pending_payment");
    assert_eq!(status("ebay-12-00004-00004"), "cancelled");
    assert_eq!(status("ebay-12-00005-00005"), "despatched");
    let first = &records["ebay-12-00001-00001"];
    assert_eq!(first["channel_order_ref"], "12-00001-00001");
    assert_eq!(first["lines"][0]["unit_price"], "12.50", "25.00 for 2");
    assert_eq!(first["lines"][0]["id"], "10001-1");
    assert_eq!(first["totals"]["total"], "32.95");
    assert_eq!(first["customer"]["email"], "ada.l@members.ebay.com");
    let searches: Vec<_> = shop
        .ebay
        .seen()
        .into_iter()
        .filter(|s| s.path == "/sell/fulfillment/v1/order")
        .collect();
    assert_eq!(searches.len(), 2, "two pages: {searches:?}");
    assert!(
        searches[0].query.contains("filter=lastmodifieddate:["),
        "{:?}",
        searches[0]
    );
    assert!(
        searches[1].query.contains("offset=200"),
        "{:?}",
        searches[1]
    );

    // A second run: the window overlaps the first by 10 minutes, nothing
    // in it changed, so no record is written.
    let before = shop.versions("orders").await;
    let (code, out) = shop.run("orders").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("outcome: INFO"), "{out}");
    assert_eq!(shop.versions("orders").await, before, "no record rewritten");

    // Fulfilments: the two shipments of eBay orders, once each, with the
    // carrier's code; the web order's shipment is acknowledged, not sent.
    shop.import("shipments", &fixture("shipments.jsonl")).await;
    let (code, out) = shop.run("fulfilments").await;
    assert_eq!(code, Some(0), "{out}");
    let made = shop.ebay.fulfilments();
    assert_eq!(made.len(), 2, "{made:?}");
    let (order, f) = &made[0];
    assert_eq!(order, "12-00001-00001");
    assert_eq!(f["shipmentTrackingNumber"], "RM100200300GB");
    assert_eq!(f["shippingCarrierCode"], "RoyalMail");
    assert_eq!(f["shippedDate"], "2026-11-21T09:30:00.000Z");
    assert_eq!(
        f["lineItems"],
        json!([{ "lineItemId": "10001-1", "quantity": 2 }, { "lineItemId": "10001-2", "quantity": 1 }])
    );
    let (order, f) = &made[1];
    assert_eq!(order, "12-00002-00002");
    assert_eq!(
        f["lineItems"],
        json!([{ "lineItemId": "10002-1", "quantity": 1 }])
    );
    assert!(shop.pending_for_ebay("shipments").await.is_empty());
    let (code, out) = shop.run("fulfilments").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("outcome: INFO"), "{out}");
    assert_eq!(
        shop.ebay.fulfilments().len(),
        2,
        "a second run posts nothing"
    );

    // Quantity and price: only the mapped products (kitchen, lighting on
    // EBAY_GB) with stock and an offer; one SKU per call.
    let (code, out) = shop.run("inventory").await;
    assert_eq!(code, Some(0), "{out}");
    let mut updates = shop.ebay.price_quantity_updates();
    updates.sort_by(|a, b| a.sku.cmp(&b.sku));
    assert_eq!(
        updates,
        vec![
            update("LAMP-DSK", LAMP, 5, "64.00"),
            update("MUG-BLU", MUG, 14, "12.50"),
            update("TEA-ENG", TEA, 7, "4.00"),
        ],
        "stock summed over locations, the sale price"
    );
    assert_eq!(
        shop.posts("bulk_update_price_quantity"),
        3,
        "one SKU per call"
    );
    let seen = shop.ebay.seen();
    assert!(
        !seen.iter().any(|s| s.query.contains("SOFA-3S")),
        "a product in an unmapped category is never touched"
    );
    assert!(
        seen.iter()
            .filter(|s| s.method == "POST")
            .all(|s| s.path.contains("shipping_fulfillment")
                || s.content_language.as_deref() == Some("en-GB"))
    );
    let (code, out) = shop.run("inventory").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("outcome: INFO"), "{out}");
    assert_eq!(
        shop.posts("bulk_update_price_quantity"),
        3,
        "a second run sends nothing"
    );

    // A stock change: only that SKU is sent.
    let change = shop.dir.path().join("stock-change.jsonl");
    std::fs::write(
        &change,
        "{\"id\":\"S-MUG-BLU\",\"sku\":\"MUG-BLU\",\"product_id\":\"P-MUG-BLU\",\"quantity\":9}\n",
    )
    .unwrap();
    shop.import("stock", &change).await;
    let (code, out) = shop.run("inventory").await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        shop.ebay.price_quantity_updates().last(),
        Some(&update("MUG-BLU", MUG, 9, "12.50"))
    );
    assert_eq!(shop.posts("bulk_update_price_quantity"), 4);

    // The category tree, published for mapping; fetched again only when
    // eBay's version changes.
    let (code, out) = shop.run("categories").await;
    assert_eq!(code, Some(0), "{out}");
    let artifact = shop
        .ok(
            &["artifacts", "get", "acme/ebay", "ebay-categories.json"],
            false,
        )
        .await;
    let tree: Value = serde_json::from_str(&artifact).unwrap();
    assert_eq!(tree["category_tree_id"], "3");
    assert_eq!(tree["category_tree_version"], "119");
    let mugs = tree["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "36027")
        .unwrap();
    assert_eq!(
        mugs["path"],
        "Home, Furniture & DIY > Cookware, Dining & Bar > Mugs"
    );
    assert_eq!(mugs["leaf"], true);
    let (code, out) = shop.run("categories").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("outcome: INFO"), "{out}");
    let tree_reads = shop
        .ebay
        .seen()
        .iter()
        .filter(|s| s.path.contains("/category_tree/"))
        .count();
    assert_eq!(tree_reads, 1, "the unchanged tree is not fetched again");

    shop.assert_no_secret_anywhere().await;
}

/// `serve` killed (SIGKILL) after eBay created a fulfilment but before the
/// connector heard: the retried run reads the order's fulfilments first,
/// finds it, and creates no second one.
#[tokio::test(flavor = "multi_thread")]
async fn a_fulfilment_run_killed_after_ebay_acted_and_retried_creates_no_duplicate() {
    let shop = Shop::new().await;
    let (code, out) = shop.run("orders").await;
    assert_eq!(code, Some(0), "{out}");
    shop.import("shipments", &fixture("shipments.jsonl")).await;
    shop.ebay.stall_after(0);
    let (server, _) = tokio::task::block_in_place(|| shop.serve());
    shop.ok(&["run-now", "acme/ebay", "fulfilments"], false)
        .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while shop.ebay.fulfilments().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no fulfilment:\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.signal("-KILL");
    drop(server);
    shop.ebay.clear_faults();

    let (server, _) = tokio::task::block_in_place(|| shop.serve());
    tokio::task::block_in_place(|| server.wait_for(&["OK", "acme/ebay fulfilments"]));
    let output = server.output();
    assert!(output.contains("INTERRUPTED"), "{output}");
    drop(server);
    let made = shop.ebay.fulfilments();
    let mut orders: Vec<&str> = made.iter().map(|(o, _)| o.as_str()).collect();
    orders.sort();
    assert_eq!(orders, ["12-00001-00001", "12-00002-00002"], "one each");
    assert!(shop.pending_for_ebay("shipments").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn each_severity_info_retry_and_error_with_a_notification() {
    let shop = Shop::new().await;
    // retry: eBay's call limit with a long Retry-After.
    shop.ebay.throttle(1, 3600);
    let (code, out) = shop.run("orders").await;
    assert_eq!(code, Some(3), "exit 3 = retry:\n{out}");
    assert!(out.contains("eBay call limit reached (429)"), "{out}");
    assert!(
        shop.ebay_records().await.is_empty(),
        "nothing kept from a retry"
    );
    // A short one is waited out within the run.
    shop.ebay.throttle(1, 1);
    let (code, out) = shop.run("orders").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("waiting 1 s as asked"), "{out}");
    // info: nothing changed since.
    let (code, out) = shop.run("orders").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("outcome: INFO"), "{out}");

    // retry: 25001 (system error) on one SKU.
    shop.ebay.fail_sku("MUG-BLU", 500, 25001);
    let (code, out) = shop.run("inventory").await;
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("could not update SKU MUG-BLU just now: 25001"),
        "{out}"
    );
    // error: a permanent 250xx on one SKU; the others are still sent.
    shop.ebay.fail_sku("MUG-BLU", 400, 25002);
    let (code, out) = shop.run("inventory").await;
    assert_eq!(code, Some(4), "exit 4 = error:\n{out}");
    assert!(out.contains("SKU MUG-BLU: 25002"), "{out}");
    let skus: Vec<String> = shop
        .ebay
        .price_quantity_updates()
        .iter()
        .map(|u| u.sku.clone())
        .collect();
    assert!(skus.contains(&"LAMP-DSK".to_string()) && !skus.contains(&"MUG-BLU".to_string()));
    shop.ebay.clear_faults();

    // error, under serve: eBay refuses the fulfilments; the run raises a
    // notification.
    shop.import("shipments", &fixture("shipments.jsonl")).await;
    shop.ebay.refuse_fulfilments(32300);
    let (server, _) = tokio::task::block_in_place(|| shop.serve());
    shop.ok(&["run-now", "acme/ebay", "fulfilments"], false)
        .await;
    tokio::task::block_in_place(|| server.wait_for(&["ERROR", "acme/ebay fulfilments"]));
    drop(server);
    let open = shop.ok(&["notifications", "list"], false).await;
    assert!(open.contains("acme/ebay fulfilments"), "{open}");
    assert!(open.contains("32300"), "{open}");
    assert!(shop.ebay.fulfilments().is_empty());
    assert_eq!(
        shop.pending_for_ebay("shipments").await.len(),
        3,
        "an error run keeps no acknowledgement"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn test_mode_sends_nothing_that_changes_ebay_and_keeps_nothing() {
    let shop = Shop::new().await;
    // An inbound run in test mode reads eBay but keeps no record, and does
    // not move its window: the next live run imports the same orders.
    let (code, out) = shop.run_in("orders", "test").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(shop.ebay_records().await.is_empty(), "{out}");
    let (code, out) = shop.run("orders").await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(shop.ebay_records().await.len(), 5);

    shop.import("shipments", &fixture("shipments.jsonl")).await;
    for feed in ["fulfilments", "inventory"] {
        let (code, out) = shop.run_in(feed, "test").await;
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("writes not sent: test mode"), "{out}");
    }
    assert_eq!(shop.ebay.writes(), 0);
    assert!(
        shop.ebay.seen().iter().all(|s| s.method == "GET"),
        "only reads reached eBay"
    );
    assert_eq!(
        shop.pending_for_ebay("shipments").await.len(),
        3,
        "nothing acknowledged"
    );
    // Live, the same runs do it.
    let (code, out) = shop.run("fulfilments").await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(shop.ebay.fulfilments().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn reauthorisation_new_consent_and_new_settings_are_rechecked() {
    let shop = Shop::new().await;
    let (code, out) = shop.run("orders").await;
    assert_eq!(code, Some(0), "{out}");

    // Access tokens last 7,200 s; an expired one is refreshed by the host
    // (eBay keeps the same refresh token).
    shop.ebay.expire_access_tokens();
    let (code, out) = shop.run("categories").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        shop.ebay
            .token_requests()
            .contains(&"refresh_token".to_string())
    );

    // The seller revokes the app: the run ends `error` asking for
    // reauthorisation, then a new consent brings it back.
    shop.ebay.revoke_all();
    let (code, out) = shop.run("orders").await;
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("refused acme/ebay's credentials (invalid_grant"),
        "{out}"
    );
    assert!(
        out.contains("airlock reauthorise acme/ebay --oauth"),
        "{out}"
    );
    shop.authorise().await;
    let (code, out) = shop.run("orders").await;
    assert_eq!(code, Some(0), "{out}");

    // New settings are checked ("Test connection" reads eBay with the
    // stored authorisation) before they are saved.
    let out = shop
        .ok(
            &[
                "reauthorise",
                "acme/ebay",
                "--config=marketplace_id=EBAY_DE",
                "--yes",
            ],
            true,
        )
        .await;
    assert!(out.contains("marketplace_id"), "{out}");
    let (code, out) = shop.run("categories").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        shop.ebay
            .seen()
            .iter()
            .any(|s| s.path.ends_with("/category_tree/77")),
        "EBAY_DE's tree"
    );
    // A bad value is refused with its field named, nothing saved.
    let (code, out) = shop
        .cli(
            &[
                "reauthorise",
                "acme/ebay",
                "--config=marketplace_id=GB",
                "--yes",
            ],
            true,
        )
        .await;
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("`marketplace_id` is `GB`"), "{out}");
    // A wrong client secret fails the connection test (the host refreshes
    // with it) and is not saved.
    let wrong = shop.dir.path().join("wrong.toml");
    std::fs::write(&wrong, "client_secret = \"not-the-cert-id\"\n").unwrap();
    let (code, out) = shop
        .cli(
            &[
                "reauthorise",
                "acme/ebay",
                &format!("--config-file={}", wrong.display()),
                "--yes",
            ],
            true,
        )
        .await;
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("invalid_client"), "{out}");
    assert!(!out.contains("not-the-cert-id"), "{out}");
    let (code, out) = shop.run("orders").await;
    assert_eq!(code, Some(0), "the right secret is still there:\n{out}");
    shop.assert_no_secret_anywhere().await;
}
