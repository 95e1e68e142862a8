//! When feeds run: cron schedules in a time zone, jitter, catch-up after
//! downtime, retry backoff (`plan`, pure), an injectable clock (`clock`), and
//! the `serve` loop that claims due runs and executes them (`serve`).

pub mod clock;
pub mod plan;
pub mod serve;

pub use clock::{Clock, ManualClock, SystemClock};
pub use plan::{CatchUp, CronSchedule, Due, Overlap, RetryPolicy, ScheduleError, jitter, plan_due};
pub use serve::{Event, EventSink, Running, Scheduler, ServeError, ServeOptions, TestOutbound};
