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
//! Both implement [`Warehouse`], which is all the API needs, and each has a follower of gold
//! ([`PostgresFollower`], [`EmbeddedFollower`]) that the asset runner keeps in step with gold.

mod config;
mod embedded;
mod error;
mod fingerprint;
mod follower;
mod postgres;
mod sql;
mod value;

pub mod catalogue;
pub mod lineage;
pub mod migrations;

pub use catalogue::{Catalogue, Params, QueryDef};
pub use config::{Backend, WarehouseConfig};
pub use embedded::EmbeddedWarehouse;
pub use error::{Error, Result};
pub use follower::{EmbeddedFollower, PostgresFollower};
pub use postgres::{AnalystViews, LoadReport, PostgresWarehouse, SchemaObjects, TableLoad};
pub use value::{Cell, QueryResult};

/// Pages of a query's rows, as the backend produces them.
pub type ResultStream = futures::stream::BoxStream<'static, Result<QueryResult>>;

/// What every warehouse backend offers: the catalogue's queries and a version of the data.
///
/// The API holds one as `Arc<dyn Warehouse>`, layered with a cache and a circuit breaker; only
/// the composition root knows which backend it is.
#[async_trait::async_trait]
pub trait Warehouse: Send + Sync + std::fmt::Debug {
    /// Which backend this is, for messages.
    fn backend(&self) -> Backend;

    /// Runs one query of the catalogue with checked parameters.
    ///
    /// # Errors
    ///
    /// When the backend cannot answer (unreachable, timed out, gold missing).
    async fn query(&self, query: &QueryDef, params: &Params) -> Result<QueryResult>;

    /// Runs one query and hands its rows out in pages as the backend produces them: one pass
    /// over one snapshot of the data, for results too large to hold (exports). The default
    /// runs [`Warehouse::query`] and hands the result out as one page.
    ///
    /// # Errors
    ///
    /// When the query cannot start; a failure later ends the stream with an error.
    async fn stream(&self, query: &QueryDef, params: &Params) -> Result<ResultStream> {
        let result = self.query(query, params).await?;
        Ok(Box::pin(futures::stream::once(async { Ok(result) })))
    }

    /// A token that changes whenever the data served changes: cache keys include it.
    ///
    /// # Errors
    ///
    /// When the backend cannot be reached or gold is missing.
    async fn data_version(&self) -> Result<String>;
}
