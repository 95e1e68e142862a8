//! A fake of SALESmanago's legacy API on loopback (as
//! `app2.salesmanago.pl`), over TLS with a test certificate authority made
//! for the run, for the demo.
//!
//! Run with `cargo run -p airlock-tests --bin airlock-fake-salesmanago --
//! --ca-out ca.pem --secrets-out salesmanago-secrets.toml`. It prints its
//! port, the client id and owner it accepts, and the `--resolve` /
//! `--trust-root` options that reach it; on SIGTERM or Ctrl-C it prints the
//! contacts (with their tags and opt-in) and events it holds, and exits.

use airlock_tests::salesmanago::{FakeSalesmanago, SalesmanagoAccount};
use airlock_tests::tls::TestCa;
use clap::Parser;

/// Serve a fake of app2.salesmanago.pl on 127.0.0.1 (TLS) until interrupted.
#[derive(Parser)]
struct Args {
    /// Where to write the test authority's certificate (PEM), for
    /// `airlock --trust-root`.
    #[arg(long, value_name = "FILE")]
    ca_out: std::path::PathBuf,
    /// Where to write the API secret it accepts, as a config file for
    /// `airlock install --config-file` (`api_secret = "…"`), mode 0600.
    #[arg(long, value_name = "FILE")]
    secrets_out: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ca = TestCa::for_names(&["app2.salesmanago.pl"]);
    std::fs::write(&args.ca_out, &ca.ca_pem)?;
    let account = SalesmanagoAccount {
        client_id: "demo-client".into(),
        api_secret: airlock::url_secret::generate_alphanumeric(24),
        owner: "owner@shop.example".into(),
    };
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&args.secrets_out)?;
        writeln!(file, "api_secret = \"{}\"", account.api_secret)?;
    }
    let sm = FakeSalesmanago::start(account.clone(), &ca).await?;
    println!("fake salesmanago listening on 127.0.0.1:{}", sm.addr.port());
    println!(
        "  --resolve app2.salesmanago.pl=127.0.0.1:{} --trust-root {}",
        sm.addr.port(),
        args.ca_out.display()
    );
    println!(
        "  client_id={} owner={} (the API secret is in {})",
        account.client_id,
        account.owner,
        args.secrets_out.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("SALESmanago holds:");
    for (email, c) in sm.contacts() {
        let opted = match c.opted_in {
            Some(true) => "opted in",
            Some(false) => "opted out",
            None => "no opt-in answer",
        };
        let tags: Vec<String> = c.tags.into_iter().collect();
        println!("  contact {email}: {opted}; tags {}", tags.join(", "));
    }
    for e in sm.events() {
        println!(
            "  event {} {} for {}: products {}, value {}, location {}",
            e["contactExtEventType"].as_str().unwrap_or_default(),
            e["externalId"].as_str().unwrap_or_default(),
            e["email"].as_str().unwrap_or_default(),
            e["products"].as_str().unwrap_or_default(),
            e["value"],
            e["location"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}
