//! Shared helpers: a lake in a temporary directory and readers of its tables.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use retail_domain::progress::NoProgress;
use retail_ingest::{BatchSource, Fields, RawRows, RecordChange, SourceBatch};
use retail_lake::arrow::array::{Array, AsArray as _, RecordBatch};
use retail_lake::arrow::datatypes::{Decimal128Type, Int64Type};
use retail_lake::arrow::util::display::{ArrayFormatter, FormatOptions};
use retail_lake::schema::TableSpec;
use retail_lake::{Lake, LakeConfig};
use retail_metadata::{MetadataStore, Reconciliation, RunRecord, SqliteStore};
use retail_pipeline::{
    IngestOptions, IngestRequest, IngestionService, PipelineStatus, RetryPolicy, RunRequest,
    Runner, default_assets,
};
use rust_decimal::Decimal;

pub(crate) use retail_test_support::{daily_files, real_data};

/// A lake, a metadata store, the ingestion service and the asset runner, in a temporary
/// directory.
pub(crate) struct TestLake {
    _dir: tempfile::TempDir,
    pub(crate) lake: Lake,
    pub(crate) store: Arc<dyn MetadataStore>,
    ingestion: IngestionService,
    pub(crate) runner: Runner,
}

impl TestLake {
    pub(crate) fn new() -> Self {
        Self::with_options(IngestOptions::default())
    }

    pub(crate) fn with_options(options: IngestOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = LakeConfig {
            root: dir.path().join("lake").display().to_string(),
            ..LakeConfig::default()
        };
        let lake = Lake::new(&config).expect("lake");
        let store: Arc<dyn MetadataStore> =
            Arc::new(SqliteStore::open(&dir.path().join("retail.db")).expect("store"));
        let ingestion = IngestionService::new(lake.clone(), Arc::clone(&store), options);
        let runner = Runner::new(
            lake.clone(),
            Arc::clone(&store),
            default_assets(
                &lake,
                retail_pipeline::SilverRules::default(),
                retail_pipeline::DEFAULT_HANDOVER_MAX_ROWS,
            ),
            // Transient failures are retried once, quickly.
            RetryPolicy {
                max_attempts: 2,
                backoff: Duration::from_millis(10),
            },
            tokio::runtime::Handle::current(),
        )
        .expect("runner");
        Self {
            _dir: dir,
            lake,
            store,
            ingestion,
            runner,
        }
    }

    /// The same lake, each run that changed something ending with a vacuum that keeps no
    /// removed file at all (the harshest retention).
    pub(crate) fn vacuuming(mut self) -> Self {
        self.runner = self.runner.with_vacuum(Duration::ZERO);
        self
    }

    /// An ingestion service of another process over the same lake and metadata store, as an
    /// API replica has.
    pub(crate) fn replica(&self) -> IngestionService {
        let config = LakeConfig {
            root: self.lake.root().to_string(),
            ..LakeConfig::default()
        };
        let lake = Lake::new(&config).expect("lake");
        IngestionService::new(lake, Arc::clone(&self.store), IngestOptions::default())
    }

    pub(crate) async fn ingest(&self, paths: &[PathBuf]) -> RunRecord {
        let inputs: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        self.try_ingest(&inputs).await.expect("ingestion succeeds")
    }

    /// Writes records to bronze as the API does, optionally as an update or delete.
    pub(crate) async fn ingest_records(&self, records: &[Fields], change: Option<RecordChange>) {
        let batch = SourceBatch {
            location: "test".to_owned(),
            unit: String::new(),
            parts: vec![retail_ingest::decode::Part {
                suffix: String::new(),
                rows: RawRows::from_fields(records, self.lake.batch_rows()).expect("raw rows"),
            }],
            checkpoint: None,
            change,
            checksum: String::new(),
        };
        self.ingestion
            .ingest(
                &mut BatchSource::new("api", batch),
                &IngestRequest::default(),
                &NoProgress,
            )
            .await
            .expect("records ingested");
    }

    pub(crate) async fn try_ingest(&self, inputs: &[String]) -> retail_pipeline::Result<RunRecord> {
        self.ingestion
            .ingest_files(inputs, "test", &NoProgress)
            .await
    }

    pub(crate) async fn run(&self) -> RunRecord {
        self.run_request(RunRequest::default())
            .await
            .expect("pipeline run succeeds")
    }

    /// A run with `force`: gold is built from all of silver even when up to date.
    pub(crate) async fn run_forced(&self) -> RunRecord {
        self.run_request(RunRequest {
            force: true,
            ..RunRequest::default()
        })
        .await
        .expect("a forced run succeeds")
    }

    pub(crate) async fn run_request(
        &self,
        request: RunRequest,
    ) -> retail_pipeline::Result<RunRecord> {
        self.runner.run(request, &NoProgress).await
    }

    pub(crate) async fn status(&self) -> PipelineStatus {
        self.runner.status().await.expect("status")
    }

    pub(crate) async fn reconciliation(&self) -> Reconciliation {
        retail_pipeline::reconcile(&self.lake)
            .await
            .expect("reconciliation")
    }

    pub(crate) async fn read(&self, table: &TableSpec) -> Vec<RecordBatch> {
        self.lake.read_all(table).await.expect("table reads")
    }

    /// Every row of a table rendered as text, sorted: for comparing whole tables.
    pub(crate) async fn sorted_rows(&self, table: &TableSpec, skip: &[&str]) -> Vec<String> {
        self.sorted_rows_with(table, skip, |_, cell| cell).await
    }

    /// As [`TestLake::sorted_rows`], each cell passed through `map(column, cell)` first.
    pub(crate) async fn sorted_rows_with(
        &self,
        table: &TableSpec,
        skip: &[&str],
        map: impl Fn(&str, String) -> String,
    ) -> Vec<String> {
        let mut rows = Vec::new();
        let options = FormatOptions::default();
        for batch in self.read(table).await {
            let schema = batch.schema();
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .filter(|(_, field)| !skip.contains(&field.name().as_str()))
                .map(|(column, field)| {
                    (
                        field.name().clone(),
                        ArrayFormatter::try_new(column.as_ref(), &options).expect("formatter"),
                    )
                })
                .collect();
            for row in 0..batch.num_rows() {
                let cells: Vec<String> = formatters
                    .iter()
                    .map(|(name, f)| map(name, f.value(row).to_string()))
                    .collect();
                rows.push(cells.join("|"));
            }
        }
        rows.sort();
        rows
    }
}

pub(crate) fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

pub(crate) fn sum_money(batches: &[RecordBatch], column: &str) -> Decimal {
    let total: i128 = batches
        .iter()
        .map(|b| {
            b.column_by_name(column)
                .expect("column")
                .as_primitive::<Decimal128Type>()
                .iter()
                .flatten()
                .sum::<i128>()
        })
        .sum();
    Decimal::from_i128_with_scale(total, 3)
}

pub(crate) fn sum_int(batches: &[RecordBatch], column: &str) -> i64 {
    batches
        .iter()
        .map(|b| {
            b.column_by_name(column)
                .expect("column")
                .as_primitive::<Int64Type>()
                .iter()
                .flatten()
                .sum::<i64>()
        })
        .sum()
}

pub(crate) fn strings(batches: &[RecordBatch], column: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let array = b.column_by_name(column).expect("column").as_string::<i32>();
            (0..array.len())
                .map(|i| (!array.is_null(i)).then(|| array.value(i).to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A column's cells as Arrow displays them (timestamps as `2011-01-04T10:00:00`).
pub(crate) fn formatted(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let options = FormatOptions::default();
    batches
        .iter()
        .flat_map(|b| {
            let array = b.column_by_name(column).expect("column");
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options).expect("formatter");
            (0..array.len())
                .map(|i| formatter.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

pub(crate) fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}
