//! WIT glue for `airlock:connector/log`.

use super::LogCapability;
use crate::runs::LogLevel;
use crate::runtime::bindings::airlock::connector::log;

impl log::Host for LogCapability {
    #[tracing::instrument(name = "log.write", level = "debug", skip_all)]
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        LogCapability::write(self, level, &message);
        Ok(())
    }
}
