//! The silver asset: bronze rows not yet processed → silver, quarantine, duplicates and the
//! applied changes (see `ARCHITECTURE.md`, data flow step 2).
//!
//! Progress is stored in the tables themselves: silver, quarantine, duplicates and changes
//! record the bronze version they have consumed (`retail.pipeline.silver`) in the same commit
//! as their rows, so a failure leaves each table at its last commit and the next run resumes.

use std::collections::HashSet;
use std::time::Instant;

use async_trait::async_trait;
use chrono::Utc;
use deltalake::arrow::array::{Array as _, AsArray as _, RecordBatch};
use deltalake::arrow::datatypes::Int64Type;
use futures::TryStreamExt as _;
use retail_domain::progress::Progress;
use retail_lake::Lake;
use retail_lake::schema::{
    BRONZE_TRANSACTIONS, SILVER_CHANGES, SILVER_DUPLICATES, SILVER_QUARANTINE, SILVER_TRANSACTIONS,
    TableSpec,
};
use retail_metadata::{AssetRun, RunRecord};
use retail_telemetry::metrics;
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::{Asset, BRONZE, RunContext, SilverRows, Staleness};
use crate::error::{Error, Result};
use crate::gold::SilverSet;
use crate::silver::{SilverOutput, SilverRules, SilverStats, SilverTransform};
use crate::{CHANGES_APP_ID, SILVER_APP_ID};

/// Bronze → silver, quarantine, duplicates and changes.
#[derive(Debug, Clone)]
pub struct SilverAsset {
    lake: Lake,
    rules: SilverRules,
    handover_max_rows: u64,
}

/// The most bronze rows a stage hands over to gold in memory by default ([`SilverRows`]):
/// about 160 MB of interned rows (a `Row` is 80 bytes) and their strings.
pub const DEFAULT_HANDOVER_MAX_ROWS: u64 = 2_000_000;

impl SilverAsset {
    /// The silver asset of `lake`, applying the contract with `rules`.
    pub fn new(lake: Lake, rules: SilverRules) -> Self {
        Self {
            lake,
            rules,
            handover_max_rows: DEFAULT_HANDOVER_MAX_ROWS,
        }
    }

    /// Hands silver's rows over to gold in memory ([`SilverRows`]) only when the stage
    /// processes at most `rows` bronze rows (0: never): above it, gold reads them back from
    /// silver, which takes longer and holds less memory at once.
    #[must_use]
    pub fn with_handover_max_rows(mut self, rows: u64) -> Self {
        self.handover_max_rows = rows;
        self
    }

    /// Processes the bronze rows added after silver's mark up to bronze version `version`
    /// (not beyond): how an erasure brings silver to the version before its rewrite of bronze
    /// when an ingestion committed in between. Records what it did in `run`.
    ///
    /// # Errors
    ///
    /// As a run of the asset.
    pub async fn run_until(
        &self,
        run: &mut RunRecord,
        progress: &dyn Progress,
        version: u64,
    ) -> Result<bool> {
        Ok(
            Box::pin(self.run_silver(run, progress, Some(version), false))
                .await?
                .is_some(),
        )
    }
}

#[async_trait]
impl Asset for SilverAsset {
    fn key(&self) -> &'static str {
        "silver"
    }

    fn description(&self) -> &'static str {
        "bronze rows cleansed by the contract's rules into silver; the rest to quarantine or \
         duplicates; updates and deletes applied"
    }

    fn upstream(&self) -> &'static [&'static str] {
        &[BRONZE]
    }

    fn tables(&self) -> Vec<TableSpec> {
        retail_lake::schema::tables_of(retail_lake::schema::Writer::Silver)
    }

    async fn staleness(&self) -> Result<Staleness> {
        let Some(bronze) = self.lake.latest_version(&BRONZE_TRANSACTIONS).await? else {
            return Ok(Staleness::UpToDate);
        };
        Ok(
            match self
                .lake
                .app_version(&SILVER_TRANSACTIONS, SILVER_APP_ID)
                .await?
            {
                None => Staleness::Missing,
                Some(mark) if mark == bronze as i64 => Staleness::UpToDate,
                Some(mark) => Staleness::Stale(format!(
                    "bronze is at version {bronze}, silver has processed up to version {mark}"
                )),
            },
        )
    }

    async fn materialize(&self, cx: &mut RunContext<'_>) -> Result<bool> {
        // Boxed: the stage's future holds the delete's state and is large.
        let outcome = Box::pin(
            self.run_silver(cx.run, cx.progress, None, cx.next_takes_silver)
                .instrument(info_span!("silver")),
        )
        .await?;
        let Some((stats, rows)) = outcome else {
            return Ok(false);
        };
        cx.silver = Some(stats);
        cx.silver_rows = rows;
        Ok(true)
    }
}

impl SilverAsset {
    /// Processes bronze rows added since silver's mark, up to bronze version `upto` (`None`:
    /// the latest). Returns `None` when there were none. With `keep_rows` (gold is next),
    /// also returns the rows silver holds after the stage when they are all this stage's and
    /// at most the handover's limit ([`SilverRows`]).
    async fn run_silver(
        &self,
        run: &mut RunRecord,
        progress: &dyn Progress,
        upto: Option<u64>,
        keep_rows: bool,
    ) -> Result<Option<(SilverStats, Option<SilverRows>)>> {
        let lake = &self.lake;
        if upto.is_none() {
            crate::erasure::check_no_erasure_pending(lake).await?;
        }
        self.finish_pending_changes().await?;
        let silver_mark = lake
            .app_version(&SILVER_TRANSACTIONS, SILVER_APP_ID)
            .await?;
        let Some((bronze_version, files)) = lake
            .files_added_between(&BRONZE_TRANSACTIONS, mark_version(silver_mark), upto)
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
                .map(|table| AssetRun::up_to_date(table.name)),
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
                .files_added_between(&BRONZE_TRANSACTIONS, mark_version(mark), upto)
                .await?;
            Ok(Some(
                listed
                    .map(|(_, files)| files.into_iter().collect::<HashSet<_>>())
                    .unwrap_or_default(),
            ))
        };
        // Each of these reads one table's log: they are read at once.
        let (quarantine_mark, duplicates_mark, changes_mark) = tokio::try_join!(
            lake.app_version(&SILVER_QUARANTINE, SILVER_APP_ID),
            lake.app_version(&SILVER_DUPLICATES, SILVER_APP_ID),
            lake.app_version(&SILVER_CHANGES, SILVER_APP_ID),
        )?;
        let (quarantine_files, duplicate_files, change_files) = tokio::try_join!(
            files_for(quarantine_mark),
            files_for(duplicates_mark),
            files_for(changes_mark),
        )?;

        // Known silver ids are loaded month by month as the new rows need them.
        let (silver_now, silver_out, quarantine_out, duplicates_out, changes_out, bronze) = tokio::try_join!(
            lake.open(&SILVER_TRANSACTIONS),
            lake.appender(&SILVER_TRANSACTIONS),
            lake.appender(&SILVER_QUARANTINE),
            lake.appender(&SILVER_DUPLICATES),
            lake.appender(&SILVER_CHANGES),
            lake.open_at(&BRONZE_TRANSACTIONS, bronze_version),
        )?;
        let (mut silver_out, mut quarantine_out, mut duplicates_out, mut changes_out) =
            (silver_out, quarantine_out, duplicates_out, changes_out);
        info!(files = files.len(), "processing new bronze files");
        let bronze_rows = lake.rows_in_files(&bronze, &BRONZE_TRANSACTIONS, &files)?;
        progress.begin("silver", bronze_rows);
        // When silver will hold only this stage's rows, they are also interned for gold on a
        // worker of their own, as gold would intern them after reading them back. (The bronze
        // count is from the log's statistics; the keeper also stops past the limit itself.)
        let max_rows = self.handover_max_rows;
        let whole_at = if keep_rows && max_rows > 0 && bronze_rows <= max_rows {
            silver_out.holds_only_this_write_at()?
        } else {
            None
        };
        // The keeper's sender, and its task with the version its rows would be silver's at.
        let (keeper, kept) = match whole_at {
            Some(at) => {
                let (sender, receiver) = tokio::sync::mpsc::channel(4);
                let capacity = usize::try_from(bronze_rows).unwrap_or(0);
                let task = keep_rows_for_gold(receiver, capacity, max_rows).in_current_span();
                (Some(sender), Some((at, tokio::spawn(task))))
            }
            None => (None, None),
        };
        // Bronze is read and transformed on one worker while this one encodes the output:
        // the two halves of the stage run on both cores.
        let (sender, mut receiver) = tokio::sync::mpsc::channel(2);
        let reader = tokio::spawn({
            let lake = lake.clone();
            let mut transform =
                SilverTransform::new_lazy(&run.run_id, Utc::now(), target).with_rules(self.rules);
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
            if let Some(keeper) = &keeper {
                // An error of the keeper's own is reported when it is joined below.
                let _ = keeper.send(output.silver.clone()).await;
            }
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
        drop(keeper);
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
        let mut silver_version = None;
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
            if table.name == SILVER_TRANSACTIONS.name {
                silver_version = version;
            }
            metrics::record_commit("silver", started.elapsed().as_secs_f64());
            metrics::record_rows_written(table.name, rows);
            run.detail
                .assets
                .push(AssetRun::materialized(table.name, rows, version));
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
            run.detail.assets.push(AssetRun::materialized(
                SILVER_TRANSACTIONS.name,
                stats.silver_rows,
                version,
            ));
        }
        // The kept rows are silver's at the version committed only when that version came
        // right after the snapshot the append was built on and no change removed a row.
        let rows = match kept {
            Some((at, kept)) if removed.is_empty() && silver_version == Some(at) => {
                // Silver is committed: whatever befell the keeper, gold can read silver back.
                match kept.await {
                    Ok(Ok(Some(set))) => Some(SilverRows { version: at, set }),
                    Ok(Ok(None)) => None,
                    Ok(Err(error)) => {
                        warn!(%error, "the rows kept for gold are incomplete: gold reads silver back");
                        None
                    }
                    Err(error) => {
                        warn!(%error, "the worker keeping rows for gold failed: gold reads silver back");
                        None
                    }
                }
            }
            Some((_, kept)) => {
                kept.abort();
                None
            }
            None => None,
        };
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
        Ok(Some((stats, rows)))
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

pub(crate) fn mark_version(mark: Option<i64>) -> Option<u64> {
    mark.and_then(|v| u64::try_from(v).ok())
}

/// Interns the silver batches the stage writes, as gold's read of silver would
/// ([`SilverSet::push_batch`]), into a set with room for `capacity` rows. Past `max_rows` rows
/// it drops what it holds and returns `None` (gold then reads silver back).
async fn keep_rows_for_gold(
    mut batches: tokio::sync::mpsc::Receiver<RecordBatch>,
    capacity: usize,
    max_rows: u64,
) -> Result<Option<SilverSet>> {
    let mut set = SilverSet::with_capacity(capacity);
    while let Some(batch) = batches.recv().await {
        if (set.len() + batch.num_rows()) as u64 > max_rows {
            debug!(
                max_rows,
                "more silver rows than the handover takes: gold reads silver back"
            );
            return Ok(None);
        }
        set.push_batch(&batch).map_err(Error::transform("silver"))?;
    }
    Ok(Some(set))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gold::tests::silver_batch;

    async fn kept(batches: usize, max_rows: u64) -> Option<SilverSet> {
        let batch = silver_batch(&[
            (Some(1), 0, 1, 10, 100, 2, Some(1), 3, 1_500),
            (None, 1, 2, 11, 200, 3, None, -1, 2_000),
            (Some(2), 2, 3, 12, 300, 4, Some(2), 5, 990),
        ]);
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let keeper = tokio::spawn(keep_rows_for_gold(receiver, 0, max_rows));
        for _ in 0..batches {
            // Past the limit the keeper stops listening, as the stage's writer then sees.
            let _ = sender.send(batch.clone()).await;
        }
        drop(sender);
        keeper.await.expect("no panic").expect("silver rows")
    }

    #[tokio::test]
    async fn the_keeper_holds_every_row_up_to_its_limit_and_nothing_past_it() {
        assert_eq!(kept(2, 6).await.map(|set| set.len()), Some(6));
        assert!(
            kept(2, 5).await.is_none(),
            "six rows are over a limit of five"
        );
        assert_eq!(kept(0, 5).await.map(|set| set.len()), Some(0));
    }
}
