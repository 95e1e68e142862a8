//! The product feeds: `import-products` (new ones, without images),
//! `update-products` (every product, daily), `import-images` (for the
//! products imported without them) and `import-stock` (manual, at setup or
//! go-live: X-Cart's `amount` becomes the stock records).
//!
//! A product's record id is its SKU (stock records and order lines name
//! products by SKU); X-Cart's id is kept on it as `xcart_product_id`. A
//! record is written only when its body would change, so a second run
//! writes nothing.

use airlock_sdk::records::{self, Feed};
use airlock_sdk::{Failure, Outcome, Status, outcome, warn};
use serde_json::json;

use crate::Run;
use crate::mapping::{self, id_text};
use crate::orders::put;

/// `import-products`: products X-Cart has and the records do not.
pub fn import(run: &Run) -> Result<Outcome, Failure> {
    let products = run.settings.shop.list("product", &[])?;
    let (mut new, mut refused) = (0u32, Vec::new());
    for product in &products {
        let sku = product["sku"].as_str().unwrap_or("").trim();
        if !sku.is_empty() && records::get("products", sku)?.is_some() {
            continue;
        }
        match mapping::product_body(product, &run.settings.rules, None) {
            Ok(body) => {
                put("products", &body)?;
                new += 1;
            }
            Err(why) => {
                warn(&why);
                refused.push(why);
            }
        }
    }
    Ok(summary(
        new,
        products.len(),
        &refused,
        "new products imported",
    ))
}

/// `update-products`: every product's information, for the products
/// imported already (images and other fields set by other feeds kept).
pub fn update(run: &Run) -> Result<Outcome, Failure> {
    let products = run.settings.shop.list("product", &[])?;
    let (mut changed, mut refused) = (0u32, Vec::new());
    for product in &products {
        let sku = product["sku"].as_str().unwrap_or("").trim();
        let Some(current) = records::get("products", sku)? else {
            continue;
        };
        match mapping::product_body(product, &run.settings.rules, Some(&current.body)) {
            Ok(body) if body != current.body => {
                put("products", &body)?;
                changed += 1;
            }
            Ok(_) => {}
            Err(why) => {
                warn(&why);
                refused.push(why);
            }
        }
    }
    Ok(summary(
        changed,
        products.len(),
        &refused,
        "products updated",
    ))
}

fn summary(done: u32, seen: usize, refused: &[String], what: &str) -> Outcome {
    let extra = match refused.first() {
        Some(first) => format!("; {} not imported: {first}", refused.len()),
        None => String::new(),
    };
    let status = if done > 0 { Status::Ok } else { Status::Info };
    outcome(
        status,
        format!("{done} {what} ({seen} products in X-Cart){extra}"),
        done,
    )
}

/// `import-images`: the image URLs of each product this installation
/// imported that has none yet (`image_urls` absent; a product without
/// images in X-Cart gets an empty list, so it is asked once).
pub fn images(run: &Run) -> Result<Outcome, Failure> {
    let mut due = Vec::new();
    records::walk("products", Feed::Changes, 500, |r| {
        if !r.is_deleted()
            && r.body.get("image_urls").is_none()
            && !r.str("xcart_product_id").is_empty()
            && r.writer == run.ctx.installation
        {
            due.push(r.body);
        }
        Ok(())
    })?;
    let mut done = 0u32;
    for mut body in due {
        let id = body["xcart_product_id"].as_str().unwrap_or("").to_string();
        let Some(product) = run.settings.shop.get_one("product", &id)? else {
            warn(&format!("product {id} is no longer in X-Cart"));
            continue;
        };
        body["image_urls"] = json!(mapping::image_urls(&product));
        put("products", &body)?;
        done += 1;
    }
    Ok(if done == 0 {
        outcome(Status::Info, "no product waits for its images", 0)
    } else {
        outcome(
            Status::Ok,
            format!("images of {done} products imported"),
            done,
        )
    })
}

/// `import-stock`: X-Cart's stock level of every product as the stock
/// records (run by hand at setup or go-live; afterwards stock is managed
/// in Connect and pushed by `export-stock`).
pub fn stock(run: &Run) -> Result<Outcome, Failure> {
    let products = run.settings.shop.list("product", &[])?;
    let mut written = 0u32;
    for product in &products {
        let Some(body) = mapping::stock_body(product) else {
            warn(&format!(
                "product {} has no SKU: its stock is not imported",
                id_text(&product["product_id"])
            ));
            continue;
        };
        let sku = body["id"].as_str().unwrap_or_default();
        let same = records::get("stock", sku)?.is_some_and(|r| {
            r.body["quantity"] == body["quantity"] && r.body.get("location").is_none()
        });
        if !same {
            put("stock", &body)?;
            written += 1;
        }
    }
    Ok(outcome(
        if written > 0 {
            Status::Ok
        } else {
            Status::Info
        },
        format!(
            "{written} stock levels imported ({} products in X-Cart)",
            products.len()
        ),
        written,
    ))
}

/// A product's X-Cart id from its record, for the outbound feeds.
pub fn xcart_id(sku: &str) -> Result<Option<String>, Failure> {
    Ok(records::get("products", sku)?
        .and_then(|r| r.body["xcart_product_id"].as_str().map(str::to_string))
        .filter(|id| !id.is_empty()))
}
