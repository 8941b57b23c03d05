//! In-process rate limiting per caller and endpoint: a generic cell rate algorithm (a sliding
//! window with a burst allowance) over a map of keys.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use retail_domain::ports::RateDecision as Decision;

/// Limits keys to `per_minute` requests a minute, with `burst` extra at once.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    per_minute: u32,
    burst: u32,
    state: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// A limiter of `per_minute` a minute with a burst of `burst`.
    pub(crate) fn new(per_minute: u32, burst: u32) -> Self {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        Self {
            interval,
            tolerance: interval * burst,
            per_minute,
            burst,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// The steady limit, for the `X-RateLimit-Limit` header.
    pub(crate) fn limit(&self) -> u32 {
        self.per_minute
    }

    /// Counts a request of `key` at `now`.
    pub(crate) fn check_at(&self, key: &str, now: Instant) -> Decision {
        let mut state = self
            .state
            .lock()
            .expect("rate limiter lock is never poisoned");
        if state.len() > 100_000 {
            // Forget keys whose allowance has fully recovered.
            state.retain(|_, tat| *tat > now);
        }
        let tat = state.get(key).copied().unwrap_or(now).max(now);
        let allow_at = tat.checked_sub(self.tolerance).unwrap_or(now);
        if now < allow_at {
            let wait = allow_at - now;
            return Decision::Deny {
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            };
        }
        let next = tat + self.interval;
        state.insert(key.to_owned(), next);
        let used = (next - now).as_nanos() / self.interval.as_nanos().max(1);
        Decision::Allow {
            remaining: (u128::from(self.burst) + 1).saturating_sub(used) as u32,
        }
    }

    /// Counts a request of `key` now.
    pub(crate) fn check(&self, key: &str) -> Decision {
        self.check_at(key, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_steady_rate() {
        let limiter = RateLimiter::new(60, 2);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(matches!(
                limiter.check_at("u", start),
                Decision::Allow { .. }
            ));
        }
        assert_eq!(
            limiter.check_at("u", start),
            Decision::Deny { retry_after: 1 }
        );
        // Other keys are not affected.
        assert!(matches!(
            limiter.check_at("v", start),
            Decision::Allow { .. }
        ));
        // One second later one more fits.
        let later = start + Duration::from_secs(1);
        assert!(matches!(
            limiter.check_at("u", later),
            Decision::Allow { .. }
        ));
        assert!(matches!(
            limiter.check_at("u", later),
            Decision::Deny { .. }
        ));
    }
}
