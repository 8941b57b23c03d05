//! The executable asset graph: every asset implements [`Asset`], and one [`Runner`] walks a
//! selection of them in order for the CLI, the API and (next) the scheduler.
//!
//! An asset is a thing the platform keeps up to date from what is upstream of it: silver from
//! bronze, gold from silver, each gold follower (the PostgreSQL warehouse, the embedded
//! snapshot, and next the search index and models) from gold. Adding one is writing an
//! `Asset` (or, for something that follows gold, a [`retail_domain::ports::Follower`], which
//! [`FollowerAsset`] turns into an asset) and registering it in the composition root.

mod follower;
mod gold;
mod listener;
mod runner;
pub(crate) mod silver;

use async_trait::async_trait;
use retail_domain::progress::Progress;
use retail_lake::TableSpec;
use retail_metadata::{Consistency, RunRecord};
use serde::Serialize;

pub use follower::{FollowerAsset, gold_to_follow, gold_version, staleness_by_mark};
pub use gold::GoldAsset;
pub use listener::RunListener;
pub use runner::{
    AssetStatus, BackfillRequest, Freshness, FreshnessPolicy, PARTITIONED_ASSET, PipelineStatus,
    RetryPolicy, RunRequest, Runner, TableStatus, invoice_month, months_between,
};
pub use silver::{DEFAULT_HANDOVER_MAX_ROWS, SilverAsset};

use crate::error::Result;
use crate::gold::SilverSet;
use crate::silver::SilverStats;

/// The key of bronze in upstream lists: a source, written by ingestion, not by the runner.
pub const BRONZE: &str = "bronze";

/// How far an asset is behind what is upstream of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum Staleness {
    /// Nothing to do.
    UpToDate,
    /// Behind, and why (`bronze version 12 not processed`).
    Stale(String),
    /// Never materialised.
    Missing,
}

impl Staleness {
    /// Whether there is nothing to do.
    pub fn is_up_to_date(&self) -> bool {
        *self == Self::UpToDate
    }
}

/// What an asset sees while it materialises: the run being recorded and what earlier assets
/// of the same run measured.
pub struct RunContext<'a> {
    /// The run's record: assets add what they did to `detail.assets`.
    pub run: &'a mut RunRecord,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
    /// Rebuild even when up to date (`--force-gold`).
    pub force: bool,
    /// What the silver stage counted in this run, for the quality report.
    pub silver: Option<SilverStats>,
    /// The rows the silver stage committed in this run, when they are the whole of silver
    /// at the version it committed: gold then builds from them instead of reading silver back.
    /// The runner offers them only to the asset right after silver, if it is computed from
    /// silver.
    pub silver_rows: Option<SilverRows>,
    /// Whether the asset after the one materialising is computed from silver, so would take
    /// [`RunContext::silver_rows`]: set by the runner before each asset.
    pub next_takes_silver: bool,
    /// The consistency the gold stage measured in this run.
    pub consistency: Option<Consistency>,
    /// Partitions to rebuild even when up to date (a backfill's invoice months, `2011-03`),
    /// besides whatever is behind.
    pub partitions: &'a [String],
    /// The partitions the asset (re)built and the rows each holds now: the runner records them
    /// as the asset's partitions.
    pub built: Vec<(String, u64)>,
}

impl std::fmt::Debug for RunContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("run", &self.run.run_id)
            .field("force", &self.force)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

/// The rows silver holds at `version`, all written by this run's silver stage, interned as
/// gold reads them. The stage keeps them only when silver held no row before its append and
/// its commit came right after the snapshot it was built on (a first load, a rebuilt lake);
/// gold takes them only while silver is still at `version`. Either way gold gets the rows a
/// scan of silver at that version gives, without decoding the Parquet it just wrote.
#[derive(Debug)]
pub struct SilverRows {
    /// The silver version that holds exactly these rows.
    pub version: u64,
    /// The rows.
    pub set: SilverSet,
}

/// A thing the platform keeps up to date from its upstream assets.
#[async_trait]
pub trait Asset: Send + Sync + std::fmt::Debug {
    /// Its key: `silver`, `gold`, `warehouse/postgres`, ...
    fn key(&self) -> &'static str;

    /// What it is, for people.
    fn description(&self) -> &'static str;

    /// The keys of the assets it is computed from ([`BRONZE`] for the ingested data).
    fn upstream(&self) -> &'static [&'static str];

    /// The lake tables it writes (from the table registry); none for a follower.
    fn tables(&self) -> Vec<TableSpec> {
        Vec::new()
    }

    /// How far it is behind.
    async fn staleness(&self) -> Result<Staleness>;

    /// Brings it up to date, adding what it did to `cx.run.detail.assets`. Returns whether it
    /// changed anything. Must be safe to run again after a failure (the runner retries
    /// transient ones): progress marks committed with the data make every asset resumable.
    async fn materialize(&self, cx: &mut RunContext<'_>) -> Result<bool>;
}
