//! The embedded warehouse: DataFusion over the gold Delta tables, no server.
//!
//! A snapshot holds every gold table and the summary views in memory (about 100 MiB for the
//! real dataset), so catalogue queries never touch disk. The snapshot is rebuilt when any gold
//! table has a new Delta version; the check runs at most once per `recheck` interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::datafusion::scalar::ScalarValue;
use futures::{StreamExt as _, TryStreamExt as _};
use retail_lake::Lake;
use retail_lake::schema::{self as tables, TableSpec};
use tokio::sync::{Mutex, RwLock};
use tracing::info;

use crate::catalogue::{Arg, Params, QueryDef};
use crate::config::Backend;
use crate::error::{Error, Result};
use crate::sql::{SUMMARIES, VIEWS};
use crate::value::QueryResult;
use crate::{ResultStream, Warehouse};

/// Each gold table the warehouse serves and its relation name, from the table registry.
pub(crate) fn relations() -> Vec<(TableSpec, &'static str)> {
    tables::warehouse_tables()
        .map(|(table, served)| (table, served.relation))
        .collect()
}

struct Snapshot {
    versions: Vec<u64>,
    context: SessionContext,
}

/// The versions of the served tables that form one generation of gold: the versions whose
/// [`tables::GOLD_MARK`] is the oldest mark among the tables' latest versions. While a build
/// commits its tables one after the other (or after it failed halfway), the tables it already
/// committed are read at their version before it, so no answer mixes two builds. Tables
/// without a mark (not written by the pipeline) are read at their latest version.
pub(crate) async fn one_generation(lake: &Lake, tables: &[TableSpec]) -> Result<Vec<u64>> {
    let mut latest = Vec::with_capacity(tables.len());
    for table in tables {
        let delta = lake
            .open(table)
            .await?
            .ok_or(Error::NoGold { table: table.name })?;
        let version = delta.version().ok_or(Error::NoGold { table: table.name })?;
        let mark = lake
            .app_version_in(&delta, table, tables::GOLD_MARK)
            .await?;
        latest.push((table, version, mark));
    }
    let Some(oldest) = latest.iter().filter_map(|(_, _, mark)| *mark).min() else {
        return Ok(latest.into_iter().map(|(_, version, _)| version).collect());
    };
    let mut versions = Vec::with_capacity(latest.len());
    for (table, mut version, mut mark) in latest {
        while mark.is_some_and(|mark| mark > oldest) && version > 0 {
            version -= 1;
            let delta = lake.open_at(table, version).await?;
            mark = lake
                .app_version_in(&delta, table, tables::GOLD_MARK)
                .await?;
        }
        if mark.is_some_and(|mark| mark > oldest) {
            return Err(Error::NoGold { table: table.name });
        }
        versions.push(version);
    }
    Ok(versions)
}

/// DataFusion over the gold tables of a lake.
pub struct EmbeddedWarehouse {
    lake: Lake,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    checked: Mutex<Option<Instant>>,
    recheck: Duration,
}

impl std::fmt::Debug for EmbeddedWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedWarehouse")
            .field("lake", &self.lake.root().as_str())
            .finish_non_exhaustive()
    }
}

impl EmbeddedWarehouse {
    /// A warehouse over `lake`'s gold tables, loaded on first use.
    pub fn new(lake: Lake) -> Self {
        Self {
            lake,
            snapshot: RwLock::new(None),
            checked: Mutex::new(None),
            recheck: Duration::from_secs(1),
        }
    }

    /// The gold versions the current snapshot holds, in the order of the gold tables, if any.
    pub async fn versions(&self) -> Option<Vec<u64>> {
        self.snapshot
            .read()
            .await
            .as_ref()
            .map(|s| s.versions.clone())
    }

    /// Reloads now if gold has changed since the snapshot was taken.
    ///
    /// # Errors
    ///
    /// When gold is missing or cannot be read.
    pub async fn refresh(&self) -> Result<()> {
        let relations = relations();
        let served: Vec<TableSpec> = relations.iter().map(|(table, _)| *table).collect();
        let versions = one_generation(&self.lake, &served).await?;
        if self
            .snapshot
            .read()
            .await
            .as_ref()
            .is_some_and(|s| s.versions == versions)
        {
            return Ok(());
        }
        let started = Instant::now();
        let config = SessionConfig::new()
            .with_target_partitions(2)
            .with_information_schema(false)
            .set_bool(
                "datafusion.execution.parquet.schema_force_view_types",
                false,
            );
        let context = SessionContext::new_with_config(config);
        for ((table, name), version) in relations.iter().zip(&versions) {
            let stream = self.lake.scan_version(table, *version).await?;
            let batches: Vec<_> = stream
                .try_collect()
                .await
                .map_err(Error::datafusion(format!("reading {}", table.name)))?;
            register(&context, name, table.arrow_schema(), batches)?;
        }
        let summaries = SUMMARIES.iter().map(|s| (s.name, s.full()));
        let views = VIEWS.iter().map(|v| (v.name, (v.query)()));
        let summaries: Vec<(&str, String)> = summaries.chain(views).collect();
        for (name, query) in summaries {
            let frame = context
                .sql(&query)
                .await
                .map_err(Error::datafusion(format!("planning view {name}")))?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame
                .collect()
                .await
                .map_err(Error::datafusion(format!("computing view {name}")))?;
            // The executed plan's schema can differ in nullability from the logical one.
            let schema = batches.first().map_or(schema, |b| b.schema());
            register(&context, name, schema, batches)?;
        }
        info!(
            seconds = started.elapsed().as_secs_f64(),
            ?versions,
            "embedded warehouse loaded gold"
        );
        *self.snapshot.write().await = Some(Arc::new(Snapshot { versions, context }));
        Ok(())
    }

    /// The gold version the snapshot holds (the Delta version of `gold/fact_sales`), `None`
    /// when no snapshot is loaded.
    pub async fn gold_version(&self) -> Option<i64> {
        let fact_index = relations()
            .iter()
            .position(|(table, _)| table.name == tables::GOLD_FACT_SALES.name)?;
        self.snapshot
            .read()
            .await
            .as_ref()
            .and_then(|s| s.versions.get(fact_index))
            .map(|v| *v as i64)
    }

    /// Whether a snapshot is loaded.
    pub async fn is_loaded(&self) -> bool {
        self.snapshot.read().await.is_some()
    }

    /// Drops the snapshot: the next query loads gold again.
    pub async fn forget(&self) {
        *self.snapshot.write().await = None;
        *self.checked.lock().await = None;
    }

    async fn current(&self) -> Result<Arc<Snapshot>> {
        let mut checked = self.checked.lock().await;
        let due = checked.is_none_or(|at| at.elapsed() >= self.recheck);
        if due || self.snapshot.read().await.is_none() {
            self.refresh().await?;
            *checked = Some(Instant::now());
        }
        // Read under the check's lock: a concurrent `forget` cannot empty it in between.
        let snapshot = self.snapshot.read().await;
        snapshot.as_ref().map(Arc::clone).ok_or(Error::NoGold {
            table: tables::GOLD_FACT_SALES.name,
        })
    }

    /// A token that changes whenever the gold data served changes (the gold versions).
    ///
    /// # Errors
    ///
    /// When gold is missing or cannot be read.
    pub async fn data_version(&self) -> Result<String> {
        let snapshot = self.current().await?;
        Ok(snapshot
            .versions
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."))
    }

    /// Runs a catalogue query.
    ///
    /// # Errors
    ///
    /// When gold is missing or DataFusion fails.
    pub async fn run(&self, query: &QueryDef, params: &Params) -> Result<QueryResult> {
        let frame = self.frame(query, params).await?;
        let batches = frame
            .collect()
            .await
            .map_err(Error::datafusion(format!("running {}", query.name)))?;
        QueryResult::from_batches(&batches)
    }

    /// Runs a catalogue query and streams its rows batch by batch, over the snapshot current
    /// when it starts (a refresh meanwhile does not change what the stream reads).
    ///
    /// # Errors
    ///
    /// When gold is missing or DataFusion cannot plan the query; later failures end the
    /// stream with an error.
    pub async fn run_streaming(&self, query: &QueryDef, params: &Params) -> Result<ResultStream> {
        let frame = self.frame(query, params).await?;
        let name = query.name;
        let batches = frame
            .execute_stream()
            .await
            .map_err(Error::datafusion(format!("running {name}")))?;
        Ok(Box::pin(batches.map(move |batch| {
            let batch = batch.map_err(Error::datafusion(format!("streaming {name}")))?;
            QueryResult::from_batches(std::slice::from_ref(&batch))
        })))
    }

    /// The query planned over the current snapshot, its parameters bound.
    async fn frame(
        &self,
        query: &QueryDef,
        params: &Params,
    ) -> Result<deltalake::datafusion::dataframe::DataFrame> {
        let snapshot = self.current().await?;
        let statement = query.statement(params);
        let values: Vec<ScalarValue> = statement
            .args
            .iter()
            .map(|arg| match arg {
                Arg::Int(value) => ScalarValue::Int32(Some(*value)),
                Arg::Date(value) => ScalarValue::Date32(Some(
                    (*value - chrono::NaiveDate::default()).num_days() as i32,
                )),
                Arg::Timestamp(value) => ScalarValue::TimestampMicrosecond(
                    Some(value.and_utc().timestamp_micros()),
                    None,
                ),
                Arg::Text(value) => ScalarValue::Utf8(Some(value.clone())),
            })
            .collect();
        let operation = || format!("running {}", query.name);
        let mut frame = snapshot
            .context
            .sql(&statement.sql)
            .await
            .map_err(Error::datafusion(operation()))?;
        if !values.is_empty() {
            frame = frame
                .with_param_values(values)
                .map_err(Error::datafusion(operation()))?;
        }
        Ok(frame)
    }

    /// Runs any read-only SQL over the snapshot (tests compare gold with the views this way).
    ///
    /// # Errors
    ///
    /// When gold is missing or DataFusion fails.
    pub async fn sql(&self, sql: &str) -> Result<QueryResult> {
        let snapshot = self.current().await?;
        let frame = snapshot
            .context
            .sql(sql)
            .await
            .map_err(Error::datafusion("running SQL"))?;
        let batches = frame
            .collect()
            .await
            .map_err(Error::datafusion("running SQL"))?;
        QueryResult::from_batches(&batches)
    }
}

fn register(
    context: &SessionContext,
    name: &str,
    schema: deltalake::arrow::datatypes::SchemaRef,
    batches: Vec<deltalake::arrow::array::RecordBatch>,
) -> Result<()> {
    // Two partitions so both cores work on a query.
    let mut partitions = vec![Vec::new(), Vec::new()];
    for (index, batch) in batches.into_iter().enumerate() {
        partitions[index % 2].push(batch);
    }
    let table = MemTable::try_new(schema, partitions)
        .map_err(Error::datafusion(format!("registering {name}")))?;
    context
        .register_table(name, Arc::new(table))
        .map_err(Error::datafusion(format!("registering {name}")))?;
    Ok(())
}

#[async_trait::async_trait]
impl Warehouse for EmbeddedWarehouse {
    fn backend(&self) -> Backend {
        Backend::Embedded
    }

    async fn query(&self, query: &QueryDef, params: &Params) -> Result<QueryResult> {
        use tracing::Instrument as _;
        let span = tracing::info_span!("warehouse_query", query = query.name, backend = "embedded");
        self.run(query, params).instrument(span).await
    }

    async fn stream(&self, query: &QueryDef, params: &Params) -> Result<ResultStream> {
        use tracing::Instrument as _;
        let span = tracing::info_span!(
            "warehouse_query",
            query = query.name,
            backend = "embedded",
            streamed = true
        );
        self.run_streaming(query, params).instrument(span).await
    }

    async fn data_version(&self) -> Result<String> {
        EmbeddedWarehouse::data_version(self).await
    }
}
