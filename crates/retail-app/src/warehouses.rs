//! The warehouse adapters, opened one way for every process: the composition root builds its
//! backend with these, and commands that inspect or query a backend of their choice (`retail
//! warehouse query --backend`, `retail migrate`, `retail bench`) use them too, never the
//! adapters' constructors.

use std::sync::Arc;

use crate::Config;
use anyhow::{Context as _, bail};
use retail_lake::Lake;
use retail_tls::TlsConfig;
use retail_warehouse::{Backend, EmbeddedWarehouse, PostgresWarehouse, Warehouse, WarehouseConfig};

/// The embedded warehouse (DataFusion over gold).
pub fn embedded(lake: &Lake) -> EmbeddedWarehouse {
    EmbeddedWarehouse::new(lake.clone())
}

/// The PostgreSQL warehouse of `settings`, its schema brought up to date when `migrate`.
///
/// # Errors
///
/// When no URL is configured, the server cannot be reached, or a migration fails.
pub async fn postgres(
    settings: &WarehouseConfig,
    tls: &TlsConfig,
    migrate: bool,
) -> anyhow::Result<PostgresWarehouse> {
    if settings.postgres_url.trim().is_empty() {
        bail!(
            "no PostgreSQL configured: set warehouse.postgres_url (RETAIL__WAREHOUSE__POSTGRES_URL) \
             and warehouse.backend = postgres"
        );
    }
    let warehouse = PostgresWarehouse::connect_with(settings, tls)
        .await
        .context("cannot open the warehouse")?;
    if migrate {
        warehouse
            .ensure_migrated()
            .await
            .context("cannot bring the warehouse schema up to date")?;
    }
    Ok(warehouse)
}

/// A warehouse of `backend` for queries (PostgreSQL migrated first).
///
/// # Errors
///
/// When the lake root is invalid, or as [`postgres`].
pub async fn open(config: &Config, backend: Backend) -> anyhow::Result<Arc<dyn Warehouse>> {
    Ok(match backend {
        Backend::Embedded => Arc::new(embedded(&crate::open_lake(config).await?)),
        Backend::Postgres => Arc::new(postgres(&config.warehouse, &config.tls, true).await?),
    })
}

/// Applies the PostgreSQL warehouse's pending migrations; `None` for the embedded warehouse,
/// which has no schema.
///
/// # Errors
///
/// When the server cannot be reached or a migration fails (an edited or unknown migration).
pub async fn migrate(config: &Config) -> anyhow::Result<Option<Vec<i32>>> {
    if config.warehouse.postgres_url.trim().is_empty() {
        return Ok(None);
    }
    let warehouse = postgres(&config.warehouse, &config.tls, false).await?;
    Ok(Some(warehouse.migrate().await?))
}

/// What a warehouse holds.
#[derive(Debug)]
pub enum Status {
    /// The embedded warehouse and the gold versions it reads.
    Embedded {
        /// Delta versions of the gold tables.
        gold_versions: Vec<u64>,
    },
    /// The PostgreSQL warehouse's migrations, partitions, indexes, views and loaded versions.
    Postgres(retail_warehouse::SchemaObjects),
}

/// What the configured warehouse holds.
///
/// # Errors
///
/// When the lake root is invalid, gold cannot be read or PostgreSQL cannot be reached.
pub async fn status(config: &Config) -> anyhow::Result<Status> {
    let settings = &config.warehouse;
    Ok(match settings.backend {
        Backend::Embedded => {
            let warehouse = embedded(&crate::open_lake(config).await?);
            warehouse.refresh().await?;
            Status::Embedded {
                gold_versions: warehouse.versions().await.unwrap_or_default(),
            }
        }
        Backend::Postgres => Status::Postgres(
            postgres(settings, &config.tls, true)
                .await?
                .objects()
                .await?,
        ),
    })
}
