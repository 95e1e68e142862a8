//! Inbound webhooks through a real `airlock serve --listen`: the
//! `webhook-probe` connector (world `webhook-connector`) installed for a
//! tenant, its deliveries sent over HTTP as a third party would, and what
//! each answer left behind read back with the CLI (`runs`, `records`,
//! `notifications`) and from the fake the connector forwards to.

use std::collections::HashMap;

use airlock_tests::fake_api::FakeApi;
use hmac::{KeyInit as _, Mac as _};

use crate::serve_cli::Site;

/// A delivery's answer: status, headers, body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
}

/// Sends deliveries to one `serve --listen`.
struct Sender {
    base: String,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Sender {
    fn send(&self, method: &str, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        self.rt.block_on(async {
            let resp = req.send().await.unwrap();
            Answer {
                status: resp.status().as_u16(),
                headers: resp.headers().clone(),
            }
        })
    }

    /// POSTs `chunks` chunks of `size` bytes with no Content-Length, over
    /// a raw connection; the answer's status.
    fn chunked(&self, path: &str, chunks: usize, size: usize) -> u16 {
        use std::io::{Read as _, Write as _};
        let addr = self.base.trim_start_matches("http://");
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        for _ in 0..chunks {
            request.extend(format!("{size:x}\r\n").bytes());
            request.extend(std::iter::repeat_n(b'y', size));
            request.extend(b"\r\n");
        }
        request.extend(b"0\r\n\r\n");
        // The server may answer and close before it has read everything.
        let _ = conn.write_all(&request);
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn post(&self, path: &str, headers: &[(&str, String)], body: &str) -> u16 {
        self.send("POST", path, headers, body.as_bytes().to_vec())
            .status
    }
}

/// The runs of `acme/hooks`, newest first: (trigger, feed, status).
fn runs(site: &Site) -> Vec<(String, String, String)> {
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&site.ok(&["runs", "list", "--json"])).unwrap();
    listed
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("trigger"), s("feed"), s("status"))
        })
        .collect()
}

fn sign(key: &str, text: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(text);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn deliveries_run_as_runs_and_every_refused_one_runs_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let forward = rt.block_on(FakeApi::start()).unwrap();
    let site = Site::new();
    site.ok(&["tenant", "add", "acme"]);
    let secrets = site.db.with_file_name("secrets.toml");
    std::fs::write(&secrets, "signing_secret = \"k3y-for-hmac\"\n").unwrap();
    let forward_url = format!("forward_url=http://fwd.test:{}/echo", forward.addr.port());
    site.ok(&[
        "install",
        "plugins/webhook-probe",
        "--tenant",
        "acme",
        "--name",
        "hooks",
        "--mode",
        "live",
        "--config",
        &forward_url,
        "--config-file",
        secrets.to_str().unwrap(),
        "--skip-check",
        "--yes",
    ]);
    let listed = site.ok(&["webhooks", "list", "acme/hooks"]);
    assert!(
        listed.contains("inbox  POST,GET  max 4 KiB  unsigned  delivery id: X-Delivery-Id")
            && listed.contains("/hooks/acme/hooks/signed/{secret}")
            && listed.contains("no webhook secret yet"),
        "{listed}"
    );
    let made = site.ok(&[
        "webhooks",
        "secret",
        "acme/hooks",
        "--base-url",
        "https://hooks.example.com",
    ]);
    let secret = made
        .split("shown only now (it is stored hashed): ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    assert_eq!(secret.len(), 16, "{made}");
    assert!(
        made.contains(&format!(
            "inbox  https://hooks.example.com/hooks/acme/hooks/inbox/{secret}"
        )),
        "{made}"
    );

    let server = site.serve(&[
        "--listen",
        "127.0.0.1:0",
        "--resolve",
        "fwd.test=127.0.0.1",
        "--allow-network",
        "127.0.0.0/8",
    ]);
    server.wait_for(&["listening on http://"]);
    let base = server
        .output()
        .lines()
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
        .unwrap();
    let sender = Sender {
        base,
        rt: tokio::runtime::Runtime::new().unwrap(),
        client: reqwest::Client::new(),
    };
    let inbox = format!("/hooks/acme/hooks/inbox/{secret}");
    let id = |n: &str| vec![("x-delivery-id", n.to_string())];

    // Refusals: nothing runs for any of them.
    let wrong = "/hooks/acme/hooks/inbox/AAAAAAAAAAAAAAAA";
    for path in [
        wrong,
        &format!("/hooks/acme/other/inbox/{secret}"),
        &format!("/hooks/globex/hooks/inbox/{secret}"),
        &format!("/hooks/acme/hooks/nosuch/{secret}"),
        &format!("/hooks/acme/hooks/inbox/{secret}x"),
    ] {
        assert_eq!(sender.post(path, &[], "{}"), 404, "{path}");
    }
    assert_eq!(
        sender.send("PUT", &inbox, &[], b"{}".to_vec()).status,
        405,
        "inbox takes POST and GET only"
    );
    let oversized = vec![b'x'; 4 * 1024 + 1];
    assert_eq!(sender.send("POST", &inbox, &[], oversized).status, 413);
    // The same without a Content-Length (chunked): cut off at the cap.
    let streamed = sender.chunked(&inbox, 5, 1024);
    assert_eq!(streamed, 413);
    let signed = format!("/hooks/acme/hooks/signed/{secret}");
    let now = chrono::Utc::now().timestamp().to_string();
    let body = r#"{"email":"signed@example.com"}"#;
    let bad_sig = vec![
        ("x-timestamp", now.clone()),
        (
            "x-signature",
            sign("not-the-key", format!("{now}.{body}").as_bytes()),
        ),
    ];
    assert_eq!(sender.post(&signed, &bad_sig, body), 401);
    let stale = (chrono::Utc::now().timestamp() - 3600).to_string();
    let replayed_sig = vec![
        ("x-timestamp", stale.clone()),
        (
            "x-signature",
            sign("k3y-for-hmac", format!("{stale}.{body}").as_bytes()),
        ),
    ];
    assert_eq!(
        sender.post(&signed, &replayed_sig, body),
        401,
        "a stale signature is a replay"
    );
    assert!(
        runs(&site).is_empty(),
        "refused deliveries ran: {:?}",
        runs(&site)
    );
    assert!(forward.hits().is_empty());

    // A delivery runs: trigger webhook, feed = the webhook, effects kept.
    let first = r#"{"email":"ann@example.com"}"#;
    let status = sender.post(&format!("{inbox}?source=sm"), &id("d-1"), first);
    assert_eq!(
        status,
        200,
        "{}",
        site.run(&["runs", "show", "1"]).stdout.escape_ascii()
    );
    assert_eq!(
        runs(&site),
        [("webhook".into(), "inbox".into(), "ok".into())]
    );
    let record = site.ok(&["records", "show", "acme", "customers", "ann@example.com"]);
    assert!(
        record.contains("\"newsletter\": true") || record.contains("\"newsletter\":true"),
        "{record}"
    );
    assert_eq!(
        forward.hits(),
        ["/echo"],
        "the delivery was forwarded once: {}",
        site.ok(&["runs", "show", "1"])
    );
    // serve's output reports the delivery's run as it does a feed's.
    server.wait_for(&["start", "acme/hooks inbox (webhook, attempt 1)"]);
    server.wait_for(&["OK", "acme/hooks inbox #1: delivery 1 (inbox)"]);
    let shown = site.ok(&["runs", "show", "1"]);
    assert!(
        shown.contains("delivery 1 (inbox): sent: 200") && shown.contains("trigger  webhook")
            || shown.contains("delivery 1 (inbox): sent: 200"),
        "{shown}"
    );

    // A replay of a handled delivery id is answered and not run again.
    assert_eq!(sender.post(&inbox, &id("d-1"), first), 200);
    assert_eq!(runs(&site).len(), 1, "the replay ran");
    assert_eq!(forward.hits().len(), 1);

    // A signed delivery verifies and runs.
    let good_sig = vec![
        ("x-timestamp", now.clone()),
        (
            "x-signature",
            sign("k3y-for-hmac", format!("{now}.{body}").as_bytes()),
        ),
    ];
    assert_eq!(sender.post(&signed, &good_sig, body), 200);
    assert_eq!(
        runs(&site)[0],
        ("webhook".into(), "signed".into(), "ok".into())
    );

    // error → 500 and a notification; retry → 503 with its Retry-After.
    let fail = format!("/hooks/acme/hooks/fail/{secret}");
    assert_eq!(sender.post(&fail, &[], "{}"), 500);
    let failed = site.ok(&["runs", "show", &runs(&site).len().to_string()]);
    assert!(
        failed.contains("storage    0 committed, 1 discarded"),
        "a failed delivery's writes are not kept: {failed}"
    );
    let notes = site.ok(&["notifications", "list"]);
    assert!(
        notes.contains("fail") && notes.contains("asked to fail"),
        "{notes}"
    );
    let busy = sender.send("POST", &format!("{fail}?retry=1"), &[], b"{}".to_vec());
    assert_eq!(busy.status, 503);
    assert_eq!(busy.headers.get("retry-after").unwrap(), "120");

    // Test mode: the delivery runs, but the forward (a POST) is not sent
    // and the record it writes is not kept.
    site.ok(&["mode", "acme/hooks", "test"]);
    let forwarded = forward.hits().len();
    assert_eq!(forwarded, 2, "inbox and signed forwarded once each");
    let second = r#"{"email":"bob@example.com"}"#;
    assert_eq!(sender.post(&inbox, &id("d-2"), second), 200);
    assert_eq!(
        forward.hits().len(),
        forwarded,
        "test mode sent the forward"
    );
    assert!(
        site.ok(&["runs", "show", &runs(&site).len().to_string()])
            .contains("suppressed in test mode"),
        "the guest was told its POST was not sent"
    );
    let missing = site.run(&["records", "show", "acme", "customers", "bob@example.com"]);
    assert_ne!(missing.status.code(), Some(0), "test mode kept a record");
    let last: HashMap<String, String> = runs(&site)
        .into_iter()
        .take(1)
        .map(|(t, f, s)| (format!("{t}/{f}"), s))
        .collect();
    assert_eq!(last.get("webhook/inbox").map(String::as_str), Some("ok"));

    // Rotating the secret retires the old URL at once.
    site.ok(&["mode", "acme/hooks", "live"]);
    let rotated = site.ok(&["webhooks", "secret", "acme/hooks", "--rotate"]);
    assert!(rotated.contains("new webhook secret"), "{rotated}");
    let before = runs(&site).len();
    assert_eq!(sender.post(&inbox, &id("d-3"), "{}"), 404);
    assert_eq!(runs(&site).len(), before);

    // The rate: 30 a minute for this plugin, then 429 with Retry-After.
    let new_secret = rotated
        .split("shown only now (it is stored hashed): ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    let get = format!("/hooks/acme/hooks/inbox/{new_secret}");
    let mut limited = None;
    for n in 0..40 {
        let answer = sender.send("GET", &get, &[], Vec::new());
        if answer.status == 429 {
            limited = Some((n, answer));
            break;
        }
        assert_eq!(answer.status, 200, "delivery {n}");
    }
    let (n, answer) = limited.expect("40 deliveries at once were not rate limited");
    assert!(n <= 30, "{n} deliveries passed before 429");
    assert!(answer.headers.get("retry-after").is_some());

    // No secret in the server's output or the database.
    let (_, output) = server.stop();
    for s in [&secret, &new_secret, &"k3y-for-hmac".to_string()] {
        assert!(
            !output.contains(s.as_str()),
            "serve printed a secret: {output}"
        );
        let db = crate::serve_cli::file_bytes(&site.db);
        assert!(
            !db.windows(s.len()).any(|w| w == s.as_bytes()),
            "the database holds a secret"
        );
    }
}

#[test]
fn a_plugin_that_declares_webhooks_must_export_their_handler() {
    let site = Site::new();
    site.ok(&["tenant", "add", "acme"]);
    let hello = airlock_tests::plugin_dir("hello");
    let dir = site.db.with_file_name("hello-with-hooks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(hello.join("plugin.wasm"), dir.join("plugin.wasm")).unwrap();
    let manifest = std::fs::read_to_string(hello.join("plugin.toml")).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        format!("{manifest}\n[[webhooks]]\nname = \"inbox\"\n"),
    )
    .unwrap();
    let out = site.run(&[
        "install",
        dir.to_str().unwrap(),
        "--tenant",
        "acme",
        "--name",
        "h",
        "--skip-check",
        "--yes",
    ]);
    let text = crate::cli::text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("declares [[webhooks]] but does not export `webhook-handler`"),
        "{text}"
    );
    let listed = site.ok(&["installations"]);
    assert!(!listed.contains("acme/h"), "{listed}");
}

/// `plugins/webhook-probe` installed live as `{tenant}/{name}` (the tenant
/// added), forwarding to `forward_url`; its webhook secret.
fn install_probe(site: &Site, tenant: &str, name: &str, forward_url: &str) -> String {
    site.ok(&["tenant", "add", tenant]);
    let secrets = site
        .db
        .with_file_name(format!("secrets-{tenant}-{name}.toml"));
    std::fs::write(&secrets, "signing_secret = \"k3y-for-hmac\"\n").unwrap();
    site.ok(&[
        "install",
        "plugins/webhook-probe",
        "--tenant",
        tenant,
        "--name",
        name,
        "--mode",
        "live",
        "--config",
        &format!("forward_url={forward_url}"),
        "--config-file",
        secrets.to_str().unwrap(),
        "--skip-check",
        "--yes",
    ]);
    let made = site.ok(&["webhooks", "secret", &format!("{tenant}/{name}")]);
    made.split("shown only now (it is stored hashed): ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string()
}

/// `serve --listen` for `site`, forwarding `fwd.test` to this host; the
/// server and its base URL.
fn listen(site: &Site) -> (crate::serve_cli::Server, String) {
    let server = site.serve(&[
        "--listen",
        "127.0.0.1:0",
        "--resolve",
        "fwd.test=127.0.0.1",
        "--allow-network",
        "127.0.0.0/8",
    ]);
    server.wait_for(&["listening on http://"]);
    let base = server
        .output()
        .lines()
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
        .unwrap();
    (server, base)
}

#[test]
fn one_installations_queued_deliveries_do_not_take_every_slot_from_another_tenant() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let forward = rt.block_on(FakeApi::start()).unwrap();
    let port = forward.addr.port();
    let site = Site::new();
    // acme's deliveries each wait 800 ms on their forward; globex's do not.
    let slow = install_probe(
        &site,
        "acme",
        "slow",
        &format!("http://fwd.test:{port}/slow?ms=800"),
    );
    let quick = install_probe(
        &site,
        "globex",
        "hooks",
        &format!("http://fwd.test:{port}/echo"),
    );
    let (server, base) = listen(&site);
    let client = reqwest::Client::new();
    // More of acme's deliveries at once than the host has slots (16): one
    // runs, the rest wait for acme's lock.
    let acme: Vec<_> = (0..20)
        .map(|_| {
            let req = client
                .post(format!("{base}/hooks/acme/slow/inbox/{slow}"))
                .body("{}");
            rt.spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let globex = rt
        .block_on(
            client
                .post(format!("{base}/hooks/globex/hooks/inbox/{quick}"))
                .body("{}")
                .send(),
        )
        .unwrap()
        .status()
        .as_u16();
    let acme: Vec<u16> = acme
        .into_iter()
        .map(|h| rt.block_on(h).unwrap().unwrap())
        .collect();
    let (_, output) = server.stop();
    assert_eq!(
        globex, 200,
        "globex's delivery was refused while acme's waited for acme's lock \
         (acme's answers: {acme:?}): {output}"
    );
}

#[test]
fn a_delivery_whose_sender_hangs_up_still_runs_to_its_end_and_is_listed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let forward = rt.block_on(FakeApi::start()).unwrap();
    let port = forward.addr.port();
    let site = Site::new();
    let secret = install_probe(
        &site,
        "acme",
        "hooks",
        &format!("http://fwd.test:{port}/slow?ms=1500"),
    );
    let (server, base) = listen(&site);
    // The sender gives up while the guest waits for its forward.
    let _in_rt = rt.enter();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(400))
        .build()
        .unwrap();
    let sent = rt.block_on(
        client
            .post(format!("{base}/hooks/acme/hooks/inbox/{secret}"))
            .header("x-delivery-id", "d-hangup")
            .body("{}")
            .send(),
    );
    assert!(sent.is_err(), "the sender was answered: {sent:?}");
    std::thread::sleep(std::time::Duration::from_millis(3000));
    assert_eq!(forward.hits(), ["/slow"], "the guest's forward was sent");
    let listed = runs(&site);
    let (_, output) = server.stop();
    assert_eq!(
        listed,
        [("webhook".into(), "inbox".into(), "ok".into())],
        "a delivery whose request to a third party was sent is not in `airlock runs`: {output}"
    );
    let shown = site.ok(&["runs", "show", "1"]);
    assert!(
        shown.contains("/slow"),
        "its request is not in its record: {shown}"
    );
}

#[test]
fn an_installation_is_not_removed_under_a_delivery_that_would_commit_to_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let forward = rt.block_on(FakeApi::start()).unwrap();
    let port = forward.addr.port();
    let site = Site::new();
    let forward_url = format!("http://fwd.test:{port}/slow?ms=2000");
    let secret = install_probe(&site, "acme", "hooks", &forward_url);
    let (server, base) = listen(&site);
    let _in_rt = rt.enter();
    // The probe keeps the body in its storage (key `last`).
    let marker = "kept-after-removal-5b1f0c";
    let delivery = reqwest::Client::new()
        .post(format!("{base}/hooks/acme/hooks/inbox/{secret}"))
        .body(format!("{{\"note\":\"{marker}\"}}"));
    let delivery = rt.spawn(async move { delivery.send().await.map(|r| r.status().as_u16()) });
    // While the guest waits for its forward, the operator removes the
    // installation.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let removed = site.run(&["remove", "acme/hooks", "--yes"]);
    let answer = rt.block_on(delivery).unwrap().unwrap();
    let (_, output) = server.stop();
    let removed_text = crate::cli::text(&removed);
    if removed.status.code() == Some(0) {
        // Removed: its stored data is deleted, and nothing of the delivery
        // may be kept for it afterwards.
        let db = crate::serve_cli::file_bytes(&site.db);
        assert!(
            !db.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "a delivery answered {answer} committed its storage to an installation removed \
             while it ran: {output}"
        );
    } else {
        assert!(removed_text.contains("run in progress"), "{removed_text}");
        assert_eq!(answer, 200, "{output}");
    }
}

#[test]
fn a_body_sent_too_slowly_is_cut_off() {
    use std::io::{Read as _, Write as _};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let forward = rt.block_on(FakeApi::start()).unwrap();
    let site = Site::new();
    let forward_url = format!("http://fwd.test:{}/echo", forward.addr.port());
    let secret = install_probe(&site, "acme", "hooks", &forward_url);
    let (server, base) = listen(&site);
    let addr = base.trim_start_matches("http://");
    // The head, then 10 of the 100 bytes it announces, then nothing.
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    write!(
        slow,
        "POST /hooks/acme/hooks/inbox/{secret} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Length: 100\r\n\r\n{{\"a\":\"b\",}}"
    )
    .unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = slow.read_to_end(&mut answer);
    let (_, output) = server.stop();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok() && answer.starts_with("HTTP/1.1 408"),
        "a body that never arrives held its connection for {:?} ({read:?}, {answer:?}): {output}",
        started.elapsed()
    );
    assert!(runs(&site).is_empty());
}

#[test]
fn a_delivery_cut_short_by_a_killed_server_is_recorded_interrupted_and_not_run_again() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let forward = rt.block_on(FakeApi::start()).unwrap();
    let port = forward.addr.port();
    let site = Site::new();
    let secret = install_probe(
        &site,
        "acme",
        "hooks",
        &format!("http://fwd.test:{port}/slow?ms=1500"),
    );
    let (server, base) = listen(&site);
    let _in_rt = rt.enter();
    let delivery = reqwest::Client::new()
        .post(format!("{base}/hooks/acme/hooks/inbox/{secret}"))
        .body("{}");
    let delivery = rt.spawn(async move { delivery.send().await.map(|r| r.status().as_u16()) });
    std::thread::sleep(std::time::Duration::from_millis(700));
    drop(server); // SIGKILL while the guest waits for its forward
    let _ = rt.block_on(delivery);
    assert_eq!(forward.hits(), ["/slow"], "the guest's forward was sent");

    // The next server records it; the host does not run it again (its
    // sender delivers it again).
    let (server, _) = listen(&site);
    server.wait_for(&["INTERRUPTED", "acme/hooks inbox"]);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let listed = runs(&site);
    let (_, output) = server.stop();
    assert_eq!(
        listed,
        [("webhook".into(), "inbox".into(), "interrupted".into())],
        "{output}"
    );
}

#[test]
fn concurrent_copies_of_one_delivery_run_it_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let forward = rt.block_on(FakeApi::start()).unwrap();
    let port = forward.addr.port();
    let site = Site::new();
    let secret = install_probe(
        &site,
        "acme",
        "hooks",
        &format!("http://fwd.test:{port}/slow?ms=300"),
    );
    let (server, base) = listen(&site);
    let _in_rt = rt.enter();
    let client = reqwest::Client::new();
    // The same id, as a sender retrying at once would send it, with the
    // header's name and surrounding whitespace varied.
    let copies: Vec<_> = [
        ("X-Delivery-Id", "same-1"),
        ("x-delivery-id", " same-1"),
        ("X-DELIVERY-ID", "same-1 "),
        ("x-delivery-id", "same-1"),
        ("x-delivery-id", "same-1"),
        ("x-delivery-id", "\tsame-1"),
    ]
    .into_iter()
    .map(|(name, id)| {
        let req = client
            .post(format!("{base}/hooks/acme/hooks/inbox/{secret}"))
            .header(name, id)
            .body("{}");
        rt.spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
    })
    .collect();
    let answers: Vec<u16> = copies
        .into_iter()
        .map(|h| rt.block_on(h).unwrap().unwrap())
        .collect();
    let listed = runs(&site);
    let (_, output) = server.stop();
    assert_eq!(answers, [200; 6], "{output}");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(forward.hits(), ["/slow"]);
}

/// Every `plugin.wasm` under `dir`.
fn components_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(components_under(&path));
        } else if path.file_name().is_some_and(|n| n == "plugin.wasm") {
            found.push(path);
        }
    }
    found
}

#[test]
fn deliveries_past_the_rate_are_refused_before_the_plugin_is_read() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let forward = rt.block_on(FakeApi::start()).unwrap();
    let site = Site::new();
    let forward_url = format!("http://fwd.test:{}/echo", forward.addr.port());
    let secret = install_probe(&site, "acme", "hooks", &forward_url);
    let (server, base) = listen(&site);
    let sender = Sender {
        base,
        rt: tokio::runtime::Runtime::new().unwrap(),
        client: reqwest::Client::new(),
    };
    let inbox = format!("/hooks/acme/hooks/inbox/{secret}");
    // The installation's 30 a minute, used up.
    let mut passed = 0;
    while sender.send("GET", &inbox, &[], Vec::new()).status == 200 {
        passed += 1;
        assert!(passed <= 30, "the rate did not hold");
    }
    // Its pinned component changed on disk: a delivery that loads it is
    // refused 500. One past the rate must not get that far.
    let components = components_under(site.db.parent().unwrap());
    assert!(!components.is_empty());
    for c in &components {
        let mut bytes = std::fs::read(c).unwrap();
        bytes.push(0);
        std::fs::write(c, bytes).unwrap();
    }
    let past = sender.send("GET", &inbox, &[], Vec::new());
    let (_, output) = server.stop();
    assert_eq!(
        past.status, 429,
        "a delivery past the rate read and hashed the installed component: {output}"
    );
    assert!(past.headers.get("retry-after").is_some());
}

#[test]
fn removing_an_installation_deletes_its_webhook_secret() {
    let site = Site::new();
    site.ok(&["tenant", "add", "acme"]);
    site.ok(&[
        "install",
        "plugins/webhook-probe",
        "--tenant",
        "acme",
        "--name",
        "hooks",
        "--skip-check",
        "--yes",
    ]);
    site.ok(&["webhooks", "secret", "acme/hooks"]);
    let scope = airlock::storage::Scope {
        tenant: "acme".into(),
        installation: "hooks".into(),
    };
    let stored = || {
        let store = airlock::SqliteStore::open(&site.db).unwrap();
        airlock::SqliteStore::webhook_secret_hash(&store, &scope).unwrap()
    };
    assert!(stored().is_some());
    site.ok(&["remove", "acme/hooks", "--yes"]);
    assert_eq!(stored(), None, "the removed installation's secret is gone");
    let out = site.run(&["webhooks", "secret", "acme/hooks"]);
    assert_eq!(out.status.code(), Some(2), "{}", crate::cli::text(&out));
    assert!(
        crate::cli::text(&out).contains("no installation `acme/hooks`"),
        "{}",
        crate::cli::text(&out)
    );
}
