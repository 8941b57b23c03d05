//! Stream sources for bronze, consumed exactly once.
//!
//! A stream is a [`Source`] like files and HTTP bodies: its batches carry checkpoints (a Kafka
//! partition's or a RabbitMQ stream's next offset), which the ingestion service commits in the
//! same Delta commit as the records; a RabbitMQ queue, which has no offsets, is acknowledged
//! after that commit instead. [`consume`] drives a source in rounds: each round is one
//! ingestion (one commit, one run record when it wrote rows), so a round is a micro-batch,
//! flushed by size (the fetch size, the batch's message count) or by time (the wait).

mod error;
pub mod kafka;
mod kafka_group;
mod rabbit_offsets;
pub mod rabbitmq;
mod wire;

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use retail_domain::progress::Progress;
use retail_ingest::Source;
use retail_pipeline::{IngestRequest, IngestionService};
use retail_telemetry::metrics;
use tracing::Instrument as _;
use tracing::info;

pub use error::{Error, Result};
pub use kafka::{KafkaOptions, KafkaSource};
pub use kafka_group::GroupOffsets;
pub use rabbit_offsets::{DEFAULT_STREAM_PORT, StreamEndpoint, StreamOffsets};
pub use rabbitmq::{RabbitOptions, RabbitSource, RabbitTarget};

/// Where bronze says a source's application id stands, as [`KafkaSource::connect`] and
/// [`RabbitSource::connect`] ask it: the position they start from.
pub fn bronze_positions(
    ingestion: &IngestionService,
) -> impl Fn(String) -> futures::future::BoxFuture<'static, Result<Option<i64>>> + Clone + Send + 'static
{
    let ingestion = ingestion.clone();
    move |app_id: String| {
        let ingestion = ingestion.clone();
        Box::pin(async move { Ok(ingestion.checkpoint(&app_id).await?) })
    }
}

/// The outcome of copying committed positions to the broker's own offsets (a Kafka group's, a
/// RabbitMQ stream reference's). The copy is for lag tools only, so a failure never fails a
/// round: it is logged once per streak of failures, and again when the copy works once more.
#[derive(Debug, Default)]
struct OffsetCopy {
    failing: bool,
}

impl OffsetCopy {
    fn record(&mut self, outcome: std::result::Result<(), String>, consumer: &str) {
        match outcome {
            Ok(()) => {
                if std::mem::take(&mut self.failing) {
                    info!(consumer, "the broker's offsets are stored again");
                }
            }
            Err(error) => {
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::warn!(%error, consumer, "the broker's offsets could not be stored (bronze keeps the positions; lag tools see stale offsets)");
                }
            }
        }
    }
}

/// A [`Source`] read in rounds, each round one micro-batch.
#[async_trait::async_trait]
pub trait StreamSource: Source {
    /// Starts a round: the ingestion that follows takes one micro-batch and commits it.
    fn start_round(&mut self);

    /// The next offset of each partition or stream (empty for a queue, which has none).
    fn positions(&self) -> BTreeMap<String, i64>;

    /// Messages still to read, by partition (empty when the broker cannot tell).
    ///
    /// # Errors
    ///
    /// When the broker cannot answer.
    async fn lag(&mut self) -> Result<BTreeMap<String, i64>> {
        Ok(BTreeMap::new())
    }
}

/// What a message holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MessageFormat {
    /// One JSON object with the fields the ingestion API accepts (either header variant).
    #[default]
    Json,
    /// One CSV line, its fields named by the stream's configured header.
    Csv {
        /// The names of the fields, in order.
        header: Vec<String>,
    },
}

impl MessageFormat {
    /// Decodes `(position, payload)` messages; a bad one becomes a malformed record.
    ///
    /// # Errors
    ///
    /// When the records cannot be assembled into batches.
    pub fn decode(
        &self,
        messages: &[(i64, &[u8])],
        batch_rows: usize,
    ) -> retail_ingest::Result<retail_ingest::RawRows> {
        match self {
            Self::Json => retail_ingest::decode::json_messages(messages, batch_rows),
            Self::Csv { header } => {
                retail_ingest::decode::csv_messages(messages, header, batch_rows)
            }
        }
    }
}

/// How often a consumer measures its lag for `/metrics`.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// How long to consume.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// Stop once the source has given nothing for this long (scripts and tests); `None`: until
    /// the shutdown signal.
    pub until_idle: Option<Duration>,
    /// Who the runs are recorded for (`stream:<name>`); the name is the stream's label in the
    /// metrics.
    pub requested_by: String,
}

/// What a consumption did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumed {
    /// Rounds that wrote records (one Delta commit each).
    pub commits: u64,
    /// Records written to bronze.
    pub records: u64,
    /// Malformed records among them (kept with their raw payload).
    pub malformed: u64,
    /// From the start to the end of the last round that wrote records: the time the records
    /// took, without the idle wait at the end.
    pub busy: Duration,
}

/// What runs beside a consumer, told of every round (the continuous pipeline of `--follow`).
pub trait RoundHook: Send {
    /// A round ended, having committed `records` records (0 for a quiet round).
    fn round(&mut self, records: u64);
}

/// No hook.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl RoundHook for NoHook {
    fn round(&mut self, _records: u64) {}
}

/// Consumes `source` into bronze until it has been idle for `options.until_idle` or until
/// `shutdown` resolves, telling `hook` of every round. A shutdown never cuts a round: the round
/// in flight is committed first.
///
/// # Errors
///
/// When the broker or the lake fails; every round committed before stays, and a restart
/// resumes after it.
pub async fn consume(
    ingestion: &IngestionService,
    source: &mut dyn StreamSource,
    options: &ConsumeOptions,
    progress: &dyn Progress,
    hook: &mut dyn RoundHook,
    shutdown: impl Future<Output = ()>,
) -> Result<Consumed> {
    let request = IngestRequest {
        requested_by: Some(options.requested_by.clone()),
        idempotency_digest: None,
        record_if_unchanged: false,
    };
    let mut consumed = Consumed::default();
    let started = Instant::now();
    let mut last_records = started;
    let mut shutdown = std::pin::pin!(shutdown);
    // The first poll installs the signal handlers a shutdown future may hold.
    if is_ready_now(&mut shutdown) {
        return Ok(consumed);
    }
    let stream = options
        .requested_by
        .strip_prefix("stream:")
        .unwrap_or(&options.requested_by);
    let mut lag_at: Option<Instant> = None;
    loop {
        if lag_at.is_none_or(|at| at.elapsed() >= LAG_EVERY) {
            lag_at = Some(Instant::now());
            match source.lag().await {
                Ok(lag) => {
                    for (partition, lag) in lag {
                        metrics::set_stream_lag(stream, &partition, lag);
                    }
                }
                Err(error) => tracing::warn!(%error, stream, "cannot measure the lag"),
            }
        }
        source.start_round();
        let round = Instant::now();
        let span = tracing::info_span!("stream_batch", stream, records = tracing::field::Empty);
        let run = ingestion
            .ingest(&mut *source, &request, progress)
            .instrument(span.clone())
            .await?;
        span.record("records", run.rows_out);
        metrics::record_stream_round(stream, run.rows_out, round.elapsed().as_secs_f64());
        hook.round(run.rows_out);
        if run.rows_out > 0 {
            consumed.commits += 1;
            consumed.records += run.rows_out;
            consumed.malformed += run.detail.files.iter().map(|f| f.malformed).sum::<u64>();
            last_records = Instant::now();
            consumed.busy = started.elapsed();
            info!(records = run.rows_out, positions = ?source.positions(), "stream round committed");
        } else if options
            .until_idle
            .is_some_and(|idle| last_records.elapsed() >= idle)
        {
            return Ok(consumed);
        }
        // Between rounds only: the round in flight is always committed.
        if is_ready_now(&mut shutdown) {
            return Ok(consumed);
        }
    }
}

/// Whether `future` is ready now, without waiting.
fn is_ready_now(future: &mut std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    future.as_mut().poll(&mut context).is_ready()
}
