//! A test connector for `airlock:connector/oauth`: the host holds the
//! OAuth2 tokens, the guest asks for an access token and sends it as a
//! bearer token. Each feed says what it saw in its outcome's message, which
//! the end-to-end tests (`tests/e2e/oauth.rs`) read.
//!
//! Build with `scripts/build-plugins.sh`; run through those tests, against
//! the fake identity server in `tests/src/identity.rs`.

wit_bindgen::generate!({ path: "../../wit", world: "connector" });

use airlock::connector::config;
use airlock::connector::http::{self, Request};
use airlock::connector::oauth::{self, OauthError};
use airlock::connector::types::Status;

struct Probe;

export!(Probe);

fn outcome(status: Status, message: String) -> Outcome {
    Outcome {
        status,
        message,
        items: 0,
        retry_after_seconds: None,
    }
}

/// The error as the tests expect it, and the status the run ends with.
fn failed(what: &str, e: OauthError) -> Outcome {
    let (kind, status, message) = match e {
        OauthError::NotConfigured(m) => ("not-configured", Status::Error, m),
        OauthError::ReauthorisationNeeded(m) => ("reauthorisation-needed", Status::Error, m),
        OauthError::Unavailable(m) => ("unavailable", Status::Retry, m),
    };
    outcome(status, format!("{what}: {kind}: {message}"))
}

fn api() -> String {
    config::get("api").unwrap_or_else(|| "https://api.xero.com".into())
}

/// GET `path` on the API with `token` as bearer; the status.
fn get(path: &str, token: Option<&str>, timeout_ms: u32) -> Result<u16, String> {
    let headers = token
        .map(|t| vec![("authorization".to_string(), format!("Bearer {t}"))])
        .unwrap_or_default();
    http::send(&Request {
        method: "GET".into(),
        url: format!("{}{path}", api()),
        headers,
        body: None,
        timeout_ms: Some(timeout_ms),
    })
    .map(|r| r.status)
    .map_err(|e| format!("{e:?}"))
}

fn whoami() -> Outcome {
    let token = match oauth::token() {
        Ok(t) => t.token,
        Err(e) => return failed("token", e),
    };
    let first = match get("/api/whoami", Some(&token), 10_000) {
        Ok(status) => status,
        Err(e) => return outcome(Status::Retry, format!("whoami: {e}")),
    };
    if first != 401 {
        return outcome(Status::Ok, format!("whoami: {first}"));
    }
    let token = match oauth::refresh(&token) {
        Ok(t) => t.token,
        Err(e) => return failed("refresh", e),
    };
    match get("/api/whoami", Some(&token), 10_000) {
        // The host decides what a second 401 means; the probe says it saw it.
        Ok(status) => outcome(Status::Ok, format!("whoami after refresh: {status}")),
        Err(e) => outcome(Status::Retry, format!("whoami: {e}")),
    }
}

fn token_then_hold() -> Outcome {
    if let Err(e) = oauth::token() {
        return failed("token", e);
    }
    // Parked without using the token: the tests kill the host here.
    match get("/_test/hold", None, 60_000) {
        Ok(status) => outcome(Status::Ok, format!("hold: {status}")),
        Err(e) => outcome(Status::Retry, format!("hold: {e}")),
    }
}

fn peek_secrets() -> Outcome {
    let secret = match config::get_secret("client_secret") {
        Some(_) => "visible",
        None => "hidden",
    };
    outcome(Status::Ok, format!("client_secret: {secret}"))
}

/// Hostile: refreshes the current token 20 times in a row and says how
/// many renewals the host granted before refusing.
fn refresh_loop() -> Outcome {
    let mut token = match oauth::token() {
        Ok(t) => t.token,
        Err(e) => return failed("token", e),
    };
    for granted in 0..20 {
        match oauth::refresh(&token) {
            Ok(t) => token = t.token,
            Err(e) => {
                let (case, m) = match e {
                    OauthError::Unavailable(m) => ("unavailable", m),
                    OauthError::ReauthorisationNeeded(m) => ("reauthorisation-needed", m),
                    OauthError::NotConfigured(m) => ("not-configured", m),
                };
                return outcome(
                    Status::Ok,
                    format!("renewals granted: {granted}; then {case}: {m}"),
                );
            }
        }
    }
    outcome(Status::Ok, "renewals granted: 20".into())
}

impl Guest for Probe {
    fn run(ctx: RunContext) -> Outcome {
        match ctx.feed.as_str() {
            "whoami" => whoami(),
            "token-then-hold" => token_then_hold(),
            "peek-secrets" => peek_secrets(),
            "refresh-loop" => refresh_loop(),
            other => outcome(Status::Error, format!("unknown feed {other}")),
        }
    }

    fn check() -> Result<(), String> {
        Ok(())
    }
}
