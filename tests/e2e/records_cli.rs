//! `airlock records`, run as an operator would: import a file of records
//! (with progress), list them, show one, export them back, refuse a bad
//! file naming its line and field without writing anything, refuse unknown
//! names with exit 2, and un-acknowledge a record so it is pending again.

use std::path::Path;

use serde_json::json;

use crate::cli::{airlock, expect, text};

/// A product line of the import file: a realistic body of `products`.
fn product(i: usize) -> String {
    json!({
        "id": format!("p-{i:04}"),
        "sku": format!("SKU-{i:04}"),
        "title": format!("Product {i}"),
        "description": "A product of the end-to-end test",
        "url": format!("https://shop.example/p/{i}"),
        "image_urls": [format!("https://shop.example/img/{i}.jpg")],
        "price": format!("{}.{:02}", i % 500, i % 100),
        "currency": "GBP",
        "brand": "Acme",
        "condition": "new",
        "category_ids": ["cat-1"],
    })
    .to_string()
}

/// A database with tenant `acme` and its installation `acme/xero` (the
/// hello plugin, installed under that name to consume records).
fn setup(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("airlock.db");
    expect(
        &airlock(&["tenant", "add", "acme"], &db),
        0,
        "added tenant acme",
    );
    let install = [
        "install",
        "plugins/hello",
        "--tenant",
        "acme",
        "--name",
        "xero",
        "--skip-check",
        "--yes",
    ];
    expect(&airlock(&install, &db), 0, "installed acme/xero");
    db
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn import_list_show_and_export_round_trip_a_collection() {
    let dir = tempfile::tempdir().unwrap();
    let db = setup(dir.path());
    let lines: Vec<String> = (0..2_500).map(product).collect();
    let file = dir.path().join("products.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let path = file.to_str().unwrap();

    let dry = airlock(
        &["records", "import", "acme", "products", path, "--dry-run"],
        &db,
    );
    expect(
        &dry,
        0,
        "2,500 records of products would be written (nothing was)",
    );

    let out = airlock(&["records", "import", "acme", "products", path], &db);
    expect(
        &out,
        0,
        "imported 2,500 records into acme/products (versions 1 to 2500)",
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    for step in ["1,000", "2,000", "2,500"] {
        assert!(
            progress.contains(&format!("imported {step} of 2,500 records")),
            "{progress}"
        );
    }

    let list = airlock(
        &["records", "list", "acme", "products", "--limit", "2"],
        &db,
    );
    expect(&list, 0, "(more may follow: --after 2)");
    let shown = stdout(&list);
    let rows: Vec<&str> = shown.lines().collect();
    assert_eq!(rows.len(), 3, "{shown}");
    assert!(
        rows[0].starts_with("id ") && rows[0].contains("version"),
        "{shown}"
    );
    assert!(
        rows[1].starts_with("p-0000 ") && rows[1].contains("platform"),
        "{shown}"
    );
    let tail = airlock(
        &["records", "list", "acme", "products", "--after", "2499"],
        &db,
    );
    expect(&tail, 0, "p-2499");
    assert_eq!(stdout(&tail).lines().count(), 2, "{}", text(&tail));

    let show = airlock(&["records", "show", "acme", "products", "p-0042"], &db);
    expect(&show, 0, "record products/p-0042 of acme");
    let shown = stdout(&show);
    assert!(shown.contains("  version    43"), "{shown}");
    assert!(shown.contains("\"title\": \"Product 42\""), "{shown}");
    assert!(shown.contains("by no installation"), "{shown}");
    let missing = airlock(&["records", "show", "acme", "products", "p-9999"], &db);
    expect(&missing, 2, "no record products/p-9999");

    let export = airlock(&["records", "export", "acme", "products"], &db);
    expect(&export, 0, "exported 2,500 records");
    assert_eq!(
        stdout(&export),
        lines.join("\n") + "\n",
        "the bodies round-trip"
    );
    let copy = dir.path().join("copy.jsonl");
    let to_file = airlock(
        &[
            "records",
            "export",
            "acme",
            "products",
            "--out",
            copy.to_str().unwrap(),
        ],
        &db,
    );
    expect(&to_file, 0, "exported 2,500 records of products to");
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        lines.join("\n") + "\n"
    );

    // Importing the export again replaces each record with a new version.
    let again = airlock(
        &[
            "records",
            "import",
            "acme",
            "products",
            copy.to_str().unwrap(),
        ],
        &db,
    );
    expect(&again, 0, "(versions 2501 to 5000)");
}

#[test]
fn an_invalid_line_is_refused_naming_line_and_field_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = setup(dir.path());
    let mut lines: Vec<String> = (0..1_500).map(product).collect();
    lines[2] = lines[2].replace("\"currency\":\"GBP\"", "\"currency\":\"pounds\"");
    lines[1_200] = json!({"id": "p-1200", "title": "No price", "currency": "GBP"}).to_string();
    lines[1_300] = "{\"id\": ".into();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = airlock(
        &[
            "records",
            "import",
            "acme",
            "products",
            file.to_str().unwrap(),
        ],
        &db,
    );
    expect(&out, 2, "the file is refused, nothing was written");
    let all = text(&out);
    assert!(
        all.contains("line 3: /currency: \"pounds\" does not match"),
        "{all}"
    );
    assert!(
        all.contains("line 1201: /price: required but missing"),
        "{all}"
    );
    assert!(all.contains("line 1301: not JSON"), "{all}");
    let list = airlock(&["records", "list", "acme", "products"], &db);
    expect(&list, 0, "no records");
}

#[test]
fn unknown_tenants_collections_and_installations_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = setup(dir.path());
    let file = dir.path().join("one.jsonl");
    std::fs::write(&file, product(1)).unwrap();
    let path = file.to_str().unwrap();
    for (args, needle) in [
        (
            &["records", "import", "nobody", "products", path][..],
            "no tenant `nobody`",
        ),
        (
            &["records", "list", "nobody", "products"][..],
            "no tenant `nobody`",
        ),
        (
            &["records", "export", "nobody", "products"][..],
            "no tenant `nobody`",
        ),
        (
            &["records", "import", "acme", "widgets", path][..],
            "`widgets` is not a collection",
        ),
        (
            &["records", "list", "acme", "widgets"][..],
            "known: products, categories",
        ),
        (
            &[
                "records",
                "list",
                "acme",
                "products",
                "--pending-for",
                "sage",
            ][..],
            "no installation `acme/sage`",
        ),
        (
            &[
                "records",
                "import",
                "acme",
                "products",
                "/nonexistent/x.jsonl",
            ][..],
            "cannot read /nonexistent/x.jsonl",
        ),
    ] {
        expect(&airlock(args, &db), 2, needle);
    }
    let imported = airlock(&["records", "list", "acme", "products"], &db);
    expect(&imported, 0, "no records");
}

/// Acknowledges `id` at `version` for `installation`, as a finished run of
/// it would have (the tests cannot run a records-consuming plugin yet).
fn ack(db: &Path, installation: &str, id: &str, version: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute(
        "INSERT INTO record_acks (tenant, installation, collection, id, version, acked_at)
         VALUES ('acme', ?1, 'products', ?2, ?3, 1795428000)",
        rusqlite::params![installation, id, version],
    )
    .unwrap();
}

#[test]
fn unack_makes_an_acknowledged_record_pending_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = setup(dir.path());
    let file = dir.path().join("three.jsonl");
    std::fs::write(&file, [product(1), product(2), product(3)].join("\n")).unwrap();
    let path = file.to_str().unwrap();
    expect(
        &airlock(&["records", "import", "acme", "products", path], &db),
        0,
        "imported 3 records",
    );
    ack(&db, "xero", "p-0001", 1);
    ack(&db, "xero", "p-0002", 2);

    let pending = |db: &Path| {
        let out = airlock(
            &[
                "records",
                "list",
                "acme",
                "products",
                "--pending-for",
                "xero",
            ],
            db,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        stdout(&out)
    };
    let before = pending(&db);
    assert!(
        before.contains("p-0003") && before.contains(" new"),
        "{before}"
    );
    assert!(
        !before.contains("p-0001") && !before.contains("p-0002"),
        "{before}"
    );

    let show = airlock(&["records", "show", "acme", "products", "p-0001"], &db);
    expect(&show, 0, "xero");
    assert!(
        text(&show).contains("version 1 at 2026-11-23 10:00:00Z (the current version)"),
        "{}",
        text(&show)
    );

    let unack = [
        "records",
        "unack",
        "acme",
        "products",
        "p-0001",
        "--installation",
        "xero",
    ];
    expect(
        &airlock(&unack, &db),
        0,
        "removed xero's acknowledgement of products/p-0001",
    );
    expect(
        &airlock(&unack, &db),
        0,
        "xero had not acknowledged products/p-0001",
    );
    let after = pending(&db);
    assert!(after.contains("p-0001"), "{after}");
    assert!(!after.contains("p-0002"), "{after}");

    // A change after the acknowledgement: pending again, as changed.
    std::fs::write(&file, product(2).replace("Product 2", "Product two")).unwrap();
    expect(
        &airlock(&["records", "import", "acme", "products", path], &db),
        0,
        "imported 1 record into",
    );
    let changed = pending(&db);
    assert!(
        changed.contains("changed (acknowledged version 2)"),
        "{changed}"
    );

    let nobody = [
        "records",
        "unack",
        "acme",
        "products",
        "p-0001",
        "--installation",
        "sage",
    ];
    expect(&airlock(&nobody, &db), 2, "no installation `acme/sage`");
    let no_record = [
        "records",
        "unack",
        "acme",
        "products",
        "p-7",
        "--installation",
        "xero",
    ];
    expect(&airlock(&no_record, &db), 2, "no record products/p-7");
}
