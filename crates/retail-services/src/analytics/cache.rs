//! The analytics cache as a layer around the warehouse: an in-process tier and, when replicas
//! share Redis, a shared tier behind it. Keys hold the lake, the query, its checked parameters
//! and the warehouse's data version, so a new gold (or a new load) is never answered from the
//! previous one; entries also expire after `api.cache_ttl_seconds`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use retail_domain::ports::SharedCache;
use retail_telemetry::metrics;
use retail_warehouse::{Backend, Params, QueryDef, QueryResult, Warehouse};
use tracing::Instrument as _;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// This process's cache.
    Hit,
    /// The cache shared by replicas.
    SharedHit,
    /// The warehouse.
    Miss,
}

impl CacheOutcome {
    /// As the `X-Cache` header says it: `hit`, `hit-shared`, `miss`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::SharedHit => "hit-shared",
            Self::Miss => "miss",
        }
    }
}

/// An answer and where it came from.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The rows.
    pub rows: Arc<QueryResult>,
    /// The data version they reflect.
    pub data_version: String,
    /// Which tier answered.
    pub outcome: CacheOutcome,
}

/// A warehouse with a cache in front.
#[derive(Debug)]
pub struct CachedWarehouse {
    inner: Arc<dyn Warehouse>,
    memory: moka::future::Cache<String, Arc<QueryResult>>,
    shared: Option<Arc<dyn SharedCache>>,
    ttl_seconds: u64,
    /// Names the data (the lake's root): replicas of one deployment share entries, others
    /// never.
    namespace: String,
}

impl CachedWarehouse {
    /// `inner` with a cache of `ttl_seconds`, shared through `shared` when given.
    pub fn new(
        inner: Arc<dyn Warehouse>,
        shared: Option<Arc<dyn SharedCache>>,
        ttl_seconds: u64,
        namespace: String,
    ) -> Self {
        Self {
            inner,
            memory: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(ttl_seconds.max(1)))
                .build(),
            shared,
            ttl_seconds,
            namespace,
        }
    }

    /// The answer to a query, from the first tier that has it.
    ///
    /// # Errors
    ///
    /// When the warehouse fails (a cache that fails is a cache that misses).
    pub async fn lookup(
        &self,
        query: &QueryDef,
        params: &Params,
    ) -> retail_warehouse::Result<Cached> {
        let span = tracing::info_span!(
            "cache_lookup",
            query = query.name,
            outcome = tracing::field::Empty
        );
        let cached = self
            .lookup_in_tiers(query, params)
            .instrument(span.clone())
            .await?;
        span.record("outcome", cached.outcome.as_str());
        Ok(cached)
    }

    async fn lookup_in_tiers(
        &self,
        query: &QueryDef,
        params: &Params,
    ) -> retail_warehouse::Result<Cached> {
        let data_version = self.inner.data_version().await?;
        let key = format!(
            "v2|{}|{}?{params:?}@{data_version}",
            self.namespace, query.name
        );
        if let Some(rows) = self.memory.get(&key).await {
            metrics::record_cache("process", "hit");
            return Ok(Cached {
                rows,
                data_version,
                outcome: CacheOutcome::Hit,
            });
        }
        metrics::record_cache("process", "miss");
        let found = match &self.shared {
            Some(shared) => {
                let text = shared.get(&key).await;
                let rows = text.as_deref().and_then(QueryResult::from_cache_text);
                metrics::record_cache("shared", if rows.is_some() { "hit" } else { "miss" });
                rows
            }
            None => None,
        };
        if let Some(rows) = found {
            let rows = Arc::new(rows);
            self.memory.insert(key, Arc::clone(&rows)).await;
            return Ok(Cached {
                rows,
                data_version,
                outcome: CacheOutcome::SharedHit,
            });
        }
        let rows = Arc::new(self.inner.query(query, params).await?);
        if let Some(shared) = &self.shared {
            shared
                .put(&key, rows.to_cache_text(), self.ttl_seconds)
                .await;
        }
        self.memory.insert(key, Arc::clone(&rows)).await;
        Ok(Cached {
            rows,
            data_version,
            outcome: CacheOutcome::Miss,
        })
    }
}

#[async_trait]
impl Warehouse for CachedWarehouse {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    async fn query(
        &self,
        query: &QueryDef,
        params: &Params,
    ) -> retail_warehouse::Result<QueryResult> {
        Ok(self.lookup(query, params).await?.rows.as_ref().clone())
    }

    async fn stream(
        &self,
        query: &QueryDef,
        params: &Params,
    ) -> retail_warehouse::Result<retail_warehouse::ResultStream> {
        // Streams are too large to cache.
        self.inner.stream(query, params).await
    }

    async fn data_version(&self) -> retail_warehouse::Result<String> {
        self.inner.data_version().await
    }
}
