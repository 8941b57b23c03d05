//! OpenLineage run events (spec 2-0-2). An ingestion is the job `ingest.<source system>`
//! (`ingest.file`, `ingest.api`, `ingest.kafka`, ...) from the source dataset to bronze, told
//! when it is recorded. A pipeline run is the job
//! `pipeline`, each asset it materialises as the job `pipeline.<asset>` (its parent the run),
//! each a `START` and then a `COMPLETE` or `FAIL`. An asset's events name its input and output
//! datasets with their schema; its `COMPLETE` adds each output's column lineage (the
//! `columnLineage` facet 1-2-0, from [`crate::lineage`]) and the rows written. Events go to an
//! [`EventSink`] (a file of JSON lines or an HTTP endpoint such as Marquez's
//! `/api/v1/lineage`); a sink's failure is logged and counted
//! (`retail_openlineage_events_total{outcome="failed"}`), never fails the run.
//!
//! Dataset identities: a lake table is the lake's URI as namespace and its path
//! (`gold/fact_sales`) as name; a warehouse relation is the warehouse's namespace (the
//! PostgreSQL server, `postgres://host:port`) and `database.schema.relation`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use retail_domain::lineage::{Edge, Lineage, ROWS};
use retail_lake::schema::BRONZE_TRANSACTIONS;
use retail_metadata::{AssetRun, RunRecord, RunStatus};
use retail_pipeline::lineage::SOURCE;
use retail_pipeline::{Asset, RunListener};
use retail_telemetry::metrics;
use serde_json::{Map, Value, json};
use tracing::warn;

use crate::lineage::LineageService;

/// The RunEvent schema the events follow.
pub const RUN_EVENT_SCHEMA: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const FACETS: &str = "https://openlineage.io/spec/facets";

fn facet_url(version: &str, name: &str) -> String {
    format!("{FACETS}/{version}/{name}.json#/$defs/{name}")
}

/// Where events go.
#[async_trait]
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Delivers one event.
    async fn send(&self, event: &Value) -> Result<(), String>;
}

/// How the events name jobs and datasets.
#[derive(Debug, Clone)]
pub struct Namespaces {
    /// The jobs' namespace (`openlineage.namespace`, default `retail`).
    pub jobs: String,
    /// The lake's URI (`file:///srv/lake`, `s3://bucket/lake`): the namespace of its tables.
    pub lake: String,
    /// The PostgreSQL warehouse's namespace and the prefix of its relations' names
    /// (`postgres://db.example:5432`, `retail.public`), when it is the backend.
    pub warehouse: Option<(String, String)>,
}

/// The lineage datasets an asset reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AssetDatasets {
    /// Its upstream assets' outputs (bronze for silver).
    inputs: Vec<String>,
    /// The tables it writes, or the warehouse's relations for the PostgreSQL follower.
    outputs: Vec<String>,
}

/// The key of the asset that loads the PostgreSQL warehouse.
const WAREHOUSE_FOLLOWER: &str = "warehouse/postgres";

/// Builds and sends the events of pipeline runs.
pub struct OpenLineageEmitter {
    sink: Arc<dyn EventSink>,
    lineage: Arc<dyn LineageService>,
    namespaces: Namespaces,
    /// Filled on first use from the asset graph (the lineage is built lazily).
    assets: Vec<(String, &'static [&'static str], Vec<String>)>,
    producer: String,
    /// The run ids given to assets of runs under way: (pipeline run, asset) → asset run.
    children: Mutex<HashMap<(String, String), String>>,
}

impl std::fmt::Debug for OpenLineageEmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenLineageEmitter")
            .field("sink", &self.sink)
            .field("namespaces", &self.namespaces)
            .finish_non_exhaustive()
    }
}

impl OpenLineageEmitter {
    /// An emitter for the runs of `assets`, sending to `sink`.
    pub fn new(
        sink: Arc<dyn EventSink>,
        lineage: Arc<dyn LineageService>,
        namespaces: Namespaces,
        assets: &[Arc<dyn Asset>],
    ) -> Self {
        Self {
            sink,
            lineage,
            namespaces,
            assets: assets
                .iter()
                .map(|a| {
                    let tables = a
                        .tables()
                        .iter()
                        .map(retail_pipeline::lineage::dataset_name)
                        .collect();
                    (a.key().to_owned(), a.upstream(), tables)
                })
                .collect(),
            producer: format!(
                "https://github.com/retail-data-platform/retail/tree/v{}",
                env!("CARGO_PKG_VERSION")
            ),
            children: Mutex::new(HashMap::new()),
        }
    }

    /// The namespace and name of a lineage dataset.
    pub fn identity(&self, dataset: &str) -> (String, String) {
        if let Some(relation) = dataset.strip_prefix("warehouse.")
            && let Some((namespace, prefix)) = &self.namespaces.warehouse
        {
            return (namespace.clone(), format!("{prefix}.{relation}"));
        }
        match dataset.split_once('.') {
            Some((layer @ ("bronze" | "silver" | "gold"), table)) => {
                (self.namespaces.lake.clone(), format!("{layer}/{table}"))
            }
            _ => (self.namespaces.jobs.clone(), dataset.to_owned()),
        }
    }

    fn base(&self, event_type: &str, run: Value, job: &str, job_type: &str) -> Map<String, Value> {
        let mut event = Map::new();
        event.insert("eventType".into(), json!(event_type));
        event.insert(
            "eventTime".into(),
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        event.insert("run".into(), run);
        event.insert(
            "job".into(),
            json!({
                "namespace": self.namespaces.jobs,
                "name": job,
                "facets": {"jobType": {
                    "_producer": self.producer,
                    "_schemaURL": facet_url("2-0-3", "JobTypeJobFacet"),
                    "processingType": "BATCH",
                    "integration": "RETAIL",
                    "jobType": job_type,
                }},
            }),
        );
        event.insert("producer".into(), json!(self.producer));
        event.insert("schemaURL".into(), json!(RUN_EVENT_SCHEMA));
        event
    }

    fn error_facet(&self, message: &str) -> Value {
        json!({
            "_producer": self.producer,
            "_schemaURL": facet_url("1-0-1", "ErrorMessageRunFacet"),
            "message": message,
            "programmingLanguage": "RUST",
        })
    }

    /// The `COMPLETE` or `FAIL` (with the cause) of a recorded run, as its status says.
    fn ended(&self, run: &RunRecord, job: &str, job_type: &str) -> Map<String, Value> {
        let failed = run.status == RunStatus::Failed;
        let mut facets = Map::new();
        if failed {
            let message = run.error.clone().unwrap_or_else(|| "failed".to_owned());
            facets.insert("errorMessage".into(), self.error_facet(&message));
        }
        self.base(
            if failed { "FAIL" } else { "COMPLETE" },
            json!({"runId": run.run_id, "facets": facets}),
            job,
            job_type,
        )
    }

    async fn lineage(&self) -> Option<Arc<Lineage>> {
        match self.lineage.lineage().await {
            Ok(lineage) => Some(lineage),
            Err(error) => {
                warn!(%error, "OpenLineage: the lineage could not be built; events go without it");
                None
            }
        }
    }

    fn datasets_of(&self, asset: &str, lineage: Option<&Lineage>) -> AssetDatasets {
        let outputs_of = |key: &str| -> Vec<String> {
            if key == retail_pipeline::asset::BRONZE {
                return vec![retail_pipeline::lineage::dataset_name(
                    &retail_lake::schema::BRONZE_TRANSACTIONS,
                )];
            }
            if key == WAREHOUSE_FOLLOWER {
                return lineage
                    .map(|l| {
                        l.datasets
                            .iter()
                            .filter(|d| d.layer == "warehouse")
                            .map(|d| d.name.clone())
                            .collect()
                    })
                    .unwrap_or_default();
            }
            self.assets
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, _, tables)| tables.clone())
                .unwrap_or_default()
        };
        let upstream = self
            .assets
            .iter()
            .find(|(k, _, _)| k == asset)
            .map_or(&[][..], |(_, upstream, _)| *upstream);
        AssetDatasets {
            inputs: upstream.iter().flat_map(|k| outputs_of(k)).collect(),
            outputs: outputs_of(asset),
        }
    }

    fn dataset(&self, name: &str, lineage: Option<&Lineage>) -> Map<String, Value> {
        let (namespace, id) = self.identity(name);
        let mut dataset = Map::new();
        dataset.insert("namespace".into(), json!(namespace));
        dataset.insert("name".into(), json!(id));
        if let Some(found) = lineage.and_then(|l| l.dataset(name)) {
            let fields: Vec<Value> = found
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| json!({"name": c, "ordinal_position": i + 1}))
                .collect();
            dataset.insert(
                "facets".into(),
                json!({"schema": {
                    "_producer": self.producer,
                    "_schemaURL": facet_url("1-2-0", "SchemaDatasetFacet"),
                    "fields": fields,
                }}),
            );
        }
        dataset
    }

    /// An output dataset at the end of its job: its schema, its column lineage when the job
    /// completed, the rows written when known.
    fn written(
        &self,
        name: &str,
        lineage: Option<&Lineage>,
        completed: bool,
        rows: Option<u64>,
    ) -> Value {
        let mut dataset = self.dataset(name, lineage);
        if completed
            && let Some(lineage) = lineage
            && let Some(Value::Object(facets)) = dataset.get_mut("facets")
        {
            facets.insert("columnLineage".into(), self.column_lineage(name, lineage));
        }
        if let Some(rows) = rows {
            dataset.insert(
                "outputFacets".into(),
                json!({"outputStatistics": {
                    "_producer": self.producer,
                    "_schemaURL": facet_url("1-0-2", "OutputStatisticsOutputDatasetFacet"),
                    "rowCount": rows,
                }}),
            );
        }
        Value::Object(dataset)
    }

    /// Datasets by name, each with its schema facet.
    fn described(&self, names: &[String], lineage: Option<&Lineage>) -> Vec<Value> {
        names
            .iter()
            .map(|name| Value::Object(self.dataset(name, lineage)))
            .collect()
    }

    /// The `columnLineage` facet of `dataset`: each column's input fields with their
    /// transformations, and the inputs of its rows.
    pub fn column_lineage(&self, dataset: &str, lineage: &Lineage) -> Value {
        let mut fields: BTreeMap<&str, InputFields<'_>> = BTreeMap::new();
        let mut rows: InputFields<'_> = BTreeMap::new();
        for edge in lineage.inputs_of(dataset) {
            let (namespace, name) = self.identity(&edge.from.dataset);
            let key = (namespace, name, edge.from.column.as_str());
            let entry = if edge.to.column == ROWS {
                rows.entry(key).or_default()
            } else {
                fields
                    .entry(edge.to.column.as_str())
                    .or_default()
                    .entry(key)
                    .or_default()
            };
            entry.push(transformation(edge));
        }
        let input_fields = |inputs: InputFields<'_>| -> Vec<Value> {
            inputs
                .into_iter()
                .map(|((namespace, name, field), transformations)| {
                    json!({"namespace": namespace, "name": name, "field": field,
                           "transformations": transformations})
                })
                .collect()
        };
        let fields: Map<String, Value> = fields
            .into_iter()
            .map(|(column, inputs)| {
                (
                    column.to_owned(),
                    json!({"inputFields": input_fields(inputs)}),
                )
            })
            .collect();
        json!({
            "_producer": self.producer,
            "_schemaURL": facet_url("1-2-0", "ColumnLineageDatasetFacet"),
            "fields": fields,
            "dataset": input_fields(rows),
        })
    }

    async fn emit(&self, event: Map<String, Value>) {
        let event = Value::Object(event);
        match self.sink.send(&event).await {
            Ok(()) => metrics::record_openlineage_event("sent"),
            Err(error) => {
                metrics::record_openlineage_event("failed");
                warn!(%error, "OpenLineage: an event could not be delivered");
            }
        }
    }

    fn parent(&self, run: &RunRecord) -> Value {
        let job = json!({"namespace": self.namespaces.jobs, "name": "pipeline"});
        json!({
            "_producer": self.producer,
            "_schemaURL": facet_url("1-1-0", "ParentRunFacet"),
            "run": {"runId": run.run_id},
            "job": job,
            "root": {"run": {"runId": run.run_id}, "job": job},
        })
    }
}

/// An output's input fields: (namespace, name, field) → the transformations.
type InputFields<'a> = BTreeMap<(String, String, &'a str), Vec<Value>>;

fn transformation(edge: &Edge) -> Value {
    let mut value = json!({
        "type": edge.kind,
        "subtype": edge.subtype,
        "masking": false,
    });
    if !edge.description.is_empty() {
        value["description"] = json!(edge.description);
    }
    value
}

/// The job of an asset: `pipeline.gold`.
pub fn asset_job(asset: &str) -> String {
    format!("pipeline.{asset}")
}

#[async_trait]
impl RunListener for OpenLineageEmitter {
    async fn run_started(&self, run: &RunRecord) {
        let event = self.base("START", json!({"runId": run.run_id}), "pipeline", "DAG");
        self.emit(event).await;
    }

    async fn asset_started(&self, run: &RunRecord, asset: &str) {
        let id = uuid::Uuid::now_v7().to_string();
        if let Ok(mut children) = self.children.lock() {
            children.insert((run.run_id.clone(), asset.to_owned()), id.clone());
        }
        let lineage = self.lineage().await;
        let datasets = self.datasets_of(asset, lineage.as_deref());
        let mut event = self.base(
            "START",
            json!({"runId": id, "facets": {"parent": self.parent(run)}}),
            &asset_job(asset),
            "TASK",
        );
        let inputs = self.described(&datasets.inputs, lineage.as_deref());
        let outputs = self.described(&datasets.outputs, lineage.as_deref());
        event.insert("inputs".into(), Value::Array(inputs));
        event.insert("outputs".into(), Value::Array(outputs));
        self.emit(event).await;
    }

    async fn asset_finished(
        &self,
        run: &RunRecord,
        asset: &str,
        recorded: &[AssetRun],
        error: Option<&str>,
    ) {
        let id = self
            .children
            .lock()
            .ok()
            .and_then(|mut c| c.remove(&(run.run_id.clone(), asset.to_owned())))
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let lineage = self.lineage().await;
        let datasets = self.datasets_of(asset, lineage.as_deref());
        let mut facets = Map::new();
        facets.insert("parent".into(), self.parent(run));
        if let Some(message) = error {
            facets.insert("errorMessage".into(), self.error_facet(message));
        }
        let mut event = self.base(
            if error.is_some() { "FAIL" } else { "COMPLETE" },
            json!({"runId": id, "facets": facets}),
            &asset_job(asset),
            "TASK",
        );
        let inputs = self.described(&datasets.inputs, lineage.as_deref());
        let outputs: Vec<Value> = datasets
            .outputs
            .iter()
            .map(|name| {
                let table = name.replacen('.', "/", 1);
                let rows = recorded.iter().find(|r| r.asset == table).map(|r| r.rows);
                self.written(name, lineage.as_deref(), error.is_none(), rows)
            })
            .collect();
        event.insert("inputs".into(), Value::Array(inputs));
        event.insert("outputs".into(), Value::Array(outputs));
        self.emit(event).await;
    }

    async fn run_finished(&self, run: &RunRecord) {
        let event = self.ended(run, "pipeline", "DAG");
        self.emit(event).await;
    }

    async fn ingestion_finished(&self, run: &RunRecord, system: &str) {
        let lineage = self.lineage().await;
        let job = format!("ingest.{system}");
        let inputs = self.described(&[SOURCE.to_owned()], lineage.as_deref());
        let bronze = retail_pipeline::lineage::dataset_name(&BRONZE_TRANSACTIONS);
        // Told once the ingestion is recorded: its START carries the time it started.
        let mut start = self.base("START", json!({"runId": run.run_id}), &job, "JOB");
        start.insert(
            "eventTime".into(),
            json!(
                run.started_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
        );
        start.insert("inputs".into(), Value::Array(inputs.clone()));
        let outputs = self.described(std::slice::from_ref(&bronze), lineage.as_deref());
        start.insert("outputs".into(), Value::Array(outputs));
        self.emit(start).await;
        let failed = run.status == RunStatus::Failed;
        let mut end = self.ended(run, &job, "JOB");
        end.insert("inputs".into(), Value::Array(inputs));
        let output = self.written(&bronze, lineage.as_deref(), !failed, Some(run.rows_out));
        end.insert("outputs".into(), json!([output]));
        self.emit(end).await;
    }
}
