//! The scheduler's notion of "now": a [`Clock`] trait so the serve loop can
//! run against the real time ([`SystemClock`]) or a time the tests move by
//! hand ([`ManualClock`]).

use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Duration, Utc};

/// A source of the current instant.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock: [`Utc::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock standing at `t`.
    pub fn new(t: DateTime<Utc>) -> Self {
        Self(Mutex::new(t))
    }

    /// Moves the clock to `t` (forwards or backwards).
    pub fn set(&self, t: DateTime<Utc>) {
        *self.lock() = t;
    }

    /// Moves the clock by `by` (negative moves it back).
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now += by;
    }

    /// The guarded instant; a poisoned lock still holds a valid instant.
    fn lock(&self) -> MutexGuard<'_, DateTime<Utc>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn manual_clock_stands_still_until_moved() {
        let clock = ManualClock::new(start());
        assert_eq!(clock.now(), start());
        assert_eq!(clock.now(), start());
    }

    #[test]
    fn manual_clock_set_and_advance() {
        let clock = ManualClock::new(start());
        clock.advance(Duration::minutes(90));
        assert_eq!(clock.now(), start() + Duration::minutes(90));
        clock.advance(Duration::seconds(-30));
        assert_eq!(clock.now(), start() + Duration::seconds(90 * 60 - 30));
        clock.set(start());
        assert_eq!(clock.now(), start());
    }

    #[test]
    fn clocks_work_as_trait_objects() {
        let clocks: [Box<dyn Clock>; 2] =
            [Box::new(SystemClock), Box::new(ManualClock::new(start()))];
        let before = Utc::now();
        let system = clocks[0].now();
        assert!(system >= before && system <= Utc::now());
        assert_eq!(clocks[1].now(), start());
    }
}
