//! The X-Cart connector end to end: the component compiled from
//! `plugins/xcart`, installed with `airlock install` on a real SQLite file,
//! run by `airlock run` and `airlock serve` against the fake shop of
//! `airlock_tests::xcart` over TLS at the shop's own name
//! (`--resolve shop.example.com=127.0.0.1:PORT`, `--trust-root`), reached
//! through the installation's approved config origin.
//!
//! What the records must hold is derived from the fake's own fixture by
//! the seed's rules, written here apart from the connector.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Output;

use base64::Engine as _;
use serde_json::{Value, json};

use airlock_tests::tls::TestCa;
use airlock_tests::xcart::{
    FakeXCart, NEW_SHOP_HOST, SHOP_HOST, fixture_orders, fixture_products, order,
};

/// The read/write key: characters a URL query must encode, so the
/// percent-encoded form is searched for too.
const KEY: &str = "xcRW/7f3a+9c2e=51d04b88&z";
const READ_ONLY_KEY: &str = "xcRO-0b1c2d3e4f5a6b7c";
const NEW_KEY: &str = "xcRW2/new+key=8e7d6c5b4a";

/// Every feed, for the schedules the tests park (so `serve` runs only
/// what a test asks with `run-now`).
const FEEDS: [&str; 9] = [
    "import-orders",
    "update-orders",
    "import-products",
    "update-products",
    "import-images",
    "import-stock",
    "export-stock",
    "shipping-confirmation",
    "stock-check",
];

struct Site {
    dir: tempfile::TempDir,
    db: PathBuf,
    shop: FakeXCart,
    net: Vec<String>,
    /// The fixture's "now": orders are placed in the 40 hours before.
    base: i64,
    /// Every output seen, to search for the key at the end.
    outputs: std::sync::Mutex<Vec<String>>,
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl Site {
    /// A shop with the fixture orders and products, and the connector
    /// installed live with `extra` config.
    async fn new(extra: &[&str]) -> Self {
        let ca = TestCa::for_names(&[SHOP_HOST, NEW_SHOP_HOST]);
        let shop = FakeXCart::start(KEY, READ_ONLY_KEY, &ca).await.unwrap();
        let base = chrono::Utc::now().timestamp();
        shop.set_orders(fixture_orders(base));
        shop.set_products(fixture_products());
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        let key = dir.path().join("master.key");
        let net = crate::support::fake_net(
            dir.path(),
            &ca.ca_pem,
            &[
                (SHOP_HOST, shop.addr.port()),
                (NEW_SHOP_HOST, shop.addr.port()),
            ],
            &[],
        );
        let site = Self {
            dir,
            db,
            shop,
            net,
            base,
            outputs: Default::default(),
        };
        let secrets = site.secrets_file("secrets.toml", KEY);
        site.ok(&["keygen", key.to_str().unwrap()], false).await;
        site.ok(&["tenant", "add", "acme"], false).await;
        let mut install: Vec<String> = [
            "install",
            "plugins/xcart",
            "--tenant",
            "acme",
            "--mode",
            "live",
            "--yes",
            "--config",
            &format!("endpoint=https://{SHOP_HOST}/xcart"),
            "--config",
            "shipping_methods=Courier,Royal Mail 1st Class",
            "--config-file",
            &secrets,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for feed in FEEDS {
            install.push("--schedule".into());
            install.push(format!("{feed}=manual"));
        }
        for c in extra {
            install.push("--config".into());
            install.push(c.to_string());
        }
        let install: Vec<&str> = install.iter().map(String::as_str).collect();
        let out = site.ok(&install, true).await;
        assert!(out.contains("test connection: ok"), "{out}");
        assert!(
            out.contains(&format!("https://{SHOP_HOST}")),
            "the shop's origin is shown for approval: {out}"
        );
        site
    }

    fn secrets_file(&self, name: &str, key: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("api_key = \"{key}\"\n")).unwrap();
        path.display().to_string()
    }

    async fn cli(&self, args: &[&str], net: bool) -> Output {
        let out = crate::cli::airlock_off_worker(&self.db, &self.net, args, net).await;
        self.outputs.lock().unwrap().push(crate::cli::text(&out));
        out
    }

    async fn ok(&self, args: &[&str], net: bool) -> String {
        crate::cli::succeeded(args, &self.cli(args, net).await)
    }

    /// `airlock run` of `feed` in `mode`, due `offset` seconds after the
    /// fixture's now: the exit code and output.
    async fn run_at(&self, feed: &str, mode: &str, offset: i64) -> (Option<i32>, String) {
        let at = rfc3339(self.base + offset);
        let args = [
            "run",
            "plugins/xcart",
            "--feed",
            feed,
            "--tenant",
            "acme",
            "--installation",
            "xcart",
            "--mode",
            mode,
            "--at",
            &at,
        ];
        let out = self.cli(&args, true).await;
        (out.status.code(), crate::cli::text(&out))
    }

    /// A live run due at the fixture's now, which must end `outcome`.
    async fn run(&self, feed: &str, outcome: &str) -> String {
        let (_, out) = self.run_at(feed, "live", 0).await;
        assert!(
            out.contains(&format!("outcome: {outcome}")),
            "{feed}: expected {outcome}:\n{out}"
        );
        out
    }

    /// The bodies of a collection, by id.
    async fn records(&self, collection: &str) -> BTreeMap<String, Value> {
        let out = self
            .ok(&["records", "export", "acme", collection], false)
            .await;
        out.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["id"].as_str().unwrap().to_string(), v)
            })
            .collect()
    }

    /// Each record's id and version (a write raises the version).
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

    async fn import(&self, collection: &str, bodies: &[Value]) {
        let file = self.dir.path().join(format!("{collection}.jsonl"));
        let text: String = bodies.iter().map(|b| format!("{b}\n")).collect();
        std::fs::write(&file, text).unwrap();
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

    /// The key is in no output, no audit row and not in the database file,
    /// in any of the forms the host redacts; it did travel in the query.
    async fn assert_key_kept(&self, extra: &[String]) {
        let audit = self.ok(&["egress", "log", "--format", "json"], false).await;
        let runs = self
            .ok(&["runs", "list", "--tenant", "acme", "--json"], false)
            .await;
        let db = std::fs::read(&self.db).unwrap();
        let outputs = self.outputs.lock().unwrap().clone();
        for key in [KEY, NEW_KEY] {
            let forms = [
                key.to_string(),
                airlock_sdk_escape(key),
                base64::engine::general_purpose::STANDARD.encode(key),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
            ];
            for form in &forms {
                for (what, text) in outputs
                    .iter()
                    .chain(extra)
                    .map(|t| ("output", t))
                    .chain([("audit", &audit), ("runs", &runs)])
                {
                    assert!(
                        !text.contains(form.as_str()),
                        "the key ({form}) in the {what}:\n{text}"
                    );
                }
                assert!(
                    !db.windows(form.len()).any(|w| w == form.as_bytes()),
                    "the key ({form}) in the database file"
                );
            }
        }
        assert!(
            self.shop
                .seen()
                .iter()
                .any(|s| [KEY, NEW_KEY].iter().any(|k| s
                    .raw_query
                    .contains(&format!("_key={}", airlock_sdk_escape(k))))),
            "the key travelled as _key in the query"
        );
        assert!(
            audit.contains("/xcart/admin.php"),
            "the audit has the path: {audit}"
        );
    }
}

/// The query escaping the connector uses (RFC 3986 unreserved kept).
fn airlock_sdk_escape(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn money(x: f64) -> String {
    format!("{:.2}", (x * 100.0).round() / 100.0)
}

/// The order records the seed's rules call for: paid (`P`) and authorised
/// (`A`) orders only.
fn expected_orders(orders: &[Value]) -> BTreeMap<String, &Value> {
    orders
        .iter()
        .filter(|o| ["P", "A"].contains(&o["paymentStatus"]["code"].as_str().unwrap()))
        .map(|o| (format!("xcart-{}", o["orderNumber"].as_str().unwrap()), o))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inbound_feeds_import_the_fixture_shop_and_a_second_run_changes_nothing() {
    let site = Site::new(&[]).await;
    let fixture = site.shop.orders();
    let want = expected_orders(&fixture);
    assert_eq!(
        want.len(),
        26,
        "30 orders: 3 cancelled and 1 declined skipped"
    );

    let out = site.run("import-orders", "OK").await;
    assert!(out.contains("imported 26 orders; 4 skipped"), "{out}");
    assert!(out.contains("order 1004 not imported: cancelled"), "{out}");
    assert!(
        out.contains("order 1017 not imported: payment declined"),
        "{out}"
    );
    let orders = site.records("orders").await;
    assert_eq!(
        orders.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "exactly the paid and authorised orders"
    );
    for (id, o) in &want {
        let r = &orders[id];
        assert_eq!(r["status"], "processing", "{id}");
        assert_eq!(r["payment_status"], "paid", "{id}");
        assert_eq!(r["channel"], "xcart");
        assert_eq!(r["xcart_order_id"], o["order_id"].to_string());
        assert_eq!(r["customer"]["email"], o["profile"]["login"]);
        assert_eq!(
            r["lines"].as_array().unwrap().len(),
            o["items"].as_array().unwrap().len()
        );
        assert_eq!(r["totals"]["total"], money(o["total"].as_f64().unwrap()));
        // use_xcart_tax (default yes): X-Cart's VAT, not the shipping VAT
        // (use_xcart_tax_for_shipping defaults to no).
        let vat = o["surcharges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["code"] == "VAT")
            .unwrap()["value"]
            .as_f64()
            .unwrap();
        assert_eq!(r["totals"]["tax"], money(vat), "{id}");
        let shipping = o["surcharges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "Shipping cost")
            .map_or(0.0, |s| s["value"].as_f64().unwrap());
        assert_eq!(r["totals"]["shipping"], money(shipping), "{id}");
        assert_eq!(r["shipping_address"]["country"], "GB");
    }

    let out = site.run("import-products", "OK").await;
    assert!(out.contains("60 new products imported"), "{out}");
    let lists: Vec<_> = site
        .shop
        .seen()
        .into_iter()
        .filter(|s| s.path == "product")
        .map(|s| s.params["_cnd[limit][0]"].clone())
        .collect();
    assert_eq!(lists, ["0", "50"], "two pages of 50");
    let products = site.records("products").await;
    assert_eq!(products.len(), 60);
    for p in fixture_products() {
        let r = &products[p["sku"].as_str().unwrap()];
        assert_eq!(r["title"], p["name"]);
        assert_eq!(r["price"], money(p["price"].as_f64().unwrap()));
        assert_eq!(
            r["status"],
            if p["enabled"] == true {
                "active"
            } else {
                "inactive"
            }
        );
        assert!(
            r.get("image_urls").is_none(),
            "images come with their own feed"
        );
    }

    let out = site.run("import-images", "OK").await;
    assert!(out.contains("images of 60 products imported"), "{out}");
    let products = site.records("products").await;
    for p in fixture_products() {
        let urls: Vec<&Value> = p["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| &i["url"])
            .collect();
        assert_eq!(
            products[p["sku"].as_str().unwrap()]["image_urls"]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            urls
        );
    }

    let out = site.run("import-stock", "OK").await;
    assert!(out.contains("60 stock levels imported"), "{out}");
    let stock = site.records("stock").await;
    for p in fixture_products() {
        assert_eq!(stock[p["sku"].as_str().unwrap()]["quantity"], p["amount"]);
    }

    // The shop's staff change a product and cancel an order.
    site.shop.set_product(105, "price", json!(99.5));
    site.shop.set_product(105, "name", json!("Renamed product"));
    site.shop.set_payment_status(5, "C");
    let out = site.run("update-products", "OK").await;
    assert!(out.contains("1 products updated"), "{out}");
    let p = &site.records("products").await["SKU-005"];
    assert_eq!(
        (p["title"].as_str(), p["price"].as_str()),
        (Some("Renamed product"), Some("99.50"))
    );
    assert!(p["image_urls"].is_array(), "the images stay");
    let before = orders["xcart-1005"].clone();
    let out = site.run("update-orders", "OK").await;
    assert!(out.contains("1 orders updated"), "{out}");
    let after = &site.records("orders").await["xcart-1005"];
    assert_eq!(after["status"], "cancelled");
    assert_eq!(
        after["lines"], before["lines"],
        "status only: lines never change"
    );

    // A second run of every inbound feed writes nothing.
    let mut versions = Vec::new();
    for c in ["orders", "products", "stock"] {
        versions.push(site.versions(c).await);
    }
    for feed in [
        "import-orders",
        "update-orders",
        "import-products",
        "update-products",
        "import-images",
        "import-stock",
    ] {
        site.run(feed, "INFO").await;
    }
    for (i, c) in ["orders", "products", "stock"].iter().enumerate() {
        assert_eq!(
            site.versions(c).await,
            versions[i],
            "{c} unchanged by a second run"
        );
    }
    let seen = site.shop.seen();
    assert!(
        seen.iter().all(|s| s.key_ok && s.status == 200),
        "every call authorised"
    );
    assert!(
        site.shop.writes().is_empty(),
        "inbound feeds write nothing to the shop"
    );
    site.assert_key_kept(&[]).await;
}

/// The stock records after go-live: three SKUs changed in Connect, one at
/// a location, one X-Cart does not know.
fn connect_stock() -> Vec<Value> {
    vec![
        json!({"id": "SKU-001", "sku": "SKU-001", "quantity": 3}),
        json!({"id": "SKU-002", "sku": "SKU-002", "quantity": 0}),
        json!({"id": "SKU-003", "sku": "SKU-003", "quantity": 250}),
        json!({"id": "SKU-004@leeds", "sku": "SKU-004", "quantity": 9, "location": "leeds"}),
        json!({"id": "NOPE-1", "sku": "NOPE-1", "quantity": 1}),
    ]
}

fn shipments(n: u32) -> Vec<Value> {
    let mut v: Vec<Value> = (1..=n)
        .map(|i| {
            json!({"id": format!("SH-{i}"), "order_id": format!("xcart-{}", 1000 + i + if i >= 4 { 1 } else { 0 }),
                   "carrier": "Royal Mail", "tracking_number": format!("RM{i:04}GB"),
                   "despatched_at": "2026-11-25T10:00:00Z"})
        })
        .collect();
    v.push(json!({"id": "SH-OTHER", "order_id": "ebay-77", "carrier": "DPD", "despatched_at": "2026-11-25T10:00:00Z"}));
    v
}

fn amount(shop: &FakeXCart, sku: &str) -> i64 {
    shop.products().iter().find(|p| p["sku"] == sku).unwrap()["amount"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_feeds_push_stock_and_shipments_once_and_a_second_run_sends_nothing() {
    let site = Site::new(&["processed_order_status=S"]).await;
    site.run("import-products", "OK").await;
    site.run("import-orders", "OK").await;
    site.import("stock", &connect_stock()).await;
    site.import("shipments", &shipments(3)).await;

    let out = site.run("export-stock", "OK").await;
    assert!(out.contains("3 stock levels sent to X-Cart"), "{out}");
    assert!(
        out.contains("1 left pending: no X-Cart product has SKU NOPE-1"),
        "{out}"
    );
    assert_eq!(
        (
            amount(&site.shop, "SKU-001"),
            amount(&site.shop, "SKU-002"),
            amount(&site.shop, "SKU-003")
        ),
        (3, 0, 250)
    );
    let out = site.run("shipping-confirmation", "OK").await;
    assert!(
        out.contains("3 shipments confirmed in X-Cart, 1 not for this shop"),
        "{out}"
    );
    let orders = site.shop.orders();
    for (i, n) in [(1, 1), (2, 2), (3, 3)] {
        let o = orders.iter().find(|o| o["order_id"] == n).unwrap();
        assert_eq!(o["shippingStatus"]["code"], "S");
        assert_eq!(
            o["trackingNumbers"],
            json!([{"value": format!("RM{i:04}GB")}])
        );
    }
    let writes = site.shop.writes();
    assert_eq!(writes.len(), 6);
    assert!(
        writes
            .iter()
            .all(|w| w.http_method == "PUT" && !w.tunnelled),
        "real PUTs, never a tunnelled verb: {writes:?}"
    );
    assert_eq!(writes[0].path, "product/101");
    assert_eq!(
        writes[0].fields,
        [("[amount]".to_string(), "3".to_string())]
    );

    // Nothing left to send: a second run of each sends nothing.
    site.run("export-stock", "INFO").await;
    site.run("shipping-confirmation", "INFO").await;
    assert_eq!(site.shop.writes().len(), 6, "a second run sends nothing");
    let pending = site
        .ok(
            &[
                "records",
                "list",
                "acme",
                "stock",
                "--pending-for",
                "xcart",
                "--json",
            ],
            false,
        )
        .await;
    let pending: Vec<Value> = serde_json::from_str(&pending).unwrap();
    assert_eq!(pending.len(), 1, "only the unknown SKU waits: {pending:?}");

    // The nightly check: the shop's staff changed SKU-002 by hand.
    site.shop.set_product(102, "amount", json!(17));
    let out = site.run("stock-check", "OK").await;
    assert!(
        out.contains("2 SKUs match, 1 differed: 1 corrected in X-Cart"),
        "{out}"
    );
    assert_eq!(
        amount(&site.shop, "SKU-002"),
        0,
        "corrected to the stock record"
    );
    let out = site.run("stock-check", "INFO").await;
    assert!(out.contains("3 SKUs match, 0 differed"), "{out}");
    assert_eq!(site.shop.writes().len(), 7, "one correction, once");
    site.assert_key_kept(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn test_mode_sends_nothing_that_changes_the_shop() {
    let site = Site::new(&[]).await;
    site.run("import-products", "OK").await;
    site.run("import-orders", "OK").await;
    site.ok(&["mode", "acme/xcart", "test"], false).await;
    site.import("stock", &connect_stock()).await;
    site.import("shipments", &shipments(3)).await;
    site.shop.set_product(105, "amount", json!(31));
    site.import(
        "stock",
        &[json!({"id": "SKU-005", "sku": "SKU-005", "quantity": 2})],
    )
    .await;
    site.shop.clear_seen();

    for (feed, said) in [
        ("export-stock", "4 writes not sent (test mode)"),
        ("shipping-confirmation", "3 writes not sent (test mode)"),
        ("stock-check", "4 writes not sent (test mode)"),
    ] {
        let (code, out) = site.run_at(feed, "test", 0).await;
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains(said), "{feed}: {out}");
    }
    assert!(
        site.shop.writes().is_empty(),
        "the shop received no write: {:?}",
        site.shop.writes()
    );
    assert!(
        site.shop
            .seen()
            .iter()
            .all(|s| s.method == "GET" && !s.params.contains_key("_method")),
        "only reads reached the shop"
    );
    let audit = site.ok(&["egress", "log", "--format", "json"], false).await;
    assert!(
        audit.contains("suppressed"),
        "the audit shows the writes held back: {audit}"
    );
    // An inbound feed in test mode reads the shop and keeps no record.
    site.shop.add_order(order(40, site.base, 0, "P", "Courier"));
    let before = site.versions("orders").await;
    let (code, out) = site.run_at("import-orders", "test", 0).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("imported 1 orders"), "{out}");
    assert_eq!(
        site.versions("orders").await,
        before,
        "no record kept in test mode"
    );

    // Live: everything held back goes, once.
    site.ok(&["mode", "acme/xcart", "live"], false).await;
    site.run("export-stock", "OK").await;
    site.run("shipping-confirmation", "OK").await;
    assert_eq!(site.shop.writes().len(), 4 + 3);
    site.assert_key_kept(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_is_info_and_pending_payment_is_retried_hourly() {
    let site = Site::new(&[]).await;
    let b = site.base;
    // Only a cancelled order: info.
    site.shop.set_orders(vec![order(1, b, 2, "C", "Courier")]);
    let (code, out) = site.run_at("import-orders", "live", 0).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("outcome: INFO  order 1001 not imported: cancelled"),
        "{out}"
    );

    // An order awaiting payment: put aside, retry after an hour.
    site.shop.add_order(order(2, b, 0, "Q", "Courier"));
    let (code, out) = site.run_at("import-orders", "live", 60).await;
    assert_eq!(code, Some(3), "exit 3 = retry:\n{out}");
    assert!(
        out.contains("outcome: RETRY  1 orders pending payment"),
        "{out}"
    );
    assert!(out.contains("retry after 3600s"), "{out}");
    let rechecks = |shop: &FakeXCart| shop.seen().iter().filter(|s| s.path == "order/2").count();
    // A scheduled run 15 minutes on does not ask again before the hour.
    let (_, out) = site.run_at("import-orders", "live", 60 + 900).await;
    assert!(
        out.contains("outcome: INFO  no new orders; 1 pending payment"),
        "{out}"
    );
    assert_eq!(rechecks(&site.shop), 0);
    // The hour is up: re-checked, still unpaid.
    let (code, out) = site.run_at("import-orders", "live", 60 + 3600).await;
    assert_eq!(code, Some(3), "{out}");
    assert_eq!(rechecks(&site.shop), 1);
    // Paid: imported at the next hourly check, once.
    site.shop.set_payment_status(2, "P");
    let (code, out) = site.run_at("import-orders", "live", 60 + 7200).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("outcome: OK  imported 1 orders"), "{out}");
    assert_eq!(
        site.records("orders").await.keys().collect::<Vec<_>>(),
        ["xcart-1002"]
    );
    let (_, out) = site.run_at("import-orders", "live", 60 + 7200 + 900).await;
    assert!(out.contains("outcome: INFO  no new orders"), "{out}");
    assert!(!out.contains("pending payment"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_shipping_method_is_an_error_with_a_notification_and_the_others_still_come_in() {
    let site = Site::new(&[]).await;
    let b = site.base;
    site.shop.set_orders(vec![
        order(1, b, 3, "P", "Courier"),
        order(2, b, 2, "P", "Carrier Pigeon"),
        order(3, b, 1, "P", "Royal Mail 1st Class"),
    ]);
    let server = site.serve().await;
    site.ok(&["run-now", "acme/xcart", "import-orders"], false)
        .await;
    tokio::task::block_in_place(|| server.wait_for(&["ERROR", "acme/xcart import-orders"]));
    let output = server.output();
    assert!(
        output.contains("unknown shipping method `Carrier Pigeon`"),
        "{output}"
    );
    let open = site.ok(&["notifications", "list"], false).await;
    assert!(
        open.contains("unknown shipping method `Carrier Pigeon`"),
        "{open}"
    );
    // The next run imports the other two and does not report it again.
    site.ok(&["run-now", "acme/xcart", "import-orders"], false)
        .await;
    tokio::task::block_in_place(|| server.wait_for(&["OK", "acme/xcart import-orders"]));
    let (_, output) = server.stop();
    site.outputs.lock().unwrap().push(output);
    assert_eq!(
        site.records("orders").await.keys().collect::<Vec<_>>(),
        ["xcart-1001", "xcart-1003"]
    );
    // Once the warehouse ships with it, the held order comes in.
    let out = site
        .ok(
            &[
                "reauthorise",
                "acme/xcart",
                "--config",
                "shipping_methods=Courier,Royal Mail 1st Class,Carrier Pigeon",
                "--yes",
            ],
            true,
        )
        .await;
    assert!(out.contains("test connection: ok"), "{out}");
    let (code, out) = site.run_at("import-orders", "live", 0).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("imported 1 orders"), "{out}");
    assert_eq!(site.records("orders").await.len(), 3);
}

/// `serve` killed with SIGKILL while X-Cart had applied a confirmation but
/// not yet answered; the next `serve` retries the interrupted run, reads
/// the order first and adds no second tracking number.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_way_and_retried_duplicates_nothing() {
    let site = Site::new(&[]).await;
    site.run("import-orders", "OK").await;
    site.import("shipments", &shipments(6)).await;
    site.shop.stall_after(2);
    let server = site.serve().await;
    site.ok(&["run-now", "acme/xcart", "shipping-confirmation"], false)
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while site.shop.writes().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "{}", server.output());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.signal("-KILL");
    drop(server);
    site.shop.unstall();
    let server = site.serve().await;
    tokio::task::block_in_place(|| server.wait_for(&["OK", "acme/xcart shipping-confirmation"]));
    let output = server.output();
    assert!(output.contains("INTERRUPTED"), "{output}");
    drop(server);
    site.outputs.lock().unwrap().push(output);
    let writes = site.shop.writes();
    assert_eq!(writes.len(), 6, "one write per shipment: {writes:?}");
    let paths: BTreeSet<_> = writes.iter().map(|w| w.path.clone()).collect();
    assert_eq!(paths.len(), 6, "no order written twice");
    for o in site
        .shop
        .orders()
        .iter()
        .filter(|o| !o["trackingNumbers"].as_array().unwrap().is_empty())
    {
        assert_eq!(o["trackingNumbers"].as_array().unwrap().len(), 1, "{o}");
        assert_eq!(o["shippingStatus"]["code"], "S");
    }
    site.run("shipping-confirmation", "INFO").await;
    assert_eq!(site.shop.writes().len(), 6);
}

/// `serve` killed with SIGKILL while `import-products` waited for its
/// second page: nothing of the run was kept, and the retried run writes
/// each product once.
#[tokio::test(flavor = "multi_thread")]
async fn an_import_killed_mid_way_keeps_nothing_and_its_retry_writes_each_record_once() {
    let site = Site::new(&[]).await;
    site.shop.stall_reads_after(1);
    let server = site.serve().await;
    site.ok(&["run-now", "acme/xcart", "import-products"], false)
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while site
        .shop
        .seen()
        .iter()
        .filter(|s| s.path == "product")
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "{}", server.output());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.signal("-KILL");
    drop(server);
    assert!(
        site.records("products").await.is_empty(),
        "a killed run keeps no record"
    );
    site.shop.unstall();
    let server = site.serve().await;
    tokio::task::block_in_place(|| server.wait_for(&["OK", "acme/xcart import-products"]));
    let output = server.output();
    assert!(output.contains("INTERRUPTED"), "{output}");
    assert!(output.contains("60 new products imported"), "{output}");
    drop(server);
    site.outputs.lock().unwrap().push(output);
    let versions = site.versions("products").await;
    assert_eq!(versions.len(), 60);
    site.run("import-products", "INFO").await;
    assert_eq!(site.versions("products").await, versions);
}

/// A shop in maintenance (503 with `Retry-After`) or failing (500):
/// the run ends `retry` (after the shop's delay when it gives one) and
/// keeps nothing; the next run imports.
#[tokio::test(flavor = "multi_thread")]
async fn a_shop_that_is_down_is_retried_later() {
    let site = Site::new(&[]).await;
    site.shop.inject(&[(503, Some(120))]);
    let (code, out) = site.run_at("import-orders", "live", 0).await;
    assert_eq!(code, Some(3), "exit 3 = retry:\n{out}");
    assert!(out.contains("X-Cart answered 503"), "{out}");
    assert!(out.contains("retry after 120s"), "{out}");
    site.shop.inject(&[(500, None)]);
    let (code, out) = site.run_at("import-products", "live", 0).await;
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("X-Cart answered 500"), "{out}");
    assert!(site.records("orders").await.is_empty());
    assert!(site.records("products").await.is_empty());
    site.run("import-orders", "OK").await;
    assert_eq!(site.records("orders").await.len(), 26);
}

/// Bad config gets a clear error naming the field, never a panic, and
/// never the key.
#[tokio::test(flavor = "multi_thread")]
async fn bad_config_is_a_clear_error() {
    let site = Site::new(&[]).await;
    for (config, said) in [
        ("currency=pounds", "config `currency` is `POUNDS`"),
        (
            "initial_lookback_days=-5",
            "config `initial_lookback_days` is `-5`",
        ),
        (
            "endpoint=https://shop.example.com/xcart?_key=x",
            "config `endpoint` must be the shop's address",
        ),
    ] {
        let mut args: Vec<String> = [
            "run",
            "plugins/xcart",
            "--feed",
            "import-orders",
            "--tenant",
            "acme",
            "--installation",
            "trial",
            "--mode",
            "live",
            "--config",
            &format!("endpoint=https://{SHOP_HOST}/xcart"),
            "--config",
            &format!("api_key={KEY}"),
            "--config",
            config,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(site.net.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = site.cli(&args, false).await;
        let text = crate::cli::text(&out);
        assert_eq!(out.status.code(), Some(4), "exit 4 = error: {text}");
        assert!(text.contains(said), "{config}: {text}");
        assert!(!text.contains("panicked"), "{text}");
    }
    site.assert_key_kept(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reauthorisation_takes_a_new_end_point_and_key_and_re_checks_them() {
    let site = Site::new(&[]).await;
    // The merchant moved the shop and regenerated the key.
    site.shop.set_keys(NEW_KEY, READ_ONLY_KEY);
    let (code, out) = site.run_at("import-orders", "live", 0).await;
    assert_eq!(code, Some(4), "exit 4 = error:\n{out}");
    assert!(out.contains("X-Cart refused the API key (403"), "{out}");

    let sealed = || {
        rusqlite::Connection::open(&site.db)
            .unwrap()
            .query_row(
                "SELECT ciphertext FROM secrets WHERE key = 'api_key'",
                [],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .unwrap()
    };
    let before = sealed();
    let endpoint = format!("--config=endpoint=https://{NEW_SHOP_HOST}/xcart");
    // A wrong key fails the connection test and is not saved.
    let wrong = format!(
        "--config-file={}",
        site.secrets_file("wrong.toml", "not-the-key-123")
    );
    let out = site
        .cli(
            &[
                "reauthorise",
                "acme/xcart",
                &endpoint,
                &wrong,
                "--approve-egress",
                "--yes",
            ],
            true,
        )
        .await;
    let text = crate::cli::text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("test connection failed"), "{text}");
    assert!(text.contains("X-Cart refused the API key (403"), "{text}");
    assert!(!text.contains("not-the-key-123"), "{text}");
    assert_eq!(sealed(), before, "nothing saved");
    let right = format!("--config-file={}", site.secrets_file("new.toml", NEW_KEY));
    // A new end point is a new origin: it needs approval.
    let out = site
        .cli(
            &["reauthorise", "acme/xcart", &endpoint, &right, "--yes"],
            true,
        )
        .await;
    let text = crate::cli::text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("--approve-egress"), "{text}");
    assert_eq!(sealed(), before, "nothing saved");
    let out = site
        .ok(
            &[
                "reauthorise",
                "acme/xcart",
                &endpoint,
                &right,
                "--approve-egress",
                "--yes",
            ],
            true,
        )
        .await;
    assert!(out.contains("test connection: ok"), "{out}");
    assert!(out.contains(NEW_SHOP_HOST), "{out}");
    site.shop.clear_seen();
    let out = site.run("import-orders", "OK").await;
    assert!(out.contains("imported 26 orders"), "{out}");
    assert!(
        site.shop
            .seen()
            .iter()
            .all(|s| s.host.starts_with(NEW_SHOP_HOST) && s.key_ok),
        "the new end point with the new key"
    );
    site.assert_key_kept(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn import_stock_is_manual_only() {
    let site = Site::new(&[]).await;
    let out = site.ok(&["inspect", "plugins/xcart"], false).await;
    assert!(out.contains("import-stock"), "{out}");
    // Installed with the manifest's own schedules, `serve` never starts it.
    let db2 = site.dir.path().join("other.db");
    let secrets = site.secrets_file("s2.toml", KEY);
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::cli::airlock(&args, &db2)
    };
    let mut base: Vec<String> = vec!["tenant".into(), "add".into(), "acme".into()];
    assert!(run(base.clone()).status.success());
    base = [
        "install",
        "plugins/xcart",
        "--tenant",
        "acme",
        "--mode",
        "live",
        "--yes",
        "--config",
        &format!("endpoint=https://{SHOP_HOST}/xcart"),
        "--config-file",
        &secrets,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    base.extend(site.net.iter().cloned());
    let out = run(base);
    assert!(out.status.success(), "{}", crate::cli::text(&out));
    // `serve` plans every schedule: each feed gets its next fire but
    // import-stock, which is `manual`, and it never runs.
    let mut args: Vec<String> = crate::serve_cli::QUICK_SERVE
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(site.net.iter().cloned());
    let server = {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::serve_cli::Server::start(crate::cli::command(&args, &db2))
    };
    let line = |list: &str, feed: &str| {
        list.lines()
            .find(|l| l.trim_start().starts_with(feed))
            .unwrap_or_else(|| panic!("no {feed} in {list}"))
            .to_string()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let list = loop {
        let list = crate::cli::text(&run(vec!["installations".into()]));
        if line(&list, "import-orders").contains("next ") {
            break list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never planned:\n{list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(line(&list, "stock-check").contains("next "), "{list}");
    assert!(
        line(&list, "import-stock").contains("manual")
            && line(&list, "import-stock").contains("when asked (airlock run-now)"),
        "shown as manual, with no next fire:\n{list}"
    );
    let (_, output) = server.stop();
    assert!(!output.contains("import-stock"), "{output}");
}
