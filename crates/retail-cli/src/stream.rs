//! `retail stream`: consume a stream into bronze, and see where it stands.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use retail_app::streams::{self, StreamConfig};
use retail_app::{App, Role};
use retail_domain::progress::NoProgress;
use retail_stream::{ConsumeOptions, RabbitTarget, consume};

/// `retail stream ...`
#[derive(Debug, Subcommand)]
pub(crate) enum StreamCommand {
    /// Consume a Kafka topic, or a RabbitMQ queue or stream, into bronze, exactly once.
    ///
    /// Kafka (--brokers, --topic): every partition (or those of --partitions) is read from the
    /// position bronze records for it, never from the broker's consumer offsets. Each round
    /// reads every partition once (up to --fetch-bytes each, waiting up to --max-wait-ms on a
    /// quiet one) and is one Delta commit with the partitions' positions.
    ///
    /// RabbitMQ (--source rabbitmq --url, and --queue or --stream): a stream is read from the
    /// offset bronze records for it, like a partition; a queue's messages are acknowledged
    /// only after the Delta commit that holds them, and a redelivered message bronze holds
    /// already (same message id, or same body when it has none) is not written again. Each
    /// round takes up to --batch-messages messages, waiting up to --max-wait-ms.
    ///
    /// Either way a consumer killed at any point and started again writes every message once.
    /// Messages are JSON objects with the fields the ingestion API accepts, or CSV lines
    /// (--format csv --csv-header LINE); a message that is not one lands as a malformed
    /// record with its payload. Runs until SIGTERM or Ctrl-C (the
    /// round in flight is committed first), or until the source has been quiet for
    /// --until-idle seconds.
    Run(RunArgs),
    /// Where a stream stands: each Kafka partition's position in bronze against the broker's
    /// end (the lag); a RabbitMQ stream's position and message count; a queue's waiting
    /// messages.
    Status(SourceArgs),
}

/// Which stream.
#[derive(Debug, Args)]
pub(crate) struct SourceArgs {
    /// The source system.
    #[arg(long, default_value = "kafka", value_parser = ["kafka", "rabbitmq"])]
    source: String,
    /// Kafka: bootstrap brokers, host:port, comma-separated.
    #[arg(long, value_delimiter = ',')]
    brokers: Vec<String>,
    /// Kafka: the topic.
    #[arg(long)]
    topic: Option<String>,
    /// Kafka: only these partitions (comma-separated), a static share of the topic for this
    /// process.
    #[arg(long, value_delimiter = ',')]
    partitions: Option<Vec<i32>>,
    /// The consumer name the broker keeps offsets for, copied from bronze's positions after
    /// each commit for lag tools, never read back: a Kafka consumer group
    /// (kafka-consumer-groups and the like), or a RabbitMQ stream's offset reference
    /// (rabbitmq-streams list_stream_tracking). An empty name ("") stores none.
    #[arg(long, default_value = retail_stream::kafka::DEFAULT_GROUP)]
    group: String,
    /// RabbitMQ streams: the stream protocol's port, where the offset of --group is stored (0:
    /// none; host, user and virtual host are --url's).
    #[arg(long, default_value_t = retail_stream::DEFAULT_STREAM_PORT)]
    stream_port: u16,
    /// RabbitMQ: the broker, amqp://user:password@host:port/vhost.
    #[arg(long, env = "RETAIL_AMQP_URL", hide_env_values = true)]
    url: Option<String>,
    /// RabbitMQ: a classic or quorum queue.
    #[arg(long, conflicts_with = "stream")]
    queue: Option<String>,
    /// RabbitMQ: a stream.
    #[arg(long)]
    stream: Option<String>,
    /// What a message holds: one JSON object, or one CSV line named by --csv-header.
    #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
    format: String,
    /// With --format csv: the header line naming the fields, e.g.
    /// "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country".
    #[arg(long)]
    csv_header: Option<String>,
    /// Kafka: seconds a request to the brokers is retried before the command fails.
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
    source: SourceArgs,
    /// Stop once the source has given nothing for this many seconds.
    #[arg(long)]
    until_idle: Option<f64>,
    /// Kafka: most bytes read from one partition per round.
    #[arg(long, default_value_t = 4 << 20, value_parser = clap::value_parser!(i32).range(1024..))]
    fetch_bytes: i32,
    /// RabbitMQ: most messages per round (the consumer's prefetch is twice that).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u16).range(1..))]
    batch_messages: u16,
    /// Longest wait for records on a quiet source, and for a round to fill, in milliseconds.
    #[arg(long, default_value_t = 500)]
    max_wait_ms: u64,
    /// Keep silver, gold and the warehouse up to date while consuming: a pipeline run starts
    /// whenever bronze has advanced, at most once per --follow-interval-ms, and one more when
    /// the consumer stops.
    #[arg(long)]
    follow: bool,
    /// Shortest time between two pipeline runs of --follow, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    follow_interval_ms: u64,
}

impl SourceArgs {
    /// The stream these flags name, checked before anything is opened.
    fn config(&self, run: Option<&RunArgs>) -> anyhow::Result<StreamConfig> {
        let mut config = StreamConfig {
            source: self.source.clone(),
            brokers: self.brokers.clone(),
            topic: self.topic.clone().unwrap_or_default(),
            partitions: self.partitions.clone().unwrap_or_default(),
            group: self.group.clone(),
            stream_port: self.stream_port,
            url: self.url.clone().unwrap_or_default(),
            queue: self.queue.clone().unwrap_or_default(),
            stream: self.stream.clone().unwrap_or_default(),
            retry_seconds: self.retry_seconds,
            format: self.format.clone(),
            csv_header: self.csv_header.clone().unwrap_or_default(),
            ..StreamConfig::default()
        };
        if let Some(run) = run {
            config.fetch_bytes = run.fetch_bytes;
            config.batch_messages = run.batch_messages;
            config.max_wait_ms = run.max_wait_ms;
        }
        let problems = config.problems("the stream");
        if !problems.is_empty() {
            bail!("{} (see retail stream run --help)", problems.join("; "));
        }
        Ok(config)
    }
}

pub(crate) async fn stream(
    command: StreamCommand,
    config: retail_app::Config,
) -> anyhow::Result<()> {
    match command {
        StreamCommand::Run(args) => Box::pin(run(args, config)).await,
        StreamCommand::Status(args) => status(args, config).await,
    }
}

async fn run(args: RunArgs, config: retail_app::Config) -> anyhow::Result<()> {
    let until_idle = args
        .until_idle
        .map(Duration::try_from_secs_f64)
        .transpose()
        .context("--until-idle must be a number of seconds, zero or more")?;
    let stream = args.source.config(Some(&args))?;
    let app = App::build(config, Role::Cli).await?;
    let mut source = streams::open(&app, &stream).await?;
    let consume_options = ConsumeOptions {
        until_idle,
        requested_by: format!("stream:{}", stream.label()),
    };
    let follower = args.follow.then(|| {
        streams::Follower::start(
            std::sync::Arc::clone(&app.services.pipeline),
            Duration::from_millis(args.follow_interval_ms),
        )
    });
    let mut follow_hook = follower.as_ref().map(streams::Follower::hook);
    let mut no_hook = retail_stream::NoHook;
    let hook: &mut dyn retail_stream::RoundHook = match follow_hook.as_mut() {
        Some(hook) => hook,
        None => &mut no_hook,
    };
    let consumed = consume(
        &app.ingestion,
        source.as_mut(),
        &consume_options,
        &NoProgress,
        hook,
        retail_app::shutdown_signal(),
    )
    .await;
    if let Some(follower) = follower {
        follower.finish().await;
    }
    let consumed = consumed?;
    let positions = source.positions();
    if args.source.json {
        println!(
            "{}",
            serde_json::json!({
                "records": consumed.records,
                "malformed": consumed.malformed,
                "commits": consumed.commits,
                "busy_seconds": consumed.busy.as_secs_f64(),
                "positions": positions,
            })
        );
    } else {
        println!(
            "consumed {} records ({} malformed) in {} commits{}",
            consumed.records,
            consumed.malformed,
            consumed.commits,
            describe(&positions)
        );
    }
    Ok(())
}

async fn status(args: SourceArgs, config: retail_app::Config) -> anyhow::Result<()> {
    let stream = args.config(None)?;
    let app = App::build(config, Role::Cli).await?;
    if stream.source == "kafka" {
        let topic = stream.topic.clone();
        let mut source = streams::open_kafka(&app, &stream).await?;
        let positions = source.partition_positions();
        let ends = source.ends().await?;
        // The group's offsets are a copy for lag tools: unreadable, they are reported, not fatal.
        let group = source.group_offsets().await;
        let committed = |partition: &i32| match &group {
            Ok(Some(offsets)) => offsets.get(partition).copied().flatten(),
            _ => None,
        };
        if args.json {
            let partitions: Vec<serde_json::Value> = positions
                .iter()
                .map(|(partition, position)| {
                    let end = ends.get(partition).copied().unwrap_or(*position);
                    serde_json::json!({"partition": partition, "position": position,
                                       "end": end, "lag": (end - position).max(0),
                                       "group_offset": committed(partition)})
                })
                .collect();
            let group_error = group.as_ref().err().map(ToString::to_string);
            println!(
                "{}",
                serde_json::json!({"topic": topic, "group": stream.group,
                                   "group_error": group_error, "partitions": partitions})
            );
        } else {
            println!("topic {topic}");
            for (partition, position) in &positions {
                let end = ends.get(partition).copied().unwrap_or(*position);
                let offset = committed(partition)
                    .map_or_else(|| "none".to_owned(), |offset| offset.to_string());
                println!(
                    "  partition {partition}: position {position}, end {end}, lag {}, group offset {offset}",
                    (end - position).max(0)
                );
            }
            match &group {
                Ok(Some(_)) => println!("  (group offsets: consumer group {:?})", stream.group),
                Ok(None) => println!("  (no consumer group)"),
                Err(error) => println!("  (group offsets unavailable: {error})"),
            }
        }
    } else {
        let target = stream.rabbit_target();
        let messages = retail_stream::rabbitmq::message_count(&stream.url, &target).await?;
        let position = match &target {
            RabbitTarget::Stream(stream) => {
                app.ingestion
                    .checkpoint(&retail_stream::rabbitmq::app_id(stream))
                    .await?
            }
            RabbitTarget::Queue(_) => None,
        };
        // The broker's offset for --group is a copy for lag tools: unreadable, it is reported.
        let server_offset = match (stream.server_offsets(), &target) {
            (Some((endpoint, reference)), RabbitTarget::Stream(name)) => Some(
                retail_stream::StreamOffsets::new(endpoint, reference)
                    .query(name)
                    .await,
            ),
            _ => None,
        };
        if args.json {
            let (offset, error) = match &server_offset {
                Some(Ok(offset)) => (*offset, None),
                Some(Err(error)) => (None, Some(error.clone())),
                None => (None, None),
            };
            println!(
                "{}",
                serde_json::json!({"kind": target.kind(), "name": target.name(),
                                   "messages": messages, "position": position,
                                   "server_offset": offset, "server_offset_error": error})
            );
        } else {
            match position {
                Some(position) => println!(
                    "{} {}: position {position}, {messages} messages kept by the broker",
                    target.kind(),
                    target.name()
                ),
                None => println!(
                    "{} {}: {messages} messages {}",
                    target.kind(),
                    target.name(),
                    if matches!(target, RabbitTarget::Queue(_)) {
                        "waiting"
                    } else {
                        "kept by the broker, none consumed yet"
                    }
                ),
            }
            match &server_offset {
                Some(Ok(Some(offset))) => println!(
                    "  the broker's offset for {:?}: {offset} (the last message taken)",
                    stream.group
                ),
                Some(Ok(None)) => println!("  the broker keeps no offset for {:?}", stream.group),
                Some(Err(error)) => println!("  the broker's offset is unavailable: {error}"),
                None => {}
            }
        }
    }
    Ok(())
}

fn describe(positions: &BTreeMap<String, i64>) -> String {
    if positions.is_empty() {
        return String::new();
    }
    let positions: Vec<String> = positions
        .iter()
        .map(|(key, next)| format!("{key}:{next}"))
        .collect();
    format!("; positions {}", positions.join(" "))
}
