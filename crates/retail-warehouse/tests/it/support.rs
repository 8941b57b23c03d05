//! A lake built from real data files, and a PostgreSQL warehouse in a schema of its own.

use std::path::PathBuf;
use std::sync::Arc;

use retail_domain::ports::Follower;
use retail_domain::progress::NoProgress;
use retail_lake::{Lake, LakeConfig};
use retail_metadata::{MetadataStore, RunRecord, SqliteStore};
use retail_pipeline::{
    FollowerAsset, IngestOptions, IngestionService, RetryPolicy, RunRequest, Runner, default_assets,
};
use retail_warehouse::{Backend, PostgresWarehouse, WarehouseConfig};

/// A lake in a temporary directory with the services that fill it.
pub(crate) struct TestLake {
    _dir: tempfile::TempDir,
    pub(crate) lake: Lake,
    store: Arc<dyn MetadataStore>,
    ingestion: IngestionService,
    runner: Runner,
}

impl TestLake {
    pub(crate) fn new() -> Self {
        Self::following(|_| Vec::new())
    }

    /// A lake whose runs also catch up the followers of gold that `followers` makes for it.
    pub(crate) fn following(followers: impl FnOnce(&Lake) -> Vec<Arc<dyn Follower>>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = LakeConfig {
            root: dir.path().join("lake").display().to_string(),
            ..LakeConfig::default()
        };
        let lake = Lake::new(&config).expect("lake");
        let store: Arc<dyn MetadataStore> = Arc::new(SqliteStore::in_memory().expect("store"));
        let ingestion =
            IngestionService::new(lake.clone(), Arc::clone(&store), IngestOptions::default());
        let mut assets = default_assets(
            &lake,
            retail_pipeline::SilverRules::default(),
            retail_pipeline::DEFAULT_HANDOVER_MAX_ROWS,
        );
        for follower in followers(&lake) {
            assets.push(Arc::new(FollowerAsset::new(lake.clone(), follower)));
        }
        let runner = Runner::new(
            lake.clone(),
            Arc::clone(&store),
            assets,
            RetryPolicy::default(),
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

    /// Ingests the files and runs every asset; returns the run.
    pub(crate) async fn add(&self, files: &[PathBuf]) -> RunRecord {
        let inputs: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        self.ingestion
            .ingest_files(&inputs, "test", &NoProgress)
            .await
            .expect("ingestion succeeds");
        self.runner
            .run(RunRequest::default(), &NoProgress)
            .await
            .expect("pipeline run succeeds")
    }

    /// The metadata store of the runs.
    pub(crate) fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// Runs every asset again (nothing new ingested).
    pub(crate) async fn rerun(&self) -> RunRecord {
        self.runner
            .run(RunRequest::default(), &NoProgress)
            .await
            .expect("pipeline run succeeds")
    }

    /// Where every asset stands.
    pub(crate) async fn status(&self) -> retail_pipeline::PipelineStatus {
        self.runner.status().await.expect("status")
    }
}

/// The daily files of the real data, sorted by day, or `None` (the test skips, saying so)
/// when the data is absent and `RETAIL_REQUIRE_TEST_DATA` is not set.
pub(crate) fn daily_files() -> Option<Vec<PathBuf>> {
    retail_test_support::real_data().map(|data| retail_test_support::daily_files(&data))
}

/// A PostgreSQL warehouse in a fresh schema of the test server (`RETAIL_TEST_POSTGRES_URL`,
/// started by `scripts/services.sh`), or `None` when no server was started and
/// `RETAIL_REQUIRE_POSTGRES` is not set.
pub(crate) async fn postgres(name: &str) -> Option<PostgresWarehouse> {
    let url = retail_test_support::postgres_url()?;
    let config = WarehouseConfig {
        backend: Backend::Postgres,
        postgres_url: url,
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
