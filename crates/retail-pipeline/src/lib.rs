//! The data engine: ingestion into bronze and the executable asset graph (bronze → silver →
//! gold → followers), with run records and data quality.
//!
//! - [`IngestionService`]: lands any [`retail_ingest::Source`] in bronze, each batch's
//!   checkpoint committed atomically with its rows;
//! - [`asset`]: the [`Asset`] trait, the assets of silver and gold, followers of gold as
//!   assets, and the [`Runner`] that walks them, claims the pipeline, retries transient
//!   failures, reconciles and records every run;
//! - [`silver`], [`gold`] and [`history`]: the transformations themselves, pure over Arrow
//!   batches.
//!
//! Nothing here knows HTTP or the command line, and nothing here picks an adapter: the
//! composition root hands in the lake, the metadata store and the followers.
//!
//! ```no_run
//! # async fn example() -> retail_pipeline::Result<()> {
//! use std::sync::Arc;
//! use retail_domain::progress::NoProgress;
//! use retail_lake::{Lake, LakeConfig};
//! use retail_metadata::SqliteStore;
//! use retail_pipeline::{
//!     DEFAULT_HANDOVER_MAX_ROWS, RetryPolicy, RunRequest, Runner, SilverRules, default_assets,
//! };
//!
//! let lake = Lake::new(&LakeConfig::default())?;
//! let store = Arc::new(SqliteStore::open(std::path::Path::new("./data/retail.db"))?);
//! let runner = Runner::new(
//!     lake.clone(),
//!     store,
//!     default_assets(&lake, SilverRules::default(), DEFAULT_HANDOVER_MAX_ROWS),
//!     RetryPolicy::default(),
//!     tokio::runtime::Handle::current(),
//! )?;
//! let run = runner.run(RunRequest::default(), &NoProgress).await?;
//! println!("run {} {}", run.run_id, run.status.as_str());
//! # Ok(())
//! # }
//! ```

pub mod asset;
mod calendar;
pub mod checks;
pub mod consent;
pub mod erasure;
mod error;
pub mod gold;
pub mod history;
mod ingestion;
pub mod lineage;
pub mod quality;
mod reconcile;
pub mod silver;
pub mod silver_set;
pub mod subject;

use std::sync::Arc;

pub use asset::{
    Asset, AssetStatus, BackfillRequest, DEFAULT_HANDOVER_MAX_ROWS, FollowerAsset, Freshness,
    FreshnessPolicy, GoldAsset, PARTITIONED_ASSET, PipelineStatus, RetryPolicy, RunContext,
    RunListener, RunRequest, Runner, SilverAsset, Staleness, TableStatus, gold_to_follow,
    gold_version, invoice_month, months_between, staleness_by_mark,
};
pub use checks::{Check, CheckConfig, CheckKind, Severity};
pub use error::{Error, Result};
pub use ingestion::{Erased, IngestOptions, IngestRequest, IngestionService};
pub use reconcile::reconcile;
pub use silver::SilverRules;

/// Application id of the silver stage's progress (value: the bronze version consumed).
pub const SILVER_APP_ID: &str = "retail.pipeline.silver";
/// Application id of the removals that updates and deletes make in silver (value: the bronze
/// version whose changes were applied). Equal to silver's [`SILVER_APP_ID`] mark when every
/// change is applied.
pub const CHANGES_APP_ID: &str = "retail.pipeline.silver.changes";
/// Application id of the gold stage's progress (value: the silver version built from).
pub const GOLD_APP_ID: &str = retail_lake::schema::GOLD_MARK;

/// The assets every deployment has: silver (applying the contract with `rules`, handing over
/// to gold in memory up to `handover_max_rows` rows: [`SilverAsset::with_handover_max_rows`])
/// and gold. Followers of gold are added by the composition root, as configured.
pub fn default_assets(
    lake: &retail_lake::Lake,
    rules: SilverRules,
    handover_max_rows: u64,
) -> Vec<Arc<dyn Asset>> {
    vec![
        Arc::new(SilverAsset::new(lake.clone(), rules).with_handover_max_rows(handover_max_rows)),
        Arc::new(GoldAsset::new(lake.clone())),
    ]
}
