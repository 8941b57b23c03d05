//! A Kafka topic as a [`Source`]: every partition (or a static list) read from the position
//! bronze records for it, never from what the broker remembers.
//!
//! A partition's position is the Delta application transaction `kafka:<topic>:<partition>` of
//! `bronze/retail_transactions`: the next offset to read, committed in the same Delta commit as
//! the records before it. A consumer killed at any point restarts from the last commit, so a
//! record lands in bronze exactly once. Partitions are read by explicit assignment (no consumer
//! group): the lake's marks are the offsets, and processes sharing a topic either split the
//! partitions between them (`partitions`) or race on the same ones, where Delta's conflict check
//! on the marks lets one commit win and the other start again from the marks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use retail_ingest::{Checkpoint, Source, SourceBatch};
use rskafka::BackoffConfig;
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::RecordAndOffset;

use crate::error::{Error, Result};
use crate::kafka_group::GroupOffsets;
use crate::{MessageFormat, OffsetCopy, StreamSource};

/// Where and how to read a topic.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// The topic.
    pub topic: String,
    /// Only these partitions (a static assignment); `None`: every partition of the topic.
    pub partitions: Option<Vec<i32>>,
    /// Most bytes read from one partition per fetch: with several partitions, one round of
    /// fetches is one micro-batch, committed to bronze in one Delta commit (flush by size).
    pub fetch_bytes: i32,
    /// How long a fetch waits for records on a quiet partition (flush by time).
    pub max_wait: Duration,
    /// Rows per Arrow batch of the decoded records.
    pub batch_rows: usize,
    /// What a message holds.
    pub format: MessageFormat,
    /// How long a request to the brokers is retried before it fails (an unreachable broker is
    /// an error, not a hang).
    pub retry_for: Duration,
    /// The consumer group whose committed offsets on the brokers follow bronze's positions after
    /// each commit, for lag monitoring only (never read back); `None`: none.
    pub group: Option<String>,
}

impl KafkaOptions {
    /// Options for `topic` on `brokers` with the defaults: every partition, 4 MiB per fetch,
    /// 500 ms of waiting.
    pub fn new(brokers: Vec<String>, topic: impl Into<String>) -> Self {
        Self {
            brokers,
            topic: topic.into(),
            partitions: None,
            fetch_bytes: 4 << 20,
            max_wait: Duration::from_millis(500),
            batch_rows: 8_192,
            format: MessageFormat::Json,
            retry_for: Duration::from_secs(30),
            group: Some(DEFAULT_GROUP.to_owned()),
        }
    }
}

/// The consumer group whose broker offsets follow bronze's positions, unless set otherwise.
pub const DEFAULT_GROUP: &str = "retail";

/// The application id of a partition's position in bronze's log.
pub fn app_id(topic: &str, partition: i32) -> String {
    format!("kafka:{topic}:{partition}")
}

/// One partition being read.
struct Partition {
    client: Arc<PartitionClient>,
    /// The next offset to read.
    next: i64,
    /// The partition's high watermark as the last fetch told it (the offset after its last
    /// record), for the lag.
    end: i64,
}

/// What one round's fetches returned, by partition.
type Fetched = Vec<(
    i32,
    i64,
    std::result::Result<(Vec<RecordAndOffset>, i64), rskafka::client::error::Error>,
)>;

/// A Kafka topic's records from the positions bronze holds.
///
/// A round fetches every partition at once; as soon as a round's records are in, the next
/// round's fetches start, so the broker's answer is on its way while this round is decoded,
/// written and committed (at most two rounds of records in memory).
pub struct KafkaSource {
    options: KafkaOptions,
    partitions: BTreeMap<i32, Partition>,
    /// The current round's records not yet handed out, by partition (last first).
    round: Vec<(i32, Vec<RecordAndOffset>)>,
    /// Whether the current round's fetches have been taken.
    fetched: bool,
    /// The next round's fetches, started when this round's came in.
    ahead: Option<tokio::task::JoinHandle<Fetched>>,
    /// The group whose broker offsets follow each commit.
    group: Option<GroupOffsets>,
    /// How the copies to the group's offsets went.
    group_copy: OffsetCopy,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("topic", &self.options.topic)
            .field("partitions", &self.partition_positions())
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// Connects to the brokers and places each partition at `position(app_id)` (the next
    /// offset bronze records), or at the earliest offset the broker keeps when bronze has none.
    ///
    /// # Errors
    ///
    /// When the brokers cannot be reached, the topic or a partition does not exist, or a
    /// position cannot be read.
    pub async fn connect<F, Fut>(options: KafkaOptions, position: F) -> Result<Self>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<Option<i64>>>,
    {
        let client = connect(&options.brokers, options.retry_for).await?;
        let topics = client.list_topics().await.map_err(|source| Error::Kafka {
            what: format!("list the topics of {}", options.brokers.join(",")),
            source,
        })?;
        let Some(topic) = topics.into_iter().find(|t| t.name == options.topic) else {
            return Err(Error::UnknownTopic(options.topic.clone()));
        };
        let wanted: Vec<i32> = match &options.partitions {
            Some(wanted) => {
                if let Some(missing) = wanted.iter().find(|p| !topic.partitions.contains(p)) {
                    return Err(Error::UnknownPartition {
                        topic: options.topic.clone(),
                        partition: *missing,
                    });
                }
                wanted.clone()
            }
            None => topic.partitions.iter().copied().collect(),
        };
        let mut partitions = BTreeMap::new();
        for partition in wanted {
            let partition_client = client
                .partition_client(
                    options.topic.clone(),
                    partition,
                    UnknownTopicHandling::Error,
                )
                .await
                .map_err(|source| Error::Kafka {
                    what: format!("open partition {partition} of {}", options.topic),
                    source,
                })?;
            let next = match position(app_id(&options.topic, partition)).await? {
                Some(next) => next,
                None => partition_client
                    .get_offset(OffsetAt::Earliest)
                    .await
                    .map_err(|source| Error::Kafka {
                        what: format!("read the earliest offset of partition {partition}"),
                        source,
                    })?,
            };
            partitions.insert(
                partition,
                Partition {
                    client: Arc::new(partition_client),
                    next,
                    end: next,
                },
            );
        }
        let group = options
            .group
            .clone()
            .map(|group| GroupOffsets::new(options.brokers.clone(), group));
        Ok(Self {
            options,
            partitions,
            round: Vec::new(),
            fetched: true,
            ahead: None,
            group,
            group_copy: OffsetCopy::default(),
        })
    }

    /// The next offset of each partition.
    pub fn partition_positions(&self) -> BTreeMap<i32, i64> {
        self.partitions
            .iter()
            .map(|(partition, state)| (*partition, state.next))
            .collect()
    }

    /// The consumer group's committed offset of each partition on the brokers (`None` where it
    /// has none), or `None` without a group.
    ///
    /// # Errors
    ///
    /// When the group's coordinator cannot answer.
    pub async fn group_offsets(&mut self) -> Result<Option<BTreeMap<i32, Option<i64>>>> {
        let partitions: Vec<i32> = self.partitions.keys().copied().collect();
        let Some(group) = self.group.as_mut() else {
            return Ok(None);
        };
        let offsets = group
            .fetch(&self.options.topic, &partitions)
            .await
            .map_err(Error::Group)?;
        Ok(Some(offsets.into_iter().collect()))
    }

    /// The offset after the last record of each partition (the broker's high watermark).
    ///
    /// # Errors
    ///
    /// When the broker cannot answer.
    pub async fn ends(&self) -> Result<BTreeMap<i32, i64>> {
        let max_wait = i32::try_from(self.options.max_wait.as_millis()).unwrap_or(i32::MAX);
        let mut ends = BTreeMap::new();
        for (partition, state) in &self.partitions {
            // A fetch's high watermark: some brokers (tansu) answer a `Latest` offset lookup
            // with the start of the last batch, and a fetch that may not wait with nothing.
            let (_, end) = state
                .client
                .fetch_records(state.next, 1..1024, max_wait)
                .await
                .map_err(|source| Error::Kafka {
                    what: format!("read the high watermark of partition {partition}"),
                    source,
                })?;
            ends.insert(*partition, end);
        }
        Ok(ends)
    }
}

impl KafkaSource {
    /// Starts fetching every partition from its next offset, all at once.
    fn fetch_all(&self) -> tokio::task::JoinHandle<Fetched> {
        let max_wait = i32::try_from(self.options.max_wait.as_millis()).unwrap_or(i32::MAX);
        let bytes = self.options.fetch_bytes;
        let fetches: Vec<_> = self
            .partitions
            .iter()
            .map(|(partition, state)| (*partition, Arc::clone(&state.client), state.next))
            .collect();
        tokio::spawn(async move {
            futures::future::join_all(fetches.into_iter().map(
                |(partition, client, next)| async move {
                    let fetched = client.fetch_records(next, 1..bytes, max_wait).await;
                    (partition, next, fetched)
                },
            ))
            .await
        })
    }

    /// Takes the current round's fetches (started ahead, or now), advances each partition
    /// past its records, and starts the next round's.
    async fn take_round(&mut self) -> retail_ingest::Result<()> {
        let ahead = match self.ahead.take() {
            Some(ahead) => ahead,
            None => self.fetch_all(),
        };
        let fetched = ahead.await.map_err(|error| {
            retail_ingest::Error::Source(format!(
                "kafka topic {}: a fetch ended abnormally: {error}",
                self.options.topic
            ))
        })?;
        let mut round = Vec::new();
        for (partition, from, result) in fetched {
            let (records, high_watermark) = result.map_err(|error| {
                retail_ingest::Error::Source(format!(
                    "kafka topic {} partition {partition} at offset {from}: {error}",
                    self.options.topic
                ))
            })?;
            let state = self
                .partitions
                .get_mut(&partition)
                .expect("a known partition");
            state.end = high_watermark;
            let records: Vec<RecordAndOffset> =
                records.into_iter().filter(|r| r.offset >= from).collect();
            if let Some(last) = records.last() {
                state.next = last.offset + 1;
                round.push((partition, records));
            }
        }
        round.reverse();
        self.round = round;
        self.ahead = Some(self.fetch_all());
        Ok(())
    }
}

async fn connect(brokers: &[String], retry_for: Duration) -> Result<Client> {
    ClientBuilder::new(brokers.to_vec())
        .client_id("retail-stream")
        .backoff_config(BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 3.0,
            deadline: Some(retry_for),
        })
        .build()
        .await
        .map_err(|source| Error::Kafka {
            what: format!("connect to {}", brokers.join(",")),
            source,
        })
}

#[async_trait]
impl StreamSource for KafkaSource {
    /// Starts a round: the next batches read each partition once. The ingestion ends a call
    /// at the end of a round, so a round is one micro-batch (one Delta commit).
    fn start_round(&mut self) {
        self.round.clear();
        self.fetched = false;
    }

    fn positions(&self) -> BTreeMap<String, i64> {
        self.partitions
            .iter()
            .map(|(partition, state)| (partition.to_string(), state.next))
            .collect()
    }

    /// From the high watermarks the last fetches told: no request of its own.
    async fn lag(&mut self) -> Result<BTreeMap<String, i64>> {
        Ok(self
            .partitions
            .iter()
            .map(|(partition, state)| (partition.to_string(), (state.end - state.next).max(0)))
            .collect())
    }
}

#[async_trait]
impl Source for KafkaSource {
    fn system(&self) -> &'static str {
        "kafka"
    }

    async fn next_batch(&mut self) -> retail_ingest::Result<Option<SourceBatch>> {
        if !self.fetched {
            self.fetched = true;
            self.take_round().await?;
        }
        while let Some((partition, records)) = self.round.pop() {
            let (Some(first), Some(last)) = (records.first(), records.last()) else {
                continue;
            };
            let (first, last) = (first.offset, last.offset);
            let payloads: Vec<(i64, &[u8])> = records
                .iter()
                .map(|r| (r.offset, r.record.value.as_deref().unwrap_or_default()))
                .collect();
            let rows = self
                .options
                .format
                .decode(&payloads, self.options.batch_rows)?;
            return Ok(Some(SourceBatch {
                location: format!(
                    "kafka {}/{partition} offsets {first}..={last}",
                    self.options.topic
                ),
                unit: format!("p{partition}-{first}"),
                parts: vec![retail_ingest::decode::Part {
                    suffix: String::new(),
                    rows,
                }],
                checkpoint: Some(Checkpoint::progress(
                    app_id(&self.options.topic, partition),
                    last + 1,
                )),
                change: None,
                checksum: String::new(),
            }));
        }
        Ok(None)
    }

    /// Copies the committed positions to the group's offsets on the brokers. A failure is
    /// logged (once until it works again) and never fails the round: bronze holds the positions.
    async fn committed(&mut self, checkpoints: &[Checkpoint]) -> retail_ingest::Result<()> {
        let offsets: Vec<(i32, i64)> = self
            .partitions
            .keys()
            .filter_map(|&partition| {
                let id = app_id(&self.options.topic, partition);
                let checkpoint = checkpoints.iter().find(|c| c.app_id == id)?;
                Some((partition, checkpoint.version))
            })
            .collect();
        let Some(group) = self.group.as_mut().filter(|_| !offsets.is_empty()) else {
            return Ok(());
        };
        let outcome = group.commit(&self.options.topic, &offsets).await;
        self.group_copy.record(outcome, group.group());
        Ok(())
    }
}
