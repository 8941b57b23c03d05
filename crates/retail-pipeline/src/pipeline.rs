//! The batch pipeline: bronze → silver (+ quarantine, duplicates) → gold, incremental and
//! idempotent.
//!
//! Progress is stored in the tables themselves, as Delta application transactions committed
//! atomically with the data: silver, quarantine and duplicates record the bronze version they
//! have consumed (`retail.pipeline.silver`), every gold table the silver version it was built
//! from (`retail.pipeline.gold`). A run reads only bronze files added after silver's mark, and
//! rebuilds only gold tables behind silver. A failure leaves each table at its last commit; the
//! next run resumes from the marks.

mod gold_stage;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use deltalake::arrow::array::{Array as _, AsArray as _};
use deltalake::arrow::datatypes::Int64Type;
use futures::TryStreamExt as _;
use retail_lake::Lake;
use retail_lake::schema::{
    self as tables, BRONZE_TRANSACTIONS, SILVER_CHANGES, SILVER_DUPLICATES, SILVER_QUARANTINE,
    SILVER_TRANSACTIONS, TableSpec,
};
use retail_telemetry::metrics;
use serde::Serialize;
use tracing::{Instrument as _, debug, info, info_span, instrument, warn};

use crate::error::{Error, Result};
use crate::ingest::error_chain;
use crate::progress::Progress;
use crate::quality::QualityReport;
use crate::runs::{AssetRun, MetadataStore, Reconciliation, RunKind, RunRecord, RunStatus};
use crate::silver::{SilverOutput, SilverStats, SilverTransform};

/// Application id of the silver stage's progress (value: the bronze version consumed).
pub const SILVER_APP_ID: &str = "retail.pipeline.silver";
/// Application id of the removals that updates and deletes make in silver (value: the bronze
/// version whose changes were applied). Equal to silver's [`SILVER_APP_ID`] mark when every
/// change is applied.
pub const CHANGES_APP_ID: &str = "retail.pipeline.silver.changes";
/// Application id of the gold stage's progress (value: the silver version built from).
pub const GOLD_APP_ID: &str = "retail.pipeline.gold";

/// What a run should do.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Bring silver up to date with bronze.
    pub silver: bool,
    /// Bring gold up to date with silver.
    pub gold: bool,
    /// Rebuild every gold table even when it is up to date.
    pub force_gold: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            silver: true,
            gold: true,
            force_gold: false,
        }
    }
}

/// The state of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    /// The table's name.
    pub table: &'static str,
    /// Its latest version, `None` when never written.
    pub version: Option<u64>,
    /// Its rows (from the Delta log's statistics).
    pub rows: u64,
    /// The upstream version it is built from (bronze for silver tables, silver for gold).
    pub built_from: Option<i64>,
}

/// Where the pipeline stands.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineStatus {
    /// Every table.
    pub tables: Vec<TableStatus>,
    /// True when silver has consumed every bronze version.
    pub silver_up_to_date: bool,
    /// True when every gold table is built from the latest silver version.
    pub gold_up_to_date: bool,
    /// Table counts.
    pub reconciliation: Reconciliation,
    /// The latest pipeline run.
    pub latest_run: Option<RunRecord>,
}

/// Runs the pipeline and reports on it.
#[derive(Debug, Clone)]
pub struct PipelineService {
    lake: Lake,
    store: Arc<MetadataStore>,
}

impl PipelineService {
    /// Creates the service.
    pub fn new(lake: Lake, store: Arc<MetadataStore>) -> Self {
        Self { lake, store }
    }

    /// Returns the lake the service works on.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Brings silver and gold up to date and records the run (also when it fails).
    ///
    /// # Errors
    ///
    /// When a stage fails; tables keep their last committed version and the error is recorded.
    #[instrument(skip_all)]
    pub async fn run(&self, options: RunOptions, progress: &dyn Progress) -> Result<RunRecord> {
        let _claim = self.store.claim("pipeline run")?;
        let mut run = RunRecord::start(RunKind::Pipeline);
        self.store.save_run(&run)?;
        let outcome = self.run_stages(options, progress, &mut run).await;
        match outcome {
            Ok(changed) => {
                let status = if changed {
                    RunStatus::Succeeded
                } else {
                    RunStatus::UpToDate
                };
                run.finish(status);
                metrics::record_run(status.as_str());
                self.store.save_run(&run)?;
                Ok(run)
            }
            Err(error) => {
                run.error = Some(error_chain(&error));
                run.finish(RunStatus::Failed);
                metrics::record_run(RunStatus::Failed.as_str());
                if let Err(save_error) = self.store.save_run(&run) {
                    warn!(error = %save_error, "failed to record the failed run");
                }
                Err(error)
            }
        }
    }

    async fn run_stages(
        &self,
        options: RunOptions,
        progress: &dyn Progress,
        run: &mut RunRecord,
    ) -> Result<bool> {
        let mut changed = false;
        let mut stats = None;
        if options.silver {
            let started = Instant::now();
            // Boxed: the stage's future holds the delete's state and is large.
            stats = Box::pin(
                self.run_silver(run, progress)
                    .instrument(info_span!("silver")),
            )
            .await?;
            metrics::record_stage("silver", started.elapsed().as_secs_f64());
            changed |= stats.is_some();
        }
        let mut consistency = None;
        if options.gold {
            let started = Instant::now();
            consistency = self
                .run_gold(run, options.force_gold, progress)
                .instrument(info_span!("gold"))
                .await?;
            metrics::record_stage("gold", started.elapsed().as_secs_f64());
            changed |= consistency.is_some();
        }
        let reconciliation = self.reconciliation().await?;
        info!(%reconciliation, "reconciliation");
        for table in tables::ALL_TABLES {
            metrics::set_table_rows(table.name, self.lake.count_rows(&table).await?);
        }
        run.detail.reconciliation = Some(reconciliation);
        if let Some(stats) = &stats {
            run.detail.quality = Some(QualityReport::from_stats(&run.run_id, stats, consistency));
        }
        if options.silver && !reconciliation.balances() {
            return Err(Error::Reconciliation {
                detail: reconciliation.to_string(),
            });
        }
        Ok(changed)
    }

    /// Processes bronze rows added since silver's mark. Returns `None` when there were none.
    async fn run_silver(
        &self,
        run: &mut RunRecord,
        progress: &dyn Progress,
    ) -> Result<Option<SilverStats>> {
        let lake = &self.lake;
        self.finish_pending_changes().await?;
        let silver_mark = lake
            .app_version(&SILVER_TRANSACTIONS, SILVER_APP_ID)
            .await?;
        let Some((bronze_version, files)) = lake
            .files_added_after(&BRONZE_TRANSACTIONS, mark_version(silver_mark))
            .await?
        else {
            info!("bronze is empty: nothing to process");
            return Ok(None);
        };
        let target = i64::try_from(bronze_version).expect("versions fit i64");
        if silver_mark == Some(target) {
            info!(bronze_version, "silver is up to date");
            run.detail.assets.extend(
                [
                    SILVER_QUARANTINE,
                    SILVER_DUPLICATES,
                    SILVER_CHANGES,
                    SILVER_TRANSACTIONS,
                ]
                .iter()
                .map(up_to_date),
            );
            return Ok(None);
        }
        run.detail.bronze_versions = Some((
            silver_mark.and_then(|v| u64::try_from(v).ok()),
            bronze_version,
        ));

        // Quarantine and duplicates commit before silver; after a crash between commits they
        // may be ahead, and then must not receive the same rows twice.
        let files_for = |mark: Option<i64>| async move {
            if mark == silver_mark {
                return Ok::<_, Error>(None);
            }
            let listed = lake
                .files_added_after(&BRONZE_TRANSACTIONS, mark_version(mark))
                .await?;
            Ok(Some(
                listed
                    .map(|(_, files)| files.into_iter().collect::<HashSet<_>>())
                    .unwrap_or_default(),
            ))
        };
        let quarantine_mark = lake.app_version(&SILVER_QUARANTINE, SILVER_APP_ID).await?;
        let duplicates_mark = lake.app_version(&SILVER_DUPLICATES, SILVER_APP_ID).await?;
        let changes_mark = lake.app_version(&SILVER_CHANGES, SILVER_APP_ID).await?;
        let quarantine_files = files_for(quarantine_mark).await?;
        let duplicate_files = files_for(duplicates_mark).await?;
        let change_files = files_for(changes_mark).await?;

        // Known silver ids are loaded month by month as the new rows need them.
        let silver_now = lake.open(&SILVER_TRANSACTIONS).await?;
        info!(files = files.len(), "processing new bronze files");
        let mut silver_out = lake.appender(&SILVER_TRANSACTIONS).await?;
        let mut quarantine_out = lake.appender(&SILVER_QUARANTINE).await?;
        let mut duplicates_out = lake.appender(&SILVER_DUPLICATES).await?;
        let mut changes_out = lake.appender(&SILVER_CHANGES).await?;
        let bronze = lake.open_at(&BRONZE_TRANSACTIONS, bronze_version).await?;
        progress.begin(
            "silver",
            lake.rows_in_files(&bronze, &BRONZE_TRANSACTIONS, &files)?,
        );
        // Bronze is read and transformed on one worker while this one encodes the output:
        // the two halves of the stage run on both cores.
        let (sender, mut receiver) = tokio::sync::mpsc::channel(2);
        let reader = tokio::spawn({
            let lake = lake.clone();
            let mut transform = SilverTransform::new_lazy(&run.run_id, Utc::now(), target);
            if silver_now.is_none() {
                // No silver yet: no id to look up, whatever the months.
                transform.add_known(None, []);
            }
            async move {
                let mut known_ids = 0_usize;
                for file in &files {
                    let keep = |set: &Option<HashSet<String>>| {
                        set.as_ref().is_none_or(|s| s.contains(file))
                    };
                    let keep = (
                        keep(&quarantine_files),
                        keep(&duplicate_files),
                        keep(&change_files),
                    );
                    let mut stream = lake.read_file(&BRONZE_TRANSACTIONS, &bronze, file).await?;
                    while let Some(batch) =
                        stream.try_next().await.map_err(|source| Error::Read {
                            table: BRONZE_TRANSACTIONS.name,
                            source: Box::new(source),
                        })?
                    {
                        let needed = transform
                            .ids_needed(&batch)
                            .map_err(Error::transform("silver"))?;
                        if needed.as_ref().is_none_or(|months| !months.is_empty()) {
                            let ids = match &silver_now {
                                Some(silver) => silver_ids(&lake, silver, needed.as_ref()).await?,
                                None => Vec::new(),
                            };
                            known_ids += ids.len();
                            debug!(months = ?needed, ids = ids.len(), "silver ids loaded");
                            transform.add_known(needed, ids);
                        }
                        let output = transform
                            .transform(&batch)
                            .map_err(Error::transform("silver"))?;
                        let rows = batch.num_rows() as u64;
                        if sender
                            .send(SilverMessage { output, keep, rows })
                            .await
                            .is_err()
                        {
                            return Ok(transform); // the writer stopped on an error of its own
                        }
                    }
                }
                info!(known_ids, "silver ids read for deduplication");
                Ok::<_, Error>(transform)
            }
        });
        while let Some(SilverMessage {
            output,
            keep: (keep_quarantine, keep_duplicates, keep_changes),
            rows,
        }) = receiver.recv().await
        {
            silver_out.write(output.silver).await?;
            if keep_quarantine {
                quarantine_out.write(output.quarantine).await?;
            }
            if keep_duplicates {
                duplicates_out.write(output.duplicates).await?;
            }
            if keep_changes {
                changes_out.write(output.changes).await?;
            }
            progress.advance(rows);
        }
        let transform = reader.await.map_err(Error::Task)??;
        progress.end();
        let removed = transform.removed();
        let stats = transform.into_stats();
        if !stats.reconciles() {
            return Err(Error::Reconciliation {
                detail: format!(
                    "bronze rows {} != silver {} + quarantine {} + duplicates {} + deletes {}",
                    stats.bronze_rows,
                    stats.silver_rows,
                    stats.quarantined_rows,
                    stats.duplicate_rows,
                    stats.deletes
                ),
            });
        }
        let marker = [(SILVER_APP_ID.to_owned(), target)];
        // Without changes, silver's append also says that every change is applied; with
        // changes, the delete that applies them says so (see `finish_pending_changes`).
        let silver_marker = if removed.is_empty() {
            vec![
                (SILVER_APP_ID.to_owned(), target),
                (CHANGES_APP_ID.to_owned(), target),
            ]
        } else {
            marker.to_vec()
        };
        for (table, appender, rows, marker) in [
            (
                SILVER_QUARANTINE,
                quarantine_out,
                stats.quarantined_rows,
                &marker[..],
            ),
            (
                SILVER_DUPLICATES,
                duplicates_out,
                stats.duplicate_rows,
                &marker[..],
            ),
            (
                SILVER_CHANGES,
                changes_out,
                stats.updates + stats.deletes,
                &marker[..],
            ),
            (
                SILVER_TRANSACTIONS,
                silver_out,
                stats.silver_rows,
                &silver_marker[..],
            ),
        ] {
            let started = Instant::now();
            let version = appender.commit(marker).await?;
            metrics::record_commit("silver", started.elapsed().as_secs_f64());
            metrics::record_rows_written(table.name, rows);
            run.detail.assets.push(materialized(&table, rows, version));
        }
        for (reason, rows) in &stats.quarantine_by_reason {
            if let Some(reason) = retail_domain::record::QuarantineReason::parse(reason) {
                metrics::record_quarantined(reason.as_str(), *rows);
            }
        }
        metrics::record_duplicates(stats.duplicate_rows);
        if !removed.is_empty() {
            let started = Instant::now();
            let (version, deleted) = self.remove_from_silver(&removed, target).await?;
            metrics::record_commit("silver", started.elapsed().as_secs_f64());
            info!(
                updates = stats.updates,
                deletes = stats.deletes,
                deleted,
                "changes applied to silver"
            );
            run.detail.assets.push(materialized(
                &SILVER_TRANSACTIONS,
                stats.silver_rows,
                version,
            ));
        }
        run.rows_in += stats.bronze_rows;
        run.rows_out += stats.silver_rows;
        run.quarantined += stats.quarantined_rows;
        run.duplicates += stats.duplicate_rows;
        info!(
            bronze = stats.bronze_rows,
            silver = stats.silver_rows,
            quarantined = stats.quarantined_rows,
            duplicates = stats.duplicate_rows,
            "silver stage finished"
        );
        Ok(Some(stats))
    }

    /// Deletes the silver rows that updates and deletes replaced or removed, in one commit
    /// that also records [`CHANGES_APP_ID`] = `bronze_version`.
    async fn remove_from_silver(
        &self,
        removed: &[String],
        bronze_version: i64,
    ) -> Result<(Option<u64>, u64)> {
        let (version, deleted) = self
            .lake
            .delete_where_in(
                &SILVER_TRANSACTIONS,
                "transaction_id",
                removed,
                &[(CHANGES_APP_ID.to_owned(), bronze_version)],
            )
            .await?;
        if deleted != removed.len() as u64 {
            return Err(Error::Reconciliation {
                detail: format!(
                    "{} changes should remove as many silver rows, but {deleted} were removed",
                    removed.len()
                ),
            });
        }
        Ok((version, deleted))
    }

    /// Completes a run that stopped after silver's append and before its changes were applied
    /// (a crash between the two commits): the changes are read back from
    /// `silver/retail_transaction_changes`. Gold then sees a new silver version.
    async fn finish_pending_changes(&self) -> Result<()> {
        let lake = &self.lake;
        let Some(silver_mark) = lake
            .app_version(&SILVER_TRANSACTIONS, SILVER_APP_ID)
            .await?
        else {
            return Ok(());
        };
        if lake
            .app_version(&SILVER_TRANSACTIONS, CHANGES_APP_ID)
            .await?
            == Some(silver_mark)
        {
            return Ok(());
        }
        let mut pending = Vec::new();
        if lake.latest_version(&SILVER_CHANGES).await?.is_some() {
            let mut stream = lake
                .scan(
                    &SILVER_CHANGES,
                    Some(&["target_transaction_id", "bronze_version"]),
                )
                .await?;
            while let Some(batch) = stream.try_next().await.map_err(|source| Error::Read {
                table: SILVER_CHANGES.name,
                source: Box::new(source),
            })? {
                let targets = batch.column(0).as_string::<i32>();
                let versions = batch.column(1).as_primitive::<Int64Type>();
                for row in 0..batch.num_rows() {
                    if versions.value(row) == silver_mark {
                        pending.push(targets.value(row).to_owned());
                    }
                }
            }
        }
        warn!(
            bronze_version = silver_mark,
            changes = pending.len(),
            "applying the changes of an interrupted run"
        );
        self.remove_from_silver(&pending, silver_mark).await?;
        Ok(())
    }

    /// Counts the rows of bronze, silver, quarantine and duplicates.
    ///
    /// # Errors
    ///
    /// When a table's log cannot be read.
    pub async fn reconciliation(&self) -> Result<Reconciliation> {
        Ok(Reconciliation {
            bronze: self.lake.count_rows(&BRONZE_TRANSACTIONS).await?,
            silver: self.lake.count_rows(&SILVER_TRANSACTIONS).await?,
            quarantine: self.lake.count_rows(&SILVER_QUARANTINE).await?,
            duplicates: self.lake.count_rows(&SILVER_DUPLICATES).await?,
            updates: self
                .lake
                .count_partition_rows(&SILVER_CHANGES, "change", "update")
                .await?,
            deletes: self
                .lake
                .count_partition_rows(&SILVER_CHANGES, "change", "delete")
                .await?,
        })
    }

    /// Reports every table's version and rows, whether silver and gold are up to date, and
    /// the latest run.
    ///
    /// # Errors
    ///
    /// When a table's log or the metadata store cannot be read.
    pub async fn status(&self) -> Result<PipelineStatus> {
        let mut statuses = Vec::new();
        for table in tables::ALL_TABLES {
            let delta = self.lake.open(&table).await?;
            let built_from = match (&delta, table.name.split('/').next()) {
                (Some(delta), Some("silver")) => {
                    self.lake
                        .app_version_in(delta, &table, SILVER_APP_ID)
                        .await?
                }
                (Some(delta), Some("gold")) => {
                    self.lake.app_version_in(delta, &table, GOLD_APP_ID).await?
                }
                _ => None,
            };
            statuses.push(TableStatus {
                table: table.name,
                version: delta.as_ref().and_then(|d| d.version()),
                rows: self.lake.count_rows(&table).await?,
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
                .filter(|s| s.table.starts_with("gold/"))
                .all(|s| s.built_from == silver);
        Ok(PipelineStatus {
            tables: statuses,
            silver_up_to_date,
            gold_up_to_date,
            reconciliation: self.reconciliation().await?,
            latest_run: self
                .store
                .runs(Some(RunKind::Pipeline), 1)?
                .into_iter()
                .next(),
        })
    }

    /// Returns the metadata store.
    pub fn store(&self) -> &Arc<MetadataStore> {
        &self.store
    }
}

/// What the silver reader hands to the writer: the output of one bronze batch.
struct SilverMessage {
    output: SilverOutput,
    /// Whether quarantine, duplicates and changes take their part (they may be ahead of
    /// silver).
    keep: (bool, bool, bool),
    /// Bronze rows the output came from.
    rows: u64,
}

/// Reads the transaction ids of silver's files in the given invoice months (`None`: all).
async fn silver_ids(
    lake: &Lake,
    silver: &deltalake::DeltaTable,
    months: Option<&HashSet<String>>,
) -> Result<Vec<u128>> {
    let files = match months {
        Some(months) => {
            lake.files_in_partitions(silver, &SILVER_TRANSACTIONS, "invoice_month", months)?
        }
        None => lake.data_files(silver, &SILVER_TRANSACTIONS)?,
    };
    let mut ids = Vec::new();
    for file in &files {
        let mut stream = lake
            .read_file_columns(
                &SILVER_TRANSACTIONS,
                silver,
                file,
                Some(&["transaction_id"]),
            )
            .await?;
        while let Some(batch) = stream.try_next().await? {
            let column = batch.column(0).as_string::<i32>();
            ids.reserve(column.len());
            ids.extend(
                column
                    .iter()
                    .flatten()
                    .filter_map(|id| u128::from_str_radix(id, 16).ok()),
            );
        }
    }
    Ok(ids)
}

fn mark_version(mark: Option<i64>) -> Option<u64> {
    mark.and_then(|v| u64::try_from(v).ok())
}

fn materialized(table: &TableSpec, rows: u64, version: Option<u64>) -> AssetRun {
    AssetRun {
        asset: table.name.to_owned(),
        status: "materialized".to_owned(),
        rows,
        version,
    }
}

fn up_to_date(table: &TableSpec) -> AssetRun {
    AssetRun {
        asset: table.name.to_owned(),
        status: "up_to_date".to_owned(),
        rows: 0,
        version: None,
    }
}
