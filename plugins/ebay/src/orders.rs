//! The `orders` feed: eBay orders modified in a window become `orders`
//! records (channel `ebay`, id `ebay-{orderId}`).
//!
//! The window runs from where the last one ended (less `overlap_minutes`,
//! as eBay indexes changes with a delay; the first reaches back
//! `initial_days`) to the run's `scheduled-at`, so a late run imports the
//! same orders. It is remembered only with the run's records (never
//! checkpointed, never in test mode): a run that fails or is killed
//! imports the same window again, and records are keyed by the order, so
//! nothing is duplicated. A record already holding what eBay says is not
//! written again: a second run changes nothing.

use airlock_sdk::bindings::airlock::connector::records as wit;
use airlock_sdk::http::query_escape;
use airlock_sdk::{Failure, info, records, warn};
use serde_json::{Value, json};

use crate::client::{Ebay, FULFILLMENT};
use crate::{Settings, Tally, mapping, recall, remember, time};

/// Where the last window ended.
const WINDOW_KEY: &str = "orders/window";
/// Orders asked for per page (eBay's maximum).
const PAGE: u32 = 200;

/// The window `[from, to]` for a run due at `to`.
pub fn window(last_to: Option<i64>, to: i64, settings: &Settings) -> (i64, i64) {
    let first = to - i64::from(settings.initial_days) * 86_400;
    let from = match last_to {
        Some(last) => last - i64::from(settings.overlap_minutes) * 60,
        None => first,
    };
    (from.min(to), to)
}

/// Imports the window ending at `scheduled_at`.
pub fn run(
    ebay: &mut Ebay,
    settings: &Settings,
    scheduled_at: i64,
    live: bool,
    tally: &mut Tally,
) -> Result<(), Failure> {
    let last = recall(WINDOW_KEY)?.and_then(|w| w["to"].as_i64());
    let (from, to) = window(last, scheduled_at, settings);
    let filter = format!(
        "lastmodifieddate:[{}..{}]",
        time::format(from),
        time::format(to)
    );
    info(&format!("eBay orders modified in {filter}"));
    let mut url = Some(format!(
        "{FULFILLMENT}/order?filter={}&limit={PAGE}",
        query_escape(&filter)
    ));
    let mut seen = 0u32;
    while let Some(page_url) = url.take() {
        let page = ebay.get(&page_url)?;
        for order in page["orders"].as_array().into_iter().flatten() {
            seen += 1;
            import(order, tally)?;
        }
        url = next_page(&page)?;
    }
    if live {
        remember(WINDOW_KEY, &json!({ "from": from, "to": to }), false)?;
    }
    tally.summary = format!(
        "{seen} eBay orders modified in the window, {} records written, {} unchanged",
        tally.changed, tally.unchanged
    );
    Ok(())
}

/// The next page's URL, which must stay on the Fulfillment API.
fn next_page(page: &Value) -> Result<Option<String>, Failure> {
    match page["next"].as_str().filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(next) if next.starts_with(&format!("{FULFILLMENT}/order?")) => {
            Ok(Some(next.to_string()))
        }
        Some(next) => Err(Failure::error(format!(
            "eBay's next page is not an orders URL: {}",
            airlock_sdk::http::path(next)
        ))),
    }
}

fn import(order: &Value, tally: &mut Tally) -> Result<(), Failure> {
    let record = match mapping::order_record(order) {
        Ok(r) => r,
        Err(why) => {
            warn(&format!("not imported: {why}"));
            tally.skipped.push(why);
            return Ok(());
        }
    };
    let id = record["id"].as_str().unwrap_or_default().to_string();
    if records::get("orders", &id)?.is_some_and(|r| r.body == record) {
        tally.unchanged += 1;
        return Ok(());
    }
    wit::put("orders", &id, &record.to_string()).map_err(records::failure)?;
    tally.changed += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            marketplace_id: "EBAY_GB".into(),
            content_language: "en-GB".into(),
            initial_days: 30,
            overlap_minutes: 10,
            carrier_codes: Default::default(),
            max_wait_seconds: 30,
        }
    }

    #[test]
    fn windows_follow_on_with_an_overlap() {
        let s = settings();
        let to = 1_800_000_000;
        assert_eq!(window(None, to, &s), (to - 30 * 86_400, to));
        assert_eq!(window(Some(to - 900), to, &s), (to - 900 - 600, to));
        // A window never starts after its end; a long outage is caught up
        // from where it stopped.
        assert_eq!(window(Some(to + 900), to, &s), (to, to));
        assert_eq!(
            window(Some(to - 90 * 86_400), to, &s),
            (to - 90 * 86_400 - 600, to)
        );
    }
}
