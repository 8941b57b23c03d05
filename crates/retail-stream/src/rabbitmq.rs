//! RabbitMQ as a [`Source`]: a stream read from the offset bronze records for it, or a classic
//! or quorum queue whose messages are acknowledged only once bronze holds them.
//!
//! Both are read over AMQP 0-9-1 (one client, `lapin`; ADR 0005 says why not the stream
//! protocol's own client).
//!
//! - **Stream.** The position is the Delta application transaction `rabbitmq:<stream>` of
//!   `bronze/retail_transactions`: the next offset, committed with the records before it. The
//!   consumer starts at that offset (`x-stream-offset`), so a consumer killed at any point
//!   writes each message once. Acknowledgements only grant the broker credit: a batch is
//!   acknowledged as soon as it is taken, so the broker sends the next while it is written.
//! - **Queue.** A queue has no offsets: messages are acknowledged after the Delta commit that
//!   holds them, so a crash before it has them delivered again. A crash between the commit and
//!   the acknowledgement has them delivered again too, flagged `redelivered`: each message's
//!   key (its `message_id` property, or the SHA-256 of its body when it has none) is bronze's
//!   `source_row` (63 bits of the key's SHA-256), and a redelivered message whose key bronze
//!   already holds for this queue is acknowledged without being written again.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use retail_ingest::{Checkpoint, Source, SourceBatch};
use retail_lake::Lake;
use retail_lake::schema::BRONZE_TRANSACTIONS;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::rabbit_offsets::{StreamEndpoint, StreamOffsets};
use crate::{MessageFormat, OffsetCopy, StreamSource};

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RabbitTarget {
    /// A classic or quorum queue.
    Queue(String),
    /// A stream (a queue of type `stream`).
    Stream(String),
}

impl RabbitTarget {
    /// The queue's or stream's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Queue(name) | Self::Stream(name) => name,
        }
    }

    /// `queue` or `stream`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Queue(_) => "queue",
            Self::Stream(_) => "stream",
        }
    }

    /// Bronze's `source_location` of its messages (a queue's is the same for every batch,
    /// which is how redelivered messages are found).
    fn location(&self) -> String {
        format!("rabbitmq {} {}", self.kind(), self.name())
    }
}

/// Where and how to read.
#[derive(Debug, Clone)]
pub struct RabbitOptions {
    /// The broker, `amqp://user:password@host:port/vhost`.
    pub url: String,
    /// The queue or stream.
    pub target: RabbitTarget,
    /// Most messages per micro-batch (flush by size); the consumer's prefetch is twice that.
    pub batch_messages: u16,
    /// Longest wait for a micro-batch to fill once its first message is in (flush by time),
    /// and for a first message on a quiet source.
    pub max_wait: Duration,
    /// Rows per Arrow batch of the decoded records.
    pub batch_rows: usize,
    /// What a message holds.
    pub format: MessageFormat,
    /// Streams: where the stream protocol is served and the consumer name whose offset the
    /// broker keeps, copied from bronze's position after each commit for lag tools only (never
    /// read back); `None`: none.
    pub server_offsets: Option<(StreamEndpoint, String)>,
}

impl RabbitOptions {
    /// Options for `target` at `url` with the defaults: 2,000 messages or 500 ms a batch
    /// (larger batches, with their larger prefetch, made RabbitMQ 3.10 deliver a stream more
    /// slowly here: ADR 0005).
    pub fn new(url: impl Into<String>, target: RabbitTarget) -> Self {
        Self {
            url: url.into(),
            target,
            batch_messages: 2_000,
            max_wait: Duration::from_millis(500),
            batch_rows: 8_192,
            format: MessageFormat::Json,
            server_offsets: None,
        }
    }
}

/// The application id of a stream's position in bronze's log.
pub fn app_id(stream: &str) -> String {
    format!("rabbitmq:{stream}")
}

/// A queue message's key as bronze's `source_row`: 63 bits of the SHA-256 of its
/// `message_id`, or of its body when it has none.
pub fn message_key(message_id: Option<&str>, body: &[u8]) -> i64 {
    let digest = match message_id {
        Some(id) => Sha256::new()
            .chain_update(b"id:")
            .chain_update(id.as_bytes())
            .finalize(),
        None => Sha256::new()
            .chain_update(b"body:")
            .chain_update(body)
            .finalize(),
    };
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first) & i64::MAX
}

/// A RabbitMQ queue's or stream's messages.
pub struct RabbitSource {
    options: RabbitOptions,
    connection: Connection,
    channel: Channel,
    consumer: Consumer,
    /// Streams: the next offset to read.
    next: Option<i64>,
    /// Queues: the lake, to recognise redelivered messages bronze holds.
    lake: Lake,
    /// The delivery tag of the last message handed out and not yet acknowledged.
    unacked: Option<u64>,
    /// The current round has given its batch (a round is one micro-batch).
    round_done: bool,
    /// Redelivered messages bronze held already, acknowledged without writing them.
    redelivered_skipped: u64,
    /// Streams: the consumer name's offset on the broker, for lag tools.
    server_offsets: Option<StreamOffsets>,
    /// How the copies to that offset went.
    server_offsets_copy: OffsetCopy,
}

impl std::fmt::Debug for RabbitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitSource")
            .field("target", &self.options.target)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

fn amqp(what: impl Into<String>) -> impl FnOnce(lapin::Error) -> Error {
    let what = what.into();
    move |source| Error::Rabbit { what, source }
}

impl RabbitSource {
    /// Connects and starts consuming: a stream from `position` (the next offset bronze
    /// records for it) or from its first message; a queue from whatever it holds.
    ///
    /// # Errors
    ///
    /// When the broker cannot be reached, the queue or stream does not exist (it is never
    /// created here: a typo must not become an empty queue), or a position cannot be read.
    pub async fn connect<F, Fut>(options: RabbitOptions, lake: Lake, position: F) -> Result<Self>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<Option<i64>>>,
    {
        let connection = Connection::connect(&options.url, ConnectionProperties::default())
            .await
            .map_err(amqp(format!("connect to {}", redact(&options.url))))?;
        let name = options.target.name().to_owned();
        count(&connection, &options.target).await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(amqp("open a channel"))?;
        // Two batches in flight: the broker goes on sending the next batch while this one is
        // committed (acknowledgements come only after the commit).
        channel
            .basic_qos(
                options.batch_messages.saturating_mul(2),
                BasicQosOptions::default(),
            )
            .await
            .map_err(amqp("set the prefetch"))?;
        let mut arguments = FieldTable::default();
        let next = match &options.target {
            RabbitTarget::Stream(stream) => {
                let next = position(app_id(stream)).await?;
                let start = match next {
                    Some(next) => AMQPValue::LongLongInt(next),
                    None => AMQPValue::LongString("first".into()),
                };
                arguments.insert("x-stream-offset".into(), start);
                Some(next.unwrap_or(0))
            }
            RabbitTarget::Queue(_) => None,
        };
        let consumer = channel
            .basic_consume(
                name.as_str().into(),
                "retail-stream".into(),
                BasicConsumeOptions::default(),
                arguments,
            )
            .await
            .map_err(amqp(format!("consume {} {name}", options.target.kind())))?;
        let server_offsets = match &options.target {
            RabbitTarget::Stream(_) => options
                .server_offsets
                .clone()
                .map(|(endpoint, reference)| StreamOffsets::new(endpoint, reference)),
            RabbitTarget::Queue(_) => None,
        };
        Ok(Self {
            options,
            connection,
            channel,
            consumer,
            next,
            lake,
            unacked: None,
            round_done: false,
            redelivered_skipped: 0,
            server_offsets,
            server_offsets_copy: OffsetCopy::default(),
        })
    }

    /// The offset the broker keeps for the consumer name of `server_offsets` (the last
    /// message taken), or `None` without one or when it has none.
    ///
    /// # Errors
    ///
    /// When the stream port cannot be reached or refuses the query.
    pub async fn server_offset(&mut self) -> Result<Option<u64>> {
        let (Some(offsets), RabbitTarget::Stream(stream)) =
            (self.server_offsets.as_mut(), &self.options.target)
        else {
            return Ok(None);
        };
        offsets.query(stream).await.map_err(Error::Group)
    }

    /// Copies a stream's committed position to the broker's offset of the consumer name, as
    /// the offset of the last message taken. A failure is logged (once until it works again)
    /// and never fails the round: bronze holds the position.
    async fn store_server_offset(&mut self, checkpoints: &[Checkpoint]) {
        let (Some(offsets), RabbitTarget::Stream(stream)) =
            (self.server_offsets.as_mut(), &self.options.target)
        else {
            return;
        };
        let id = app_id(stream);
        let Some(next) = checkpoints
            .iter()
            .filter(|checkpoint| checkpoint.app_id == id)
            .map(|checkpoint| checkpoint.version)
            .max()
        else {
            return;
        };
        let Some(last) = next
            .checked_sub(1)
            .and_then(|last| u64::try_from(last).ok())
        else {
            return;
        };
        let outcome = offsets.store(stream, last).await;
        self.server_offsets_copy
            .record(outcome, offsets.reference());
    }

    /// Closes the connection. A queue's messages not yet acknowledged (none once a
    /// consumption has ended) go back to the queue.
    ///
    /// # Errors
    ///
    /// When the broker does not confirm the close.
    pub async fn close(self) -> Result<()> {
        self.connection
            .close(200, "done".into())
            .await
            .map_err(amqp("close the connection"))
    }

    /// Redelivered messages recognised as already in bronze and acknowledged unwritten.
    pub fn redelivered_skipped(&self) -> u64 {
        self.redelivered_skipped
    }

    /// Takes the next micro-batch of deliveries: waits up to `max_wait` for a first one, then
    /// up to `max_wait` more (or `batch_messages` in all) for the rest.
    async fn deliveries(&mut self) -> retail_ingest::Result<Vec<lapin::message::Delivery>> {
        let mut deliveries = Vec::new();
        let limit = usize::from(self.options.batch_messages.max(1));
        let mut deadline = tokio::time::Instant::now() + self.options.max_wait;
        while deliveries.len() < limit {
            match tokio::time::timeout_at(deadline, self.consumer.next()).await {
                Err(_elapsed) => break,
                Ok(None) => {
                    return Err(self.failed(format!(
                        "the broker cancelled the consumer of {}",
                        self.options.target.location()
                    )));
                }
                Ok(Some(Err(error))) => return Err(self.failed(error.to_string())),
                Ok(Some(Ok(delivery))) => {
                    if deliveries.is_empty() {
                        deadline = tokio::time::Instant::now() + self.options.max_wait;
                    }
                    deliveries.push(delivery);
                }
            }
        }
        Ok(deliveries)
    }

    fn failed(&self, error: String) -> retail_ingest::Error {
        retail_ingest::Error::Source(format!("{}: {error}", self.options.target.location()))
    }

    /// The keys among `keys` that bronze holds for this queue.
    async fn in_bronze(&self, keys: &HashSet<i64>) -> retail_ingest::Result<HashSet<i64>> {
        use futures::TryStreamExt as _;
        let location = self.options.target.location();
        let lake_error = |error: retail_lake::Error| {
            retail_ingest::Error::Source(format!(
                "{location}: reading bronze to recognise redelivered messages: {error}"
            ))
        };
        let mut held = HashSet::new();
        if self
            .lake
            .latest_version(&BRONZE_TRANSACTIONS)
            .await
            .map_err(lake_error)?
            .is_none()
        {
            return Ok(held);
        }
        let mut scan = self
            .lake
            .scan(
                &BRONZE_TRANSACTIONS,
                Some(&["source_location", "source_row"]),
            )
            .await
            .map_err(lake_error)?;
        while let Some(batch) = scan.try_next().await.map_err(|error| {
            retail_ingest::Error::Source(format!(
                "{location}: reading bronze to recognise redelivered messages: {error}"
            ))
        })? {
            let locations = batch.column_by_name("source_location").and_then(|c| {
                c.as_any()
                    .downcast_ref::<retail_lake::arrow::array::StringArray>()
            });
            let rows = batch.column_by_name("source_row").and_then(|c| {
                c.as_any()
                    .downcast_ref::<retail_lake::arrow::array::Int64Array>()
            });
            let (Some(locations), Some(rows)) = (locations, rows) else {
                continue;
            };
            for index in 0..batch.num_rows() {
                if locations.value(index) == location && keys.contains(&rows.value(index)) {
                    held.insert(rows.value(index));
                }
            }
        }
        Ok(held)
    }

    async fn ack_through(&mut self, tag: u64) -> retail_ingest::Result<()> {
        self.channel
            .basic_ack(tag, BasicAckOptions { multiple: true })
            .await
            .map_err(|error| self.failed(format!("acknowledge through {tag}: {error}")))
    }
}

/// Messages in a queue or stream as the broker counts them (ready messages of a queue; every
/// message a stream keeps), read without consuming any.
///
/// # Errors
///
/// When the broker cannot be reached or the queue or stream does not exist.
pub async fn message_count(url: &str, target: &RabbitTarget) -> Result<u32> {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(amqp(format!("connect to {}", redact(url))))?;
    let counted = count(&connection, target).await;
    let _ = connection.close(200, "counted".into()).await;
    counted
}

/// The messages of a queue or stream, by a passive declaration (it never creates one) on a
/// channel of its own, as a refusal closes the channel.
async fn count(connection: &Connection, target: &RabbitTarget) -> Result<u32> {
    let channel = connection
        .create_channel()
        .await
        .map_err(amqp("open a channel"))?;
    let queue = channel
        .queue_declare(
            target.name().into(),
            QueueDeclareOptions::default().passive(),
            FieldTable::default(),
        )
        .await
        .map_err(|error| Error::UnknownQueue {
            kind: target.kind(),
            name: target.name().to_owned(),
            reason: error.to_string(),
        })?;
    let _ = channel.close(200, "counted".into()).await;
    Ok(queue.message_count())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn stream_offset(delivery: &lapin::message::Delivery) -> Option<i64> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get("x-stream-offset")? {
        AMQPValue::LongLongInt(offset) => Some(*offset),
        AMQPValue::LongInt(offset) => Some(i64::from(*offset)),
        AMQPValue::LongUInt(offset) => Some(i64::from(*offset)),
        AMQPValue::ShortInt(offset) => Some(i64::from(*offset)),
        _ => None,
    }
}

#[async_trait]
impl StreamSource for RabbitSource {
    fn start_round(&mut self) {
        self.round_done = false;
    }

    fn positions(&self) -> BTreeMap<String, i64> {
        match (&self.options.target, self.next) {
            (RabbitTarget::Stream(stream), Some(next)) => BTreeMap::from([(stream.clone(), next)]),
            _ => BTreeMap::new(),
        }
    }

    /// A queue's waiting messages (a stream's end is not told over AMQP 0-9-1).
    async fn lag(&mut self) -> Result<BTreeMap<String, i64>> {
        if matches!(self.options.target, RabbitTarget::Stream(_)) {
            return Ok(BTreeMap::new());
        }
        let waiting = count(&self.connection, &self.options.target).await?;
        Ok(BTreeMap::from([(
            self.options.target.name().to_owned(),
            i64::from(waiting),
        )]))
    }
}

#[async_trait]
impl Source for RabbitSource {
    fn system(&self) -> &'static str {
        "rabbitmq"
    }

    async fn next_batch(&mut self) -> retail_ingest::Result<Option<SourceBatch>> {
        while !self.round_done {
            self.round_done = true;
            // The last round's batch was not committed by this consumer because bronze held
            // it already (another consumer of the stream was first): it needs no more care,
            // and the broker's credit must come back.
            if let Some(tag) = self.unacked.take() {
                self.ack_through(tag).await?;
            }
            let deliveries = self.deliveries().await?;
            let Some(last_tag) = deliveries.last().map(|d| d.delivery_tag) else {
                return Ok(None);
            };
            let location = self.options.target.location();
            let (payloads, checkpoint, location) = match self.options.target.clone() {
                RabbitTarget::Stream(stream) => {
                    let next = self.next.unwrap_or(0);
                    let mut payloads = Vec::with_capacity(deliveries.len());
                    for delivery in &deliveries {
                        let offset = stream_offset(delivery).ok_or_else(|| {
                            self.failed(
                                "a message without an x-stream-offset header: is this a stream?"
                                    .to_owned(),
                            )
                        })?;
                        // A consumer starting inside a chunk may see the chunk's earlier
                        // messages.
                        if offset >= next {
                            payloads.push((offset, delivery.data.as_slice()));
                        }
                    }
                    // A stream's position is bronze's mark, not the broker's: acknowledging
                    // (which only grants credit) now keeps the broker sending the next batch
                    // while this one is written. At most twice the batch is in flight.
                    self.ack_through(last_tag).await?;
                    let Some(last) = payloads.last().map(|(offset, _)| *offset) else {
                        self.round_done = false;
                        continue;
                    };
                    let first = payloads[0].0;
                    self.next = Some(last + 1);
                    (
                        payloads,
                        Some(Checkpoint::progress(app_id(&stream), last + 1)),
                        format!("{location} offsets {first}..={last}"),
                    )
                }
                RabbitTarget::Queue(_) => {
                    let keyed: Vec<(i64, &lapin::message::Delivery)> = deliveries
                        .iter()
                        .map(|d| {
                            let id = d.properties.message_id().as_ref().map(|id| id.as_str());
                            (message_key(id, &d.data), d)
                        })
                        .collect();
                    let redelivered: HashSet<i64> = keyed
                        .iter()
                        .filter(|(_, d)| d.redelivered)
                        .map(|(key, _)| *key)
                        .collect();
                    let held = if redelivered.is_empty() {
                        HashSet::new()
                    } else {
                        self.in_bronze(&redelivered).await?
                    };
                    let payloads: Vec<(i64, &[u8])> = keyed
                        .iter()
                        .filter(|(key, d)| !(d.redelivered && held.contains(key)))
                        .map(|(key, d)| (*key, d.data.as_slice()))
                        .collect();
                    let skipped = (keyed.len() - payloads.len()) as u64;
                    if skipped > 0 {
                        tracing::info!(
                            skipped,
                            queue = self.options.target.name(),
                            "redelivered messages bronze holds already: acknowledged, not written"
                        );
                        self.redelivered_skipped += skipped;
                    }
                    if payloads.is_empty() {
                        self.ack_through(last_tag).await?;
                        self.round_done = false;
                        continue;
                    }
                    (payloads, None, location)
                }
            };
            let rows = self
                .options
                .format
                .decode(&payloads, self.options.batch_rows)?;
            if checkpoint.is_none() {
                // A queue's messages are acknowledged after the commit.
                self.unacked = Some(last_tag);
            }
            return Ok(Some(SourceBatch {
                unit: format!("d{last_tag}"),
                location,
                parts: vec![retail_ingest::decode::Part {
                    suffix: String::new(),
                    rows,
                }],
                checkpoint,
                change: None,
                checksum: String::new(),
            }));
        }
        Ok(None)
    }

    async fn committed(&mut self, checkpoints: &[Checkpoint]) -> retail_ingest::Result<()> {
        if let Some(tag) = self.unacked.take() {
            self.ack_through(tag).await?;
        }
        self.store_server_offset(checkpoints).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_key_is_its_id_when_it_has_one_and_its_body_otherwise() {
        let body = br#"{"InvoiceNo":"536365"}"#;
        assert_eq!(
            message_key(Some("m-1"), body),
            message_key(Some("m-1"), b"other")
        );
        assert_ne!(
            message_key(Some("m-1"), body),
            message_key(Some("m-2"), body)
        );
        assert_eq!(message_key(None, body), message_key(None, body));
        assert_ne!(message_key(None, body), message_key(None, b"other"));
        // An id equal to a body is still another key.
        assert_ne!(message_key(Some("x"), b"x"), message_key(None, b"x"));
        assert!(message_key(None, body) >= 0);
    }

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(
            redact("amqp://retail:s3cret@broker:5672/%2f"),
            "amqp://retail:***@broker:5672/%2f"
        );
        assert_eq!(redact("amqp://broker:5672"), "amqp://broker:5672");
    }
}
