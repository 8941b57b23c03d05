//! Stream sources for bronze, consumed exactly once.
//!
//! A stream is a [`Source`](retail_ingest::Source) like files and HTTP bodies: its batches carry
//! checkpoints (a partition's next offset), which the ingestion service commits in the same
//! Delta commit as the records. [`consume`] drives a source in rounds: each round reads every
//! partition once and is one ingestion (one commit, one run record when it wrote rows), so a
//! round is a micro-batch, flushed by size (the fetch size) or by time (the fetch's wait).

mod error;
pub mod kafka;

use std::time::{Duration, Instant};

use retail_domain::progress::Progress;
use retail_pipeline::{IngestRequest, IngestionService};
use tracing::info;

pub use error::{Error, Result};
pub use kafka::{KafkaOptions, KafkaSource};

/// How long to consume.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// Stop once the source has given nothing for this long (scripts and tests); `None`: until
    /// the shutdown signal.
    pub until_idle: Option<Duration>,
    /// Who the runs are recorded for (`stream:kafka:<topic>`).
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
}

/// Consumes `source` into bronze until it has been idle for `options.until_idle` or until
/// `shutdown` resolves. A shutdown never cuts a round: the round in flight is committed first.
///
/// # Errors
///
/// When the broker or the lake fails; every round committed before stays, and a restart
/// resumes after it.
pub async fn consume(
    ingestion: &IngestionService,
    source: &mut KafkaSource,
    options: &ConsumeOptions,
    progress: &dyn Progress,
    shutdown: impl Future<Output = ()>,
) -> Result<Consumed> {
    let request = IngestRequest {
        requested_by: Some(options.requested_by.clone()),
        idempotency_digest: None,
        record_if_unchanged: false,
    };
    let mut consumed = Consumed::default();
    let mut last_records = Instant::now();
    let mut shutdown = std::pin::pin!(shutdown);
    // The first poll installs the signal handlers a shutdown future may hold.
    if is_ready_now(&mut shutdown) {
        return Ok(consumed);
    }
    loop {
        source.start_round();
        let run = ingestion.ingest(source, &request, progress).await?;
        if run.rows_out > 0 {
            consumed.commits += 1;
            consumed.records += run.rows_out;
            consumed.malformed += run.detail.files.iter().map(|f| f.malformed).sum::<u64>();
            last_records = Instant::now();
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
