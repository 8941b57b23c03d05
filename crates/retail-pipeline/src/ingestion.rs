//! Ingestion into bronze: one service for every [`Source`] (files, HTTP, streams).
//!
//! Each batch's checkpoint is checked against bronze on the very snapshot the commit is built
//! on, and recorded as a Delta application transaction in the same commit as the batch's rows.
//! So the check and the write are one atomic step: if another process (another API replica)
//! commits the same checkpoint in between, Delta's conflict check refuses this commit, the
//! table is unchanged, and the batch counts as already ingested. No lock is needed, and a crash
//! at any point leaves bronze at its last commit: what was not committed is ingested again by
//! the next attempt, what was committed is recognised and skipped.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use retail_domain::privacy::ErasedSubjects;
use retail_domain::progress::Progress;
use retail_ingest::{Checkpoint, FileSource, Lineage, Source, SourceBatch, to_bronze};
use retail_lake::schema::BRONZE_TRANSACTIONS;
use retail_lake::{Lake, TableAppender};
use retail_metadata::{FileOutcome, MetadataStore, RunKind, RunRecord, RunStatus};
use retail_telemetry::metrics;
use tracing::{info, instrument, warn};

use crate::error::{Error, Result};

/// Settings of ingestion.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Bronze rows per Delta commit: a large ingestion becomes several commits, each whole
    /// (a source unit, such as a file, never spans two).
    pub commit_rows: u64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            commit_rows: 2_000_000,
        }
    }
}

/// Who asked for an ingestion and how to record it.
#[derive(Debug, Clone, Default)]
pub struct IngestRequest {
    /// `cli`, `api:<user>`, `stream:<name>`, ...
    pub requested_by: Option<String>,
    /// SHA-256 (hex) of the caller's idempotency key, kept in the run record.
    pub idempotency_digest: Option<String>,
    /// Record the run also when it wrote nothing (every unit was in bronze already). A replayed
    /// HTTP request is not worth a record; a `retail ingest` of known files is.
    pub record_if_unchanged: bool,
}

/// Lands sources in `bronze/retail_transactions`.
#[derive(Debug, Clone)]
pub struct IngestionService {
    lake: Lake,
    store: Arc<dyn MetadataStore>,
    options: IngestOptions,
    erased: Erased,
    /// Told of every recorded ingestion (OpenLineage events).
    listener: Option<Arc<dyn crate::RunListener>>,
}

/// The customers erased so far, shared by ingestion and the erasure that adds to them: records
/// naming one are erased again on arrival and never reach bronze (ADR 0013). `None`: no
/// privacy key, so nothing is recognised. Readers take the current list (an `Arc`, cheap);
/// an erasure replaces it with a copy that holds one more subject.
pub type Erased = Arc<std::sync::RwLock<Option<Arc<ErasedSubjects>>>>;

impl IngestionService {
    /// Creates the service, with no erased customers to keep out.
    pub fn new(lake: Lake, store: Arc<dyn MetadataStore>, options: IngestOptions) -> Self {
        Self {
            lake,
            store,
            options,
            erased: Erased::default(),
            listener: None,
        }
    }

    /// Tells `listener` of every ingestion it records.
    #[must_use]
    pub fn with_listener(mut self, listener: Arc<dyn crate::RunListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Keeps the customers of `erased` out of bronze.
    #[must_use]
    pub fn with_erased(mut self, erased: Erased) -> Self {
        self.erased = erased;
        self
    }

    /// What it keeps out of bronze.
    pub fn erased(&self) -> &Erased {
        &self.erased
    }

    /// The lake it writes to.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The version bronze records for a source's checkpoint `app_id` (a stream partition's
    /// next offset), if any: where a restarted source resumes.
    ///
    /// # Errors
    ///
    /// When the lake cannot be read.
    pub async fn checkpoint(&self, app_id: &str) -> Result<Option<i64>> {
        Ok(self.lake.app_version(&BRONZE_TRANSACTIONS, app_id).await?)
    }

    /// Ingests files, directories and glob patterns: every input is checked first (a bad file
    /// changes nothing); content already in bronze is listed as skipped. One file ingestion runs
    /// at a time per metadata store.
    ///
    /// # Errors
    ///
    /// When an input matches nothing, a file cannot be read or has no retail header (then
    /// nothing is written), another file ingestion is running, or the lake fails.
    #[instrument(skip_all, fields(inputs = inputs.len()))]
    pub async fn ingest_files(
        &self,
        inputs: &[String],
        requested_by: &str,
        progress: &dyn Progress,
    ) -> Result<RunRecord> {
        let _claim = self.store.claim("ingestion").await?;
        let mut run = RunRecord::start(RunKind::Ingest);
        run.detail.requested_by = Some(requested_by.to_owned());
        let mut source = match FileSource::open(inputs, self.lake.batch_rows(), progress).await {
            Ok(source) => source,
            Err(error) => {
                let error = Error::from(error);
                run.fail(&error);
                self.record(&run, "file").await;
                return Err(error);
            }
        };
        let request = IngestRequest {
            requested_by: Some(requested_by.to_owned()),
            idempotency_digest: None,
            record_if_unchanged: true,
        };
        self.ingest_into(&mut source, run, &request, progress).await
    }

    /// Lands every batch of `source` in bronze and records one run.
    ///
    /// # Errors
    ///
    /// When the source or the lake fails; what was committed before stays, and its
    /// checkpoints make the next attempt skip it.
    pub async fn ingest(
        &self,
        source: &mut dyn Source,
        request: &IngestRequest,
        progress: &dyn Progress,
    ) -> Result<RunRecord> {
        let mut run = RunRecord::start(RunKind::Ingest);
        run.detail.requested_by.clone_from(&request.requested_by);
        self.ingest_into(source, run, request, progress).await
    }

    async fn ingest_into(
        &self,
        source: &mut dyn Source,
        mut run: RunRecord,
        request: &IngestRequest,
        progress: &dyn Progress,
    ) -> Result<RunRecord> {
        run.detail
            .idempotency_key
            .clone_from(&request.idempotency_digest);
        let started = Instant::now();
        match self.write_batches(source, &mut run, progress).await {
            Ok(()) => {
                let status = if run.rows_out == 0 {
                    RunStatus::UpToDate
                } else {
                    RunStatus::Succeeded
                };
                run.finish(status);
                if status == RunStatus::Succeeded || request.record_if_unchanged {
                    self.record(&run, source.system()).await;
                }
                info!(
                    source = source.system(),
                    rows = run.rows_out,
                    units = run.detail.files.iter().filter(|f| !f.skipped).count(),
                    skipped = run.detail.files.iter().filter(|f| f.skipped).count(),
                    seconds = started.elapsed().as_secs_f64(),
                    "ingestion finished"
                );
                Ok(run)
            }
            Err(error) => {
                run.fail(&error);
                self.record(&run, source.system()).await;
                Err(error)
            }
        }
    }

    /// Saves a run record and tells the listener. The records are durable in bronze already:
    /// a store that fails now must not fail the caller, so the failure is logged.
    async fn record(&self, run: &RunRecord, system: &str) {
        if let Err(error) = self.store.save_run(run).await {
            warn!(%error, run = %run.run_id, "failed to record the ingestion");
        }
        if let Some(listener) = &self.listener {
            listener.ingestion_finished(run, system).await;
        }
    }

    async fn write_batches(
        &self,
        source: &mut dyn Source,
        run: &mut RunRecord,
        progress: &dyn Progress,
    ) -> Result<()> {
        let announced = source.announced();
        let mut skipped = Vec::new();
        if !announced.is_empty() {
            // Units bronze holds already are dropped before they are read.
            let bronze = self.lake.open(&BRONZE_TRANSACTIONS).await?;
            let mut seen = HashSet::new();
            for (position, unit) in announced.iter().enumerate() {
                let recorded = match &bronze {
                    Some(bronze) => {
                        self.lake
                            .app_version_in(bronze, &BRONZE_TRANSACTIONS, &unit.checkpoint.app_id)
                            .await?
                    }
                    None => None,
                };
                let known = held(&unit.checkpoint, recorded)?;
                if known || !seen.insert(unit.checkpoint.app_id.clone()) {
                    skipped.push(position);
                    info!(location = %unit.location, "already ingested, skipped");
                    metrics::record_skipped_file();
                    run.detail.files.push(FileOutcome {
                        path: unit.location.clone(),
                        checksum: unit.checksum.clone(),
                        rows: 0,
                        malformed: 0,
                        skipped: true,
                        erased: 0,
                    });
                }
            }
            source.skip(&skipped);
        }
        progress.begin("ingesting", (announced.len() - skipped.len()) as u64);
        let mut writer: Option<TableAppender> = None;
        // The checkpoints of the batches in the open commit, with their outcome's position.
        let mut pending: Vec<(Checkpoint, usize)> = Vec::new();
        while let Some(batch) = source.next_batch().await? {
            let appender = match writer.as_mut() {
                Some(appender) => appender,
                None => writer.insert(self.lake.appender(&BRONZE_TRANSACTIONS).await?),
            };
            if let Some(checkpoint) = &batch.checkpoint
                && is_known(appender, &pending, checkpoint).await?
            {
                info!(location = %batch.location, "already ingested, skipped");
                run.detail.files.push(FileOutcome {
                    path: batch.location.clone(),
                    checksum: batch.checksum.clone(),
                    rows: 0,
                    malformed: 0,
                    skipped: true,
                    erased: 0,
                });
                continue;
            }
            let erased = self
                .erased
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
                .filter(|erased| !erased.is_empty());
            let erased = erased.as_deref();
            let (rows, malformed, erased) =
                write_batch(appender, &run.run_id, source.system(), &batch, erased).await?;
            if erased > 0 {
                info!(location = %batch.location, rows = erased, "records of erased customers erased again on arrival");
            }
            metrics::record_ingested(source.system(), rows);
            metrics::record_malformed(source.system(), malformed);
            run.rows_in += rows;
            run.rows_out += rows;
            run.detail.files.push(FileOutcome {
                path: batch.location.clone(),
                checksum: batch.checksum.clone(),
                rows,
                malformed,
                skipped: false,
                erased,
            });
            if let Some(checkpoint) = batch.checkpoint {
                pending.push((checkpoint, run.detail.files.len() - 1));
            }
            if appender.rows() >= self.options.commit_rows {
                let full = writer.take().expect("just used");
                self.commit(full, &std::mem::take(&mut pending), source, run)
                    .await?;
            }
            progress.advance(1);
        }
        if let Some(appender) = writer.take() {
            self.commit(appender, &pending, source, run).await?;
        }
        progress.end();
        Ok(())
    }

    /// Commits what `appender` holds with the checkpoints of its batches. A conflict on a
    /// checkpoint means another ingestion committed the same unit meanwhile: when bronze now
    /// holds every checkpoint of this commit, its batches count as skipped.
    async fn commit(
        &self,
        appender: TableAppender,
        pending: &[(Checkpoint, usize)],
        source: &mut dyn Source,
        run: &mut RunRecord,
    ) -> Result<()> {
        let mut markers: BTreeMap<&str, i64> = BTreeMap::new();
        for (checkpoint, _) in pending {
            let version = markers.entry(checkpoint.app_id.as_str()).or_insert(0);
            *version = (*version).max(checkpoint.version);
        }
        let markers: Vec<(String, i64)> = markers
            .into_iter()
            .map(|(app, version)| (app.to_owned(), version))
            .collect();
        let started = Instant::now();
        match appender.commit(&markers).await {
            Ok(_) => {
                metrics::record_commit("bronze", started.elapsed().as_secs_f64());
                let checkpoints: Vec<Checkpoint> = pending.iter().map(|(c, _)| c.clone()).collect();
                source.committed(&checkpoints).await?;
                Ok(())
            }
            Err(error) if error.is_commit_conflict() && !pending.is_empty() => {
                let bronze = self.lake.open(&BRONZE_TRANSACTIONS).await?;
                for (checkpoint, _) in pending {
                    let recorded = match &bronze {
                        Some(bronze) => {
                            self.lake
                                .app_version_in(bronze, &BRONZE_TRANSACTIONS, &checkpoint.app_id)
                                .await?
                        }
                        None => None,
                    };
                    if !held(checkpoint, recorded)? {
                        return Err(Error::ConcurrentIngestion);
                    }
                }
                info!(
                    units = pending.len(),
                    "another ingestion committed the same units meanwhile: skipped"
                );
                for (_, position) in pending {
                    let outcome = &mut run.detail.files[*position];
                    run.rows_in -= outcome.rows;
                    run.rows_out -= outcome.rows;
                    outcome.rows = 0;
                    outcome.malformed = 0;
                    outcome.skipped = true;
                }
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Whether bronze (as the open commit sees it) or the open commit itself holds a checkpoint.
async fn is_known(
    appender: &mut TableAppender,
    pending: &[(Checkpoint, usize)],
    checkpoint: &Checkpoint,
) -> Result<bool> {
    let staged = pending
        .iter()
        .filter(|(p, _)| p.app_id == checkpoint.app_id)
        .map(|(p, _)| p.version)
        .max();
    if staged.is_some() {
        return held(checkpoint, staged);
    }
    let recorded = appender.app_version(&checkpoint.app_id).await?;
    held(checkpoint, recorded)
}

/// Whether `recorded` holds `checkpoint`; a fingerprint recorded for other content is refused.
fn held(checkpoint: &Checkpoint, recorded: Option<i64>) -> Result<bool> {
    checkpoint
        .held_by(recorded)
        .map_err(|_| Error::CheckpointReused {
            app_id: checkpoint.app_id.clone(),
        })
}

/// Writes one batch's records with their lineage, leaving out those naming an erased
/// customer; returns the rows written, the malformed among them, and the rows left out.
async fn write_batch(
    appender: &mut TableAppender,
    ingestion_id: &str,
    system: &'static str,
    batch: &SourceBatch,
    erased: Option<&ErasedSubjects>,
) -> Result<(u64, u64, u64)> {
    let ingested_at = Utc::now();
    let batch_id = if batch.unit.is_empty() {
        ingestion_id.to_owned()
    } else {
        format!("{ingestion_id}:{}", batch.unit)
    };
    let (mut left_out, mut malformed_left_out) = (0u64, 0u64);
    for part in &batch.parts {
        let lineage = Lineage {
            ingestion_id: ingestion_id.to_owned(),
            batch_id: format!("{batch_id}{}", part.suffix),
            source_system: system.to_owned(),
            source_location: format!("{}{}", batch.location, part.suffix),
            ingested_at,
        };
        for raw in &part.rows.batches {
            let kept = match erased {
                Some(erased) => {
                    let (kept, out, malformed) = without_erased(raw, erased)?;
                    left_out += out;
                    malformed_left_out += malformed;
                    kept
                }
                None => raw.clone(),
            };
            if kept.num_rows() > 0 {
                appender
                    .write(to_bronze(&kept, &lineage, batch.change.as_ref())?)
                    .await?;
            }
        }
    }
    Ok((
        batch.rows() - left_out,
        batch.malformed() - malformed_left_out,
        left_out,
    ))
}

/// A raw batch without the records naming an erased customer; with how many were left out
/// and how many of those were malformed.
fn without_erased(
    raw: &deltalake::arrow::array::RecordBatch,
    erased: &ErasedSubjects,
) -> Result<(deltalake::arrow::array::RecordBatch, u64, u64)> {
    use deltalake::arrow::array::{Array as _, AsArray as _, BooleanArray};
    let text = |name: &str| {
        raw.column_by_name(name)
            .map(|column| column.as_string::<i32>().clone())
    };
    let (Some(customer), Some(extra), Some(raw_text), Some(parse_error)) = (
        text("customer_id"),
        text("extra_columns"),
        text("raw_text"),
        text("parse_error"),
    ) else {
        return Ok((raw.clone(), 0, 0));
    };
    fn value(column: &deltalake::arrow::array::StringArray, row: usize) -> Option<&str> {
        column.is_valid(row).then(|| column.value(row))
    }
    let (mut out, mut malformed) = (0u64, 0u64);
    let keep: BooleanArray = (0..raw.num_rows())
        .map(|row| {
            let named = erased.names_erased(
                value(&customer, row),
                [
                    value(&extra, row),
                    value(&raw_text, row),
                    value(&parse_error, row),
                ]
                .into_iter()
                .flatten(),
            );
            if named {
                out += 1;
                malformed += u64::from(parse_error.is_valid(row));
            }
            Some(!named)
        })
        .collect();
    if out == 0 {
        return Ok((raw.clone(), 0, 0));
    }
    let kept = deltalake::arrow::compute::filter_record_batch(raw, &keep)
        .map_err(Error::transform("ingestion"))?;
    Ok((kept, out, malformed))
}
