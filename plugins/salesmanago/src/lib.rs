//! SALESmanago (seed 003) as an Airlock connector: the shop's contacts with
//! their tags and consent (`contacts`), purchase events with category-path
//! tags (`purchases`), and SALESmanago's opt-in and opt-out callbacks
//! (webhooks `opt-in`, `opt-out`). Built for the `webhook-connector` world.
//!
//! - [`client`]: the legacy API's signed POSTs, pacing, and what answers mean;
//! - [`contacts`], [`purchases`]: the two feeds;
//! - [`callbacks`]: the two webhooks.
//!
//! "Test connection" asks SALESmanago whether the owner is a contact
//! (`contact/hasContact`), which checks the credentials. Every call of the
//! legacy API is a POST, which the host does not send in test mode, so the
//! check says so there: run it with `--check-mode live` (it changes
//! nothing at SALESmanago).

pub mod callbacks;
pub mod client;
pub mod contacts;
pub mod purchases;

use airlock_sdk::webhook_bindings::exports::airlock::connector::webhook_handler;
use airlock_sdk::{Failure, Outcome, RunContext, Status, WebhookDelivery, outcome};
use serde_json::json;

use client::Client;

// Natively (unit tests) nothing exports the connector.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Salesmanago;

/// `info` when a run sent nothing and only skipped (a business rule left
/// nothing to do), else `ok`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn severity_of(sent: u32, skipped: u32, message: String) -> Outcome {
    let status = if sent == 0 && skipped > 0 {
        Status::Info
    } else {
        Status::Ok
    };
    outcome(status, message, sent)
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn run_feed(ctx: &RunContext) -> Result<Outcome, Failure> {
    let mut client = Client::from_config()?;
    match ctx.feed.as_str() {
        "contacts" => {
            let done = contacts::run(&mut client)?;
            let more = if done.more {
                "; more are pending: the next run goes on"
            } else {
                ""
            };
            Ok(severity_of(
                done.sent,
                done.skipped,
                format!(
                    "{} contact(s) sent, {} skipped (consent or not a contact){more}",
                    done.sent, done.skipped
                ),
            ))
        }
        "purchases" => {
            let sent = purchases::run(&mut client)?;
            Ok(severity_of(
                sent.events,
                sent.skipped,
                format!(
                    "{} purchase event(s) sent, {} order(s) skipped (not a purchase or no \
                     consent), {} waiting for payment, {} sent before",
                    sent.events, sent.skipped, sent.waiting, sent.already
                ),
            ))
        }
        other => Err(Failure::error(format!("unknown feed `{other}`"))),
    }
}

impl airlock_sdk::webhook_bindings::Guest for Salesmanago {
    fn run(ctx: RunContext) -> Outcome {
        run_feed(&ctx).unwrap_or_else(|f| f.into_outcome(0))
    }

    fn check() -> Result<(), String> {
        let mut client = Client::from_config().map_err(|f| f.message().to_string())?;
        let owner = client.owner().to_string();
        match client.call("contact/hasContact", json!({ "email": owner })) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(
                "not checked: SALESmanago's API takes only POST requests, which are not sent in \
                 test mode; run the check with --check-mode live (it changes nothing there)"
                    .to_string(),
            ),
            Err(f) => Err(f.message().to_string()),
        }
    }
}

impl webhook_handler::Guest for Salesmanago {
    fn handle(delivery: WebhookDelivery) -> Outcome {
        match delivery.name.as_str() {
            "opt-in" => callbacks::handle(&delivery, true),
            "opt-out" => callbacks::handle(&delivery, false),
            other => Failure::error(format!("unknown webhook `{other}`")).into_outcome(0),
        }
    }
}

// Exported for the component only: the interface export's symbol name
// (`airlock:connector/webhook-handler@0.1.0#handle`) is not one a native
// linker takes, and the native build is for the unit tests.
#[cfg(target_arch = "wasm32")]
airlock_sdk::webhook_bindings::export_webhook_connector!(Salesmanago);
