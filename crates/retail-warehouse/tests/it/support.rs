//! A lake built from real data files, and a PostgreSQL warehouse in a schema of its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use retail_lake::{Lake, LakeConfig};
use retail_pipeline::{
    IngestOptions, IngestService, MetadataStore, NoProgress, PipelineService, RunOptions,
};
use retail_warehouse::{Backend, PostgresWarehouse, WarehouseConfig};

/// A lake in a temporary directory with the services that fill it.
pub(crate) struct TestLake {
    _dir: tempfile::TempDir,
    pub(crate) lake: Lake,
    ingest: IngestService,
    pipeline: PipelineService,
}

impl TestLake {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = LakeConfig {
            root: dir.path().join("lake").display().to_string(),
            ..LakeConfig::default()
        };
        let lake = Lake::new(&config).expect("lake");
        let store = Arc::new(MetadataStore::open_in_memory().expect("store"));
        let ingest = IngestService::new(lake.clone(), Arc::clone(&store), IngestOptions::default());
        let pipeline = PipelineService::new(lake.clone(), store);
        Self {
            _dir: dir,
            lake,
            ingest,
            pipeline,
        }
    }

    /// Ingests the files and brings silver and gold up to date.
    pub(crate) async fn add(&self, files: &[PathBuf]) {
        let inputs: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        self.ingest
            .ingest_paths(&inputs, &NoProgress)
            .await
            .expect("ingestion succeeds");
        self.pipeline
            .run(RunOptions::default(), &NoProgress)
            .await
            .expect("pipeline run succeeds");
    }
}

/// The daily files of the real data, sorted by day, or `None` (the test skips, saying so)
/// when the data is absent and `RETAIL_REQUIRE_TEST_DATA` is not set.
pub(crate) fn daily_files() -> Option<Vec<PathBuf>> {
    let dir = std::env::var_os("RETAIL_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/online-retail")
        })
        .join("spark-guide-by-day");
    if !dir.is_dir() {
        assert!(
            std::env::var_os("RETAIL_REQUIRE_TEST_DATA").is_none(),
            "real test data not found at {}",
            dir.display()
        );
        eprintln!("skipped: real test data not found at {}", dir.display());
        return None;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("data dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    Some(files)
}

/// A PostgreSQL warehouse in a fresh schema of the test server (`RETAIL_TEST_POSTGRES_URL`,
/// started by `scripts/services.sh`), or `None` when no server was started and
/// `RETAIL_REQUIRE_POSTGRES` is not set.
pub(crate) async fn postgres(name: &str) -> Option<PostgresWarehouse> {
    let Some(url) = std::env::var_os("RETAIL_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("RETAIL_REQUIRE_POSTGRES").is_none(),
            "RETAIL_TEST_POSTGRES_URL is not set: start PostgreSQL with scripts/services.sh"
        );
        eprintln!("skipped: no PostgreSQL (eval \"$(scripts/services.sh start postgres)\")");
        return None;
    };
    let config = WarehouseConfig {
        backend: Backend::Postgres,
        postgres_url: url.into_string().expect("UTF-8 URL"),
        postgres_schema: format!("t_{name}_{}", std::process::id()),
        pool_size: 4,
        ..WarehouseConfig::default()
    };
    let warehouse = PostgresWarehouse::connect(&config).await.expect("pool");
    warehouse.drop_schema().await.expect("clean schema");
    warehouse.migrate().await.expect("migrations apply");
    Some(warehouse)
}

/// A second pool on the same schema, for statements the warehouse API does not offer.
pub(crate) async fn raw_client(warehouse: &PostgresWarehouse) -> tokio_postgres::Client {
    let url = std::env::var("RETAIL_TEST_POSTGRES_URL").expect("url");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET search_path = {}", warehouse.schema()))
        .await
        .expect("search path");
    client
}
