//! `airlock state show|history|rewind` with the real binary: the
//! custom-store connector keeps its orders cursor in storage; after a
//! rewind to before a run, the next run asks the shop for the older
//! window again and imports the orders anew. One tenant's installation
//! name never reaches another tenant's state.

use airlock_tests::fake_store::FakeStore;
use chrono::{Duration, TimeZone, Utc};
use serde_json::Value;

use crate::cli::{expect, text};
use crate::serve_cli::Site;

const NET: [&str; 4] = [
    "--resolve",
    "shop.test=127.0.0.1",
    "--allow-network",
    "127.0.0.0/8",
];

/// `airlock run` of the stored `acme/custom-store` orders feed, due `at`;
/// the run's text.
fn run_orders(site: &Site, at: &str) -> String {
    let mut args = vec![
        "run",
        "plugins/custom-store",
        "--feed",
        "orders",
        "--tenant",
        "acme",
        "--installation",
        "custom-store",
        "--at",
        at,
    ];
    args.extend_from_slice(&NET);
    site.ok(&args)
}

fn json(site: &Site, args: &[&str]) -> Value {
    let out = site.ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The ids of `installation`'s runs, oldest first.
fn run_ids(site: &Site, installation: &str) -> Vec<i64> {
    let runs = json(
        site,
        &["runs", "list", "--json", "--installation", installation],
    );
    let mut ids: Vec<i64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn state_is_shown_its_history_listed_and_a_rewind_makes_the_next_run_redo_the_work() {
    let password = "St4te-shop-password-2231";
    let shop = FakeStore::start(0, "demo", password).await.unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    shop.put_order("R1001", t0 - Duration::hours(2));
    shop.put_order("R1002", t0 - Duration::hours(1));
    let site = Site::new();
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.toml");
    std::fs::write(&secrets, format!("password = \"{password}\"\n")).unwrap();
    let endpoint = format!("endpoint=http://shop.test:{}/api/v1", shop.addr.port());
    site.ok(&["tenant", "add", "acme"]);
    let mut install = vec![
        "install",
        "plugins/custom-store",
        "--tenant",
        "acme",
        "--config",
        &endpoint,
        "--config",
        "username=demo",
        "--config-file",
        secrets.to_str().unwrap(),
        "--yes",
    ];
    install.extend_from_slice(&NET);
    site.ok(&install);

    let first = run_orders(&site, "2026-11-23T10:00:00Z");
    assert!(
        first.contains("imported 2 orders (2 new, 0 updated)"),
        "{first}"
    );
    shop.put_order("R1003", t0 + Duration::minutes(20));
    let second = run_orders(&site, "2026-11-23T11:00:00Z");
    assert!(
        second.contains("imported 1 orders (1 new, 0 updated)"),
        "{second}"
    );
    shop.put_order("R1004", t0 + Duration::minutes(90));
    let third = run_orders(&site, "2026-11-23T12:00:00Z");
    assert!(
        third.contains("imported 1 orders (1 new, 0 updated)"),
        "{third}"
    );
    let ids = run_ids(&site, "acme/custom-store");
    assert_eq!(ids.len(), 3);

    // show: every key, its value and the run that wrote it.
    let shown = site.ok(&["state", "show", "acme/custom-store"]);
    let cursor_line = shown
        .lines()
        .find(|l| l.starts_with("cursor/orders"))
        .unwrap_or_else(|| panic!("no cursor in:\n{shown}"));
    assert!(cursor_line.contains("\"2026-11-23T12:00:00Z\""), "{shown}");
    assert!(cursor_line.contains(&format!("run #{}", ids[2])), "{shown}");
    let r1001 = shown
        .lines()
        .find(|l| l.starts_with("order/R1001"))
        .unwrap();
    assert!(r1001.contains(&format!("run #{}", ids[0])), "{shown}");
    let entries = json(&site, &["state", "show", "acme/custom-store", "--json"]);
    let keys: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "cursor/orders",
            "order/R1001",
            "order/R1002",
            "order/R1003",
            "order/R1004"
        ]
    );
    assert_eq!(entries[0]["changed"]["run_id"], ids[2]);
    assert_eq!(entries[0]["value"]["text"], "2026-11-23T12:00:00Z");

    // history: newest first, each with its run.
    let history = site.ok(&["state", "history", "acme/custom-store", "cursor/orders"]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    for (line, (id, at)) in
        lines
            .iter()
            .zip([(ids[2], "12:00"), (ids[1], "11:00"), (ids[0], "10:00")])
    {
        assert!(line.contains(&format!("run #{id}")), "{history}");
        assert!(
            line.contains(&format!("\"2026-11-23T{at}:00Z\"")),
            "{history}"
        );
    }

    // rewind: shown, refused without a confirmation, then done.
    let rewind = |extra: &[&str]| {
        let before = ids[1].to_string();
        let mut args = vec![
            "state",
            "rewind",
            "acme/custom-store",
            "--to-before-run",
            &before,
        ];
        args.extend_from_slice(extra);
        site.run(&args)
    };
    let unconfirmed = rewind(&[]);
    expect(&unconfirmed, 1, "Pass --yes");
    let plan = text(&unconfirmed);
    assert!(plan.contains("3 key(s) change"), "{plan}");
    assert!(
        plan.contains("\"2026-11-23T12:00:00Z\" -> \"2026-11-23T10:00:00Z\""),
        "{plan}"
    );
    assert!(
        plan.lines()
            .any(|l| l.contains("order/R1003") && l.ends_with("-> (deleted)")),
        "{plan}"
    );
    assert!(
        site.ok(&["state", "show", "acme/custom-store"])
            .contains("order/R1004")
    );
    let dry: Value = serde_json::from_slice(&rewind(&["--dry-run", "--json"]).stdout).unwrap();
    assert_eq!(dry["changes"].as_array().unwrap().len(), 3);
    expect(&rewind(&["--yes"]), 0, "3 key(s) restored");
    let after = json(&site, &["state", "show", "acme/custom-store", "--json"]);
    let keys: Vec<&str> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["cursor/orders", "order/R1001", "order/R1002"]);
    assert_eq!(after[0]["value"]["text"], "2026-11-23T10:00:00Z");
    assert_eq!(after[0]["changed"]["by"], "rewind");
    assert_eq!(after[0]["changed"]["actor"], "cli");
    let history = site.ok(&["state", "history", "acme/custom-store", "cursor/orders"]);
    assert!(
        history
            .lines()
            .next()
            .unwrap()
            .contains(&format!("rewind by cli (to before run #{})", ids[1])),
        "{history}"
    );
    expect(&rewind(&["--yes"]), 0, "already: nothing to do");

    // The next run redoes the work from the older cursor.
    let fourth = run_orders(&site, "2026-11-23T13:00:00Z");
    assert!(
        fourth.contains("imported 2 orders (2 new, 0 updated) modified between 2026-11-23T10:00:00Z and 2026-11-23T13:00:00Z"),
        "{fourth}"
    );
    assert_eq!(
        shop.order_windows().last().unwrap(),
        &(
            "2026-11-23T10:00:00Z".to_string(),
            "2026-11-23T13:00:00Z".to_string()
        )
    );
    let out = site.ok(&["state", "show", "acme/custom-store"]);
    assert!(!out.contains(password), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_tenants_installation_name_never_reaches_anothers_state() {
    let site = Site::new();
    for tenant in ["acme", "globex"] {
        site.ok(&["tenant", "add", tenant]);
    }
    // The same installation name under two tenants, one of them run.
    for tenant in ["acme", "globex"] {
        site.ok(&[
            "install",
            "plugins/hello",
            "--tenant",
            tenant,
            "--name",
            "shop",
            "--yes",
        ]);
    }
    for _ in 0..2 {
        site.ok(&[
            "run",
            "plugins/hello",
            "--feed",
            "greet",
            "--tenant",
            "acme",
            "--installation",
            "shop",
        ]);
    }
    let acme_runs = run_ids(&site, "acme/shop");
    assert_eq!(acme_runs.len(), 2);
    let acme = site.ok(&["state", "show", "acme/shop"]);
    assert!(
        acme.lines()
            .any(|l| l.starts_with("runs") && l.contains("\"2\"")),
        "{acme}"
    );
    expect(
        &site.run(&["state", "show", "globex/shop"]),
        0,
        "globex/shop stores nothing",
    );
    let theirs = site.run(&["state", "history", "globex/shop", "runs"]);
    expect(&theirs, 0, "no history of `runs` in globex/shop");
    // Acme's run id is not a run of globex/shop: refused, nothing changed.
    let refused = site.run(&[
        "state",
        "rewind",
        "globex/shop",
        "--to-before-run",
        &acme_runs[0].to_string(),
        "--yes",
    ]);
    expect(
        &refused,
        2,
        &format!("run #{} is not a run of `globex/shop`", acme_runs[0]),
    );
    // Names that are not installations, or not ids, are bad input.
    expect(
        &site.run(&["state", "show", "initech/shop"]),
        2,
        "no installation `initech/shop`",
    );
    expect(
        &site.run(&["state", "show", "acme/../globex"]),
        2,
        "does not name an installation",
    );
    expect(
        &site.run(&["state", "show", "acme"]),
        2,
        "TENANT/INSTALLATION",
    );
    let still = site.ok(&["state", "show", "acme/shop"]);
    assert_eq!(still, acme, "acme's state is as it was");
    // And rewinding acme to before its first run empties its storage.
    expect(
        &site.run(&[
            "state",
            "rewind",
            "acme/shop",
            "--to-before-run",
            &acme_runs[0].to_string(),
            "--yes",
        ]),
        0,
        "1 key(s) restored",
    );
    expect(
        &site.run(&["state", "show", "acme/shop"]),
        0,
        "acme/shop stores nothing",
    );
}
