//! The SALESmanago connector (seed 003) against a fake of SALESmanago's
//! legacy API over TLS (`tests/src/salesmanago.rs`), as an operator runs it:
//! the fixture shop (`tests/fixtures/marketing/`: account holders with and
//! without consent, newsletter subscribers without an account, orders in
//! every state) imported, the connector installed live, its feeds run with
//! `airlock run`, its callbacks delivered through `airlock serve --listen`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Output;

use airlock_tests::salesmanago::{FakeSalesmanago, SalesmanagoAccount};
use airlock_tests::tls::TestCa;
use serde_json::{Value, json};

const SECRET: &str = "sm-api-secret-7f3a";

fn account() -> SalesmanagoAccount {
    SalesmanagoAccount {
        client_id: "client42".into(),
        api_secret: SECRET.into(),
        owner: "owner@shop.example".into(),
    }
}

/// The fake, a database with the marketing fixtures imported and the
/// connector installed live, and the options every command needs.
struct Shop {
    dir: tempfile::TempDir,
    db: PathBuf,
    sm: FakeSalesmanago,
    net: Vec<String>,
}

impl Shop {
    async fn new(config: &[&str]) -> Self {
        let ca = TestCa::for_names(&["app2.salesmanago.pl"]);
        let sm = FakeSalesmanago::start(account(), &ca).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        let key = dir.path().join("master.key");
        let net = crate::support::fake_net(
            dir.path(),
            &ca.ca_pem,
            &[("app2.salesmanago.pl", sm.addr.port())],
            &[("salesmanago.pl", "SALESmanago (this operator)")],
        );
        let shop = Self { dir, db, sm, net };
        shop.ok(&["keygen", key.to_str().unwrap()], false).await;
        shop.ok(&["tenant", "add", "acme"], false).await;
        for c in ["customers", "categories", "products", "orders"] {
            let file =
                airlock_tests::repo_root().join(format!("tests/fixtures/marketing/{c}.jsonl"));
            shop.ok(
                &["records", "import", "acme", c, file.to_str().unwrap()],
                false,
            )
            .await;
        }
        let secrets = shop.dir.path().join("secrets.toml");
        std::fs::write(&secrets, format!("api_secret = \"{SECRET}\"\n")).unwrap();
        let mut install: Vec<String> = [
            "install",
            "plugins/salesmanago",
            "--tenant",
            "acme",
            "--mode",
            "live",
            "--check-mode",
            "live",
            "--yes",
            "--config=endpoint=https://app2.salesmanago.pl",
            "--config=client_id=client42",
            "--config=owner=owner@shop.example",
            "--config=location=shop-krakow",
            "--config=calls_per_minute=6000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        install.push(format!("--config-file={}", secrets.display()));
        install.extend(config.iter().map(|c| format!("--config={c}")));
        let install: Vec<&str> = install.iter().map(String::as_str).collect();
        shop.ok(&install, true).await;
        shop
    }

    async fn cli(&self, args: &[&str], net: bool) -> Output {
        crate::cli::airlock_off_worker(&self.db, &self.net, args, net).await
    }

    async fn ok(&self, args: &[&str], net: bool) -> String {
        crate::cli::succeeded(args, &self.cli(args, net).await)
    }

    /// One trial run of `feed` of the installed connector: exit code, output.
    async fn run(&self, feed: &str) -> (Option<i32>, String) {
        let out = self
            .cli(
                &[
                    "run",
                    "plugins/salesmanago",
                    "--feed",
                    feed,
                    "--tenant",
                    "acme",
                    "--installation",
                    "salesmanago",
                    "--mode",
                    "live",
                ],
                true,
            )
            .await;
        (out.status.code(), crate::cli::text(&out))
    }

    /// Everything persistent the connector could have leaked a secret into.
    fn files(&self) -> Vec<u8> {
        crate::serve_cli::file_bytes(&self.db)
    }
}

fn tags(sm: &FakeSalesmanago, email: &str) -> BTreeSet<String> {
    sm.contacts()
        .get(email)
        .map(|c| c.tags.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_and_purchases_reach_salesmanago_once_with_their_tags() {
    let shop = Shop::new(&["consent=all"]).await;
    let sm = &shop.sm;
    assert_eq!(
        sm.calls(),
        ["/api/contact/hasContact"],
        "install ran the live check"
    );

    let (code, out) = shop.run("contacts").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("5 contact(s) sent, 1 skipped"), "{out}");
    let contacts = sm.contacts();
    assert_eq!(
        contacts.keys().cloned().collect::<Vec<_>>(),
        [
            "ann@example.com",
            "bob@example.com",
            "cat@example.com",
            "dan@example.com",
            "eve@example.com"
        ],
        "every account holder and subscriber, and not zed (neither)"
    );
    assert_eq!(
        tags(sm, "ann@example.com"),
        BTreeSet::from(["rejestracja".to_string()])
    );
    assert_eq!(
        tags(sm, "cat@example.com"),
        BTreeSet::from(["newsletter".to_string()])
    );
    assert_eq!(contacts["ann@example.com"].opted_in, Some(true));
    assert_eq!(contacts["bob@example.com"].opted_in, Some(false));
    assert_eq!(
        contacts["eve@example.com"].opted_in, None,
        "no newsletter answer: no change"
    );
    assert_eq!(contacts["ann@example.com"].external_id, "cust-ann");

    let (code, out) = shop.run("purchases").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "3 purchase event(s) sent, 1 order(s) skipped (not a purchase or no consent), 1 \
             waiting for payment, 0 sent before"
        ),
        "{out}"
    );
    let events = sm.events();
    let by_order = |id: &str| events.iter().find(|e| e["externalId"] == id).cloned();
    let lamp = by_order("SM1001").expect("SM1001's event");
    assert_eq!(lamp["contactExtEventType"], "PURCHASE");
    assert_eq!(lamp["products"], "LAMP-FLOOR-BRASS,GIFT-50");
    assert_eq!(lamp["value"], json!(199.0));
    assert_eq!(lamp["location"], "shop-krakow");
    assert_eq!(lamp["email"], "ann@example.com");
    assert_eq!(lamp["date"], json!(1_795_166_100_000i64), "placed_at in ms");
    assert!(by_order("SM1003").is_none(), "cancelled: not a purchase");
    assert!(by_order("SM1004").is_none(), "not paid yet");
    assert_eq!(events.len(), 3);
    // Category / subcategory / sub-subcategory: three tags.
    let ann = tags(sm, "ann@example.com");
    for t in ["rejestracja", "Living room", "Lighting", "Floor lamps"] {
        assert!(ann.contains(t), "{t} missing from {ann:?}");
    }
    assert!(tags(sm, "bob@example.com").contains("Rugs & Mats"));

    // A second run of each changes nothing at SALESmanago.
    let calls = sm.calls().len();
    let (_, out) = shop.run("contacts").await;
    assert!(out.contains("0 contact(s) sent"), "{out}");
    let (_, out) = shop.run("purchases").await;
    assert!(out.contains("0 purchase event(s) sent"), "{out}");
    assert_eq!(sm.calls().len(), calls, "a second run called SALESmanago");

    // The order paid later is sent once it is paid.
    let paid = shop.dir.path().join("paid.jsonl");
    let mut order: Value = serde_json::from_str(
        std::fs::read_to_string(
            airlock_tests::repo_root().join("tests/fixtures/marketing/orders.jsonl"),
        )
        .unwrap()
        .lines()
        .find(|l| l.contains("SM1004"))
        .unwrap(),
    )
    .unwrap();
    order["status"] = json!("processing");
    std::fs::write(&paid, format!("{order}\n")).unwrap();
    shop.ok(
        &[
            "records",
            "import",
            "acme",
            "orders",
            paid.to_str().unwrap(),
        ],
        false,
    )
    .await;
    let (_, out) = shop.run("purchases").await;
    assert!(out.contains("1 purchase event(s) sent"), "{out}");
    assert_eq!(sm.events().len(), 4);

    let files = shop.files();
    assert!(
        !files.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the API secret is in the database"
    );
    assert!(!out.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_consenting_customers_are_sent_and_a_big_export_is_spread_over_runs() {
    let shop = Shop::new(&["contacts_per_run=1"]).await;
    // Consenting: ann, cat (subscriber) and eve; bob, dan and zed are not.
    let mut sent = Vec::new();
    for run in 1..=5 {
        let (code, out) = shop.run("contacts").await;
        assert_eq!(code, Some(0), "{out}");
        sent.push(shop.sm.contacts().len());
        if run < 3 {
            assert!(out.contains("more are pending"), "run {run}: {out}");
        }
    }
    assert_eq!(
        sent,
        [1, 2, 3, 3, 3],
        "one contact a run, then nothing left"
    );
    let emails: Vec<String> = shop.sm.contacts().keys().cloned().collect();
    assert_eq!(
        emails,
        ["ann@example.com", "cat@example.com", "eve@example.com"]
    );

    // Purchases of customers without consent are not sent.
    let (_, out) = shop.run("purchases").await;
    assert!(out.contains("2 purchase event(s) sent"), "{out}");
    let orders: BTreeSet<String> = shop
        .sm
        .events()
        .iter()
        .map(|e| e["externalId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(orders, BTreeSet::from(["SM1001".into(), "SM1005".into()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_severity_test_mode_and_a_killed_run_retried_without_duplicates() {
    let shop = Shop::new(&["consent=all"]).await;
    let sm = &shop.sm;
    shop.run("contacts").await;

    // retry: SALESmanago down.
    sm.inject(&[503]);
    let (code, out) = shop.run("purchases").await;
    assert!(
        out.contains("RETRY  SALESmanago answered 503 to contact/upsert"),
        "{out}"
    );
    assert_ne!(code, Some(0));
    assert!(sm.events().is_empty());

    // A host killed while SALESmanago is slow with the run's second event;
    // the next host finds the run interrupted and retries it: every order's
    // event exactly once.
    sm.stall_events_after(1);
    let serve = |shop: &Shop| {
        let mut args: Vec<String> = crate::serve_cli::QUICK_SERVE
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(shop.net.iter().cloned());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::serve_cli::Server::start(crate::cli::command(&argv, &shop.db))
    };
    let server = tokio::task::block_in_place(|| serve(&shop));
    shop.ok(&["run-now", "acme/salesmanago", "purchases"], false)
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while sm
        .calls()
        .iter()
        .filter(|c| c.ends_with("addContactExtEvent"))
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "{}", server.output());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.signal("-KILL");
    drop(server);
    assert_eq!(
        sm.events().len(),
        1,
        "the first event landed, the second hung"
    );
    sm.stall_events_after(usize::MAX / 2);
    let server = tokio::task::block_in_place(|| serve(&shop));
    tokio::task::block_in_place(|| server.wait_for(&["OK", "acme/salesmanago purchases"]));
    assert!(
        server.output().contains("INTERRUPTED"),
        "{}",
        server.output()
    );
    drop(server);
    let mut ids: Vec<String> = sm
        .events()
        .iter()
        .map(|e| e["externalId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["SM1001", "SM1002", "SM1005"], "each order once");

    // info: nothing but skipped orders pending.
    let cancelled = shop.dir.path().join("cancel.jsonl");
    let mut order: Value = serde_json::from_str(
        std::fs::read_to_string(
            airlock_tests::repo_root().join("tests/fixtures/marketing/orders.jsonl"),
        )
        .unwrap()
        .lines()
        .find(|l| l.contains("SM1003"))
        .unwrap(),
    )
    .unwrap();
    order["totals"]["total"] = json!("80.00");
    std::fs::write(&cancelled, format!("{order}\n")).unwrap();
    shop.ok(
        &[
            "records",
            "import",
            "acme",
            "orders",
            cancelled.to_str().unwrap(),
        ],
        false,
    )
    .await;
    let (code, out) = shop.run("purchases").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("INFO  0 purchase event(s) sent, 1 order(s) skipped"),
        "a changed cancelled order is info: {out}"
    );

    // Test mode: the feeds run and send nothing (every call is a POST).
    shop.ok(&["mode", "acme/salesmanago", "test"], false).await;
    let customers = shop.dir.path().join("new.jsonl");
    std::fs::write(
        &customers,
        "{\"id\": \"cust-new\", \"email\": \"new@example.com\", \"name\": \"New\", \"marketing_consent\": true}\n",
    )
    .unwrap();
    shop.ok(
        &[
            "records",
            "import",
            "acme",
            "customers",
            customers.to_str().unwrap(),
        ],
        false,
    )
    .await;
    let calls = sm.calls().len();
    let test_run = shop
        .cli(
            &[
                "run",
                "plugins/salesmanago",
                "--feed",
                "contacts",
                "--tenant",
                "acme",
                "--installation",
                "salesmanago",
            ],
            true,
        )
        .await;
    let text = crate::cli::text(&test_run);
    assert_eq!(sm.calls().len(), calls, "test mode sent something: {text}");
    assert!(!sm.contacts().contains_key("new@example.com"));

    // error: the API secret changed at SALESmanago → "Not authenticated".
    shop.ok(&["mode", "acme/salesmanago", "live"], false).await;
    let wrong = shop.dir.path().join("wrong.toml");
    std::fs::write(&wrong, "api_secret = \"not-the-secret\"\n").unwrap();
    let refused = shop
        .cli(
            &[
                "reauthorise",
                "acme/salesmanago",
                "--check-mode",
                "live",
                &format!("--config-file={}", wrong.display()),
            ],
            true,
        )
        .await;
    let text = crate::cli::text(&refused);
    assert_ne!(refused.status.code(), Some(0), "{text}");
    assert!(text.contains("did not accept the credentials"), "{text}");
    // Not saved: the installed secret still works.
    let (code, out) = shop.run("contacts").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 contact(s) sent"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_in_and_opt_out_callbacks_update_the_customer_through_the_security_parameter() {
    let shop = Shop::new(&["consent=all"]).await;
    shop.run("contacts").await;
    let made = shop
        .ok(&["webhooks", "secret", "acme/salesmanago"], false)
        .await;
    let secret = made
        .split("shown only now (it is stored hashed): ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        secret.len() <= 16,
        "SALESmanago's security parameter is at most 16 characters"
    );
    let mut args: Vec<String> = crate::serve_cli::QUICK_SERVE
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--listen".to_string(), "127.0.0.1:0".to_string()]);
    args.extend(shop.net.iter().cloned());
    let db = shop.db.clone();
    let server = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::serve_cli::Server::start(crate::cli::command(&args, &db))
    })
    .await
    .unwrap();
    server.wait_for(&["listening on http://"]);
    let base = server
        .output()
        .lines()
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
        .unwrap();
    let client = reqwest::Client::new();
    let call = |hook: &str, secret: &str, email: &str| {
        let url = format!("{base}/hooks/acme/salesmanago/{hook}/{secret}?email={email}");
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    let customer = |id: &'static str| {
        let shop = &shop;
        async move {
            let shown = shop
                .ok(&["records", "show", "acme", "customers", id], false)
                .await;
            let body: String = shown
                .lines()
                .skip_while(|l| l.trim() != "body")
                .skip(1)
                .take_while(|l| l.starts_with("    "))
                .collect();
            serde_json::from_str::<Value>(&body).unwrap()
        }
    };

    assert_eq!(
        call("opt-out", "WRONGWRONGWRONG1", "ann@example.com").await,
        404
    );
    assert_eq!(
        customer("cust-ann").await["newsletter"],
        true,
        "a wrong secret changed nothing"
    );

    assert_eq!(call("opt-out", &secret, "ann@example.com").await, 200);
    let ann = customer("cust-ann").await;
    assert_eq!(
        (ann["newsletter"].clone(), ann["marketing_consent"].clone()),
        (json!(false), json!(false))
    );
    // Subscribers are found too (the contacts feed kept their emails).
    assert_eq!(call("opt-in", &secret, "bob@example.com").await, 200);
    assert_eq!(customer("cust-bob").await["newsletter"], true);
    // Unknown: info, 200, nothing changed.
    assert_eq!(call("opt-out", &secret, "nobody@example.com").await, 200);
    // No email: error, 500 and a notification.
    assert_eq!(call("opt-out", &secret, "").await, 500);
    let notes = shop.ok(&["notifications", "list"], false).await;
    assert!(notes.contains("names no email"), "{notes}");

    // In test mode a callback runs but the customer record is not changed.
    shop.ok(&["mode", "acme/salesmanago", "test"], false).await;
    assert_eq!(call("opt-in", &secret, "ann@example.com").await, 200);
    assert_eq!(customer("cust-ann").await["newsletter"], false);

    let runs = shop.ok(&["runs", "list"], false).await;
    assert!(
        runs.contains("webhook") && runs.contains("opt-out"),
        "{runs}"
    );
    let (_, output) = server.stop();
    assert!(
        !output.contains(&secret) && !output.contains(SECRET),
        "{output}"
    );
}
