//! Operations: readiness of each dependency and the metrics.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use retail_lake::Lake;
use retail_lake::schema::{self as tables};
use retail_metadata::MetadataStore;
use retail_warehouse::Warehouse;

use crate::analytics::{CircuitBreaker, CircuitState};

/// Readiness of each dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Whether every dependency answers.
    pub ready: bool,
    /// `ok` or what failed, per dependency: `lake`, `warehouse`, `metadata`.
    pub checks: BTreeMap<&'static str, String>,
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
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operations").finish_non_exhaustive()
    }
}

impl Operations {
    /// Checks `lake`, `warehouse` (through `breaker`'s state) and `store`; renders metrics
    /// with `render`.
    pub fn new(
        lake: Lake,
        warehouse: Arc<dyn Warehouse>,
        breaker: Arc<CircuitBreaker>,
        store: Arc<dyn MetadataStore>,
        render: MetricsRenderer,
    ) -> Self {
        Self {
            lake,
            warehouse,
            breaker,
            store,
            render,
        }
    }
}

fn outcome<E: std::fmt::Display>(result: Result<(), E>) -> String {
    result
        .err()
        .map_or_else(|| "ok".to_owned(), |e| e.to_string())
}

#[async_trait]
impl OperationsService for Operations {
    async fn readiness(&self) -> Readiness {
        let mut checks = BTreeMap::new();
        checks.insert(
            "lake",
            outcome(
                self.lake
                    .latest_version(&tables::GOLD_FACT_SALES)
                    .await
                    .map(|_| ()),
            ),
        );
        let warehouse = if self.breaker.state() == CircuitState::Open {
            "circuit open after repeated failures".to_owned()
        } else {
            outcome(self.warehouse.data_version().await.map(|_| ()))
        };
        checks.insert("warehouse", warehouse);
        checks.insert("metadata", outcome(self.store.ping().await));
        Readiness {
            ready: checks.values().all(|v| v == "ok"),
            checks,
        }
    }

    async fn metrics(&self) -> String {
        for (table, layer) in [
            (tables::BRONZE_TRANSACTIONS, "bronze"),
            (tables::SILVER_TRANSACTIONS, "silver"),
            (tables::SILVER_QUARANTINE, "quarantine"),
            (tables::SILVER_DUPLICATES, "duplicates"),
            (tables::GOLD_FACT_SALES, "gold_fact_sales"),
        ] {
            if let Ok(rows) = self.lake.count_rows(&table).await {
                retail_telemetry::metrics::set_layer_rows(layer, rows);
            }
        }
        (self.render)()
    }
}
