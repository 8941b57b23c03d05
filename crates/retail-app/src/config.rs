//! The one typed configuration of the platform and its loader.
//!
//! Precedence, lowest to highest:
//! 1. built-in defaults ([`Config::default`]: everything embedded, under `./data`);
//! 2. the TOML file given with `--config` (or `RETAIL_CONFIG`);
//! 3. environment variables `RETAIL__<SECTION>__<KEY>` (for example `RETAIL__LAKE__ROOT`;
//!    map entries take a third part: `RETAIL__LAKE__STORAGE_OPTIONS__AWS_REGION`);
//! 4. command-line flags of the subcommand being run.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use retail_lake::LakeConfig;
use retail_metadata::MetadataConfig;
use retail_services::ApiConfig;
use retail_warehouse::WarehouseConfig;
use serde::{Deserialize, Serialize};

/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "RETAIL__";

/// Ingestion settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Bronze rows per Delta commit during a large ingestion.
    pub commit_rows: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            commit_rows: 2_000_000,
        }
    }
}

/// Pipeline run settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Attempts of one asset when it fails for a transient reason (a store out of reach, a
    /// lost connection); 1 means no retry.
    pub max_attempts: u32,
    /// The wait before the first retry, in milliseconds; each later one doubles, with random
    /// jitter.
    pub retry_backoff_ms: u64,
    /// The earliest plausible invoice date: earlier rows are quarantined as
    /// `implausible_invoice_date` (as are rows dated more than a day after their ingestion).
    pub earliest_invoice_date: chrono::NaiveDate,
    /// With streams (`retail serve` with `[[streams]]`, `retail stream run --follow`): the
    /// shortest time between two pipeline runs that follow bronze, in milliseconds.
    pub follow_interval_ms: u64,
    /// A pipeline run whose silver stage writes all of silver (a first load) from at most
    /// this many bronze rows hands those rows over to gold in memory, interned as gold reads
    /// them (about 80 bytes a row), instead of gold reading them back from the lake; above it,
    /// or 0, gold always reads silver back (slower; less memory held at once).
    pub silver_handover_max_rows: u64,
    /// Retry policies of single assets (`[pipeline.retries."warehouse/postgres"]`), in place of
    /// `max_attempts` and `retry_backoff_ms` for them.
    pub retries: std::collections::BTreeMap<String, AssetRetry>,
    /// Freshness SLAs of single assets (`[pipeline.freshness.gold] max_lag_minutes = 60`): a
    /// breach shows in the pipeline's status, as `retail_asset_freshness_breached` and as the
    /// alert `AssetFreshnessBreached`.
    pub freshness: std::collections::BTreeMap<String, retail_pipeline::FreshnessPolicy>,
}

/// How one asset's transient failures are retried (`[pipeline.retries.KEY]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetRetry {
    /// Attempts in all (1: no retry).
    pub max_attempts: u32,
    /// The wait before the first retry, in milliseconds; each later one doubles, with jitter.
    pub retry_backoff_ms: u64,
}

impl AssetRetry {
    /// As the runner takes it.
    pub fn policy(self) -> retail_pipeline::RetryPolicy {
        retail_pipeline::RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: std::time::Duration::from_millis(self.retry_backoff_ms),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            retry_backoff_ms: 500,
            earliest_invoice_date: retail_domain::record::DateWindow::default_earliest().date(),
            follow_interval_ms: 1_000,
            silver_handover_max_rows: retail_pipeline::DEFAULT_HANDOVER_MAX_ROWS,
            retries: std::collections::BTreeMap::new(),
            freshness: std::collections::BTreeMap::new(),
        }
    }
}

impl PipelineConfig {
    /// The silver rules these settings make.
    pub fn silver_rules(&self) -> retail_pipeline::SilverRules {
        retail_pipeline::SilverRules {
            earliest_invoice_date: self.earliest_invoice_date.and_time(chrono::NaiveTime::MIN),
        }
    }
}

/// Privacy (`[privacy]`): the key of the keyed hashes that stand for a customer (the subject
/// of a GDPR erasure in its report), and which purposes need a recorded consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// The key, at least 32 characters, or where it lives (`file:`, `env:`, `aws-sm:`);
    /// empty: erasure reports name no subject. Keep it out of the data's reach: whoever has
    /// it can test a candidate id against a report.
    pub key: String,
    /// Purposes a customer's data may be used for only after a recorded grant (opt-in); the
    /// others hold until the customer withdraws them (opt-out). Default: `["marketing"]`.
    pub opt_in: Vec<retail_domain::privacy::Purpose>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            key: String::new(),
            opt_in: vec![retail_domain::privacy::Purpose::Marketing],
        }
    }
}

impl PrivacyConfig {
    /// The key's bytes, `None` when unset.
    pub fn key_bytes(&self) -> Option<Vec<u8>> {
        (!self.key.is_empty()).then(|| self.key.as_bytes().to_vec())
    }

    fn problems(&self) -> Vec<String> {
        if !self.key.is_empty() && self.key.len() < 32 {
            return vec![format!(
                "privacy.key must be at least 32 characters, not {}",
                self.key.len()
            )];
        }
        Vec::new()
    }
}

/// Search (`[search]`): the index of products, customers and invoices kept in step with gold
/// (the `search` follower) and the engine that answers `/api/v1/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Whether the `search` follower is part of the graph and the search API answers.
    pub enabled: bool,
    /// `tantivy` (the embedded index, default) or `typesense` (a Typesense server kept in step
    /// with gold; keyword search and type-ahead only).
    pub engine: String,
    /// The Typesense server (`engine = "typesense"`).
    pub typesense_url: String,
    /// Its API key.
    pub typesense_api_key: String,
    /// The collection holding gold's documents.
    pub typesense_collection: String,
    /// Where the embedded index lives; empty: `search` beside the lake's tables, or beside the
    /// metadata store's file when the lake is on object storage.
    pub dir: String,
    /// Dimensions of the product embeddings.
    pub embedding_dim: usize,
    /// Seed of the embeddings' random directions.
    pub seed: u64,
    /// Past this many products, semantic search uses an approximate (IVF) vector index instead
    /// of scoring every product (`retail search bench-vectors` measures both).
    pub ann_above: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        let settings = retail_search::EmbeddingSettings::default();
        Self {
            enabled: true,
            engine: "tantivy".to_owned(),
            typesense_url: String::new(),
            typesense_api_key: String::new(),
            typesense_collection: "retail".to_owned(),
            dir: String::new(),
            embedding_dim: settings.dim,
            seed: settings.seed,
            ann_above: settings.ann_above,
        }
    }
}

impl SearchConfig {
    /// The embeddings' settings.
    pub fn embedding(&self) -> retail_search::EmbeddingSettings {
        retail_search::EmbeddingSettings {
            dim: self.embedding_dim,
            seed: self.seed,
            ann_above: self.ann_above,
        }
    }

    /// The index's directory: `dir`, else `search` beside the tables of a lake on a local
    /// disk, else `search` beside the metadata store's file (`metadata_path`).
    pub fn index_dir(&self, root: &url::Url, metadata_path: &str) -> std::path::PathBuf {
        if !self.dir.trim().is_empty() {
            return std::path::PathBuf::from(self.dir.trim());
        }
        match root.to_file_path() {
            Ok(path) if root.scheme() == "file" => path.join("search"),
            _ => std::path::Path::new(metadata_path)
                .parent()
                .unwrap_or_else(|| std::path::Path::new("."))
                .join("search"),
        }
    }

    /// The Typesense server, when it is the engine.
    pub fn typesense(&self) -> Option<retail_search::typesense::TypesenseConfig> {
        (self.engine == "typesense").then(|| retail_search::typesense::TypesenseConfig {
            url: self.typesense_url.clone(),
            api_key: self.typesense_api_key.clone(),
            collection: self.typesense_collection.clone(),
        })
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.engine.as_str() {
            "tantivy" => {}
            "typesense" => {
                if !(self.typesense_url.starts_with("http://")
                    || self.typesense_url.starts_with("https://"))
                {
                    problems.push(format!(
                        "search.typesense_url must be an http:// or https:// URL, not {:?}",
                        self.typesense_url
                    ));
                }
                if self.typesense_api_key.is_empty() {
                    problems.push("search.typesense_api_key must be set".to_owned());
                }
                if self.typesense_collection.is_empty()
                    || !self
                        .typesense_collection
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    problems.push(format!(
                        "search.typesense_collection must be letters, digits and _, not {:?}",
                        self.typesense_collection
                    ));
                }
            }
            other => problems.push(format!(
                "search.engine must be tantivy or typesense, not {other:?}"
            )),
        }
        if !(8..=1024).contains(&self.embedding_dim) {
            problems.push(format!(
                "search.embedding_dim must be 8 to 1024, not {}",
                self.embedding_dim
            ));
        }
        problems
    }
}

/// Recommendations (`[recommendations]`): fitted on gold after every gold build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecommendationsConfig {
    /// Whether the `recommendations` asset is part of the graph.
    pub enabled: bool,
    /// Association rules are kept when their products share at least this many baskets.
    pub min_pair_baskets: u32,
    /// Neighbours kept per product (customers who bought this also bought).
    pub neighbours: usize,
    /// Similar customers whose purchases make a customer's "for you".
    pub user_neighbours: usize,
    /// Products kept per customer ("for you").
    pub per_customer: usize,
}

impl Default for RecommendationsConfig {
    fn default() -> Self {
        let settings = retail_search::RecommendSettings::default();
        Self {
            enabled: true,
            min_pair_baskets: settings.min_pair_baskets,
            neighbours: settings.neighbours,
            user_neighbours: settings.user_neighbours,
            per_customer: settings.per_customer,
        }
    }
}

impl RecommendationsConfig {
    /// The asset's settings.
    pub fn settings(&self) -> retail_search::RecommendSettings {
        retail_search::RecommendSettings {
            min_pair_baskets: self.min_pair_baskets,
            neighbours: self.neighbours,
            per_customer: self.per_customer,
            user_neighbours: self.user_neighbours,
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.min_pair_baskets == 0 {
            problems.push("recommendations.min_pair_baskets must be at least 1".to_owned());
        }
        if !(1..=500).contains(&self.neighbours) {
            problems.push(format!(
                "recommendations.neighbours must be 1 to 500, not {}",
                self.neighbours
            ));
        }
        if !(1..=1000).contains(&self.user_neighbours) {
            problems.push(format!(
                "recommendations.user_neighbours must be 1 to 1000, not {}",
                self.user_neighbours
            ));
        }
        if !(1..=100).contains(&self.per_customer) {
            problems.push(format!(
                "recommendations.per_customer must be 1 to 100, not {}",
                self.per_customer
            ));
        }
        problems
    }
}

/// The models asset (`[models]`): trained on gold after every gold build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Whether the `models` asset is part of the graph.
    pub enabled: bool,
    /// Countries (largest net revenue first) forecast on their own besides the total.
    pub countries: usize,
    /// Calendar days forecast (1 to 90).
    pub horizon_days: u32,
    /// Rolling-origin backtest: forecast origins.
    pub backtest_origins: usize,
    /// Rolling-origin backtest: trading days forecast from each origin.
    pub backtest_horizon: usize,
    /// Bootstrap replicates behind the customer models' intervals (0: no intervals).
    pub bootstrap: usize,
    /// Monthly discount rate of customer lifetime value.
    pub discount_monthly: f64,
    /// Days at the end of the data held out to validate the customer models.
    pub holdout_days: u32,
    /// Isolation-forest score from which a day is an anomaly (0.5 to 1).
    pub anomaly_score: f64,
    /// A metric's robust z from which an anomaly names it among its reasons.
    pub anomaly_explain_z: f64,
    /// Seed of the isolation forest and the bootstrap.
    pub seed: u64,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        let settings = retail_models::ModelsSettings::default();
        Self {
            enabled: true,
            countries: settings.countries,
            horizon_days: settings.horizon_days,
            backtest_origins: settings.backtest.origins,
            backtest_horizon: settings.backtest.horizon,
            bootstrap: settings.bootstrap,
            discount_monthly: settings.discount,
            holdout_days: settings.holdout_days,
            anomaly_score: settings.anomaly.score_threshold,
            anomaly_explain_z: settings.anomaly.explain_z,
            seed: settings.seed,
        }
    }
}

impl ModelsConfig {
    /// The asset's settings.
    pub fn settings(&self) -> retail_models::ModelsSettings {
        let defaults = retail_models::ModelsSettings::default();
        retail_models::ModelsSettings {
            countries: self.countries,
            horizon_days: self.horizon_days,
            backtest: retail_models::forecast::BacktestPlan {
                origins: self.backtest_origins,
                horizon: self.backtest_horizon,
            },
            anomaly: retail_models::anomaly::Settings {
                score_threshold: self.anomaly_score,
                explain_z: self.anomaly_explain_z,
                seed: self.seed,
                ..defaults.anomaly
            },
            bootstrap: self.bootstrap,
            discount: self.discount_monthly,
            holdout_days: self.holdout_days,
            seed: self.seed,
            ..defaults
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=90).contains(&self.horizon_days) {
            problems.push(format!(
                "models.horizon_days must be 1 to 90, not {}",
                self.horizon_days
            ));
        }
        if self.backtest_origins == 0 || self.backtest_horizon == 0 {
            problems.push(
                "models.backtest_origins and models.backtest_horizon must be at least 1".to_owned(),
            );
        }
        if self.bootstrap > 1_000 {
            problems.push(format!(
                "models.bootstrap must be at most 1000, not {}",
                self.bootstrap
            ));
        }
        if !(0.0..1.0).contains(&self.discount_monthly) {
            problems.push(format!(
                "models.discount_monthly must be at least 0 and below 1, not {}",
                self.discount_monthly
            ));
        }
        if !(1..=3_650).contains(&self.holdout_days) {
            problems.push(format!(
                "models.holdout_days must be 1 to 3650, not {}",
                self.holdout_days
            ));
        }
        if self.countries > 50 {
            problems.push(format!(
                "models.countries must be at most 50, not {}",
                self.countries
            ));
        }
        if !(0.5..=1.0).contains(&self.anomaly_score) {
            problems.push(format!(
                "models.anomaly_score must be 0.5 to 1, not {}",
                self.anomaly_score
            ));
        }
        if self.anomaly_explain_z <= 0.0 || !self.anomaly_explain_z.is_finite() {
            problems.push(format!(
                "models.anomaly_explain_z must be above 0, not {}",
                self.anomaly_explain_z
            ));
        }
        problems
    }
}

/// A stream consumed into bronze (`[[streams]]`): run by `retail serve` as a background task,
/// and the shape `retail stream run` builds from its flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// A name for logs and metrics; defaults to `kafka:<topic>`, `rabbitmq:queue:<name>` or
    /// `rabbitmq:stream:<name>`.
    pub name: String,
    /// `kafka` or `rabbitmq`.
    pub source: String,
    /// Kafka: bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Kafka: the topic.
    pub topic: String,
    /// Kafka: only these partitions (a static share of the topic); empty: every partition.
    pub partitions: Vec<i32>,
    /// Kafka: the consumer group whose offsets on the brokers follow bronze's positions after
    /// each commit; a RabbitMQ stream: the consumer name whose server-side offset does. For lag
    /// tools only (bronze's positions are the ones read); empty: none.
    pub group: String,
    /// RabbitMQ streams: the port of the stream protocol, where the server-side offset of
    /// `group` is stored (the host, user and virtual host are the `url`'s); 0: none.
    pub stream_port: u16,
    /// RabbitMQ: `amqp://user:password@host:port/vhost`.
    pub url: String,
    /// RabbitMQ: a classic or quorum queue.
    pub queue: String,
    /// RabbitMQ: a stream.
    pub stream: String,
    /// Kafka: most bytes read from one partition per round.
    pub fetch_bytes: i32,
    /// RabbitMQ: most messages per round (the consumer's prefetch is twice that).
    pub batch_messages: u16,
    /// Longest wait for records on a quiet source, and for a round to fill, in milliseconds.
    pub max_wait_ms: u64,
    /// Kafka: seconds a request to the brokers is retried before it fails.
    pub retry_seconds: u64,
    /// What a message holds: `json` (one object) or `csv` (one line, named by `csv_header`).
    pub format: String,
    /// With `format = "csv"`: the header line naming the fields (either header variant).
    pub csv_header: String,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            source: "kafka".to_owned(),
            brokers: Vec::new(),
            topic: String::new(),
            partitions: Vec::new(),
            group: retail_stream::kafka::DEFAULT_GROUP.to_owned(),
            stream_port: retail_stream::DEFAULT_STREAM_PORT,
            url: String::new(),
            queue: String::new(),
            stream: String::new(),
            fetch_bytes: 4 << 20,
            batch_messages: 2_000,
            max_wait_ms: 500,
            retry_seconds: 30,
            format: "json".to_owned(),
            csv_header: String::new(),
        }
    }
}

impl StreamConfig {
    /// Its name for logs and metrics.
    pub fn label(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        match self.source.as_str() {
            "rabbitmq" if !self.queue.is_empty() => format!("rabbitmq:queue:{}", self.queue),
            "rabbitmq" => format!("rabbitmq:stream:{}", self.stream),
            _ => format!("kafka:{}", self.topic),
        }
    }

    /// The RabbitMQ queue or stream it names (a stream when `queue` is empty).
    pub fn rabbit_target(&self) -> retail_stream::RabbitTarget {
        if self.queue.is_empty() {
            retail_stream::RabbitTarget::Stream(self.stream.clone())
        } else {
            retail_stream::RabbitTarget::Queue(self.queue.clone())
        }
    }

    /// A RabbitMQ stream's endpoint and consumer name for its server-side offset, `None` for a
    /// queue, without a group or port, or with a URL that cannot be read (which opening the
    /// stream reports).
    pub fn server_offsets(&self) -> Option<(retail_stream::StreamEndpoint, String)> {
        if self.stream.is_empty() || self.group.is_empty() || self.stream_port == 0 {
            return None;
        }
        let endpoint =
            retail_stream::StreamEndpoint::from_amqp_url(&self.url, self.stream_port).ok()?;
        Some((endpoint, self.group.clone()))
    }

    /// What a message holds.
    ///
    /// # Errors
    ///
    /// When the format is unknown or the CSV header is not one.
    pub fn message_format(&self) -> Result<retail_stream::MessageFormat, String> {
        match self.format.as_str() {
            "json" if self.csv_header.is_empty() => Ok(retail_stream::MessageFormat::Json),
            "json" => Err("csv_header is for format csv".to_owned()),
            "csv" if self.csv_header.is_empty() => {
                Err("format csv needs csv_header (the header line naming the fields)".to_owned())
            }
            "csv" => retail_ingest::decode::csv_header(&self.csv_header)
                .map(|header| retail_stream::MessageFormat::Csv { header })
                .map_err(|reason| format!("csv_header: {reason}")),
            other => Err(format!("format must be json or csv, not {other:?}")),
        }
    }

    /// What is wrong with it, if anything (`what` names it in the messages).
    pub fn problems(&self, what: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(problem) = self.message_format() {
            problems.push(format!("{what}: {problem}"));
        }
        match self.source.as_str() {
            "kafka" => {
                if self.brokers.is_empty() {
                    problems.push(format!("{what}: source kafka needs brokers (host:port)"));
                }
                if self.topic.is_empty() {
                    problems.push(format!("{what}: source kafka needs a topic"));
                }
                if !self.url.is_empty() || !self.queue.is_empty() || !self.stream.is_empty() {
                    problems.push(format!(
                        "{what}: url, queue and stream are for source rabbitmq"
                    ));
                }
                if self.fetch_bytes < 1024 {
                    problems.push(format!("{what}: fetch_bytes must be at least 1024"));
                }
            }
            "rabbitmq" => {
                if self.url.is_empty() {
                    problems.push(format!("{what}: source rabbitmq needs a url (amqp://...)"));
                }
                if self.queue.is_empty() == self.stream.is_empty() {
                    problems.push(format!(
                        "{what}: source rabbitmq needs a queue or a stream (one of them)"
                    ));
                }
                if !self.brokers.is_empty() || !self.topic.is_empty() || !self.partitions.is_empty()
                {
                    problems.push(format!(
                        "{what}: brokers, topic and partitions are for source kafka"
                    ));
                }
                if self.batch_messages == 0 {
                    problems.push(format!("{what}: batch_messages must be at least 1"));
                }
            }
            other => problems.push(format!(
                "{what}: source must be kafka or rabbitmq, not {other:?}"
            )),
        }
        problems
    }
}

/// Logs and traces (`[telemetry]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// A tracing filter directive: `info`, `warn`, `retail_pipeline=debug`, ...; it selects
    /// the spans exported as well as the logs.
    pub log_level: String,
    /// `auto` (text on a terminal, JSON otherwise), `text`, `json`, or `ecs` (JSON with Elastic
    /// Common Schema field names, for an ELK stack).
    pub log_format: String,
    /// Where spans are sent over OTLP (`http://127.0.0.1:4317`); empty: spans are not
    /// exported (the default).
    pub otlp_endpoint: String,
    /// `grpc` (port 4317) or `http` (HTTP/protobuf, port 4318).
    pub otlp_protocol: String,
    /// The share of new traces exported, 0 to 1; a caller's sampled trace (`traceparent`) is
    /// always continued.
    pub trace_sample_ratio: f64,
    /// The `service.name` of spans and ECS logs.
    pub service_name: String,
    /// Whether the process records metrics and answers them at `/metrics`; off, `/metrics`
    /// answers an empty body and the alert rules on metrics see nothing (to measure the
    /// overhead, or where nothing scrapes).
    pub metrics: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_level: "warn,retail=info".to_owned(),
            log_format: "auto".to_owned(),
            otlp_endpoint: String::new(),
            otlp_protocol: "grpc".to_owned(),
            trace_sample_ratio: 1.0,
            service_name: "retail-data-platform".to_owned(),
            metrics: true,
        }
    }
}

impl TelemetryConfig {
    /// The tracing subscriber's options: `log_level` unless `filter` overrides it; `auto`
    /// logs as text when `terminal`.
    pub fn options(
        &self,
        filter: Option<String>,
        terminal: bool,
    ) -> retail_telemetry::tracing_setup::Options {
        use retail_telemetry::tracing_setup::{LogFormat, Options, Otlp, OtlpProtocol};
        let format = match self.log_format.as_str() {
            "json" => LogFormat::Json,
            "ecs" => LogFormat::Ecs,
            "text" => LogFormat::Pretty,
            _ if terminal => LogFormat::Pretty,
            _ => LogFormat::Json,
        };
        let endpoint = self.otlp_endpoint.trim();
        Options {
            filter: filter.unwrap_or_else(|| self.log_level.clone()),
            format,
            service: self.service_name.clone(),
            otlp: (!endpoint.is_empty()).then(|| Otlp {
                endpoint: endpoint.to_owned(),
                protocol: if self.otlp_protocol == "http" {
                    OtlpProtocol::HttpProtobuf
                } else {
                    OtlpProtocol::Grpc
                },
                sample_ratio: self.trace_sample_ratio,
            }),
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !["auto", "text", "json", "ecs"].contains(&self.log_format.as_str()) {
            problems.push(format!(
                "telemetry.log_format must be auto, text, json or ecs, not {:?}",
                self.log_format
            ));
        }
        if !["grpc", "http"].contains(&self.otlp_protocol.as_str()) {
            problems.push(format!(
                "telemetry.otlp_protocol must be grpc or http, not {:?}",
                self.otlp_protocol
            ));
        }
        let endpoint = self.otlp_endpoint.trim();
        if !endpoint.is_empty()
            && url::Url::parse(endpoint)
                .map(|url| !["http", "https"].contains(&url.scheme()) || url.host().is_none())
                .unwrap_or(true)
        {
            problems.push(format!(
                "telemetry.otlp_endpoint must be an http:// or https:// URL such as \
                 http://127.0.0.1:4317, not {endpoint:?}"
            ));
        }
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            problems.push(format!(
                "telemetry.trace_sample_ratio must be 0 to 1, not {}",
                self.trace_sample_ratio
            ));
        }
        if self.service_name.trim().is_empty() {
            problems.push("telemetry.service_name must not be empty".to_owned());
        }
        problems
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the lake lives.
    pub lake: LakeConfig,
    /// Where runs, users and keys are recorded.
    pub metadata: MetadataConfig,
    /// Ingestion.
    pub ingest: IngestConfig,
    /// Pipeline runs.
    pub pipeline: PipelineConfig,
    /// The warehouse that serves analytics.
    pub warehouse: WarehouseConfig,
    /// The HTTP API.
    pub api: ApiConfig,
    /// TLS to PostgreSQL and Redis.
    pub tls: retail_tls::TlsConfig,
    /// Logs.
    pub telemetry: TelemetryConfig,
    /// Streams consumed into bronze by `retail serve` (`[[streams]]` tables).
    pub streams: Vec<StreamConfig>,
    /// The models trained after gold (forecasts, anomalies, customer lifetime value).
    pub models: ModelsConfig,
    /// The search index and engine.
    pub search: SearchConfig,
    /// The recommendations fitted after gold.
    pub recommendations: RecommendationsConfig,
    /// The alert manager: receivers, routes, inhibitions, the platform's rules.
    pub alerts: retail_services::alerts::AlertsConfig,
    /// Cron schedules and sensors, run by the replica holding the scheduler's lease.
    pub scheduler: retail_services::scheduler::SchedulerConfig,
    /// Asset checks (`[[checks]]`), evaluated after their assets in every run.
    pub checks: Vec<retail_pipeline::CheckConfig>,
    /// Where secrets named by reference are fetched from.
    pub secrets: crate::secrets::SecretsConfig,
    /// The privacy key.
    pub privacy: PrivacyConfig,
    /// OpenLineage run events.
    pub openlineage: OpenLineageConfig,
}

/// OpenLineage run events (`[openlineage]`): every pipeline run and each asset it
/// materialises as `START` and `COMPLETE` / `FAIL` events (spec 2-0-2, with column lineage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenLineageConfig {
    /// `none` (the default), `file` (JSON lines appended to `path`) or `http` (each event
    /// POSTed to `url`, as Marquez's `/api/v1/lineage` takes them).
    pub transport: String,
    /// `file`: the file events are appended to, one JSON object a line.
    pub path: String,
    /// `http`: the endpoint, `http://` or `https://` (`[tls]` decides whom it trusts).
    pub url: String,
    /// `http`: a bearer token sent as `Authorization: Bearer ...`, or where it lives
    /// (`file:`, `env:`, `aws-sm:`); empty: none.
    pub api_key: String,
    /// The namespace of the jobs (`pipeline`, `pipeline.gold`, ...).
    pub namespace: String,
    /// `http`: seconds before one event is given up (logged and counted; never fails a run).
    pub timeout_seconds: u64,
}

impl Default for OpenLineageConfig {
    fn default() -> Self {
        Self {
            transport: "none".to_owned(),
            path: String::new(),
            url: String::new(),
            api_key: String::new(),
            namespace: "retail".to_owned(),
            timeout_seconds: 5,
        }
    }
}

impl OpenLineageConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.transport.as_str() {
            "none" => {}
            "file" if self.path.trim().is_empty() => {
                problems
                    .push("openlineage.path must name a file when transport = \"file\"".to_owned());
            }
            "http"
                if !(self.url.starts_with("http://") || self.url.starts_with("https://"))
                    || url::Url::parse(&self.url).is_err() =>
            {
                problems.push(format!(
                    "openlineage.url must be an http:// or https:// URL when transport = \"http\" (got {:?})",
                    self.url
                ));
            }
            "file" | "http" => {}
            other => problems.push(format!(
                "openlineage.transport must be none, file or http (got {other:?})"
            )),
        }
        if self.namespace.trim().is_empty() {
            problems.push("openlineage.namespace must not be empty".to_owned());
        }
        if self.timeout_seconds == 0 {
            problems.push("openlineage.timeout_seconds must be at least 1".to_owned());
        }
        problems
    }
}

impl Config {
    /// Loads defaults, then the file, then `RETAIL__...` variables from `env`, and validates
    /// (when a secret setting names where its secret lives, [`Config::resolve_secrets`]
    /// validates once it has fetched it).
    ///
    /// # Errors
    ///
    /// When the file cannot be read or parsed, a variable names an unknown setting or has the
    /// wrong type, or a value is invalid (every problem is listed).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut table = toml::Table::try_from(Config::default()).context("encoding defaults")?;
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read config file {}", file.display()))?;
            let overrides: toml::Table = text
                .parse()
                .with_context(|| format!("invalid TOML in {}", file.display()))?;
            merge(&mut table, overrides);
        }
        let mut from_env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(key, _)| key.starts_with(ENV_PREFIX))
            .collect();
        from_env.sort();
        for (key, value) in from_env {
            apply_env(&mut table, &key, &value)?;
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .context("invalid configuration (file or RETAIL__ variables)")?;
        // Settings that name where their secret lives are checked once it is fetched.
        if !config.has_secret_references() {
            config.validate()?;
        }
        Ok(config)
    }

    /// Reports every problem at once.
    ///
    /// # Errors
    ///
    /// Listing every problem found.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.lake.root.trim().is_empty() {
            problems.push("lake.root must not be empty".to_owned());
        }
        if self.lake.batch_rows == 0 {
            problems.push("lake.batch_rows must be at least 1".to_owned());
        }
        if self.lake.vacuum_retention_hours == 0 {
            problems.push(
                "lake.vacuum_retention_hours must be at least 1: readers of the previous \
                 versions need their files"
                    .to_owned(),
            );
        }
        problems.extend(self.metadata.problems());
        problems.extend(self.openlineage.problems());
        for (asset, retry) in &self.pipeline.retries {
            if retry.max_attempts == 0 {
                problems.push(format!(
                    "pipeline.retries.{asset:?}.max_attempts must be at least 1"
                ));
            }
        }
        for (asset, policy) in &self.pipeline.freshness {
            if policy.max_lag_minutes == 0 {
                problems.push(format!(
                    "pipeline.freshness.{asset:?}.max_lag_minutes must be at least 1"
                ));
            }
            if !["warning", "critical"].contains(&policy.severity.as_str()) {
                problems.push(format!(
                    "pipeline.freshness.{asset:?}.severity must be warning or critical, not {:?}",
                    policy.severity
                ));
            }
        }
        if self.pipeline.max_attempts == 0 {
            problems.push("pipeline.max_attempts must be at least 1".to_owned());
        }
        if self.ingest.commit_rows == 0 {
            problems.push("ingest.commit_rows must be at least 1".to_owned());
        }
        problems.extend(self.telemetry.problems());
        problems.extend(self.warehouse.problems());
        problems.extend(self.api.problems());
        problems.extend(self.models.problems());
        problems.extend(self.search.problems());
        problems.extend(self.recommendations.problems());
        problems.extend(self.privacy.problems());
        if self.lake.encryption.is_enabled() {
            for (setting, key) in self.lake.encryption.master_keys() {
                if !crate::secrets::is_reference(key)
                    && let Err(error) = retail_lake::encryption::MasterKey::parse(&setting, key)
                {
                    problems.push(error.to_string());
                }
            }
        }
        if !self.warehouse.analyst_role.is_empty() && self.privacy.key.is_empty() {
            problems.push(
                "warehouse.analyst_role needs privacy.key: the analysts' views show keyed \
                 pseudonyms"
                    .to_owned(),
            );
        }
        if let Err(alerts) = self.alerts.policy() {
            problems.extend(alerts);
        }
        problems.extend(self.scheduler.problems());
        problems.extend(self.stream_sensor_problems());
        let mut names = std::collections::BTreeSet::new();
        for (index, stream) in self.streams.iter().enumerate() {
            problems.extend(stream.problems(&format!("streams[{index}]")));
            if !names.insert(stream.label()) {
                problems.push(format!(
                    "streams[{index}]: another stream has the name {:?}",
                    stream.label()
                ));
            }
        }
        if !problems.is_empty() {
            bail!("invalid configuration:\n  - {}", problems.join("\n  - "));
        }
        Ok(())
    }

    /// What is wrong with the streams the stream_lag sensors name: none of `[[streams]]`, or a
    /// RabbitMQ stream, whose end the broker does not tell.
    pub fn stream_sensor_problems(&self) -> Vec<String> {
        let mut unknown = Vec::new();
        let mut untold = Vec::new();
        for name in self
            .scheduler
            .sensors
            .iter()
            .filter_map(|s| s.stream.as_deref())
        {
            match self.streams.iter().find(|s| s.label() == name) {
                None => unknown.push(name),
                Some(s) if s.source == "rabbitmq" && !s.stream.is_empty() => untold.push(name),
                Some(_) => {}
            }
        }
        let mut problems = Vec::new();
        if !unknown.is_empty() {
            let labels: Vec<String> = self.streams.iter().map(StreamConfig::label).collect();
            problems.push(format!(
                "stream_lag sensors name {unknown:?}, not streams of [[streams]] (known: {})",
                labels.join(", ")
            ));
        }
        if !untold.is_empty() {
            problems.push(format!(
                "stream_lag sensors watch {untold:?}, RabbitMQ streams, whose end the broker does \
                 not tell over AMQP 0-9-1: watch a queue or a Kafka topic"
            ));
        }
        problems
    }

    /// Renders the effective configuration as TOML, with storage option values masked.
    pub fn to_masked_toml(&self) -> String {
        let mut shown = self.clone();
        shown.lake.storage_options = shown
            .lake
            .storage_options
            .keys()
            .map(|key| (key.clone(), "********".to_owned()))
            .collect::<BTreeMap<_, _>>();
        if !shown.warehouse.postgres_url.is_empty() {
            "********".clone_into(&mut shown.warehouse.postgres_url);
        }
        if !shown.api.jwt_secret.is_empty() {
            "********".clone_into(&mut shown.api.jwt_secret);
        }
        if !shown.metadata.url.is_empty() {
            "********".clone_into(&mut shown.metadata.url);
        }
        if !shown.api.redis_url.is_empty() {
            "********".clone_into(&mut shown.api.redis_url);
        }
        for receiver in &mut shown.alerts.receivers {
            if !receiver.url.is_empty() {
                // A webhook's URL is its secret (Slack's are).
                "********".clone_into(&mut receiver.url);
            }
        }
        if !shown.search.typesense_api_key.is_empty() {
            "********".clone_into(&mut shown.search.typesense_api_key);
        }
        if !shown.privacy.key.is_empty() {
            "********".clone_into(&mut shown.privacy.key);
        }
        if shown.lake.encryption.is_enabled() {
            "********".clone_into(&mut shown.lake.encryption.master_key);
        }
        for key in &mut shown.lake.encryption.previous_master_keys {
            "********".clone_into(key);
        }
        for stream in &mut shown.streams {
            if !stream.url.is_empty() {
                "********".clone_into(&mut stream.url);
            }
        }
        if !shown.openlineage.api_key.is_empty() {
            "********".clone_into(&mut shown.openlineage.api_key);
        }
        toml::to_string_pretty(&shown).expect("the config always encodes as TOML")
    }
}

fn merge(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(over)) => merge(base, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn apply_env(table: &mut toml::Table, key: &str, value: &str) -> anyhow::Result<()> {
    let path: Vec<&str> = key[ENV_PREFIX.len()..].split("__").collect();
    let (section, name, entry) = match path.as_slice() {
        [section, name] => (
            section.to_ascii_lowercase(),
            name.to_ascii_lowercase(),
            None,
        ),
        [section, name, entry] => (
            section.to_ascii_lowercase(),
            name.to_ascii_lowercase(),
            Some(*entry),
        ),
        _ => bail!("environment variable {key} must look like RETAIL__SECTION__KEY"),
    };
    let Some(toml::Value::Table(section_table)) = table.get_mut(&section) else {
        bail!("environment variable {key} names an unknown section {section:?}");
    };
    // A struct one level down (`lake.encryption.master_key`) takes its fields in lower case,
    // typed; a free map (`lake.storage_options.AWS_REGION`) its keys as written.
    let nested = entry.is_some_and(|entry| {
        matches!(section_table.get(&name), Some(toml::Value::Table(inner))
            if inner.contains_key(&entry.to_ascii_lowercase()))
    });
    let (section_table, name, entry) = match (nested, entry, section_table.get_mut(&name)) {
        (true, Some(entry), Some(toml::Value::Table(inner))) => {
            (inner, entry.to_ascii_lowercase(), None)
        }
        (_, entry, _) => (section_table, name, entry),
    };
    match entry {
        None => {
            let typed = match section_table.get(&name) {
                Some(toml::Value::Integer(_)) => toml::Value::Integer(
                    value
                        .parse()
                        .with_context(|| format!("{key} must be a whole number"))?,
                ),
                Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
                    value
                        .parse()
                        .with_context(|| format!("{key} must be true or false"))?,
                ),
                Some(toml::Value::Float(_)) => toml::Value::Float(
                    value
                        .parse()
                        .with_context(|| format!("{key} must be a number"))?,
                ),
                Some(toml::Value::Array(_)) => toml::Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(|item| toml::Value::String(item.to_owned()))
                        .collect(),
                ),
                Some(_) => toml::Value::String(value.to_owned()),
                None => {
                    bail!("environment variable {key} names an unknown setting {section}.{name}")
                }
            };
            section_table.insert(name, typed);
        }
        Some(entry) => {
            let map = section_table
                .entry(name.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(map) = map else {
                bail!("environment variable {key}: {section}.{name} is not a map");
            };
            map.insert(entry.to_owned(), toml::Value::String(value.to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_example_file_documents_the_defaults() {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/retail.example.toml");
        let loaded = Config::load(Some(&example), Vec::new()).unwrap();
        assert_eq!(loaded, Config::default());
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("retail.toml");
        std::fs::write(&file, "[lake]\nroot = \"/from/file\"\nbatch_rows = 1000\n").unwrap();
        let config = Config::load(
            Some(&file),
            env(&[
                ("RETAIL__LAKE__ROOT", "s3://bucket/lake"),
                ("RETAIL__LAKE__STORAGE_OPTIONS__AWS_REGION", "eu-west-1"),
                ("RETAIL__INGEST__COMMIT_ROWS", "5"),
                ("RETAIL__LAKE__ENCRYPTION__MASTER_KEY", "env:LAKE_KEY"),
                (
                    "RETAIL__LAKE__ENCRYPTION__PREVIOUS_MASTER_KEYS",
                    "env:OLD, env:OLDER",
                ),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.lake.root, "s3://bucket/lake");
        assert_eq!(config.lake.batch_rows, 1000);
        assert_eq!(config.lake.storage_options["AWS_REGION"], "eu-west-1");
        assert_eq!(config.ingest.commit_rows, 5);
        assert_eq!(config.lake.encryption.master_key, "env:LAKE_KEY");
        assert_eq!(
            config.lake.encryption.previous_master_keys,
            ["env:OLD", "env:OLDER"]
        );
        assert_eq!(config.metadata, MetadataConfig::default());
        let pg = Config::load(
            None,
            env(&[(
                "RETAIL__METADATA__URL",
                "postgres://u:sekrit@127.0.0.1:5432/db",
            )]),
        )
        .unwrap();
        assert!(pg.metadata.is_postgres());
        assert!(!pg.to_masked_toml().contains("sekrit"));
    }

    #[test]
    fn rejects_unknown_settings_bad_types_and_invalid_values_with_their_names() {
        let unknown = Config::load(None, env(&[("RETAIL__LAKE__ROOTS", "x")])).unwrap_err();
        assert!(unknown.to_string().contains("lake.roots"), "{unknown}");
        let typed = Config::load(None, env(&[("RETAIL__LAKE__BATCH_ROWS", "many")])).unwrap_err();
        assert!(
            typed.to_string().contains("RETAIL__LAKE__BATCH_ROWS"),
            "{typed}"
        );
        let invalid = Config::load(
            None,
            env(&[
                ("RETAIL__INGEST__COMMIT_ROWS", "0"),
                ("RETAIL__TELEMETRY__LOG_FORMAT", "xml"),
            ]),
        )
        .unwrap_err();
        let text = format!("{invalid:#}");
        assert!(
            text.contains("commit_rows") && text.contains("log_format"),
            "{text}"
        );
    }

    #[test]
    fn invalid_model_settings_are_named_and_valid_ones_reach_the_asset() {
        let invalid = Config::load(
            None,
            env(&[
                ("RETAIL__MODELS__HORIZON_DAYS", "91"),
                ("RETAIL__MODELS__ANOMALY_SCORE", "0.2"),
                ("RETAIL__MODELS__DISCOUNT_MONTHLY", "1.5"),
            ]),
        )
        .unwrap_err();
        let text = format!("{invalid:#}");
        for name in ["horizon_days", "anomaly_score", "discount_monthly"] {
            assert!(text.contains(name), "{name}: {text}");
        }
        let config = Config::load(
            None,
            env(&[
                ("RETAIL__MODELS__COUNTRIES", "3"),
                ("RETAIL__MODELS__SEED", "7"),
            ]),
        )
        .unwrap();
        let settings = config.models.settings();
        assert_eq!(
            (settings.countries, settings.seed, settings.anomaly.seed),
            (3, 7, 7)
        );
    }

    #[test]
    fn telemetry_settings_are_checked_and_become_the_subscribers_options() {
        use retail_telemetry::tracing_setup::{LogFormat, OtlpProtocol};
        let invalid = Config::load(
            None,
            env(&[
                ("RETAIL__TELEMETRY__OTLP_ENDPOINT", "127.0.0.1:4317"),
                ("RETAIL__TELEMETRY__OTLP_PROTOCOL", "udp"),
                ("RETAIL__TELEMETRY__TRACE_SAMPLE_RATIO", "1.5"),
                ("RETAIL__TELEMETRY__LOG_FORMAT", "xml"),
            ]),
        )
        .unwrap_err();
        let text = format!("{invalid:#}");
        for name in [
            "otlp_endpoint",
            "otlp_protocol",
            "trace_sample_ratio",
            "log_format",
        ] {
            assert!(text.contains(name), "{name}: {text}");
        }
        let defaults = Config::load(None, env(&[])).unwrap();
        let options = defaults.telemetry.options(None, false);
        assert_eq!((options.format, options.otlp), (LogFormat::Json, None));
        let config = Config::load(
            None,
            env(&[
                ("RETAIL__TELEMETRY__OTLP_ENDPOINT", "http://collector:4318"),
                ("RETAIL__TELEMETRY__OTLP_PROTOCOL", "http"),
                ("RETAIL__TELEMETRY__TRACE_SAMPLE_RATIO", "0.25"),
                ("RETAIL__TELEMETRY__LOG_FORMAT", "ecs"),
            ]),
        )
        .unwrap();
        let options = config.telemetry.options(Some("debug".to_owned()), true);
        let otlp = options.otlp.expect("exporting");
        assert_eq!(
            (
                options.format,
                options.filter.as_str(),
                otlp.protocol,
                otlp.sample_ratio
            ),
            (LogFormat::Ecs, "debug", OtlpProtocol::HttpProtobuf, 0.25)
        );
    }

    #[test]
    fn the_warehouse_is_chosen_by_environment_and_its_url_is_masked() {
        let config = Config::load(
            None,
            env(&[
                ("RETAIL__WAREHOUSE__BACKEND", "postgres"),
                (
                    "RETAIL__WAREHOUSE__POSTGRES_URL",
                    "postgres://u:sekrit@127.0.0.1/db",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.warehouse.backend,
            retail_warehouse::Backend::Postgres
        );
        let shown = config.to_masked_toml();
        assert!(!shown.contains("sekrit"), "{shown}");
        let missing =
            Config::load(None, env(&[("RETAIL__WAREHOUSE__BACKEND", "postgres")])).unwrap_err();
        assert!(
            format!("{missing:#}").contains("postgres_url"),
            "{missing:#}"
        );
        let unknown =
            Config::load(None, env(&[("RETAIL__WAREHOUSE__BACKEND", "oracle")])).unwrap_err();
        assert!(format!("{unknown:#}").contains("oracle"), "{unknown:#}");
    }

    #[test]
    fn printing_masks_storage_secrets() {
        let mut config = Config::default();
        config
            .lake
            .storage_options
            .insert("AWS_SECRET_ACCESS_KEY".into(), "hunter2".into());
        let printed = config.to_masked_toml();
        assert!(printed.contains("AWS_SECRET_ACCESS_KEY") && !printed.contains("hunter2"));
    }

    #[test]
    fn openlineage_settings_are_checked_and_its_token_is_masked() {
        let config = Config::load(
            None,
            env(&[
                ("RETAIL__OPENLINEAGE__TRANSPORT", "http"),
                (
                    "RETAIL__OPENLINEAGE__URL",
                    "http://127.0.0.1:5000/api/v1/lineage",
                ),
                ("RETAIL__OPENLINEAGE__API_KEY", "lineage-sekrit"),
            ]),
        )
        .unwrap();
        assert!(!config.to_masked_toml().contains("lineage-sekrit"));
        for (setting, value, named) in [
            (
                "RETAIL__OPENLINEAGE__TRANSPORT",
                "kafka",
                "openlineage.transport",
            ),
            ("RETAIL__OPENLINEAGE__TRANSPORT", "file", "openlineage.path"),
            ("RETAIL__OPENLINEAGE__TRANSPORT", "http", "openlineage.url"),
        ] {
            let error = Config::load(None, env(&[(setting, value)])).unwrap_err();
            assert!(format!("{error:#}").contains(named), "{error:#}");
        }
    }
}
