//! Benchmarks of the seed connectors, each against a baseline in the same
//! run (build the plugins first: `scripts/build-plugins.sh`):
//!
//! - `xero [N]`: the Xero connector syncing N orders (default 1,000, each
//!   with a completed payment) to the fake Xero over TLS; baseline: the
//!   very requests the connector made, replayed natively (one reqwest
//!   client, keep-alive) against a fresh fake. The ratio is what the
//!   sandbox, the host's egress checks and the records interface cost on
//!   top of the HTTP work itself.
//! - `sitemap [N]`: the JavaScript sitemap connector over N products
//!   (default 100,000) under its manifest's memory cap, publishing the
//!   index and its parts; baseline: the same walk of the records and the
//!   same XML written natively (no artifact stored). Also the guest's peak
//!   memory.
//!
//! `cargo run --release -p airlock-tests --bin airlock-bench-connectors -- xero 1000`

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
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_default();
    let n: Option<usize> = args.next().map(|a| a.parse()).transpose()?;
    match which.as_str() {
        "xero" => xero(n.unwrap_or(1000)).await,
        "sitemap" => sitemap(n.unwrap_or(100_000)).await,
        _ => anyhow::bail!("usage: airlock-bench-connectors xero [ORDERS] | sitemap [PRODUCTS]"),
    }
}

async fn xero(n: usize) -> anyhow::Result<()> {
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
    add_bench_tenant(&store).await?;
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

fn products(n: usize) -> String {
    let mut out = String::with_capacity(n * 200);
    for i in 0..n {
        let product = json!({
            "id": format!("p{i:06}"), "title": format!("Product {i}"),
            "url": format!("https://shop.example.co.uk/p/{i:06}"),
            "price": "19.99", "currency": "GBP", "status": "active",
            "category_ids": ["c1"], "updated_at": "2026-11-20T10:00:00Z",
        });
        out.push_str(&format!("{product}\n"));
    }
    out
}

async fn sitemap(n: usize) -> anyhow::Result<()> {
    use airlock::storage::{PageLimit, RecordStore};
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db"))?);
    let options = AirlockOptions {
        cache_dir: Some(dir.path().join("cache")),
        ..AirlockOptions::default()
    };
    let host = Airlock::new(store.clone(), options)?;
    add_bench_tenant(&store).await?;
    let started = Instant::now();
    import_jsonl(
        &*store,
        "bench",
        "products",
        Cursor::new(products(n).into_bytes()),
        &mut |_| {},
    )
    .await?;
    println!(
        "imported {n} products in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let plugin = Plugin::load(&airlock_tests::plugin_dir("sitemap"))?;
    let config = ConfigValues::from_assignments(
        &plugin.manifest,
        &["base_url=https://shop.example.co.uk".into()],
    )?;
    let installation = Installation {
        tenant: "bench".into(),
        id: "sitemap".into(),
        config,
        mode: Mode::Live,
        rate_limits: Default::default(),
        approved_egress: None,
        approved_data: Some(plugin.manifest.data.clone()),
    };
    host.load(&plugin)?;
    let request = RunRequest {
        feed: "sitemap".into(),
        trigger: Trigger::Manual,
        scheduled_at: 0,
        attempt: 1,
    };
    let started = Instant::now();
    let report = host.run_feed(&plugin, &installation, request).await?;
    let sandboxed = started.elapsed();
    println!("sitemap of {n} products: {}", report.end.summary());

    // Baseline: the same records walked and the same XML written, natively.
    let started = Instant::now();
    let (mut after, mut urls, mut bytes) = (0i64, 0usize, 0usize);
    let mut xml = Vec::with_capacity(64 * 1024);
    loop {
        let page = RecordStore::record_changes(
            &*store,
            "bench",
            "products",
            after,
            PageLimit::records(500),
        )
        .await?;
        for record in &page.records {
            after = record.version;
            let Some(body) = &record.body else { continue };
            let body: serde_json::Value = serde_json::from_str(body)?;
            let loc = body["url"]
                .as_str()
                .unwrap_or_default()
                .replace('&', "&amp;");
            let line = format!(
                "<url><loc>{loc}</loc><lastmod>{}</lastmod></url>\n",
                body["updated_at"].as_str().unwrap_or_default()
            );
            xml.extend_from_slice(line.as_bytes());
            urls += 1;
            if xml.len() >= 64 * 1024 {
                bytes += xml.len();
                xml.clear();
            }
        }
        if !page.more {
            break;
        }
    }
    bytes += xml.len();
    let native = started.elapsed();
    println!(
        "sandboxed connector: {:.2} s, guest peak memory {:.1} MiB (cap {} MiB); native walk and XML ({urls} URLs, {:.1} MB): {:.2} s; ratio {:.2}",
        sandboxed.as_secs_f64(),
        report.peak_memory_bytes as f64 / (1024.0 * 1024.0),
        plugin.manifest.limits.memory_mb,
        bytes as f64 / 1e6,
        native.as_secs_f64(),
        sandboxed.as_secs_f64() / native.as_secs_f64()
    );
    Ok(())
}

/// Adds the tenant `bench` the benchmarks' records belong to.
async fn add_bench_tenant(store: &SqliteStore) -> anyhow::Result<()> {
    let tenant = TenantRow {
        id: "bench".into(),
        name: "Bench".into(),
        created_at: 0,
    };
    Registry::add_tenant(store, tenant).await?;
    Ok(())
}
