//! Which queued runs start next, worked out without I/O: tenants take turns
//! (round robin from the one after the tenant served last), each within its
//! own limit, all within the global one. Whether a candidate can start (its
//! feed is busy, it must be dropped) is the caller's to say.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::storage::QueuedRun;

/// How many runs may be in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Over all tenants.
    pub max_concurrent: usize,
    /// For one tenant.
    pub max_per_tenant: usize,
}

/// The runs in progress when the pick starts.
#[derive(Debug, Clone, Copy)]
pub struct Load<'a> {
    /// Over all tenants.
    pub total: usize,
    /// Per tenant.
    pub per_tenant: &'a HashMap<String, usize>,
}

/// What becomes of a candidate offered to start (see [`pick`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// It starts: it takes a slot.
    Start,
    /// It cannot start now (its feed is busy): it stays a candidate.
    Wait,
    /// It must not run: it is no longer a candidate.
    Drop,
}

/// The outcome of a [`pick`].
#[derive(Debug, Default)]
pub struct Picked {
    /// The runs to start, in the order they were picked.
    pub started: Vec<QueuedRun>,
    /// The candidates still waiting: not offered (the limits were reached
    /// first) or offered while their feed was busy. Grouped by tenant, in
    /// queue order within each.
    pub waiting: Vec<QueuedRun>,
}

/// A fair pick in progress: it hands out candidates one at a time
/// ([`Picker::next_candidate`]) and is told what became of each ([`Picker::answer`]),
/// so the caller may look each one up (asynchronously) before answering.
/// Tenants take turns from the one after the tenant served last; a tenant's
/// turn goes on past candidates that wait or are dropped until one starts.
/// The candidates are moved, never copied: a refill picks from what the
/// last scan left, often a thousand runs.
#[derive(Debug)]
pub struct Picker {
    /// Each tenant's candidates, in queue order.
    queues: BTreeMap<String, VecDeque<QueuedRun>>,
    /// The tenants in turn order, with how many runs each has in progress
    /// (those of the load and those started by this pick).
    order: Vec<(String, usize)>,
    /// Whose turn it is: an index into `order`.
    turn: usize,
    /// Whether a run started in this round of turns (else the pick is over
    /// once the round ends).
    progress: bool,
    /// Runs in progress over all tenants.
    total: usize,
    limits: Limits,
    picked: Picked,
}

impl Picker {
    /// A pick from `candidates` (in queue order) within `limits`, with
    /// `load` in progress; `after` is the tenant served last.
    pub fn new(
        candidates: Vec<QueuedRun>,
        after: Option<&str>,
        limits: Limits,
        load: Load<'_>,
    ) -> Self {
        let mut queues: BTreeMap<String, VecDeque<QueuedRun>> = BTreeMap::new();
        for q in candidates {
            match queues.get_mut(&q.tenant) {
                Some(queue) => queue.push_back(q),
                None => {
                    queues.insert(q.tenant.clone(), VecDeque::from([q]));
                }
            }
        }
        let mut order: Vec<(String, usize)> = queues
            .keys()
            .map(|t| (t.clone(), load.per_tenant.get(t).copied().unwrap_or(0)))
            .collect();
        if let Some(last) = after {
            let split = order.partition_point(|(t, _)| t.as_str() <= last);
            order.rotate_left(split);
        }
        Self {
            queues,
            order,
            turn: 0,
            progress: false,
            total: load.total,
            limits,
            picked: Picked::default(),
        }
    }

    /// The next candidate to offer, or none once the limits are reached or
    /// no tenant has one left that could start. Each candidate returned
    /// must be [`answered`](Self::answer) before the next call.
    pub fn next_candidate(&mut self) -> Option<QueuedRun> {
        loop {
            if self.total >= self.limits.max_concurrent {
                return None;
            }
            if self.turn == self.order.len() {
                if !self.progress {
                    return None;
                }
                self.progress = false;
                self.turn = 0;
            }
            let (tenant, count) = &self.order[self.turn];
            let candidate = if *count >= self.limits.max_per_tenant {
                None
            } else {
                self.queues.get_mut(tenant).and_then(VecDeque::pop_front)
            };
            match candidate {
                Some(q) => return Some(q),
                None => self.turn += 1,
            }
        }
    }

    /// What became of `q`, the candidate [`Self::next_candidate`] returned last: it
    /// started (the turn passes to the next tenant), waits (it stays a
    /// candidate and the tenant offers its next) or was dropped.
    pub fn answer(&mut self, q: QueuedRun, offer: Offer) {
        match offer {
            Offer::Start => {
                if let Some((_, count)) = self.order.get_mut(self.turn) {
                    *count += 1;
                }
                self.total += 1;
                self.turn += 1;
                self.progress = true;
                self.picked.started.push(q);
            }
            Offer::Wait => self.picked.waiting.push(q),
            Offer::Drop => {}
        }
    }

    /// The outcome: what started, and every candidate still waiting.
    pub fn finish(mut self) -> Picked {
        self.picked
            .waiting
            .extend(self.queues.into_values().flatten());
        self.picked
    }
}

/// Offers `candidates` (in queue order) to `offer` fairly until the limits
/// are reached or none is left; `offer` says what becomes of each (see
/// [`Picker`], which this drives). `after` is the tenant served last.
pub fn pick<E>(
    candidates: Vec<QueuedRun>,
    after: Option<&str>,
    limits: Limits,
    load: Load<'_>,
    mut offer: impl FnMut(&QueuedRun) -> Result<Offer, E>,
) -> Result<Picked, E> {
    let mut picker = Picker::new(candidates, after, limits, load);
    while let Some(q) = picker.next_candidate() {
        let answer = offer(&q)?;
        picker.answer(q, answer);
    }
    Ok(picker.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(spec: &str) -> QueuedRun {
        let (tenant, installation) = spec.split_once('/').unwrap();
        QueuedRun {
            id: 0,
            tenant: tenant.into(),
            installation: installation.into(),
            feed: "f".into(),
            trigger: "schedule".into(),
            attempt: 1,
            scheduled_at: 0,
            due_at: 0,
            created_at: 0,
        }
    }

    /// Picks from `queue` (`tenant/installation`, in queue order) with these
    /// limits, tenants already running and the tenant served last; the
    /// installations in `busy` cannot start. Expects the runs started, in
    /// order.
    fn check(
        queue: &[&str],
        (max_concurrent, max_per_tenant): (usize, usize),
        running: &[(&str, usize)],
        after: Option<&str>,
        busy: &[&str],
        expected: &[&str],
    ) {
        let per_tenant: HashMap<String, usize> =
            running.iter().map(|(t, n)| (t.to_string(), *n)).collect();
        let load = Load {
            total: per_tenant.values().sum(),
            per_tenant: &per_tenant,
        };
        let limits = Limits {
            max_concurrent,
            max_per_tenant,
        };
        let label = |q: &QueuedRun| format!("{}/{}", q.tenant, q.installation);
        let picked = pick(
            queue.iter().map(|s| queued(s)).collect(),
            after,
            limits,
            load,
            |q| {
                if busy.contains(&label(q).as_str()) {
                    return Ok::<_, ()>(Offer::Wait);
                }
                Ok(Offer::Start)
            },
        )
        .unwrap();
        let got: Vec<String> = picked.started.iter().map(label).collect();
        assert_eq!(got, expected, "queue {queue:?}");
        // Nothing is lost: every candidate not started is still waiting.
        let mut all: Vec<String> = got.clone();
        all.extend(picked.waiting.iter().map(label));
        all.sort();
        let mut queued_all: Vec<String> = queue.iter().map(|s| s.to_string()).collect();
        queued_all.sort();
        assert_eq!(all, queued_all, "queue {queue:?}");
    }

    #[test]
    fn a_dropped_candidate_is_gone_and_a_waiting_one_stays() {
        let limits = Limits {
            max_concurrent: 8,
            max_per_tenant: 8,
        };
        let none = HashMap::new();
        let load = Load {
            total: 0,
            per_tenant: &none,
        };
        let picked = pick(
            ["a/drop", "a/wait", "a/go"].map(queued).to_vec(),
            None,
            limits,
            load,
            |q| {
                Ok::<_, ()>(match q.installation.as_str() {
                    "drop" => Offer::Drop,
                    "wait" => Offer::Wait,
                    _ => Offer::Start,
                })
            },
        )
        .unwrap();
        let names = |runs: &[QueuedRun]| -> Vec<String> {
            runs.iter().map(|q| q.installation.clone()).collect()
        };
        assert_eq!(names(&picked.started), ["go"]);
        assert_eq!(names(&picked.waiting), ["wait"]);
    }

    #[test]
    fn tenants_take_turns_within_the_limits() {
        let big_first = ["big/1", "big/2", "big/3", "big/4", "small/1"];
        // Queued last, small still starts in the first round.
        check(&big_first, (2, 1), &[], None, &[], &["big/1", "small/1"]);
        check(
            &big_first,
            (8, 2),
            &[],
            None,
            &[],
            &["big/1", "small/1", "big/2"],
        );
        check(
            &big_first,
            (8, 8),
            &[],
            None,
            &[],
            &["big/1", "small/1", "big/2", "big/3", "big/4"],
        );
        // The turn goes on from the tenant after the one served last.
        check(&big_first, (1, 1), &[], Some("big"), &[], &["small/1"]);
        check(&big_first, (1, 1), &[], Some("small"), &[], &["big/1"]);
        check(&big_first, (1, 1), &[], Some("zzz"), &[], &["big/1"]);
        // Runs in progress count against both limits.
        check(&big_first, (8, 2), &[("big", 2)], None, &[], &["small/1"]);
        check(&big_first, (3, 2), &[("other", 2)], None, &[], &["big/1"]);
        check(&big_first, (2, 2), &[("other", 2)], None, &[], &[]);
        // A candidate that cannot start gives its turn to the tenant's next.
        check(
            &big_first,
            (8, 1),
            &[],
            None,
            &["big/1", "big/2"],
            &["big/3", "small/1"],
        );
        check(&["a/1", "a/2"], (8, 8), &[], None, &["a/1", "a/2"], &[]);
        check(&[], (8, 8), &[], None, &[], &[]);
    }

    #[test]
    fn an_error_from_offer_stops_the_pick() {
        let per_tenant = HashMap::new();
        let load = Load {
            total: 0,
            per_tenant: &per_tenant,
        };
        let limits = Limits {
            max_concurrent: 8,
            max_per_tenant: 8,
        };
        let mut offered = 0;
        let result = pick(
            vec![queued("a/1"), queued("b/1")],
            None,
            limits,
            load,
            |_| {
                offered += 1;
                Err("store down")
            },
        );
        assert_eq!(result.unwrap_err(), "store down");
        assert_eq!(offered, 1);
    }
}
