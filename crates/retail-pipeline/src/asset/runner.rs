//! The one runner of the asset graph: claims the pipeline, walks the selected assets in order,
//! retries transient failures, reconciles the lake's counts and records the run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use retail_domain::error::Classify as _;
use retail_domain::progress::{NoProgress, Progress};
use retail_lake::Lake;
use retail_lake::schema::{self as tables, BRONZE_TRANSACTIONS, SILVER_TRANSACTIONS};
use retail_metadata::{
    AssetRun, Claim, MetadataStore, PartitionState, PartitionStatus, RunKind, RunRecord, RunStatus,
    asset_scope,
};
use retail_telemetry::metrics;
use serde::Serialize;
use tracing::{Instrument as _, info, info_span, warn};

mod backfill;
mod freshness;

pub use backfill::{BackfillRequest, PARTITIONED_ASSET, invoice_month, months_between};
pub use freshness::{Freshness, FreshnessPolicy};

use super::{Asset, BRONZE, RunContext, RunListener, Staleness};
use crate::error::{Error, Result};
use crate::quality::quality_report;
use crate::reconcile::reconcile;
use crate::{GOLD_APP_ID, SILVER_APP_ID};

/// The message a run left `running` by a dead process is closed with.
/// What a backfill left running by a dead process is closed with.
const INTERRUPTED_BACKFILL: &str = "interrupted: the process running it stopped before it finished; resume it to take the months not yet done";

const INTERRUPTED: &str = "interrupted: the process running it stopped before it finished (every table is at its \
     last committed version; the next run resumes)";

/// How transient failures (an unreachable store, a lost connection) are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts of one asset in all (1: no retry).
    pub max_attempts: u32,
    /// The first wait; each later one doubles, with up to 50 % random jitter added.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    fn wait(&self, attempt: u32) -> Duration {
        let base = self.backoff * 2_u32.saturating_pow(attempt.saturating_sub(1));
        // Jitter from the clock: enough to keep replicas that failed together apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
    }
}

/// What to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRequest {
    /// Asset keys to materialise, run in graph order; empty: every asset.
    pub assets: Vec<String>,
    /// Rebuild gold even when it is up to date.
    pub force: bool,
    /// Who asked: `cli`, `api:<user>`, `schedule:<name>`.
    pub requested_by: String,
    /// Partitions (invoice months, `2011-03`) partitioned assets rebuild even when up to date.
    pub partitions: Vec<String>,
    /// The backfill this run is part of.
    pub backfill: Option<String>,
}

/// The state of one table.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TableStatus {
    /// The table's name.
    pub table: &'static str,
    /// Its latest version, `None` when never written.
    pub version: Option<u64>,
    /// Its rows (from the Delta log's statistics).
    pub rows: u64,
    /// The upstream version it is built from (bronze for silver tables, silver for gold, the
    /// gold version for the models' tables).
    pub built_from: Option<i64>,
}

/// The state of one asset.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AssetStatus {
    /// Its key.
    pub asset: &'static str,
    /// What it is.
    pub description: &'static str,
    /// The assets it is computed from.
    pub upstream: Vec<&'static str>,
    /// How far it is behind.
    #[schema(value_type = Object)]
    pub staleness: Staleness,
}

/// Where the pipeline stands.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PipelineStatus {
    /// Every table.
    pub tables: Vec<TableStatus>,
    /// Every asset, in graph order.
    pub assets: Vec<AssetStatus>,
    /// True when silver has consumed every bronze version.
    pub silver_up_to_date: bool,
    /// True when every gold table is built from the latest silver version.
    pub gold_up_to_date: bool,
    /// Each asset with a freshness policy: its lag now and whether it breaches the policy.
    pub freshness: Vec<Freshness>,
    /// Table counts.
    pub reconciliation: retail_metadata::Reconciliation,
    /// The latest pipeline run.
    pub latest_run: Option<RunRecord>,
}

/// Walks the asset graph.
#[derive(Debug)]
pub struct Runner {
    lake: Lake,
    store: Arc<dyn MetadataStore>,
    /// Every asset, in an order where each comes after its upstream assets.
    assets: Vec<Arc<dyn Asset>>,
    retry: RetryPolicy,
    /// Policies of single assets, over `retry`.
    retries: std::collections::BTreeMap<String, RetryPolicy>,
    /// The asset checks, evaluated after their assets.
    checks: Vec<crate::checks::Check>,
    /// The freshness policies, by asset key.
    freshness: std::collections::BTreeMap<String, FreshnessPolicy>,
    /// Where background runs go: a runtime of their own in `retail serve`, so that CPU-heavy
    /// stages never hold the workers that answer requests.
    jobs: tokio::runtime::Handle,
    /// The retention of the vacuum that ends each run that changed something; `None`: none.
    vacuum: Option<std::time::Duration>,
    /// Told of runs and assets as they start and finish (OpenLineage events).
    listener: Option<Arc<dyn RunListener>>,
}

/// The longest a lake waits between two vacuums after runs. A file becomes removable only
/// `retention` (at least an hour) after a commit stopped referencing it, so vacuuming after
/// every run of a stream-following pipeline (one every second or two) or of every one-shot
/// `retail pipeline run` finds nothing new most times and costs a listing of every table (80
/// ms on the real data); once per this interval delays a removal by no more than it.
const VACUUM_EVERY: Duration = Duration::from_secs(600);

/// The metadata store's cursor holding when the lake was last vacuumed after a run (Unix
/// seconds), shared by every process on the store.
const VACUUM_CURSOR: &str = "pipeline.last_vacuum";

impl Runner {
    /// A runner over `assets` (in any order). Background runs go to `jobs`.
    ///
    /// # Errors
    ///
    /// When two assets share a key, an asset names an upstream asset that is not there, or
    /// the graph has a cycle.
    pub fn new(
        lake: Lake,
        store: Arc<dyn MetadataStore>,
        assets: Vec<Arc<dyn Asset>>,
        retry: RetryPolicy,
        jobs: tokio::runtime::Handle,
    ) -> Result<Self> {
        Ok(Self {
            lake,
            store,
            assets: in_graph_order(assets)?,
            retry,
            retries: std::collections::BTreeMap::new(),
            checks: Vec::new(),
            freshness: std::collections::BTreeMap::new(),
            jobs,
            vacuum: None,
            listener: None,
        })
    }

    /// Tells `listener` of every run and asset as they start and finish.
    #[must_use]
    pub fn with_listener(mut self, listener: Arc<dyn RunListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Ends runs that changed something with a vacuum of every table that keeps files removed
    /// less than `retention` ago (see [`Lake::vacuum`]): every such run when `retention` is
    /// under ten minutes, otherwise the first run ten minutes or more after the last vacuum
    /// by any process on the same metadata store. A failed vacuum is logged and does not fail
    /// the run.
    #[must_use]
    pub fn with_vacuum(mut self, retention: std::time::Duration) -> Self {
        self.vacuum = Some(retention);
        self
    }

    /// The retention of a vacuum due at `now`, marking it done in the metadata store; `None`
    /// when vacuums are off or the last one, by any process, was less than [`VACUUM_EVERY`]
    /// ago (and the retention is not shorter). When the store cannot say, the vacuum is due.
    async fn vacuum_due(&self, now: std::time::SystemTime) -> Option<Duration> {
        let retention = self.vacuum?;
        if retention < VACUUM_EVERY {
            return Some(retention);
        }
        let now = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let (version, last) = match self.store.cursor(VACUUM_CURSOR).await {
            Ok(cursor) => cursor,
            Err(error) => {
                warn!(%error, "cannot read when the lake was last vacuumed; vacuuming");
                return Some(retention);
            }
        };
        // A clock set back makes the last vacuum look to be in the future: due then too.
        let due = last
            .and_then(|at| at.parse::<u64>().ok())
            .is_none_or(|at| now < at || now - at >= VACUUM_EVERY.as_secs());
        if !due {
            return None;
        }
        // Whoever records it first vacuums: two processes finishing runs at once do not both.
        match self
            .store
            .save_cursor(VACUUM_CURSOR, version, &now.to_string())
            .await
        {
            Ok(true) => Some(retention),
            Ok(false) => None,
            Err(error) => {
                warn!(%error, "cannot record the vacuum; vacuuming");
                Some(retention)
            }
        }
    }

    /// Every asset, in graph order.
    pub fn assets(&self) -> &[Arc<dyn Asset>] {
        &self.assets
    }

    /// The latest version of each table an asset writes (`None`: not written yet), in the
    /// asset's order: what a sensor watching the asset compares. `known` holds versions seen
    /// before, by table name: from those only the logs' listings are read, not the tables'
    /// states (empty: every table is opened).
    ///
    /// # Errors
    ///
    /// When the asset is unknown or a table's log cannot be read.
    pub async fn asset_versions(
        &self,
        key: &str,
        known: &std::collections::BTreeMap<String, Option<u64>>,
    ) -> Result<Vec<(&'static str, Option<u64>)>> {
        let asset = self.select(&[key.to_owned()])?.remove(0);
        let mut versions = Vec::new();
        for table in asset.tables() {
            let known = known.get(table.name).copied().flatten();
            versions.push((
                table.name,
                self.lake.latest_version_since(&table, known).await?,
            ));
        }
        Ok(versions)
    }

    /// Retries these assets by their own policies instead of the runner's.
    ///
    /// # Errors
    ///
    /// When a key is not an asset of the graph.
    pub fn with_retries(
        mut self,
        retries: std::collections::BTreeMap<String, RetryPolicy>,
    ) -> Result<Self> {
        let keys: Vec<String> = retries.keys().cloned().collect();
        self.select(&keys)?;
        self.retries = retries;
        Ok(self)
    }

    /// Evaluates `checks` after their assets in every run (see [`crate::checks`]).
    #[must_use]
    pub fn with_checks(mut self, checks: Vec<crate::checks::Check>) -> Self {
        self.checks = checks;
        self
    }

    /// How failures of the asset `key` are retried.
    fn retry_for(&self, key: &str) -> &RetryPolicy {
        self.retries.get(key).unwrap_or(&self.retry)
    }

    /// The keys of `key` and of every asset downstream of it, in graph order.
    pub fn with_downstream(&self, key: &str) -> Vec<String> {
        let mut keys: BTreeSet<&str> = BTreeSet::from([key]);
        for asset in &self.assets {
            if asset.upstream().iter().any(|u| keys.contains(u)) {
                keys.insert(asset.key());
            }
        }
        self.assets
            .iter()
            .map(|a| a.key())
            .filter(|k| keys.contains(k))
            .map(str::to_owned)
            .collect()
    }

    /// The asset with this key, if any.
    fn asset(&self, key: &str) -> Option<&Arc<dyn Asset>> {
        self.assets.iter().find(|a| a.key() == key)
    }

    /// The names runs record for `name` among their assets: an asset's key and the tables it
    /// writes (silver and gold record their tables); a table's or a follower's name alone.
    pub fn recorded_names(&self, name: &str) -> Vec<String> {
        let tables = self
            .asset(name)
            .map(|asset| asset.tables())
            .unwrap_or_default();
        std::iter::once(name.to_owned())
            .chain(tables.iter().map(|table| table.name.to_owned()))
            .collect()
    }

    /// The selected assets in graph order.
    fn select(&self, keys: &[String]) -> Result<Vec<Arc<dyn Asset>>> {
        if let Some(unknown) = keys
            .iter()
            .find(|k| !self.assets.iter().any(|a| a.key() == k.as_str()))
        {
            return Err(Error::UnknownAsset {
                key: unknown.clone(),
                known: self
                    .assets
                    .iter()
                    .map(|a| a.key())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(self
            .assets
            .iter()
            .filter(|a| keys.is_empty() || keys.iter().any(|k| k == a.key()))
            .cloned()
            .collect())
    }

    /// Runs the selection now and returns its record (also when it fails, the record is kept).
    ///
    /// # Errors
    ///
    /// When an asset is unknown, another run holds the pipeline, or an asset fails.
    pub async fn run(&self, request: RunRequest, progress: &dyn Progress) -> Result<RunRecord> {
        let selected = self.select(&request.assets)?;
        let claim = self.claim().await?;
        let run = self.begin(&request).await?;
        self.execute(&claim, run, selected, &request, progress)
            .await
    }

    /// Claims the pipeline, for work that must not run beside a pipeline run (a GDPR
    /// erasure) and runs selections with [`Runner::run_claimed`] while it holds the claim.
    ///
    /// # Errors
    ///
    /// When another process or run holds the pipeline.
    pub async fn claim(&self) -> Result<Claim> {
        Ok(self.store.claim("pipeline run").await?)
    }

    /// As [`Runner::run`], under a claim the caller already holds (from [`Runner::claim`]).
    ///
    /// # Errors
    ///
    /// When an asset is unknown or fails.
    pub async fn run_claimed(
        &self,
        claim: &Claim,
        request: RunRequest,
        progress: &dyn Progress,
    ) -> Result<RunRecord> {
        let selected = self.select(&request.assets)?;
        let run = self.begin(&request).await?;
        self.execute(claim, run, selected, &request, progress).await
    }

    /// Starts the selection in the background and returns its record at once (status
    /// `running`); follow it with [`MetadataStore::run`]. A request cut short does not stop it.
    ///
    /// # Errors
    ///
    /// When an asset is unknown or another run holds the pipeline: then nothing starts.
    pub async fn start(self: &Arc<Self>, request: RunRequest) -> Result<RunRecord> {
        let selected = self.select(&request.assets)?;
        let claim = self.claim().await?;
        let run = self.begin(&request).await?;
        let started = run.clone();
        let runner = Arc::clone(self);
        // In the span of whoever started it (an API request): the run is part of its trace.
        self.jobs.spawn(
            async move {
                let run_id = run.run_id.clone();
                if let Err(error) = runner
                    .execute(&claim, run, selected, &request, &NoProgress)
                    .await
                {
                    warn!(run = %run_id, %error, "background pipeline run failed");
                }
            }
            .in_current_span(),
        );
        Ok(started)
    }

    /// Closes runs that a dead process left `running`: call at start-up. Does nothing while
    /// another process holds the pipeline (its run is alive). Returns how many were closed.
    ///
    /// # Errors
    ///
    /// When the metadata store fails.
    pub async fn recover(&self) -> Result<u64> {
        let _claim = match self.store.claim("pipeline run").await {
            Ok(claim) => claim,
            Err(retail_metadata::Error::Busy { .. }) => return Ok(0),
            Err(error) => return Err(error.into()),
        };
        let closed = self
            .store
            .fail_interrupted_runs(RunKind::Pipeline, INTERRUPTED)
            .await?
            + self
                .store
                .fail_interrupted_runs(RunKind::Backfill, INTERRUPTED_BACKFILL)
                .await?;
        if closed > 0 {
            warn!(
                runs = closed,
                "closed pipeline runs left running by a stopped process"
            );
        }
        Ok(closed)
    }

    async fn begin(&self, request: &RunRequest) -> Result<RunRecord> {
        let mut run = RunRecord::start(RunKind::Pipeline);
        run.detail.requested_by = Some(request.requested_by.clone());
        run.detail.selection.clone_from(&request.assets);
        run.detail.partitions.clone_from(&request.partitions);
        run.detail.backfill.clone_from(&request.backfill);
        self.store.save_run(&run).await?;
        info!(run = %run.run_id, by = %request.requested_by, assets = ?request.assets, "pipeline run started");
        Ok(run)
    }

    async fn execute(
        &self,
        _claim: &Claim,
        mut run: RunRecord,
        selected: Vec<Arc<dyn Asset>>,
        request: &RunRequest,
        progress: &dyn Progress,
    ) -> Result<RunRecord> {
        let span = info_span!("pipeline_run", run = %run.run_id);
        if let Some(listener) = &self.listener {
            listener.run_started(&run).await;
        }
        // A run opens each table several times (marks, plans, writers, counts, the vacuum):
        // keep them until it ends.
        let _kept = self.lake.keep_opened_tables();
        let outcome = self
            .walk(&selected, request, &mut run, progress)
            .instrument(span)
            .await;
        match outcome {
            Ok(changed) => {
                let status = if changed {
                    RunStatus::Succeeded
                } else {
                    RunStatus::UpToDate
                };
                let vacuum = if changed {
                    self.vacuum_due(std::time::SystemTime::now()).await
                } else {
                    None
                };
                if let Some(retention) = vacuum {
                    // Under the run's claim and before the run is recorded as finished, so
                    // the next run starts after it.
                    match self.lake.vacuum_all(retention, false, false).await {
                        Ok(tables) => {
                            let files: usize = tables.iter().map(|t| t.files).sum();
                            let bytes: u64 = tables.iter().map(|t| t.bytes).sum();
                            info!(run = %run.run_id, files, bytes, "lake vacuumed");
                        }
                        Err(error) => {
                            warn!(run = %run.run_id, %error, "vacuum after the run failed")
                        }
                    }
                }
                run.finish(status);
                metrics::record_run(status.as_str());
                self.store.save_run(&run).await?;
                if let Some(listener) = &self.listener {
                    listener.run_finished(&run).await;
                }
                Ok(run)
            }
            Err(error) => {
                run.fail(&error);
                metrics::record_run(RunStatus::Failed.as_str());
                if let Err(save_error) = self.store.save_run(&run).await {
                    warn!(error = %save_error, "failed to record the failed run");
                }
                if let Some(listener) = &self.listener {
                    listener.run_finished(&run).await;
                }
                Err(error)
            }
        }
    }

    async fn walk(
        &self,
        selected: &[Arc<dyn Asset>],
        request: &RunRequest,
        run: &mut RunRecord,
        progress: &dyn Progress,
    ) -> Result<bool> {
        let mut cx = RunContext {
            run,
            progress,
            force: request.force,
            silver: None,
            silver_rows: None,
            next_takes_silver: false,
            consistency: None,
            partitions: &request.partitions,
            built: Vec::new(),
        };
        let mut changed = false;
        // Assets held back by failed `error` checks, with the checks that hold them.
        let mut held_back: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut failed_checks: Vec<String> = Vec::new();
        let computed_from_silver = |asset: &Arc<dyn Asset>| asset.upstream().contains(&"silver");
        for (position, asset) in selected.iter().enumerate() {
            // The silver stage's rows are offered to the next asset if it is computed from
            // silver, and are dropped otherwise.
            let offered = cx.silver_rows.take();
            cx.next_takes_silver = selected.get(position + 1).is_some_and(computed_from_silver);
            if let Some(by) = held_back.get(asset.key()) {
                warn!(asset = asset.key(), checks = ?by, "asset held back by failed checks");
                metrics::record_asset(asset.key(), "blocked", 0);
                cx.run.detail.assets.push(AssetRun {
                    status: "blocked".to_owned(),
                    detail: Some(serde_json::json!({ "held_back_by": by })),
                    ..AssetRun::up_to_date(asset.key())
                });
                continue;
            }
            if computed_from_silver(asset) {
                cx.silver_rows = offered;
            }
            let started = Instant::now();
            let recorded = cx.run.detail.assets.len();
            if let Some(listener) = &self.listener {
                listener.asset_started(cx.run, asset.key()).await;
            }
            let mut attempt = 1;
            let retry = self.retry_for(asset.key());
            let result = loop {
                let outcome = asset
                    .materialize(&mut cx)
                    .instrument(info_span!("asset", key = asset.key(), attempt))
                    .await;
                match outcome {
                    Err(error) if error.is_retryable() && attempt < retry.max_attempts => {
                        let wait = retry.wait(attempt);
                        warn!(asset = asset.key(), attempt, %error, ?wait, "asset failed; retrying");
                        cx.run.detail.assets.truncate(recorded);
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    other => break other,
                }
            };
            for entry in &mut cx.run.detail.assets[recorded..] {
                entry.attempts = attempt;
                metrics::record_asset(&entry.asset, &entry.status, entry.rows);
            }
            metrics::record_stage(asset.key(), started.elapsed().as_secs_f64());
            if let Some(listener) = &self.listener {
                let error = result.as_ref().err().map(ToString::to_string);
                listener
                    .asset_finished(
                        cx.run,
                        asset.key(),
                        &cx.run.detail.assets[recorded..],
                        error.as_deref(),
                    )
                    .await;
            }
            match result {
                Ok(asset_changed) => {
                    changed |= asset_changed;
                    let built = std::mem::take(&mut cx.built);
                    if !built.is_empty() {
                        let states: Vec<PartitionState> = built
                            .iter()
                            .map(|(partition, rows)| PartitionState {
                                status: PartitionStatus::Succeeded,
                                run_id: Some(cx.run.run_id.clone()),
                                attempts: 1,
                                rows: Some(*rows),
                                ..PartitionState::pending(partition.clone())
                            })
                            .collect();
                        self.store
                            .save_partitions(&asset_scope(asset.key()), &states)
                            .await?;
                        cx.run.detail.partition_rows.extend(built);
                    }
                    for check in self.checks.iter().filter(|c| c.asset() == asset.key()) {
                        let history = match check.history_runs() {
                            Some(runs) => self.check_history(check, runs).await?,
                            None => Vec::new(),
                        };
                        let result = check
                            .evaluate(&self.lake, &history, chrono::Utc::now())
                            .instrument(info_span!("check", name = check.name()))
                            .await?;
                        if !result.passed {
                            warn!(check = %result.name, table = %result.table, severity = %result.severity, detail = %result.detail, "asset check failed");
                            if check.blocks() {
                                for key in self.with_downstream(asset.key()) {
                                    if key != asset.key() {
                                        held_back.entry(key).or_default().push(result.name.clone());
                                    }
                                }
                                failed_checks.push(format!(
                                    "check {:?} failed on {}: {}",
                                    result.name, result.table, result.detail
                                ));
                            }
                        }
                        cx.run.detail.checks.push(result);
                    }
                }
                Err(error) => {
                    metrics::record_asset(asset.key(), "failed", 0);
                    cx.run.detail.assets.push(AssetRun {
                        status: "failed".to_owned(),
                        attempts: attempt,
                        ..AssetRun::up_to_date(asset.key())
                    });
                    return Err(error);
                }
            }
        }
        let reconciliation = reconcile(&self.lake).await?;
        info!(%reconciliation, "reconciliation");
        metrics::set_reconciliation(reconciliation.balances());
        let rows = futures::future::try_join_all(
            tables::ALL_TABLES
                .iter()
                .map(|table| self.lake.count_rows(table)),
        )
        .await?;
        for (table, rows) in tables::ALL_TABLES.iter().zip(rows) {
            metrics::set_table_rows(table.name, rows);
        }
        cx.run.detail.reconciliation = Some(reconciliation);
        if let Some(stats) = &cx.silver {
            cx.run.detail.quality = Some(quality_report(&cx.run.run_id, stats, cx.consistency));
        }
        let silver_ran = selected.iter().any(|a| a.key() == "silver");
        if silver_ran && !reconciliation.balances() {
            return Err(Error::Reconciliation {
                detail: reconciliation.to_string(),
            });
        }
        if !failed_checks.is_empty() {
            let held: Vec<&str> = cx
                .run
                .detail
                .assets
                .iter()
                .filter(|a| a.status == "blocked")
                .map(|a| a.asset.as_str())
                .collect();
            let held = if held.is_empty() {
                "nothing in this selection".to_owned()
            } else {
                held.join(", ")
            };
            return Err(Error::ChecksFailed {
                detail: format!("{}; held back: {held}", failed_checks.join("; ")),
            });
        }
        Ok(changed)
    }

    /// The values a check measured in the last `runs` runs that evaluated it, newest first.
    async fn check_history(&self, check: &crate::checks::Check, runs: usize) -> Result<Vec<f64>> {
        let records = self
            .store
            .list_runs(&retail_metadata::RunFilter {
                kind: Some(RunKind::Pipeline),
                assets: self.recorded_names(check.asset()),
                limit: runs.saturating_mul(3).clamp(10, 1000),
                ..retail_metadata::RunFilter::default()
            })
            .await?;
        Ok(records
            .iter()
            .filter_map(|run| {
                run.detail
                    .checks
                    .iter()
                    .find(|c| c.name == check.name())
                    .and_then(|c| c.value)
            })
            .take(runs)
            .collect())
    }

    /// Every table's version and rows, each asset's staleness, whether silver and gold are up
    /// to date, and the latest run.
    ///
    /// # Errors
    ///
    /// When a table's log or the metadata store cannot be read.
    pub async fn status(&self) -> Result<PipelineStatus> {
        let lake = &self.lake;
        let mut statuses = Vec::new();
        for table in tables::ALL_TABLES {
            let delta = lake.open(&table).await?;
            let mark = match table.writer {
                tables::Writer::Silver => Some(SILVER_APP_ID),
                tables::Writer::Gold => Some(GOLD_APP_ID),
                tables::Writer::Models => Some(tables::MODELS_MARK),
                tables::Writer::Recommendations => Some(tables::RECOMMENDATIONS_MARK),
                tables::Writer::Ingestion => None,
            };
            let built_from = match (&delta, mark) {
                (Some(delta), Some(mark)) => lake.app_version_in(delta, &table, mark).await?,
                _ => None,
            };
            statuses.push(TableStatus {
                table: table.name,
                version: delta.as_ref().and_then(|d| d.version()),
                rows: lake.count_rows(&table).await?,
                built_from,
            });
        }
        let version_of = |name: &str| {
            statuses
                .iter()
                .find(|s| s.table == name)
                .and_then(|s| s.version)
        };
        let bronze = version_of(BRONZE_TRANSACTIONS.name).map(|v| v as i64);
        let silver = version_of(SILVER_TRANSACTIONS.name).map(|v| v as i64);
        let silver_mark = statuses
            .iter()
            .find(|s| s.table == SILVER_TRANSACTIONS.name)
            .and_then(|s| s.built_from);
        let silver_up_to_date = bronze.is_none() || silver_mark == bronze;
        let gold_up_to_date = silver.is_none()
            || statuses
                .iter()
                .filter(|s| {
                    tables::find_table(s.table)
                        .is_some_and(|table| table.writer == tables::Writer::Gold)
                })
                .all(|s| s.built_from == silver);
        let mut assets = Vec::with_capacity(self.assets.len());
        for asset in &self.assets {
            assets.push(AssetStatus {
                asset: asset.key(),
                description: asset.description(),
                upstream: asset.upstream().to_vec(),
                staleness: asset.staleness().await?,
            });
        }
        Ok(PipelineStatus {
            tables: statuses,
            assets,
            silver_up_to_date,
            gold_up_to_date,
            freshness: self.freshness(chrono::Utc::now()).await?,
            reconciliation: reconcile(lake).await?,
            latest_run: self
                .store
                .runs(Some(RunKind::Pipeline), 1)
                .await?
                .into_iter()
                .next(),
        })
    }
}

/// Sorts assets so that each comes after its upstream assets (stable for independent ones).
fn in_graph_order(assets: Vec<Arc<dyn Asset>>) -> Result<Vec<Arc<dyn Asset>>> {
    let mut by_key: HashMap<&'static str, Arc<dyn Asset>> = HashMap::new();
    let mut keys = Vec::new();
    for asset in assets {
        let key = asset.key();
        if by_key.insert(key, asset).is_some() {
            return Err(Error::Graph(format!("two assets are called {key}")));
        }
        keys.push(key);
    }
    for key in &keys {
        for upstream in by_key[key].upstream() {
            if *upstream != BRONZE && !by_key.contains_key(upstream) {
                return Err(Error::Graph(format!(
                    "asset {key} is computed from {upstream}, which is not an asset"
                )));
            }
        }
    }
    let mut ordered: Vec<Arc<dyn Asset>> = Vec::with_capacity(keys.len());
    let mut placed: BTreeSet<&'static str> = BTreeSet::from([BRONZE]);
    while ordered.len() < keys.len() {
        let ready = keys.iter().find(|key| {
            !placed.contains(**key) && by_key[**key].upstream().iter().all(|u| placed.contains(u))
        });
        let Some(key) = ready else {
            return Err(Error::Graph("the asset graph has a cycle".to_owned()));
        };
        placed.insert(key);
        ordered.push(Arc::clone(&by_key[*key]));
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;

    #[derive(Debug)]
    struct Fake(&'static str, &'static [&'static str]);

    #[async_trait]
    impl Asset for Fake {
        fn key(&self) -> &'static str {
            self.0
        }
        fn description(&self) -> &'static str {
            "fake"
        }
        fn upstream(&self) -> &'static [&'static str] {
            self.1
        }
        async fn staleness(&self) -> Result<Staleness> {
            Ok(Staleness::UpToDate)
        }
        async fn materialize(&self, _cx: &mut RunContext<'_>) -> Result<bool> {
            Ok(false)
        }
    }

    /// Fails with a transient error (a read cut short) until its `failures` are used up, or
    /// with a permanent one when `permanent`.
    #[derive(Debug)]
    struct Flaky {
        key: &'static str,
        failures: std::sync::atomic::AtomicU32,
        permanent: bool,
    }

    #[async_trait]
    impl Asset for Flaky {
        fn key(&self) -> &'static str {
            self.key
        }
        fn description(&self) -> &'static str {
            "flaky"
        }
        fn upstream(&self) -> &'static [&'static str] {
            &[BRONZE]
        }
        async fn staleness(&self) -> Result<Staleness> {
            Ok(Staleness::UpToDate)
        }
        async fn materialize(&self, cx: &mut RunContext<'_>) -> Result<bool> {
            if self.permanent {
                return Err(Error::Reconciliation {
                    detail: "a permanent failure".to_owned(),
                });
            }
            let left = self.failures.load(std::sync::atomic::Ordering::SeqCst);
            if left == 0 {
                cx.run.detail.assets.push(AssetRun::up_to_date(self.key));
                return Ok(true);
            }
            self.failures
                .store(left - 1, std::sync::atomic::Ordering::SeqCst);
            Err(Error::Read {
                table: "bronze/retail_transactions",
                source: "connection reset".into(),
            })
        }
    }

    fn keys(assets: &[Arc<dyn Asset>]) -> Vec<&'static str> {
        assets.iter().map(|a| a.key()).collect()
    }

    #[tokio::test]
    async fn runs_vacuum_at_most_every_ten_minutes_unless_the_retention_is_shorter() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = Lake::new(&retail_lake::LakeConfig {
            root: dir.path().join("lake").display().to_string(),
            ..retail_lake::LakeConfig::default()
        })
        .expect("lake");
        let store: Arc<dyn MetadataStore> = Arc::new(
            retail_metadata::SqliteStore::open(&dir.path().join("retail.db")).expect("store"),
        );
        let runner = |retention: Option<Duration>| {
            let runner = Runner::new(
                lake.clone(),
                Arc::clone(&store),
                Vec::new(),
                RetryPolicy::default(),
                tokio::runtime::Handle::current(),
            )
            .expect("runner");
            match retention {
                Some(retention) => runner.with_vacuum(retention),
                None => runner,
            }
        };
        let hour = Duration::from_secs(3600);
        let now = std::time::SystemTime::now();
        let later = |seconds: u64| now + Duration::from_secs(seconds);
        assert_eq!(runner(None).vacuum_due(now).await, None);
        let hourly = runner(Some(hour));
        assert_eq!(
            hourly.vacuum_due(now).await,
            Some(hour),
            "the first run vacuums"
        );
        assert_eq!(
            hourly.vacuum_due(later(5)).await,
            None,
            "the next, seconds later, does not"
        );
        assert_eq!(
            runner(Some(hour)).vacuum_due(later(10)).await,
            None,
            "nor does another process's run (another runner on the same store)"
        );
        assert_eq!(
            hourly.vacuum_due(later(600)).await,
            Some(hour),
            "ten minutes later it does"
        );
        assert_eq!(
            hourly.vacuum_due(now).await,
            Some(hour),
            "after the clock was set back, it does"
        );
        let zero = runner(Some(Duration::ZERO));
        assert_eq!(zero.vacuum_due(now).await, Some(Duration::ZERO));
        assert_eq!(
            zero.vacuum_due(now).await,
            Some(Duration::ZERO),
            "every run"
        );
    }

    #[tokio::test]
    async fn each_asset_is_retried_by_its_own_policy_and_permanent_failures_are_not_retried() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = Lake::new(&retail_lake::LakeConfig {
            root: dir.path().join("lake").display().to_string(),
            ..retail_lake::LakeConfig::default()
        })
        .expect("lake");
        let store: Arc<dyn MetadataStore> =
            Arc::new(retail_metadata::SqliteStore::in_memory().expect("store"));
        let flaky = |key, failures, permanent| -> Arc<dyn Asset> {
            Arc::new(Flaky {
                key,
                failures: std::sync::atomic::AtomicU32::new(failures),
                permanent,
            })
        };
        let once = RetryPolicy {
            max_attempts: 1,
            backoff: Duration::from_millis(1),
        };
        let patient = RetryPolicy {
            max_attempts: 4,
            backoff: Duration::from_millis(1),
        };
        let runner = |assets: Vec<Arc<dyn Asset>>| {
            Runner::new(
                lake.clone(),
                Arc::clone(&store),
                assets,
                once,
                tokio::runtime::Handle::current(),
            )
            .expect("runner")
            .with_retries([("flaky".to_owned(), patient)].into())
            .expect("known asset")
        };
        let request = |key: &str| RunRequest {
            assets: vec![key.to_owned()],
            ..RunRequest::default()
        };

        // Three transient failures: the asset's own policy (4 attempts) sees it through.
        let run = runner(vec![flaky("flaky", 3, false)])
            .run(request("flaky"), &NoProgress)
            .await
            .expect("succeeds on the fourth attempt");
        assert_eq!(run.detail.assets[0].attempts, 4);
        // The runner's policy (1 attempt) for another asset: the first failure ends the run.
        let error = runner(vec![flaky("flaky", 0, false), flaky("other", 1, false)])
            .run(request("other"), &NoProgress)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("failed to read"), "{error}");
        // A permanent failure fails at once, with its cause, whatever the policy.
        let run_error = runner(vec![flaky("flaky", 0, true)])
            .run(request("flaky"), &NoProgress)
            .await
            .unwrap_err();
        assert!(
            run_error.to_string().contains("a permanent failure"),
            "{run_error}"
        );
        let failed = store.runs(None, 1).await.expect("runs").remove(0);
        assert_eq!(failed.detail.assets[0].attempts, 1);
        assert!(
            failed
                .error
                .unwrap_or_default()
                .contains("a permanent failure")
        );
        // A policy for an asset that is not there is refused.
        let unknown = Runner::new(
            lake.clone(),
            Arc::clone(&store),
            Vec::new(),
            once,
            tokio::runtime::Handle::current(),
        )
        .expect("runner")
        .with_retries([("nope".to_owned(), patient)].into())
        .unwrap_err();
        assert!(unknown.to_string().contains("nope"), "{unknown}");
    }

    #[test]
    fn assets_are_ordered_after_their_upstream_and_bad_graphs_are_refused() {
        let assets: Vec<Arc<dyn Asset>> = vec![
            Arc::new(Fake("search", &["gold"])),
            Arc::new(Fake("gold", &["silver"])),
            Arc::new(Fake("silver", &[BRONZE])),
            Arc::new(Fake("warehouse", &["gold"])),
        ];
        let ordered = in_graph_order(assets).unwrap();
        assert_eq!(keys(&ordered), ["silver", "gold", "search", "warehouse"]);
        let missing = in_graph_order(vec![Arc::new(Fake("gold", &["silver"]))]).unwrap_err();
        assert!(missing.to_string().contains("not an asset"), "{missing}");
        let cycle = in_graph_order(vec![
            Arc::new(Fake("a", &["b"])),
            Arc::new(Fake("b", &["a"])),
        ])
        .unwrap_err();
        assert!(cycle.to_string().contains("cycle"), "{cycle}");
        let twice = in_graph_order(vec![
            Arc::new(Fake("a", &[BRONZE])),
            Arc::new(Fake("a", &[BRONZE])),
        ])
        .unwrap_err();
        assert!(twice.to_string().contains("two assets"), "{twice}");
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let policy = RetryPolicy {
            max_attempts: 4,
            backoff: Duration::from_millis(100),
        };
        for attempt in 1..=3 {
            let base = Duration::from_millis(100 * 2_u64.pow(attempt - 1));
            let wait = policy.wait(attempt);
            assert!(
                wait >= base && wait <= base.mul_f64(1.5),
                "{attempt}: {wait:?}"
            );
        }
    }
}
