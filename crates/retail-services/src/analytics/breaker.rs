//! A circuit breaker around a remote dependency (the warehouse): after `threshold` failures in
//! a row it opens and calls fail fast; after `cool_down` one trial call is let through
//! (half-open): success closes it, failure opens it again. [`BreakerWarehouse`] is the breaker
//! as a layer around a warehouse.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use retail_domain::error::{Classify as _, ErrorKind};
use retail_warehouse::{Backend, Params, QueryDef, QueryResult, Warehouse};

/// The breaker's state, as `/ready` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// One trial call is in flight.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

/// A circuit breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cool_down: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// Opens after `threshold` consecutive failures; tries again after `cool_down`.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cool_down,
            inner: Mutex::new(Inner {
                failures: 0,
                opened_at: None,
                trial_in_flight: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("breaker lock is never poisoned")
    }

    /// The state at `now`.
    pub fn state_at(&self, now: Instant) -> CircuitState {
        let inner = self.lock();
        match inner.opened_at {
            None => CircuitState::Closed,
            Some(at) if now.duration_since(at) >= self.cool_down => CircuitState::HalfOpen,
            Some(_) => CircuitState::Open,
        }
    }

    /// The state now.
    pub fn state(&self) -> CircuitState {
        self.state_at(Instant::now())
    }

    /// Whether a call may go ahead at `now`; `Err(seconds)` to wait when open.
    pub fn admit_at(&self, now: Instant) -> Result<(), u64> {
        let mut inner = self.lock();
        let Some(opened_at) = inner.opened_at else {
            return Ok(());
        };
        let elapsed = now.duration_since(opened_at);
        if elapsed < self.cool_down {
            return Err((self.cool_down - elapsed).as_secs().max(1));
        }
        if inner.trial_in_flight {
            return Err(1);
        }
        inner.trial_in_flight = true;
        Ok(())
    }

    /// Whether a call may go ahead now.
    pub fn admit(&self) -> Result<(), u64> {
        self.admit_at(Instant::now())
    }

    /// Records the outcome of an admitted call made at `now`.
    pub fn record_at(&self, success: bool, now: Instant) {
        let mut inner = self.lock();
        inner.trial_in_flight = false;
        if success {
            inner.failures = 0;
            inner.opened_at = None;
        } else {
            inner.failures += 1;
            if inner.failures >= self.threshold || inner.opened_at.is_some() {
                inner.opened_at = Some(now);
            }
        }
    }

    /// Records the outcome of an admitted call.
    pub fn record(&self, success: bool) {
        self.record_at(success, Instant::now());
    }
}

/// A warehouse behind a circuit breaker: while the circuit is open, calls fail at once with
/// the time to wait. Failures of the dependency count (unreachable, internal errors); bad
/// input does not.
#[derive(Debug)]
pub struct BreakerWarehouse {
    inner: Arc<dyn Warehouse>,
    breaker: Arc<CircuitBreaker>,
}

impl BreakerWarehouse {
    /// `inner` behind `breaker`.
    pub fn new(inner: Arc<dyn Warehouse>, breaker: Arc<CircuitBreaker>) -> Self {
        Self { inner, breaker }
    }

    async fn guarded<T>(
        &self,
        call: impl Future<Output = retail_warehouse::Result<T>>,
    ) -> retail_warehouse::Result<T> {
        if let Err(retry_after) = self.breaker.admit() {
            return Err(retail_warehouse::Error::CircuitOpen { retry_after });
        }
        let result = call.await;
        let failed = result
            .as_ref()
            .err()
            .is_some_and(|e| matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal));
        self.breaker.record(!failed);
        result
    }
}

#[async_trait]
impl Warehouse for BreakerWarehouse {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    async fn query(
        &self,
        query: &QueryDef,
        params: &Params,
    ) -> retail_warehouse::Result<QueryResult> {
        self.guarded(self.inner.query(query, params)).await
    }

    async fn data_version(&self) -> retail_warehouse::Result<String> {
        self.guarded(self.inner.data_version()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_half_opens_after_the_cool_down() {
        let breaker = CircuitBreaker::new(5, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..4 {
            assert!(breaker.admit_at(start).is_ok());
            breaker.record_at(false, start);
        }
        breaker.record_at(true, start);
        assert_eq!(
            breaker.state_at(start),
            CircuitState::Closed,
            "a success resets the count"
        );
        for _ in 0..5 {
            assert!(breaker.admit_at(start).is_ok());
            breaker.record_at(false, start);
        }
        assert_eq!(breaker.state_at(start), CircuitState::Open);
        assert_eq!(breaker.admit_at(start + Duration::from_secs(10)), Err(50));
        let later = start + Duration::from_secs(60);
        assert_eq!(breaker.state_at(later), CircuitState::HalfOpen);
        assert!(breaker.admit_at(later).is_ok(), "one trial call");
        assert!(breaker.admit_at(later).is_err(), "only one");
        breaker.record_at(false, later);
        assert_eq!(
            breaker.state_at(later),
            CircuitState::Open,
            "a failed trial reopens"
        );
        let much_later = later + Duration::from_secs(60);
        assert!(breaker.admit_at(much_later).is_ok());
        breaker.record_at(true, much_later);
        assert_eq!(breaker.state_at(much_later), CircuitState::Closed);
    }
}
