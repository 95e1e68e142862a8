//! The `airlock:connector/log` capability: the run's log, redacted and capped.
//!
//! Each line is redacted of the installation's secrets before it is capped
//! (so no prefix of a secret survives at the cut), then kept in the run's
//! [`RunLog`] up to its line and byte caps.

mod host;

use std::time::Instant;

use wasmtime::component::{HasSelf, Linker};

use crate::config::Redactor;
use crate::runs::{LogLevel, LogLimits, LogLine, RunLog};
use crate::runtime::bindings::airlock::connector::log as wit;

/// The log of one run, as the guest writes it.
pub struct LogCapability {
    log: RunLog,
    redactor: Redactor,
    started: Instant,
}

impl LogCapability {
    /// An empty log with these caps, redacting with `redactor`, timing lines
    /// from `started`.
    pub fn new(limits: LogLimits, redactor: Redactor, started: Instant) -> Self {
        Self {
            log: RunLog::new(limits),
            redactor,
            started,
        }
    }

    /// Appends `message` at `level`: redacted first, then capped.
    pub fn write(&mut self, level: LogLevel, message: &str) {
        let at_ms = self.started.elapsed().as_millis() as u64;
        let message = self.redactor.redact(message);
        self.log.write(at_ms, level, &message);
    }

    /// The lines kept and the number dropped.
    pub fn into_parts(self) -> (Vec<LogLine>, u32) {
        self.log.into_parts()
    }
}

/// Registers `airlock:connector/log`, served by the [`LogCapability`] that
/// `get` finds in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<LogCapability>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "hunter2-secret";

    /// Writes `message` to a log with one secret and a 12-byte line cap, and
    /// compares the line kept.
    fn check(message: &str, expected: &str) {
        let limits = LogLimits {
            max_lines: 10,
            max_line_bytes: 12,
        };
        let mut log = LogCapability::new(limits, Redactor::new([SECRET]), Instant::now());
        log.write(LogLevel::Info, message);
        let (lines, dropped) = log.into_parts();
        assert_eq!(dropped, 0);
        assert_eq!(lines[0].message, expected, "for {message:?}");
        assert_eq!(lines[0].level, LogLevel::Info);
    }

    #[test]
    fn a_line_is_redacted_before_it_is_capped() {
        check("short", "short");
        check("a line longer than the cap", "a line longe…");
        // The cut falls inside the secret: capping first would keep a
        // prefix of it that no longer matches; redacting first keeps none.
        check(SECRET, "[redacted]");
        check("key=hunter2-secret", "key=[redacte…");
    }
}
