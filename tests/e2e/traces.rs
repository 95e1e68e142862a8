//! `airlock serve --otlp-endpoint`: the spans a real collector on loopback
//! receives (OTLP/HTTP protobuf, decoded with the protocol's own types),
//! and the `traceparent` a fake third party receives from a Rust guest
//! (`airlock:connector/http`) and a JavaScript one (`fetch`, wasi:http):
//! one trace per run, rooted at its `run` span, with a span per host call
//! and per HTTP hop, and the hop's span id in the header it sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;

use crate::observability::{NET, install};
use crate::serve_cli::{Server, Site};

/// A span as the collector received it, with its attributes as text.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    error: bool,
    attributes: HashMap<String, String>,
}

impl Span {
    fn attr(&self, key: &str) -> &str {
        self.attributes
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{} has no {key}: {self:?}", self.name))
    }
}

/// What the loopback servers saw: the spans exported, the raw export
/// bodies, and the `traceparent` (or none) of each request to the fake
/// third party, by path.
#[derive(Default)]
struct Seen {
    spans: Vec<Span>,
    bodies: Vec<Vec<u8>>,
    traceparents: Vec<(String, Option<String>)>,
    service_names: Vec<String>,
}

/// The collector (`/v1/traces`) and the third party (any other path), one
/// loopback server each, on a runtime of their own.
struct Loopback {
    _rt: tokio::runtime::Runtime,
    collector: u16,
    shop: u16,
    seen: Arc<Mutex<Seen>>,
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(n)) => n.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

impl Loopback {
    fn start() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let collector = {
            let seen = Arc::clone(&seen);
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                    let seen = Arc::clone(&seen);
                    async move {
                        assert_eq!(
                            headers["content-type"], "application/x-protobuf",
                            "OTLP/HTTP protobuf"
                        );
                        let request = ExportTraceServiceRequest::decode(body.clone())
                            .expect("an OTLP export request");
                        let mut seen = seen.lock().unwrap();
                        seen.bodies.push(body.to_vec());
                        for resource_spans in request.resource_spans {
                            if let Some(resource) = &resource_spans.resource {
                                for kv in &resource.attributes {
                                    if kv.key == "service.name" {
                                        seen.service_names.push(text(kv.value.as_ref()));
                                    }
                                }
                            }
                            for scope in resource_spans.scope_spans {
                                for span in scope.spans {
                                    seen.spans.push(Span {
                                        name: span.name,
                                        trace_id: hex::encode(&span.trace_id),
                                        span_id: hex::encode(&span.span_id),
                                        parent: hex::encode(&span.parent_span_id),
                                        error: span
                                            .status
                                            .as_ref()
                                            .is_some_and(|s| s.code == StatusCode::Error as i32),
                                        attributes: span
                                            .attributes
                                            .iter()
                                            .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                                            .collect(),
                                    });
                                }
                            }
                        }
                        // An empty ExportTraceServiceResponse.
                        (
                            [("content-type", "application/x-protobuf")],
                            Vec::<u8>::new(),
                        )
                    }
                }),
            );
            serve(&rt, app)
        };
        let shop = {
            let seen = Arc::clone(&seen);
            let app =
                axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let traceparent = headers
                            .get("traceparent")
                            .map(|v| v.to_str().unwrap().to_string());
                        assert!(headers.get("tracestate").is_none());
                        seen.lock()
                            .unwrap()
                            .traceparents
                            .push((uri.path().to_string(), traceparent));
                        "ok"
                    }
                });
            serve(&rt, app)
        };
        Self {
            _rt: rt,
            collector,
            shop,
            seen,
        }
    }

    fn traceparents(&self, path: &str) -> Vec<Option<String>> {
        let seen = self.seen.lock().unwrap();
        seen.traceparents
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, t)| t.clone())
            .collect()
    }
}

/// Serves `app` on a free loopback port.
fn serve(rt: &tokio::runtime::Runtime, app: axum::Router) -> u16 {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// The latest run of each feed (`installation feed`): its id.
fn run_ids(site: &Site) -> HashMap<String, i64> {
    let runs: Vec<serde_json::Value> =
        serde_json::from_str(&site.ok(&["runs", "list", "--json"])).unwrap();
    let mut ids = HashMap::new();
    for r in &runs {
        let feed = format!(
            "{} {}",
            r["installation"].as_str().unwrap(),
            r["feed"].as_str().unwrap()
        );
        let id = r["id"].as_i64().unwrap();
        let latest = ids.entry(feed).or_insert(id);
        *latest = id.max(*latest);
    }
    ids
}

/// `run-now` each feed in turn and waits for its finished line.
fn run_each(site: &Site, server: &Server, feeds: &[(&str, &str, &str)]) {
    for (installation, feed, outcome) in feeds {
        site.ok(&["run-now", &format!("acme/{installation}"), feed]);
        server.wait_for(&[outcome, &format!("acme/{installation} {feed}")]);
    }
}

#[test]
fn a_runs_trace_reaches_the_collector_and_its_requests_carry_their_span() {
    let loopback = Loopback::start();
    let site = Site::new();
    site.ok(&["tenant", "add", "acme"]);
    // A query that must reach no span.
    let query = "key=s3cr3t-in-the-query";
    let shop = loopback.shop;
    // A refused request's host is the guest's text: it could be a secret.
    install(
        &site,
        "egress-probe",
        "probe",
        &[
            format!("allowed_url=http://shop.test:{shop}/rust?{query}"),
            "denied_url=http://s3cr3t-as-a-subdomain.denied.test/x".to_string(),
        ],
    );
    install(
        &site,
        "js-egress",
        "js",
        &[format!("allowed_url=http://shop.test:{shop}/js?{query}")],
    );
    install(&site, "misbehaving", "m", &[]);

    // Without --otlp-endpoint: nothing is traced, no header is added.
    let server = site.serve(&NET);
    run_each(&site, &server, &[("probe", "probe", "OK")]);
    assert_eq!(server.stop().0, Some(0));
    let untraced = loopback.traceparents("/rust");
    assert!(!untraced.is_empty() && untraced.iter().all(Option::is_none));

    let endpoint = format!("http://127.0.0.1:{}", loopback.collector);
    let mut args = vec!["--otlp-endpoint", &endpoint];
    args.extend(NET);
    let mut cmd = site.cmd(&crate::serve_cli::QUICK_SERVE);
    cmd.args(&args)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_SERVICE_NAME");
    let server = Server::start(cmd);
    server.wait_for(&[&format!("exporting traces to {endpoint}/v1/traces")]);
    run_each(
        &site,
        &server,
        &[
            ("probe", "probe", "OK"),
            ("js", "probe", "OK"),
            ("m", "count", "OK"),
            ("m", "write-then-error", "ERROR"),
        ],
    );
    // SIGTERM: the spans still batched are sent before the process ends.
    let (code, output) = server.stop();
    assert_eq!(code, Some(0), "{output}");

    let rust_traceparents = loopback.traceparents("/rust");
    let js_traceparents = loopback.traceparents("/js");
    let seen = loopback.seen.lock().unwrap();
    assert!(seen.service_names.iter().all(|n| n == "airlock"));
    assert!(!seen.service_names.is_empty());
    let spans = &seen.spans;
    let ids = run_ids(&site);
    let run_span = |feed: &str| -> &Span {
        let id = ids[feed].to_string();
        let found: Vec<&Span> = spans
            .iter()
            .filter(|s| s.name == "run" && s.attributes.get("airlock.run_id") == Some(&id))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one run span for {feed} (run {id}): {spans:#?}"
        );
        found[0]
    };
    let children = |parent: &Span| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.parent == parent.span_id && s.trace_id == parent.trace_id)
            .collect()
    };
    let child = |parent: &Span, name: &str| -> &Span {
        let found: Vec<&Span> = children(parent)
            .into_iter()
            .filter(|s| s.name == name)
            .collect();
        assert!(
            !found.is_empty(),
            "no {name} under {}: {spans:#?}",
            parent.name
        );
        found[0]
    };

    let mut traces = Vec::new();
    for (feed, plugin, outcome) in [
        ("probe probe", "egress-probe", "ok"),
        ("js probe", "js-egress", "ok"),
        ("m count", "misbehaving", "ok"),
        ("m write-then-error", "misbehaving", "error"),
    ] {
        let run = run_span(feed);
        assert_eq!(run.parent, "", "a run is its trace's root");
        assert_eq!(run.attr("airlock.tenant"), "acme");
        assert_eq!(run.attr("airlock.plugin"), plugin);
        assert_eq!(run.attr("airlock.feed"), feed.split_once(' ').unwrap().1);
        assert_eq!(run.attr("airlock.trigger"), "manual");
        assert_eq!(run.attr("airlock.outcome"), outcome);
        assert_eq!(run.error, outcome == "error", "{feed}'s status");
        let mut phases: Vec<&str> = children(run).iter().map(|s| s.name.as_str()).collect();
        phases.sort();
        assert_eq!(phases, ["commit", "guest", "load"], "{feed}");
        traces.push(run.trace_id.clone());
    }
    traces.sort();
    traces.dedup();
    assert_eq!(traces.len(), 4, "one trace per run");

    // Host calls, under the guest span, named after their WIT function.
    let count = child(run_span("m count"), "guest");
    let mut calls: Vec<&str> = children(count).iter().map(|s| s.name.as_str()).collect();
    calls.sort();
    calls.dedup();
    assert_eq!(calls, ["storage.get", "storage.set"]);

    // The Rust guest's request: http.send, then its hop, whose span is
    // the parent the third party was told.
    let guest = child(run_span("probe probe"), "guest");
    assert!(children(guest).iter().any(|s| s.name == "config.get"));
    let hop = child(child(guest, "http.send"), "GET");
    assert_eq!(hop.attr("http.request.method"), "GET");
    assert_eq!(hop.attr("server.address"), "shop.test");
    assert_eq!(hop.attr("server.port"), shop.to_string());
    assert_eq!(hop.attr("airlock.egress.decision"), "allowed");
    assert_eq!(hop.attr("http.response.status_code"), "200");
    let expected = format!("00-{}-{}-01", hop.trace_id, hop.span_id);
    assert_eq!(
        rust_traceparents.last().unwrap().as_deref(),
        Some(expected.as_str())
    );

    // The JavaScript guest's fetch goes through wasi:http's handler.
    let guest = child(run_span("js probe"), "guest");
    let hop = child(child(guest, "outgoing-handler.handle"), "GET");
    assert_eq!(hop.attr("airlock.egress.decision"), "allowed");
    let expected = format!("00-{}-{}-01", hop.trace_id, hop.span_id);
    assert_eq!(js_traceparents, [Some(expected)]);

    // The refused hop: its decision, not its host.
    let denied: Vec<&Span> = children(guest)
        .into_iter()
        .chain(children(child(run_span("probe probe"), "guest")))
        .filter(|s| s.name == "http.send")
        .flat_map(children)
        .filter(|hop| {
            hop.attributes
                .get("airlock.egress.decision")
                .map(String::as_str)
                == Some("denied")
        })
        .collect();
    assert_eq!(denied.len(), 1, "{spans:#?}");
    assert!(!denied[0].attributes.contains_key("server.address"));
    assert!(denied[0].error);

    // Nothing of a URL's host (refused), path or query, nor any argument
    // of a host call (config.get's key), in what was sent.
    for body in &seen.bodies {
        let body = String::from_utf8_lossy(body);
        for leak in ["s3cr3t", "/rust", "/js", "allowed_url"] {
            assert!(!body.contains(leak), "{leak} was exported");
        }
    }
}
