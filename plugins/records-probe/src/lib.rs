//! A test connector for `airlock:connector/records`. Its manifest grants it
//! reading `orders` and writing `stock`, nothing else; each feed exercises
//! one part of the interface and says what it saw in its outcome's message,
//! which the end-to-end tests read.

wit_bindgen::generate!({ path: "../../wit", world: "connector" });

use airlock::connector::config;
use airlock::connector::records::{self, AnnotationChange, RecordsError};
use airlock::connector::types::Status;

struct Probe;

export!(Probe);

fn outcome(status: Status, message: String, items: u32) -> Outcome {
    Outcome {
        status,
        message,
        items,
        retry_after_seconds: None,
    }
}

/// A config number, or its default.
fn number(key: &str, default: u32) -> u32 {
    config::get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The error's variant, as the tests expect it.
fn kind(e: &RecordsError) -> &'static str {
    match e {
        RecordsError::UnknownCollection(_) => "unknown-collection",
        RecordsError::NotGranted(_) => "not-granted",
        RecordsError::Invalid(_) => "invalid",
        RecordsError::InvalidArgument(_) => "invalid-argument",
        RecordsError::QuotaExceeded(_) => "quota-exceeded",
        RecordsError::Unavailable(_) => "unavailable",
    }
}

fn message_of(e: &RecordsError) -> &str {
    match e {
        RecordsError::UnknownCollection(m)
        | RecordsError::NotGranted(m)
        | RecordsError::Invalid(m)
        | RecordsError::InvalidArgument(m)
        | RecordsError::QuotaExceeded(m)
        | RecordsError::Unavailable(m) => m,
    }
}

fn failed(what: &str, e: RecordsError) -> Outcome {
    let status = if matches!(e, RecordsError::Unavailable(_)) {
        Status::Retry
    } else {
        Status::Error
    };
    outcome(
        status,
        format!("{what}: {}: {}", kind(&e), message_of(&e)),
        0,
    )
}

/// Exports every pending order, page by page: annotates it with an
/// external reference and acknowledges the version it read.
fn export_orders(ack: bool) -> Result<Vec<String>, Outcome> {
    let page = number("page", 2);
    let mut cursor = None;
    let mut exported = Vec::new();
    loop {
        let got = records::pending("orders", cursor.as_deref(), page)
            .map_err(|e| failed("pending", e))?;
        for record in &got.records {
            let reference = Some(format!("X-{}", record.id));
            records::annotate(
                "orders",
                &record.id,
                &AnnotationChange::ExternalRef(reference),
            )
            .map_err(|e| failed("annotate", e))?;
            if ack {
                records::acknowledge("orders", &record.id, record.version)
                    .map_err(|e| failed("acknowledge", e))?;
            }
            exported.push(record.id.clone());
        }
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(exported)
}

fn import_stock() -> Result<u32, Outcome> {
    let count = number("count", 3);
    let quantity = number("quantity", 5);
    for i in 1..=count {
        let id = format!("sku-{i}");
        let body = format!(r#"{{"id":"{id}","sku":"{id}","quantity":{quantity}}}"#);
        records::put("stock", &id, &body).map_err(|e| failed("put", e))?;
    }
    Ok(count)
}

/// Each forbidden or invalid call, with the error it got (`ok` if none).
fn trespass() -> String {
    let tries: [(&str, Result<(), RecordsError>); 7] = [
        ("get-customers", records::get("customers", "c1").map(|_| ())),
        ("put-orders", records::put("orders", "o1", r#"{"id":"o1"}"#)),
        ("get-stock", records::get("stock", "sku-1").map(|_| ())),
        ("put-widgets", records::put("widgets", "w1", "{}")),
        ("put-not-json", records::put("stock", "sku-x", "not json")),
        (
            "put-negative",
            records::put(
                "stock",
                "sku-x",
                r#"{"id":"sku-x","sku":"sku-x","quantity":-1}"#,
            ),
        ),
        ("empty-id", records::delete("stock", "")),
    ];
    let mut seen: Vec<String> = tries
        .iter()
        .map(|(what, result)| match result {
            Ok(()) => format!("{what}=ok"),
            Err(e) => format!("{what}={}", kind(e)),
        })
        .collect();
    if let Err(e) = records::pending("orders", Some("not-a-cursor"), 1) {
        seen.push(format!("bad-cursor={}", kind(&e)));
    }
    // The schema error names the field.
    if let Err(e) = &tries[5].1 {
        seen.push(format!("negative-says=[{}]", message_of(e)));
    }
    seen.join(" ")
}

fn changes() -> Result<String, Outcome> {
    let page = number("page", 2);
    let mut cursor = None;
    let (mut live, mut deleted, mut pages) = (0, 0, 0);
    loop {
        let got = records::changes("orders", cursor.as_deref(), page)
            .map_err(|e| failed("changes", e))?;
        pages += 1;
        for record in &got.records {
            if record.body.is_some() {
                live += 1;
            } else {
                deleted += 1;
            }
        }
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(format!("live={live} deleted={deleted} pages={pages}"))
}

fn read_own_writes() -> Result<String, Outcome> {
    let body = r#"{"id":"mine","sku":"mine","quantity":1}"#;
    records::put("stock", "mine", body).map_err(|e| failed("put", e))?;
    // Reading stock is not granted, even one's own writes: `get` needs
    // `reads`. So the run reads back an order it did not write, then its
    // own writes through annotations, which reading `orders` allows.
    let own = match records::get("stock", "mine") {
        Err(e) => kind(&e).to_string(),
        Ok(_) => "readable".to_string(),
    };
    records::annotate("orders", "o-1", &AnnotationChange::Note("first".into()))
        .map_err(|e| failed("annotate", e))?;
    records::annotate(
        "orders",
        "o-1",
        &AnnotationChange::Flag(Some("awaiting-action".into())),
    )
    .map_err(|e| failed("annotate", e))?;
    let notes = records::annotations("orders", "o-1").map_err(|e| failed("annotations", e))?;
    records::delete("stock", "mine").map_err(|e| failed("delete", e))?;
    Ok(format!(
        "own-stock={own} notes={} flag={}",
        notes.notes.join("|"),
        notes.flag.unwrap_or_default()
    ))
}

/// Puts stock records without end, each with a body of `flood_kib` KiB,
/// until the host refuses one; says how many were accepted and why the
/// next was refused.
fn flood() -> String {
    let padding = "x".repeat(number("flood_kib", 0) as usize * 1024);
    let mut accepted = 0u32;
    loop {
        let id = format!("flood-{accepted}");
        let body = format!(r#"{{"id":"{id}","sku":"{id}","quantity":1,"location":"{padding}"}}"#);
        match records::put("stock", &id, &body) {
            Ok(()) => accepted += 1,
            Err(e) => return format!("accepted={accepted} then {}: {}", kind(&e), message_of(&e)),
        }
        if accepted > 1_000_000 {
            return format!("accepted={accepted} and never refused");
        }
    }
}

impl Guest for Probe {
    fn run(ctx: RunContext) -> Outcome {
        let result = match ctx.feed.as_str() {
            "export-orders" => export_orders(true).map(|ids| {
                let n = ids.len() as u32;
                outcome(Status::Ok, format!("exported: {}", ids.join(",")), n)
            }),
            "import-stock" => {
                import_stock().map(|n| outcome(Status::Ok, format!("wrote {n} stock"), n))
            }
            "fail-after-writes" => import_stock()
                .and_then(|_| export_orders(true))
                .map(|ids| outcome(Status::Error, format!("failing after {}", ids.len()), 0)),
            "trespass" => Ok(outcome(Status::Ok, trespass(), 0)),
            "changes" => changes().map(|m| outcome(Status::Ok, m, 0)),
            "read-own-writes" => read_own_writes().map(|m| outcome(Status::Ok, m, 0)),
            "flood" => Ok(outcome(Status::Ok, flood(), 0)),
            other => Ok(outcome(Status::Error, format!("no feed {other}"), 0)),
        };
        result.unwrap_or_else(|failure| failure)
    }

    /// "Test connection" must not reach the tenant's records: it passes
    /// only if the host refuses them.
    fn check() -> Result<(), String> {
        match records::pending("orders", None, 1) {
            Err(RecordsError::NotGranted(_)) => Ok(()),
            Err(e) => Err(format!("records in check: {}", kind(&e))),
            Ok(_) => Err("check could read the tenant's records".to_string()),
        }
    }
}
