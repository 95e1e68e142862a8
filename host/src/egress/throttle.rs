//! Per-destination rate limits of one installation: at most N requests per
//! second and M requests in flight to each host. Excess requests wait their
//! turn; none is dropped. (Seed 003: an initial export must not overload the
//! shop's server.)
//!
//! A grant covers a domain's subdomains, so a guest can name any number of
//! hosts: the state of a host is kept only while it matters (a request in
//! flight, or a start slot reserved ahead), so the map stays bounded by the
//! requests in flight, not by the names ever used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// An installation's limits per destination host. `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
pub struct RateLimits {
    /// Requests per second to any one host.
    pub requests_per_second: Option<f64>,
    /// Requests in flight to any one host.
    pub max_concurrent: Option<u32>,
}

#[derive(Debug)]
struct HostState {
    /// The earliest time the next request may start.
    next_start: Instant,
    in_flight: Arc<Semaphore>,
}

/// Hosts tracked before idle ones are forgotten.
const PRUNE_ABOVE: usize = 256;

impl HostState {
    /// Whether forgetting this host changes nothing: no start reserved ahead
    /// and no request holding (or waiting for) a slot.
    fn is_idle(&self, now: Instant) -> bool {
        self.next_start <= now && Arc::strong_count(&self.in_flight) == 1
    }
}

/// The throttle of one installation, shared by all its runs.
#[derive(Debug)]
pub struct Throttle {
    limits: RateLimits,
    hosts: Mutex<HashMap<String, HostState>>,
}

/// Held while a request is in flight; releases its concurrency slot on drop.
pub struct Turn {
    _permit: Option<OwnedSemaphorePermit>,
    /// Keeps the host's state in use (see [`HostState::is_idle`]).
    _host: Arc<Semaphore>,
}

impl Throttle {
    /// A throttle enforcing `limits`.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Waits until a request to `host` may start, and returns the turn to
    /// hold while it is in flight.
    pub async fn acquire(&self, host: &str) -> Turn {
        let interval = self
            .limits
            .requests_per_second
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r));
        let (start, semaphore) = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            if hosts.len() >= PRUNE_ABOVE {
                let now = Instant::now();
                hosts.retain(|_, state| !state.is_idle(now));
            }
            let state = hosts.entry(host.to_string()).or_insert_with(|| HostState {
                next_start: Instant::now(),
                in_flight: Arc::new(Semaphore::new(
                    self.limits
                        .max_concurrent
                        .map_or(Semaphore::MAX_PERMITS, |m| m.max(1) as usize),
                )),
            });
            // Reserve the next start slot now, so waiting requests keep their order.
            let start = state.next_start.max(Instant::now());
            if let Some(interval) = interval {
                state.next_start = start + interval;
            }
            (start, state.in_flight.clone())
        };
        // A request whose turn has come goes at once: tokio's timer wheel has
        // millisecond ticks, so even a sleep until now would cost about a
        // millisecond per request.
        if start > Instant::now() {
            tokio::time::sleep_until(start).await;
        }
        let permit = match self.limits.max_concurrent {
            Some(_) => semaphore.clone().acquire_owned().await.ok(),
            None => None,
        };
        Turn {
            _permit: permit,
            _host: semaphore,
        }
    }

    /// How many hosts it keeps state for.
    pub fn tracked_hosts(&self) -> usize {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_to_one_host_and_not_across_hosts() {
        let t = Throttle::new(RateLimits {
            requests_per_second: Some(10.0),
            max_concurrent: None,
        });
        let begin = Instant::now();
        for _ in 0..5 {
            t.acquire("shop.example").await;
        }
        assert_eq!(
            begin.elapsed(),
            Duration::from_millis(400),
            "5 requests at 10/s"
        );
        let other = Instant::now();
        t.acquire("other.example").await;
        assert_eq!(
            other.elapsed(),
            Duration::ZERO,
            "another host has its own budget"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn forgets_idle_hosts_but_not_busy_or_spaced_ones() {
        let t = Throttle::new(RateLimits {
            requests_per_second: Some(1.0),
            max_concurrent: Some(1),
        });
        let busy = t.acquire("busy.shop.example").await;
        let spaced = t.acquire("spaced.shop.example").await;
        drop(spaced);
        for i in 0..5000 {
            drop(t.acquire(&format!("h{i}.shop.example")).await);
            // Past every reserved start: those hosts are idle again.
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert!(
            t.tracked_hosts() <= PRUNE_ABOVE,
            "{} hosts tracked",
            t.tracked_hosts()
        );
        // The busy host's slot is still held: a second request waits.
        let waiter = tokio::time::timeout(Duration::from_secs(5), t.acquire("busy.shop.example"));
        assert!(waiter.await.is_err(), "the busy host's state was kept");
        drop(busy);
        t.acquire("busy.shop.example").await;
    }

    #[tokio::test]
    async fn a_request_whose_turn_has_come_does_not_wait_for_the_timer() {
        use std::future::Future;
        let t = Throttle::new(RateLimits::default());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for _ in 0..3 {
            let mut turn = std::pin::pin!(t.acquire("shop.example"));
            assert!(
                turn.as_mut().poll(&mut cx).is_ready(),
                "no limits: the turn is given on the first poll, not on the next timer tick"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn caps_requests_in_flight_and_waits_instead_of_dropping() {
        let t = Arc::new(Throttle::new(RateLimits {
            requests_per_second: None,
            max_concurrent: Some(2),
        }));
        let first = t.acquire("h").await;
        let _second = t.acquire("h").await;
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move {
                t.acquire("h").await;
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !waiter.is_finished(),
            "a third request waits while two are in flight"
        );
        drop(first);
        waiter.await.unwrap();
    }
}
