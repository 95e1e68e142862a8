//! `airlock serve`'s observability as an operator sees it: the metrics at
//! `--metrics-listen`, scraped before and after real runs (ok, error, a
//! denied request, a run held while another waits in the queue, records
//! exported, a refused webhook delivery), each counter checked against
//! what the ledger and the egress audit recorded; and `--log-format json`,
//! one JSON object per line with a run's fields.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cli::expect;
use crate::serve_cli::{Server, Site};

/// One scrape, parsed from the OpenMetrics text: each sample by its name
/// and labels (sorted), its value.
#[derive(Debug, Default)]
struct Scrape(BTreeMap<(String, Vec<(String, String)>), f64>);

impl Scrape {
    /// Parses `text`, refusing anything that is not the exposition format
    /// (so a scrape that changed shape fails the test, not a lookup).
    fn parse(text: &str) -> Self {
        assert!(text.ends_with("# EOF\n"), "no EOF marker:\n{text}");
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') {
                assert!(
                    ["# HELP ", "# TYPE ", "# UNIT ", "# EOF"]
                        .iter()
                        .any(|p| line.starts_with(p)),
                    "bad comment line: {line}"
                );
                continue;
            }
            let (name, labels, rest) = sample_head(line);
            let value = rest
                .split_whitespace()
                .next()
                .unwrap_or_else(|| panic!("no value: {line}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}"));
            let old = samples.insert((name, labels), value);
            assert!(old.is_none(), "sample given twice: {line}");
        }
        Self(samples)
    }

    /// The sample's value, 0 when absent (a counter not moved yet).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.0
            .get(&(name.to_string(), labels))
            .copied()
            .unwrap_or(0.0)
    }

    /// Whether a sample of `name` with exactly these labels was given.
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.0.contains_key(&(name.to_string(), labels))
    }

    /// Every label value of `label` on samples of `name`.
    fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        self.0
            .keys()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, ls)| ls.iter().filter(|(k, _)| k == label))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A sample line's name, its labels (unescaped, sorted) and what follows.
fn sample_head(line: &str) -> (String, Vec<(String, String)>, &str) {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value: {line}"));
    let name = &line[..name_end];
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name: {line}"
    );
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let end = loop {
            let (i, c) = chars.next().unwrap_or_else(|| panic!("unclosed: {line}"));
            match c {
                '}' => break i,
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next().map(|(_, c)| c) {
                            Some('"') => break,
                            Some('\\') => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some(c @ ('\\' | '"')) => value.push(c),
                                other => panic!("bad escape {other:?}: {line}"),
                            },
                            Some(c) => value.push(c),
                            None => panic!("unclosed value: {line}"),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                c => key.push(c),
            }
        };
        rest = &inner[end + 1..];
    }
    labels.sort();
    (name.to_string(), labels, rest)
}

#[test]
fn the_scrape_parser_reads_labels_escapes_and_values() {
    let text = "# HELP a_total A.\n# TYPE a_total counter\n\
                a_total{x=\"1\",y=\"q\\\"uote\\\\\"} 3\nb 0.25\nc{z=\"\"} 1e3\n# EOF\n";
    let s = Scrape::parse(text);
    assert_eq!(s.get("a_total", &[("y", "q\"uote\\"), ("x", "1")]), 3.0);
    assert_eq!(s.get("b", &[]), 0.25);
    assert_eq!(s.get("c", &[("z", "")]), 1000.0);
    assert!(!s.has("a_total", &[("x", "1")]));
}

/// A loopback server answering every request 200 with an empty body; the
/// first one only once `release` is sent (after `held` says it arrived).
fn gate() -> (u16, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (held_tx, held) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut first = true;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            read_head(&mut stream);
            if first {
                first = false;
                let _ = held_tx.send(());
                let _ = release_rx.recv();
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, held, release)
}

/// Reads a request's head (its body, if any, is not needed).
fn read_head(stream: &mut std::net::TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
}

/// The address after `prefix` on the server's first line that has it.
fn address_after(server: &Server, prefix: &str) -> String {
    server.wait_for(&[prefix]);
    server
        .output()
        .lines()
        .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest.to_string()))
        .unwrap()
}

/// Waits until `count` lines of the server's output contain every needle.
fn wait_for_lines(server: &Server, needles: &[&str], count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = server.output();
        let found = output
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count();
        if found >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not {count} lines with {needles:?} in:\n{output}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP client for the test's thread.
struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Client {
    fn new() -> Self {
        Self {
            rt: tokio::runtime::Runtime::new().unwrap(),
            http: reqwest::Client::new(),
        }
    }

    /// `method url`: the status, the content type and the body.
    fn send(&self, method: reqwest::Method, url: &str) -> (u16, String, String) {
        self.rt.block_on(async {
            let response = self.http.request(method, url).send().await.unwrap();
            let status = response.status().as_u16();
            let kind = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, kind, response.text().await.unwrap())
        })
    }

    fn scrape(&self, url: &str) -> Scrape {
        let (status, kind, text) = self.send(reqwest::Method::GET, url);
        assert_eq!(status, 200, "{text}");
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        Scrape::parse(&text)
    }
}

/// The runs recorded, as `runs list --json` gives them.
fn runs(site: &Site) -> Vec<serde_json::Value> {
    serde_json::from_str(&site.ok(&["runs", "list", "--json", "--limit", "1000"])).unwrap()
}

/// Egress decisions audited, by verdict.
fn audited(site: &Site) -> BTreeMap<String, f64> {
    let conn = rusqlite::Connection::open(&site.db).unwrap();
    let mut stmt = conn
        .prepare("SELECT decision, COUNT(*) FROM egress_audit GROUP BY decision")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as f64))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

pub(crate) const NET: [&str; 4] = [
    "--resolve",
    "shop.test=127.0.0.1",
    "--allow-network",
    "127.0.0.0/8",
];

pub(crate) fn install(site: &Site, plugin: &str, name: &str, config: &[String]) {
    let path = format!("plugins/{plugin}");
    let mut args = vec![
        "install",
        &path,
        "--tenant",
        "acme",
        "--name",
        name,
        "--mode",
        "live",
        "--skip-check",
        "--yes",
    ];
    for c in config {
        args.extend(["--config", c.as_str()]);
    }
    args.extend(NET);
    site.ok(&args);
}

/// `count` orders, valid against the schema, one JSON body a line.
fn orders_file(site: &Site, count: usize) -> std::path::PathBuf {
    let example: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(airlock_tests::repo_root().join("schemas/examples/orders.json"))
            .unwrap(),
    )
    .unwrap();
    let lines: Vec<String> = (1..=count)
        .map(|n| {
            let mut order = example.clone();
            order["id"] = format!("M{n}").into();
            order.to_string()
        })
        .collect();
    let path = site.db.with_file_name("orders.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn metrics_move_as_runs_happen() {
    let site = Site::new();
    site.ok(&["tenant", "add", "acme"]);
    let (gate_port, held, release) = gate();
    let (ok_port, _, open) = gate();
    open.send(()).unwrap(); // this one answers at once, always
    install(&site, "misbehaving", "m", &[]);
    install(
        &site,
        "egress-probe",
        "probe",
        &[
            format!("allowed_url=http://shop.test:{ok_port}/ok"),
            "denied_url=http://denied.test/x".to_string(),
        ],
    );
    install(
        &site,
        "artifacts-probe",
        "gate",
        &[format!("wait_url=http://shop.test:{gate_port}/hold")],
    );
    install(&site, "records-probe", "rp", &[]);
    let orders = orders_file(&site, 3);
    site.ok(&[
        "records",
        "import",
        "acme",
        "orders",
        orders.to_str().unwrap(),
    ]);

    let mut args = vec!["--metrics-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"];
    args.extend(NET);
    let server = site.serve(&args);
    let metrics = address_after(&server, "metrics at ");
    let base = address_after(&server, "listening on ");
    let client = Client::new();

    // The public listener does not serve them.
    let (status, _, _) = client.send(reqwest::Method::GET, &format!("{base}/metrics"));
    assert_eq!(status, 404);

    let before = client.scrape(&metrics);
    let runs_before = runs(&site).len();
    let audit_before = audited(&site);
    assert_eq!(before.get("airlock_queue_depth", &[]), 0.0);
    assert_eq!(before.get("airlock_runs_in_progress", &[]), 0.0);
    assert_eq!(before.get("airlock_open_notifications", &[]), 0.0);
    let pending = [("plugin", "records-probe"), ("collection", "orders")];
    assert_eq!(before.get("airlock_records_pending", &pending), 3.0);
    // No label names a tenant or an installation.
    for name in ["airlock_runs_total", "airlock_records_pending"] {
        for label in ["tenant", "installation"] {
            assert!(before.label_values(name, label).is_empty());
        }
    }

    // An ok run, an error run, a run with one allowed and one denied
    // request, a run that exports the pending orders.
    for (feed, outcome) in [
        ("acme/m count", "OK"),
        ("acme/m write-then-error", "ERROR"),
        ("acme/probe probe", "OK"),
        ("acme/rp export-orders", "OK"),
    ] {
        let (installation, feed_name) = feed.split_once(' ').unwrap();
        site.ok(&["run-now", installation, feed_name]);
        server.wait_for(&[outcome, feed]);
    }
    // A run held on the gate, and another of its feed queued behind it.
    site.ok(&["run-now", "acme/gate", "publish"]);
    held.recv().unwrap();
    site.ok(&["run-now", "acme/gate", "publish"]);
    let during = client.scrape(&metrics);
    assert_eq!(during.get("airlock_queue_depth", &[]), 1.0);
    assert_eq!(during.get("airlock_runs_in_progress", &[]), 1.0);
    release.send(()).unwrap();
    wait_for_lines(&server, &["OK", "acme/gate publish"], 2);
    // The public listener's refusals of webhook deliveries are counted.
    let hook = format!("{base}/hooks/acme/m/inbox/AAAAAAAAAAAAAAAA");
    let (status, _, _) = client.send(reqwest::Method::POST, &hook);
    assert_eq!(status, 404);

    let after = client.scrape(&metrics);
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);

    // Runs: by exactly what the ledger recorded meanwhile, per plugin and
    // outcome (a schedule's run included, should one have fired).
    let all_runs = runs(&site);
    let recorded = &all_runs[..all_runs.len() - runs_before];
    let mut expected: BTreeMap<(String, String), f64> = BTreeMap::new();
    for run in recorded {
        let plugin = run["plugin_id"].as_str().unwrap().to_string();
        let status = run["status"].as_str().unwrap().to_string();
        *expected.entry((plugin, status)).or_default() += 1.0;
    }
    for ((plugin, outcome), n) in &expected {
        let labels = [("plugin", plugin.as_str()), ("outcome", outcome.as_str())];
        assert_eq!(delta("airlock_runs_total", &labels), *n, "{labels:?}");
        let by_plugin = [("plugin", plugin.as_str())];
        assert!(after.get("airlock_run_duration_seconds_count", &by_plugin) > 0.0);
    }
    let total_runs: f64 = expected.values().sum();
    assert!(total_runs >= 6.0, "{expected:?}");
    assert!(expected[&("misbehaving".into(), "ok".into())] >= 1.0);
    assert!(expected[&("misbehaving".into(), "error".into())] >= 1.0);
    assert_eq!(expected[&("artifacts-probe".into(), "ok".into())], 2.0);
    let mut plugins = after.label_values("airlock_runs_total", "plugin");
    plugins.sort();
    plugins.dedup();
    let mut ran: Vec<String> = expected.keys().map(|(p, _)| p.clone()).collect();
    ran.dedup();
    assert_eq!(plugins, ran, "no run counted that the ledger does not have");
    let durations: f64 = [
        "misbehaving",
        "egress-probe",
        "artifacts-probe",
        "records-probe",
    ]
    .iter()
    .map(|p| delta("airlock_run_duration_seconds_count", &[("plugin", p)]))
    .sum();
    assert_eq!(
        durations, total_runs,
        "one duration per run whose guest ran"
    );
    assert_eq!(
        delta("airlock_due_to_start_lag_seconds_count", &[]),
        total_runs,
        "every run here was started from the queue"
    );

    // Egress decisions: by exactly what the audit recorded meanwhile.
    let audit_after = audited(&site);
    for (verdict, n) in &audit_after {
        let was = audit_before.get(verdict).copied().unwrap_or(0.0);
        let labels = [("verdict", verdict.as_str())];
        assert_eq!(
            delta("airlock_egress_decisions_total", &labels),
            n - was,
            "{verdict}"
        );
    }
    assert!(delta("airlock_egress_decisions_total", &[("verdict", "denied")]) >= 1.0);
    assert!(delta("airlock_egress_decisions_total", &[("verdict", "allowed")]) >= 3.0);

    // Gauges read from the store.
    assert_eq!(after.get("airlock_queue_depth", &[]), 0.0);
    assert_eq!(after.get("airlock_runs_in_progress", &[]), 0.0);
    let open = site.ok(&["notifications", "list", "--json"]);
    let open: Vec<serde_json::Value> = serde_json::from_str(&open).unwrap();
    assert!(!open.is_empty());
    assert_eq!(
        after.get("airlock_open_notifications", &[]),
        open.len() as f64
    );
    assert_eq!(after.get("airlock_records_pending", &pending), 0.0);
    assert!(after.has("airlock_records_pending", &pending));

    assert_eq!(
        delta("airlock_webhook_deliveries_total", &[("status", "404")]),
        1.0
    );
    let (code, _) = server.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn json_logs_carry_a_runs_fields_one_object_per_line() {
    let site = Site::new();
    site.ok(&["tenant", "add", "acme"]);
    install(&site, "misbehaving", "m", &[]);
    let server = site.serve(&["--log-format", "json"]);
    site.ok(&["run-now", "acme/m", "count"]);
    server.wait_for(&["\"event\":\"finished\"", "\"feed\":\"count\""]);
    let (code, output) = server.stop();
    assert_eq!(code, Some(0), "{output}");

    let lines: Vec<serde_json::Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let event = |kind: &str| {
        lines
            .iter()
            .find(|l| l["event"] == kind && l["feed"] == "count")
            .unwrap_or_else(|| panic!("no {kind} event in {output}"))
    };
    let start = event("start");
    let finished = event("finished");
    for line in [start, finished] {
        assert_eq!(line["tenant"], "acme", "{line}");
        assert_eq!(line["installation"], "m", "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["message"].is_string(), "{line}");
    }
    assert_eq!(start["trigger"], "manual");
    assert_eq!(start["attempt"], 1);
    assert_eq!(finished["outcome"], "ok");
    assert_eq!(finished["summary"], "run 1");
    assert_eq!(finished["notified"], false);
    let run_id = finished["run_id"].as_i64().expect("a run id");
    let recorded = runs(&site);
    assert_eq!(recorded[0]["id"].as_i64(), Some(run_id));
    // The lines without an event: how it started and stopped.
    assert!(lines.iter().any(|l| l["message"] == "stopped"), "{output}");
}

#[test]
fn a_bad_log_option_is_refused_with_a_clear_error() {
    let site = Site::new();
    expect(
        &site.run(&["serve", "--log", "airlock=loud"]),
        2,
        "not a log filter",
    );
    expect(
        &site.run(&["serve", "--log-format", "xml"]),
        2,
        "`xml` is not human or json",
    );
}
