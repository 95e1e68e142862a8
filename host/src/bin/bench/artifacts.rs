//! `airlock-bench --artifacts MIB`: publishing and serving an artifact of
//! MIB MiB, on a SQLite file.
//!
//! - Publish: a full run of `plugins/artifacts-probe` (feed `publish`,
//!   256 KiB appends) that writes and publishes it, against the baseline of
//!   the same bytes written as 1 MiB key-value values, one transaction each
//!   (the store's simplest write path, with the same disk flushes).
//! - Serve: `GET /feeds/…` through `airlock serve`'s router on loopback
//!   with reqwest, as is and gzipped, against the baseline of reading the
//!   same chunks straight from the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use airlock::artifacts::token;
use airlock::runs::{Mode, RunRequest, Trigger};
use airlock::storage::{ArtifactStore, KvBackend, Scope};
use airlock::web::{WebServer, WebState};
use airlock::{Airlock, AirlockOptions, ConfigValues, Installation, Plugin, SqliteStore};

fn rate(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

/// Publishes and serves an artifact of `mib` MiB; prints MiB/s against the
/// baselines.
pub async fn measure(mib: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db"))?);
    let host = Arc::new(Airlock::new(store.clone(), AirlockOptions::default())?);
    let plugin = Plugin::load("plugins/artifacts-probe".as_ref())
        .context("plugins/artifacts-probe (run scripts/build-plugins.sh)")?;
    let config = ConfigValues::from_assignments(
        &plugin.manifest,
        &[format!("kib={}", mib << 10), "chunk_kib=256".into()],
    )?;
    let installation = Installation {
        tenant: "bench".into(),
        id: "feeds".into(),
        config,
        mode: Mode::Live,
        rate_limits: Default::default(),
        approved_egress: None,
        approved_data: None,
    };
    let bytes = mib << 20;

    let started = Instant::now();
    let report = host
        .run_feed(
            &plugin,
            &installation,
            RunRequest {
                feed: "publish".into(),
                trigger: Trigger::Manual,
                scheduled_at: 0,
                attempt: 1,
            },
        )
        .await?;
    let publish = started.elapsed();
    anyhow::ensure!(report.committed, "the run failed: {}", report.end.summary());

    let kv_scope = Scope {
        tenant: "bench".into(),
        installation: "baseline".into(),
    };
    let value = vec![b'x'; 1 << 20];
    let started = Instant::now();
    for i in 0..mib {
        store
            .kv_apply(&kv_scope, &[(format!("chunk-{i}"), Some(value.clone()))])
            .await?;
    }
    let baseline = started.elapsed();
    println!(
        "publish {mib} MiB: {:.0} MiB/s (a run: guest, sha256, staging, publish) vs {:.0} MiB/s \
         (1 MiB key-value writes), ratio {:.2}",
        rate(bytes, publish),
        rate(bytes, baseline),
        publish.as_secs_f64() / baseline.as_secs_f64()
    );

    let scope = Scope {
        tenant: "bench".into(),
        installation: "feeds".into(),
    };
    let secret = token::generate();
    ArtifactStore::set_feed_token_hash(&*store, &scope, token::hash(&secret), 0).await?;
    let version = ArtifactStore::artifact(&*store, &scope, "feed.txt", None)
        .await?
        .context("published")?;
    let started = Instant::now();
    let mut read = 0u64;
    for seq in 0..version.chunks {
        let chunk = ArtifactStore::artifact_chunk(&*store, &scope, version.id, seq).await?;
        read += chunk.map_or(0, |c| c.len() as u64);
    }
    let direct = started.elapsed();
    anyhow::ensure!(read == bytes, "read {read} bytes");

    let server = WebServer::bind("127.0.0.1:0".parse()?, WebState::new(host)).await?;
    let addr = server.local_addr()?;
    let serving = tokio::spawn(server.run());
    let url = format!("http://{addr}/feeds/bench/feeds/feed.txt?token={secret}");
    let client = reqwest::Client::new();
    let fetch = async |gzip: bool| -> anyhow::Result<(Duration, u64)> {
        let mut request = client.get(&url);
        if gzip {
            request = request.header("accept-encoding", "gzip");
        }
        let started = Instant::now();
        let mut response = request.send().await?.error_for_status()?;
        let mut got = 0u64;
        while let Some(chunk) = response.chunk().await? {
            got += chunk.len() as u64;
        }
        Ok((started.elapsed(), got))
    };
    let (plain, got) = fetch(false).await?;
    anyhow::ensure!(got == bytes, "served {got} bytes");
    let (gzipped, compressed) = fetch(true).await?;
    serving.abort();
    println!(
        "serve {mib} MiB: {:.0} MiB/s over HTTP, {:.0} MiB/s gzipped ({:.1}% of the size) vs \
         {:.0} MiB/s reading the chunks from the store, ratio {:.2}",
        rate(bytes, plain),
        rate(bytes, gzipped),
        compressed as f64 * 100.0 / bytes as f64,
        rate(bytes, direct),
        plain.as_secs_f64() / direct.as_secs_f64()
    );
    Ok(())
}
