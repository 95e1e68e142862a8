//! OAuth2 credentials held by the host, end to end: `airlock serve
//! --listen` as a real process, the fake identity server
//! (`airlock_tests::identity`) at Xero's names over TLS, and the
//! `oauth-probe` guest. The test acts as the operator's browser.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use airlock_tests::identity::{FakeIdentity, IdentitySettings};
use airlock_tests::tls::TestCa;

use crate::cli::{command, expect, text};
use crate::serve_cli::Server;

const NAMES: [&str; 3] = ["login.xero.com", "identity.xero.com", "api.xero.com"];

/// A database, a master key, the fake identity server and a copy of the
/// probe whose manifest names the fake's port.
struct World {
    dir: tempfile::TempDir,
    db: PathBuf,
    idp: FakeIdentity,
    plugin: PathBuf,
}

impl World {
    /// With the probe as it is: both grants.
    async fn new(settings: IdentitySettings) -> Self {
        Self::with_grants(settings, true).await
    }

    /// The probe without the client-credentials grant (a standard app, not
    /// a custom connection): only a browser can authorise it.
    async fn code_only(settings: IdentitySettings) -> Self {
        Self::with_grants(settings, false).await
    }

    async fn with_grants(settings: IdentitySettings, client_credentials: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        let ca = TestCa::for_names(&NAMES);
        let idp = FakeIdentity::start_tls(settings, &ca).await.unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca.ca_pem).unwrap();
        std::fs::write(
            dir.path().join("permitted.toml"),
            "[domains]\n\"xero.com\" = \"Xero\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("secrets.toml"),
            "client_secret = \"fake-client-secret-0123\"\n",
        )
        .unwrap();
        // The probe at the fake's port: its manifest's URLs and egress.
        let port = idp.addr.port();
        let source = airlock_tests::plugin_dir("oauth-probe");
        let plugin = dir.path().join("oauth-probe");
        std::fs::create_dir(&plugin).unwrap();
        std::fs::copy(source.join("plugin.wasm"), plugin.join("plugin.wasm")).unwrap();
        let mut manifest = std::fs::read_to_string(source.join("plugin.toml")).unwrap();
        for name in NAMES {
            manifest = manifest.replace(
                &format!("https://{name}/"),
                &format!("https://{name}:{port}/"),
            );
        }
        if !client_credentials {
            let both = "grants = [\"authorization_code\", \"client_credentials\"]";
            assert!(manifest.contains(both), "the probe's grants");
            manifest = manifest.replace(both, "grants = [\"authorization_code\"]");
        }
        manifest = manifest.replace(
            "service = \"Xero\" }",
            &format!("service = \"Xero\", port = {port} }}"),
        );
        std::fs::write(plugin.join("plugin.toml"), manifest).unwrap();
        let world = Self {
            dir,
            db,
            idp,
            plugin,
        };
        let key = world.dir.path().join("master.key").display().to_string();
        world.ok(&["keygen", &key]);
        world
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The network options every command that reaches the fake needs.
    fn net(&self) -> Vec<String> {
        let mut args = Vec::new();
        for name in NAMES {
            args.push("--resolve".to_string());
            args.push(format!("{name}=127.0.0.1"));
        }
        args.extend([
            "--allow-network".into(),
            "127.0.0.0/8".into(),
            "--trust-root".into(),
            self.path("ca.pem"),
        ]);
        args
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = command(args, &self.db);
        cmd.env("AIRLOCK_MASTER_KEY_FILE", self.path("master.key"))
            .env("AIRLOCK_PERMITTED_DOMAINS", self.path("permitted.toml"))
            .stdin(std::process::Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("airlock runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "airlock {args:?}:\n{}",
            text(&out)
        );
        text(&out)
    }

    /// `args` plus the network options.
    fn with_net(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.net());
        all
    }

    /// Tenant `acme` with the probe installed live as `acme/probe`.
    fn install(&self) {
        self.ok(&["tenant", "add", "acme"]);
        let plugin = self.plugin.display().to_string();
        let api = format!("api=https://api.xero.com:{}", self.idp.addr.port());
        let secrets = self.path("secrets.toml");
        let args = self.with_net(&[
            "install",
            &plugin,
            "--tenant",
            "acme",
            "--name",
            "probe",
            "--mode",
            "live",
            "--config",
            "client_id=fake-client-id",
            "--config",
            &api,
            "--config-file",
            &secrets,
            "--skip-check",
            "--yes",
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&args);
    }

    /// `airlock serve --listen 127.0.0.1:0` and the address it listens on.
    fn serve(&self) -> (Server, String) {
        let mut serve = crate::serve_cli::QUICK_SERVE.to_vec();
        serve.extend(["--listen", "127.0.0.1:0"]);
        let args = self.with_net(&serve);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Server::start(self.cmd(&args));
        server.wait_for(&["listening on http://"]);
        let line = server
            .output()
            .lines()
            .find(|l| l.contains("listening on http://"))
            .unwrap()
            .to_string();
        let addr = line.rsplit("http://").next().unwrap().trim().to_string();
        (server, addr)
    }

    /// `reauthorise --oauth` with the callback on `addr`: the URL printed.
    fn start_authorization(&self, addr: &str) -> String {
        let redirect = format!("http://{addr}/oauth/callback");
        let args = self.with_net(&[
            "reauthorise",
            "acme/probe",
            "--oauth",
            "--redirect-uri",
            &redirect,
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.ok(&args);
        out.lines()
            .find(|l| l.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in:\n{out}"))
            .to_string()
    }

    /// The operator's browser: trusts the test authority, finds the fake
    /// at Xero's names, follows no redirect on its own.
    fn browser(&self) -> reqwest::Client {
        let ca = std::fs::read(self.path("ca.pem")).unwrap();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&ca).unwrap());
        for name in NAMES {
            builder = builder.resolve(name, self.idp.addr);
        }
        builder.build().unwrap()
    }

    /// Opens the authorize URL: where the fake sends the browser back.
    async fn consent(&self, url: &str) -> String {
        let answer = self.browser().get(url).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 302, "{url}");
        answer.headers()["location"].to_str().unwrap().to_string()
    }

    /// The whole code flow through `serve` at `addr`.
    async fn authorise(&self, addr: &str) {
        let url = self.start_authorization(addr);
        let back = self.consent(&url).await;
        let (status, page) = get(&back).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("acme/probe is authorised"), "{page}");
    }

    /// Queues `feed` of `acme/probe` on the running server.
    fn run_now(&self, feed: &str) {
        self.ok(&["run-now", "acme/probe", feed]);
    }

    /// The runs of `feed`, newest first: (status, message).
    fn runs(&self, feed: &str) -> Vec<(String, String)> {
        let out = self.ok(&[
            "runs",
            "list",
            "--json",
            "--installation",
            "acme/probe",
            "--feed",
            feed,
        ]);
        let runs: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        runs.iter()
            .map(|r| {
                (
                    r["status"].as_str().unwrap_or_default().to_string(),
                    r["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Every byte of the database (and its write-ahead log).
    fn database_bytes(&self) -> Vec<u8> {
        let mut all = std::fs::read(&self.db).unwrap();
        let wal = PathBuf::from(format!("{}-wal", self.db.display()));
        if wal.exists() {
            all.extend(std::fs::read(wal).unwrap());
        }
        all
    }
}

/// A plain GET (serve's listener is http): status and body.
async fn get(url: &str) -> (u16, String) {
    let answer = reqwest::Client::new().get(url).send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap())
}

/// Waits until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// `text` holds none of `secrets`.
fn holds_none(what: &str, text: &[u8], secrets: &[String]) {
    let text = String::from_utf8_lossy(text);
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "{what} holds `{secret}`");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_code_flow_with_pkce_and_state_authorises_through_serves_callback() {
    let w = World::code_only(IdentitySettings::default()).await;
    w.install();
    let (server, addr) = w.serve();

    // Not authorised yet: the probe's token() says so, the run ends error.
    w.run_now("whoami");
    server.wait_for(&["ERROR", "acme/probe whoami"]);
    let message = &w.runs("whoami")[0].1;
    assert!(
        message.contains("token: reauthorisation-needed"),
        "{message}"
    );
    assert!(
        message.contains("acme/probe has no OAuth authorisation"),
        "{message}"
    );

    let url = w.start_authorization(&addr);
    for part in [
        "https://login.xero.com:",
        "/identity/connect/authorize?response_type=code&client_id=fake-client-id",
        "&scope=offline_access+accounting.transactions&state=",
        "&code_challenge=",
        "&code_challenge_method=S256",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
    let back = w.consent(&url).await;
    assert!(
        back.starts_with(&format!("http://{addr}/oauth/callback?code=")),
        "{back}"
    );

    // A state nobody started is refused, and nothing is exchanged.
    let code = back
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let forged = format!("http://{addr}/oauth/callback?code={code}&state=forged");
    let (status, page) = get(&forged).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("unknown, used already or expired"), "{page}");
    assert_eq!(w.idp.stats().code_exchanges, 0);

    let (status, page) = get(&back).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("acme/probe is authorised. You can close this page."),
        "{page}"
    );
    assert_eq!(
        w.idp.stats().code_exchanges,
        1,
        "the verifier matched the challenge"
    );
    assert!(!page.contains(code), "the page does not echo the code");

    // The same state again (a replayed callback) is refused.
    let (status, _) = get(&back).await;
    assert_eq!(status, 400);
    assert_eq!(w.idp.stats().code_exchanges, 1);

    w.run_now("whoami");
    server.wait_for(&["OK", "acme/probe whoami"]);
    assert_eq!(
        w.runs("whoami")[0],
        ("ok".to_string(), "whoami: 200".to_string())
    );
    // The client secret is the host's: the guest's get-secret gets none.
    w.run_now("peek-secrets");
    server.wait_for(&["OK", "acme/probe peek-secrets"]);
    assert_eq!(w.runs("peek-secrets")[0].1, "client_secret: hidden");

    // The operator refuses consent: the callback says so, nothing stored.
    w.idp.set(|s| s.deny = true);
    let url = w.start_authorization(&addr);
    let back = w.consent(&url).await;
    assert!(back.contains("error=access_denied"), "{back}");
    let (status, page) = get(&back).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("access_denied") && page.contains("nothing was stored"),
        "{page}"
    );
    assert_eq!(w.idp.stats().code_exchanges, 1);

    let (code, out) = server.stop();
    assert_eq!(code, Some(0), "{out}");
    // No token, code or client secret anywhere the host writes: the
    // database (sealed), the server's output, the egress audit (in the
    // database too: it keeps no bodies, headers or queries).
    let mut secrets = w.idp.issued_tokens();
    assert!(secrets.len() >= 3, "{secrets:?}");
    secrets.push("fake-client-secret-0123".into());
    holds_none("the database", &w.database_bytes(), &secrets);
    holds_none("serve's output", out.as_bytes(), &secrets);
    // Token requests are audited like any request: the code exchange
    // (feed `oauth`) and the run's refreshes.
    let audit = w.ok(&["egress", "log", "--tenant", "acme"]);
    assert!(
        audit.contains("identity.xero.com") && audit.contains("/connect/token"),
        "{audit}"
    );
    holds_none("the audit", audit.as_bytes(), &secrets);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_refresh_token_is_stored_before_it_is_used_and_survives_sigkill() {
    // Access tokens live 30 s, under the host's one-minute margin: every
    // token() refreshes. A replaced refresh token is refused at once.
    let w = World::code_only(IdentitySettings {
        access_ttl_secs: 30,
        grace_secs: 0,
        ..IdentitySettings::default()
    })
    .await;
    w.install();
    let (server, addr) = w.serve();
    w.authorise(&addr).await;

    // The guest gets a token (a refresh: the fake rotates the refresh
    // token), then parks without using it; the host is killed there.
    w.run_now("token-then-hold");
    wait_until("the guest parked", || w.idp.stats().held == 1);
    assert_eq!(w.idp.stats().refreshes, 1);
    drop(server); // SIGKILL

    // The interrupted run is retried: its token() refreshes with the
    // rotated refresh token, which must have been stored before the guest
    // got the access token (the old one is refused now).
    let (server, _) = w.serve();
    server.wait_for(&["INTERRUPTED", "acme/probe token-then-hold"]);
    wait_until("the retry's refresh", || {
        let stats = w.idp.stats();
        stats.refreshes == 2 || stats.refused > 0
    });
    assert_eq!(
        w.idp.stats().refused,
        0,
        "the retry refreshed with the new token"
    );
    w.idp.release_holds();
    server.wait_for(&["OK", "acme/probe token-then-hold #2"]);
    w.run_now("whoami");
    server.wait_for(&["OK", "acme/probe whoami"]);
    assert_eq!(w.runs("whoami")[0].1, "whoami: 200");
    let stats = w.idp.stats();
    assert_eq!((stats.refreshes, stats.refused), (3, 0), "{stats:?}");
    let (code, out) = server.stop();
    assert_eq!(code, Some(0), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_that_persists_after_a_refresh_ends_the_run_error_with_a_notification() {
    let w = World::code_only(IdentitySettings::default()).await;
    w.install();
    let (server, addr) = w.serve();
    w.authorise(&addr).await;

    // The API refuses every token: the probe refreshes once and tries
    // again, is refused again, and says the run went fine. The host ends it
    // error anyway, and raises a notification.
    w.idp.set(|s| s.refuse_api = true);
    w.run_now("whoami");
    server.wait_for(&["ERROR", "acme/probe whoami", "notification raised"]);
    let (status, message) = w.runs("whoami")[0].clone();
    assert_eq!(status, "error");
    assert!(message.starts_with("reauthorisation needed"), "{message}");
    assert!(
        message.contains("airlock reauthorise acme/probe --oauth"),
        "{message}"
    );
    assert!(message.contains("whoami after refresh: 401"), "{message}");
    let stats = w.idp.stats();
    assert_eq!((stats.refreshes, stats.api_refused), (1, 2), "{stats:?}");
    let open = w.ok(&["notifications", "list"]);
    assert!(
        open.contains("acme/probe whoami") && open.contains("reauthorisation needed"),
        "{open}"
    );

    // The grant revoked: the refresh itself is refused (invalid_grant);
    // the guest gets reauthorisation-needed, the run ends error.
    w.idp.set(|s| s.refuse_api = false);
    w.idp.revoke_all();
    w.run_now("whoami");
    wait_until("a second error", || {
        w.runs("whoami").iter().filter(|r| r.0 == "error").count() == 2
    });
    let message = &w.runs("whoami")[0].1;
    assert!(message.contains("invalid_grant"), "{message}");
    assert!(
        message.contains("refresh: reauthorisation-needed"),
        "{message}"
    );
    let (code, out) = server.stop();
    assert_eq!(code, Some(0), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_get_a_token_without_a_browser() {
    let w = World::new(IdentitySettings::default()).await;
    w.install();
    let args = w.with_net(&["reauthorise", "acme/probe", "--oauth"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = w.ok(&args);
    assert!(
        out.contains("authorised acme/probe by client credentials"),
        "{out}"
    );
    assert_eq!(w.idp.stats().client_credentials, 1);
    holds_none("its output", out.as_bytes(), &w.idp.issued_tokens());

    // `airlock run` of the stored installation uses it (with the key).
    let plugin = w.plugin.display().to_string();
    let api = format!("api=https://api.xero.com:{}", w.idp.addr.port());
    let secrets = w.path("secrets.toml");
    let args = w.with_net(&[
        "run",
        &plugin,
        "--feed",
        "whoami",
        "--tenant",
        "acme",
        "--installation",
        "probe",
        "--mode",
        "live",
        "--config",
        "client_id=fake-client-id",
        "--config",
        &api,
        "--config-file",
        &secrets,
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = w.run(&args);
    expect(&run, 0, "whoami: 200");
    assert_eq!(
        w.idp.stats().client_credentials,
        1,
        "the stored token was used"
    );
    // A plugin without the authorization-code grant gets no URL, and one
    // that is not installed is refused.
    expect(
        &w.run(&[
            "reauthorise",
            "acme/nope",
            "--oauth",
            "--redirect-uri",
            "https://h/oauth/callback",
        ]),
        1,
        "acme/nope",
    );
    // The reviewer sees the section.
    let shown = w.ok(&["inspect", &plugin]);
    for line in [
        "oauth (tokens held by the host; the guest gets access tokens only):",
        "grants        authorization_code, client_credentials",
        "client auth   basic, PKCE S256",
        "secret in `client_secret` (host-only",
    ] {
        assert!(shown.contains(line), "{line} in:\n{shown}");
    }
}

/// A hostile guest asking for a fresh token again and again: the host
/// renews it at most `MAX_RENEWALS_PER_RUN` times in a run, then refuses
/// with `unavailable`, so the authorisation server sees a bounded number of
/// token requests.
#[tokio::test(flavor = "multi_thread")]
async fn a_guest_refreshing_in_a_loop_gets_a_bounded_number_of_renewals() {
    let w = World::new(IdentitySettings::default()).await;
    w.install();
    let args = w.with_net(&["reauthorise", "acme/probe", "--oauth"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    w.ok(&args);
    let before = w.idp.stats().client_credentials;
    let plugin = w.plugin.display().to_string();
    let api = format!("api=https://api.xero.com:{}", w.idp.addr.port());
    let secrets = w.path("secrets.toml");
    let args = w.with_net(&[
        "run",
        &plugin,
        "--feed",
        "refresh-loop",
        "--tenant",
        "acme",
        "--installation",
        "probe",
        "--config",
        "client_id=fake-client-id",
        "--config",
        &api,
        "--config-file",
        &secrets,
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = w.run(&args);
    expect(
        &run,
        0,
        "renewals granted: 3; then unavailable: this run has renewed its access token 3 times",
    );
    assert_eq!(
        w.idp.stats().client_credentials - before,
        3,
        "three token requests, not twenty"
    );
}
