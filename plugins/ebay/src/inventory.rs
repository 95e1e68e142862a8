//! The `inventory` feed: quantity and price for every product in a
//! category mapped to eBay (`category-mappings` with channel `ebay`, for
//! this marketplace or any), and only those.
//!
//! Each run works out what eBay should show for each such SKU (its
//! `stock` count: the record without a location, else the sum over
//! locations; its sale price, else its price) and compares it with what was
//! last pushed (`pushed/{sku}` in storage, checkpointed after each push):
//! only a difference is sent, one SKU per `bulk_update_price_quantity`
//! call, to the SKU's offers on the marketplace (`GET /offer?sku=`). A SKU
//! with no offer is not listed on eBay and is left alone: this feed never
//! creates a listing. Updates are absolute, so a run killed after eBay
//! applied one and retried sends the same values again, changing nothing.

use std::collections::{BTreeMap, BTreeSet};

use airlock_sdk::http::query_escape;
use airlock_sdk::records::{self, Feed};
use airlock_sdk::{Failure, info};
use serde_json::Value;

use crate::client::{self, Ebay, INVENTORY, Reply};
use crate::mapping::{self, Listing};
use crate::{Settings, Tally, recall, remember};

/// Records asked for per page.
const PAGE: u32 = 500;

/// The shop's categories mapped to eBay on `marketplace`.
fn mapped_categories(marketplace: &str) -> Result<BTreeSet<String>, Failure> {
    let mut mapped = BTreeSet::new();
    records::walk("category-mappings", Feed::Changes, PAGE, |m| {
        let market = m.str("marketplace_id");
        let for_market = market.is_empty() || market == marketplace;
        if !m.is_deleted() && m.str("channel") == "ebay" && for_market {
            mapped.insert(m.str("category_id").to_string());
        }
        Ok(())
    })?;
    Ok(mapped)
}

/// Units available per SKU.
fn stock_levels() -> Result<BTreeMap<String, u64>, Failure> {
    let mut totals = BTreeMap::new();
    let mut located: BTreeMap<String, u64> = BTreeMap::new();
    records::walk("stock", Feed::Changes, PAGE, |s| {
        if s.is_deleted() {
            return Ok(());
        }
        let quantity = s.body["quantity"].as_u64().unwrap_or(0);
        let sku = s.str("sku").to_string();
        if s.str("location").is_empty() {
            totals.insert(sku, quantity);
        } else {
            *located.entry(sku).or_default() += quantity;
        }
        Ok(())
    })?;
    for (sku, quantity) in located {
        totals.entry(sku).or_insert(quantity);
    }
    Ok(totals)
}

/// Pushes every mapped product whose quantity or price changed.
pub fn run(ebay: &mut Ebay, settings: &Settings, tally: &mut Tally) -> Result<(), Failure> {
    let mapped = mapped_categories(&settings.marketplace_id)?;
    let stock = stock_levels()?;
    let mut listings = Vec::new();
    let mut unmapped = 0u32;
    records::walk("products", Feed::Changes, PAGE, |p| {
        if p.is_deleted() {
            return Ok(());
        }
        match mapping::listing(&p.body, &mapped, &stock) {
            Some(l) => listings.push(l),
            None => unmapped += 1,
        }
        Ok(())
    })?;
    info(&format!(
        "{} categories mapped to eBay: {} products in them with stock, {unmapped} others left alone",
        mapped.len(),
        listings.len()
    ));
    let mut not_listed = 0u32;
    for listing in &listings {
        let key = format!("pushed/{}", listing.sku);
        if recall(&key)?.is_some_and(|m| m == listing.memo()) {
            tally.unchanged += 1;
            continue;
        }
        let offers = offers(ebay, &listing.sku, &settings.marketplace_id)?;
        if offers.is_empty() {
            not_listed += 1;
            info(&format!(
                "SKU {} has no offer on eBay: left alone",
                listing.sku
            ));
            continue;
        }
        push(ebay, listing, &offers, &key, tally)?;
    }
    tally.summary = format!(
        "{} SKUs updated on eBay, {} unchanged, {not_listed} not listed there",
        tally.changed, tally.unchanged
    );
    Ok(())
}

/// The SKU's offer ids on the marketplace; none if eBay has none.
fn offers(ebay: &mut Ebay, sku: &str, marketplace: &str) -> Result<Vec<String>, Failure> {
    let url = format!(
        "{INVENTORY}/offer?sku={}&marketplace_id={}",
        query_escape(sku),
        query_escape(marketplace)
    );
    let body: Value = match ebay.try_get(&url)? {
        Reply::Done(r) => r.json()?,
        // 404 (25713: no offer for this SKU): not listed.
        Reply::Refused(_) | Reply::Suppressed => return Ok(Vec::new()),
    };
    Ok(body["offers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["marketplaceId"].as_str().is_none_or(|m| m == marketplace))
        .filter_map(|o| o["offerId"].as_str().map(str::to_string))
        .collect())
}

fn push(
    ebay: &mut Ebay,
    listing: &Listing,
    offers: &[String],
    key: &str,
    tally: &mut Tally,
) -> Result<(), Failure> {
    let url = format!("{INVENTORY}/bulk_update_price_quantity");
    let response = match ebay.post(&url, &listing.request(offers))? {
        Reply::Done(r) => r,
        Reply::Refused(why) => {
            tally.refused.push(format!("SKU {}: {why}", listing.sku));
            return Ok(());
        }
        Reply::Suppressed => {
            tally.suppressed += 1;
            return Ok(());
        }
    };
    // 200 or 207 Multi-Status: one status per SKU and offer.
    let body: Value = response.json()?;
    let failed: Vec<&Value> = body["responses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["statusCode"].as_u64().is_some_and(|s| s >= 300))
        .collect();
    if failed.is_empty() {
        remember(key, &listing.memo(), true)?;
        tally.changed += 1;
        return Ok(());
    }
    if failed.iter().all(|r| client::retryable(&r["errors"])) {
        return Err(Failure::retry(format!(
            "eBay could not update SKU {} just now: {}",
            listing.sku,
            client::errors_text(&failed[0]["errors"]).unwrap_or_default()
        )));
    }
    let why = failed
        .iter()
        .filter_map(|r| client::errors_text(&r["errors"]))
        .collect::<Vec<_>>()
        .join("; ");
    tally.refused.push(format!("SKU {}: {why}", listing.sku));
    Ok(())
}
