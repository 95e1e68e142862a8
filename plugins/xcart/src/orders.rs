//! The order feeds: `import-orders` (new orders, with the seed's
//! severities) and `update-orders` (status only).
//!
//! `import-orders` asks X-Cart for the orders placed since the end of the
//! last window it finished (10 minutes of overlap; the first run looks
//! back `initial_lookback_days`), and re-checks each order put aside once
//! its hour is up. An order whose record exists is never written again.
//! Its outcome, worst first:
//!
//! - `error` when an order needs a person (an unknown shipping method): it
//!   is remembered as held (checkpointed, so it is reported once and the
//!   next run imports the others; every run looks at it again and imports
//!   it once the config knows its method), and nothing else of the run is
//!   kept, so the window is asked again by the next run;
//! - `ok` when orders were imported (orders pending payment are put aside
//!   and counted in the message);
//! - `retry` after an hour when the only orders it met are pending payment
//!   (put aside, checkpointed);
//! - `info` when it only skipped orders by a business rule (cancelled,
//!   declined, refunded) or found nothing new.
//!
//! In test mode nothing is remembered (the host keeps no records of a test
//! run either), so going live starts from a clean slate.

use airlock_sdk::bindings::airlock::connector::records as wit;
use airlock_sdk::{Failure, Outcome, Status, info, outcome, records, warn};
use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::Run;
use crate::client::range;
use crate::mapping::{self, Decision, id_text, order_record_id};
use crate::state;

/// An order put aside is re-checked after this long (the seed's hour).
pub const RECHECK_SECONDS: i64 = 3600;
/// The window of a run starts this long before the end of the last one.
const OVERLAP_SECONDS: i64 = 600;
/// Storage key of the end of the last window imported.
const CURSOR: &str = "cursor/orders";

/// Writes a record body (its `id` is the record's id).
pub fn put(collection: &str, body: &Value) -> Result<(), Failure> {
    let id = body["id"].as_str().unwrap_or_default();
    wit::put(collection, id, &body.to_string()).map_err(records::failure)
}

#[derive(Default)]
struct Tally {
    imported: u32,
    skipped: Vec<String>,
    pending: Vec<String>,
    waiting: u32,
    problems: Vec<String>,
    held: u32,
    remember: Vec<(String, Value)>,
    forget: Vec<String>,
    /// The `aside/` and `held/` keys stored when the run began.
    stored: BTreeSet<String>,
}

impl Tally {
    /// Forgets the order's `aside/` and `held/` entries, if it has any.
    fn forget_order(&mut self, xid: &str) {
        for key in [format!("aside/{xid}"), format!("held/{xid}")] {
            if self.stored.contains(&key) {
                self.forget.push(key);
            }
        }
    }
}

/// `import-orders`.
pub fn import(run: &Run) -> Result<Outcome, Failure> {
    let shop = &run.settings.shop;
    let now = run.ctx.scheduled_at;
    let from = match state::recall(CURSOR)? {
        Some(c) => c["until"].as_i64().unwrap_or(now) - OVERLAP_SECONDS,
        None => now - run.settings.lookback_seconds,
    };
    let mut t = Tally::default();
    let aside = state::all("aside/")?;
    let held = state::all("held/")?;
    t.stored = aside.iter().chain(&held).map(|(k, _)| k.clone()).collect();
    for (key, entry) in &aside {
        let id = key.trim_start_matches("aside/");
        if entry["next_check"].as_i64().unwrap_or(0) > now + 60 {
            t.waiting += 1;
            continue;
        }
        match shop.get_one("order", id)? {
            Some(order) => consider(run, &order, &mut t)?,
            None => {
                warn(&format!(
                    "order {id} put aside is no longer in X-Cart: forgotten"
                ));
                t.forget.push(key.clone());
            }
        }
    }
    // Orders held for a person are looked at again every run: once the
    // config knows their shipping method they are imported.
    for (key, _) in &held {
        let id = key.trim_start_matches("held/");
        match shop.get_one("order", id)? {
            Some(order) => consider(run, &order, &mut t)?,
            None => t.forget.push(key.clone()),
        }
    }
    let orders = shop.list("order", &range("dateRange", from, now))?;
    info(&format!(
        "{} orders placed since {} in X-Cart",
        orders.len(),
        mapping::time(&json!(from)).unwrap_or_default()
    ));
    for order in &orders {
        let key = format!("aside/{}", id_text(&order["order_id"]));
        let held_key = format!("held/{}", id_text(&order["order_id"]));
        if aside
            .iter()
            .chain(&held)
            .any(|(k, _)| *k == key || *k == held_key)
        {
            continue; // looked at above
        }
        consider(run, order, &mut t)?;
    }
    finish(run, t, now)
}

/// One order not known to be imported.
fn consider(run: &Run, order: &Value, t: &mut Tally) -> Result<(), Failure> {
    let rules = &run.settings.rules;
    let xid = id_text(&order["order_id"]);
    let (aside, held) = (format!("aside/{xid}"), format!("held/{xid}"));
    if records::get("orders", &order_record_id(&rules.installation, order))?.is_some() {
        t.forget_order(&xid);
        return Ok(());
    }
    match mapping::decide(order, rules) {
        Decision::Import(body) => {
            put("orders", &body)?;
            t.imported += 1;
            t.forget_order(&xid);
        }
        Decision::Skip(why) => {
            info(&why);
            t.skipped.push(why);
            t.forget_order(&xid);
        }
        Decision::PendingPayment(why) => {
            info(&why);
            t.pending.push(why);
            let next = run.ctx.scheduled_at + RECHECK_SECONDS;
            t.remember.push((
                aside,
                json!({ "number": mapping::order_number(order), "next_check": next }),
            ));
        }
        Decision::Problem(why) => {
            let known = state::recall(&held)?;
            if known.is_some_and(|k| k["why"] == why.as_str()) {
                t.held += 1;
            } else {
                airlock_sdk::log::write(airlock_sdk::log::Level::Error, &why);
                t.problems.push(why.clone());
                t.remember.push((held, json!({ "why": why })));
            }
        }
    }
    Ok(())
}

/// The outcome, worst first, and what the run keeps.
fn finish(run: &Run, t: Tally, now: i64) -> Result<Outcome, Failure> {
    let live = run.live();
    if live {
        for (key, value) in &t.remember {
            state::remember(key, value)?;
        }
    }
    if let Some(first) = t.problems.first() {
        if live {
            // Held and put-aside orders are kept; imports and the window
            // are not (the host drops them with an error), so the next run
            // asks for the window again and imports the others.
            state::checkpoint()?;
        }
        let more = match t.problems.len() {
            1 => String::new(),
            n => format!(" (and {} more orders)", n - 1),
        };
        return Ok(outcome(
            Status::Error,
            format!(
                "{first}{more}: not imported; the other {} orders found are imported by the next run",
                t.imported
            ),
            0,
        ));
    }
    if live {
        for key in &t.forget {
            state::forget(key)?;
        }
        state::remember(CURSOR, &json!({ "until": now }))?;
    }
    let aside = t.pending.len() as u32 + t.waiting;
    let notes = notes(&t);
    if t.imported > 0 {
        return Ok(outcome(
            Status::Ok,
            format!("imported {} orders{notes}", t.imported),
            t.imported,
        ));
    }
    if !t.pending.is_empty() {
        if live {
            state::checkpoint()?;
        }
        return Ok(airlock_sdk::Outcome {
            status: Status::Retry,
            message: format!(
                "{} orders pending payment (put aside, re-checked in an hour): {}",
                aside, t.pending[0]
            ),
            items: 0,
            retry_after_seconds: Some(RECHECK_SECONDS as u32),
        });
    }
    if let Some(first) = t.skipped.first() {
        return Ok(outcome(Status::Info, format!("{first}{notes}"), 0));
    }
    Ok(outcome(Status::Info, format!("no new orders{notes}"), 0))
}

fn notes(t: &Tally) -> String {
    let mut out = String::new();
    if !t.skipped.is_empty() {
        out.push_str(&format!(
            "; {} skipped (cancelled, declined or refunded)",
            t.skipped.len()
        ));
    }
    let aside = t.pending.len() as u32 + t.waiting;
    if aside > 0 {
        out.push_str(&format!("; {aside} pending payment, re-checked hourly"));
    }
    if t.held > 0 {
        out.push_str(&format!("; {} held for a person (reported before)", t.held));
    }
    out
}

/// `update-orders`: the status of every imported order placed in the
/// look-back period, as X-Cart has it now. Only `status`,
/// `payment_status` and `updated_at` change.
pub fn update(run: &Run) -> Result<Outcome, Failure> {
    let now = run.ctx.scheduled_at;
    let rules = &run.settings.rules;
    let orders = run.settings.shop.list(
        "order",
        &range("dateRange", now - run.settings.lookback_seconds, now),
    )?;
    let mut updated = 0u32;
    for order in &orders {
        let Some(record) = records::get("orders", &order_record_id(&rules.installation, order))?
        else {
            continue;
        };
        if record.body["xcart_installation"] != rules.installation.as_str() {
            continue;
        }
        if let Some(body) = mapping::order_status_update(&record.body, order) {
            info(&format!(
                "order {}: {} → {}",
                mapping::order_number(order),
                record.str("status"),
                body["status"].as_str().unwrap_or("")
            ));
            put("orders", &body)?;
            updated += 1;
        }
    }
    Ok(if updated == 0 {
        outcome(
            Status::Info,
            format!("no status changed ({} orders looked at)", orders.len()),
            0,
        )
    } else {
        outcome(Status::Ok, format!("{updated} orders updated"), updated)
    })
}
