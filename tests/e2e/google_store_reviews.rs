//! The Google Store Reviews connector (JavaScript, componentize-js) on the
//! marketing fixture shop (`tests/fixtures/marketing/`), installed as an
//! operator would: its file downloaded with `airlock artifacts get` and
//! parsed, a second run that publishes nothing, test mode, and
//! reauthorisation of its settings (a refused one not saved).

use std::path::Path;

use serde_json::Value;

use crate::cli::{airlock, expect, text};

const AT: &str = "--at=2026-11-25T12:00:00Z";

fn run(db: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "plugins/google-store-reviews",
        "--feed",
        "opt-ins",
        "--tenant",
        "acme",
        "--installation",
        "gcr",
        AT,
    ];
    args.extend_from_slice(extra);
    let out = airlock(&args, db);
    println!("{}", text(&out));
    out
}

fn published(db: &Path) -> Value {
    let out = airlock(&["artifacts", "get", "acme/gcr", "gcr-opt-ins.json"], db);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("the file is JSON")
}

fn versions(db: &Path) -> Value {
    let out = airlock(&["artifacts", "list", "acme/gcr", "--json"], db);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn successful_orders_are_published_for_the_snippet_once_and_settings_are_rechecked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    expect(
        &airlock(&["tenant", "add", "acme"], &db),
        0,
        "added tenant acme",
    );
    for c in ["products", "orders"] {
        let file = airlock_tests::repo_root().join(format!("tests/fixtures/marketing/{c}.jsonl"));
        let out = airlock(
            &["records", "import", "acme", c, file.to_str().unwrap()],
            &db,
        );
        expect(&out, 0, "imported");
    }
    let out = airlock(
        &[
            "install",
            "plugins/google-store-reviews",
            "--tenant",
            "acme",
            "--name",
            "gcr",
            "--mode",
            "live",
            "--config",
            "merchant_id=123456",
            "--config",
            "default_country=PL",
            "--yes",
        ],
        &db,
    );
    expect(&out, 0, "installed");

    let out = run(&db, &[]);
    expect(
        &out,
        0,
        "published gcr-opt-ins.json: 3 order(s) (2 not a successful order)",
    );
    let file = published(&db);
    assert_eq!(file["merchant_id"], 123456);
    assert_eq!(
        file["badge"],
        serde_json::json!({"merchant_id": 123456, "position": "BOTTOM_RIGHT"}),
        "the floating review badge's settings"
    );
    let orders = file["orders"].as_object().unwrap();
    assert_eq!(
        orders.keys().collect::<Vec<_>>(),
        ["SM1001", "SM1002", "SM1005"],
        "paid orders only: not the cancelled SM1003 nor the unpaid SM1004"
    );
    assert_eq!(
        orders["SM1001"],
        serde_json::json!({
            "merchant_id": 123456,
            "order_id": "SM1001",
            "email": "ann@example.com",
            "delivery_country": "PL",
            "estimated_delivery_date": "2026-11-25",
            "opt_in_style": "CENTER_DIALOG",
            "products": [{"gtin": "5901234123457"}],
        }),
        "the gift card has no GTIN"
    );
    assert_eq!(orders["SM1005"]["email"], "Eve@Example.com");
    assert_eq!(versions(&db)[0]["version"], 1);

    // The same records again: nothing published (info), the file stays.
    let out = run(&db, &[]);
    expect(&out, 0, "INFO  no change: 3 order(s)");
    assert_eq!(versions(&db)[0]["version"], 1);

    // Reauthorisation: a bad merchant id fails its check and is not saved;
    // a good one is, and the next run publishes it.
    let out = airlock(
        &["reauthorise", "acme/gcr", "--config", "merchant_id=-5"],
        &db,
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("merchant_id"), "{}", text(&out));
    let out = airlock(
        &[
            "reauthorise",
            "acme/gcr",
            "--config",
            "merchant_id=654321",
            "--yes",
        ],
        &db,
    );
    expect(&out, 0, "");
    let out = run(&db, &[]);
    expect(&out, 0, "published gcr-opt-ins.json: 3 order(s)");
    assert_eq!(published(&db)["merchant_id"], 654321);
    assert_eq!(versions(&db)[0]["version"], 2);

    // Test mode: it runs (nothing is ever sent to Google: it makes no
    // request at all), and publishes its own file.
    expect(&airlock(&["mode", "acme/gcr", "test"], &db), 0, "");
    let out = run(&db, &[]);
    expect(&out, 0, "INFO  no change");
    assert!(
        !text(&out).contains("http "),
        "a request was made: {}",
        text(&out)
    );
}
