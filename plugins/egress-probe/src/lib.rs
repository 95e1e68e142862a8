//! A Rust connector that probes the host's egress and redaction from inside:
//!
//! - feed `probe`: the egress tests' four requests through
//!   `airlock:connector/http`: one allowed, one to a host not granted, one
//!   redirected to a host not granted, and a POST (suppressed in test mode).
//!   Each result is logged as `label -> …`; the JavaScript twin in
//!   `plugins/js-egress` does the same with `fetch`.
//! - feed `sockets`: a raw TCP connection, a UDP socket and a name lookup
//!   through `wasi:sockets`, each logged; the host grants none of them.
//! - feed `headers`: one request per forwarding or proxy header, then one
//!   without, each logged; the fake server records what arrived.
//! - feed `leak`: the installation's secret `token` written every way a
//!   careless connector might: to stdout byte by byte, to stderr across the
//!   output cap, to the log as base64, Basic auth and percent-encoded, across
//!   a log line's cap, in a URL path reached through a redirect, and in the
//!   outcome message. None of it may reach the run's record.
//!
//! Build with `scripts/build-plugins.sh`.

wit_bindgen::generate!({ path: "../../wit", world: "connector" });

use std::io::Write;

use airlock::connector::http::{self, HttpError};
use airlock::connector::types::Status;
use airlock::connector::{config, log};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

struct EgressProbe;

export!(EgressProbe);

fn send(method: &str, url: &str, headers: Vec<(String, String)>, body: Option<&[u8]>) -> String {
    let request = http::Request {
        method: method.into(),
        url: url.into(),
        headers,
        body: body.map(<[u8]>::to_vec),
        timeout_ms: Some(5000),
    };
    match http::send(&request) {
        Ok(r) => format!("status {} ({} bytes)", r.status, r.body.len()),
        Err(HttpError::Denied(d)) => format!("denied {}", d.rule),
        Err(HttpError::SuppressedInTestMode) => "suppressed-in-test-mode".to_string(),
        Err(other) => format!("error {other:?}"),
    }
}

fn info(line: &str) {
    log::write(log::Level::Info, line);
}

fn ok(message: String, items: u32) -> Outcome {
    Outcome {
        status: Status::Ok,
        message,
        items,
        retry_after_seconds: None,
    }
}

/// The four requests named by config.
fn probe() -> Outcome {
    let mut sent = 0;
    for (label, key, method, body) in [
        ("allowed", "allowed_url", "GET", None),
        ("denied", "denied_url", "GET", None),
        ("redirect", "redirect_url", "GET", None),
        ("post", "post_url", "POST", Some(&b"stock=5"[..])),
    ] {
        if let Some(url) = config::get(key) {
            let line = send(method, &url, vec![], body);
            if line.starts_with("status") {
                sent += 1;
            }
            info(&format!("{label} -> {line}"));
        }
    }
    ok(format!("{sent} of 4 requests answered"), sent)
}

/// `ok` or the error, for the log.
fn outcome<T, E: std::fmt::Debug>(result: Result<T, E>) -> String {
    match result {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("error {e:?}"),
    }
}

/// Sockets and name lookups through `wasi:sockets`, which the host does not
/// grant.
fn sockets() -> Outcome {
    use wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    use wasi::sockets::{instance_network, ip_name_lookup, tcp_create_socket, udp_create_socket};

    let target: std::net::SocketAddrV4 = config::get("socket_addr")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| "127.0.0.1:9".parse().expect("an address"));
    let [a, b, c, d] = target.ip().octets();
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: target.port(),
        address: (a, b, c, d),
    });
    let any = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: 0,
        address: (0, 0, 0, 0),
    });
    let host = config::get("lookup_host").unwrap_or_else(|| "localhost".into());
    let network = instance_network::instance_network();

    let tcp = tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4).and_then(|socket| {
        socket.start_connect(&network, remote)?;
        socket.subscribe().block();
        socket.finish_connect().map(|_| ())
    });
    info(&format!("tcp -> {}", outcome(tcp)));
    let udp = udp_create_socket::create_udp_socket(IpAddressFamily::Ipv4).and_then(|socket| {
        socket.start_bind(&network, any)?;
        socket.subscribe().block();
        socket.finish_bind()
    });
    info(&format!("udp -> {}", outcome(udp)));
    let lookup = ip_name_lookup::resolve_addresses(&network, &host).and_then(|stream| {
        stream.subscribe().block();
        stream.resolve_next_address()
    });
    info(&format!("lookup -> {}", outcome(lookup)));
    ok("sockets probed".into(), 0)
}

/// Headers that would forward, proxy or retarget a request.
const FORWARDING: [&str; 12] = [
    "Forwarded",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Real-IP",
    "Via",
    "Proxy-Authorization",
    "Proxy-Connection",
    "Host",
    "Connection",
    "Transfer-Encoding",
    "Upgrade",
];

fn headers() -> Outcome {
    let Some(url) = config::get("allowed_url") else {
        return ok("no allowed_url".into(), 0);
    };
    for name in FORWARDING {
        let line = send("GET", &url, vec![(name.into(), "203.0.113.9".into())], None);
        info(&format!("{name} -> {line}"));
    }
    info(&format!("plain -> {}", send("GET", &url, vec![], None)));
    ok("headers probed".into(), 0)
}

/// Writes `text` to `out` one byte per write, flushing each.
fn trickle(out: &mut impl Write, text: &str) {
    for byte in text.as_bytes() {
        let _ = out.write_all(std::slice::from_ref(byte));
        let _ = out.flush();
    }
}

fn percent_encoded(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn leak() -> Outcome {
    let token = config::get_secret("token").unwrap_or_default();
    let filler = |n: usize| "x".repeat(n);
    let number =
        |key: &str| -> usize { config::get(key).and_then(|v| v.parse().ok()).unwrap_or(0) };

    let mut stdout = std::io::stdout();
    trickle(&mut stdout, &format!("token={token}\n"));
    let mut stderr = std::io::stderr();
    let _ = stderr.write_all(filler(number("output_cap").saturating_sub(3)).as_bytes());
    trickle(&mut stderr, &token);

    info(&format!("base64 {}", STANDARD.encode(&token)));
    info(&format!("url-safe {}", URL_SAFE_NO_PAD.encode(&token)));
    info(&format!(
        "Authorization: Basic {}",
        STANDARD.encode(format!("merchant:{token}"))
    ));
    info(&format!("percent {}", percent_encoded(&token)));
    info(&format!(
        "{}{token}",
        filler(number("line_cap").saturating_sub(3))
    ));

    if let Some(url) = config::get("allowed_url") {
        // Encoded twice: the fake server decodes the query once, and the
        // next hop's path carries the token percent-encoded.
        let to = format!("/ok/{}", percent_encoded(&percent_encoded(&token)));
        let line = send("GET", &format!("{url}/redirect?to={to}"), vec![], None);
        info(&format!("redirect -> {line}"));
    }
    ok(format!("leaked {token}"), 0)
}

impl Guest for EgressProbe {
    fn run(ctx: RunContext) -> Outcome {
        match ctx.feed.as_str() {
            "probe" => probe(),
            "sockets" => sockets(),
            "headers" => headers(),
            "leak" => leak(),
            other => Outcome {
                status: Status::Error,
                message: format!("unknown feed `{other}`"),
                items: 0,
                retry_after_seconds: None,
            },
        }
    }

    fn check() -> Result<(), String> {
        config::get("allowed_url")
            .map(|_| ())
            .ok_or_else(|| "config `allowed_url` is not set".to_string())
    }
}
