//! The host's log lines (`airlock serve`'s: runs queued, started and
//! finished, warnings, its own faults) through `tracing`: human lines by
//! default, as `serve` always printed them, or one JSON object per line
//! with `--log-format json`, every field of the event beside its message.
//! Which lines are printed is an env-filter directive (`--log`,
//! `$AIRLOCK_LOG`). Info and below go to stdout, warnings and errors to
//! stderr. A command's output (what `airlock runs` prints) is not a log
//! line: it stays on stdout through `outln!`.
//!
//! A scheduler event is marked by its `event` field (`queued`, `start`,
//! `finished`…); a human line shows it after the time, `HH:MM:SS`. Other
//! lines (`listening on …`) are shown bare, as before, and warnings start
//! with `warning: `.

use std::fmt;
use std::str::FromStr;

use airlock::telemetry::{self, Traces};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Layer as _, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The filter when neither `--log` nor `$AIRLOCK_LOG` gives one: Airlock's
/// own lines from info up, other crates' warnings and errors.
pub const DEFAULT_FILTER: &str = "warn,airlock=info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable lines, as `serve` printed them.
    Human,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "human" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err(format!("`{s}` is not human or json")),
        }
    }
}

/// The log options of a command that logs (`serve`).
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Which log lines to print: a level (error, warn, info, debug, trace)
    /// or an env-filter directive per target, e.g. `warn,airlock=info`
    /// (the default) or `airlock=debug`.
    #[arg(long = "log", env = "AIRLOCK_LOG", default_value = DEFAULT_FILTER,
          value_parser = parse_filter, value_name = "FILTER")]
    filter: String,
    /// How log lines are written: `human` (readable lines) or `json` (one
    /// JSON object per line with the event's fields: tenant, installation,
    /// feed, run_id, outcome…).
    #[arg(
        long,
        env = "AIRLOCK_LOG_FORMAT",
        default_value = "human",
        value_name = "human|json"
    )]
    log_format: LogFormat,
    /// Export traces (a span per run, its host calls and HTTP requests)
    /// over OTLP/HTTP to the collector at this base URL, e.g.
    /// `http://127.0.0.1:4318` (spans are posted to its `/v1/traces`).
    /// Headers for the collector (an API key) go in
    /// `$OTEL_EXPORTER_OTLP_HEADERS`; the service name is
    /// `$OTEL_SERVICE_NAME` or `airlock`. Off by default. Requests to third
    /// parties then carry a W3C `traceparent`.
    #[arg(long, env = "AIRLOCK_OTLP_ENDPOINT", value_name = "URL",
          value_parser = parse_endpoint)]
    otlp_endpoint: Option<String>,
}

/// Checks `--otlp-endpoint` when the command line is read.
fn parse_endpoint(text: &str) -> Result<String, String> {
    telemetry::traces_endpoint(text)
        .map(|_| text.to_string())
        .map_err(|e| {
            e.to_string()
                .trim_start_matches("--otlp-endpoint ")
                .to_string()
        })
}

/// Checks an env-filter directive, so a typo is refused with a clear error
/// rather than silently filtering everything.
fn parse_filter(text: &str) -> Result<String, String> {
    EnvFilter::try_new(text)
        .map(|_| text.to_string())
        .map_err(|e| format!("not a log filter ({e}); e.g. `info` or `warn,airlock=debug`"))
}

impl LogArgs {
    /// Makes these options the process's logger (and tracer, with
    /// `--otlp-endpoint`). Called once, before the first line is logged.
    /// The traces exporter returned must be shut down before the process
    /// ends, so its last spans are sent.
    pub fn init(&self) -> anyhow::Result<Option<Traces>> {
        let filter = EnvFilter::try_new(&self.filter)?;
        let traces = match &self.otlp_endpoint {
            Some(endpoint) => Some(Traces::otlp(endpoint)?),
            None => None,
        };
        // Each layer has its own filter: `--log` chooses the lines printed,
        // not the spans exported.
        let exported = traces.as_ref().map(|t| {
            tracing_opentelemetry::layer()
                .with_tracer(t.tracer())
                .with_filter(filter_fn(telemetry::exported))
        });
        let writer = std::io::stderr
            .with_max_level(Level::WARN)
            .and(std::io::stdout.with_min_level(Level::INFO));
        let layer = tracing_subscriber::fmt::layer().with_writer(writer);
        let result = match self.log_format {
            LogFormat::Human => tracing::subscriber::set_global_default(
                tracing_subscriber::registry()
                    .with(exported)
                    .with(layer.event_format(Human).with_filter(filter)),
            ),
            LogFormat::Json => tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(exported).with(
                    layer
                        .json()
                        .flatten_event(true)
                        .with_current_span(false)
                        .with_span_list(false)
                        .with_filter(filter),
                ),
            ),
        };
        result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))?;
        if let Some(endpoint) = &self.otlp_endpoint {
            let to = telemetry::traces_endpoint(endpoint)?;
            tracing::info!(endpoint = %to, "exporting traces to {to}");
        }
        Ok(traces)
    }
}

/// The human format: `HH:MM:SS message` for a scheduler event, `warning:
/// message` for a warning, the message alone otherwise; fields other than
/// the message are left to the JSON format. Control characters (a guest's
/// message could hold some) are escaped, so a line stays one line.
struct Human;

/// What the human format takes from an event: its message, or, for an
/// event without one (a library's, such as the trace exporter's
/// `name = "BatchSpanProcessor.ExportError", error = …`), its fields.
#[derive(Default)]
struct HumanFields {
    message: String,
    timed: bool,
    fields: Vec<String>,
}

impl Visit for HumanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "event" => self.timed = true,
            name => self.fields.push(format!("{name}={value}")),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "event" => self.timed = true,
            name => self.fields.push(format!("{name}={value:?}")),
        }
    }
}

impl HumanFields {
    /// The line's text: the message, or the event's target and fields.
    fn text(&self, target: &str) -> String {
        if self.message.is_empty() && !self.fields.is_empty() {
            format!("{target}: {}", self.fields.join(" "))
        } else {
            self.message.clone()
        }
    }
}

impl<S, N> FormatEvent<S, N> for Human
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = HumanFields::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        if fields.timed {
            write!(writer, "{} ", chrono::Utc::now().format("%H:%M:%S"))?;
        } else if level == Level::WARN {
            writer.write_str("warning: ")?;
        } else if level == Level::ERROR {
            writer.write_str("error: ")?;
        }
        let text = fields.text(event.metadata().target());
        writeln!(writer, "{}", one_line(&text))
    }
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`…).
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_formats_are_checked() {
        for good in ["info", "warn,airlock=debug", "airlock::cli=trace", "off"] {
            assert_eq!(parse_filter(good).as_deref(), Ok(good), "{good}");
        }
        for bad in ["airlock=loud", "=info,", "info,airlock=[{"] {
            let e = parse_filter(bad).unwrap_err();
            assert!(e.starts_with("not a log filter"), "{bad}: {e}");
        }
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("human".parse(), Ok(LogFormat::Human));
        assert_eq!(
            "xml".parse::<LogFormat>(),
            Err("`xml` is not human or json".to_string())
        );
    }

    #[test]
    fn an_event_without_a_message_is_shown_by_its_fields() {
        let fields = HumanFields {
            message: String::new(),
            timed: false,
            fields: vec!["name=ExportError".into(), "error=refused".into()],
        };
        assert_eq!(
            fields.text("opentelemetry_sdk"),
            "opentelemetry_sdk: name=ExportError error=refused"
        );
        let fields = HumanFields {
            message: "started".into(),
            ..fields
        };
        assert_eq!(fields.text("airlock"), "started", "a message is the line");
    }

    #[test]
    fn a_line_stays_one_line() {
        let check = |text: &str, expected: &str| assert_eq!(one_line(text), expected, "{text:?}");
        check("plain text", "plain text");
        check("two\nlines", "two\\nlines");
        check("\u{1b}[31mred", "\\u{1b}[31mred");
        check("tab\there", "tab\\there");
    }
}
