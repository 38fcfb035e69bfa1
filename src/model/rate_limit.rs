//! Token buckets for a model's `rpm` and `tpm` limits.
//!
//! A bucket refills at `limit / 60` units a second and holds one second's
//! worth (at least one unit), so requests are spread evenly rather than sent
//! in a burst at the start of each minute. A taker debits its units at once
//! and waits until the bucket is no longer in debt: callers are served in the
//! order they asked, and a request larger than the bucket still goes, after a
//! proportionally longer wait. Used only by the network provider.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimit {
    /// Units per second.
    rate: f64,
    capacity: f64,
    /// Level (negative while in debt) as of an instant.
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    pub fn per_minute(limit: u64) -> Self {
        let rate = limit as f64 / 60.0;
        let capacity = rate.max(1.0);
        RateLimit {
            rate,
            capacity,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    /// Debit `units`; how long to wait before going.
    pub fn take(&self, units: f64) -> Duration {
        self.take_at(units, Instant::now())
    }

    /// Credit back (or, negative, debit more) once the true amount is known.
    pub fn adjust(&self, units: f64) {
        let now = Instant::now();
        let mut state = self.state.lock().expect("rate limit lock");
        let level = self.refilled(&state, now);
        *state = ((level + units).min(self.capacity), now.max(state.1));
    }

    fn take_at(&self, units: f64, now: Instant) -> Duration {
        let mut state = self.state.lock().expect("rate limit lock");
        let level = self.refilled(&state, now) - units;
        *state = (level, now.max(state.1));
        if level >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-level / self.rate)
        }
    }

    fn refilled(&self, &(level, at): &(f64, Instant), now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        (level + elapsed * self.rate).min(self.capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn requests_beyond_one_seconds_worth_are_spaced_evenly() {
        let limit = RateLimit::per_minute(600); // 10 a second
        let t0 = Instant::now();
        let waits: Vec<f64> = (0..30).map(|_| secs(limit.take_at(1.0, t0))).collect();
        assert!(waits[..10].iter().all(|w| *w == 0.0), "{waits:?}");
        for (i, w) in waits[10..].iter().enumerate() {
            let expected = (i + 1) as f64 * 0.1;
            assert!(
                (w - expected).abs() < 1e-9,
                "request {}: {w} vs {expected}",
                i + 10
            );
        }
        // Two seconds later the debt of two seconds is paid, and no more.
        assert_eq!(
            limit.take_at(1.0, t0 + Duration::from_secs(2)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn a_slow_limit_still_lets_one_request_through() {
        let limit = RateLimit::per_minute(6); // one every 10 s
        let t0 = Instant::now();
        assert_eq!(limit.take_at(1.0, t0), Duration::ZERO);
        assert!((secs(limit.take_at(1.0, t0)) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn tokens_over_the_bucket_wait_in_proportion_and_refunds_return() {
        let limit = RateLimit::per_minute(6000); // 100 tokens a second
        let t0 = Instant::now();
        assert!((secs(limit.take_at(300.0, t0)) - 2.0).abs() < 1e-9);
        // The request used 50 tokens, not 300: the 250 come back, leaving
        // 50, so 100 more wait half a second.
        limit.adjust(250.0);
        let wait = secs(limit.take_at(100.0, t0));
        assert!((wait - 0.5).abs() < 0.01, "{wait}");
    }
}
