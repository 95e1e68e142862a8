//! When feeds run: cron schedules in a time zone, jitter, catch-up after
//! downtime, retry backoff (`plan`, pure), an injectable clock (`clock`), the
//! `serve` loop that claims due runs and executes them (`serve`), its options
//! (`options`) and the runs it has in progress (`running`).

pub mod clock;
pub mod options;
pub mod plan;
pub mod running;
pub mod serve;

pub use clock::{Clock, ManualClock, SystemClock};
pub use options::{ServeOptions, TestOutbound};
pub use plan::{CatchUp, CronSchedule, Due, Overlap, RetryPolicy, ScheduleError, jitter, plan_due};
pub use running::Running;
pub use serve::{Event, EventSink, Scheduler, ServeError};
