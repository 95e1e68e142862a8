//! OpenTelemetry traces, off unless `serve --otlp-endpoint` is given.
//!
//! The host's spans are ordinary `tracing` spans; when traces are on, the
//! subscriber (`cli/logging.rs`) also hands them to an OpenTelemetry layer
//! whose batch processor exports them over OTLP/HTTP (protobuf) from a
//! thread of its own. When they are off, nothing here runs, and the spans
//! below `info` are disabled at their call sites (unless `--log` asks for
//! `debug` lines).
//!
//! The spans (names and fields are a contract: `docs/observability.md`):
//! - `run`: one per run (a feed's or a webhook delivery's), the root of its
//!   trace, with tenant, installation, plugin, feed, trigger, attempt, then
//!   the run's id and outcome; its status is `error` when the run failed.
//!   - `load`, `guest` (instantiating and calling the component) and
//!     `commit` (the run's effects and record, one transaction).
//!     - under `guest`, one span per host call, named after the WIT
//!       function (`storage.get`, `records.put`, `http.send`…), with no
//!       argument: keys, values and bodies never reach a trace.
//!       - under an HTTP call, one client span per hop (`GET`, `POST`…) with
//!         the method, host, port, the egress decision and the status.
//! - `check`: one per Test connection, with tenant, installation, plugin,
//!   mode and outcome (`ok`, `failed`, `host-failure`), `load` and `guest`.
//! - A `POST` hop of its own: the host's OAuth code exchange, outside runs.
//!
//! Each hop's request carries the W3C `traceparent` of its span
//! ([`traceparent`]), added by the egress client after the policy check. A
//! guest may not set that header itself (`egress/headers.rs`): the host
//! owns it, so a third party's logs can be matched to the run that called.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header that carries a request's trace context (W3C Trace Context).
pub const TRACEPARENT: &str = "traceparent";

/// The trace-context headers (`traceparent`, and `tracestate` when there is
/// one) of `span`, to send on a request it makes; none when traces are off
/// or the span is not recorded.
pub fn trace_headers(span: &tracing::Span) -> Vec<(String, String)> {
    let mut headers = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut headers);
    // The propagator gives an empty `tracestate` when there is none.
    let mut headers: Vec<(String, String)> =
        headers.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    headers.sort();
    headers
}

/// The `traceparent` of `span`: `00-<trace id>-<span id>-<flags>`; None when
/// traces are off.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    trace_headers(span)
        .into_iter()
        .find_map(|(name, value)| (name == TRACEPARENT).then_some(value))
}

/// Why traces cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    /// The endpoint is not an http(s) URL a collector can be reached at.
    #[error("--otlp-endpoint {0}")]
    BadEndpoint(String),
    /// The exporter could not be built.
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(String),
}

/// Where the collector's OTLP/HTTP traces endpoint is, given its base URL
/// (as `OTEL_EXPORTER_OTLP_ENDPOINT` is: `http://collector:4318` posts to
/// `http://collector:4318/v1/traces`); a URL that already ends in
/// `/v1/traces` is kept. Credentials in the URL are refused (they would be
/// printed wherever the URL is): headers go in `OTEL_EXPORTER_OTLP_HEADERS`.
pub fn traces_endpoint(base: &str) -> Result<url::Url, TracesError> {
    let bad = |why: &str| TracesError::BadEndpoint(why.to_string());
    let mut url = url::Url::parse(base).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "may not hold credentials: give headers in $OTEL_EXPORTER_OTLP_HEADERS",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("may not have a query or a fragment"));
    }
    if !url.path().ends_with("/v1/traces") {
        let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url)
}

/// The process's trace exporter: spans batched and sent to one collector.
/// [`Self::shutdown`] sends what is left.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Exports to the collector at `base` (see [`traces_endpoint`]), as
    /// service `$OTEL_SERVICE_NAME` (or `service.name` in
    /// `$OTEL_RESOURCE_ATTRIBUTES`), else `airlock`. Export failures are
    /// the exporter's to report (an error line): they never stop a run.
    pub fn otlp(base: &str) -> Result<Self, TracesError> {
        let endpoint = traces_endpoint(base)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.as_str())
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TracesError::Exporter(e.to_string()))?;
        // The SDK reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
        // without either, its name would be `unknown_service:airlock`.
        let named = Resource::builder()
            .build()
            .get(&opentelemetry::Key::new("service.name"))
            .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
        let mut resource = Resource::builder();
        if !named {
            resource = resource.with_service_name("airlock");
        }
        let resource = resource
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Self { provider })
    }

    /// The tracer the subscriber's OpenTelemetry layer records with.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("airlock")
    }

    /// Sends the spans still batched and stops the exporter. Blocks (up to
    /// the export timeout): call it off the async workers.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "traces not all exported at shutdown: {e}");
        }
    }
}

/// Whether a span or event is one the OpenTelemetry layer exports: the
/// host's own spans (target `airlock…`) at `debug` and above. Events are
/// not exported (they are log lines), nor other crates' spans.
pub fn exported(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_span()
        && *metadata.level() <= tracing::Level::DEBUG
        && (metadata.target() == "airlock" || metadata.target().starts_with("airlock::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_the_collectors_base_url() {
        let ok = |base: &str, expected: &str| {
            assert_eq!(traces_endpoint(base).unwrap().as_str(), expected, "{base}")
        };
        ok("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces");
        ok("http://collector:4318/", "http://collector:4318/v1/traces");
        ok(
            "https://otel.example/otlp",
            "https://otel.example/otlp/v1/traces",
        );
        ok("http://c:4318/v1/traces", "http://c:4318/v1/traces");
        for bad in [
            "collector:4318",
            "ftp://c/",
            "http://user:pw@c:4318",
            "http://c:4318?key=1",
            "not a url",
        ] {
            let e = traces_endpoint(bad).unwrap_err().to_string();
            assert!(e.starts_with("--otlp-endpoint "), "{bad}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn without_an_exporter_a_span_has_no_trace_context() {
        let span = tracing::info_span!("run");
        assert_eq!(traceparent(&span), None);
        assert!(trace_headers(&span).is_empty());
    }

    #[test]
    fn a_recorded_span_gives_its_own_traceparent() {
        use opentelemetry::trace::TraceContextExt;
        use tracing_subscriber::layer::SubscriberExt;
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let run = tracing::info_span!("run");
            let hop = tracing::info_span!(parent: &run, "GET");
            let value = traceparent(&hop).expect("a traceparent");
            let parts: Vec<&str> = value.split('-').collect();
            let context = hop.context();
            let own = context.span().span_context().clone();
            assert_eq!(parts.len(), 4, "{value}");
            assert_eq!(parts[0], "00");
            assert_eq!(parts[1], own.trace_id().to_string());
            assert_eq!(parts[2], own.span_id().to_string(), "the hop's own span");
            assert_eq!(parts[3], "01", "sampled");
            let root = run.context().span().span_context().trace_id();
            assert_eq!(own.trace_id(), root, "one trace per run");
        });
    }

    #[test]
    fn only_the_hosts_spans_at_debug_and_above_are_exported() {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

        /// Names every span and event it is given.
        struct Seen(Arc<Mutex<Vec<String>>>);
        impl<S: tracing::Subscriber> Layer<S> for Seen {
            fn on_new_span(
                &self,
                attrs: &tracing::span::Attributes<'_>,
                _: &tracing::span::Id,
                _: Context<'_, S>,
            ) {
                self.0
                    .lock()
                    .unwrap()
                    .push(attrs.metadata().name().to_string());
            }
            fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
                self.0
                    .lock()
                    .unwrap()
                    .push(format!("event {}", event.metadata().target()));
            }
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let filter = tracing_subscriber::filter::filter_fn(exported);
        let subscriber =
            tracing_subscriber::registry().with(Seen(Arc::clone(&seen)).with_filter(filter));
        tracing::subscriber::with_default(subscriber, || {
            let _run = tracing::info_span!("run").entered();
            let _call = tracing::debug_span!("storage.get").entered();
            let _fine = tracing::trace_span!("too fine");
            let _other = tracing::info_span!(target: "wasmtime", "compile");
            let _lookalike = tracing::info_span!(target: "airlocked", "not ours");
            tracing::info!("a log line");
        });
        assert_eq!(*seen.lock().unwrap(), ["run", "storage.get"]);
    }
}
