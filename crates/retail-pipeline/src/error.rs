use retail_domain::error::{Classify, ErrorKind};
use retail_domain::ports::PortError;

/// Errors of the platform's use cases.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A lake operation failed.
    #[error(transparent)]
    Lake(#[from] retail_lake::Error),
    /// A source could not be read.
    #[error(transparent)]
    Source(#[from] retail_ingest::Error),
    /// The metadata store failed (or another process holds the operation).
    #[error(transparent)]
    Metadata(#[from] retail_metadata::Error),
    /// A follower of gold failed to catch up.
    #[error("{key} failed to catch up with gold")]
    Follower {
        /// The follower's asset key.
        key: &'static str,
        /// The cause.
        #[source]
        source: PortError,
    },
    /// A transformation could not assemble its output.
    #[error("failed to build {stage} data")]
    Transform {
        /// `silver` or `gold`.
        stage: &'static str,
        /// The cause.
        #[source]
        source: deltalake::arrow::error::ArrowError,
    },
    /// Reading a table's data failed midway.
    #[error("failed to read table {table}")]
    Read {
        /// The table.
        table: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A run's counts did not add up: a bug, and the run is not committed.
    #[error("reconciliation failed: {detail}")]
    Reconciliation {
        /// The counts.
        detail: String,
    },
    /// Another ingestion committed some of the same sources at the same moment.
    #[error(
        "another ingestion committed some of the same sources at the same moment; nothing of \
         this commit was written: ingest again (what bronze holds is skipped)"
    )]
    ConcurrentIngestion,
    /// A checkpoint whose version fingerprints its content (an idempotency key) is recorded in
    /// bronze for other content.
    #[error(
        "{app_id} was already used for different content: send the same request again to \
         replay it, or use a new key for new content"
    )]
    CheckpointReused {
        /// The checkpoint's application id.
        app_id: String,
    },
    /// A run named an asset the graph does not have.
    #[error("unknown asset {key:?}; assets: {known}")]
    UnknownAsset {
        /// The key asked for.
        key: String,
        /// The keys there are.
        known: String,
    },
    /// The asset graph as registered cannot be run (a bug in the composition root).
    #[error("invalid asset graph: {0}")]
    Graph(String),
    /// Gold's tables are not all built from the same silver version (a gold build was cut
    /// short): a follower must wait for the next gold run.
    #[error("gold is incomplete (its tables are built from different silver versions): run gold")]
    GoldIncomplete,
    /// A GDPR erasure stopped after it rewrote bronze and before it finished silver: silver
    /// must not read bronze's rewritten files as new rows.
    #[error(
        "a GDPR erasure was interrupted (bronze has {bronze} erasures, silver {silver}): run \
         `retail gdpr forget` for the same customer again to finish it before the pipeline runs"
    )]
    ErasureInterrupted {
        /// Erasures bronze has had.
        bronze: i64,
        /// Erasures silver has had.
        silver: i64,
    },
    /// An erasure needs silver to have consumed all of bronze first.
    #[error(
        "silver is behind bronze (silver at bronze version {silver:?}, bronze at {bronze}): run silver first"
    )]
    SilverBehind {
        /// Silver's mark.
        silver: Option<i64>,
        /// Bronze's latest version.
        bronze: u64,
    },
    /// The customers' consent could not be read: an asset that profiles customers does not
    /// run without it.
    #[error("cannot read the customers' consent to {purpose}")]
    Consent {
        /// The purpose.
        purpose: retail_domain::privacy::Purpose,
        /// The cause.
        #[source]
        source: PortError,
    },
    /// A check could not be evaluated.
    #[error("check {check:?} could not be evaluated: {detail}")]
    Check {
        /// The check.
        check: String,
        /// Why.
        detail: String,
    },
    /// `error` checks failed: the assets downstream of the checked ones were held back.
    #[error("{detail}")]
    ChecksFailed {
        /// Which check failed on what, and what it held back.
        detail: String,
    },
    /// A backfill named a partition that is not one (`2011-13`).
    #[error("{detail}")]
    BadPartitions {
        /// What is wrong with which partitions.
        detail: String,
    },
    /// A backfill's partitions are well formed but cannot be taken: none, a reversed range,
    /// months that hold no data.
    #[error("{detail}")]
    UnusablePartitions {
        /// Why.
        detail: String,
    },
    /// No backfill has this id.
    #[error("no backfill {id:?}")]
    BackfillNotFound {
        /// The id asked for.
        id: String,
    },
    /// A backfill that cannot be resumed in its state.
    #[error("backfill {id} is {status}: only a failed backfill can be resumed")]
    BackfillNotResumable {
        /// The backfill.
        id: String,
        /// Its state.
        status: &'static str,
    },
    /// A run of a backfill failed: the backfill stopped there.
    #[error("run {run_id} of the backfill ({months}) failed")]
    BackfillStep {
        /// The pipeline run.
        run_id: String,
        /// What it ran: `months 2011-01, 2011-02`.
        months: String,
        /// Why.
        source: Box<Error>,
    },
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    /// Wraps an Arrow error of an asset's transformation (`stage`: the asset).
    pub fn transform(stage: &'static str) -> impl Fn(deltalake::arrow::error::ArrowError) -> Self {
        move |source| Self::Transform { stage, source }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Lake(error) => error.kind(),
            Self::BackfillStep { source, .. } => source.kind(),
            Self::Source(error) => error.kind(),
            Self::Metadata(error) => error.kind(),
            Self::Follower { source, .. } | Self::Consent { source, .. } => source.kind(),
            Self::Read { .. } => ErrorKind::Unavailable,
            Self::ConcurrentIngestion
            | Self::GoldIncomplete
            | Self::ErasureInterrupted { .. }
            | Self::SilverBehind { .. }
            | Self::BackfillNotResumable { .. } => ErrorKind::Conflict,
            Self::BackfillNotFound { .. } => ErrorKind::NotFound,
            Self::CheckpointReused { .. }
            | Self::ChecksFailed { .. }
            | Self::UnusablePartitions { .. } => ErrorKind::Unprocessable,
            Self::UnknownAsset { .. } | Self::BadPartitions { .. } => ErrorKind::InvalidInput,
            Self::Transform { .. }
            | Self::Reconciliation { .. }
            | Self::Graph(_)
            | Self::Check { .. }
            | Self::Task(_) => ErrorKind::Internal,
        }
    }
}

/// The use cases' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
