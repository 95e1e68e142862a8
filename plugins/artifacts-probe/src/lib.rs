//! A test connector for `airlock:connector/artifacts`. Each feed says what
//! it saw in its outcome's message, which the end-to-end tests read.
//!
//! Build with `scripts/build-plugins.sh`; run with e.g.
//! `airlock run plugins/artifacts-probe --feed publish --config kib=1024`.

wit_bindgen::generate!({ path: "../../wit", world: "connector" });

use airlock::connector::artifacts::{self, ArtifactError};
use airlock::connector::types::Status;
use airlock::connector::{config, http, storage};

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

fn number(key: &str, default: u64) -> u64 {
    config::get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The error's variant, as the tests expect it.
fn kind(e: &ArtifactError) -> &'static str {
    match e {
        ArtifactError::InvalidName(_) => "invalid-name",
        ArtifactError::InvalidArgument(_) => "invalid-argument",
        ArtifactError::QuotaExceeded(_) => "quota-exceeded",
        ArtifactError::NotAllowed(_) => "not-allowed",
        ArtifactError::Unavailable(_) => "unavailable",
    }
}

fn message_of(e: &ArtifactError) -> &str {
    match e {
        ArtifactError::InvalidName(m)
        | ArtifactError::InvalidArgument(m)
        | ArtifactError::QuotaExceeded(m)
        | ArtifactError::NotAllowed(m)
        | ArtifactError::Unavailable(m) => m,
    }
}

fn describe(e: &ArtifactError) -> String {
    format!("{}: {}", kind(e), message_of(e))
}

/// Fills `buf` with the artifact's bytes from `offset` on: lines
/// `{tag}-{n:09}\n`, so any byte is known from its offset.
fn fill(buf: &mut [u8], offset: u64, tag: &str) {
    let line_len = tag.len() as u64 + 11;
    for (i, b) in buf.iter_mut().enumerate() {
        let at = offset + i as u64;
        let (line, col) = (at / line_len, (at % line_len) as usize);
        *b = if col < tag.len() {
            tag.as_bytes()[col]
        } else if col == tag.len() {
            b'-'
        } else if col == line_len as usize - 1 {
            b'\n'
        } else {
            let digit = 9 - (col - tag.len() - 1) as u32;
            b'0' + ((line / 10u64.pow(digit - 1)) % 10) as u8
        };
    }
}

/// Writes `bytes` bytes to `name` in chunks of `chunk` bytes.
fn write(name: &str, bytes: u64, chunk: u64, tag: &str) -> Result<(), ArtifactError> {
    let mut buf = vec![0u8; chunk.max(1) as usize];
    let mut written = 0;
    while written < bytes {
        let n = (bytes - written).min(buf.len() as u64) as usize;
        fill(&mut buf[..n], written, tag);
        artifacts::append(name, &buf[..n])?;
        written += n as u64;
    }
    Ok(())
}

fn publish() -> Outcome {
    let name = config::get("name").unwrap_or_default();
    let tag = config::get("tag").unwrap_or_default();
    let content_type = config::get("content_type").unwrap_or_default();
    let bytes = number("kib", 4) << 10;
    let chunk = number("chunk_kib", 64) << 10;
    let written =
        artifacts::begin(&name, &content_type).and_then(|()| write(&name, bytes, chunk, &tag));
    if let Err(e) = written {
        return outcome(Status::Error, format!("write: {}", describe(&e)));
    }
    if let Some(url) = config::get("wait_url") {
        let request = http::Request {
            method: "GET".into(),
            url,
            headers: Vec::new(),
            body: None,
            timeout_ms: Some(60_000),
        };
        if let Err(e) = http::send(&request) {
            return outcome(Status::Error, format!("wait: {e:?}"));
        }
    }
    let then = config::get("then").unwrap_or_default();
    match then.as_str() {
        "info" => outcome(Status::Info, format!("wrote {bytes} bytes")),
        "retry" => outcome(Status::Retry, "asked to retry".into()),
        "error" => outcome(Status::Error, "asked to fail".into()),
        "trap" => panic!("asked to trap"),
        "checkpoint-trap" => {
            if let Err(e) = storage::checkpoint() {
                return outcome(Status::Error, format!("checkpoint: {e:?}"));
            }
            panic!("asked to trap after a checkpoint")
        }
        _ => outcome(Status::Ok, format!("wrote {bytes} bytes")),
    }
}

fn replace_and_discard() -> Result<(), ArtifactError> {
    artifacts::begin("keep.txt", "text/plain")?;
    artifacts::append("keep.txt", b"first")?;
    artifacts::begin("dropped.txt", "text/plain")?;
    artifacts::append("dropped.txt", b"dropped")?;
    artifacts::begin("keep.txt", "text/plain")?;
    artifacts::append("keep.txt", b"second")?;
    artifacts::discard("dropped.txt")?;
    match artifacts::append("dropped.txt", b"again") {
        Err(ArtifactError::InvalidArgument(_)) => Ok(()),
        other => Err(ArtifactError::Unavailable(format!(
            "append after discard gave {other:?}"
        ))),
    }
}

/// Each attempt and what the host answered, `what=kind` joined by `;`.
fn hostile() -> String {
    let attack = config::get("attack").unwrap_or_default();
    let mut seen = Vec::new();
    let mut note = |what: &str, r: Result<(), ArtifactError>| {
        seen.push(match r {
            Ok(()) => format!("{what}=ok"),
            Err(e @ ArtifactError::QuotaExceeded(_)) => {
                format!("{what}={} ({})", kind(&e), message_of(&e))
            }
            Err(e) => format!("{what}={}", kind(&e)),
        });
    };
    match attack.as_str() {
        "names" => {
            for name in ["", "../etc", ".hidden", "a/b", "a b", &"x".repeat(129)] {
                note(
                    &format!("name[{}]", name.len()),
                    artifacts::begin(name, "text/plain"),
                );
            }
            note("type", artifacts::begin("ok.txt", "text"));
            note(
                "header",
                artifacts::begin("ok.txt", "text/csv\r\nX-Evil: 1"),
            );
            note("unbegun", artifacts::append("never.txt", b"x"));
            note("discard-unbegun", artifacts::discard("never.txt"));
        }
        "count" => {
            for i in 0..7 {
                note(
                    &format!("n{i}"),
                    artifacts::begin(&format!("n{i}.txt"), "text/plain"),
                );
            }
        }
        "size" => {
            // 64 MiB fills the artifact; the next chunk is over its cap.
            note(
                "big",
                artifacts::begin("big.bin", "application/octet-stream"),
            );
            note("fill", write("big.bin", 64 << 20, 1 << 20, "big"));
            note("over", artifacts::append("big.bin", b"x"));
            // The run may write 96 MiB in all, discarded bytes included.
            note("discard", artifacts::discard("big.bin"));
            note(
                "second",
                artifacts::begin("second.bin", "application/octet-stream"),
            );
            note(
                "run-total",
                write("second.bin", 64 << 20, 1 << 20, "second"),
            );
        }
        other => seen.push(format!("unknown attack {other}")),
    }
    seen.join(";")
}

impl Guest for Probe {
    fn run(ctx: RunContext) -> Outcome {
        match ctx.feed.as_str() {
            "publish" => publish(),
            "replace-and-discard" => match replace_and_discard() {
                Ok(()) => outcome(Status::Ok, "replaced and discarded".into()),
                Err(e) => outcome(Status::Error, describe(&e)),
            },
            "hostile" => outcome(Status::Ok, hostile()),
            other => outcome(Status::Error, format!("unknown feed {other}")),
        }
    }

    fn check() -> Result<(), String> {
        match artifacts::begin("check.txt", "text/plain") {
            Err(ArtifactError::NotAllowed(m)) => Err(format!("not-allowed: {m}")),
            Err(e) => Err(describe(&e)),
            Ok(()) => Ok(()),
        }
    }
}
