//! `retail stream`: consume a stream into bronze, and see where each partition stands.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use retail_app::{App, Role};
use retail_domain::progress::NoProgress;
use retail_stream::{ConsumeOptions, KafkaOptions, KafkaSource, consume};

/// `retail stream ...`
#[derive(Debug, Subcommand)]
pub(crate) enum StreamCommand {
    /// Consume a Kafka topic into bronze, exactly once.
    ///
    /// Every partition (or those of --partitions) is read from the position bronze records for
    /// it, never from the broker's consumer offsets, so a consumer killed at any point and
    /// started again writes every message once. Each round reads every partition once (up to
    /// --fetch-bytes each, waiting up to --max-wait-ms on a quiet one) and is one Delta commit
    /// with the partitions' positions. Messages are JSON objects with the fields the ingestion
    /// API accepts; a message that is not one lands as a malformed record with its payload.
    /// Runs until SIGTERM or Ctrl-C (the round in flight is committed first), or until the topic
    /// has been quiet for --until-idle seconds.
    Run(RunArgs),
    /// Each partition's position in bronze against the broker's end (the lag).
    Status(TopicArgs),
}

/// Which topic.
#[derive(Debug, Args)]
pub(crate) struct TopicArgs {
    /// The source system: kafka (RabbitMQ is not built yet).
    #[arg(long, default_value = "kafka", value_parser = ["kafka"])]
    source: String,
    /// Bootstrap brokers, host:port, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    brokers: Vec<String>,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// Only these partitions (comma-separated): a static share of the topic for this process.
    #[arg(long, value_delimiter = ',')]
    partitions: Option<Vec<i32>>,
    /// Seconds a request to the brokers is retried before the command fails.
    #[arg(long, default_value_t = 30)]
    retry_seconds: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// How to consume.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    topic: TopicArgs,
    /// Stop once the topic has given nothing for this many seconds.
    #[arg(long)]
    until_idle: Option<f64>,
    /// Most bytes read from one partition per round.
    #[arg(long, default_value_t = 4 << 20, value_parser = clap::value_parser!(i32).range(1024..))]
    fetch_bytes: i32,
    /// Longest wait for records on a quiet partition, in milliseconds.
    #[arg(long, default_value_t = 500)]
    max_wait_ms: u64,
}

impl TopicArgs {
    fn options(&self) -> KafkaOptions {
        KafkaOptions {
            partitions: self.partitions.clone(),
            retry_for: Duration::from_secs(self.retry_seconds),
            ..KafkaOptions::new(self.brokers.clone(), &self.topic)
        }
    }
}

async fn connect(app: &App, options: KafkaOptions) -> anyhow::Result<KafkaSource> {
    let ingestion = app.ingestion.clone();
    let source = KafkaSource::connect(options, move |app_id| {
        let ingestion = ingestion.clone();
        async move { Ok(ingestion.checkpoint(&app_id).await?) }
    })
    .await?;
    Ok(source)
}

pub(crate) async fn stream(
    command: StreamCommand,
    config: retail_app::Config,
) -> anyhow::Result<()> {
    let app = App::build(config, Role::Cli).await?;
    match command {
        StreamCommand::Run(args) => {
            let until_idle = args
                .until_idle
                .map(Duration::try_from_secs_f64)
                .transpose()
                .context("--until-idle must be a number of seconds, zero or more")?;
            let options = KafkaOptions {
                fetch_bytes: args.fetch_bytes,
                max_wait: Duration::from_millis(args.max_wait_ms),
                ..args.topic.options()
            };
            let mut source = connect(&app, options).await?;
            let consume_options = ConsumeOptions {
                until_idle,
                requested_by: format!("stream:kafka:{}", args.topic.topic),
            };
            let consumed = consume(
                &app.ingestion,
                &mut source,
                &consume_options,
                &NoProgress,
                retail_app::shutdown_signal(),
            )
            .await?;
            let positions = source.positions();
            if args.topic.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "records": consumed.records,
                        "malformed": consumed.malformed,
                        "commits": consumed.commits,
                        "positions": positions,
                    })
                );
            } else {
                println!(
                    "consumed {} records ({} malformed) in {} commits; positions {}",
                    consumed.records,
                    consumed.malformed,
                    consumed.commits,
                    describe(&positions)
                );
            }
        }
        StreamCommand::Status(args) => {
            let source = connect(&app, args.options()).await?;
            let positions = source.positions();
            let ends = source.ends().await?;
            if args.json {
                let partitions: Vec<serde_json::Value> = positions
                    .iter()
                    .map(|(partition, position)| {
                        let end = ends.get(partition).copied().unwrap_or(*position);
                        serde_json::json!({"partition": partition, "position": position,
                                           "end": end, "lag": (end - position).max(0)})
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"topic": args.topic, "partitions": partitions})
                );
            } else {
                println!("topic {}", args.topic);
                for (partition, position) in &positions {
                    let end = ends.get(partition).copied().unwrap_or(*position);
                    println!(
                        "  partition {partition}: position {position}, end {end}, lag {}",
                        (end - position).max(0)
                    );
                }
            }
        }
    }
    Ok(())
}

fn describe(positions: &std::collections::BTreeMap<i32, i64>) -> String {
    positions
        .iter()
        .map(|(partition, next)| format!("{partition}:{next}"))
        .collect::<Vec<_>>()
        .join(" ")
}
