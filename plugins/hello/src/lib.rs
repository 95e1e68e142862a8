//! The smallest Airlock connector: logs a greeting and counts its runs in
//! storage. A template for integrators, and the trivial feed the benchmark runs.
//!
//! Build with `scripts/build-plugins.sh`, then run with
//! `airlock run plugins/hello --feed greet`.

wit_bindgen::generate!({ path: "../../wit", world: "connector" });

use airlock::connector::types::Status;
use airlock::connector::{config, log, storage};

struct Hello;

export!(Hello);

impl Guest for Hello {
    fn run(ctx: RunContext) -> Outcome {
        let greeting = config::get("greeting").unwrap_or_else(|| "hello".to_string());
        let runs = match storage::get("runs") {
            Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).parse::<u32>().unwrap_or(0),
            Ok(None) => 0,
            Err(e) => {
                return Outcome {
                    status: Status::Retry,
                    message: format!("storage unavailable: {e:?}"),
                    items: 0,
                    retry_after_seconds: None,
                };
            }
        };
        if ctx.feed == "greet"
            && let Err(e) = storage::set("runs", (runs + 1).to_string().as_bytes())
        {
            log::write(
                log::Level::Warn,
                &format!("could not count this run: {e:?}"),
            );
        }
        if ctx.feed == "publish" {
            let _ = storage::set("published", ctx.scheduled_at.to_string().as_bytes());
        }
        log::write(log::Level::Info, &format!("{greeting}, {}", ctx.tenant));
        Outcome {
            status: Status::Ok,
            message: format!("{greeting} #{}", runs + 1),
            items: 1,
            retry_after_seconds: None,
        }
    }

    fn check() -> Result<(), String> {
        Ok(())
    }
}
