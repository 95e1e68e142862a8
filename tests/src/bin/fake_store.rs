//! A fake custom-store shop API on loopback, for the demo.
//!
//! Run with `cargo run -p airlock-tests --bin airlock-fake-store -- --port 8080`.
//! Add orders with `curl -X POST localhost:8080/_admin/orders -H 'content-type: application/json'
//! -d '{"OrderNumber":"R1","ModifiedDate":"2026-11-23T10:00:00Z"}'`.

use airlock_tests::fake_store::FakeStore;
use chrono::{Duration, Utc};
use clap::Parser;

/// Serve a fake "custom store" API (basic auth, /authenticatetowebservice,
/// /orders) on 127.0.0.1 until interrupted.
#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Accepted user name.
    #[arg(long, default_value = "demo")]
    username: String,
    /// Accepted password.
    #[arg(long, env = "FAKE_STORE_PASSWORD", default_value = "demo-password")]
    password: String,
    /// Orders to create, modified over the last day.
    #[arg(long, default_value_t = 5)]
    orders: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = FakeStore::start(args.port, &args.username, &args.password).await?;
    let now = Utc::now();
    for i in 0..args.orders {
        store.put_order(
            &format!("R{}", 1001 + i),
            now - Duration::hours(20) + Duration::hours(4 * i64::from(i)) / 2,
        );
    }
    println!(
        "fake store listening on http://{}/api/v1 ({} orders)",
        store.addr, args.orders
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
