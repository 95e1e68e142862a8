//! The Xero connector end to end: the fixture shop (`tests/fixtures/shop/`:
//! 50 orders incl. cancelled, draft, quote and abandoned, 5 returns, 3
//! purchase orders, payments and refunds) imported as the platform, the
//! connector installed and authorised by client credentials against a fake
//! of Xero's identity server, run with `airlock run` against a fake of the
//! Accounting API at Xero's real names (`--resolve NAME=127.0.0.1:PORT`,
//! `--trust-root`), both over TLS.
//!
//! What Xero must hold afterwards is derived from the fixture by the seed's
//! rules, written here independently of the connector.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use airlock_tests::identity::{FakeIdentity, IdentitySettings};
use airlock_tests::tls::TestCa;
use airlock_tests::xero::{FakeXero, XeroSettings};

/// The fixture shop's records of `collection`.
fn fixture(collection: &str) -> Vec<Value> {
    let path = airlock_tests::repo_root().join(format!("tests/fixtures/shop/{collection}.jsonl"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What the seed's rules say Xero must end up with.
struct Expected {
    invoices: BTreeMap<String, &'static str>,
    credit_notes: BTreeSet<String>,
    purchase_orders: BTreeMap<String, Vec<String>>,
    contacts: BTreeSet<String>,
    items: BTreeSet<String>,
    invoice_payments: usize,
    refund_payments: usize,
}

fn expected() -> Expected {
    let skipped = ["draft", "quote", "abandoned", "cancelled"];
    let live = |l: &&Value| l["cancelled"] != true;
    let mut e = Expected {
        invoices: BTreeMap::new(),
        credit_notes: BTreeSet::new(),
        purchase_orders: BTreeMap::new(),
        contacts: BTreeSet::new(),
        items: BTreeSet::new(),
        invoice_payments: 0,
        refund_payments: 0,
    };
    let orders = fixture("orders");
    for o in &orders {
        if skipped.contains(&o["status"].as_str().unwrap()) {
            continue;
        }
        let lines: Vec<&Value> = o["lines"].as_array().unwrap().iter().filter(live).collect();
        let completed = lines.iter().all(|l| l["completed"] == true);
        let status = if completed { "AUTHORISED" } else { "DRAFT" };
        e.invoices
            .insert(o["number"].as_str().unwrap().into(), status);
        e.contacts
            .insert(o["customer"]["name"].as_str().unwrap().into());
        e.items
            .extend(lines.iter().map(|l| l["sku"].as_str().unwrap().to_string()));
    }
    for r in fixture("returns") {
        if ["authorised", "received", "refunded"].contains(&r["status"].as_str().unwrap()) {
            e.credit_notes.insert(r["number"].as_str().unwrap().into());
            e.contacts
                .insert(r["customer"]["name"].as_str().unwrap().into());
            e.items.extend(
                r["lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["sku"].as_str().unwrap().to_string()),
            );
        }
    }
    for po in fixture("purchase-orders") {
        if po["status"] == "draft" || po["status"] == "cancelled" {
            continue;
        }
        let codes = po["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["nominal_code"].as_str().unwrap().to_string())
            .collect();
        e.purchase_orders
            .insert(po["number"].as_str().unwrap().into(), codes);
        e.contacts
            .insert(po["supplier"]["name"].as_str().unwrap().into());
        e.items.extend(
            po["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["sku"].as_str().unwrap().to_string()),
        );
    }
    // Payments: completed ones, of orders whose invoice is authorised
    // (Xero takes no payment on a draft).
    for p in fixture("payments") {
        let order = orders.iter().find(|o| o["id"] == p["order_id"]).unwrap();
        if p["status"] == "completed"
            && e.invoices.get(order["number"].as_str().unwrap()) == Some(&"AUTHORISED")
        {
            e.invoice_payments += 1;
        }
    }
    // Refunds: the tests authorise credit notes at creation
    // (`credit_note_status=authorised`), so each completed refund of an
    // exported return is paid.
    let returns = fixture("returns");
    for r in fixture("refunds") {
        let ret = returns.iter().find(|x| x["id"] == r["return_id"]).unwrap();
        if r["status"] == "completed" && e.credit_notes.contains(ret["number"].as_str().unwrap()) {
            e.refund_payments += 1;
        }
    }
    e
}

/// The fakes, a database with the shop imported and the connector
/// installed and authorised, and the options every command needs.
struct Shop {
    dir: tempfile::TempDir,
    db: PathBuf,
    identity: FakeIdentity,
    xero: FakeXero,
    net: Vec<String>,
    /// The config, given to `install` and to each trial run.
    config: Vec<String>,
}

impl Shop {
    async fn new(extra: &[&str]) -> Self {
        let ca = TestCa::for_names(&["api.xero.com", "identity.xero.com", "login.xero.com"]);
        let identity = FakeIdentity::start_tls(IdentitySettings::default(), &ca)
            .await
            .unwrap();
        let mut settings = XeroSettings::accepting(&[]);
        settings.token_ok = identity.token_check();
        settings.calls_per_window = 100_000;
        let xero = FakeXero::start(settings, Some(&ca)).await.unwrap();
        // Two items Xero has already, with cost prices (getItems reads them;
        // they are not created again).
        xero.add_item("SOFA-3S-GRY", 412.50);
        xero.add_item("LAMP-FLR-BRS", 48.00);
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        let key = dir.path().join("master.key");
        let secrets = dir.path().join("secrets.toml");
        std::fs::write(
            &secrets,
            format!(
                "client_secret = \"{}\"\n",
                IdentitySettings::default().client_secret
            ),
        )
        .unwrap();
        // The operator's own table: the shipped one plus Xero, visibly.
        let net = crate::support::fake_net(
            dir.path(),
            &ca.ca_pem,
            &[
                ("api.xero.com", xero.addr.port()),
                ("identity.xero.com", identity.addr.port()),
            ],
            &[("xero.com", "Xero accounting (this operator)")],
        );
        let mut config = vec![
            format!(
                "--config=client_id={}",
                IdentitySettings::default().client_id
            ),
            format!("--config-file={}", secrets.display()),
        ];
        // Unpaced unless a test says otherwise: the fake's limit is raised
        // too (the pacing test puts both back to Xero's 60 a minute).
        config.push("--config=calls_per_minute=10000".into());
        config.extend(extra.iter().map(|c| format!("--config={c}")));
        let shop = Self {
            dir,
            db,
            identity,
            xero,
            net,
            config,
        };
        shop.ok(&["keygen", key.to_str().unwrap()], false).await;
        shop.ok(&["tenant", "add", "acme"], false).await;
        for c in [
            "orders",
            "returns",
            "purchase-orders",
            "payments",
            "refunds",
        ] {
            let file = airlock_tests::repo_root().join(format!("tests/fixtures/shop/{c}.jsonl"));
            shop.ok(
                &["records", "import", "acme", c, file.to_str().unwrap()],
                false,
            )
            .await;
        }
        let mut install = vec![
            "install".to_string(),
            "plugins/xero".into(),
            "--tenant".into(),
            "acme".into(),
            "--mode".into(),
            "live".into(),
            "--yes".into(),
        ];
        install.extend(shop.config.iter().cloned());
        let install: Vec<&str> = install.iter().map(String::as_str).collect();
        shop.ok(&install, true).await;
        shop.ok(&["reauthorise", "acme/xero", "--oauth"], true)
            .await;
        shop
    }

    async fn cli(&self, args: &[&str], net: bool) -> Output {
        crate::cli::airlock_off_worker(&self.db, &self.net, args, net).await
    }

    async fn ok(&self, args: &[&str], net: bool) -> String {
        crate::cli::succeeded(args, &self.cli(args, net).await)
    }

    /// The arguments of one trial run of the sync feed.
    fn sync_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "run",
            "plugins/xero",
            "--feed",
            "sync",
            "--tenant",
            "acme",
            "--installation",
            "xero",
            "--mode",
            "live",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.config.iter().cloned());
        args.extend(self.net.iter().cloned());
        args
    }

    /// One run of the sync feed: its exit code and output.
    async fn sync(&self) -> (Option<i32>, String) {
        let args = self.sync_args();
        let db = self.db.clone();
        let out = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::cli::command(&args, &db).output().unwrap()
        })
        .await
        .unwrap();
        (out.status.code(), crate::cli::text(&out))
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

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn numbers(docs: &[Value], field: &str) -> Vec<String> {
    let mut v: Vec<String> = docs
        .iter()
        .map(|d| d[field].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

/// Asserts Xero holds exactly what the fixture calls for, once each.
fn assert_exactly_expected(xero: &FakeXero, e: &Expected) {
    let invoices = xero.invoices();
    assert_eq!(
        numbers(&invoices, "InvoiceNumber"),
        e.invoices.keys().cloned().collect::<Vec<_>>(),
        "one invoice per exported order, no duplicates"
    );
    for inv in &invoices {
        let want = e.invoices[inv["InvoiceNumber"].as_str().unwrap()];
        let status = inv["Status"].as_str().unwrap();
        assert!(
            status == want || (want == "AUTHORISED" && status == "PAID"),
            "{} is {status}, expected {want}",
            inv["InvoiceNumber"]
        );
        assert_eq!(inv["Type"], "ACCREC");
    }
    let notes = xero.credit_notes();
    assert_eq!(
        numbers(&notes, "CreditNoteNumber"),
        e.credit_notes.iter().cloned().collect::<Vec<_>>()
    );
    assert!(notes.iter().all(|n| n["Type"] == "ACCRECCREDIT"));
    let pos = xero.purchase_orders();
    assert_eq!(
        numbers(&pos, "PurchaseOrderNumber"),
        e.purchase_orders.keys().cloned().collect::<Vec<_>>()
    );
    for po in &pos {
        let codes: Vec<String> = po["LineItems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["AccountCode"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            codes,
            e.purchase_orders[po["PurchaseOrderNumber"].as_str().unwrap()],
            "lines carry the nominal code"
        );
    }
    let mut contacts: Vec<String> = xero
        .contacts()
        .iter()
        .map(|c| c["Name"].as_str().unwrap().to_string())
        .collect();
    contacts.sort();
    assert_eq!(
        contacts,
        e.contacts.iter().cloned().collect::<Vec<_>>(),
        "one contact per name (Xero's names are unique)"
    );
    let mut items: Vec<String> = xero
        .items()
        .iter()
        .map(|i| i["Code"].as_str().unwrap().to_string())
        .collect();
    items.sort();
    assert_eq!(items, e.items.iter().cloned().collect::<Vec<_>>());
    let payments = xero.payments();
    let on_invoices = payments.iter().filter(|p| p["Invoice"].is_object()).count();
    let on_notes = payments
        .iter()
        .filter(|p| p["CreditNote"].is_object())
        .count();
    assert_eq!(
        on_invoices, e.invoice_payments,
        "payments of authorised invoices"
    );
    assert_eq!(on_notes, e.refund_payments, "refunds paid on credit notes");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fixture_shop_syncs_exactly_once_and_a_second_run_posts_nothing() {
    let shop = Shop::new(&["credit_note_status=authorised"]).await;
    let e = expected();
    assert_eq!(
        e.invoices.len(),
        43,
        "the fixture: 50 orders, 7 not exported"
    );
    let (code, out) = shop.sync().await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("outcome: OK"), "{out}");
    assert!(
        out.contains("2 items in Xero (2 with a cost price)"),
        "getItems read the cost prices: {out}"
    );
    assert_exactly_expected(&shop.xero, &e);

    // The protocol, as Xero checks it.
    let seen = shop.xero.seen();
    assert!(
        seen.iter().all(|r| r.status != 401 && r.status != 403),
        "every call authorised"
    );
    let writes: Vec<_> = seen
        .iter()
        .filter(|r| r.method == "PUT" || r.method == "POST")
        .collect();
    assert!(
        writes.iter().all(|r| r.idempotency_key.is_some()),
        "Idempotency-Key on every write"
    );
    let keys: BTreeSet<_> = writes.iter().map(|r| r.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), writes.len(), "a key per document");
    let first = seen.iter().find(|r| r.path.starts_with("/api.xro/2.0/"));
    assert_eq!(
        first.map(|r| r.path.as_str()),
        Some("/api.xro/2.0/Items"),
        "getItems first"
    );

    // Every exported order is acknowledged: nothing pending for xero.
    let pending = shop
        .ok(
            &[
                "records",
                "list",
                "acme",
                "orders",
                "--pending-for",
                "xero",
                "--json",
            ],
            false,
        )
        .await;
    let pending: Vec<Value> = serde_json::from_str(&pending).unwrap();
    let left: BTreeSet<&str> = pending.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for number in e.invoices.keys() {
        assert!(!left.contains(number.as_str()), "{number} still pending");
    }

    let writes_before = shop.xero.writes_done();
    let (code, out) = shop.sync().await;
    assert!(code == Some(0), "{out}");
    assert_eq!(
        shop.xero.writes_done(),
        writes_before,
        "a second run posts nothing:\n{out}"
    );
    assert_exactly_expected(&shop.xero, &e);
    assert!(shop.identity.stats().client_credentials >= 1);
    let _ = shop.path();
}

/// A run killed after Xero created a document but before the connector
/// heard, then retried: the retry sends the same Idempotency-Key, Xero
/// answers from its cache, and nothing exists twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_sequence_and_retried_posts_nothing_twice() {
    let shop = Shop::new(&["credit_note_status=authorised"]).await;
    shop.xero.stall_after(25);
    let server = shop.serve().await;
    shop.ok(&["run-now", "acme/xero", "sync"], false).await;
    // Wait until the 26th write was applied (its answer is withheld), then
    // kill the host outright.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while shop.xero.writes_done() < 26 {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never reached its 26th write:\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.signal("-KILL");
    drop(server);
    shop.xero.stall_after(usize::MAX / 2);

    // A new server finds the run interrupted and retries it.
    let server = shop.serve().await;
    tokio::task::block_in_place(|| server.wait_for(&["OK", "acme/xero sync"]));
    let output = server.output();
    assert!(output.contains("INTERRUPTED"), "{output}");
    drop(server);
    assert_exactly_expected(&shop.xero, &expected());
    assert!(
        shop.xero.seen().iter().any(|r| r.replayed),
        "the lost answer came from Xero's idempotency cache"
    );
}

/// 429 with a short Retry-After is waited out within the run; one longer
/// than `max_wait_seconds` ends the run `retry` after it.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_are_waited_out_or_end_the_run_retry_with_their_delay() {
    let shop = Shop::new(&["max_wait_seconds=5"]).await;
    shop.xero.set_rate_limit(20, Duration::from_secs(2));
    let (code, out) = shop.sync().await;
    assert_eq!(code, Some(0), "{out}");
    let limited = shop.xero.seen().iter().filter(|r| r.status == 429).count();
    assert!(limited > 0, "the fake rate-limited the run");
    assert!(out.contains("limit reached: waiting"), "{out}");
    assert_eq!(
        shop.xero.invoices().len(),
        43,
        "nothing lost or doubled by the waits"
    );

    // A long window: the run stops and asks to be retried after it.
    let shop = Shop::new(&["max_wait_seconds=5"]).await;
    shop.xero.set_rate_limit(10, Duration::from_secs(600));
    let (code, out) = shop.sync().await;
    assert_eq!(code, Some(3), "exit 3 = retry:\n{out}");
    assert!(out.contains("minute limit reached (429)"), "{out}");
    assert!(out.contains("retry after"), "{out}");
}

/// Xero refusing even a refreshed token: the run ends `error` and the
/// host says the installation needs reauthorising.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_refused_after_a_refresh_ends_the_run_error_asking_for_reauthorisation() {
    let shop = Shop::new(&[]).await;
    shop.identity.set(|s| s.refuse_api = true);
    let (code, out) = shop.sync().await;
    assert_eq!(code, Some(4), "exit 4 = error:\n{out}");
    assert!(out.to_lowercase().contains("reauthoris"), "{out}");
    assert_eq!(shop.xero.writes_done(), 0);
    // No token leaks into the output or the database.
    let db = std::fs::read(&shop.db).unwrap();
    for token in shop.identity.issued_tokens() {
        assert!(!out.contains(&token), "a token in the output");
        assert!(
            !db.windows(token.len()).any(|w| w == token.as_bytes()),
            "a token in the database file"
        );
    }
}

/// Xero's 60 calls a minute, kept: at the connector's default pace a sync
/// of the fixture shop (over 100 calls) is never refused, and no 60 seconds
/// of it see more than 60 calls.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_pace_keeps_to_xeros_sixty_calls_a_minute() {
    let shop = Shop::new(&["calls_per_minute=60"]).await;
    shop.xero.set_rate_limit(60, Duration::from_secs(60));
    let (code, out) = shop.sync().await;
    assert_eq!(code, Some(0), "{out}");
    let seen = shop.xero.seen();
    assert!(seen.len() > 60, "the sync needs more than a minute's calls");
    assert!(seen.iter().all(|r| r.status != 429), "never rate-limited");
    let api: Vec<_> = shop.xero.arrivals();
    for (i, t) in api.iter().enumerate() {
        let in_window = api[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < Duration::from_secs(60))
            .count();
        assert!(in_window <= 60, "{in_window} calls within a minute");
    }
}

/// "Test connection" proves the client id and secret: the host asks the
/// identity server for a token by client credentials, so a wrong secret
/// fails the check and `reauthorise` saves nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_client_secret_fails_the_connection_test_and_is_not_saved() {
    let shop = Shop::new(&[]).await;
    let wrong = shop.path().join("wrong.toml");
    std::fs::write(&wrong, "client_secret = \"not-the-secret\"\n").unwrap();
    let wrong = format!("--config-file={}", wrong.display());
    let out = shop
        .cli(&["reauthorise", "acme/xero", &wrong, "--yes"], true)
        .await;
    let text = crate::cli::text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(
        !text.contains("not-the-secret"),
        "the secret is never printed: {text}"
    );
    // The right secret is still installed: a run works.
    let (code, out) = shop.sync().await;
    assert_eq!(code, Some(0), "{out}");
}
