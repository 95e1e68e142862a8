//! A deliberately hostile connector that proves the sandbox: each feed
//! misbehaves in one way, and the host's tests check that it is stopped,
//! recorded and rolled back, and that the host carries on.
//!
//! Feeds: `spin` (loops forever), `hog` (allocates without end), `trap`
//! (panics), `flood` (floods the log and stdout), `sneak` (HTTP to places it was
//! not granted), `probe` (looks for files, environment and arguments),
//! `write-then-trap`, `write-then-error`, `write-then-spin`, `checkpoint-then-trap` (storage
//! rollback), `write-then-wait` (writes, then computes for 1.2 s: a run to kill
//! or overlap), `ask-retry` (asks to be retried in an hour), `count` (a
//! well-behaved run that counts itself) and `checkpoint-outbound` (an outbound
//! feed that checkpoints a cursor: a test-mode dry run must keep none of it).
//! Its `check` writes, checkpoints and sends a request to a host it was not
//! granted before failing: a check must never write, and is audited.
//!
//! Build with `scripts/build-plugins.sh`. Never install it for a real tenant.

wit_bindgen::generate!({ path: "../../wit", world: "connector" });

use airlock::connector::http::{self, HttpError};
use airlock::connector::types::Status;
use airlock::connector::{log, storage};

struct Misbehaving;

export!(Misbehaving);

fn ok(message: String, items: u32) -> Outcome {
    Outcome {
        status: Status::Ok,
        message,
        items,
        retry_after_seconds: None,
    }
}

fn spin() -> Outcome {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn hog() -> Outcome {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the memory is really used.
        hoard.push(vec![0xA5; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

fn flood() -> Outcome {
    let line = "x".repeat(10_000);
    for i in 0..100_000 {
        log::write(log::Level::Info, &format!("{i} {line}"));
    }
    for _ in 0..2_000 {
        println!("{line}");
    }
    ok("flooded".into(), 0)
}

/// Requests the host must refuse; each result is logged as `url -> result`.
fn sneak() -> Outcome {
    let urls = [
        "https://evil.example/steal",
        "https://api.allowed.test.evil.example/",
        "https://evilapi.allowed.test/",
        "http://169.254.169.254/latest/meta-data/",
        "https://api.allowed.test@evil.example/",
        "http://api.allowed.test/",
        "https://api.allowed.test:8443/",
        "https://0x7f.1/",
        "https://[::ffff:127.0.0.1]/",
        "file:///etc/passwd",
    ];
    let mut denied = 0;
    for url in urls {
        let request = http::Request {
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: None,
            timeout_ms: Some(1000),
        };
        let result = match http::send(&request) {
            Ok(r) => format!("SENT status {}", r.status),
            Err(HttpError::Denied(d)) => {
                denied += 1;
                format!("denied {}", d.rule)
            }
            Err(other) => format!("error {other:?}"),
        };
        log::write(log::Level::Info, &format!("{url} -> {result}"));
    }
    // A header that would retarget the request.
    let request = http::Request {
        method: "GET".into(),
        url: "https://api.allowed.test/".into(),
        headers: vec![("Host".into(), "evil.example".into())],
        body: None,
        timeout_ms: Some(1000),
    };
    if let Err(HttpError::Denied(d)) = http::send(&request) {
        denied += 1;
        log::write(
            log::Level::Info,
            &format!("host header -> denied {}", d.rule),
        );
    }
    ok(format!("{denied} requests denied"), denied)
}

/// Looks for ambient authority a guest must not have; logs what it found.
fn probe() -> Outcome {
    let env: Vec<(String, String)> = std::env::vars().collect();
    log::write(log::Level::Info, &format!("env vars: {}", env.len()));
    let args: Vec<String> = std::env::args().collect();
    log::write(log::Level::Info, &format!("args: {}", args.len()));
    for path in ["/", ".", "/etc/passwd"] {
        let result = match std::fs::read_dir(path) {
            Ok(_) => "readable".to_string(),
            Err(e) => format!("refused ({:?})", e.kind()),
        };
        log::write(log::Level::Info, &format!("fs {path}: {result}"));
    }
    ok("probed".into(), 0)
}

fn set(key: &str, value: &str) {
    if let Err(e) = storage::set(key, value.as_bytes()) {
        log::write(log::Level::Error, &format!("set {key} failed: {e:?}"));
    }
}

fn count() -> Outcome {
    let n = storage::get("count")
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    set("count", &n.to_string());
    ok(format!("run {n}"), n)
}

impl Guest for Misbehaving {
    fn run(ctx: RunContext) -> Outcome {
        match ctx.feed.as_str() {
            "spin" => spin(),
            "hog" => hog(),
            "trap" => panic!("deliberate panic in feed `trap`"),
            "flood" => flood(),
            "sneak" => sneak(),
            "probe" => probe(),
            "count" => count(),
            "write-then-trap" => {
                set("count", "999");
                set("poison", "written by a run that trapped");
                panic!("trap after writing")
            }
            "write-then-spin" => {
                set("count", "999");
                spin()
            }
            "write-then-wait" => {
                // A long run that writes first: killed mid-run, its write
                // must not be applied.
                set("waited", &format!("attempt {}", ctx.attempt));
                let started = std::time::Instant::now();
                while started.elapsed() < std::time::Duration::from_millis(1200) {
                    std::hint::spin_loop();
                }
                ok(format!("waited, attempt {}", ctx.attempt), 1)
            }
            "ask-retry" => Outcome {
                status: Status::Retry,
                message: "order not paid yet: check again in an hour".into(),
                items: 0,
                retry_after_seconds: Some(3600),
            },
            "write-then-error" => {
                set("count", "999");
                Outcome {
                    status: Status::Error,
                    message: "error after writing".into(),
                    items: 0,
                    retry_after_seconds: None,
                }
            }
            "checkpoint-outbound" => {
                set("cursor", "advanced");
                if let Err(e) = storage::checkpoint() {
                    log::write(log::Level::Error, &format!("checkpoint failed: {e:?}"));
                }
                set("after-checkpoint", "written");
                ok("pushed".into(), 1)
            }
            "checkpoint-then-trap" => {
                set("checkpointed", "kept");
                if let Err(e) = storage::checkpoint() {
                    log::write(log::Level::Error, &format!("checkpoint failed: {e:?}"));
                }
                set("after-checkpoint", "discarded");
                panic!("trap after checkpoint")
            }
            other => Outcome {
                status: Status::Error,
                message: format!("unknown feed `{other}`"),
                items: 0,
                retry_after_seconds: None,
            },
        }
    }

    fn check() -> Result<(), String> {
        set("checked", "written by check");
        if let Err(e) = storage::checkpoint() {
            log::write(log::Level::Error, &format!("checkpoint failed: {e:?}"));
        }
        let request = http::Request {
            method: "GET".into(),
            url: "https://evil.example/from-check".into(),
            headers: vec![],
            body: None,
            timeout_ms: Some(1000),
        };
        let _ = http::send(&request);
        Err("this plugin only exists to misbehave".into())
    }
}
