//! Pipeline runs for callers: start one in the background (the API), run one now (the CLI),
//! follow them, and see where every table and asset stands.

use std::sync::Arc;

use async_trait::async_trait;
use retail_domain::progress::Progress;
use retail_metadata::{
    MetadataStore, PartitionFilter, PartitionState, RunFilter, RunRecord, asset_scope,
    backfill_scope,
};
use retail_pipeline::{
    BackfillRequest, Freshness, PARTITIONED_ASSET, PipelineStatus, RunRequest, Runner,
};

use crate::error::{Error, Result};

/// An asset of the graph, for listings.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AssetInfo {
    /// Its key.
    pub key: &'static str,
    /// What it is.
    pub description: &'static str,
    /// The assets it is computed from.
    pub upstream: Vec<&'static str>,
    /// The lake tables it writes.
    pub tables: Vec<&'static str>,
}

/// A backfill's record and how many of its months are in each state.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BackfillSummary {
    /// The backfill's record (kind `backfill`): who asked, its months, its runs, how it ended.
    pub backfill: RunRecord,
    /// Its months by state: `pending`, `running`, `succeeded`, `failed` (states with none
    /// left out); the months themselves are read page by page.
    pub partitions: std::collections::BTreeMap<String, u64>,
}

/// Whose partitions to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionScope {
    /// A partitioned asset's (`gold`): each month's latest build.
    Asset(String),
    /// A backfill's months (its id).
    Backfill(String),
}

/// Pipeline runs.
#[async_trait]
pub trait PipelineService: Send + Sync {
    /// Starts a run in the background and returns its record (status `running`) at once.
    async fn start(&self, request: RunRequest) -> Result<RunRecord>;

    /// Runs now and returns the finished record.
    async fn run(&self, request: RunRequest, progress: &dyn Progress) -> Result<RunRecord>;

    /// One run (an ingestion or a pipeline run) by id.
    async fn run_record(&self, run_id: &str) -> Result<RunRecord>;

    /// Recorded runs, newest first, as `filter` selects them (its `assets` may name asset keys:
    /// each stands for itself and the tables it writes).
    async fn runs(&self, filter: RunFilter) -> Result<Vec<RunRecord>>;

    /// Every table's version and rows, every asset's staleness, the latest run.
    async fn status(&self) -> Result<PipelineStatus>;

    /// The asset graph, in order.
    fn assets(&self) -> Vec<AssetInfo>;

    /// The keys of an asset and of every asset downstream of it.
    fn with_downstream(&self, key: &str) -> Vec<String>;

    /// The latest version of each table an asset writes (`None`: not written yet), cheaply
    /// from versions `known` by table name (only the logs' listings from them are read).
    async fn asset_versions(
        &self,
        key: &str,
        known: &std::collections::BTreeMap<String, Option<u64>>,
    ) -> Result<Vec<(&'static str, Option<u64>)>>;

    /// Starts a backfill in the background and returns its record (status `running`).
    async fn start_backfill(&self, request: BackfillRequest) -> Result<RunRecord>;

    /// Runs a backfill now and returns its finished record (failed or not).
    async fn backfill(
        &self,
        request: BackfillRequest,
        progress: &dyn Progress,
    ) -> Result<RunRecord>;

    /// Starts taking a failed backfill up again in the background.
    async fn start_resume_backfill(&self, id: &str, requested_by: &str) -> Result<RunRecord>;

    /// Takes a failed backfill up again now and returns its finished record.
    async fn resume_backfill(
        &self,
        id: &str,
        requested_by: &str,
        progress: &dyn Progress,
    ) -> Result<RunRecord>;

    /// A backfill and the count of its months in each state.
    async fn backfill_summary(&self, id: &str) -> Result<BackfillSummary>;

    /// A page of partitions: an asset's or a backfill's, in key order.
    async fn partitions(
        &self,
        scope: PartitionScope,
        filter: PartitionFilter,
    ) -> Result<Vec<PartitionState>>;

    /// Each asset with a freshness policy: its lag at `now` and whether it breaches the policy.
    async fn freshness(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<Freshness>>;
}

/// Refuses anything but a run id as written: a UUID, lower-case and hyphenated.
fn check_run_id(run_id: &str) -> Result<()> {
    let canonical =
        uuid::Uuid::try_parse(run_id).is_ok_and(|id| id.hyphenated().to_string() == run_id);
    if canonical {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{run_id:?} is not a run id (a lower-case hyphenated UUID)"
        )))
    }
}

/// Pipeline runs over the asset runner.
#[derive(Debug)]
pub struct Pipeline {
    runner: Arc<Runner>,
    store: Arc<dyn MetadataStore>,
}

impl Pipeline {
    /// The service over `runner`, reading records from `store`.
    pub fn new(runner: Arc<Runner>, store: Arc<dyn MetadataStore>) -> Self {
        Self { runner, store }
    }
}

#[async_trait]
impl PipelineService for Pipeline {
    async fn start(&self, request: RunRequest) -> Result<RunRecord> {
        Ok(self.runner.start(request).await?)
    }

    async fn run(&self, request: RunRequest, progress: &dyn Progress) -> Result<RunRecord> {
        Ok(self.runner.run(request, progress).await?)
    }

    async fn run_record(&self, run_id: &str) -> Result<RunRecord> {
        check_run_id(run_id)?;
        self.store
            .run(run_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no run {run_id}")))
    }

    async fn runs(&self, mut filter: RunFilter) -> Result<Vec<RunRecord>> {
        if !(1..=1000).contains(&filter.limit) {
            return Err(Error::invalid("limit must be from 1 to 1000"));
        }
        if let Some(before) = &filter.before {
            check_run_id(before).map_err(|_| {
                Error::invalid(format!(
                    "before {before:?} is not a run id (a lower-case hyphenated UUID)"
                ))
            })?;
            if self.store.run(before).await?.is_none() {
                return Err(Error::not_found(format!(
                    "before names no run ({before}): page on from a run of the page before"
                )));
            }
        }
        // An asset key stands for itself and the tables it writes.
        filter.assets = filter
            .assets
            .iter()
            .flat_map(|name| self.runner.recorded_names(name))
            .collect();
        Ok(self.store.list_runs(&filter).await?)
    }

    async fn status(&self) -> Result<PipelineStatus> {
        Ok(self.runner.status().await?)
    }

    fn assets(&self) -> Vec<AssetInfo> {
        self.runner
            .assets()
            .iter()
            .map(|asset| AssetInfo {
                key: asset.key(),
                description: asset.description(),
                upstream: asset.upstream().to_vec(),
                tables: asset.tables().iter().map(|t| t.name).collect(),
            })
            .collect()
    }

    fn with_downstream(&self, key: &str) -> Vec<String> {
        self.runner.with_downstream(key)
    }

    async fn asset_versions(
        &self,
        key: &str,
        known: &std::collections::BTreeMap<String, Option<u64>>,
    ) -> Result<Vec<(&'static str, Option<u64>)>> {
        Ok(self.runner.asset_versions(key, known).await?)
    }

    async fn start_backfill(&self, request: BackfillRequest) -> Result<RunRecord> {
        Ok(self.runner.start_backfill(request).await?)
    }

    async fn backfill(
        &self,
        request: BackfillRequest,
        progress: &dyn Progress,
    ) -> Result<RunRecord> {
        Ok(self.runner.backfill(request, progress).await?)
    }

    async fn start_resume_backfill(&self, id: &str, requested_by: &str) -> Result<RunRecord> {
        check_backfill_id(id)?;
        Ok(self.runner.start_resume_backfill(id, requested_by).await?)
    }

    async fn resume_backfill(
        &self,
        id: &str,
        requested_by: &str,
        progress: &dyn Progress,
    ) -> Result<RunRecord> {
        check_backfill_id(id)?;
        Ok(self
            .runner
            .resume_backfill(id, requested_by, progress)
            .await?)
    }

    async fn backfill_summary(&self, id: &str) -> Result<BackfillSummary> {
        check_backfill_id(id)?;
        let backfill = self.runner.backfill_record(id).await?;
        let partitions = self
            .store
            .partition_counts(&backfill_scope(id))
            .await?
            .into_iter()
            .map(|(status, count)| (status.as_str().to_owned(), count))
            .collect();
        Ok(BackfillSummary {
            backfill,
            partitions,
        })
    }

    async fn partitions(
        &self,
        scope: PartitionScope,
        filter: PartitionFilter,
    ) -> Result<Vec<PartitionState>> {
        if !(1..=1000).contains(&filter.limit) {
            return Err(Error::invalid("limit must be from 1 to 1000"));
        }
        if let Some(after) = &filter.after {
            retail_pipeline::invoice_month(after).map_err(|_| {
                Error::invalid(format!(
                    "after {after:?} is not a partition: an invoice month, YYYY-MM"
                ))
            })?;
        }
        let scope = match scope {
            PartitionScope::Asset(key) if key == PARTITIONED_ASSET => asset_scope(&key),
            PartitionScope::Asset(key) => {
                return Err(if self.assets().iter().any(|a| a.key == key) {
                    Error::not_found(format!(
                        "asset {key} has no partitions: only {PARTITIONED_ASSET} is partitioned \
                         (by invoice month)"
                    ))
                } else {
                    Error::not_found(format!("no asset {key:?}"))
                });
            }
            PartitionScope::Backfill(id) => {
                check_backfill_id(&id)?;
                self.runner.backfill_record(&id).await?;
                backfill_scope(&id)
            }
        };
        Ok(self.store.partitions(&scope, &filter).await?)
    }

    async fn freshness(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<Freshness>> {
        Ok(self.runner.freshness(now).await?)
    }
}

/// Refuses anything but a backfill id as written (a run id).
fn check_backfill_id(id: &str) -> Result<()> {
    check_run_id(id).map_err(|_| {
        Error::invalid(format!(
            "{id:?} is not a backfill id (a lower-case hyphenated UUID)"
        ))
    })
}
