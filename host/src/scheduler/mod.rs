//! When feeds run: cron schedules in a time zone, jitter, catch-up after
//! downtime, retry backoff (`plan`, pure), an injectable clock (`clock`).

pub mod clock;
pub mod plan;

pub use clock::{Clock, ManualClock, SystemClock};
pub use plan::{CatchUp, CronSchedule, Due, Overlap, RetryPolicy, ScheduleError, jitter, plan_due};
