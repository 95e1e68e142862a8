//! Due schedules become queued runs: what each owes now under the catch-up
//! and overlap policies, and its next fire (jitter added), stored with
//! compare-and-set so a schedule changed meanwhile keeps the change.

use chrono::{DateTime, Utc};

use super::event::Event;
use super::serve::{Scheduler, ServeError, at, ts};
use super::{CronSchedule, Overlap, jitter, plan_due};
use crate::runs::Trigger;
use crate::storage::{NEVER, QueuedRun, SchedulePlan, ScheduleRow};

impl Scheduler {
    /// Turns up to a batch of due schedules into queued runs and plans their
    /// next fire, in one transaction; true if more may be due. A schedule
    /// never planned (new, re-enabled, changed) is planned from now: it owes
    /// nothing for the past. A schedule changed since it was read keeps the
    /// change (its plan is not applied) and is planned again.
    pub(super) async fn queue_due_schedules(&self, now: DateTime<Utc>) -> Result<bool, ServeError> {
        const BATCH: usize = 1000;
        let due = self.store().due_schedules(ts(now), BATCH).await?;
        // Which of these feeds are running, in one read for the batch.
        let feeds: Vec<(String, String, String)> = due
            .iter()
            .map(|s| (s.tenant.clone(), s.installation.clone(), s.feed.clone()))
            .collect();
        let running = self.store().running_feeds(&feeds).await?;
        let mut plans = Vec::with_capacity(due.len());
        let mut events = Vec::with_capacity(due.len());
        for (schedule, key) in due.iter().zip(&feeds) {
            let mut plan_events = Vec::new();
            let busy = running.contains(key);
            plans.push(
                self.plan_schedule(schedule, busy, now, &mut plan_events)
                    .await?,
            );
            events.push(plan_events);
        }
        let applied = self.store().apply_schedule_plans(plans).await?;
        for (applied, events) in applied.into_iter().zip(events) {
            if applied {
                events.into_iter().for_each(|e| self.emit(e));
            }
        }
        Ok(due.len() == BATCH)
    }

    fn jitter_for(&self, s: &ScheduleRow, cron: &CronSchedule, fire: DateTime<Utc>) -> i64 {
        let key = format!("{}/{}/{}", s.tenant, s.installation, s.feed);
        jitter(&key, self.options.jitter, cron.period_after(fire)).num_seconds()
    }

    /// The plan waiting for `next` (none: never again).
    fn next_plan(
        &self,
        s: &ScheduleRow,
        cron: &CronSchedule,
        next: Option<DateTime<Utc>>,
    ) -> SchedulePlan {
        let (next_fire_at, due_at) = match next {
            Some(fire) => (Some(ts(fire)), ts(fire) + self.jitter_for(s, cron, fire)),
            None => (None, NEVER),
        };
        SchedulePlan {
            schedule: s.clone(),
            next_fire_at,
            due_at: Some(due_at),
            enqueue: Vec::new(),
        }
    }

    /// What one due schedule owes now, and its next plan (`busy`: its feed
    /// has a run in progress).
    async fn plan_schedule(
        &self,
        s: &ScheduleRow,
        busy: bool,
        now: DateTime<Utc>,
        events: &mut Vec<Event>,
    ) -> Result<SchedulePlan, ServeError> {
        let label = format!("{}/{}", s.tenant, s.installation);
        let cron = match CronSchedule::parse(&s.cron, &s.time_zone) {
            Ok(c) => c,
            Err(e) => {
                events.push(Event::Skipped {
                    installation: label,
                    feed: s.feed.clone(),
                    reason: format!("schedule disabled: {e}"),
                });
                return Ok(SchedulePlan {
                    schedule: s.clone(),
                    next_fire_at: None,
                    due_at: Some(NEVER),
                    enqueue: Vec::new(),
                });
            }
        };
        let Some(next_fire) = s.next_fire_at else {
            return Ok(self.next_plan(s, &cron, cron.next_after(now)));
        };
        let fire = at(next_fire);
        // The schedule runs shifted by its jitter: judge lateness on that clock.
        let shifted_now = now - chrono::Duration::seconds(self.jitter_for(s, &cron, fire));
        let due = plan_due(
            &cron,
            fire,
            shifted_now,
            self.options.catch_up,
            self.options.misfire_grace,
        );
        let mut plan = self.next_plan(s, &cron, due.next_fire);
        if due.runs.is_empty() && due.missed > 0 {
            events.push(Event::Skipped {
                installation: label.clone(),
                feed: s.feed.clone(),
                reason: format!("{} missed fires not run (catch-up: skip)", due.missed),
            });
        }
        if due.runs.is_empty() {
            return Ok(plan);
        }
        // Counted only when it matters: a feed that is running.
        let waiting = match (busy, self.options.overlap) {
            (true, Overlap::Wait) => {
                self.store()
                    .queued_count(
                        &s.tenant,
                        &s.installation,
                        &s.feed,
                        Trigger::Schedule.as_str(),
                    )
                    .await?
            }
            _ => 0,
        };
        let refusal = match (busy, self.options.overlap) {
            (true, Overlap::Skip) => Some("the previous run is still going (overlap: skip)"),
            (true, Overlap::Wait) if waiting > 0 => {
                Some("a run is already waiting for the previous one (overlap: wait)")
            }
            _ => None,
        };
        if let Some(reason) = refusal {
            events.push(Event::Skipped {
                installation: label,
                feed: s.feed.clone(),
                reason: reason.to_string(),
            });
            return Ok(plan);
        }
        for (i, scheduled) in due.runs.iter().enumerate() {
            plan.enqueue.push(QueuedRun {
                id: 0,
                tenant: s.tenant.clone(),
                installation: s.installation.clone(),
                feed: s.feed.clone(),
                trigger: Trigger::Schedule.as_str().to_string(),
                attempt: 1,
                scheduled_at: ts(*scheduled),
                due_at: ts(now),
                created_at: ts(now),
            });
            events.push(Event::Queued {
                installation: label.clone(),
                feed: s.feed.clone(),
                scheduled_at: ts(*scheduled),
                missed: if i == 0 { due.missed } else { 0 },
            });
        }
        Ok(plan)
    }
}
