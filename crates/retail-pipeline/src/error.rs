use retail_domain::error::{Classify, ErrorKind};

/// Errors of the platform's use cases.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A lake operation failed.
    #[error(transparent)]
    Lake(#[from] retail_lake::Error),
    /// A source could not be read.
    #[error(transparent)]
    Source(#[from] retail_ingest::Error),
    /// The metadata store failed.
    #[error("metadata store: failed to {operation}")]
    Metadata {
        /// What was being done.
        operation: &'static str,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The metadata store's directory could not be created.
    #[error("failed to create the metadata directory {path}")]
    MetadataDirectory {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
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
    /// Another process is running the same operation on this lake.
    #[error("another {operation} is running on this lake; try again when it has finished")]
    Busy {
        /// `pipeline` or `ingest`.
        operation: &'static str,
    },
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    pub(crate) fn metadata(operation: &'static str) -> impl Fn(rusqlite::Error) -> Self {
        move |source| Self::Metadata { operation, source }
    }

    pub(crate) fn transform(
        stage: &'static str,
    ) -> impl Fn(deltalake::arrow::error::ArrowError) -> Self {
        move |source| Self::Transform { stage, source }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Lake(error) => error.kind(),
            Self::Source(error) => error.kind(),
            Self::Metadata { source, .. } => match source {
                rusqlite::Error::SqliteFailure(failure, _)
                    if failure.code == rusqlite::ErrorCode::DatabaseBusy =>
                {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Internal,
            },
            Self::MetadataDirectory { .. } | Self::Read { .. } => ErrorKind::Unavailable,
            Self::Busy { .. } => ErrorKind::Conflict,
            Self::Transform { .. } | Self::Reconciliation { .. } | Self::Task(_) => {
                ErrorKind::Internal
            }
        }
    }
}

/// The use cases' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
