//! Shared setup for the end-to-end tests.

use std::path::Path;
use std::sync::Arc;

use airlock::egress::{AddressPolicy, PermittedDomains, ResolveOverrides};
use airlock::runs::{Mode, RunReport, RunRequest, Trigger};
use airlock::storage::{RunStorage, Scope, StorageLimits};
use airlock::{Airlock, AirlockOptions, ConfigValues, Installation, Plugin, SqliteStore};
use tempfile::TempDir;

/// A host on a fresh SQLite file, its plugins loaded from `plugins/`.
pub struct Harness {
    pub host: Airlock,
    pub store: Arc<SqliteStore>,
    _dir: TempDir,
}

/// The compiled-component cache shared by all tests, so each component is
/// compiled once per machine, not once per test.
fn cache_dir() -> std::path::PathBuf {
    airlock_tests::repo_root()
        .join("target")
        .join("test-component-cache")
}

/// The hosts' options in every test: the test resolver maps `shop.test`,
/// `api.test` and `evil.test` to loopback (the policy still decides on the
/// names), loopback is an allowed network, and the permitted table is the
/// shipped one plus the test domain the misbehaving plugin uses.
pub fn test_options() -> AirlockOptions {
    let mut resolve = ResolveOverrides::default();
    for host in ["shop.test", "api.test", "evil.test"] {
        resolve.add_spec(&format!("{host}=127.0.0.1")).unwrap();
    }
    let mut permitted = PermittedDomains::default();
    permitted.add("allowed.test", "Test APIs").unwrap();
    AirlockOptions {
        permitted,
        resolve,
        addresses: AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]),
        cache_dir: Some(cache_dir()),
        ..AirlockOptions::default()
    }
}

impl Harness {
    /// A host with [`test_options`] on a fresh SQLite file.
    pub fn new() -> Self {
        Self::with_options(test_options())
    }

    /// A host with `options` on a fresh SQLite file.
    pub fn with_options(options: AirlockOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("airlock.db")).expect("open db"));
        let host = Airlock::new(store.clone(), options).expect("host");
        Self {
            host,
            store,
            _dir: dir,
        }
    }

    /// Reads committed storage of an installation, as a later run would.
    pub async fn stored(&self, tenant: &str, installation: &str, key: &str) -> Option<String> {
        let view = RunStorage::new(
            self.store.clone(),
            Scope {
                tenant: tenant.into(),
                installation: installation.into(),
            },
            StorageLimits::default(),
        );
        view.get(key)
            .await
            .expect("storage read")
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }
}

/// Loads `plugins/NAME`.
pub fn plugin(name: &str) -> Plugin {
    Plugin::load(&airlock_tests::plugin_dir(name)).expect("plugin loads")
}

/// An installation of `plugin` for `tenant` with these config assignments.
pub fn installation(plugin: &Plugin, tenant: &str, id: &str, config: &[String]) -> Installation {
    Installation {
        tenant: tenant.into(),
        id: id.into(),
        config: ConfigValues::from_assignments(&plugin.manifest, config).expect("valid config"),
        mode: Mode::Live,
        rate_limits: Default::default(),
        approved_egress: None,
        approved_data: None,
    }
}

/// Runs `feed` due at `scheduled_at`.
pub async fn run(
    h: &Harness,
    plugin: &Plugin,
    inst: &Installation,
    feed: &str,
    scheduled_at: i64,
) -> RunReport {
    let request = RunRequest {
        feed: feed.into(),
        trigger: Trigger::Manual,
        scheduled_at,
        attempt: 1,
    };
    h.host
        .run_feed(plugin, inst, request)
        .await
        .expect("the host itself does not fail")
}

/// Runs `feed` on `host` (a host of the test's own), due now.
pub async fn run_with(
    host: &Airlock,
    plugin: &Plugin,
    inst: &Installation,
    feed: &str,
) -> RunReport {
    let request = RunRequest {
        feed: feed.into(),
        trigger: Trigger::Manual,
        scheduled_at: 0,
        attempt: 1,
    };
    host.run_feed(plugin, inst, request)
        .await
        .expect("the host itself does not fail")
}

/// `path` as text, for error messages.
#[allow(dead_code)]
pub fn show(path: &Path) -> String {
    path.display().to_string()
}

/// Runs async library code for a helper that is not async, called from a
/// test that may be: on a thread and a runtime of its own, so it never
/// blocks inside the test's runtime. A panic in it is the caller's.
pub fn block_on<F>(future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the helper")
                .block_on(future)
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The `airlock` options that reach fakes of third parties over TLS, with
/// their files in a test's directory `dir`: each `(name, port)` resolved to
/// loopback (the policy still decides on the name), loopback allowed, the
/// fakes' test authority `ca_pem` trusted (written to `dir/ca.pem`), the
/// shipped permitted-domains table plus the operator's `permit` entries
/// (domain, service; written to `dir/permitted.toml` when there are any),
/// and the master key `dir/master.key` (made by `airlock keygen`).
pub fn fake_net(
    dir: &Path,
    ca_pem: &str,
    resolve: &[(&str, u16)],
    permit: &[(&str, &str)],
) -> Vec<String> {
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let mut net: Vec<String> = resolve
        .iter()
        .map(|(name, port)| format!("--resolve={name}=127.0.0.1:{port}"))
        .collect();
    net.push("--allow-network=127.0.0.0/8".to_string());
    net.push(format!("--trust-root={}", ca_file.display()));
    if !permit.is_empty() {
        let mut table =
            std::fs::read_to_string(airlock_tests::repo_root().join("permitted-domains.toml"))
                .unwrap();
        for (domain, service) in permit {
            table.push_str(&format!("\"{domain}\" = \"{service}\"\n"));
        }
        let permitted = dir.join("permitted.toml");
        std::fs::write(&permitted, table).unwrap();
        net.push(format!("--permitted-domains={}", permitted.display()));
    }
    net.push(format!(
        "--master-key-file={}",
        dir.join("master.key").display()
    ));
    net
}
