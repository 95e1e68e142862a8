//! The per-installation delivery rate: a token bucket holding up to a
//! minute's worth of deliveries, refilled continuously.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `rate` deliveries a minute, in bursts of up to `rate`.
pub struct RateLimiter {
    rate: u32,
    state: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// A full bucket for `rate` deliveries a minute (at least 1).
    pub fn per_minute(rate: u32) -> Self {
        let rate = rate.max(1);
        Self {
            rate,
            state: Mutex::new(Bucket {
                tokens: f64::from(rate),
                at: Instant::now(),
            }),
        }
    }

    /// Its rate, deliveries a minute.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Takes one delivery's token at `now`; if there is none, how long until
    /// there is.
    pub fn take(&self, now: Instant) -> Result<(), Duration> {
        let mut bucket = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let per_sec = f64::from(self.rate) / 60.0;
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(f64::from(self.rate));
        bucket.at = now.max(bucket.at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_rate_passes_then_one_more_waits_for_its_token() {
        let limiter = RateLimiter::per_minute(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(t0).is_ok());
        }
        let wait = limiter.take(t0).unwrap_err();
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Twenty seconds later one token is back, and only one.
        let later = t0 + Duration::from_secs(20);
        assert!(limiter.take(later).is_ok());
        assert!(limiter.take(later).is_err());
    }
}
