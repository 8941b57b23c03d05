//! Operations: readiness of each dependency and the metrics, both cheap enough to be asked
//! every second by any number of probes and scrapers: readiness is checked at most once per
//! [`READY_TTL`] (concurrent probes share one check), and the tables' row counts and gold's
//! business figures are refreshed in the background at most once per [`LAYER_COUNTS_EVERY`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use retail_lake::Lake;
use retail_lake::schema::{self as tables};
use retail_metadata::MetadataStore;
use retail_warehouse::Warehouse;

use tracing::warn;

use crate::analytics::{CircuitBreaker, CircuitState};

/// How long one readiness check answers every probe.
pub const READY_TTL: Duration = Duration::from_secs(1);

/// How often the tables' row counts (read from the Delta logs) and gold's business figures
/// are refreshed for `/metrics`.
pub const LAYER_COUNTS_EVERY: Duration = Duration::from_secs(15);

/// Readiness of each dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Whether every dependency answers.
    pub ready: bool,
    /// Per dependency (`lake`, `warehouse`, `metadata`, and `streams` when stream consumers
    /// run in the process: their brokers): `ok`, or a code saying what is wrong
    /// (`unavailable`, `not_found`, `internal`, ... for a failed check; `circuit_open` or
    /// `trial_in_flight` for the warehouse's breaker). The failure itself is logged, never
    /// answered.
    pub checks: BTreeMap<&'static str, &'static str>,
}

/// Whether this process' stream consumers reach their brokers, for `/ready` and `/metrics`.
#[derive(Debug, Default)]
pub struct StreamHealth {
    streams: std::sync::Mutex<BTreeMap<String, bool>>,
}

impl StreamHealth {
    /// Notes whether `stream`'s consumer reaches its broker.
    pub fn set(&self, stream: &str, connected: bool) {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(stream.to_owned(), connected);
        retail_telemetry::metrics::set_stream_connected(stream, connected);
    }

    /// `None` when no stream runs here; `ok` when every consumer reaches its broker,
    /// `unavailable` otherwise.
    pub fn code(&self) -> Option<&'static str> {
        let streams = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if streams.is_empty() {
            None
        } else if streams.values().all(|connected| *connected) {
            Some("ok")
        } else {
            Some("unavailable")
        }
    }
}

/// Renders the metrics in the Prometheus text format.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// What operators ask.
#[async_trait]
pub trait OperationsService: Send + Sync {
    /// Whether the lake, the warehouse and the metadata store answer.
    async fn readiness(&self) -> Readiness;

    /// Every metric, with the layers' row counts refreshed, in the Prometheus text format.
    async fn metrics(&self) -> String;
}

/// The operations service.
pub struct Operations {
    lake: Lake,
    warehouse: Arc<dyn Warehouse>,
    breaker: Arc<CircuitBreaker>,
    store: Arc<dyn MetadataStore>,
    render: MetricsRenderer,
    streams: Arc<StreamHealth>,
    ready: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
    counts_at: std::sync::Mutex<Option<Instant>>,
    counting: Arc<AtomicBool>,
    /// The warehouse data version the business figures were computed at.
    figures_at: Arc<std::sync::Mutex<Option<String>>>,
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operations").finish_non_exhaustive()
    }
}

impl Operations {
    /// Checks `lake`, `warehouse` (through `breaker`'s state), `store` and the brokers of the
    /// stream consumers `streams` hears from; renders metrics with `render`.
    pub fn new(
        lake: Lake,
        warehouse: Arc<dyn Warehouse>,
        breaker: Arc<CircuitBreaker>,
        store: Arc<dyn MetadataStore>,
        render: MetricsRenderer,
        streams: Arc<StreamHealth>,
    ) -> Self {
        Self {
            lake,
            warehouse,
            breaker,
            store,
            render,
            streams,
            ready: tokio::sync::Mutex::new(None),
            counts_at: std::sync::Mutex::new(None),
            counting: Arc::new(AtomicBool::new(false)),
            figures_at: Arc::default(),
        }
    }

    async fn check(&self) -> Readiness {
        let mut checks = BTreeMap::new();
        checks.insert(
            "lake",
            code(
                "lake",
                self.lake.latest_version(&tables::GOLD_FACT_SALES).await,
            ),
        );
        let warehouse = match self.breaker.state() {
            CircuitState::Open => "circuit_open",
            CircuitState::Trial => "trial_in_flight",
            // Closed, or half-open: then this call is the trial that may close it.
            CircuitState::Closed | CircuitState::HalfOpen => {
                code("warehouse", self.warehouse.data_version().await)
            }
        };
        checks.insert("warehouse", warehouse);
        checks.insert("metadata", code("metadata", self.store.ping().await));
        if let Some(streams) = self.streams.code() {
            checks.insert("streams", streams);
        }
        Readiness {
            ready: checks.values().all(|v| *v == "ok"),
            checks,
        }
    }
}

/// `ok`, or the failure's code (the failure is logged).
fn code<T, E>(dependency: &str, result: Result<T, E>) -> &'static str
where
    E: retail_domain::error::Classify + std::fmt::Display,
{
    match result {
        Ok(_) => "ok",
        Err(error) => {
            warn!(dependency, %error, "readiness check failed");
            error.kind().as_str()
        }
    }
}

/// Refreshes the gauges read from the lake and the warehouse: every table's rows (from the
/// Delta logs), and gold's business figures (the catalogue's `sales_summary` over all of gold)
/// when the warehouse's data version moved since they were computed.
async fn refresh(
    lake: &Lake,
    warehouse: &dyn Warehouse,
    figures_at: &std::sync::Mutex<Option<String>>,
) {
    for table in tables::ALL_TABLES {
        if let Ok(rows) = lake.count_rows(&table).await {
            retail_telemetry::metrics::set_table_rows(table.name, rows);
        }
    }
    let Ok(version) = warehouse.data_version().await else {
        return;
    };
    let seen = |figures_at: &std::sync::Mutex<Option<String>>| {
        figures_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    };
    if seen(figures_at).as_deref() == Some(version.as_str()) {
        return;
    }
    let figures = async {
        let query = retail_warehouse::Catalogue::get("sales_summary")?;
        let params = retail_warehouse::Params::parse(query, [])?;
        warehouse.query(query, &params).await
    };
    match figures.await {
        Ok(result) => {
            let number = |column: &str| match result.get(0, column) {
                Some(retail_warehouse::Cell::Decimal(value)) => {
                    value.to_string().parse().unwrap_or(0.0)
                }
                Some(retail_warehouse::Cell::Int(value)) => *value as f64,
                Some(retail_warehouse::Cell::Float(value)) => *value,
                _ => 0.0,
            };
            retail_telemetry::metrics::set_gold_figures(
                number("net_revenue"),
                number("gross_revenue"),
                number("returns_amount"),
                number("orders"),
                number("customers"),
            );
            *figures_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(version);
        }
        Err(error) => tracing::debug!(%error, "gold's business figures not refreshed"),
    }
}

#[async_trait]
impl OperationsService for Operations {
    async fn readiness(&self) -> Readiness {
        let mut cached = self.ready.lock().await;
        if let Some((at, readiness)) = cached.as_ref()
            && at.elapsed() < READY_TTL
        {
            return readiness.clone();
        }
        let readiness = self.check().await;
        *cached = Some((Instant::now(), readiness.clone()));
        readiness
    }

    async fn metrics(&self) -> String {
        let last = *self
            .counts_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match last {
            // The first scrape waits for the counts, so they are never missing.
            None => {
                refresh(&self.lake, self.warehouse.as_ref(), &self.figures_at).await;
                *self
                    .counts_at
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
            }
            Some(at) if at.elapsed() >= LAYER_COUNTS_EVERY => {
                if !self.counting.swap(true, Ordering::AcqRel) {
                    *self
                        .counts_at
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                    let (lake, counting) = (self.lake.clone(), Arc::clone(&self.counting));
                    let (warehouse, figures_at) =
                        (Arc::clone(&self.warehouse), Arc::clone(&self.figures_at));
                    tokio::spawn(async move {
                        refresh(&lake, warehouse.as_ref(), &figures_at).await;
                        counting.store(false, Ordering::Release);
                    });
                }
            }
            Some(_) => {}
        }
        retail_telemetry::metrics::record_process();
        retail_telemetry::metrics::set_breaker_state(self.breaker.state().gauge());
        (self.render)()
    }
}
