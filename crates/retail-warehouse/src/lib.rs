//! The warehouse: the gold layer served for analysts, BI tools and the API.
//!
//! Two backends give the same answers to one [`catalogue`] of parameterised queries:
//!
//! - [`EmbeddedWarehouse`] (the default): DataFusion over the gold Delta tables, no server. The
//!   tables and the summary views are held in memory and refreshed when gold gets a new version.
//! - [`PostgresWarehouse`]: a real PostgreSQL schema loaded from gold with binary `COPY`
//!   (`fact_sales` range-partitioned by month, indexes, materialized views), kept current by
//!   incremental loads and versioned [`migrations`].
//!
//! Both implement [`Warehouse`], which is all the API needs.

mod config;
mod embedded;
mod error;
mod fingerprint;
mod postgres;
mod sql;
mod value;

pub mod catalogue;
pub mod migrations;

pub use catalogue::{Catalogue, Params, QueryDef};
pub use config::{Backend, WarehouseConfig};
pub use embedded::EmbeddedWarehouse;
pub use error::{Error, Result};
pub use postgres::{LoadReport, PostgresWarehouse, SchemaObjects, TableLoad};
pub use value::{Cell, QueryResult};

use retail_lake::Lake;

/// What every warehouse backend offers: run a catalogue query.
#[allow(async_fn_in_trait)]
pub trait Warehouse {
    /// Which backend this is, for messages.
    fn backend(&self) -> Backend;

    /// Runs one query of the catalogue with checked parameters.
    ///
    /// # Errors
    ///
    /// When the backend cannot answer (unreachable, timed out, gold missing).
    async fn query(&self, query: &QueryDef, params: &Params) -> Result<QueryResult>;
}

/// A warehouse of either backend, chosen by configuration.
#[derive(Debug)]
pub enum AnyWarehouse {
    /// DataFusion over gold.
    Embedded(Box<EmbeddedWarehouse>),
    /// PostgreSQL.
    Postgres(PostgresWarehouse),
}

impl AnyWarehouse {
    /// Opens the configured backend. PostgreSQL is connected and migrated.
    ///
    /// # Errors
    ///
    /// When PostgreSQL cannot be reached or migrated.
    pub async fn open(config: &WarehouseConfig, lake: Lake) -> Result<Self> {
        Ok(match config.backend {
            Backend::Embedded => Self::Embedded(Box::new(EmbeddedWarehouse::new(lake))),
            Backend::Postgres => {
                let warehouse = PostgresWarehouse::connect(config).await?;
                warehouse.migrate().await?;
                Self::Postgres(warehouse)
            }
        })
    }
}

impl AnyWarehouse {
    /// A token that changes whenever the data served changes: cache keys include it.
    ///
    /// # Errors
    ///
    /// When the backend cannot be reached or gold is missing.
    pub async fn data_version(&self) -> Result<String> {
        match self {
            Self::Embedded(warehouse) => warehouse.data_version().await,
            Self::Postgres(warehouse) => warehouse.data_version().await,
        }
    }
}

impl Warehouse for AnyWarehouse {
    fn backend(&self) -> Backend {
        match self {
            Self::Embedded(_) => Backend::Embedded,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    async fn query(&self, query: &QueryDef, params: &Params) -> Result<QueryResult> {
        match self {
            Self::Embedded(warehouse) => warehouse.query(query, params).await,
            Self::Postgres(warehouse) => warehouse.query(query, params).await,
        }
    }
}
