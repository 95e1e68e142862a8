//! The host's Prometheus metrics (`docs/observability.md`): one [`Metrics`]
//! per [`Airlock`](crate::Airlock), its own registry (no global one), the
//! counters and histograms the run path moves as things happen, and the
//! gauges read from the store when a scraper asks ([`Metrics::scrape`]).
//! [`listener`] serves them at `GET /metrics` on a listener of their own
//! (`airlock serve --metrics-listen`), never on the public one.
//!
//! Labels are kinds, never names a tenant chose: a run is labelled with its
//! plugin's id and its outcome, a decision with its verdict, a delivery with
//! the HTTP status it was answered; tenants and installations appear in no
//! label (their number is unbounded, and their names are the operator's
//! customers). What a tenant's run did is in `airlock runs`.
//!
//! It knows nothing about wasmtime, HTTP clients or SQL: callers hand it
//! what happened, and the store's [`Gauges`] what is.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::storage::{GaugeReading, Gauges, StorageError};

pub mod listener;

/// The content type of [`Metrics::encode`]'s text (OpenMetrics 1.0, which
/// Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The verdicts of the egress client, each a series from the start.
const VERDICTS: [&str; 4] = ["allowed", "denied", "suppressed", "invalid"];

/// A run's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    plugin: String,
    outcome: String,
}

/// A plugin's label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

/// An egress decision's label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: String,
}

/// A webhook delivery's label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

/// Pending records' labels: the consuming plugin and the collection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PendingLabels {
    plugin: String,
    collection: String,
}

/// Buckets of a run's duration, seconds: 50 ms to about 7 minutes.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

/// The label of a plugin id; an unknown one (a run whose installation is
/// gone) is `unknown`.
fn plugin_label(plugin: &str) -> String {
    if plugin.is_empty() {
        "unknown".to_string()
    } else {
        plugin.to_string()
    }
}

/// The metrics of one host. Recording is a few atomic operations, safe
/// from any thread; [`Metrics::scrape`] reads the store's gauges and
/// encodes everything.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    run_duration: Family<PluginLabel, Histogram, fn() -> Histogram>,
    start_lag: Histogram,
    /// Each verdict's counter, made once: a decision costs one atomic add.
    egress: [(&'static str, Counter); 4],
    webhooks: Family<StatusLabel, Counter>,
    queue_depth: Gauge,
    in_progress: Gauge,
    open_notifications: Gauge,
    records_pending: Family<PendingLabels, Gauge>,
    /// One scrape at a time: the gauges are set, then encoded.
    scraping: tokio::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, in a registry of its own.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "airlock_runs",
            "Runs recorded, by plugin id and outcome (ok, info, retry, error, interrupted)",
            runs.clone(),
        );
        let run_duration = Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "airlock_run_duration",
            "How long runs' guests took, from the call to its end, by plugin id",
            Unit::Seconds,
            run_duration.clone(),
        );
        let start_lag = Histogram::new(exponential_buckets(0.5, 2.0, 14));
        registry.register_with_unit(
            "airlock_due_to_start_lag",
            "From a queued run's due time to its start by the scheduler",
            Unit::Seconds,
            start_lag.clone(),
        );
        let egress = Family::<VerdictLabel, Counter>::default();
        registry.register(
            "airlock_egress_decisions",
            "Decisions of the egress enforcement point, one per request or redirect hop, by \
             verdict (allowed, denied, suppressed, invalid)",
            egress.clone(),
        );
        let webhooks = Family::<StatusLabel, Counter>::default();
        registry.register(
            "airlock_webhook_deliveries",
            "Webhook deliveries answered, by the HTTP status of the answer",
            webhooks.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "airlock_queue_depth",
            "Queued runs whose due time has come, not started yet (read at scrape)",
            queue_depth.clone(),
        );
        let in_progress = Gauge::default();
        registry.register(
            "airlock_runs_in_progress",
            "Runs claimed and not recorded yet (read at scrape)",
            in_progress.clone(),
        );
        let open_notifications = Gauge::default();
        registry.register(
            "airlock_open_notifications",
            "Notifications not acknowledged (read at scrape)",
            open_notifications.clone(),
        );
        let records_pending = Family::<PendingLabels, Gauge>::default();
        registry.register(
            "airlock_records_pending",
            "Records pending export, summed over the enabled installations of a plugin, by \
             plugin id and collection (read at scrape; each installation's count capped)",
            records_pending.clone(),
        );
        let egress = VERDICTS.map(|verdict| {
            let labels = VerdictLabel {
                verdict: verdict.to_string(),
            };
            (verdict, egress.get_or_create_owned(&labels))
        });
        Self {
            registry,
            runs,
            run_duration,
            start_lag,
            egress,
            webhooks,
            queue_depth,
            in_progress,
            open_notifications,
            records_pending,
            scraping: tokio::sync::Mutex::new(()),
        }
    }

    /// A run of `plugin` (its id) was recorded with `outcome`; `duration`
    /// is its guest's, for runs whose guest was called (none for a run
    /// recorded without running: interrupted, or that could not start).
    pub fn run_recorded(&self, plugin: &str, outcome: &str, duration: Option<Duration>) {
        let plugin = plugin_label(plugin);
        self.runs
            .get_or_create(&RunLabels {
                plugin: plugin.clone(),
                outcome: outcome.to_string(),
            })
            .inc();
        if let Some(duration) = duration {
            self.run_duration
                .get_or_create(&PluginLabel { plugin })
                .observe(duration.as_secs_f64());
        }
    }

    /// The scheduler started a queued run `lag` after it was due.
    pub fn run_started(&self, lag: Duration) {
        self.start_lag.observe(lag.as_secs_f64());
    }

    /// The egress client took a decision (`allowed`, `denied`,
    /// `suppressed` or `invalid`: [`crate::egress::Decision::verdict`]).
    pub fn egress_decision(&self, verdict: &str) {
        if let Some((_, counter)) = self.egress.iter().find(|(v, _)| *v == verdict) {
            counter.inc();
        }
    }

    /// A webhook delivery was answered with `status`.
    pub fn webhook_delivery(&self, status: u16) {
        self.webhooks
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc();
    }

    /// Sets the gauges to `reading` and encodes every metric (the text
    /// of [`CONTENT_TYPE`]).
    pub fn encode(&self, reading: &GaugeReading) -> String {
        self.queue_depth.set(clamp(reading.queue_due));
        self.in_progress.set(clamp(reading.in_progress));
        self.open_notifications
            .set(clamp(reading.open_notifications));
        self.records_pending.clear();
        for pending in &reading.records_pending {
            self.records_pending
                .get_or_create(&PendingLabels {
                    plugin: plugin_label(&pending.plugin),
                    collection: pending.collection.clone(),
                })
                .inc_by(clamp(pending.count));
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// What a scraper gets: the gauges read from `store` at `now` (Unix
    /// seconds), then every metric encoded.
    pub async fn scrape(&self, store: &dyn Gauges, now: i64) -> Result<String, StorageError> {
        let _one_at_a_time = self.scraping.lock().await;
        let reading = store.gauges(now).await?;
        Ok(self.encode(&reading))
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::PendingCount;

    /// The sample lines of `text` that start with `name`, sorted (a
    /// family's series come in no particular order).
    fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        let mut lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.starts_with(name))
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn what_is_recorded_is_encoded_with_its_labels() {
        let m = Metrics::new();
        m.run_recorded("hello", "ok", Some(Duration::from_millis(120)));
        m.run_recorded("hello", "ok", Some(Duration::from_millis(80)));
        m.run_recorded("", "interrupted", None);
        m.egress_decision("denied");
        m.webhook_delivery(404);
        m.run_started(Duration::from_secs(3));
        let reading = GaugeReading {
            queue_due: 4,
            in_progress: 1,
            open_notifications: 2,
            records_pending: vec![PendingCount {
                plugin: "xero".into(),
                collection: "orders".into(),
                count: 7,
            }],
        };
        let text = m.encode(&reading);
        let check = |name: &str, expected: &[&str]| {
            assert_eq!(samples(&text, name), expected, "{name} in:\n{text}");
        };
        assert_eq!(
            samples(&text, "airlock_runs_total"),
            [
                "airlock_runs_total{plugin=\"hello\",outcome=\"ok\"} 2",
                "airlock_runs_total{plugin=\"unknown\",outcome=\"interrupted\"} 1",
            ]
        );
        check(
            "airlock_run_duration_seconds_count",
            &["airlock_run_duration_seconds_count{plugin=\"hello\"} 2"],
        );
        check(
            "airlock_run_duration_seconds_sum",
            &["airlock_run_duration_seconds_sum{plugin=\"hello\"} 0.2"],
        );
        check(
            "airlock_egress_decisions_total",
            &[
                "airlock_egress_decisions_total{verdict=\"allowed\"} 0",
                "airlock_egress_decisions_total{verdict=\"denied\"} 1",
                "airlock_egress_decisions_total{verdict=\"invalid\"} 0",
                "airlock_egress_decisions_total{verdict=\"suppressed\"} 0",
            ],
        );
        check(
            "airlock_webhook_deliveries_total",
            &["airlock_webhook_deliveries_total{status=\"404\"} 1"],
        );
        check(
            "airlock_due_to_start_lag_seconds_count",
            &["airlock_due_to_start_lag_seconds_count 1"],
        );
        check("airlock_queue_depth", &["airlock_queue_depth 4"]);
        check("airlock_runs_in_progress", &["airlock_runs_in_progress 1"]);
        check(
            "airlock_open_notifications",
            &["airlock_open_notifications 2"],
        );
        check(
            "airlock_records_pending",
            &["airlock_records_pending{plugin=\"xero\",collection=\"orders\"} 7"],
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_gauge_read_again_replaces_the_last_reading() {
        let m = Metrics::new();
        let pending = |plugin: &str, count| GaugeReading {
            records_pending: vec![PendingCount {
                plugin: plugin.into(),
                collection: "orders".into(),
                count,
            }],
            ..GaugeReading::default()
        };
        m.encode(&pending("xero", 7));
        let text = m.encode(&pending("staingard", 3));
        assert_eq!(
            samples(&text, "airlock_records_pending"),
            ["airlock_records_pending{plugin=\"staingard\",collection=\"orders\"} 3"],
            "a plugin no longer read is gone, not stale: {text}"
        );
    }
}
