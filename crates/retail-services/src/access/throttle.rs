//! Throttles in front of the password check: per client address and per user name (each a
//! steady rate with a burst), a growing wait after consecutive failures for one account, and
//! a cap on argon2 hashes running at once. All of them are checked before any password is
//! hashed, so a flood of logins costs a map lookup each, not a core and 19 MiB.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use retail_domain::ports::RateDecision;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::ratelimit::RateLimiter;
use crate::error::{Error, Result};

/// Consecutive failures for one account before each further attempt must wait.
pub(crate) const FREE_FAILURES: u32 = 5;

/// The longest wait a run of failures imposes on one account.
pub(crate) const MAX_FAILURE_WAIT: Duration = Duration::from_secs(300);

/// How long a login waits for a hashing slot before it is told to come back.
const HASHING_QUEUE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The throttles of `/api/v1/auth/...`.
#[derive(Debug)]
pub(crate) struct AuthThrottle {
    addresses: RateLimiter,
    users: RateLimiter,
    failures: Mutex<HashMap<String, Failures>>,
    hashing: Semaphore,
}

impl AuthThrottle {
    /// `per_minute` attempts a minute (with a burst of as many) per client address and per
    /// user name; `hashers` argon2 hashes at once.
    pub(crate) fn new(per_minute: u32, hashers: usize) -> Self {
        Self {
            addresses: RateLimiter::new(per_minute, per_minute),
            users: RateLimiter::new(per_minute, per_minute),
            failures: Mutex::new(HashMap::new()),
            hashing: Semaphore::new(hashers.max(1)),
        }
    }

    /// Counts an attempt from `client`; refused when the address is over its rate.
    pub(crate) fn client_at(&self, client: &str, now: Instant) -> Result<()> {
        match self.addresses.check_at(client, now) {
            RateDecision::Allow { .. } => Ok(()),
            RateDecision::Deny { retry_after } => Err(Error::rate_limited(retry_after)),
        }
    }

    /// Counts a login for `username` from `client`; refused when either is over its rate, or
    /// the account is waiting out its failures.
    pub(crate) fn login_at(&self, client: &str, username: &str, now: Instant) -> Result<()> {
        self.client_at(client, now)?;
        if let RateDecision::Deny { retry_after } = self.users.check_at(username, now) {
            return Err(Error::rate_limited(retry_after));
        }
        let failures = self.lock().get(username).copied();
        if let Some(wait) = failures.and_then(|f| remaining_wait(f, now)) {
            return Err(Error::rate_limited(
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            ));
        }
        Ok(())
    }

    /// Records a login's outcome for `username`.
    pub(crate) fn outcome_at(&self, username: &str, succeeded: bool, now: Instant) {
        let mut failures = self.lock();
        if succeeded {
            failures.remove(username);
            return;
        }
        if failures.len() > 100_000 {
            // Forget accounts whose wait is over and whose last failure is old.
            failures.retain(|_, f| now.duration_since(f.last) < MAX_FAILURE_WAIT);
        }
        let entry = failures.entry(username.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    /// A slot to hash or verify a password in; `503` when none frees up soon.
    pub(crate) async fn hashing_slot(&self) -> Result<SemaphorePermit<'_>> {
        match tokio::time::timeout(HASHING_QUEUE_WAIT, self.hashing.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Error::unavailable(
                "too many logins at once: retry in a moment",
                1,
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// After [`FREE_FAILURES`] failures in a row, the n-th further one makes the account wait
/// 2^(n-1) seconds from it (1, 2, 4, ... up to [`MAX_FAILURE_WAIT`]).
fn remaining_wait(failures: Failures, now: Instant) -> Option<Duration> {
    let beyond = failures.count.checked_sub(FREE_FAILURES)?;
    if beyond == 0 {
        return None;
    }
    let wait = Duration::from_secs(1_u64 << (beyond - 1).min(16)).min(MAX_FAILURE_WAIT);
    wait.checked_sub(now.duration_since(failures.last))
        .filter(|left| !left.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(result: Result<()>) -> Option<u64> {
        result.err().map(|error| {
            assert_eq!(
                retail_domain::error::Classify::kind(&error),
                retail_domain::error::ErrorKind::RateLimited
            );
            error.retry_after().expect("a wait")
        })
    }

    #[test]
    fn failures_for_one_account_make_it_wait_longer_and_a_success_clears_them() {
        let throttle = AuthThrottle::new(1_000, 1);
        let start = Instant::now();
        for attempt in 0..FREE_FAILURES {
            assert_eq!(
                limited(throttle.login_at("a", "alice", start)),
                None,
                "{attempt}"
            );
            throttle.outcome_at("alice", false, start);
        }
        // The sixth failure starts the waits: 1 s, then 2 s, 4 s, ...
        assert_eq!(limited(throttle.login_at("a", "alice", start)), None);
        throttle.outcome_at("alice", false, start);
        assert_eq!(limited(throttle.login_at("a", "alice", start)), Some(1));
        let later = start + Duration::from_secs(1);
        assert_eq!(limited(throttle.login_at("a", "alice", later)), None);
        throttle.outcome_at("alice", false, later);
        assert_eq!(
            limited(throttle.login_at("b", "alice", later)),
            Some(2),
            "any address"
        );
        assert_eq!(
            limited(throttle.login_at("a", "bob", later)),
            None,
            "other accounts"
        );
        let much_later = later + Duration::from_secs(2);
        assert_eq!(limited(throttle.login_at("a", "alice", much_later)), None);
        throttle.outcome_at("alice", true, much_later);
        throttle.outcome_at("alice", false, much_later);
        assert_eq!(
            limited(throttle.login_at("a", "alice", much_later)),
            None,
            "cleared"
        );
    }

    #[test]
    fn the_wait_is_capped() {
        let now = Instant::now();
        let failures = Failures {
            count: 1_000,
            last: now,
        };
        assert_eq!(remaining_wait(failures, now), Some(MAX_FAILURE_WAIT));
    }

    #[test]
    fn one_address_is_limited_whatever_names_it_tries() {
        let throttle = AuthThrottle::new(10, 1);
        let now = Instant::now();
        let refused = (0..60)
            .filter(|n| {
                throttle
                    .login_at("203.0.113.9", &format!("user{n}"), now)
                    .is_err()
            })
            .count();
        // A burst of 10 on top of the one the steady rate allows, then refusals.
        assert_eq!(refused, 60 - 11);
    }

    #[tokio::test]
    async fn hashing_slots_are_capped() {
        let throttle = AuthThrottle::new(10, 1);
        let held = throttle.hashing_slot().await.unwrap();
        assert_eq!(throttle.hashing.available_permits(), 0);
        drop(held);
        assert_eq!(throttle.hashing.available_permits(), 1);
    }
}
