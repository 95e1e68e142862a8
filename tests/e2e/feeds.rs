//! The feed connectors, run as an operator would: a tenant's catalogue
//! imported with `airlock records import` (`tests/fixtures/catalog/`: mapped
//! and unmapped categories, stock at locations, tricky characters), then
//! `airlock run … --grant-data` of the Python connectors (`google-shopping`,
//! `affiliates`, componentize-py) and the JavaScript one (`sitemap`,
//! componentize-js), their artifacts downloaded with `airlock artifacts get`
//! and parsed (XML with roxmltree, CSV with the csv crate), and the sitemap
//! of 100,000 products under the memory cap its manifest sets, split into
//! two parts and an index.

use std::path::{Path, PathBuf};

use crate::cli::{airlock, expect, text};

const G: &str = "http://base.google.com/ns/1.0";
const SITEMAP: &str = "http://www.sitemaps.org/schemas/sitemap/0.9";

/// `airlock artifacts get acme/INSTALLATION NAME` as text.
fn artifact(db: &Path, installation: &str, name: &str) -> String {
    let out = airlock(
        &["artifacts", "get", &format!("acme/{installation}"), name],
        db,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    String::from_utf8(out.stdout).expect("an artifact in UTF-8")
}

/// The text of the child `name` (in namespace `ns`) of `node`.
fn child<'a>(node: roxmltree::Node<'a, 'a>, ns: Option<&str>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.tag_name().name() == name && c.tag_name().namespace() == ns)
        .and_then(|c| c.text())
}

/// The `<loc>`s of a sitemap or sitemap index.
fn locs(xml: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    doc.descendants()
        .filter(|n| n.tag_name().name() == "loc" && n.tag_name().namespace() == Some(SITEMAP))
        .map(|n| n.text().unwrap_or_default().to_string())
        .collect()
}

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

    let xml = artifact(&db, "google-shopping", "google-shopping.xml");
    let doc = roxmltree::Document::parse(&xml).expect("well-formed RSS");
    let rss = doc.root_element();
    assert_eq!(
        (rss.tag_name().name(), rss.attribute("version")),
        ("rss", Some("2.0"))
    );
    assert_eq!(rss.lookup_namespace_uri(Some("g")), Some(G));
    let items: Vec<_> = rss
        .descendants()
        .filter(|n| n.has_tag_name("item"))
        .collect();
    let ids: Vec<_> = items
        .iter()
        .map(|i| child(*i, Some(G), "id").unwrap())
        .collect();
    assert_eq!(
        ids,
        ["sofa-3s-grey", "sofa-2s-oak", "rug-wool-2x3", "rug-jute"]
    );
    for item in &items {
        for (ns, name) in [
            (None, "title"),
            (None, "description"),
            (None, "link"),
            (Some(G), "image_link"),
            (Some(G), "availability"),
            (Some(G), "price"),
            (Some(G), "condition"),
            (Some(G), "google_product_category"),
            (Some(G), "product_type"),
        ] {
            assert!(
                child(*item, ns, name).is_some(),
                "{name} missing in {item:?}"
            );
        }
    }
    let by_id = |id: &str| {
        *items
            .iter()
            .find(|i| child(**i, Some(G), "id") == Some(id))
            .unwrap()
    };
    let sofa = by_id("sofa-3s-grey");
    assert_eq!(child(sofa, Some(G), "price"), Some("899.00 GBP"));
    assert_eq!(child(sofa, Some(G), "sale_price"), Some("749.00 GBP"));
    assert_eq!(child(sofa, Some(G), "availability"), Some("in_stock"));
    assert_eq!(child(sofa, Some(G), "brand"), Some("Hadley & Co"));
    assert_eq!(child(sofa, Some(G), "google_product_category"), Some("460"));
    assert_eq!(
        child(sofa, Some(G), "product_type"),
        Some("Living room > Sofas")
    );
    // Tricky characters come back as written; the line break is folded.
    let oak = by_id("sofa-2s-oak");
    assert_eq!(
        child(oak, None, "title"),
        Some("Sofa \"Oak & Iron\" <2-seater>")
    );
    let description = child(oak, None, "description").unwrap();
    assert!(
        description.contains("<b>bold</b>, quotes \"double\" and 'single', accents café"),
        "{description}"
    );
    assert!(description.contains("中文, emoji 🛋"), "{description}");
    assert_eq!(child(oak, Some(G), "price"), Some("649.50 GBP"));
    assert_eq!(child(oak, Some(G), "mpn"), Some("HAD-2S-OI"));
    // Stock at two locations (0 + 3) is in stock; a total of 0 is not,
    // unless the product is on preorder.
    assert_eq!(child(oak, Some(G), "availability"), Some("in_stock"));
    assert_eq!(
        child(by_id("rug-wool-2x3"), Some(G), "availability"),
        Some("out_of_stock")
    );
    let jute = by_id("rug-jute");
    assert_eq!(child(jute, Some(G), "availability"), Some("preorder"));
    assert_eq!(child(jute, Some(G), "identifier_exists"), Some("no"));
    assert_eq!(
        child(jute, Some(G), "google_product_category"),
        Some("Home & Garden > Decor > Rugs")
    );

    let local = artifact(&db, "google-shopping", "local-inventory.xml");
    let doc = roxmltree::Document::parse(&local).expect("well-formed RSS");
    let mut entries: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("item"))
        .map(|i| {
            [
                child(i, Some(G), "id").unwrap(),
                child(i, Some(G), "store_code").unwrap(),
                child(i, Some(G), "quantity").unwrap(),
            ]
            .join(" ")
        })
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            "sofa-2s-oak leeds 0",
            "sofa-2s-oak york 3",
            "sofa-3s-grey leeds 12"
        ]
    );
    let list = airlock(&["artifacts", "list", "acme/google-shopping"], &db);
    expect(&list, 0, "google-shopping.xml  application/rss+xml");
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
    let list = airlock(&["artifacts", "list", "acme/affiliates"], &db);
    expect(&list, 0, "affiliates.csv  text/csv; charset=utf-8");
    let csv_text = artifact(&db, "affiliates", "affiliates.csv");
    assert!(csv_text.starts_with("product_id,product_name,description,price,currency,deep_link,"));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<std::collections::HashMap<String, String>> = reader
        .records()
        .map(|r| {
            let r = r.expect("an RFC 4180 record");
            headers
                .iter()
                .map(str::to_string)
                .zip(r.iter().map(str::to_string))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 7);
    let row = |id: &str| rows.iter().find(|r| r["product_id"] == id).unwrap();
    let oak = row("sofa-2s-oak");
    assert_eq!(oak["product_name"], "Sofa \"Oak & Iron\" <2-seater>");
    assert!(
        oak["description"].contains("a comma, and\na line break."),
        "{}",
        oak["description"]
    );
    assert_eq!(
        (oak["in_stock"].as_str(), oak["stock_quantity"].as_str()),
        ("1", "3")
    );
    let sofa = row("sofa-3s-grey");
    assert_eq!(sofa["price"], "749.00");
    assert_eq!(sofa["rrp_price"], "899.00");
    assert_eq!(sofa["ean"], "5060123456789");
    assert_eq!(sofa["brand_name"], "Hadley & Co");
    assert_eq!(sofa["merchant_category"], "Living room > Sofas");
    assert_eq!(
        sofa["deep_link"],
        "https://shop.example.co.uk/p/sofa-3s-grey"
    );
    assert_eq!(row("rug-wool-2x3")["in_stock"], "0");
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
    let xml = artifact(&db, "sitemap", "sitemap.xml");
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "urlset");
    let locs = locs(&xml);
    assert_eq!(locs.len(), 11);
    assert_eq!(locs[0], "https://shop.example.co.uk/living-room");
    assert!(locs.contains(&"https://shop.example.co.uk/p/sofa-2s-oak".to_string()));
    let list = airlock(&["artifacts", "list", "acme/sitemap"], &db);
    expect(&list, 0, "sitemap.xml  application/xml");
    assert!(!text(&list).contains("sitemap-1.xml"), "{}", text(&list));
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
    let index = artifact(&db, "sitemap", "sitemap.xml");
    let doc = roxmltree::Document::parse(&index).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "sitemapindex");
    assert_eq!(
        locs(&index),
        [
            "https://shop.example.co.uk/sitemap-1.xml",
            "https://shop.example.co.uk/sitemap-2.xml"
        ]
    );
    for (part, first) in [("sitemap-1.xml", 0), ("sitemap-2.xml", 50_000)] {
        let xml = artifact(&db, "sitemap", part);
        let urls = locs(&xml);
        assert_eq!(urls.len(), 50_000, "{part}");
        assert_eq!(
            urls[0],
            format!("https://shop.example.co.uk/p/product-{first:06}")
        );
        assert!(xml.len() <= 52_428_800);
    }
}
