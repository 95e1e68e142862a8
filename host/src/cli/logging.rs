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

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
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
}

/// Checks an env-filter directive, so a typo is refused with a clear error
/// rather than silently filtering everything.
fn parse_filter(text: &str) -> Result<String, String> {
    EnvFilter::try_new(text)
        .map(|_| text.to_string())
        .map_err(|e| format!("not a log filter ({e}); e.g. `info` or `warn,airlock=debug`"))
}

impl LogArgs {
    /// Makes these options the process's logger. Called once, before the
    /// first line is logged.
    pub fn init(&self) -> anyhow::Result<()> {
        let filter = EnvFilter::try_new(&self.filter)?;
        let writer = std::io::stderr
            .with_max_level(Level::WARN)
            .and(std::io::stdout.with_min_level(Level::INFO));
        let layer = tracing_subscriber::fmt::layer().with_writer(writer);
        let result = match self.log_format {
            LogFormat::Human => tracing::subscriber::set_global_default(
                tracing_subscriber::registry()
                    .with(filter)
                    .with(layer.event_format(Human)),
            ),
            LogFormat::Json => tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(filter).with(
                    layer
                        .json()
                        .flatten_event(true)
                        .with_current_span(false)
                        .with_span_list(false),
                ),
            ),
        };
        result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
    }
}

/// The human format: `HH:MM:SS message` for a scheduler event, `warning:
/// message` for a warning, the message alone otherwise; fields other than
/// the message are left to the JSON format. Control characters (a guest's
/// message could hold some) are escaped, so a line stays one line.
struct Human;

/// What the human format takes from an event.
#[derive(Default)]
struct HumanFields {
    message: String,
    timed: bool,
}

impl Visit for HumanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "event" => self.timed = true,
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "event" => self.timed = true,
            _ => {}
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
        writeln!(writer, "{}", one_line(&fields.message))
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
    fn a_line_stays_one_line() {
        let check = |text: &str, expected: &str| assert_eq!(one_line(text), expected, "{text:?}");
        check("plain text", "plain text");
        check("two\nlines", "two\\nlines");
        check("\u{1b}[31mred", "\\u{1b}[31mred");
        check("tab\there", "tab\\there");
    }
}
