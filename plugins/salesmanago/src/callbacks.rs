//! The opt-in and opt-out callbacks SALESmanago calls (webhooks `opt-in`
//! and `opt-out`; their URLs hold the installation's webhook secret, the
//! "security parameter" of seed 003). Each names a contact by `email` (in
//! the query, a form body or a JSON body); the customer with that email
//! gets `newsletter` and `marketing_consent` set to true (opt-in) or false
//! (opt-out) in the shop's records.
//!
//! - The customer is found by the email → id the `contacts` feed kept, else
//!   by reading the customers; an email no customer has is `info` (nothing
//!   to do), as is a customer already in that state.
//! - A callback without an email is `error`: the URL pasted into
//!   SALESmanago's settings is wrong, and a person must look.

use airlock_sdk::records::{self, Feed};
use airlock_sdk::{Failure, Outcome, Status, WebhookDelivery, outcome, storage};
use serde_json::{Value, json};

use crate::contacts::email_key;

/// The value of the first `email` pair.
fn email_pair(mut pairs: impl Iterator<Item = (String, String)>) -> Option<String> {
    pairs
        .find(|(k, _)| k.eq_ignore_ascii_case("email"))
        .map(|(_, v)| v)
}

/// The email a delivery names, if any.
fn email_of(delivery: &WebhookDelivery) -> Option<String> {
    let from_query = email_pair(delivery.query.iter().cloned());
    let from_body = || {
        if let Ok(json) = serde_json::from_slice::<Value>(&delivery.body) {
            return json
                .get("email")
                .or_else(|| json.get("contact").and_then(|c| c.get("email")))
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        email_pair(form_urlencoded::parse(&delivery.body).into_owned())
    };
    from_query
        .or_else(from_body)
        .map(|e| e.trim().to_string())
        .filter(|e| e.contains('@'))
}

/// The id of the customer with `email`.
fn customer_id(email: &str) -> Result<Option<String>, Failure> {
    let known = storage::get(&email_key(email))
        .map_err(|e| Failure::retry(format!("storage: {e:?}")))?
        .and_then(|id| String::from_utf8(id).ok());
    if known.is_some() {
        return Ok(known);
    }
    let wanted = email.to_lowercase();
    let mut found = None;
    records::walk_while("customers", Feed::Changes, 500, |record| {
        let matches = record.body["email"]
            .as_str()
            .is_some_and(|e| e.trim().to_lowercase() == wanted);
        if matches {
            found = Some(record.id);
        }
        Ok(found.is_none())
    })?;
    Ok(found)
}

/// Handles one callback: `subscribe` true for opt-in, false for opt-out.
pub fn handle(delivery: &WebhookDelivery, subscribe: bool) -> Outcome {
    match apply(delivery, subscribe) {
        Ok(outcome) => outcome,
        Err(failure) => failure.into_outcome(0),
    }
}

fn apply(delivery: &WebhookDelivery, subscribe: bool) -> Result<Outcome, Failure> {
    let what = if subscribe { "opt-in" } else { "opt-out" };
    let email = email_of(delivery).ok_or_else(|| {
        Failure::error(format!(
            "the {what} callback names no email: check the callback URL in SALESmanago's settings"
        ))
    })?;
    let Some(id) = customer_id(&email)? else {
        return Ok(outcome(
            Status::Info,
            format!("{what}: no customer has this email"),
            0,
        ));
    };
    let Some(record) = records::get("customers", &id)? else {
        return Ok(outcome(
            Status::Info,
            format!("{what}: customer {id} no longer exists"),
            0,
        ));
    };
    let mut body = record.body;
    if body["newsletter"] == json!(subscribe) && body["marketing_consent"] == json!(subscribe) {
        return Ok(outcome(
            Status::Info,
            format!("{what}: customer {id} already so"),
            0,
        ));
    }
    body["newsletter"] = json!(subscribe);
    body["marketing_consent"] = json!(subscribe);
    airlock_sdk::bindings::airlock::connector::records::put("customers", &id, &body.to_string())
        .map_err(records::failure)?;
    Ok(outcome(
        Status::Ok,
        format!("{what}: customer {id} updated"),
        1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(query: &[(&str, &str)], body: &str) -> WebhookDelivery {
        WebhookDelivery {
            tenant: "acme".into(),
            installation: "salesmanago".into(),
            mode: airlock_sdk::Mode::Live,
            name: "opt-out".into(),
            method: "POST".into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: vec![],
            body: body.as_bytes().to_vec(),
            delivery_id: None,
            received_at: 0,
        }
    }

    #[test]
    fn the_email_comes_from_the_query_a_form_or_json() {
        assert_eq!(
            email_of(&delivery(&[("email", "a@x.pl")], "")).as_deref(),
            Some("a@x.pl")
        );
        assert_eq!(
            email_of(&delivery(&[], "email=b%40x.pl&x=1")).as_deref(),
            Some("b@x.pl")
        );
        assert_eq!(
            email_of(&delivery(&[], r#"{"contact":{"email":"c@x.pl"}}"#)).as_deref(),
            Some("c@x.pl")
        );
        assert_eq!(email_of(&delivery(&[("email", "not-an-email")], "")), None);
        assert_eq!(email_of(&delivery(&[], "")), None);
    }
}
