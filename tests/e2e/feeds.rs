//! The feed connectors, run as an operator would: a tenant's catalogue
//! imported with `airlock records import` (`tests/fixtures/catalog/`: mapped
//! and unmapped categories, stock at locations, tricky characters), then
//! `airlock run … --grant-data` of the Python connectors (`google-shopping`,
//! `affiliates`, componentize-py) and the JavaScript one (`sitemap`,
//! componentize-js), and the sitemap of 100,000 products under the memory
//! cap its manifest sets.

use std::path::{Path, PathBuf};

use crate::cli::{airlock, expect, text};

/// A database with tenant `acme` and the fixture catalogue imported.
fn catalogue(dir: &Path) -> PathBuf {
    let db = dir.join("airlock.db");
    expect(
        &airlock(&["tenant", "add", "acme"], &db),
        0,
        "added tenant acme",
    );
    let fixtures = airlock_tests::repo_root().join("tests/fixtures/catalog");
    for collection in ["categories", "category-mappings", "products", "stock"] {
        let file = fixtures.join(format!("{collection}.jsonl"));
        let out = airlock(
            &[
                "records",
                "import",
                "acme",
                collection,
                file.to_str().unwrap(),
            ],
            &db,
        );
        expect(&out, 0, &format!("into acme/{collection}"));
    }
    db
}

/// `airlock run plugins/PLUGIN --feed FEED --tenant acme --grant-data` in
/// live mode with `config` assignments.
fn run(db: &Path, plugin: &str, feed: &str, config: &[&str]) -> std::process::Output {
    let dir = airlock_tests::plugin_dir(plugin);
    let mut args = vec![
        "run",
        dir.to_str().unwrap(),
        "--feed",
        feed,
        "--tenant",
        "acme",
        "--grant-data",
        "--mode",
        "live",
    ];
    for c in config {
        args.extend(["--config", c]);
    }
    let out = airlock(&args, db);
    println!("{}", text(&out));
    out
}

#[test]
fn google_shopping_publishes_mapped_products_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = catalogue(dir.path());
    let out = run(
        &db,
        "google-shopping",
        "products",
        &[
            "store_url=https://shop.example.co.uk",
            "local_inventory=true",
        ],
    );
    // 8 products: 4 in categories mapped to Google; the clearance lamp
    // (mapped to eBay only) and the stool (no category) are unmapped, one
    // is archived and one priced in euros.
    expect(
        &out,
        0,
        "published google-shopping.xml: 4 products (left out: 2 in no category mapped to Google, \
         1 not active, 1 priced in another currency than GBP); local-inventory.xml: 3 store entries",
    );
    expect(&out, 0, "items 4");
}

#[test]
fn google_shopping_refuses_bad_config_and_needs_its_records_granted() {
    let dir = tempfile::tempdir().unwrap();
    let db = catalogue(dir.path());
    let out = run(
        &db,
        "google-shopping",
        "products",
        &["store_url=https://shop.example.co.uk", "currency=pounds"],
    );
    expect(&out, 4, "`currency` 'pounds' is not an ISO 4217 code");
    let plugin = airlock_tests::plugin_dir("google-shopping");
    let ungranted = airlock(
        &[
            "run",
            plugin.to_str().unwrap(),
            "--feed",
            "products",
            "--tenant",
            "acme",
            "--config",
            "store_url=https://shop.example.co.uk",
        ],
        &db,
    );
    expect(&ungranted, 4, "records: not-granted");
}

#[test]
fn affiliates_publishes_every_active_product() {
    let dir = tempfile::tempdir().unwrap();
    let db = catalogue(dir.path());
    let out = run(
        &db,
        "affiliates",
        "products",
        &["store_url=https://shop.example.co.uk"],
    );
    expect(
        &out,
        0,
        "published affiliates.csv: 7 products (1 inactive left out)",
    );
}

#[test]
fn sitemap_lists_active_categories_and_products() {
    let dir = tempfile::tempdir().unwrap();
    let db = catalogue(dir.path());
    let out = run(
        &db,
        "sitemap",
        "sitemap",
        &["base_url=https://shop.example.co.uk"],
    );
    // 4 active categories and 7 active products; the hidden category and
    // the archived product are left out.
    expect(
        &out,
        0,
        "published sitemap.xml: 11 URLs in one file (left out: 2 inactive)",
    );
}

#[test]
fn sitemap_of_100000_products_is_an_index_of_two_parts_under_its_memory_cap() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    expect(
        &airlock(&["tenant", "add", "acme"], &db),
        0,
        "added tenant acme",
    );
    let file = dir.path().join("products.jsonl");
    let mut lines = String::with_capacity(60 << 20);
    for i in 0..100_000 {
        lines.push_str(
            &serde_json::json!({
                "id": format!("p-{i:06}"),
                "sku": format!("SKU-{i:06}"),
                "title": format!("Product {i}, oak & linen"),
                "description": "A product of the sitemap test, with a description of \
                                realistic length: solid oak frame, washable linen cover.",
                "url": format!("https://shop.example.co.uk/p/product-{i:06}"),
                "image_urls": [format!("https://shop.example.co.uk/img/{i}.jpg")],
                "price": "149.00",
                "currency": "GBP",
                "brand": "Hadley & Co",
                "category_ids": ["cat-sofas"],
                "status": "active",
                "updated_at": "2026-11-20T16:42:10Z",
            })
            .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(&file, lines).unwrap();
    let import = airlock(
        &[
            "records",
            "import",
            "acme",
            "products",
            file.to_str().unwrap(),
        ],
        &db,
    );
    expect(&import, 0, "imported 100,000 records");
    let out = run(
        &db,
        "sitemap",
        "sitemap",
        &["base_url=https://shop.example.co.uk"],
    );
    // Under the manifest's memory_mb (128): a memory stop would exit 4.
    expect(
        &out,
        0,
        "published sitemap.xml: 100000 URLs in an index of 2 parts",
    );
}
