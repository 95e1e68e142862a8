//! The outbound feeds: `export-stock`, `shipping-confirmation` and the
//! nightly `stock-check`. Every write is a real HTTP `PUT`, so in test mode
//! the host sends none of them (the run reports how many it held back and
//! acknowledges nothing, so going live sends them).
//!
//! Stock is an absolute amount, so sending one again after a run was
//! killed changes nothing. A shipment is confirmed only after X-Cart's
//! order is read: a tracking number it has already is not added again, so
//! a run killed after X-Cart applied a confirmation, and retried, adds no
//! second tracking number.

use airlock_sdk::records::{self, Feed, Record};
use airlock_sdk::{Failure, Outcome, Status, info, outcome, warn};
use std::collections::HashMap;

use crate::Run;
use crate::client::Written;
use crate::mapping::{code, id_text};
use crate::products::xcart_id;

const PAGE: u32 = 200;

#[derive(Default)]
struct Tally {
    sent: u32,
    already: u32,
    suppressed: u32,
    skipped: u32,
    unknown: Vec<String>,
}

impl Tally {
    /// `3 {what}, 1 {skipped}, …`.
    fn message(&self, what: &str, skipped: &str) -> String {
        let mut m = format!("{} {what}", self.sent);
        if self.already > 0 {
            m.push_str(&format!(", {} already in X-Cart", self.already));
        }
        if self.skipped > 0 {
            m.push_str(&format!(", {} {skipped}", self.skipped));
        }
        if self.suppressed > 0 {
            m.push_str(&format!(
                ", {} writes not sent (test mode)",
                self.suppressed
            ));
        }
        if let Some(first) = self.unknown.first() {
            m.push_str(&format!("; {} left pending: {first}", self.unknown.len()));
        }
        m
    }

    fn outcome(&self, what: &str, skipped: &str) -> Outcome {
        let status = if self.sent > 0 {
            Status::Ok
        } else {
            Status::Info
        };
        outcome(status, self.message(what, skipped), self.sent)
    }
}

/// `export-stock`: stock records pending for this installation (changed
/// in Connect) become X-Cart's `amount` of the product with that SKU.
pub fn export_stock(run: &Run) -> Result<Outcome, Failure> {
    let mut t = Tally::default();
    records::walk("stock", Feed::Pending, PAGE, |r| {
        if r.is_deleted() || r.writer == run.ctx.installation {
            // Deleted, or written by import-stock from X-Cart itself.
            t.skipped += u32::from(!r.is_deleted());
            return r.acknowledge();
        }
        if !r.str("location").is_empty() {
            // X-Cart keeps one stock level per product: the total record.
            t.skipped += 1;
            return r.acknowledge();
        }
        let sku = r.str("sku").to_string();
        let Some(id) = xcart_id(&sku)? else {
            warn(&format!(
                "stock of {sku}: no X-Cart product with that SKU was imported"
            ));
            t.unknown.push(format!("no X-Cart product has SKU {sku}"));
            return Ok(());
        };
        let quantity = r.body["quantity"].as_u64().unwrap_or(0).to_string();
        match run
            .settings
            .shop
            .put(&format!("product/{id}"), &[("[amount]".into(), quantity)])?
        {
            Written::Done(_) => {
                t.sent += 1;
                r.acknowledge()
            }
            Written::Suppressed => {
                t.suppressed += 1;
                Ok(())
            }
        }
    })?;
    Ok(t.outcome(
        "stock levels sent to X-Cart",
        "not sent (per location, or imported from X-Cart)",
    ))
}

/// `shipping-confirmation`: each pending shipment of an order this
/// installation imported sets X-Cart's shipping status to
/// `processed_order_status` and adds its tracking number.
pub fn confirm_shipments(run: &Run) -> Result<Outcome, Failure> {
    let mut t = Tally::default();
    records::walk("shipments", Feed::Pending, PAGE, |s| {
        confirm(run, &s, &mut t)
    })?;
    Ok(t.outcome("shipments confirmed in X-Cart", "not for this shop"))
}

fn confirm(run: &Run, shipment: &Record, t: &mut Tally) -> Result<(), Failure> {
    if shipment.is_deleted() {
        return shipment.acknowledge();
    }
    let order = records::get("orders", shipment.str("order_id"))?;
    let Some(order) = order.filter(|o| {
        o.body["xcart_installation"] == run.ctx.installation.as_str()
            && !o.str("xcart_order_id").is_empty()
    }) else {
        t.skipped += 1;
        return shipment.acknowledge();
    };
    let xid = order.str("xcart_order_id").to_string();
    let Some(current) = run.settings.shop.get_one("order", &xid)? else {
        warn(&format!(
            "shipment {}: X-Cart has no order {xid}",
            shipment.id
        ));
        t.unknown.push(format!("X-Cart has no order {xid}"));
        return Ok(());
    };
    let tracking = shipment.str("tracking_number").trim().to_string();
    let has_tracking = tracking.is_empty()
        || current["trackingNumbers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["value"].as_str() == Some(tracking.as_str()));
    let processed = &run.settings.processed_status;
    if has_tracking && code(&current["shippingStatus"]) == *processed {
        t.already += 1;
        return shipment.acknowledge();
    }
    let mut fields = vec![("[shippingStatus]".to_string(), processed.clone())];
    if !has_tracking {
        fields.push(("[trackingNumbers][0][value]".into(), tracking));
    }
    match run.settings.shop.put(&format!("order/{xid}"), &fields)? {
        Written::Done(_) => {
            info(&format!(
                "order {} confirmed shipped (shipment {})",
                order.str("number"),
                shipment.id
            ));
            t.sent += 1;
            shipment.acknowledge()
        }
        Written::Suppressed => {
            t.suppressed += 1;
            Ok(())
        }
    }
}

/// `stock-check`: X-Cart's stock of each SKU against the stock records
/// (the totals, not per location); where they differ X-Cart is corrected
/// to the record, as after go-live stock is managed in Connect.
pub fn stock_check(run: &Run) -> Result<Outcome, Failure> {
    let shop = &run.settings.shop;
    let products: HashMap<String, (String, i64)> = shop
        .list("product", &[])?
        .iter()
        .filter_map(|p| {
            let sku = p["sku"].as_str()?.trim().to_string();
            Some((
                sku,
                (id_text(&p["product_id"]), p["amount"].as_i64().unwrap_or(0)),
            ))
        })
        .collect();
    let (mut matched, mut differ) = (0u32, Vec::<(String, String, i64, u64)>::new());
    let mut t = Tally::default();
    records::walk("stock", Feed::Changes, PAGE, |r| {
        if r.is_deleted() || !r.str("location").is_empty() {
            return Ok(());
        }
        let sku = r.str("sku").to_string();
        let quantity = r.body["quantity"].as_u64().unwrap_or(0);
        match products.get(&sku) {
            None => t.unknown.push(format!("no X-Cart product has SKU {sku}")),
            Some((_, amount)) if *amount == quantity as i64 => matched += 1,
            Some((id, amount)) => differ.push((sku, id.clone(), *amount, quantity)),
        }
        Ok(())
    })?;
    for (sku, id, amount, quantity) in &differ {
        info(&format!(
            "{sku}: X-Cart has {amount}, the stock record {quantity}"
        ));
        match shop.put(
            &format!("product/{id}"),
            &[("[amount]".into(), quantity.to_string())],
        )? {
            Written::Done(_) => t.sent += 1,
            Written::Suppressed => t.suppressed += 1,
        }
    }
    let mut message = format!("{matched} SKUs match, {} differed", differ.len());
    if !differ.is_empty() {
        message.push_str(&format!(": {} corrected in X-Cart", t.sent));
    }
    if t.suppressed > 0 {
        message.push_str(&format!(", {} writes not sent (test mode)", t.suppressed));
    }
    if let Some(first) = t.unknown.first() {
        message.push_str(&format!("; {} unknown to X-Cart: {first}", t.unknown.len()));
    }
    let status = if t.sent > 0 { Status::Ok } else { Status::Info };
    Ok(outcome(status, message, t.sent))
}
