//! Shared helpers: a lake in a temporary directory and readers of its tables.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use retail_lake::arrow::array::{Array, AsArray as _, RecordBatch};
use retail_lake::arrow::datatypes::{Decimal128Type, Int64Type};
use retail_lake::arrow::util::display::{ArrayFormatter, FormatOptions};
use retail_lake::schema::TableSpec;
use retail_lake::{Lake, LakeConfig};
use retail_pipeline::{
    IngestOptions, IngestService, MetadataStore, NoProgress, PipelineService, RunOptions, RunRecord,
};
use rust_decimal::Decimal;

/// A lake, a metadata store and the services, in a temporary directory.
pub(crate) struct TestLake {
    _dir: tempfile::TempDir,
    pub(crate) lake: Lake,
    pub(crate) store: Arc<MetadataStore>,
    ingest: IngestService,
    pub(crate) pipeline: PipelineService,
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
        let store = Arc::new(MetadataStore::open_in_memory().expect("store"));
        let ingest = IngestService::new(lake.clone(), Arc::clone(&store), options);
        let pipeline = PipelineService::new(lake.clone(), Arc::clone(&store));
        Self {
            _dir: dir,
            lake,
            store,
            ingest,
            pipeline,
        }
    }

    pub(crate) async fn ingest(&self, paths: &[PathBuf]) -> RunRecord {
        let inputs: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        self.ingest
            .ingest_paths(&inputs, &NoProgress)
            .await
            .expect("ingestion succeeds")
    }

    /// Writes records to bronze as the API does, optionally as an update or delete.
    pub(crate) async fn ingest_records(
        &self,
        records: &[[Option<String>; 8]],
        change: Option<retail_pipeline::RecordChange>,
    ) {
        let source = retail_pipeline::RecordSource {
            source_system: "api",
            location: "test".to_owned(),
            idempotency_key: None,
            change,
        };
        self.ingest
            .ingest_records(records, &source)
            .await
            .expect("records ingested");
    }

    pub(crate) async fn try_ingest(&self, inputs: &[String]) -> retail_pipeline::Result<RunRecord> {
        self.ingest.ingest_paths(inputs, &NoProgress).await
    }

    pub(crate) async fn run(&self) -> RunRecord {
        self.pipeline
            .run(RunOptions::default(), &NoProgress)
            .await
            .expect("pipeline run succeeds")
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

/// The real Online Retail data, when present (`RETAIL_TEST_DATA` or `../shared/data/online-retail`
/// beside the checkout). Tests skip, saying so, when it is absent, unless
/// `RETAIL_REQUIRE_TEST_DATA=1` (CI) makes its absence a failure.
pub(crate) fn real_data() -> Option<PathBuf> {
    let dir = std::env::var_os("RETAIL_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/online-retail")
        });
    if dir.join("spark-guide-by-day").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("RETAIL_REQUIRE_TEST_DATA").is_none(),
        "real test data not found at {} (set RETAIL_TEST_DATA)",
        dir.display()
    );
    eprintln!("skipped: real test data not found at {}", dir.display());
    None
}

/// The daily files of Online Retail I, sorted by day.
pub(crate) fn daily_files(data: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("spark-guide-by-day"))
        .expect("data dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    files
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

pub(crate) fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}
