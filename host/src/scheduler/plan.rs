//! The scheduling maths, pure and without I/O: cron schedules evaluated in an
//! IANA time zone ([`CronSchedule`], with its daylight-saving rules), the
//! deterministic per-feed [`jitter`], what a schedule owes after downtime
//! ([`plan_due`] with a [`CatchUp`] policy), the [`Overlap`] policy, and
//! retry backoff ([`RetryPolicy`]).

use std::collections::VecDeque;
use std::fmt;
use std::iter::successors;
use std::str::FromStr;

use chrono::{DateTime, Duration, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use cron::{Schedule, TimeUnitSpec};
use sha2::{Digest, Sha256};

/// A schedule that cannot be used, with a message saying how to fix it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error(
        "`{expr}` is not a valid cron expression ({message}); write six or seven fields, \
         sec min hour day-of-month month day-of-week [year], e.g. `0 0 * * * *` for hourly"
    )]
    BadCron {
        /// The expression as given.
        expr: String,
        /// What the cron parser objected to.
        message: String,
    },
    /// The time zone is not in the IANA database.
    #[error("`{tz}` is not an IANA time zone (e.g. Europe/London, UTC)")]
    BadTimeZone {
        /// The zone name as given.
        tz: String,
    },
}

/// A cron expression with seconds (`sec min hour dom month dow [year]`, the
/// `cron` crate's syntax, which also takes `@hourly`, `@daily`, ...) read as
/// wall-clock time in an IANA time zone.
///
/// Daylight-saving changes are handled like classic (Vixie) cron, depending on
/// whether the hour field is `*` (every hour):
///
/// * **Every-hour schedules** (`0 0 * * * *`, `0 */5 * * * *`) follow real
///   time: wall times skipped by spring-forward simply do not happen, and the
///   hour repeated at fall-back fires again. An hourly schedule therefore fires
///   one real hour apart across both changes, never twice at one instant.
/// * **Fixed-hour schedules** (`0 30 1 * * *`) fire once per matching wall
///   time and date. A wall time skipped by spring-forward (01:30 in London on
///   2026-03-29) fires once, at the instant the clocks jump (02:00 BST), so a
///   daily job is not lost; several skipped wall times collapse into that one
///   fire. A wall time that happens twice at fall-back fires only at its first
///   occurrence (01:30 BST, not again at 01:30 GMT).
#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// `manual`: a feed run only when asked (`run-now`), never on a clock.
    manual: bool,
    schedule: Schedule,
    zone_name: String,
    zone: Tz,
    every_hour: bool,
}

pub use crate::manifest::MANUAL_SCHEDULE as MANUAL;

/// The reason in the cron parser's message, on one line: the parser quotes
/// the expression over several lines with a caret under the fault, which
/// the error around it already names.
fn cron_reason(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty() && !line.starts_with('|') && !line.starts_with('^'))
        .unwrap_or("it does not parse")
        .to_string()
}

impl CronSchedule {
    /// Parses a cron expression (with seconds), or [`MANUAL`], and an IANA
    /// zone name.
    pub fn parse(expr: &str, tz: &str) -> Result<Self, ScheduleError> {
        let manual = expr == MANUAL;
        // A manual feed's clock: one fire, long past, so never another.
        let cron = if manual { "0 0 0 1 1 * 1970" } else { expr };
        let schedule = Schedule::from_str(cron).map_err(|e| ScheduleError::BadCron {
            expr: expr.to_string(),
            message: cron_reason(&e.to_string()),
        })?;
        let zone = tz
            .parse::<Tz>()
            .map_err(|_| ScheduleError::BadTimeZone { tz: tz.to_string() })?;
        Ok(Self {
            manual,
            every_hour: schedule.hours().is_all(),
            schedule,
            zone_name: tz.to_string(),
            zone,
        })
    }

    /// The cron expression as given.
    pub fn expression(&self) -> &str {
        if self.manual {
            MANUAL
        } else {
            self.schedule.source()
        }
    }

    /// The zone name as given, e.g. `Europe/London`.
    pub fn time_zone(&self) -> &str {
        &self.zone_name
    }

    /// The first fire strictly after `t`, evaluated in the schedule's zone
    /// (see the type's documentation for daylight-saving changes). `None` once
    /// the schedule has no more fires (the `cron` crate stops at year 2100).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.manual {
            return None;
        }
        let by_wall = self.next_by_wall(t);
        match self.next_in_repeated_hour(t) {
            Some(repeat) => Some(by_wall.map_or(repeat, |wall| wall.min(repeat))),
            None => by_wall,
        }
    }

    /// The gap from `fire` to the following fire (None if there is none).
    pub fn period_after(&self, fire: DateTime<Utc>) -> Option<Duration> {
        self.next_after(fire).map(|next| next - fire)
    }

    /// The first fire after `t` among wall times later than the clock reads at `t`.
    fn next_by_wall(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let wall = t.with_timezone(&self.zone).naive_local();
        self.walls_after(wall).find_map(|w| self.resolve(w, t))
    }

    /// The matching wall times strictly after `wall`, oldest first.
    fn walls_after(&self, wall: NaiveDateTime) -> impl Iterator<Item = NaiveDateTime> + '_ {
        self.schedule.after(&wall.and_utc()).map(|w| w.naive_utc())
    }

    /// The instant matching wall time `w` fires at, if that is after `t`.
    fn resolve(&self, w: NaiveDateTime, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let fire = match self.zone.from_local_datetime(&w) {
            LocalResult::Single(at) => at.to_utc(),
            LocalResult::Ambiguous(first, _) if first.to_utc() > t => first.to_utc(),
            LocalResult::Ambiguous(_, second) if self.every_hour => second.to_utc(),
            LocalResult::None if !self.every_hour => self.jump_over(w)?,
            _ => return None,
        };
        Some(fire).filter(|&fire| fire > t)
    }

    /// For an every-hour schedule with `t` in the first pass of an hour that
    /// fall-back repeats: the first fire in the repeat (wall times the clock
    /// shows again after it goes back), which `next_by_wall` cannot see.
    fn next_in_repeated_hour(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.every_hour {
            return None;
        }
        let wall = t.with_timezone(&self.zone).naive_local();
        let LocalResult::Ambiguous(first, second) = self.zone.from_local_datetime(&wall) else {
            return None;
        };
        if first.to_utc() != t {
            return None;
        }
        let back = self.first_change(t, second.to_utc());
        let back_wall = back.with_timezone(&self.zone).naive_local();
        let w = self.walls_after(back_wall - Duration::seconds(1)).next()?;
        self.zone
            .from_local_datetime(&w)
            .latest()
            .map(|at| at.to_utc())
    }

    /// The instant the clocks jump forward over the non-existent wall time `w`.
    fn jump_over(&self, w: NaiveDateTime) -> Option<DateTime<Utc>> {
        // The jump is within 14 hours of `w` read as UTC (offsets are -12..+14 h).
        let (lo, hi) = (
            w.and_utc() - Duration::days(1),
            w.and_utc() + Duration::days(1),
        );
        (self.offset_at(lo) != self.offset_at(hi)).then(|| self.first_change(lo, hi))
    }

    /// The first instant in `(lo, hi]` (to the second) whose UTC offset differs
    /// from `lo`'s, by bisection; there must be one offset change in between.
    fn first_change(&self, mut lo: DateTime<Utc>, mut hi: DateTime<Utc>) -> DateTime<Utc> {
        let before = self.offset_at(lo);
        while hi - lo > Duration::seconds(1) {
            let mid = lo + Duration::seconds(((hi - lo).num_seconds() / 2).max(1));
            if self.offset_at(mid) == before {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }

    fn offset_at(&self, t: DateTime<Utc>) -> FixedOffset {
        t.with_timezone(&self.zone).offset().fix()
    }
}

/// Deterministic jitter in `[0, cap)` where `cap = min(max, period / 2)`
/// (just `max` when `period` is `None`), to the millisecond. The same `key`
/// (e.g. `tenant/installation/feed`) always gets the same jitter: the first 8
/// bytes of its SHA-256 as a big-endian `u64`, modulo `cap` in milliseconds.
/// A cap under one millisecond (e.g. `max` zero) gives zero.
pub fn jitter(key: &str, max: Duration, period: Option<Duration>) -> Duration {
    let cap = period.map_or(max, |period| max.min(period / 2));
    let Ok(cap_ms) = u64::try_from(cap.num_milliseconds()) else {
        return Duration::zero();
    };
    if cap_ms == 0 {
        return Duration::zero();
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let ms = u64::from_be_bytes(first) % cap_ms;
    Duration::milliseconds(i64::try_from(ms).unwrap_or(0))
}

/// What to do with fires missed while the host was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Run none of them; wait for the next fire.
    Skip,
    /// Run the latest one only.
    One,
    /// Run the latest `n` (1..=1000 when parsed), oldest first.
    All(u32),
}

/// The most fires `CatchUp::All` may ask for when parsed.
const MAX_CATCH_UP: u32 = 1000;

impl FromStr for CatchUp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not a catch-up policy: use `skip`, `one` or `all:N` \
                 with N from 1 to {MAX_CATCH_UP} (e.g. `all:24`)"
            )
        };
        match s {
            "skip" => Ok(Self::Skip),
            "one" => Ok(Self::One),
            _ => {
                let n: u32 = s
                    .strip_prefix("all:")
                    .ok_or_else(bad)?
                    .parse()
                    .map_err(|_| bad())?;
                if (1..=MAX_CATCH_UP).contains(&n) {
                    Ok(Self::All(n))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl fmt::Display for CatchUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Skip => f.write_str("skip"),
            Self::One => f.write_str("one"),
            Self::All(n) => write!(f, "all:{n}"),
        }
    }
}

/// A run due while the previous run of the same (installation, feed) is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Queue it until the previous run ends.
    Wait,
    /// Drop it (counted as missed).
    Skip,
}

impl FromStr for Overlap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "wait" => Ok(Self::Wait),
            "skip" => Ok(Self::Skip),
            _ => Err(format!(
                "`{s}` is not an overlap policy: use `wait` or `skip`"
            )),
        }
    }
}

impl fmt::Display for Overlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Wait => "wait",
            Self::Skip => "skip",
        })
    }
}

/// What a schedule owes at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The fire times to run now (their `scheduled_at`), oldest first.
    pub runs: Vec<DateTime<Utc>>,
    /// Fires in the window that will not run (dropped by the catch-up policy).
    pub missed: u64,
    /// The first fire strictly after `now`.
    pub next_fire: Option<DateTime<Utc>>,
}

/// The most fires [`plan_due`] counts in one window (an every-second schedule
/// after a year of downtime has over 31 million).
pub const MAX_COUNTED: u64 = 100_000;

/// What `schedule` owes at `now`, given `next_fire`, the fire it was waiting
/// for (stored; owed even if the expression has since changed).
///
/// The fires in `[next_fire, now]` are owed. If there is exactly one and it
/// is at most `grace` old, it is on time and runs. Otherwise the host was
/// down or behind and `policy` applies: `Skip` runs none, `One` the latest,
/// `All(n)` the latest `n` (oldest first); the rest count as `missed`. If
/// `next_fire > now` nothing is owed and `next_fire` is returned unchanged.
///
/// Counting is bounded: at most [`MAX_COUNTED`] fires are counted, so after
/// very long downtime of a very frequent schedule `missed` is a lower bound
/// (`MAX_COUNTED - runs`). The runs are still the latest fires before `now`.
pub fn plan_due(
    schedule: &CronSchedule,
    next_fire: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: CatchUp,
    grace: Duration,
) -> Due {
    if next_fire > now {
        return Due {
            runs: Vec::new(),
            missed: 0,
            next_fire: Some(next_fire),
        };
    }
    let keep = match policy {
        CatchUp::Skip => 0,
        CatchUp::One => 1,
        CatchUp::All(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let (count, mut runs) = scan(schedule, Some(next_fire), now, keep);
    if count == 1 && now - next_fire <= grace {
        runs = vec![next_fire];
    } else if count == MAX_COUNTED {
        runs = latest_fires(schedule, next_fire, now, keep);
    }
    let missed = count.saturating_sub(runs.len() as u64);
    Due {
        runs,
        missed,
        next_fire: schedule.next_after(now),
    }
}

/// The fires from `first` (included) to `now` (included), at most
/// [`MAX_COUNTED`]: how many, and the latest `keep` of them, oldest first.
fn scan(
    schedule: &CronSchedule,
    first: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    keep: usize,
) -> (u64, Vec<DateTime<Utc>>) {
    let fires =
        successors(first, |&fire| schedule.next_after(fire)).take_while(|&fire| fire <= now);
    let mut tail = VecDeque::new();
    let mut count = 0;
    for fire in fires.take(MAX_COUNTED as usize) {
        count += 1;
        if keep > 0 {
            if tail.len() == keep {
                tail.pop_front();
            }
            tail.push_back(fire);
        }
    }
    (count, tail.into())
}

/// The latest `keep` fires in `[from, now]`, found by scanning back from
/// `now` over windows that grow fourfold (for windows too full to scan).
fn latest_fires(
    schedule: &CronSchedule,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    keep: usize,
) -> Vec<DateTime<Utc>> {
    let mut back = Duration::minutes(1);
    loop {
        let start = now - back;
        let first = if start <= from {
            Some(from)
        } else {
            schedule.next_after(start)
        };
        let (_, tail) = scan(schedule, first, now, keep);
        if tail.len() >= keep || start <= from {
            return tail;
        }
        back = back * 4;
    }
}

/// Bounded exponential backoff for `retry` outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; no retry after the last.
    pub max_attempts: u32,
    /// The delay after the first attempt; doubled after each further one.
    pub base: Duration,
    /// The longest computed delay (a guest's request may exceed it).
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts, one minute doubling up to one hour.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::seconds(60),
            max: Duration::hours(1),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`, after attempt `attempt`
    /// (1-based) ended `retry`; `None` once `attempt >= max_attempts` (give up).
    ///
    /// Without a request: `base * 2^(attempt - 1)`, capped at `max` (no
    /// overflow for huge attempts). With the guest's request (e.g. one hour for
    /// "checked every hour"): the requested delay clamped to [1 s, 24 h]; the
    /// guest may ask for longer than `max`, but never more than a day.
    pub fn delay(&self, attempt: u32, requested: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if let Some(requested) = requested {
            return Some(requested.clamp(Duration::seconds(1), Duration::hours(24)));
        }
        let doubled = 2i32
            .checked_pow(attempt.saturating_sub(1))
            .and_then(|factor| self.base.checked_mul(factor));
        Some(doubled.map_or(self.max, |delay| delay.min(self.max)))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_manual_schedule_never_fires_and_says_so() {
        let s = CronSchedule::parse(MANUAL, "UTC").unwrap();
        assert_eq!(s.expression(), "manual");
        assert_eq!(s.next_after(Utc.timestamp_opt(0, 0).unwrap()), None);
        assert_eq!(s.next_after(Utc::now()), None);
    }

    use super::*;
    use chrono_tz::Europe::London;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    /// A London wall time that exists exactly once.
    fn london(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        London
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap()
            .to_utc()
    }

    fn schedule(expr: &str) -> CronSchedule {
        CronSchedule::parse(expr, "Europe/London").unwrap()
    }

    /// `n` successive fires after `t`.
    fn fires(s: &CronSchedule, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        successors(s.next_after(t), |&f| s.next_after(f))
            .take(n)
            .collect()
    }

    #[test]
    fn parse_keeps_expression_and_zone() {
        let s = schedule("0 0 * * * *");
        assert_eq!(s.expression(), "0 0 * * * *");
        assert_eq!(s.time_zone(), "Europe/London");
    }

    #[test]
    fn parse_errors_explain() {
        let bad_cron = CronSchedule::parse("0 61 * * * *", "UTC").unwrap_err();
        assert!(matches!(&bad_cron, ScheduleError::BadCron { expr, .. } if expr == "0 61 * * * *"));
        assert!(
            bad_cron.to_string().contains("e.g. `0 0 * * * *`"),
            "{bad_cron}"
        );
        for expr in ["0 61 * * * *", "0 */99 * * * *", "x", "0 0 * * * * * *"] {
            let e = CronSchedule::parse(expr, "UTC").unwrap_err().to_string();
            assert!(!e.contains('\n'), "one line, no caret: {e}");
            assert!(!e.contains("()"), "a reason is given: {e}");
        }
        let bad_tz = CronSchedule::parse("0 0 * * * *", "Europe/Londn").unwrap_err();
        assert_eq!(
            bad_tz,
            ScheduleError::BadTimeZone {
                tz: "Europe/Londn".into()
            }
        );
        assert_eq!(
            bad_tz.to_string(),
            "`Europe/Londn` is not an IANA time zone (e.g. Europe/London, UTC)"
        );
    }

    #[test]
    fn every_minute_is_strictly_after() {
        let s = CronSchedule::parse("0 * * * * *", "UTC").unwrap();
        let cases = [
            (utc(2026, 1, 5, 12, 0, 30), utc(2026, 1, 5, 12, 1, 0)),
            (utc(2026, 1, 5, 12, 1, 0), utc(2026, 1, 5, 12, 2, 0)),
            (utc(2026, 1, 5, 23, 59, 59), utc(2026, 1, 6, 0, 0, 0)),
            (
                utc(2026, 1, 5, 12, 0, 0) + Duration::milliseconds(500),
                utc(2026, 1, 5, 12, 1, 0),
            ),
        ];
        for (t, want) in cases {
            assert_eq!(s.next_after(t), Some(want), "after {t}");
        }
        assert_eq!(
            s.period_after(utc(2026, 1, 5, 12, 1, 0)),
            Some(Duration::minutes(1))
        );
    }

    #[test]
    fn jitter_is_deterministic_and_spread() {
        let max = Duration::minutes(30);
        let hour = Some(Duration::hours(1));
        assert_eq!(
            jitter("acme/shop/orders", max, hour),
            jitter("acme/shop/orders", max, hour)
        );
        let all: Vec<_> = (0..100)
            .map(|i| jitter(&format!("acme/shop-{i}/orders"), max, hour))
            .collect();
        let mut distinct = all.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 50, "only {} distinct", distinct.len());
        assert!(all.iter().all(|j| *j >= Duration::zero() && *j < max));
    }

    #[test]
    fn jitter_capped_at_half_the_period() {
        let minute = schedule("0 * * * * *");
        let period = minute.period_after(london(2026, 1, 5, 12, 0));
        assert_eq!(period, Some(Duration::minutes(1)));
        for i in 0..100 {
            assert!(
                jitter(&format!("t/i/{i}"), Duration::minutes(5), period) < Duration::seconds(30)
            );
        }
    }

    #[test]
    fn jitter_zero_cases() {
        assert_eq!(
            jitter("a/b/c", Duration::zero(), Some(Duration::hours(1))),
            Duration::zero()
        );
        assert_eq!(jitter("a/b/c", Duration::zero(), None), Duration::zero());
        assert_eq!(
            jitter("a/b/c", Duration::minutes(5), Some(Duration::zero())),
            Duration::zero()
        );
        assert!(jitter("a/b/c", Duration::minutes(5), None) < Duration::minutes(5));
    }

    #[test]
    fn spring_forward_daily_in_gap_fires_once_at_the_jump() {
        // 2026-03-29: London goes 01:00 GMT -> 02:00 BST; 01:30 does not exist.
        let s = schedule("0 30 1 * * *");
        let got = fires(&s, london(2026, 3, 27, 12, 0), 3);
        assert_eq!(
            got,
            [
                london(2026, 3, 28, 1, 30),
                london(2026, 3, 29, 2, 0),
                london(2026, 3, 30, 1, 30)
            ]
        );
        assert_eq!(got[1], utc(2026, 3, 29, 1, 0, 0));
    }

    #[test]
    fn spring_forward_collapses_skipped_fires_of_a_fixed_hour() {
        let s = schedule("0 0,20,40 1 * * *");
        let got = fires(&s, london(2026, 3, 29, 0, 0), 2);
        assert_eq!(got, [london(2026, 3, 29, 2, 0), london(2026, 3, 30, 1, 0)]);
    }

    #[test]
    fn spring_forward_hourly_has_no_duplicate_or_empty_gap() {
        for expr in ["0 0 * * * *", "0 30 * * * *"] {
            let s = schedule(expr);
            let got = fires(&s, utc(2026, 3, 28, 22, 0, 0), 6);
            for pair in got.windows(2) {
                assert_eq!(pair[1] - pair[0], Duration::hours(1), "{expr}: {got:?}");
            }
        }
        let hourly = fires(&schedule("0 0 * * * *"), utc(2026, 3, 28, 23, 30, 0), 3);
        assert_eq!(
            hourly,
            [
                london(2026, 3, 29, 0, 0),
                london(2026, 3, 29, 2, 0),
                london(2026, 3, 29, 3, 0)
            ]
        );
    }

    #[test]
    fn fall_back_daily_fires_once() {
        // 2026-10-25: London goes 02:00 BST -> 01:00 GMT; 01:30 happens twice.
        let s = schedule("0 30 1 * * *");
        let got = fires(&s, london(2026, 10, 24, 12, 0), 2);
        assert_eq!(
            got,
            [utc(2026, 10, 25, 0, 30, 0), london(2026, 10, 26, 1, 30)]
        );
        // Asked from inside the repeated hour, the second 01:30 is not a fire.
        assert_eq!(
            s.next_after(utc(2026, 10, 25, 1, 10, 0)),
            Some(london(2026, 10, 26, 1, 30))
        );
    }

    #[test]
    fn fall_back_hourly_fires_one_real_hour_apart() {
        let cases = [
            ("0 0 * * * *", utc(2026, 10, 24, 22, 30, 0)),
            ("0 30 * * * *", utc(2026, 10, 24, 22, 0, 0)),
            ("0 */15 * * * *", utc(2026, 10, 24, 23, 50, 0)),
            ("0 * * * * *", utc(2026, 10, 25, 0, 55, 0)),
        ];
        for (expr, from) in cases {
            let s = schedule(expr);
            let got = fires(&s, from, 12);
            let step = got[1] - got[0];
            for pair in got.windows(2) {
                assert_eq!(pair[1] - pair[0], step, "{expr}: {got:?}");
            }
        }
        let hourly = fires(&schedule("0 0 * * * *"), utc(2026, 10, 24, 22, 30, 0), 4);
        let want: Vec<_> = (23..27)
            .map(|h| utc(2026, 10, 24, 0, 0, 0) + Duration::hours(h))
            .collect();
        assert_eq!(hourly, want);
    }

    #[test]
    fn fall_back_fixed_hour_skips_the_repeat() {
        let s = schedule("0 * 1 * * *");
        let got = fires(&s, utc(2026, 10, 24, 23, 59, 0), 61);
        let want: Vec<_> = (0..60).map(|m| utc(2026, 10, 25, 0, m, 0)).collect();
        assert_eq!(got[..60], want[..]);
        assert_eq!(got[60], london(2026, 10, 26, 1, 0));
    }

    #[test]
    fn day_31_skips_short_months_and_converts_bst() {
        let s = schedule("0 0 9 31 * *");
        let got = fires(&s, london(2026, 1, 31, 9, 0), 2);
        assert_eq!(got, [london(2026, 3, 31, 9, 0), london(2026, 5, 31, 9, 0)]);
        assert_eq!(got, [utc(2026, 3, 31, 8, 0, 0), utc(2026, 5, 31, 8, 0, 0)]);
    }

    #[test]
    fn plan_due_on_time_and_within_grace() {
        let s = schedule("0 0 * * * *");
        let fire = london(2026, 1, 5, 10, 0);
        let grace = Duration::minutes(5);
        for late in [Duration::zero(), Duration::seconds(90), grace] {
            let due = plan_due(&s, fire, fire + late, CatchUp::Skip, grace);
            let want = Due {
                runs: vec![fire],
                missed: 0,
                next_fire: Some(london(2026, 1, 5, 11, 0)),
            };
            assert_eq!(due, want, "late by {late}");
        }
        let too_late = plan_due(&s, fire, fire + Duration::minutes(6), CatchUp::Skip, grace);
        assert_eq!((too_late.runs.len(), too_late.missed), (0, 1));
    }

    #[test]
    fn plan_due_after_five_hours_down() {
        // Waiting for 10:00, back at 15:00:30: 10..=15 are owed (6 fires).
        let s = schedule("0 0 * * * *");
        let (next_fire, now) = (
            london(2026, 1, 5, 10, 0),
            london(2026, 1, 5, 15, 0) + Duration::seconds(30),
        );
        let at = |h| london(2026, 1, 5, h, 0);
        let cases = [
            (CatchUp::Skip, vec![], 6),
            (CatchUp::One, vec![at(15)], 5),
            (CatchUp::All(3), vec![at(13), at(14), at(15)], 3),
            (CatchUp::All(10), (10..=15).map(at).collect(), 0),
        ];
        for (policy, runs, missed) in cases {
            let due = plan_due(&s, next_fire, now, policy, Duration::minutes(5));
            assert_eq!(
                due,
                Due {
                    runs,
                    missed,
                    next_fire: Some(at(16))
                },
                "{policy}"
            );
        }
    }

    #[test]
    fn plan_due_with_next_fire_in_future() {
        let s = schedule("0 0 * * * *");
        let next_fire = london(2026, 1, 5, 11, 0);
        let due = plan_due(
            &s,
            next_fire,
            london(2026, 1, 5, 10, 30),
            CatchUp::One,
            Duration::minutes(5),
        );
        assert_eq!(
            due,
            Due {
                runs: vec![],
                missed: 0,
                next_fire: Some(next_fire)
            }
        );
    }

    #[test]
    fn plan_due_is_bounded_after_long_downtime() {
        let s = CronSchedule::parse("* * * * * *", "UTC").unwrap();
        let next_fire = utc(2025, 1, 1, 0, 0, 0);
        let now = next_fire + Duration::days(400);
        let due = plan_due(&s, next_fire, now, CatchUp::One, Duration::minutes(5));
        let want = Due {
            runs: vec![now],
            missed: MAX_COUNTED - 1,
            next_fire: Some(now + Duration::seconds(1)),
        };
        assert_eq!(due, want);
        let all = plan_due(&s, next_fire, now, CatchUp::All(3), Duration::minutes(5));
        assert_eq!(
            all.runs,
            [now - Duration::seconds(2), now - Duration::seconds(1), now]
        );
    }

    #[test]
    fn retry_backoff_doubles_then_gives_up() {
        let policy = RetryPolicy::default();
        let got: Vec<_> = (1..=5).map(|attempt| policy.delay(attempt, None)).collect();
        let secs = |s| Some(Duration::seconds(s));
        assert_eq!(got, [secs(60), secs(120), secs(240), secs(480), None]);
    }

    #[test]
    fn retry_backoff_caps_at_max() {
        let policy = RetryPolicy {
            max_attempts: 100,
            ..RetryPolicy::default()
        };
        for attempt in [7, 30, 31, 32, 99] {
            assert_eq!(
                policy.delay(attempt, None),
                Some(Duration::hours(1)),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn retry_honours_clamped_request() {
        let policy = RetryPolicy::default();
        let cases = [
            (Duration::seconds(3600), Duration::seconds(3600)),
            (Duration::zero(), Duration::seconds(1)),
            (Duration::seconds(-5), Duration::seconds(1)),
            (Duration::days(10), Duration::hours(24)),
        ];
        for (requested, want) in cases {
            assert_eq!(
                policy.delay(1, Some(requested)),
                Some(want),
                "requested {requested}"
            );
        }
        assert_eq!(policy.delay(5, Some(Duration::seconds(3600))), None);
    }

    #[test]
    fn catch_up_and_overlap_round_trip() {
        for text in ["skip", "one", "all:1", "all:24", "all:1000"] {
            assert_eq!(text.parse::<CatchUp>().unwrap().to_string(), text);
        }
        assert_eq!("all:24".parse::<CatchUp>(), Ok(CatchUp::All(24)));
        for text in ["wait", "skip"] {
            assert_eq!(text.parse::<Overlap>().unwrap().to_string(), text);
        }
        assert_eq!("wait".parse::<Overlap>(), Ok(Overlap::Wait));
    }

    #[test]
    fn catch_up_and_overlap_reject_bad_input() {
        for text in [
            "all:0",
            "all:x",
            "all:1001",
            "all:",
            "sometimes",
            "Skip",
            "",
        ] {
            let err = text.parse::<CatchUp>().unwrap_err();
            assert!(err.contains("`skip`, `one` or `all:N`"), "{text}: {err}");
        }
        let err = "sometimes".parse::<Overlap>().unwrap_err();
        assert!(err.contains("`wait` or `skip`"), "{err}");
    }
}
