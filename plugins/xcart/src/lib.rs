//! X-Cart connector: the Connect feed set (seed `002`) for a merchant's
//! X-Cart 5.0–5.4 shop through its REST API add-on (seed `001`).
//!
//! - inbound ([`orders`], [`products`]): new paid orders, order status
//!   updates, new products, a daily update of every product, product
//!   images, and (manually, at setup or go-live) the stock level, all as
//!   the tenant's records;
//! - outbound ([`outbound`]): stock levels and shipping confirmations to
//!   X-Cart, and the nightly stock check that corrects X-Cart where it
//!   differs from the stock records. The host sends none of their writes
//!   in test mode.
//!
//! The shop's address is an operator-approved config origin (`endpoint`);
//! the API key travels in the query (`_key`), as the add-on requires.
//! Mapping without I/O: [`mapping`]; the API: [`client`].
//!
//! Build with `scripts/build-plugins.sh`; install with
//! `airlock install plugins/xcart --tenant T --config endpoint=https://shop.example.com
//! --config-file secrets.toml` (`api_key = "…"` in the file).

pub mod client;
pub mod mapping;
pub mod orders;
pub mod outbound;
pub mod products;
pub mod state;

use airlock_sdk::bindings::Guest;
use airlock_sdk::{Failure, Mode, Outcome, RunContext, Status, config, outcome};

use client::Endpoint;
use mapping::Rules;

/// The installation's settings, from its config.
pub struct Settings {
    /// The shop's API.
    pub shop: Endpoint,
    /// How records are shaped.
    pub rules: Rules,
    /// The shipping status an order gets once shipped.
    pub processed_status: String,
    /// How far back the first order import looks, in seconds.
    pub lookback_seconds: i64,
}

fn flag(key: &str, default: bool) -> Result<bool, Failure> {
    match config::get(key).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(Failure::error(format!(
            "config `{key}` is `{other}`: it must be true or false"
        ))),
    }
}

impl Settings {
    /// Reads and checks the config.
    pub fn load(installation: &str) -> Result<Self, Failure> {
        let endpoint = airlock_sdk::required_config("endpoint")?;
        let key = config::get_secret("api_key")
            .ok_or_else(|| Failure::error("config `api_key` is not set"))?;
        let processed_status = config::get("processed_order_status")
            .unwrap_or_else(|| "S".into())
            .trim()
            .to_ascii_uppercase();
        if !["P", "S", "D"].contains(&processed_status.as_str()) {
            return Err(Failure::error(format!(
                "config `processed_order_status` is `{processed_status}`: it must be P, S or D"
            )));
        }
        let currency = config::get("currency")
            .unwrap_or_else(|| "GBP".into())
            .trim()
            .to_ascii_uppercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Failure::error(format!(
                "config `currency` is `{currency}`: it must be an ISO 4217 code such as GBP"
            )));
        }
        let days = config::get("initial_lookback_days").unwrap_or_else(|| "30".into());
        let days: i64 = match days.trim().parse() {
            Ok(d) if (0..=3650).contains(&d) => d,
            _ => {
                return Err(Failure::error(format!(
                    "config `initial_lookback_days` is `{days}`: it must be a whole number from 0 to 3650"
                )));
            }
        };
        Ok(Self {
            shop: Endpoint::new(&endpoint, &key)?,
            rules: Rules {
                use_xcart_tax: flag("use_xcart_tax", true)?,
                use_xcart_tax_for_shipping: flag("use_xcart_tax_for_shipping", false)?,
                shipping_surcharge_name: config::get("shipping_surcharge_name")
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "Shipping cost".into()),
                shipping_methods: config::get("shipping_methods")
                    .unwrap_or_default()
                    .split(',')
                    .map(|m| m.trim().to_lowercase())
                    .filter(|m| !m.is_empty())
                    .collect(),
                currency,
                installation: installation.to_string(),
            },
            processed_status,
            lookback_seconds: days * 86_400,
        })
    }
}

/// What a run is asked, as the feeds need it.
pub struct Run<'a> {
    /// The host's context.
    pub ctx: &'a RunContext,
    /// The settings.
    pub settings: Settings,
}

impl Run<'_> {
    /// True in live mode: only then does a run keep what it remembers.
    pub fn live(&self) -> bool {
        self.ctx.mode == Mode::Live
    }
}

struct XCart;

impl Guest for XCart {
    fn run(ctx: RunContext) -> Outcome {
        let settings = match Settings::load(&ctx.installation) {
            Ok(s) => s,
            Err(f) => return f.into_outcome(0),
        };
        let run = Run {
            ctx: &ctx,
            settings,
        };
        let result = match ctx.feed.as_str() {
            "import-orders" => orders::import(&run),
            "update-orders" => orders::update(&run),
            "import-products" => products::import(&run),
            "update-products" => products::update(&run),
            "import-images" => products::images(&run),
            "import-stock" => products::stock(&run),
            "export-stock" => outbound::export_stock(&run),
            "shipping-confirmation" => outbound::confirm_shipments(&run),
            "stock-check" => outbound::stock_check(&run),
            other => Ok(outcome(Status::Error, format!("unknown feed `{other}`"), 0)),
        };
        result.unwrap_or_else(|f| f.into_outcome(0))
    }

    /// "Test connection": one order asked for with the key, so a wrong end
    /// point or key fails here.
    fn check() -> Result<(), String> {
        let settings = Settings::load("check").map_err(|f| f.message().to_string())?;
        match settings.shop.get("order", &client::range("limit", 0, 1)) {
            Ok(serde_json::Value::Array(_)) => Ok(()),
            Ok(_) => Err(format!(
                "{} answered, but not with X-Cart's list of orders: is `endpoint` the shop's address?",
                settings.shop.describe()
            )),
            Err(f) => Err(f.message().to_string()),
        }
    }
}

airlock_sdk::bindings::export_connector!(XCart);
