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
//! well-behaved run that counts itself), `deny-loop` (requests a denied URL
//! until refused otherwise: the request and audit caps), and `fill` and
//! `fill-keys` (write, checkpoint, repeat: the installation's storage quota),
//! `checkpoint-outbound` (an outbound feed that checkpoints a cursor: a
//! test-mode dry run must keep none of it);
//! through standard wasi:http, `stream-body` (streams a request body that
//! never ends) and `fan-out` (starts 12 requests at once to the config's
//! `fan_out_url`: the run's in-flight cap) and `hoard` (creates wasi:http
//! header resources without end and never drops them).
//! Its `check` writes, checkpoints and sends a request to a host it was not
//! granted before failing: a check must never write, and is audited.
//!
//! Build with `scripts/build-plugins.sh`. Never install it for a real tenant.

wit_bindgen::generate!({ path: "../../wit", world: "connector" });

use airlock::connector::http::{self, HttpError};
use airlock::connector::types::Status;
use airlock::connector::{config, log, storage};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, FutureIncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};

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

/// Requests a URL it was not granted until the host refuses it for another
/// reason than the policy (the run's request cap); logs how far it got.
fn deny_loop() -> Outcome {
    let request = http::Request {
        method: "GET".into(),
        url: "https://evil.example/again".into(),
        headers: vec![],
        body: None,
        timeout_ms: Some(1000),
    };
    let mut denied = 0;
    let stop = loop {
        match http::send(&request) {
            Err(HttpError::Denied(_)) if denied < 1_000_000 => denied += 1,
            other => break format!("{other:?}"),
        }
    };
    log::write(
        log::Level::Info,
        &format!("stopped after {denied} denials: {stop}"),
    );
    ok(format!("{denied} requests denied"), denied)
}

/// Stores `value_bytes`-byte values under keys no earlier run used,
/// checkpointing after each, until the host refuses; logs how many were
/// stored and why it stopped.
fn fill(value_bytes: usize) -> Outcome {
    let value = vec![0x5A; value_bytes];
    let earlier = storage::list_keys("fill/", None, 1000).map_or(0, |page| page.keys.len() as u32);
    let mut stored = 0;
    let stop = loop {
        if stored == 1_000_000 {
            break "never refused".to_string();
        }
        if let Err(e) = storage::set(&format!("fill/{}", earlier + stored), &value) {
            break format!("{e:?}");
        }
        if let Err(e) = storage::checkpoint() {
            break format!("checkpoint: {e:?}");
        }
        stored += 1;
    };
    log::write(
        log::Level::Info,
        &format!("stored {stored} values, then: {stop}"),
    );
    ok(format!("stored {stored}"), stored)
}

/// A wasi:http request for `scheme://authority/path`, not sent yet.
fn wasi_request(method: &Method, scheme: &Scheme, authority: &str, path: &str) -> OutgoingRequest {
    let request = OutgoingRequest::new(Fields::new());
    // Each setter only fails on a malformed value; these are well formed.
    let _ = request.set_method(method);
    let _ = request.set_scheme(Some(scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    request
}

/// Waits for a wasi:http response; its status or the error, as text.
fn answer(pending: &FutureIncomingResponse) -> String {
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(response))) => format!("status {}", response.status()),
        Some(Ok(Err(code))) => format!("{code:?}"),
        other => format!("{other:?}"),
    }
}

/// Starts a POST over wasi:http and streams its body without end (up to
/// 256 MiB), the way a guest would grow host memory if the host collected
/// the whole body before checking its size.
fn stream_body() -> Outcome {
    let request = wasi_request(&Method::Post, &Scheme::Https, "api.allowed.test", "/upload");
    let Ok(body) = request.body() else {
        return ok("no request body".into(), 0);
    };
    let pending = match outgoing_handler::handle(request, None) {
        Ok(pending) => pending,
        Err(e) => return ok(format!("refused at once: {e:?}"), 0),
    };
    let Ok(stream) = body.write() else {
        return ok("no body stream".into(), 0);
    };
    let chunk = [0x42u8; 4096];
    let mut streamed: u64 = 0;
    let stop = loop {
        if streamed >= 256 << 20 {
            break "never stopped".to_string();
        }
        match stream.blocking_write_and_flush(&chunk) {
            Ok(()) => streamed += chunk.len() as u64,
            Err(e) => break format!("{e:?}"),
        }
    };
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
    let answer = answer(&pending);
    log::write(
        log::Level::Info,
        &format!("streamed {streamed} bytes, then: {stop}; answer: {answer}"),
    );
    ok(
        format!("streamed {streamed} bytes"),
        (streamed >> 20) as u32,
    )
}

/// Starts 12 wasi:http GETs to the config's `fan_out_url` at once, then
/// waits for all of them; logs how many were answered.
fn fan_out() -> Outcome {
    let Some(url) = config::get("fan_out_url") else {
        return ok("no fan_out_url".into(), 0);
    };
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", &url));
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = format!("/{path}");
    let pending: Vec<_> = (0..12)
        .map(|_| {
            outgoing_handler::handle(wasi_request(&Method::Get, &scheme, authority, &path), None)
        })
        .collect();
    let mut answered = 0;
    for request in pending {
        let result = match request {
            Ok(pending) => answer(&pending),
            Err(e) => format!("{e:?}"),
        };
        if result == "status 200" {
            answered += 1;
        } else {
            log::write(log::Level::Warn, &format!("fan-out request: {result}"));
        }
    }
    ok(format!("{answered} of 12 answered"), answered)
}

/// Creates resources that live in host memory (wasi:http header fields) and
/// never drops them, up to two million.
fn hoard() -> Outcome {
    let mut kept = 0;
    while kept < 2_000_000 {
        std::mem::forget(Fields::new());
        kept += 1;
        if kept % 1000 == 0 {
            log::write(log::Level::Info, &format!("holding {kept} resources"));
        }
    }
    ok(format!("kept {kept} resources"), kept)
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
            "deny-loop" => deny_loop(),
            "fill" => fill(64 << 10),
            "fill-keys" => fill(1),
            "stream-body" => stream_body(),
            "fan-out" => fan_out(),
            "hoard" => hoard(),
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
