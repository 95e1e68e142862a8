//! The `fulfilments` feed: each `shipments` record pending for this
//! installation whose order came from eBay becomes a shipping fulfilment
//! on that order (`POST /order/{orderId}/shipping_fulfillment`).
//!
//! eBay takes no idempotency key here, and a repeat may create a second
//! fulfilment. So each fulfilment eBay creates is remembered in storage
//! (`fulfilment/{shipment}`) and checkpointed at once, before the shipment
//! is acknowledged (acknowledgements commit with the run); and before any
//! POST the order's fulfilments are read (`GET …/shipping_fulfillment`):
//! one with the same tracking number (or, untracked, the same lines) is
//! taken as this shipment's. A run killed between eBay's answer and the
//! checkpoint therefore finds the fulfilment on eBay, and posts nothing.

use airlock_sdk::http::query_escape;
use airlock_sdk::records::{self, Feed, Record};
use airlock_sdk::{Failure, info};
use serde_json::json;

use crate::client::{Ebay, FULFILLMENT, Reply};
use crate::{Settings, Tally, mapping, recall, remember};

/// Records asked for per page.
const PAGE: u32 = 100;

/// Pushes every pending shipment of an eBay order.
pub fn run(ebay: &mut Ebay, settings: &Settings, tally: &mut Tally) -> Result<(), Failure> {
    let mut others = 0u32;
    records::walk("shipments", Feed::Pending, PAGE, |shipment| {
        if shipment.is_deleted() {
            return Ok(());
        }
        let Some(order) = records::get("orders", shipment.str("order_id"))? else {
            // The order may not be imported yet: the shipment stays pending.
            info(&format!(
                "shipment {}: order {} not found yet",
                shipment.id,
                shipment.str("order_id")
            ));
            return Ok(());
        };
        if order.str("channel") != "ebay" || order.str("channel_order_ref").is_empty() {
            // Not an eBay order: nothing for eBay, ever.
            others += 1;
            return shipment.acknowledge();
        }
        push(ebay, settings, &shipment, &order, tally)
    })?;
    tally.summary = format!(
        "{} fulfilments posted to eBay, {} found there already, {others} shipments of other channels",
        tally.changed, tally.unchanged
    );
    Ok(())
}

fn push(
    ebay: &mut Ebay,
    settings: &Settings,
    shipment: &Record,
    order: &Record,
    tally: &mut Tally,
) -> Result<(), Failure> {
    let key = format!("fulfilment/{}", shipment.id);
    if let Some(known) = recall(&key)? {
        tally.unchanged += 1;
        return done(shipment, known["id"].as_str().unwrap_or(""));
    }
    let body = match mapping::fulfilment(&shipment.body, &order.body, &settings.carrier_codes) {
        Ok(b) => b,
        Err(why) => {
            tally
                .refused
                .push(format!("shipment {}: {why}", shipment.id));
            return Ok(());
        }
    };
    let ebay_order = order.str("channel_order_ref");
    let url = format!(
        "{FULFILLMENT}/order/{}/shipping_fulfillment",
        query_escape(ebay_order)
    );
    let existing = ebay.get(&url)?;
    if let Some(id) = mapping::already_fulfilled(&existing, &body) {
        info(&format!(
            "shipment {}: eBay order {ebay_order} already has it as fulfilment {id}",
            shipment.id
        ));
        remember(&key, &json!({ "id": id }), true)?;
        tally.unchanged += 1;
        return done(shipment, &id);
    }
    match ebay.post(&url, &body)? {
        Reply::Done(response) => {
            let id = response
                .header("location")
                .and_then(|l| l.rsplit('/').next())
                .filter(|id| !id.is_empty())
                .ok_or_else(|| {
                    Failure::error(format!(
                        "eBay created a fulfilment on {ebay_order} without a Location"
                    ))
                })?
                .to_string();
            remember(&key, &json!({ "id": id, "order": ebay_order }), true)?;
            tally.changed += 1;
            done(shipment, &id)
        }
        Reply::Refused(why) => {
            tally.refused.push(format!(
                "shipment {} (eBay order {ebay_order}): {why}",
                shipment.id
            ));
            Ok(())
        }
        Reply::Suppressed => {
            tally.suppressed += 1;
            Ok(())
        }
    }
}

/// Acknowledges the shipment and notes eBay's fulfilment id on it.
fn done(shipment: &Record, fulfilment_id: &str) -> Result<(), Failure> {
    if !fulfilment_id.is_empty() {
        shipment.set_external_ref(fulfilment_id)?;
    }
    shipment.acknowledge()
}
