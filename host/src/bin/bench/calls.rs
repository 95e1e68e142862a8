//! Calls inside one run, with `plugins/bench`: key-value operations per
//! second, and guest HTTP through the host against native reqwest to the same
//! loopback server.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use airlock::egress::{AddressPolicy, PermittedDomains, ResolveOverrides};
use airlock::runs::{Mode, RunRequest, Trigger};
use airlock::{Airlock, AirlockOptions, ConfigValues, Installation, Plugin, SqliteStore};

use super::Args;

/// The name the guest's requests go to; the bench's resolver maps it to the
/// loopback server, exactly as the tests' `--resolve` does.
const BENCH_HOST: &str = "bench.test";

pub async fn measure(args: &Args) -> anyhow::Result<()> {
    let plugin = Plugin::load(Path::new("plugins/bench"))
        .context("build the plugins first: scripts/build-plugins.sh")?;
    let server = LoopbackServer::start().await?;
    let host = bench_host()?;

    let kv = run(&host, &plugin, "kv", args.kv_operations / 2, &server).await?;
    println!(
        "kv       {} operations in one run ({} sets, then as many gets): {:.1} ms, {:.0} operations/s",
        args.kv_operations,
        args.kv_operations / 2,
        ms(kv),
        f64::from(args.kv_operations) / kv.as_secs_f64()
    );

    // Warm both sides (connection set up, component loaded), then measure.
    run(&host, &plugin, "http", 50, &server).await?;
    let guest = run(&host, &plugin, "http", args.http_requests, &server).await?;
    let native = native_gets(&server.url(), args.http_requests).await?;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(args.http_requests);
    println!(
        "http     {} sequential GETs to a loopback server: guest through the host {:.1} µs each, native reqwest {:.1} µs each",
        args.http_requests,
        per(guest),
        per(native)
    );
    println!(
        "         connections the server accepted over both sides: {}",
        server
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "ratio    guest HTTP / native reqwest: {:.2}x",
        guest.as_secs_f64() / native.as_secs_f64()
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A host whose test resolver maps [`BENCH_HOST`] to loopback, with loopback
/// an allowed network: the same explicit settings the tests use.
fn bench_host() -> anyhow::Result<Airlock> {
    let mut resolve = ResolveOverrides::default();
    resolve
        .add_spec(&format!("{BENCH_HOST}=127.0.0.1"))
        .map_err(anyhow::Error::msg)?;
    let options = AirlockOptions {
        resolve,
        addresses: AddressPolicy::new(vec!["127.0.0.0/8".parse()?]),
        permitted: PermittedDomains::default(),
        ..AirlockOptions::default()
    };
    let store = Arc::new(SqliteStore::in_memory()?);
    Ok(Airlock::new(store, options)?)
}

/// Runs `feed` of the bench plugin with `operations`, returning how long the
/// guest's call took (the run's own record, which excludes recording it).
async fn run(
    host: &Airlock,
    plugin: &Plugin,
    feed: &str,
    operations: u32,
    server: &LoopbackServer,
) -> anyhow::Result<Duration> {
    let config = ConfigValues::from_assignments(
        &plugin.manifest,
        &[
            format!("operations={operations}"),
            format!("url={}", server.guest_url()),
        ],
    )?;
    let installation = Installation {
        tenant: "bench".into(),
        id: format!("bench-{feed}"),
        config,
        mode: Mode::Live,
        rate_limits: Default::default(),
        approved_egress: None,
        approved_data: None,
    };
    let request = RunRequest {
        feed: feed.into(),
        trigger: Trigger::Manual,
        scheduled_at: 0,
        attempt: 1,
    };
    let started = Instant::now();
    let report = host.run_feed(plugin, &installation, request).await?;
    let took = started.elapsed();
    anyhow::ensure!(
        report.severity().commits(),
        "bench feed {feed} failed: {}",
        report.end.summary()
    );
    Ok(took)
}

/// `requests` sequential GETs of `url` with one plain reqwest client.
async fn native_gets(url: &str, requests: u32) -> anyhow::Result<Duration> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    for _ in 0..50 {
        client.get(url).send().await?.bytes().await?;
    }
    let started = Instant::now();
    for _ in 0..requests {
        let response = client.get(url).send().await?;
        anyhow::ensure!(response.status() == 200, "status {}", response.status());
        response.bytes().await?;
    }
    Ok(started.elapsed())
}

/// A minimal HTTP/1.1 server on loopback that answers every request with a
/// small 200 and keeps connections alive.
struct LoopbackServer {
    port: u16,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl LoopbackServer {
    async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(serve_connection(socket));
            }
        });
        Ok(Self {
            port,
            connections,
            task,
        })
    }

    /// The URL as the guest names it (through the bench resolver).
    fn guest_url(&self) -> String {
        format!("http://{BENCH_HOST}:{}/ok", self.port)
    }

    /// The URL native reqwest uses.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/ok", self.port)
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers each request on `socket` (bodiless GETs) until the client closes.
async fn serve_connection(mut socket: tokio::net::TcpStream) {
    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok";
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = socket.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            buffer.drain(..end + 4);
            if socket.write_all(RESPONSE).await.is_err() {
                return;
            }
        }
    }
}
