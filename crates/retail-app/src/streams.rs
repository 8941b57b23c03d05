//! Streams wired to the platform: the source a [`StreamConfig`] names, opened against this
//! lake; the follower that keeps silver, gold and the warehouse seconds behind bronze; and the
//! background consumers of `retail serve`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use retail_domain::progress::NoProgress;
use retail_pipeline::IngestionService;
use retail_services::{PipelineService, RunRequest, StreamHealth};
use retail_stream::{
    ConsumeOptions, KafkaOptions, KafkaSource, RabbitOptions, RabbitSource, RoundHook, StreamSource,
};
use tokio::sync::{Notify, watch};

use crate::App;
pub use crate::config::StreamConfig;

/// Connects the source `config` names, placed at the positions bronze records.
///
/// # Errors
///
/// When the configuration is invalid, or the broker cannot be reached or lacks the topic,
/// queue or stream.
pub async fn open(app: &App, config: &StreamConfig) -> anyhow::Result<Box<dyn StreamSource>> {
    open_with(&app.lake, &app.ingestion, config).await
}

/// As [`open`], from the lake and the ingestion service alone (before the `App` exists).
async fn open_with(
    lake: &retail_lake::Lake,
    ingestion: &IngestionService,
    config: &StreamConfig,
) -> anyhow::Result<Box<dyn StreamSource>> {
    if config.source == "rabbitmq" {
        let format = checked(config)?;
        let options = RabbitOptions {
            batch_messages: config.batch_messages,
            max_wait: Duration::from_millis(config.max_wait_ms),
            batch_rows: lake.batch_rows(),
            format,
            server_offsets: config.server_offsets(),
            ..RabbitOptions::new(config.url.clone(), config.rabbit_target())
        };
        return Ok(Box::new(
            RabbitSource::connect(
                options,
                lake.clone(),
                retail_stream::bronze_positions(ingestion),
            )
            .await?,
        ));
    }
    Ok(Box::new(kafka_with(lake, ingestion, config).await?))
}

/// Connects the Kafka topic `config` names, each partition at the position bronze records
/// (`retail stream status` reads the positions and ends of its partitions).
///
/// # Errors
///
/// When the configuration is invalid, or the brokers cannot be reached or lack the topic.
pub async fn open_kafka(app: &App, config: &StreamConfig) -> anyhow::Result<KafkaSource> {
    kafka_with(&app.lake, &app.ingestion, config).await
}

async fn kafka_with(
    lake: &retail_lake::Lake,
    ingestion: &IngestionService,
    config: &StreamConfig,
) -> anyhow::Result<KafkaSource> {
    let format = checked(config)?;
    let options = KafkaOptions {
        partitions: (!config.partitions.is_empty()).then(|| config.partitions.clone()),
        fetch_bytes: config.fetch_bytes,
        max_wait: Duration::from_millis(config.max_wait_ms),
        batch_rows: lake.batch_rows(),
        format,
        retry_for: Duration::from_secs(config.retry_seconds),
        group: (!config.group.is_empty()).then(|| config.group.clone()),
        ..KafkaOptions::new(config.brokers.clone(), config.topic.clone())
    };
    Ok(KafkaSource::connect(options, retail_stream::bronze_positions(ingestion)).await?)
}

/// The lag of the `[[streams]]`, asked of their brokers against bronze's positions: what a
/// scheduler's stream_lag sensors read, in `retail serve` and in `retail scheduler` alike.
pub(crate) struct BrokerLag {
    pub(crate) lake: retail_lake::Lake,
    pub(crate) ingestion: IngestionService,
    pub(crate) streams: Vec<StreamConfig>,
}

#[async_trait::async_trait]
impl retail_services::scheduler::StreamLag for BrokerLag {
    async fn lag(&self, name: &str) -> Result<u64, String> {
        let config = self
            .streams
            .iter()
            .find(|s| s.label() == name)
            .ok_or_else(|| {
                let known: Vec<String> = self.streams.iter().map(StreamConfig::label).collect();
                format!(
                    "no [[streams]] entry is named {name:?} (known: {})",
                    known.join(", ")
                )
            })?;
        if config.source != "rabbitmq" {
            // Each partition's end on the broker minus the position bronze records.
            let source = kafka_with(&self.lake, &self.ingestion, config)
                .await
                .map_err(|error| format!("{error:#}"))?;
            let ends = source.ends().await.map_err(|error| error.to_string())?;
            return Ok(source
                .partition_positions()
                .iter()
                .map(|(partition, position)| {
                    let end = ends.get(partition).copied().unwrap_or(*position);
                    u64::try_from(end - position).unwrap_or(0)
                })
                .sum());
        }
        // A queue's waiting messages, asked of the broker.
        let mut source = open_with(&self.lake, &self.ingestion, config)
            .await
            .map_err(|error| format!("{error:#}"))?;
        let lag = source.lag().await.map_err(|error| error.to_string())?;
        if lag.is_empty() {
            return Err(format!("the broker of stream {name} does not tell its lag"));
        }
        Ok(lag
            .values()
            .map(|messages| u64::try_from(*messages).unwrap_or(0))
            .sum())
    }
}

/// The message format of a configuration that has no problem.
fn checked(config: &StreamConfig) -> anyhow::Result<retail_stream::MessageFormat> {
    let problems = config.problems("the stream");
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("; "));
    }
    config
        .message_format()
        .map_err(|problem| anyhow::anyhow!("the stream: {problem}"))
}

/// The continuous pipeline: one pipeline run at a time, started when bronze has advanced
/// since the last one began and at most once per interval; one more when it stops, if bronze
/// advanced meanwhile. Shared by every stream of the process (a pipeline run takes them all).
#[derive(Debug)]
pub struct Follower {
    behind: Arc<AtomicBool>,
    advanced: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// Starts following with `pipeline`, starting runs at least `interval` apart.
    pub fn start(pipeline: Arc<dyn PipelineService>, interval: Duration) -> Self {
        let behind = Arc::new(AtomicBool::new(false));
        let advanced = Arc::new(Notify::new());
        let (stop, mut stopped) = watch::channel(false);
        let task = {
            let (behind, advanced) = (Arc::clone(&behind), Arc::clone(&advanced));
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = advanced.notified() => {}
                        _ = stopped.wait_for(|stop| *stop) => break,
                    }
                    // The interval runs from a run's start, so runs longer than it follow
                    // one another without a pause.
                    let began = tokio::time::Instant::now();
                    if behind.swap(false, Ordering::AcqRel) {
                        follow(pipeline.as_ref()).await;
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(began + interval) => {}
                        _ = stopped.wait_for(|stop| *stop) => break,
                    }
                }
                // Whatever bronze gained since the last run began.
                if behind.swap(false, Ordering::AcqRel) {
                    follow(pipeline.as_ref()).await;
                }
            })
        };
        Self {
            behind,
            advanced,
            stop,
            task,
        }
    }

    /// A hook for one consumer: each round that wrote records wakes the follower.
    pub fn hook(&self) -> FollowHook {
        FollowHook {
            behind: Arc::clone(&self.behind),
            advanced: Arc::clone(&self.advanced),
        }
    }

    /// Stops following once the run in flight, and a last one if bronze advanced since it
    /// began, have finished.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the pipeline follower ended abnormally");
        }
    }
}

async fn follow(pipeline: &dyn PipelineService) {
    let request = RunRequest {
        assets: Vec::new(),
        force: false,
        requested_by: "stream:follow".to_owned(),
        ..RunRequest::default()
    };
    match pipeline.run(request, &NoProgress).await {
        Ok(run) => {
            tracing::info!(run = %run.run_id, status = run.status.as_str(), "pipeline followed the streams")
        }
        Err(error) => tracing::warn!(%error, "a pipeline run following the streams failed"),
    }
}

/// Tells a [`Follower`] of a consumer's rounds.
#[derive(Debug, Clone)]
pub struct FollowHook {
    behind: Arc<AtomicBool>,
    advanced: Arc<Notify>,
}

impl RoundHook for FollowHook {
    fn round(&mut self, records: u64) {
        if records > 0 {
            self.behind.store(true, Ordering::Release);
            self.advanced.notify_one();
        }
    }
}

/// How long a background consumer waits before connecting again after a failure, at most.
const RECONNECT_AT_MOST: Duration = Duration::from_secs(30);

/// Runs the consumers of `app.config.streams` and the follower until `shutdown` turns true:
/// each consumer reconnects after a failure (waiting 1 s, 2 s, ... up to 30 s), noting in
/// `health` whether it reaches its broker; on shutdown each commits its round in flight, then
/// the follower runs the pipeline a last time if bronze advanced.
pub async fn run_in_background(
    app: &App,
    health: Arc<StreamHealth>,
    shutdown: watch::Receiver<bool>,
) {
    let follower = Follower::start(
        Arc::clone(&app.services.pipeline),
        Duration::from_millis(app.config.pipeline.follow_interval_ms),
    );
    let consumers = app.config.streams.iter().map(|config| {
        let (health, mut shutdown, mut hook) = (Arc::clone(&health), shutdown.clone(), follower.hook());
        async move {
            let label = config.label();
            let mut wait = Duration::from_secs(1);
            while !*shutdown.borrow() {
                let consumed = async {
                    let mut source = open(app, config).await?;
                    health.set(&label, true);
                    let options = ConsumeOptions {
                        until_idle: None,
                        requested_by: format!("stream:{label}"),
                    };
                    let mut stopping = shutdown.clone();
                    let stop = async move {
                        let _ = stopping.wait_for(|stop| *stop).await;
                    };
                    Ok::<_, anyhow::Error>(
                        retail_stream::consume(
                            &app.ingestion,
                            source.as_mut(),
                            &options,
                            &NoProgress,
                            &mut hook,
                            stop,
                        )
                        .await?,
                    )
                }
                .await;
                match consumed {
                    Ok(consumed) => {
                        tracing::info!(stream = %label, records = consumed.records, "stream consumer stopped");
                        break;
                    }
                    Err(error) => {
                        health.set(&label, false);
                        tracing::warn!(stream = %label, error = format!("{error:#}"), retry_in = ?wait, "stream consumer failed; it will connect again");
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            _ = shutdown.wait_for(|stop| *stop) => break,
                        }
                        wait = (wait * 2).min(RECONNECT_AT_MOST);
                    }
                }
            }
        }
    });
    futures::future::join_all(consumers).await;
    follower.finish().await;
}
