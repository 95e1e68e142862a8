//! `--traces`: what OpenTelemetry traces cost a run. The same runs again
//! with the subscriber `serve --otlp-endpoint` sets up (the OpenTelemetry
//! layer over the host's spans, a batch processor on its own thread), its
//! exporter swapped for one that counts the spans and drops them: the
//! network is the collector's cost, paid on the exporter's thread, not the
//! run's.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Layer as _, SubscriberExt};

/// Counts the spans it is given.
#[derive(Debug, Clone, Default)]
pub struct Counting(Arc<AtomicU64>);

impl Counting {
    /// Spans exported so far.
    pub fn spans(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl SpanExporter for Counting {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        async { Ok(()) }
    }
}

/// The traced subscriber, its provider (to flush) and its span count.
pub fn subscriber() -> (
    impl tracing::Subscriber + Send + Sync,
    SdkTracerProvider,
    Counting,
) {
    let counting = Counting::default();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(counting.clone())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("airlock"))
        .with_filter(filter_fn(airlock::telemetry::exported));
    (
        tracing_subscriber::registry().with(layer),
        provider,
        counting,
    )
}
