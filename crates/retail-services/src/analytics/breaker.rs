//! A circuit breaker around a remote dependency (the warehouse): after `threshold` failures of
//! the dependency in a row it opens and calls fail fast; after `cool_down` one trial call is let
//! through (half-open): success closes it, failure opens it again. [`BreakerWarehouse`] is the
//! breaker as a layer around a warehouse, with a deadline on every call.
//!
//! Only failures of the dependency count (unreachable, out of connections, timed out), never a
//! caller's bad input. A trial call that never reports (cancelled with its request, or its task
//! panicked) counts as failed, so the breaker cannot stay half-open with a trial nobody ends.

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
    /// The cool-down is over: the next call is the trial.
    HalfOpen,
    /// The trial call is in flight; others fail fast until it ends.
    Trial,
}

impl CircuitState {
    /// The `retail_warehouse_breaker_state` value: 0 closed, 1 half-open or trial, 2 open.
    pub fn gauge(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen | Self::Trial => 1,
            Self::Open => 2,
        }
    }

    /// `closed`, `open`, `half_open`, `trial`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::Trial => "trial",
        }
    }
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

/// An admitted call. Report its outcome with [`Admission::finish`]; dropped without it (the
/// call was cancelled or panicked), a trial counts as failed and an ordinary call as nothing.
#[derive(Debug)]
#[must_use = "report the call's outcome with finish"]
pub struct Admission<'a> {
    breaker: &'a CircuitBreaker,
    trial: bool,
    finished: bool,
}

impl Admission<'_> {
    /// Whether this call is the half-open trial.
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    /// Records the call's outcome at `now`: `dependency_failed` when the dependency failed.
    pub fn finish_at(mut self, dependency_failed: bool, now: Instant) {
        self.finished = true;
        self.breaker.record_at(!dependency_failed, now);
    }

    /// Records the call's outcome now.
    pub fn finish(self, dependency_failed: bool) {
        self.finish_at(dependency_failed, Instant::now());
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if !self.finished && self.trial {
            self.breaker.record_at(false, Instant::now());
        }
    }
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
        // The lock guards plain counters and is never held across a call or a panic point.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state at `now`.
    pub fn state_at(&self, now: Instant) -> CircuitState {
        let inner = self.lock();
        match inner.opened_at {
            None => CircuitState::Closed,
            Some(_) if inner.trial_in_flight => CircuitState::Trial,
            Some(at) if now.duration_since(at) >= self.cool_down => CircuitState::HalfOpen,
            Some(_) => CircuitState::Open,
        }
    }

    /// The state now.
    pub fn state(&self) -> CircuitState {
        self.state_at(Instant::now())
    }

    /// Whether a call may go ahead at `now`; `Err(seconds)` to wait when open or while the
    /// trial is in flight.
    pub fn admit_at(&self, now: Instant) -> Result<Admission<'_>, u64> {
        let mut inner = self.lock();
        let Some(opened_at) = inner.opened_at else {
            return Ok(Admission {
                breaker: self,
                trial: false,
                finished: false,
            });
        };
        let elapsed = now.duration_since(opened_at);
        if elapsed < self.cool_down {
            return Err((self.cool_down - elapsed).as_secs().max(1));
        }
        if inner.trial_in_flight {
            return Err(1);
        }
        inner.trial_in_flight = true;
        Ok(Admission {
            breaker: self,
            trial: true,
            finished: false,
        })
    }

    /// Whether a call may go ahead now.
    pub fn admit(&self) -> Result<Admission<'_>, u64> {
        self.admit_at(Instant::now())
    }

    fn record_at(&self, success: bool, now: Instant) {
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
}

/// A warehouse behind a circuit breaker: while the circuit is open, calls fail at once with
/// the time to wait; every call has `deadline` (shorter than the request timeout, so a slow
/// warehouse is a counted failure and a clear `503`, not a request cut off by the server).
#[derive(Debug)]
pub struct BreakerWarehouse {
    inner: Arc<dyn Warehouse>,
    breaker: Arc<CircuitBreaker>,
    deadline: Duration,
}

impl BreakerWarehouse {
    /// `inner` behind `breaker`, each call bounded by `deadline`.
    pub fn new(
        inner: Arc<dyn Warehouse>,
        breaker: Arc<CircuitBreaker>,
        deadline: Duration,
    ) -> Self {
        Self {
            inner,
            breaker,
            deadline,
        }
    }

    async fn guarded<T>(
        &self,
        call: impl Future<Output = retail_warehouse::Result<T>>,
    ) -> retail_warehouse::Result<T> {
        let admission = self
            .breaker
            .admit()
            .map_err(|retry_after| retail_warehouse::Error::CircuitOpen { retry_after })?;
        let result = match tokio::time::timeout(self.deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(retail_warehouse::Error::Timeout {
                millis: u64::try_from(self.deadline.as_millis()).unwrap_or(u64::MAX),
            }),
        };
        let dependency_failed = result
            .as_ref()
            .err()
            .is_some_and(|e| e.kind() == ErrorKind::Unavailable);
        admission.finish(dependency_failed);
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
        let started = std::time::Instant::now();
        let result = self.guarded(self.inner.query(query, params)).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(retail_warehouse::Error::CircuitOpen { .. }) => "circuit_open",
            Err(retail_warehouse::Error::Timeout { .. }) => "timeout",
            Err(_) => "error",
        };
        retail_telemetry::metrics::record_warehouse_query(
            query.name,
            self.inner.backend().as_str(),
            outcome,
            started.elapsed().as_secs_f64(),
        );
        retail_telemetry::metrics::set_breaker_state(self.breaker.state().gauge());
        result
    }

    async fn stream(
        &self,
        query: &QueryDef,
        params: &Params,
    ) -> retail_warehouse::Result<retail_warehouse::ResultStream> {
        // The breaker judges the start of the stream; its deadline is the caller's.
        self.guarded(self.inner.stream(query, params)).await
    }

    async fn data_version(&self) -> retail_warehouse::Result<String> {
        self.guarded(self.inner.data_version()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(breaker: &CircuitBreaker, at: Instant) {
        breaker.admit_at(at).unwrap().finish_at(true, at);
    }

    #[test]
    fn opens_after_consecutive_failures_and_half_opens_after_the_cool_down() {
        let breaker = CircuitBreaker::new(5, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..4 {
            fail(&breaker, start);
        }
        breaker.admit_at(start).unwrap().finish_at(false, start);
        assert_eq!(
            breaker.state_at(start),
            CircuitState::Closed,
            "a success resets the count"
        );
        for _ in 0..5 {
            fail(&breaker, start);
        }
        assert_eq!(breaker.state_at(start), CircuitState::Open);
        assert_eq!(
            breaker
                .admit_at(start + Duration::from_secs(10))
                .unwrap_err(),
            50
        );
        let later = start + Duration::from_secs(60);
        assert_eq!(breaker.state_at(later), CircuitState::HalfOpen);
        let trial = breaker.admit_at(later).unwrap();
        assert!(trial.is_trial());
        assert_eq!(breaker.state_at(later), CircuitState::Trial);
        assert!(breaker.admit_at(later).is_err(), "only one trial");
        trial.finish_at(true, later);
        assert_eq!(
            breaker.state_at(later),
            CircuitState::Open,
            "a failed trial reopens"
        );
        let much_later = later + Duration::from_secs(60);
        breaker
            .admit_at(much_later)
            .unwrap()
            .finish_at(false, much_later);
        assert_eq!(breaker.state_at(much_later), CircuitState::Closed);
    }

    #[test]
    fn a_trial_that_never_reports_counts_as_failed_and_an_ordinary_call_as_nothing() {
        let breaker = CircuitBreaker::new(1, Duration::ZERO);
        // An ordinary call cancelled: no failure is counted.
        drop(breaker.admit().unwrap());
        assert_eq!(breaker.state(), CircuitState::Closed);
        breaker.admit().unwrap().finish(true);
        // Half-open at once (no cool-down); the trial is dropped, as a cancelled request's is.
        let trial = breaker.admit().unwrap();
        assert!(trial.is_trial());
        drop(trial);
        assert_ne!(breaker.state(), CircuitState::Trial, "not stuck half-open");
        let trial = breaker.admit().unwrap();
        assert!(trial.is_trial(), "still open: the dropped trial failed");
        // A trial whose task panics is dropped while unwinding: the same.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _trial = trial;
            panic!("the trial's task panicked");
        }));
        assert!(panicked.is_err());
        assert!(breaker.admit().unwrap().is_trial());
    }

    #[derive(Debug)]
    struct Slow;

    #[async_trait]
    impl Warehouse for Slow {
        fn backend(&self) -> Backend {
            Backend::Embedded
        }

        async fn query(
            &self,
            query: &QueryDef,
            _params: &Params,
        ) -> retail_warehouse::Result<QueryResult> {
            if query.name == "sales_summary" {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Err(retail_warehouse::Error::BadParameter {
                query: query.name,
                message: "a bad value".to_owned(),
            })
        }

        async fn data_version(&self) -> retail_warehouse::Result<String> {
            Ok("1".to_owned())
        }
    }

    #[tokio::test]
    async fn a_slow_call_times_out_as_a_dependency_failure_and_bad_input_never_counts() {
        let breaker = Arc::new(CircuitBreaker::new(2, Duration::from_secs(60)));
        let warehouse = BreakerWarehouse::new(
            Arc::new(Slow),
            Arc::clone(&breaker),
            Duration::from_millis(20),
        );
        let bad = retail_warehouse::Catalogue::get("top_products").unwrap();
        let params = Params::parse(bad, std::iter::empty()).unwrap();
        for _ in 0..5 {
            let error = warehouse.query(bad, &params).await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidInput);
        }
        assert_eq!(
            breaker.state(),
            CircuitState::Closed,
            "bad input never counts"
        );
        let slow = retail_warehouse::Catalogue::get("sales_summary").unwrap();
        let params = Params::parse(slow, std::iter::empty()).unwrap();
        for _ in 0..2 {
            let error = warehouse.query(slow, &params).await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
            assert!(error.to_string().contains("20 ms"), "{error}");
        }
        assert_eq!(breaker.state(), CircuitState::Open);
    }
}
