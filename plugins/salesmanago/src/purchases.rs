//! Feed `purchases`: each paid order, once, as a SALESmanago PURCHASE event
//! (`v2/contact/addContactExtEvent`: the products' SKUs, the value, the
//! location, the order as `externalId`), after the buyer's contact is
//! upserted with the order's category-path tags.
//!
//! - Category tags (seed 003): a product in *Category / Subcategory /
//!   Sub-subcategory* gives the contact three tags, one per level's name.
//! - Orders not paid yet (`pending_payment`) are left pending: a later run
//!   sends them once they are paid. Cancelled, refunded, draft, quote and
//!   abandoned orders are not purchases (acknowledged, counted as skipped).
//! - With `consent = consenting`, an order whose customer has not given
//!   `marketing_consent` sends nothing.
//! - Once: the event id SALESmanago returns is kept in storage
//!   (`event/{order}`) and checkpointed at once, so a run killed after it
//!   and retried does not add the event again; an order already sent is
//!   only acknowledged. (A kill between SALESmanago recording the event and
//!   its answer arriving cannot be told apart from a lost request: the
//!   legacy API has no idempotency key. That window is one request long.)

use std::collections::{BTreeSet, HashMap};

use airlock_sdk::records::{self, Feed};
use airlock_sdk::{Failure, config, storage};
use serde_json::{Value, json};

use crate::client::Client;

/// What a run of the feed did.
#[derive(Debug, Default)]
pub struct Sent {
    /// Events added.
    pub events: u32,
    /// Orders that are not purchases, or whose customer did not consent.
    pub skipped: u32,
    /// Orders not paid yet, left for a later run.
    pub waiting: u32,
    /// Orders sent by an earlier run.
    pub already: u32,
}

fn event_key(order: &str) -> String {
    format!("event/{order}")
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn millis(time: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The tags of the categories of `skus`: every level of each category's
/// path, in order, without repeats.
fn category_tags(
    skus: &[String],
    products: &HashMap<String, Value>,
    categories: &HashMap<String, Value>,
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut tags = Vec::new();
    for sku in skus {
        let Some(product) = products.get(sku) else {
            continue;
        };
        let ids = product
            .get("category_ids")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for id in ids.iter().filter_map(Value::as_str) {
            let Some(path) = categories
                .get(id)
                .and_then(|c| c.get("path"))
                .and_then(Value::as_array)
            else {
                continue;
            };
            for level in path.iter().filter_map(Value::as_str).take(3) {
                if seen.insert(level.to_string()) {
                    tags.push(level.to_string());
                }
            }
        }
    }
    tags
}

/// Every body of `collection` by the value of its `key` field.
fn index(collection: &str, key: &str) -> Result<HashMap<String, Value>, Failure> {
    let mut all = HashMap::new();
    records::walk(collection, Feed::Changes, 500, |record| {
        if let Some(k) = record.body.get(key).and_then(Value::as_str) {
            all.insert(k.to_string(), record.body);
        }
        Ok(())
    })?;
    Ok(all)
}

/// Runs the feed.
pub fn run(client: &mut Client) -> Result<Sent, Failure> {
    let consenting_only = config::get("consent").as_deref() != Some("all");
    let location = config::get("location").unwrap_or_default();
    let owner = client.owner().to_string();
    let mut sent = Sent::default();
    // Read once a run, only if an order needs them.
    let mut catalogue: Option<(HashMap<String, Value>, HashMap<String, Value>)> = None;
    records::walk("orders", Feed::Pending, 100, |order| {
        if order.is_deleted() {
            return order.acknowledge();
        }
        let body = &order.body;
        match order.str("status") {
            "pending_payment" => {
                sent.waiting += 1;
                return Ok(());
            }
            "processing" | "on_hold" | "despatched" | "completed" => {}
            _ => {
                sent.skipped += 1;
                return order.acknowledge();
            }
        }
        let key = event_key(&order.id);
        if storage::get(&key)
            .map_err(|e| Failure::retry(format!("storage: {e:?}")))?
            .is_some()
        {
            sent.already += 1;
            return order.acknowledge();
        }
        let email = body["customer"]["email"]
            .as_str()
            .unwrap_or_default()
            .trim();
        if email.is_empty() {
            sent.skipped += 1;
            return order.acknowledge();
        }
        if consenting_only {
            let customer_id = body["customer"]["id"].as_str().unwrap_or_default();
            let consented = !customer_id.is_empty()
                && records::get("customers", customer_id)?
                    .is_some_and(|c| c.body["marketing_consent"] == json!(true));
            if !consented {
                sent.skipped += 1;
                return order.acknowledge();
            }
        }
        let skus: Vec<String> = body["lines"]
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .filter(|l| l["cancelled"] != json!(true))
                    .filter_map(|l| l["sku"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if catalogue.is_none() {
            catalogue = Some((index("products", "sku")?, index("categories", "id")?));
        }
        let (products, categories) = catalogue.as_ref().expect("just read");
        let tags = category_tags(&skus, products, categories);
        let upsert = json!({
            "contact": { "email": email, "name": body["customer"]["name"].as_str().unwrap_or_default() },
            "owner": owner,
            "tags": tags,
            "forceOptIn": false, "forceOptOut": false,
            "forcePhoneOptIn": false, "forcePhoneOptOut": false,
        });
        if client.call("contact/upsert", upsert)?.is_none() {
            return Ok(()); // test mode: nothing is sent
        }
        let number = body["number"].as_str().unwrap_or(&order.id);
        let event = json!({
            "owner": owner,
            "email": email,
            "contactEvent": {
                "date": millis(order.str("placed_at")).unwrap_or(0),
                "contactExtEventType": "PURCHASE",
                "products": skus.join(","),
                "value": body["totals"]["total"].as_str().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0),
                "location": location,
                "externalId": order.id,
                "description": format!("Order {number}"),
            },
        });
        let Some(answer) = client.call("v2/contact/addContactExtEvent", event)? else {
            return Ok(());
        };
        let event_id = answer["eventId"].as_str().unwrap_or("sent");
        storage::set(&key, event_id.as_bytes())
            .and_then(|()| storage::checkpoint())
            .map_err(|e| Failure::retry(format!("storage: {e:?}")))?;
        sent.events += 1;
        order.acknowledge()
    })?;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_three_levels_deep_gives_three_tags_once_each() {
        let products = HashMap::from([
            (
                "A".to_string(),
                json!({"sku": "A", "category_ids": ["lamps"]}),
            ),
            (
                "B".to_string(),
                json!({"sku": "B", "category_ids": ["lamps", "living"]}),
            ),
        ]);
        let categories = HashMap::from([
            (
                "lamps".to_string(),
                json!({"id": "lamps", "path": ["Living room", "Lighting", "Floor lamps"]}),
            ),
            (
                "living".to_string(),
                json!({"id": "living", "path": ["Living room"]}),
            ),
        ]);
        let skus = vec!["A".to_string(), "B".to_string(), "unknown".to_string()];
        assert_eq!(
            category_tags(&skus, &products, &categories),
            ["Living room", "Lighting", "Floor lamps"]
        );
        assert_eq!(millis("2026-11-02T10:01:00Z"), Some(1_793_613_660_000));
    }
}
