//! The benchmark's guest: one run makes many host calls, so `airlock-bench`
//! can measure the cost of each call inside a run.
//!
//! - feed `kv`: sets `operations` keys, then gets each back (items = calls made);
//! - feed `http`: GETs `url` `operations` times, one after another, through
//!   `airlock:connector/http` (items = responses with status 200).
//!
//! Build with `scripts/build-plugins.sh`, then run with
//! `cargo run --release -p airlock --bin airlock-bench -- --calls`.

wit_bindgen::generate!({ path: "../../wit", world: "connector" });

use airlock::connector::types::Status;
use airlock::connector::{config, http, storage};

struct Bench;

export!(Bench);

fn outcome(status: Status, message: String, items: u32) -> Outcome {
    Outcome {
        status,
        message,
        items,
        retry_after_seconds: None,
    }
}

fn operations() -> u32 {
    config::get("operations")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn kv(operations: u32) -> Result<u32, String> {
    for i in 0..operations {
        storage::set(&format!("k{i:08}"), &i.to_le_bytes()).map_err(|e| format!("set: {e:?}"))?;
    }
    for i in 0..operations {
        let value = storage::get(&format!("k{i:08}")).map_err(|e| format!("get: {e:?}"))?;
        if value.as_deref() != Some(&i.to_le_bytes()[..]) {
            return Err(format!("k{i:08} read back wrong"));
        }
    }
    Ok(operations * 2)
}

fn fetch(operations: u32) -> Result<u32, String> {
    let url = config::get("url").ok_or("config `url` is not set")?;
    let request = http::Request {
        method: "GET".into(),
        url,
        headers: Vec::new(),
        body: None,
        timeout_ms: None,
    };
    for i in 0..operations {
        let response = http::send(&request).map_err(|e| format!("request {i}: {e:?}"))?;
        if response.status != 200 {
            return Err(format!("request {i}: status {}", response.status));
        }
    }
    Ok(operations)
}

impl Guest for Bench {
    fn run(ctx: RunContext) -> Outcome {
        let result = match ctx.feed.as_str() {
            "kv" => kv(operations()),
            "http" => fetch(operations()),
            other => Err(format!("no feed {other}")),
        };
        match result {
            Ok(calls) => outcome(Status::Ok, format!("{calls} calls"), calls),
            Err(e) => outcome(Status::Error, e, 0),
        }
    }

    fn check() -> Result<(), String> {
        Ok(())
    }
}
