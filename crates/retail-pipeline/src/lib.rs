//! The platform's use cases: ingestion into bronze, the bronze → silver → gold asset graph,
//! run records and data quality.
//!
//! Services here orchestrate the lake adapter, the source adapters and the domain's contract
//! rules; they hold no knowledge of HTTP or of the command line.
//!
//! ```no_run
//! # async fn example() -> retail_pipeline::Result<()> {
//! use std::sync::Arc;
//! use retail_lake::{Lake, LakeConfig};
//! use retail_pipeline::{MetadataConfig, MetadataStore, NoProgress, PipelineService};
//!
//! let lake = Lake::new(&LakeConfig::default())?;
//! let store = Arc::new(MetadataStore::open(&MetadataConfig::default())?);
//! let run = PipelineService::new(lake, store).run(Default::default(), &NoProgress).await?;
//! println!("run {} {}", run.run_id, run.status.as_str());
//! # Ok(())
//! # }
//! ```

pub mod assets;
mod error;
pub mod gold;
pub mod history;
mod ingest;
mod pipeline;
mod progress;
pub mod quality;
mod runs;
pub mod silver;

pub use error::{Error, Result};
pub use ingest::{IngestOptions, IngestService, RecordSource, RecordsReceipt};
pub use pipeline::{
    CHANGES_APP_ID, GOLD_APP_ID, PipelineService, PipelineStatus, RunOptions, SILVER_APP_ID,
    TableStatus,
};
pub use progress::{NoProgress, Progress};
pub use retail_ingest::RecordChange;
pub use runs::{
    AssetRun, FileOutcome, MetadataConfig, MetadataStore, OperationLock, Reconciliation, RunDetail,
    RunKind, RunRecord, RunStatus,
};
