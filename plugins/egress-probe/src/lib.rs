//! A Rust connector that makes the egress tests' four requests through
//! `airlock:connector/http`: one allowed, one to a host not granted, one
//! redirected to a host not granted, and a POST (suppressed in test mode).
//! Each result is logged as `label -> …`; the JavaScript twin in
//! `plugins/js-egress` does the same with `fetch`.
//!
//! Build with `scripts/build-plugins.sh`.

wit_bindgen::generate!({ path: "../../wit", world: "connector" });

use airlock::connector::http::{self, HttpError};
use airlock::connector::types::Status;
use airlock::connector::{config, log};

struct EgressProbe;

export!(EgressProbe);

fn attempt(label: &str, method: &str, url: &str, body: Option<&[u8]>) -> bool {
    let request = http::Request {
        method: method.into(),
        url: url.into(),
        headers: vec![],
        body: body.map(<[u8]>::to_vec),
        timeout_ms: Some(5000),
    };
    let (answered, line) = match http::send(&request) {
        Ok(r) => (
            true,
            format!("status {} ({} bytes)", r.status, r.body.len()),
        ),
        Err(HttpError::Denied(d)) => (false, format!("denied {}", d.rule)),
        Err(HttpError::SuppressedInTestMode) => (false, "suppressed-in-test-mode".to_string()),
        Err(other) => (false, format!("error {other:?}")),
    };
    log::write(log::Level::Info, &format!("{label} -> {line}"));
    answered
}

impl Guest for EgressProbe {
    fn run(ctx: RunContext) -> Outcome {
        if ctx.feed != "probe" {
            return Outcome {
                status: Status::Error,
                message: format!("unknown feed `{}`", ctx.feed),
                items: 0,
                retry_after_seconds: None,
            };
        }
        let mut sent = 0;
        for (label, key, method, body) in [
            ("allowed", "allowed_url", "GET", None),
            ("denied", "denied_url", "GET", None),
            ("redirect", "redirect_url", "GET", None),
            ("post", "post_url", "POST", Some(&b"stock=5"[..])),
        ] {
            if let Some(url) = config::get(key) {
                if attempt(label, method, &url, body) {
                    sent += 1;
                }
            }
        }
        Outcome {
            status: Status::Ok,
            message: format!("{sent} of 4 requests answered"),
            items: sent,
            retry_after_seconds: None,
        }
    }

    fn check() -> Result<(), String> {
        config::get("allowed_url")
            .map(|_| ())
            .ok_or_else(|| "config `allowed_url` is not set".to_string())
    }
}
