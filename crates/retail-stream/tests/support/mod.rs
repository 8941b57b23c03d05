//! What the broker tests share: a lake of their own with its ingestion service, and sales as
//! messages.

use std::sync::Arc;
use std::time::Duration;

use retail_domain::progress::NoProgress;
use retail_lake::schema::BRONZE_TRANSACTIONS;
use retail_lake::{Lake, LakeConfig};
use retail_metadata::{MetadataStore, SqliteStore};
use retail_pipeline::{IngestOptions, IngestionService};
use retail_stream::{ConsumeOptions, Consumed, NoHook, StreamSource, consume};

/// A sale as the ingestion API accepts it; `n` makes it unique.
pub(crate) fn sale(n: usize) -> Vec<u8> {
    serde_json::json!({
        "InvoiceNo": format!("{}", 600_000 + n / 5), "StockCode": "85123A",
        "Description": "WHITE HANGING HEART T-LIGHT HOLDER", "Quantity": 1 + n % 7,
        "InvoiceDate": "2011-12-09 12:00:00", "UnitPrice": "2.55",
        "CustomerID": format!("{}", 12_346 + n), "Country": "United Kingdom"
    })
    .to_string()
    .into_bytes()
}

/// A lake and its ingestion service in a temporary directory.
pub(crate) struct TestLake {
    _dir: tempfile::TempDir,
    pub(crate) lake: Lake,
    pub(crate) ingestion: IngestionService,
}

impl TestLake {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(&LakeConfig {
            root: dir.path().join("lake").display().to_string(),
            ..LakeConfig::default()
        })
        .unwrap();
        let store: Arc<dyn MetadataStore> =
            Arc::new(SqliteStore::open(&dir.path().join("retail.db")).unwrap());
        let ingestion = IngestionService::new(lake.clone(), store, IngestOptions::default());
        Self {
            _dir: dir,
            lake,
            ingestion,
        }
    }

    /// Where bronze says a source's application id stands, as the sources ask it.
    pub(crate) fn positions(
        &self,
    ) -> impl Fn(String) -> futures::future::BoxFuture<'static, retail_stream::Result<Option<i64>>>
    + Clone
    + Send
    + 'static {
        retail_stream::bronze_positions(&self.ingestion)
    }

    /// Consumes until the source has been quiet for `idle_ms`.
    pub(crate) async fn consume(&self, source: &mut dyn StreamSource, idle_ms: u64) -> Consumed {
        consume(
            &self.ingestion,
            source,
            &ConsumeOptions {
                until_idle: Some(Duration::from_millis(idle_ms)),
                requested_by: "test".to_owned(),
            },
            &NoProgress,
            &mut NoHook,
            std::future::pending(),
        )
        .await
        .unwrap()
    }

    pub(crate) async fn bronze(&self) -> u64 {
        self.lake.count_rows(&BRONZE_TRANSACTIONS).await.unwrap()
    }
}
