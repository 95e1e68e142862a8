//! A fake X-Cart shop (REST API add-on) on loopback over TLS with a test
//! certificate authority made for the run, with the fixture orders and
//! products, for trying the `xcart` connector by hand.
//!
//! Run with `cargo run -p airlock-tests --bin airlock-fake-xcart -- --ca-out ca.pem
//! --secrets-out xcart-secrets.toml`.
//! It prints its port and the `--resolve`/`--trust-root` options that reach
//! it as `https://shop.example.com`; the read/write key it accepts is in the
//! secrets file (`api_key = "…"`, mode 0600). On SIGTERM or Ctrl-C it
//! prints the writes it received and exits.

use airlock_tests::tls::TestCa;
use airlock_tests::xcart::{FakeXCart, NEW_SHOP_HOST, SHOP_HOST, fixture_orders, fixture_products};
use clap::Parser;

/// Serve a fake X-Cart at shop.example.com on 127.0.0.1 (TLS) until
/// interrupted.
#[derive(Parser)]
struct Args {
    /// Where to write the test authority's certificate (PEM), for
    /// `airlock --trust-root`.
    #[arg(long, value_name = "FILE")]
    ca_out: std::path::PathBuf,
    /// Where to write the API key it accepts, as a config file for
    /// `airlock install --config-file` (`api_key = "…"`), mode 0600.
    #[arg(long, value_name = "FILE")]
    secrets_out: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ca = TestCa::for_names(&[SHOP_HOST, NEW_SHOP_HOST]);
    std::fs::write(&args.ca_out, &ca.ca_pem)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .subsec_nanos();
    let key = format!("demo-rw-{nanos:08x}");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&args.secrets_out)?;
        writeln!(file, "api_key = \"{key}\"")?;
    }
    let shop = FakeXCart::start(&key, "demo-read-only", &ca).await?;
    shop.set_orders(fixture_orders(chrono::Utc::now().timestamp()));
    shop.set_products(fixture_products());
    println!("fake x-cart listening on 127.0.0.1:{}", shop.addr.port());
    println!(
        "  --resolve {SHOP_HOST}=127.0.0.1:{} --trust-root {}",
        shop.addr.port(),
        args.ca_out.display()
    );
    println!(
        "  --config endpoint=https://{SHOP_HOST}/xcart --config-file {}",
        args.secrets_out.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let writes = shop.writes();
    println!(
        "X-Cart received {} writes ({} requests answered)",
        writes.len(),
        shop.seen().len()
    );
    for w in writes {
        println!("  {} {} {:?}", w.http_method, w.path, w.fields);
    }
    Ok(())
}
