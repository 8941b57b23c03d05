use retail_domain::error::{Classify, ErrorKind};

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A SQLite statement failed.
    #[error("metadata store: failed to {operation}")]
    Sqlite {
        /// What was being done.
        operation: &'static str,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A PostgreSQL statement failed.
    #[error("metadata store: failed to {operation}")]
    Postgres {
        /// What was being done.
        operation: &'static str,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection to PostgreSQL could be had (the message never repeats the URL).
    #[error("metadata store: {0}")]
    Connection(String),
    /// The directory of the SQLite file or of a claim could not be created or opened.
    #[error("metadata store: cannot use {path}")]
    Directory {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another holder has claimed the operation.
    #[error("another {operation} is running on this lake; try again when it has finished")]
    Busy {
        /// `pipeline run`, `ingestion`, ...
        operation: &'static str,
    },
    /// A stored value does not decode (a bug or a hand-edited database).
    #[error("metadata store: stored {what} cannot be read: {detail}")]
    Corrupt {
        /// What was read.
        what: &'static str,
        /// Why it did not decode.
        detail: String,
    },
    /// The database was written by a newer build, or an applied migration was edited.
    #[error("metadata store: {0}")]
    Schema(String),
    /// A sealed field could not be sealed or opened: its data key is missing, or it was
    /// altered.
    #[error("metadata store: {0}")]
    Sealing(String),
    /// A blocking task panicked or was cancelled.
    #[error("metadata store: background task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    pub(crate) fn sqlite(operation: &'static str) -> impl Fn(rusqlite::Error) -> Self {
        move |source| Self::Sqlite { operation, source }
    }

    pub(crate) fn postgres(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> Self {
        move |source| Self::Postgres { operation, source }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Sqlite { source, .. } => match source {
                rusqlite::Error::SqliteFailure(failure, _)
                    if matches!(
                        failure.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) =>
                {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Internal,
            },
            Self::Postgres { source, .. } => {
                if source.is_closed() || source.as_db_error().is_none() {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::Internal
                }
            }
            Self::Connection(_) | Self::Directory { .. } => ErrorKind::Unavailable,
            Self::Busy { .. } => ErrorKind::Conflict,
            Self::Corrupt { .. } | Self::Schema(_) | Self::Sealing(_) | Self::Task(_) => {
                ErrorKind::Internal
            }
        }
    }
}

/// The metadata store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
