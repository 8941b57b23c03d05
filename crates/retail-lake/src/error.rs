use deltalake::DeltaTableError;
use retail_domain::error::{Classify, ErrorKind};

/// Errors of the lake adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configured root is neither a usable directory nor a URL.
    #[error("invalid lake root {root:?}: {reason}")]
    InvalidRoot {
        /// The configured root.
        root: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A Delta operation on a table failed.
    #[error("failed to {operation} table {table}")]
    Table {
        /// What was being done (`open`, `commit`, `read`, ...).
        operation: &'static str,
        /// The table's name, such as `silver/retail_transactions`.
        table: String,
        /// The cause (boxed: Delta errors are large).
        #[source]
        source: Box<DeltaTableError>,
    },
    /// A batch did not fit the table's schema or could not be encoded.
    #[error("failed to {operation} table {table}")]
    Arrow {
        /// What was being done.
        operation: &'static str,
        /// The table's name.
        table: String,
        /// The cause.
        #[source]
        source: deltalake::arrow::error::ArrowError,
    },
    /// A Parquet file of a table could not be read.
    #[error("failed to read file {file} of table {table}")]
    Parquet {
        /// The table's name.
        table: String,
        /// The file, relative to the table's root.
        file: String,
        /// The cause.
        #[source]
        source: deltalake::parquet::errors::ParquetError,
    },
    /// The lake's encryption keys cannot be used.
    #[error("lake encryption: {0}")]
    Encryption(#[from] crate::encryption::KeyError),
    /// A table that must exist does not.
    #[error("table {table} does not exist yet")]
    MissingTable {
        /// The table's name.
        table: String,
    },
}

impl Error {
    /// Whether a commit failed because another writer committed first something this commit
    /// depends on (an application transaction of the same id, or the same version): the table
    /// is unchanged, and reading it again tells what the other writer did.
    pub fn is_commit_conflict(&self) -> bool {
        match self {
            Self::Table { source, .. } => matches!(
                source.as_ref(),
                DeltaTableError::VersionAlreadyExists(_)
                    | DeltaTableError::Transaction {
                        source: deltalake::kernel::transaction::TransactionError::CommitConflict(_)
                            | deltalake::kernel::transaction::TransactionError::MaxCommitAttempts(
                                _
                            )
                    }
            ),
            _ => false,
        }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidRoot { .. } => ErrorKind::InvalidInput,
            Self::Encryption(_) => ErrorKind::Unavailable,
            Self::MissingTable { .. } => ErrorKind::NotFound,
            Self::Table { source, .. } => match source.as_ref() {
                DeltaTableError::VersionAlreadyExists(_) | DeltaTableError::Transaction { .. } => {
                    ErrorKind::Conflict
                }
                DeltaTableError::ObjectStore { .. } | DeltaTableError::Io { .. } => {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Internal,
            },
            Self::Arrow { .. } | Self::Parquet { .. } => ErrorKind::Internal,
        }
    }
}

/// The lake adapter's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
