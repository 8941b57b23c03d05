//! Backfills: gold's invoice months re-materialised by a series of pipeline runs, each month's
//! state recorded as it goes, and resumable after a failure.
//!
//! A backfill is a run record of kind `backfill` (who asked, the months, its runs) and one
//! partition state per month in the scope `backfill:<id>`. It holds the pipeline's claim from
//! start to end. Its months are taken in order, `partitions_per_run` at a time: each group is
//! one pipeline run of `gold` that rebuilds those months (and whatever silver changed since
//! gold's last build) and commits gold once, its checks evaluated as in any run. Groups are
//! not run side by side, because every gold build also rewrites the whole-history tables
//! (customers, products, RFM, cohorts) from all months: two at once would each overwrite the
//! other's. The months of one group are read and computed together, on every core. When every
//! month is done, one more run brings the assets downstream of gold (models, followers) up to
//! date. A failed run stops the backfill with its months `failed`; `resume` takes every month
//! not yet `succeeded` again.

use std::sync::Arc;

use retail_domain::progress::{NoProgress, Progress};
use retail_lake::schema::SILVER_TRANSACTIONS;
use retail_metadata::{
    Claim, PartitionFilter, PartitionState, PartitionStatus, RunKind, RunRecord, RunStatus,
    backfill_scope,
};
use tracing::{Instrument as _, info, info_span, warn};

use super::{RunRequest, Runner};
use crate::asset::Asset;
use crate::calendar::{month_label, parse_month_label};
use crate::error::{Error, Result};

/// The asset a backfill re-materialises: gold, partitioned by invoice month.
pub const PARTITIONED_ASSET: &str = "gold";

/// What to backfill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRequest {
    /// The invoice months (`2011-03`), each once; see [`months_between`].
    pub partitions: Vec<String>,
    /// Months per pipeline run (at least 1).
    pub partitions_per_run: u32,
    /// Who asked: `cli`, `api:<user>`.
    pub requested_by: String,
}

/// Every month from `from` to `to` (`YYYY-MM`, both included), in order.
///
/// # Errors
///
/// [`Error::BadPartitions`] when either is not a month, [`Error::UnusablePartitions`] when
/// `to` is before `from`.
pub fn months_between(from: &str, to: &str) -> Result<Vec<String>> {
    let (first, last) = (invoice_month(from)?, invoice_month(to)?);
    if last < first {
        return Err(Error::UnusablePartitions {
            detail: format!("the backfill's last month {to} is before its first {from}"),
        });
    }
    Ok((first..=last).map(month_label).collect())
}

/// An invoice month (a gold partition) read strictly: `2011-03`, nothing else; its index.
///
/// # Errors
///
/// [`Error::BadPartitions`] naming the label.
pub fn invoice_month(label: &str) -> Result<i32> {
    parse_month_label(label)
        .filter(|index| month_label(*index) == label)
        .ok_or_else(|| Error::BadPartitions {
            detail: format!("{label:?} is not an invoice month: write YYYY-MM, e.g. 2011-03"),
        })
}

impl Runner {
    /// Runs a backfill to its end under a claim of its own and returns its record (also when
    /// it failed: the error is in the record).
    ///
    /// # Errors
    ///
    /// When the request is refused (malformed months, months silver has no rows in), another
    /// run holds the pipeline, or the metadata store fails.
    pub async fn backfill(
        &self,
        request: BackfillRequest,
        progress: &dyn Progress,
    ) -> Result<RunRecord> {
        let claim = self.claim().await?;
        let backfill = self.begin_backfill(&request).await?;
        Ok(self.run_backfill(&claim, backfill, progress).await)
    }

    /// Starts a backfill in the background and returns its record at once (status
    /// `running`); follow it with [`Runner::backfill_record`] and its partitions.
    ///
    /// # Errors
    ///
    /// As [`Runner::backfill`] before anything runs: then nothing starts.
    pub async fn start_backfill(self: &Arc<Self>, request: BackfillRequest) -> Result<RunRecord> {
        let claim = self.claim().await?;
        let backfill = self.begin_backfill(&request).await?;
        Ok(self.spawn_backfill(claim, backfill))
    }

    /// Takes a failed backfill up again: every month not `succeeded` (failed, or left
    /// `running` by a process that died), then the downstream run. Returns its record when it
    /// ends.
    ///
    /// # Errors
    ///
    /// When there is no such backfill, it is not failed, another run holds the pipeline, or
    /// the metadata store fails.
    pub async fn resume_backfill(
        &self,
        id: &str,
        requested_by: &str,
        progress: &dyn Progress,
    ) -> Result<RunRecord> {
        let claim = self.claim().await?;
        let backfill = self.reopen_backfill(id, requested_by).await?;
        Ok(self.run_backfill(&claim, backfill, progress).await)
    }

    /// As [`Runner::resume_backfill`], in the background.
    ///
    /// # Errors
    ///
    /// As [`Runner::resume_backfill`] before anything runs: then nothing starts.
    pub async fn start_resume_backfill(
        self: &Arc<Self>,
        id: &str,
        requested_by: &str,
    ) -> Result<RunRecord> {
        let claim = self.claim().await?;
        let backfill = self.reopen_backfill(id, requested_by).await?;
        Ok(self.spawn_backfill(claim, backfill))
    }

    /// A backfill's record.
    ///
    /// # Errors
    ///
    /// [`Error::BackfillNotFound`] when no backfill has this id.
    pub async fn backfill_record(&self, id: &str) -> Result<RunRecord> {
        match self.store.run(id).await? {
            Some(run) if run.kind == RunKind::Backfill => Ok(run),
            _ => Err(Error::BackfillNotFound { id: id.to_owned() }),
        }
    }

    fn spawn_backfill(self: &Arc<Self>, claim: Claim, backfill: RunRecord) -> RunRecord {
        let started = backfill.clone();
        let runner = Arc::clone(self);
        self.jobs.spawn(
            async move {
                let done = runner.run_backfill(&claim, backfill, &NoProgress).await;
                if let Some(error) = &done.error {
                    warn!(backfill = %done.run_id, %error, "background backfill failed");
                }
            }
            .in_current_span(),
        );
        started
    }

    /// Checks a request and records the backfill with every month pending.
    async fn begin_backfill(&self, request: &BackfillRequest) -> Result<RunRecord> {
        if request.partitions.is_empty() {
            return Err(Error::UnusablePartitions {
                detail: "a backfill needs at least one month".to_owned(),
            });
        }
        if request.partitions_per_run == 0 {
            return Err(Error::BadPartitions {
                detail: "partitions per run must be at least 1".to_owned(),
            });
        }
        let mut months = Vec::with_capacity(request.partitions.len());
        for label in &request.partitions {
            months.push(invoice_month(label)?);
        }
        months.sort_unstable();
        months.dedup();
        let months: Vec<String> = months.into_iter().map(month_label).collect();
        let held = self
            .lake
            .partition_values(&SILVER_TRANSACTIONS, "invoice_month")
            .await?;
        let missing: Vec<&str> = months
            .iter()
            .filter(|m| !held.contains(*m))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let range = match (held.first(), held.last()) {
                (Some(first), Some(last)) => format!("its months are {first} to {last}"),
                _ => "it is empty: ingest and run the pipeline first".to_owned(),
            };
            return Err(Error::UnusablePartitions {
                detail: format!("silver has no rows in {}; {range}", missing.join(", ")),
            });
        }
        let mut backfill = RunRecord::start(RunKind::Backfill);
        backfill.detail.requested_by = Some(request.requested_by.clone());
        backfill.detail.selection = vec![PARTITIONED_ASSET.to_owned()];
        backfill.detail.partitions.clone_from(&months);
        backfill.detail.partitions_per_run = Some(request.partitions_per_run);
        // The partitions first: a record that exists always has its months.
        let pending: Vec<PartitionState> = months.iter().map(PartitionState::pending).collect();
        self.store
            .save_partitions(&backfill_scope(&backfill.run_id), &pending)
            .await?;
        self.store.save_run(&backfill).await?;
        info!(backfill = %backfill.run_id, months = months.len(), by = %request.requested_by, "backfill started");
        Ok(backfill)
    }

    /// A failed backfill made `running` again.
    async fn reopen_backfill(&self, id: &str, requested_by: &str) -> Result<RunRecord> {
        let mut backfill = self.backfill_record(id).await?;
        if backfill.status != RunStatus::Failed {
            return Err(Error::BackfillNotResumable {
                id: id.to_owned(),
                status: backfill.status.as_str(),
            });
        }
        backfill.status = RunStatus::Running;
        backfill.finished_at = None;
        backfill.duration_ms = None;
        backfill.error = None;
        self.store.save_run(&backfill).await?;
        info!(backfill = %id, by = %requested_by, "backfill resumed");
        Ok(backfill)
    }

    /// Runs the months not yet done, then the downstream assets; records the outcome. Never
    /// fails: what went wrong is in the returned record.
    async fn run_backfill(
        &self,
        claim: &Claim,
        mut backfill: RunRecord,
        progress: &dyn Progress,
    ) -> RunRecord {
        let span = info_span!("backfill", backfill = %backfill.run_id);
        let outcome = self
            .backfill_steps(claim, &mut backfill, progress)
            .instrument(span)
            .await;
        match outcome {
            Ok(()) => backfill.finish(RunStatus::Succeeded),
            Err(error) => backfill.fail(&error),
        }
        if let Err(error) = self.store.save_run(&backfill).await {
            warn!(backfill = %backfill.run_id, %error, "failed to record the backfill's end");
        }
        info!(backfill = %backfill.run_id, status = backfill.status.as_str(), "backfill finished");
        backfill
    }

    async fn backfill_steps(
        &self,
        claim: &Claim,
        backfill: &mut RunRecord,
        progress: &dyn Progress,
    ) -> Result<()> {
        let scope = backfill_scope(&backfill.run_id);
        let per_run = backfill.detail.partitions_per_run.unwrap_or(1).max(1) as usize;
        let todo = self.months_to_do(&scope).await?;
        let total = todo.len() as u64;
        progress.begin("backfill: months", total);
        for group in todo.chunks(per_run) {
            let months: Vec<String> = group.iter().map(|p| p.partition.clone()).collect();
            let (request, selected, run) = self
                .begin_step(backfill, vec![PARTITIONED_ASSET.to_owned()], months.clone())
                .await?;
            let run_id = run.run_id.clone();
            let taking: Vec<PartitionState> = group
                .iter()
                .map(|p| PartitionState {
                    status: PartitionStatus::Running,
                    run_id: Some(run_id.clone()),
                    attempts: p.attempts + 1,
                    error: None,
                    updated_at: retail_metadata::now(),
                    ..p.clone()
                })
                .collect();
            self.store.save_partitions(&scope, &taking).await?;
            let outcome = self
                .execute(claim, run, selected, &request, &NoProgress)
                .await;
            let ended: Vec<PartitionState> = taking
                .into_iter()
                .map(|p| match &outcome {
                    Ok(run) => PartitionState {
                        status: PartitionStatus::Succeeded,
                        rows: run.detail.partition_rows.get(&p.partition).copied(),
                        updated_at: retail_metadata::now(),
                        ..p
                    },
                    Err(error) => PartitionState {
                        status: PartitionStatus::Failed,
                        error: Some(retail_domain::error::error_chain(error)),
                        updated_at: retail_metadata::now(),
                        ..p
                    },
                })
                .collect();
            self.store.save_partitions(&scope, &ended).await?;
            progress.advance(group.len() as u64);
            if let Err(error) = outcome {
                progress.end();
                return Err(Error::BackfillStep {
                    run_id,
                    months: format!("months {}", months.join(", ")),
                    source: Box::new(error),
                });
            }
        }
        progress.end();
        // The assets downstream of gold, once, from the gold the months left.
        let downstream: Vec<String> = self
            .with_downstream(PARTITIONED_ASSET)
            .into_iter()
            .filter(|key| key != PARTITIONED_ASSET)
            .collect();
        if !downstream.is_empty() {
            let (request, selected, run) =
                self.begin_step(backfill, downstream, Vec::new()).await?;
            let run_id = run.run_id.clone();
            self.execute(claim, run, selected, &request, progress)
                .await
                .map_err(|error| Error::BackfillStep {
                    run_id,
                    months: "the assets downstream of gold".to_owned(),
                    source: Box::new(error),
                })?;
        }
        Ok(())
    }

    /// Records the start of one of a backfill's pipeline runs (of `assets`, asked to rebuild
    /// `partitions`) and adds it to the backfill's runs; returns what `execute` takes.
    async fn begin_step(
        &self,
        backfill: &mut RunRecord,
        assets: Vec<String>,
        partitions: Vec<String>,
    ) -> Result<(RunRequest, Vec<Arc<dyn Asset>>, RunRecord)> {
        let request = RunRequest {
            assets,
            requested_by: format!("backfill:{}", backfill.run_id),
            partitions,
            backfill: Some(backfill.run_id.clone()),
            ..RunRequest::default()
        };
        let selected = self.select(&request.assets)?;
        let run = self.begin(&request).await?;
        backfill.detail.runs.push(run.run_id.clone());
        self.store.save_run(backfill).await?;
        Ok((request, selected, run))
    }

    /// Every month of a backfill not yet `succeeded`, in order, read page by page.
    async fn months_to_do(&self, scope: &str) -> Result<Vec<PartitionState>> {
        let mut todo = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .partitions(
                    scope,
                    &PartitionFilter {
                        status: None,
                        after: after.clone(),
                        limit: 500,
                    },
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.partition.clone());
            todo.extend(
                page.into_iter()
                    .filter(|p| p.status != PartitionStatus::Succeeded),
            );
        }
        Ok(todo)
    }
}
