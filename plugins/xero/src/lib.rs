//! Xero connector: exports the shop's sales orders, returns and purchase
//! orders to Xero, and pays its invoices and credit notes from the shop's
//! payments and refunds, in the order the seed's scheduler calls them (see
//! [`sync`]). OAuth2 is the host's: the connector only asks it for the
//! access token. Configuration: `plugin.toml`; the mapping: [`mapping`].

pub mod client;
pub mod mapping;
pub mod sync;

use airlock_sdk::bindings::Guest;
use airlock_sdk::{Failure, Outcome, RunContext, Status, config, outcome};

use client::{Pacing, Xero};
use mapping::Accounts;

/// The installation's settings, from its config.
pub struct Settings {
    /// This installation's id (keys its idempotency keys).
    pub installation: String,
    /// The organisation, if configured.
    pub tenant_id: Option<String>,
    /// New invoices are AUTHORISED (else DRAFT).
    pub invoice_status_authorised: bool,
    /// Authorise a draft invoice once its order's lines are all completed.
    pub authorise_when_completed: bool,
    /// `DRAFT` or `AUTHORISED` for new credit notes.
    pub credit_note_status: String,
    /// Account codes.
    pub accounts: Accounts,
    /// The bank account payments and refunds go to.
    pub payment_account_code: String,
    /// Pacing of calls.
    pub pacing: Pacing,
}

fn choice(key: &str, default: &str, allowed: &[&str]) -> Result<String, Failure> {
    let value = config::get(key).unwrap_or_else(|| default.to_string());
    let value = value.trim().to_ascii_lowercase();
    if allowed.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(Failure::error(format!(
            "config `{key}` is `{value}`: it must be one of {}",
            allowed.join(", ")
        )))
    }
}

impl Settings {
    /// Reads and checks the config.
    pub fn load(installation: &str) -> Result<Self, Failure> {
        Ok(Self {
            installation: installation.to_string(),
            tenant_id: config::get("xero_tenant_id").filter(|v| !v.trim().is_empty()),
            invoice_status_authorised: choice("invoice_status", "draft", &["draft", "authorised"])?
                == "authorised",
            authorise_when_completed: choice(
                "authorise_when_completed",
                "true",
                &["true", "false"],
            )? == "true",
            credit_note_status: choice("credit_note_status", "draft", &["draft", "authorised"])?
                .to_ascii_uppercase(),
            accounts: Accounts {
                sales: airlock_sdk::config_text("sales_account_code", "200"),
                shipping: airlock_sdk::config_text("shipping_account_code", "200"),
            },
            payment_account_code: airlock_sdk::config_text("payment_account_code", "090"),
            pacing: Pacing {
                calls_per_minute: airlock_sdk::config_number("calls_per_minute", 60, 1..=10_000)?,
                max_wait_seconds: airlock_sdk::config_number("max_wait_seconds", 60, 0..=300)?,
            },
        })
    }
}

struct XeroConnector;

impl Guest for XeroConnector {
    fn run(ctx: RunContext) -> Outcome {
        if ctx.feed != "sync" {
            return outcome(Status::Error, format!("unknown feed `{}`", ctx.feed), 0);
        }
        let settings = match Settings::load(&ctx.installation) {
            Ok(s) => s,
            Err(f) => return f.into_outcome(0),
        };
        let xero = match Xero::connect(settings.tenant_id.clone(), settings.pacing.clone()) {
            Ok(x) => x,
            Err(f) => return f.into_outcome(0),
        };
        let mut sync = sync::Sync::new(xero, &settings);
        let result = sync.run();
        let tally = &sync.tally;
        let items = tally.acknowledged;
        let summary = format!(
            "{} documents posted to Xero, {} records acknowledged, {} calls{}",
            tally.posted,
            tally.acknowledged,
            sync.xero.calls,
            if tally.suppressed > 0 {
                format!(", {} writes not sent (test mode)", tally.suppressed)
            } else {
                String::new()
            }
        );
        match result {
            Err(f) => f.context(&summary).into_outcome(items),
            Ok(()) if !tally.refused.is_empty() => outcome(
                Status::Error,
                format!(
                    "{summary}; Xero refused {}: {}",
                    tally.refused.len(),
                    tally.refused[0]
                ),
                items,
            ),
            Ok(()) if tally.posted == 0 && tally.acknowledged == 0 => {
                outcome(Status::Info, format!("nothing to export ({summary})"), 0)
            }
            Ok(()) => outcome(Status::Ok, summary, items),
        }
    }

    fn check() -> Result<(), String> {
        let settings = Settings::load("check").map_err(|f| f.message().to_string())?;
        // A fresh token is asked for (client credentials, or the refresh
        // token), so a wrong client id or secret fails here ("Test
        // connection"), then the organisation is looked up. Only a host
        // that gives `check` no token at all leaves the config as all there
        // is to prove.
        match Xero::connect(settings.tenant_id, settings.pacing).and_then(|mut x| x.prove_client())
        {
            Ok(()) => Ok(()),
            Err(Failure::Error(m)) if m.starts_with("OAuth is not configured") => Ok(()),
            Err(f) => Err(f.message().to_string()),
        }
    }
}

airlock_sdk::bindings::export_connector!(XeroConnector);
