//! A run's log: lines from the guest's `log.write`, capped in size and count.

use serde::Serialize;

/// Log levels, as in the WIT `log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Normal.
    Info,
    /// Something odd.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// Level.
    pub level: LogLevel,
    /// Text, truncated to the cap.
    pub message: String,
}

/// Caps on a run's log.
#[derive(Debug, Clone)]
pub struct LogLimits {
    /// Lines kept; later lines are counted and dropped.
    pub max_lines: usize,
    /// Bytes kept per line; longer lines are truncated.
    pub max_line_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_lines: 1000,
            max_line_bytes: 4096,
        }
    }
}

/// The log of one run.
#[derive(Debug, Default)]
pub struct RunLog {
    limits: LogLimits,
    lines: Vec<LogLine>,
    dropped: u32,
}

impl RunLog {
    /// An empty log with these caps.
    pub fn new(limits: LogLimits) -> Self {
        Self {
            limits,
            lines: Vec::new(),
            dropped: 0,
        }
    }

    /// Appends a line, truncating it, or counts it as dropped if the log is full.
    pub fn write(&mut self, at_ms: u64, level: LogLevel, message: &str) {
        if self.lines.len() >= self.limits.max_lines {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        let message = truncate_utf8(message, self.limits.max_line_bytes);
        self.lines.push(LogLine {
            at_ms,
            level,
            message,
        });
    }

    /// The lines kept and the number dropped.
    pub fn into_parts(self) -> (Vec<LogLine>, u32) {
        (self.lines, self.dropped)
    }
}

/// `text` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub(crate) fn truncate_utf8(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_lines_and_line_length() {
        let mut log = RunLog::new(LogLimits {
            max_lines: 2,
            max_line_bytes: 5,
        });
        log.write(0, LogLevel::Info, "héllo world");
        log.write(1, LogLevel::Warn, "ok");
        log.write(2, LogLevel::Error, "dropped");
        log.write(3, LogLevel::Error, "dropped");
        let (lines, dropped) = log.into_parts();
        assert_eq!(lines[0].message, "héll…");
        assert_eq!(lines[1].message, "ok");
        assert_eq!(lines.len(), 2);
        assert_eq!(dropped, 2);
    }
}
