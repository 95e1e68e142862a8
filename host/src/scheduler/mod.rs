//! When feeds run: cron schedules in a time zone, jitter, catch-up after
//! downtime, retry backoff (`plan`, pure), an injectable clock (`clock`), the
//! `serve` loop that claims due runs and executes them (`serve`), due
//! schedules turned into queued runs (`due`), which queued runs start next
//! (`fair`, pure), how a run that ended is settled (`settle`, pure), what the
//! loop reports (`event`), its options (`options`) and the runs it has in
//! progress (`running`).

pub mod clock;
mod due;
pub mod event;
pub mod fair;
pub mod options;
pub mod plan;
pub mod running;
pub mod serve;
pub mod settle;

pub use clock::{Clock, ManualClock, SystemClock};
pub use event::{Event, EventSink};
pub use options::{ServeOptions, TestOutbound};
pub use plan::{
    CatchUp, CronSchedule, Due, MANUAL, Overlap, RetryPolicy, ScheduleError, jitter, plan_due,
};
pub use running::Running;
pub use serve::{Scheduler, ServeError};
pub use settle::{INTERRUPTED, Unrun, settle};
