//! The warehouses as followers of gold: the asset runner catches them up after every gold
//! build, and the GDPR erasure asks them to forget customers.

use std::sync::Arc;

use retail_domain::ports::{BoxFuture, CatchUp, Follower, GoldVersion, PortError};
use retail_lake::Lake;

use crate::{EmbeddedWarehouse, PostgresWarehouse};

/// The PostgreSQL warehouse, loaded from gold incrementally (see [`PostgresWarehouse::load`]).
#[derive(Debug, Clone)]
pub struct PostgresFollower {
    warehouse: Arc<PostgresWarehouse>,
    lake: Lake,
}

impl PostgresFollower {
    /// Follows `lake`'s gold into `warehouse`.
    pub fn new(warehouse: Arc<PostgresWarehouse>, lake: Lake) -> Self {
        Self { warehouse, lake }
    }
}

impl Follower for PostgresFollower {
    fn key(&self) -> &'static str {
        "warehouse/postgres"
    }

    fn description(&self) -> &'static str {
        "the PostgreSQL warehouse: partitioned star schema, summary tables and materialized \
         views, loaded from gold by changed slices"
    }

    fn caught_up(&self) -> BoxFuture<'_, Result<Option<GoldVersion>, PortError>> {
        Box::pin(async move {
            self.warehouse
                .ensure_migrated()
                .await
                .map_err(PortError::new)?;
            self.warehouse.gold_version().await.map_err(PortError::new)
        })
    }

    fn catch_up(&self, _gold: GoldVersion) -> BoxFuture<'_, Result<CatchUp, PortError>> {
        Box::pin(async move {
            self.warehouse
                .ensure_migrated()
                .await
                .map_err(PortError::new)?;
            let report = self
                .warehouse
                .load(&self.lake)
                .await
                .map_err(PortError::new)?;
            Ok(CatchUp {
                rows: report.rows_copied(),
                detail_json: serde_json::to_string(&report).ok(),
            })
        })
    }

    fn forget(&self, customers: &[String]) -> BoxFuture<'_, Result<u64, PortError>> {
        let customers = customers.to_vec();
        Box::pin(async move {
            self.warehouse
                .ensure_migrated()
                .await
                .map_err(PortError::new)?;
            self.warehouse
                .forget_customers(&customers)
                .await
                .map_err(PortError::new)
        })
    }
}

/// The embedded warehouse's in-memory snapshot of gold, (re)loaded as soon as gold changes: the
/// API never serves the previous gold after a run of its own, and the first query after a run
/// does not pay for the load.
#[derive(Debug, Clone)]
pub struct EmbeddedFollower {
    warehouse: Arc<EmbeddedWarehouse>,
}

impl EmbeddedFollower {
    /// Follows gold into `warehouse`'s snapshot.
    pub fn new(warehouse: Arc<EmbeddedWarehouse>) -> Self {
        Self { warehouse }
    }
}

impl Follower for EmbeddedFollower {
    fn key(&self) -> &'static str {
        "warehouse/embedded"
    }

    fn description(&self) -> &'static str {
        "the embedded warehouse's in-memory snapshot of gold (DataFusion)"
    }

    fn caught_up(&self) -> BoxFuture<'_, Result<Option<GoldVersion>, PortError>> {
        Box::pin(async move { Ok(self.warehouse.gold_version().await) })
    }

    fn catch_up(&self, _gold: GoldVersion) -> BoxFuture<'_, Result<CatchUp, PortError>> {
        Box::pin(async move {
            let loaded = self.warehouse.is_loaded().await;
            self.warehouse.refresh().await.map_err(PortError::new)?;
            let action = if loaded { "reloaded" } else { "loaded" };
            Ok(CatchUp {
                rows: 0,
                detail_json: Some(format!(r#"{{"snapshot":"{action}"}}"#)),
            })
        })
    }

    fn forget(&self, _customers: &[String]) -> BoxFuture<'_, Result<u64, PortError>> {
        Box::pin(async move {
            // The snapshot is a copy of gold: dropping it forgets whatever gold no longer holds.
            self.warehouse.forget().await;
            Ok(0)
        })
    }
}
