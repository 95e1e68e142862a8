//! The `categories` feed: eBay's default category tree for the marketplace
//! (Taxonomy `get_default_category_tree_id`, then `category_tree/{id}`),
//! published as the artifact `ebay-categories.json` for the operator to map
//! the shop's categories against (the mapping itself is `category-mappings`
//! records with channel `ebay`). The tree is large and changes rarely: it
//! is fetched only when its version differs from the one last published.

use std::io::Write as _;

use airlock_sdk::artifacts::ArtifactWriter;
use airlock_sdk::http::query_escape;
use airlock_sdk::{Failure, info};
use serde_json::{Value, json};

use crate::client::{Ebay, TAXONOMY};
use crate::{Settings, Tally, mapping, recall, remember};

/// The artifact's name.
pub const ARTIFACT: &str = "ebay-categories.json";
const VERSION_KEY: &str = "categories/published";

/// Publishes the tree if its version changed.
pub fn run(ebay: &mut Ebay, settings: &Settings, tally: &mut Tally) -> Result<(), Failure> {
    let market = &settings.marketplace_id;
    let current = ebay.get(&format!(
        "{TAXONOMY}/get_default_category_tree_id?marketplace_id={}",
        query_escape(market)
    ))?;
    let id = current["categoryTreeId"].as_str().unwrap_or("").to_string();
    let version = current["categoryTreeVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Failure::error(format!(
            "eBay gave no usable category tree id for {market}"
        )));
    }
    let published = json!({ "marketplace_id": market, "id": id, "version": version });
    if recall(VERSION_KEY)?.is_some_and(|p| p == published) {
        tally.unchanged += 1;
        tally.summary =
            format!("eBay category tree {id} version {version} for {market} already published");
        return Ok(());
    }
    let tree = ebay.get(&format!("{TAXONOMY}/category_tree/{id}"))?;
    let categories = mapping::flatten_tree(&tree);
    let leaves = categories.iter().filter(|c| c["leaf"] == true).count();
    write(&published, &categories)?;
    remember(VERSION_KEY, &published, false)?;
    info(&format!("{} categories, {leaves} leaves", categories.len()));
    tally.changed += 1;
    tally.summary = format!(
        "published eBay category tree {id} version {version} for {market} as {ARTIFACT}: {} categories",
        categories.len()
    );
    Ok(())
}

fn write(published: &Value, categories: &[Value]) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::error(format!("writing {ARTIFACT}: {e}"));
    let mut out = ArtifactWriter::begin(ARTIFACT, "application/json")?;
    write!(
        out,
        "{{\"marketplace_id\":{},\"category_tree_id\":{},\"category_tree_version\":{},\"categories\":[",
        published["marketplace_id"], published["id"], published["version"]
    )
    .map_err(io)?;
    for (i, c) in categories.iter().enumerate() {
        if i > 0 {
            out.write_all(b",\n").map_err(io)?;
        }
        out.write_all(c.to_string().as_bytes()).map_err(io)?;
    }
    out.write_all(b"]}\n").map_err(io)?;
    out.finish()?;
    Ok(())
}
