//! eBay connector: imports the seller's eBay orders by last-modified window
//! ([`orders`]), pushes a shipping fulfilment for each despatched eBay
//! order ([`fulfilments`]), pushes quantity and price for products in
//! categories mapped to eBay ([`inventory`]), and publishes eBay's
//! category tree for the operator to map against ([`categories`]).
//!
//! OAuth2 (authorization code, refresh) is the host's: the connector asks
//! it for the access token. Build with `scripts/build-plugins.sh`; install
//! and authorise as `docs/integrations/ebay.md` says.

pub mod categories;
pub mod client;
pub mod fulfilments;
pub mod inventory;
pub mod mapping;
pub mod orders;
pub mod time;

use std::collections::BTreeMap;

use airlock_sdk::bindings::Guest;
use airlock_sdk::{Failure, Mode, Outcome, RunContext, Status, outcome, storage};
use serde_json::Value;

use client::{Ebay, FULFILLMENT};

/// The installation's settings, from its config.
pub struct Settings {
    /// The marketplace whose category tree and offers are used.
    pub marketplace_id: String,
    /// `Content-Language` of Inventory API writes.
    pub content_language: String,
    /// Days the first orders window reaches back.
    pub initial_days: u32,
    /// Minutes each orders window overlaps the last.
    pub overlap_minutes: u32,
    /// Carrier name (lower case) → eBay carrier code.
    pub carrier_codes: BTreeMap<String, String>,
    /// The longest `Retry-After` waited out in a run.
    pub max_wait_seconds: u32,
}

impl Settings {
    /// Reads and checks the config.
    pub fn load() -> Result<Self, Failure> {
        let marketplace_id = airlock_sdk::config_text("marketplace_id", "EBAY_GB");
        if !marketplace_id.starts_with("EBAY_")
            || !marketplace_id[5..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_')
            || marketplace_id.len() < 7
        {
            return Err(Failure::error(format!(
                "config `marketplace_id` is `{marketplace_id}`: it must be an eBay marketplace id like EBAY_GB"
            )));
        }
        let content_language = airlock_sdk::config_text("content_language", "en-GB");
        if !content_language
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Failure::error(format!(
                "config `content_language` is `{content_language}`: it must be a language tag like en-GB"
            )));
        }
        let carrier_codes = mapping::carrier_codes(&airlock_sdk::config_text("carrier_codes", ""))
            .map_err(|e| Failure::error(format!("config `carrier_codes`: {e}")))?;
        Ok(Self {
            marketplace_id,
            content_language,
            initial_days: airlock_sdk::config_number("initial_days", 30, 1..=730)?,
            overlap_minutes: airlock_sdk::config_number("overlap_minutes", 10, 0..=1440)?,
            carrier_codes,
            max_wait_seconds: airlock_sdk::config_number("max_wait_seconds", 30, 0..=300)?,
        })
    }
}

/// What a feed did, for its outcome.
#[derive(Debug, Default)]
pub struct Tally {
    /// Changes made (records written, fulfilments posted, SKUs updated,
    /// categories published).
    pub changed: u32,
    /// Items looked at and found already right.
    pub unchanged: u32,
    /// Writes not sent because the run is in test mode.
    pub suppressed: u32,
    /// Items eBay refused or that could not be sent, each in one line.
    pub refused: Vec<String>,
    /// Items skipped by a business rule, each in one line (logged).
    pub skipped: Vec<String>,
    /// The feed's summary of what it did.
    pub summary: String,
}

impl Tally {
    /// What the run did, in one line.
    pub fn describe(&self, calls: u32) -> String {
        let mut message = if self.summary.is_empty() {
            format!("stopped after {calls} calls to eBay")
        } else {
            format!("{} ({calls} calls to eBay)", self.summary)
        };
        if self.suppressed > 0 {
            message.push_str(&format!("; {} writes not sent: test mode", self.suppressed));
        }
        if let Some(first) = self.skipped.first() {
            message.push_str(&format!("; {} skipped: {first}", self.skipped.len()));
        }
        message
    }

    /// The run's outcome: `error` if anything was refused, `info` if
    /// nothing changed, else `ok`.
    pub fn outcome(&self, calls: u32) -> Outcome {
        let message = self.describe(calls);
        if let Some(first) = self.refused.first() {
            return outcome(
                Status::Error,
                format!("{message}; {} refused: {first}", self.refused.len()),
                self.changed,
            );
        }
        if self.changed == 0 && self.suppressed == 0 {
            return outcome(Status::Info, format!("nothing to change: {message}"), 0);
        }
        outcome(Status::Ok, message, self.changed)
    }
}

/// A remembered value from the installation's storage.
pub fn recall(key: &str) -> Result<Option<Value>, Failure> {
    let value = storage::get(key).map_err(airlock_sdk::storage_failure)?;
    Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
}

/// Remembers `value`; with `now`, checkpoints at once so it survives the
/// run failing or being killed (else it commits with the run).
pub fn remember(key: &str, value: &Value, now: bool) -> Result<(), Failure> {
    let bytes = serde_json::to_vec(value).map_err(|e| Failure::error(e.to_string()))?;
    storage::set(key, &bytes).map_err(airlock_sdk::storage_failure)?;
    if now {
        storage::checkpoint().map_err(airlock_sdk::storage_failure)?;
    }
    Ok(())
}

struct EbayConnector;

impl Guest for EbayConnector {
    fn run(ctx: RunContext) -> Outcome {
        let settings = match Settings::load() {
            Ok(s) => s,
            Err(f) => return f.into_outcome(0),
        };
        let mut ebay = match Ebay::connect(settings.max_wait_seconds, &settings.content_language) {
            Ok(e) => e,
            Err(f) => return f.into_outcome(0),
        };
        let live = ctx.mode == Mode::Live;
        let mut tally = Tally::default();
        let result = match ctx.feed.as_str() {
            "orders" => orders::run(&mut ebay, &settings, ctx.scheduled_at, live, &mut tally),
            "fulfilments" => fulfilments::run(&mut ebay, &settings, &mut tally),
            "inventory" => inventory::run(&mut ebay, &settings, &mut tally),
            "categories" => categories::run(&mut ebay, &settings, &mut tally),
            other => return outcome(Status::Error, format!("unknown feed `{other}`"), 0),
        };
        for line in &tally.refused {
            airlock_sdk::log::write(airlock_sdk::log::Level::Error, line);
        }
        match result {
            Ok(()) => tally.outcome(ebay.calls),
            Err(f) => f
                .context(&tally.describe(ebay.calls))
                .into_outcome(tally.changed),
        }
    }

    fn check() -> Result<(), String> {
        Settings::load().map_err(|f| f.message().to_string())?;
        // "Test connection": a fresh token is got with the stored refresh
        // token (proving the client id and secret), then used for one read
        // of the seller's orders. Before the operator has authorised, the
        // config is all there is to prove.
        let mut ebay = match Ebay::connect(30, "en-GB") {
            Ok(e) => e,
            Err(Failure::Error(m)) if m.starts_with("OAuth is not configured") => return Ok(()),
            Err(f) => return Err(f.message().to_string()),
        };
        ebay.prove_client().map_err(|f| f.message().to_string())?;
        ebay.get(&format!("{FULFILLMENT}/order?limit=1"))
            .map(|_| ())
            .map_err(|f| f.message().to_string())
    }
}

airlock_sdk::bindings::export_connector!(EbayConnector);
