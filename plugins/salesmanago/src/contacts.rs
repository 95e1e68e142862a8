//! Feed `contacts`: the shop's customers, pending for this installation,
//! sent as SALESmanago contacts with `contact/batchupsert` (up to 100 a
//! call), each with its tag and opt-in, then acknowledged.
//!
//! Seed 003 in this connector's terms:
//! - an account holder (`account` not false) is tagged `account_tag`
//!   ("rejestracja"), a newsletter subscriber without an account
//!   `newsletter_tag` ("newsletter"); a customer who is neither is not a
//!   contact to send;
//! - `consent = consenting` sends only customers with `marketing_consent`;
//!   `all` sends every account holder and newsletter subscriber;
//! - at most `contacts_per_run` contacts a run, so the first export of a
//!   whole shop's accounts is spread over many runs (every 10 minutes by
//!   default: hours for a large shop) and paced within each; it resumes
//!   where it stopped, since what was sent is acknowledged;
//! - the email → customer id of each contact sent is kept in storage, so
//!   the opt-in and opt-out callbacks can find the customer.

use airlock_sdk::records::{self, Feed, Record};
use airlock_sdk::{Failure, config, storage};
use serde_json::{Value, json};

use crate::client::Client;

/// Contacts per `contact/batchupsert` call.
const BATCH: usize = 100;

/// What a run of the feed did.
#[derive(Debug, Default)]
pub struct Exported {
    /// Contacts sent.
    pub sent: u32,
    /// Customers skipped by the consent option or with nothing to send.
    pub skipped: u32,
    /// Whether pending customers are left for the next run.
    pub more: bool,
}

/// The settings of the feed.
struct Settings {
    consenting_only: bool,
    account_tag: String,
    newsletter_tag: String,
    per_run: u32,
}

impl Settings {
    fn from_config() -> Self {
        let get = |k: &str, default: &str| {
            config::get(k)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        Settings {
            consenting_only: get("consent", "consenting") != "all",
            account_tag: get("account_tag", "rejestracja"),
            newsletter_tag: get("newsletter_tag", "newsletter"),
            per_run: get("contacts_per_run", "500").parse().unwrap_or(500).max(1),
        }
    }
}

/// The storage key of the customer id of `email`.
pub fn email_key(email: &str) -> String {
    format!("email/{}", email.trim().to_lowercase())
}

/// The `contact/batchupsert` entry of `customer`, if it is to be sent.
fn upsert_of(customer: &Value, settings: &Settings, owner: &str) -> Option<Value> {
    let email = customer.get("email")?.as_str()?.trim();
    if email.is_empty() {
        return None;
    }
    let flag = |k: &str| customer.get(k).and_then(Value::as_bool);
    let account = flag("account") != Some(false);
    let newsletter = flag("newsletter");
    if settings.consenting_only && flag("marketing_consent") != Some(true) {
        return None;
    }
    let tag = if account {
        &settings.account_tag
    } else if newsletter == Some(true) {
        &settings.newsletter_tag
    } else {
        return None;
    };
    let text = |k: &str| customer.get(k).and_then(Value::as_str).unwrap_or_default();
    let address = customer.get("billing_address").cloned().unwrap_or_default();
    let part = |k: &str| address.get(k).and_then(Value::as_str).unwrap_or_default();
    let street: Vec<&str> = [part("line1"), part("line2")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    Some(json!({
        "contact": {
            "email": email,
            "name": text("name"),
            "phone": text("phone"),
            "company": text("company"),
            "externalId": text("id"),
            "address": {
                "streetAddress": street.join(", "),
                "zipCode": part("postcode"),
                "city": part("town"),
                "country": part("country"),
            },
        },
        "owner": owner,
        "tags": [tag],
        "forceOptIn": newsletter == Some(true),
        "forceOptOut": newsletter == Some(false),
        "forcePhoneOptIn": false,
        "forcePhoneOptOut": false,
    }))
}

/// Sends one batch and acknowledges its records; `Ok(false)` if the run is
/// in test mode (nothing sent, nothing acknowledged).
fn flush(client: &mut Client, batch: &mut Vec<(Record, Value)>) -> Result<bool, Failure> {
    if batch.is_empty() {
        return Ok(true);
    }
    let details: Vec<Value> = batch.iter().map(|(_, upsert)| upsert.clone()).collect();
    let answer = client.call("contact/batchupsert", json!({ "upsertDetails": details }))?;
    if answer.is_none() {
        batch.clear();
        return Ok(false);
    }
    for (record, upsert) in batch.drain(..) {
        let email = upsert["contact"]["email"].as_str().unwrap_or_default();
        storage::set(&email_key(email), record.id.as_bytes())
            .map_err(|e| Failure::retry(format!("storage: {e:?}")))?;
        record.acknowledge()?;
    }
    Ok(true)
}

/// Runs the feed.
pub fn run(client: &mut Client) -> Result<Exported, Failure> {
    let settings = Settings::from_config();
    let owner = client.owner().to_string();
    let mut done = Exported::default();
    let mut batch: Vec<(Record, Value)> = Vec::new();
    let mut live = true;
    let walked = records::walk_while("customers", Feed::Pending, 200, |record| {
        if done.sent >= settings.per_run {
            done.more = true;
            return Ok(false);
        }
        let upsert = (!record.is_deleted())
            .then(|| upsert_of(&record.body, &settings, &owner))
            .flatten();
        match upsert {
            Some(upsert) => {
                batch.push((record, upsert));
                done.sent += 1;
                if batch.len() >= BATCH {
                    live &= flush(client, &mut batch)?;
                }
            }
            None => {
                // Not a contact to send under these settings: it leaves the
                // pending set, and comes back if it changes.
                record.acknowledge()?;
                done.skipped += 1;
            }
        }
        Ok(true)
    });
    walked?;
    live &= flush(client, &mut batch)?;
    if !live {
        done.sent = 0;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(consenting_only: bool) -> Settings {
        Settings {
            consenting_only,
            account_tag: "rejestracja".into(),
            newsletter_tag: "newsletter".into(),
            per_run: 500,
        }
    }

    #[test]
    fn account_holders_and_subscribers_get_their_tags_and_consent_filters() {
        let account = json!({"id": "c1", "email": "Ann@Example.com ", "name": "Ann", "marketing_consent": true, "newsletter": true});
        let up = upsert_of(&account, &settings(true), "owner@shop").unwrap();
        assert_eq!(up["tags"], json!(["rejestracja"]));
        assert_eq!(up["contact"]["email"], "Ann@Example.com");
        assert_eq!(
            (up["forceOptIn"].as_bool(), up["forceOptOut"].as_bool()),
            (Some(true), Some(false))
        );
        let subscriber = json!({"id": "n1", "email": "sub@example.com", "name": "sub", "account": false, "newsletter": true});
        assert!(
            upsert_of(&subscriber, &settings(true), "o").is_none(),
            "no consent given"
        );
        let up = upsert_of(&subscriber, &settings(false), "o").unwrap();
        assert_eq!(up["tags"], json!(["newsletter"]));
        let neither = json!({"id": "x", "email": "x@example.com", "name": "x", "account": false, "newsletter": false});
        assert!(upsert_of(&neither, &settings(false), "o").is_none());
        let unsubscribed =
            json!({"id": "u", "email": "u@example.com", "name": "u", "newsletter": false});
        let up = upsert_of(&unsubscribed, &settings(false), "o").unwrap();
        assert_eq!(up["forceOptOut"], true);
        assert_eq!(email_key(" Ann@Example.COM"), "email/ann@example.com");
    }
}
