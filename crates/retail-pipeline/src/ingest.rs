//! Ingestion of files into bronze.
//!
//! Every input is checked before anything is written, so a bad file changes nothing. Each file's
//! content checksum is recorded as an application transaction (`txn` action) in the same Delta
//! commit as its rows: a file already ingested is recognised and skipped, even after a crash,
//! and never half-ingested.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use retail_ingest::{
    BronzeContext, RecordChange, check_file, content_checksum, read_file, resolve_inputs,
};
use retail_lake::schema::BRONZE_TRANSACTIONS;
use retail_lake::{Lake, TableAppender};
use retail_telemetry::metrics;
use sha2::Digest as _;
use tracing::{info, instrument, warn};

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::runs::{FileOutcome, MetadataStore, RunKind, RunRecord, RunStatus};

/// Files decoded ahead of the Parquet encoder.
const READ_AHEAD_FILES: usize = 4;

/// Application-transaction id prefix marking an ingested file content in bronze.
const FILE_APP_PREFIX: &str = "retail.ingest.file.";

/// Settings of file ingestion.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Bronze rows per Delta commit: one large ingestion becomes several commits, each whole.
    pub commit_rows: u64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            commit_rows: 2_000_000,
        }
    }
}

/// Ingests sources into `bronze/retail_transactions`.
#[derive(Debug, Clone)]
pub struct IngestService {
    lake: Lake,
    store: Arc<MetadataStore>,
    options: IngestOptions,
}

struct PendingFile {
    path: PathBuf,
    checksum: String,
}

impl IngestService {
    /// Creates the service.
    pub fn new(lake: Lake, store: Arc<MetadataStore>, options: IngestOptions) -> Self {
        Self {
            lake,
            store,
            options,
        }
    }

    /// Ingests files, directories and glob patterns. Returns the recorded run; files whose
    /// content is already in bronze are listed as skipped.
    ///
    /// # Errors
    ///
    /// When an input matches nothing, a file cannot be read or has no retail header (then
    /// nothing is written), or the lake fails.
    #[instrument(skip_all, fields(inputs = inputs.len()))]
    pub async fn ingest_paths(
        &self,
        inputs: &[String],
        progress: &dyn Progress,
    ) -> Result<RunRecord> {
        let _claim = self.store.claim("ingestion")?;
        let mut run = RunRecord::start(RunKind::Ingest);
        let outcome = self.ingest_inner(inputs, progress, &mut run).await;
        match outcome {
            Ok(()) => {
                let status = if run.rows_out == 0 {
                    RunStatus::UpToDate
                } else {
                    RunStatus::Succeeded
                };
                run.finish(status);
                self.store.save_run(&run)?;
                Ok(run)
            }
            Err(error) => {
                run.error = Some(error_chain(&error));
                run.finish(RunStatus::Failed);
                if let Err(save_error) = self.store.save_run(&run) {
                    warn!(error = %save_error, "failed to record the failed ingestion");
                }
                Err(error)
            }
        }
    }

    async fn ingest_inner(
        &self,
        inputs: &[String],
        progress: &dyn Progress,
        run: &mut RunRecord,
    ) -> Result<()> {
        let started = Instant::now();
        let files = resolve_inputs(inputs)?;
        // Opened, not created: checking inputs must not change the lake.
        let bronze = self.lake.open(&BRONZE_TRANSACTIONS).await?;

        // Pass 1: checksums, skips and header checks, before anything is written.
        progress.begin("checking files", files.len() as u64);
        let mut pending = Vec::new();
        let mut seen_in_call = HashSet::new();
        for path in files {
            let bytes = read_bytes(&path).await?;
            let checksum = content_checksum(&bytes);
            let app_id = format!("{FILE_APP_PREFIX}{checksum}");
            let already = match &bronze {
                Some(bronze) => {
                    self.lake
                        .app_version_in(bronze, &BRONZE_TRANSACTIONS, &app_id)
                        .await?
                }
                None => None,
            };
            if already.is_some() || !seen_in_call.insert(checksum.clone()) {
                info!(file = %path.display(), "file already ingested, skipped");
                metrics::record_skipped_file();
                run.detail.files.push(FileOutcome {
                    path: path.display().to_string(),
                    checksum,
                    rows: 0,
                    malformed: 0,
                    skipped: true,
                });
            } else {
                let check_path = path.clone();
                tokio::task::spawn_blocking(move || check_file(&check_path, &bytes))
                    .await
                    .map_err(Error::Task)??;
                pending.push(PendingFile { path, checksum });
            }
            progress.advance(1);
        }
        progress.end();

        // Pass 2: read and append, a commit every `commit_rows` rows. Files are decoded on the
        // blocking pool while the previous ones are encoded to Parquet here: both cores work.
        progress.begin("ingesting", pending.len() as u64);
        let ingestion_id = run.run_id.clone();
        let batch_rows = self.lake.batch_rows();
        let (sender, mut receiver) = tokio::sync::mpsc::channel(READ_AHEAD_FILES);
        let reader = tokio::task::spawn_blocking(move || -> Result<()> {
            for file in pending {
                let bytes = std::fs::read(&file.path).map_err(|source| {
                    Error::Source(retail_ingest::Error::Io {
                        path: file.path.clone(),
                        source,
                    })
                })?;
                let context = BronzeContext {
                    ingestion_id: ingestion_id.clone(),
                    batch_id: format!("{}:{}", ingestion_id, &file.checksum[..16]),
                    source_system: "file".to_owned(),
                    source_location: file.path.display().to_string(),
                    ingested_at: Utc::now(),
                };
                let units = read_file(&file.path, &bytes, &context, batch_rows)?;
                if sender.blocking_send((file, units)).is_err() {
                    break; // the writer stopped on an error of its own
                }
            }
            Ok(())
        });
        let mut appender: Option<TableAppender> = None;
        let mut markers: Vec<(String, i64)> = Vec::new();
        while let Some((file, units)) = receiver.recv().await {
            let writer = match appender.as_mut() {
                Some(writer) => writer,
                None => appender.insert(self.lake.appender(&BRONZE_TRANSACTIONS).await?),
            };
            let (mut rows, mut malformed) = (0, 0);
            for (_, unit) in units {
                rows += unit.rows;
                malformed += unit.malformed;
                for batch in unit.batches {
                    writer.write(batch).await?;
                }
            }
            metrics::record_ingested("file", rows);
            metrics::record_malformed("file", malformed);
            run.rows_in += rows;
            run.rows_out += rows;
            markers.push((format!("{FILE_APP_PREFIX}{}", file.checksum), 1));
            run.detail.files.push(FileOutcome {
                path: file.path.display().to_string(),
                checksum: file.checksum,
                rows,
                malformed,
                skipped: false,
            });
            if writer.rows() >= self.options.commit_rows {
                let full = appender.take().expect("just used");
                commit_bronze(full, &std::mem::take(&mut markers)).await?;
            }
            progress.advance(1);
        }
        // A read error ends the channel early: nothing after the last commit is committed.
        reader.await.map_err(Error::Task)??;
        if let Some(writer) = appender.take() {
            commit_bronze(writer, &markers).await?;
        }
        progress.end();
        info!(
            rows = run.rows_out,
            files = run.detail.files.iter().filter(|f| !f.skipped).count(),
            skipped = run.detail.files.iter().filter(|f| f.skipped).count(),
            seconds = started.elapsed().as_secs_f64(),
            "ingestion finished"
        );
        Ok(())
    }
}

/// Where records handed over directly (not in a file) come from.
#[derive(Debug, Clone)]
pub struct RecordSource {
    /// `api`, `kafka`, ...
    pub source_system: &'static str,
    /// A request id, topic/partition/offset, ...
    pub location: String,
    /// A caller's key that makes a retry safe: records sent again under the same key are not
    /// written twice. It is recorded in the same Delta commit as the records.
    pub idempotency_key: Option<String>,
    /// When set, every record is this update or delete of a transaction in silver, applied by
    /// the next pipeline run.
    pub change: Option<RecordChange>,
}

/// What [`IngestService::ingest_records`] did.
#[derive(Debug, Clone)]
pub struct RecordsReceipt {
    /// The recorded run (kind `ingest`); when the key had been used before, the run that
    /// wrote the records then (if the metadata store still has it).
    pub run: Option<RunRecord>,
    /// Whether the idempotency key had been used before (nothing was written this time).
    pub replayed: bool,
}

/// Application-transaction id prefix marking records written under an idempotency key.
const KEY_APP_PREFIX: &str = "retail.ingest.key.";

impl IngestService {
    /// Writes records already split into the eight business fields to bronze, in one Delta
    /// commit, durably before returning. Under an idempotency key already used, nothing is
    /// written and the receipt says so.
    ///
    /// # Errors
    ///
    /// When the lake fails (then nothing was written).
    #[instrument(skip_all, fields(records = records.len(), source = %source.source_system))]
    pub async fn ingest_records(
        &self,
        records: &[[Option<String>; 8]],
        source: &RecordSource,
    ) -> Result<RecordsReceipt> {
        let digest = source
            .idempotency_key
            .as_ref()
            .map(|key| hex::encode(sha2::Sha256::digest(key.as_bytes())));
        let marker = digest
            .as_ref()
            .map(|digest| format!("{KEY_APP_PREFIX}{digest}"));
        if let Some(marker) = &marker
            && self
                .lake
                .app_version(&BRONZE_TRANSACTIONS, marker)
                .await?
                .is_some()
        {
            let original = match &digest {
                Some(digest) => self.store.run_by_idempotency_key(digest)?,
                None => None,
            };
            return Ok(RecordsReceipt {
                run: original,
                replayed: true,
            });
        }
        let mut run = RunRecord::start(RunKind::Ingest);
        run.detail.idempotency_key = digest;
        let context = BronzeContext {
            ingestion_id: run.run_id.clone(),
            batch_id: run.run_id.clone(),
            source_system: source.source_system.to_owned(),
            source_location: source.location.clone(),
            ingested_at: Utc::now(),
        };
        let outcome = async {
            let rows = retail_ingest::records_to_bronze(
                records,
                source.change.as_ref(),
                &context,
                self.lake.batch_rows(),
            )?;
            let mut writer = self.lake.appender(&BRONZE_TRANSACTIONS).await?;
            for batch in rows.batches {
                writer.write(batch).await?;
            }
            let markers: Vec<(String, i64)> = marker.iter().map(|m| (m.clone(), 1)).collect();
            commit_bronze(writer, &markers).await?;
            Ok::<_, Error>(rows.rows)
        }
        .await;
        match outcome {
            Ok(rows) => {
                metrics::record_ingested(source.source_system, rows);
                run.rows_in = rows;
                run.rows_out = rows;
                run.detail.files.push(FileOutcome {
                    path: format!("{}:{}", source.source_system, source.location),
                    checksum: String::new(),
                    rows,
                    malformed: 0,
                    skipped: false,
                });
                run.finish(RunStatus::Succeeded);
                if let Err(error) = self.store.save_run(&run) {
                    // The records are in bronze: a missing run record must not fail the caller.
                    warn!(%error, "failed to record the ingestion");
                }
                Ok(RecordsReceipt {
                    run: Some(run),
                    replayed: false,
                })
            }
            Err(error) => {
                run.error = Some(error_chain(&error));
                run.finish(RunStatus::Failed);
                let _ = self.store.save_run(&run);
                Err(error)
            }
        }
    }
}

async fn commit_bronze(appender: TableAppender, markers: &[(String, i64)]) -> Result<()> {
    let started = Instant::now();
    appender.commit(markers).await?;
    metrics::record_commit("bronze", started.elapsed().as_secs_f64());
    Ok(())
}

async fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    tokio::fs::read(path).await.map_err(|source| {
        Error::Source(retail_ingest::Error::Io {
            path: path.to_owned(),
            source,
        })
    })
}

/// Renders an error with its causes, `a: b: c`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
