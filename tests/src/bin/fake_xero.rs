//! Fakes of Xero's identity server and Accounting API on loopback, over TLS
//! with a test certificate authority made for the run, for the demo.
//!
//! Run with `cargo run -p airlock-tests --bin airlock-fake-xero -- --ca-out ca.pem
//! --secrets-out xero-secrets.toml`.
//! It prints the two ports, the client id and secret it accepts, and the
//! `--resolve`/`--trust-root` options that reach it; on SIGTERM or Ctrl-C it
//! prints what the organisation holds (invoices, credit notes…) and exits.

use airlock_tests::identity::{FakeIdentity, IdentitySettings};
use airlock_tests::tls::TestCa;
use airlock_tests::xero::{FakeXero, XeroSettings};
use clap::Parser;

/// Serve fakes of identity.xero.com and api.xero.com on 127.0.0.1 (TLS)
/// until interrupted.
#[derive(Parser)]
struct Args {
    /// Where to write the test authority's certificate (PEM), for
    /// `airlock --trust-root`.
    #[arg(long, value_name = "FILE")]
    ca_out: std::path::PathBuf,
    /// Where to write the client secret it accepts, as a config file for
    /// `airlock install --config-file` (`client_secret = "…"`), mode 0600.
    #[arg(long, value_name = "FILE")]
    secrets_out: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ca = TestCa::for_names(&["api.xero.com", "identity.xero.com", "login.xero.com"]);
    std::fs::write(&args.ca_out, &ca.ca_pem)?;
    let settings = IdentitySettings::default();
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&args.secrets_out)?;
        writeln!(file, "client_secret = \"{}\"", settings.client_secret)?;
    }
    let identity = FakeIdentity::start_tls(settings.clone(), &ca).await?;
    let mut xero_settings = XeroSettings::accepting(&[]);
    xero_settings.token_ok = identity.token_check();
    let xero = FakeXero::start(xero_settings, Some(&ca)).await?;
    xero.add_item("SOFA-3S-GRY", 412.50);
    println!(
        "fake xero listening: identity on 127.0.0.1:{}, api on 127.0.0.1:{}",
        identity.addr.port(),
        xero.addr.port()
    );
    println!(
        "  --resolve identity.xero.com=127.0.0.1:{} --resolve api.xero.com=127.0.0.1:{} --trust-root {}",
        identity.addr.port(),
        xero.addr.port(),
        args.ca_out.display()
    );
    println!(
        "  client_id={} (its secret is in {})",
        settings.client_id,
        args.secrets_out.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let count = |docs: Vec<serde_json::Value>, field: &str, value: &str| {
        docs.iter().filter(|d| d[field] == value).count()
    };
    let invoices = xero.invoices();
    println!(
        "Xero holds: {} invoices ({} draft, {} authorised, {} paid), {} credit notes, {} purchase orders, {} contacts, {} items, {} payments; {} requests answered",
        invoices.len(),
        count(invoices.clone(), "Status", "DRAFT"),
        count(invoices.clone(), "Status", "AUTHORISED"),
        count(invoices, "Status", "PAID"),
        xero.credit_notes().len(),
        xero.purchase_orders().len(),
        xero.contacts().len(),
        xero.items().len(),
        xero.payments().len(),
        xero.seen().len()
    );
    Ok(())
}
