//! Benchmark: the Xero connector syncing N orders (default 1,000, each with
//! a completed payment) to the fake Xero over TLS, against a baseline in the
//! same run: the very requests the connector made, replayed natively (one
//! reqwest client, keep-alive) against a fresh fake. The ratio is what the
//! sandbox, the host's egress checks and the records interface cost on top
//! of the HTTP work itself.
//!
//! `cargo run --release -p airlock-tests --bin airlock-bench-xero -- [N]`
//! (build the plugins first: `scripts/build-plugins.sh`).

use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;

use airlock::egress::{AddressPolicy, ExtraRoots, PermittedDomains, ResolveOverrides};
use airlock::records::import::import_jsonl;
use airlock::runs::{Mode, RunRequest, Trigger};
use airlock::secrets::{Keyring, MasterKey};
use airlock::storage::{Registry, TenantRow};
use airlock::{Airlock, AirlockOptions, ConfigValues, Installation, Plugin, SqliteStore};
use airlock_tests::identity::{FakeIdentity, IdentitySettings};
use airlock_tests::tls::TestCa;
use airlock_tests::xero::{FakeXero, XeroSettings};
use serde_json::json;

fn orders(n: usize) -> (String, String) {
    let (mut orders, mut payments) = (String::new(), String::new());
    for i in 0..n {
        let price = 10 + (i % 90);
        let total = format!("{}.95", price * 2 + 4);
        let order = json!({
            "id": format!("B{i:06}"), "number": format!("B{i:06}"), "status": "completed",
            "placed_at": "2026-11-20T10:00:00Z", "currency": "GBP", "prices_include_tax": true,
            "customer": {"id": format!("c{}", i % 200), "email": format!("c{}@example.com", i % 200), "name": format!("Customer {}", i % 200)},
            "lines": [
                {"sku": format!("SKU-{}", i % 20), "description": "Thing", "quantity": 1, "unit_price": format!("{price}.00"), "completed": true},
                {"sku": format!("SKU-{}", (i + 7) % 20), "description": "Other thing", "quantity": 1, "unit_price": format!("{price}.00"), "completed": true}
            ],
            "totals": {"shipping": "4.95", "total": total},
        });
        let payment = json!({"id": format!("P{i:06}"), "order_id": format!("B{i:06}"), "amount": total,
            "currency": "GBP", "paid_at": "2026-11-21T10:00:00Z", "status": "completed"});
        orders.push_str(&format!("{order}\n"));
        payments.push_str(&format!("{payment}\n"));
    }
    (orders, payments)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let ca = TestCa::for_names(&["api.xero.com", "identity.xero.com", "login.xero.com"]);
    let identity = FakeIdentity::start_tls(IdentitySettings::default(), &ca).await?;
    let mut settings = XeroSettings::accepting(&[]);
    settings.token_ok = identity.token_check();
    settings.calls_per_window = u32::MAX;
    settings.calls_per_day = u32::MAX;
    let xero = FakeXero::start(settings, Some(&ca)).await?;

    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db"))?);
    let mut resolve = ResolveOverrides::default();
    resolve
        .add_spec(&format!("api.xero.com=127.0.0.1:{}", xero.addr.port()))
        .map_err(anyhow::Error::msg)?;
    resolve
        .add_spec(&format!(
            "identity.xero.com=127.0.0.1:{}",
            identity.addr.port()
        ))
        .map_err(anyhow::Error::msg)?;
    let mut permitted = PermittedDomains::default();
    permitted
        .add("xero.com", "Xero (benchmark)")
        .map_err(anyhow::Error::msg)?;
    let mut extra_roots = ExtraRoots::default();
    extra_roots
        .add_pem("bench CA", ca.ca_pem.as_bytes())
        .map_err(anyhow::Error::msg)?;
    let options = AirlockOptions {
        resolve,
        addresses: AddressPolicy::new(vec!["127.0.0.0/8".parse()?]),
        permitted,
        extra_roots,
        keyring: Some(Arc::new(Keyring::new(MasterKey::generate(), Vec::new()))),
        cache_dir: Some(dir.path().join("cache")),
        ..AirlockOptions::default()
    };
    let host = Airlock::new(store.clone(), options)?;
    Registry::add_tenant(
        &*store,
        TenantRow {
            id: "bench".into(),
            name: "Bench".into(),
            created_at: 0,
        },
    )
    .await?;
    let (order_lines, payment_lines) = orders(n);
    for (collection, lines) in [("orders", order_lines), ("payments", payment_lines)] {
        import_jsonl(
            &*store,
            "bench",
            collection,
            Cursor::new(lines.into_bytes()),
            &mut |_| {},
        )
        .await?;
    }
    let plugin = Plugin::load(&airlock_tests::plugin_dir("xero"))?;
    let config = ConfigValues::from_assignments(
        &plugin.manifest,
        &[
            format!("client_id={}", IdentitySettings::default().client_id),
            format!(
                "client_secret={}",
                IdentitySettings::default().client_secret
            ),
            "invoice_status=authorised".into(),
            "calls_per_minute=10000".into(),
        ],
    )?;
    let installation = Installation {
        tenant: "bench".into(),
        id: "xero".into(),
        config,
        mode: Mode::Live,
        rate_limits: Default::default(),
        approved_egress: None,
        approved_data: Some(plugin.manifest.data.clone()),
    };
    airlock::oauth::flow::client_credentials(&host, &plugin, &installation).await?;
    let request = || RunRequest {
        feed: "sync".into(),
        trigger: Trigger::Manual,
        scheduled_at: 0,
        attempt: 1,
    };

    // Compile the component first: compiling is not what is measured.
    host.load(&plugin)?;
    let started = Instant::now();
    let report = host.run_feed(&plugin, &installation, request()).await?;
    let sandboxed = started.elapsed();
    println!("sync of {n} orders: {}", report.end.summary());
    let seen = xero.seen();
    let requests = seen.len();

    // Baseline: the same requests, natively, against a fresh fake.
    let mut replay_settings = XeroSettings::accepting(&["bench-token"]);
    replay_settings.calls_per_window = u32::MAX;
    replay_settings.calls_per_day = u32::MAX;
    let fresh = FakeXero::start(replay_settings.clone(), Some(&ca)).await?;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.ca_pem.as_bytes())?)
        .resolve("api.xero.com", fresh.addr)
        .build()?;
    let started = Instant::now();
    for r in &seen {
        let url = if r.query.is_empty() {
            format!("https://api.xero.com{}", r.path)
        } else {
            format!("https://api.xero.com{}?{}", r.path, r.query)
        };
        let mut req = client
            .request(r.method.parse()?, url)
            .bearer_auth("bench-token")
            .header("xero-tenant-id", &replay_settings.tenant_id)
            .header("accept", "application/json");
        if let Some(key) = &r.idempotency_key {
            req = req
                .header("idempotency-key", key)
                .header("content-type", "application/json")
                .body(r.body.clone());
        }
        req.send().await?.bytes().await?;
    }
    let native = started.elapsed();
    println!(
        "requests: {requests} ({:.2} per order); invoices {}, payments {}, contacts {}, items {}",
        requests as f64 / n as f64,
        xero.invoices().len(),
        xero.payments().len(),
        xero.contacts().len(),
        xero.items().len()
    );
    println!(
        "sandboxed connector: {:.2} s ({:.0} orders/s); native replay of the same requests: {:.2} s; ratio {:.2}",
        sandboxed.as_secs_f64(),
        n as f64 / sandboxed.as_secs_f64(),
        native.as_secs_f64(),
        sandboxed.as_secs_f64() / native.as_secs_f64()
    );
    Ok(())
}
