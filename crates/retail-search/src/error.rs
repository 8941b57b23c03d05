//! The search crate's errors.

use std::path::{Path, PathBuf};

use retail_domain::error::{Classify, ErrorKind};

/// What can go wrong while indexing, searching or recommending.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A lake operation failed.
    #[error(transparent)]
    Lake(#[from] retail_lake::Error),
    /// Reading a table's data failed midway.
    #[error("failed to read table {table}")]
    Read {
        /// The table.
        table: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Gold's data was not what search expects.
    #[error("failed to read {what}")]
    Arrow {
        /// What was being read.
        what: &'static str,
        /// The cause.
        #[source]
        source: deltalake::arrow::error::ArrowError,
    },
    /// The index in a directory failed.
    #[error("search index {dir} failed")]
    Index {
        /// The index's directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: tantivy::TantivyError,
    },
    /// A file of the index could not be read or written.
    #[error("cannot use {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The index is not what this version writes.
    #[error("{detail}")]
    Schema {
        /// What is wrong and what to do.
        detail: String,
    },
    /// No index has been built yet.
    #[error(
        "the search index in {dir} has not been built yet: run retail pipeline run (or retail \
         search rebuild)"
    )]
    NotBuilt {
        /// Where it is expected.
        dir: PathBuf,
    },
    /// A request the index cannot serve.
    #[error("{0}")]
    Invalid(String),
    /// The Typesense server answered with an error or could not be reached.
    #[error("typesense {operation} failed: {detail}")]
    Typesense {
        /// What was asked.
        operation: String,
        /// What it answered.
        detail: String,
        /// Whether it was out of reach (worth a retry).
        unreachable: bool,
    },
    /// A lock was poisoned by a panic.
    #[error("the search index's state was poisoned by an earlier panic")]
    Poisoned,
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    /// Wraps a tantivy error of the index in `dir`.
    pub fn index(dir: &Path) -> impl Fn(tantivy::TantivyError) -> Self + '_ {
        move |source| Self::Index {
            dir: dir.to_path_buf(),
            source,
        }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Lake(error) => error.kind(),
            Self::Read { .. } | Self::NotBuilt { .. } => ErrorKind::Unavailable,
            Self::Typesense { unreachable, .. } if *unreachable => ErrorKind::Unavailable,
            Self::Invalid(_) => ErrorKind::InvalidInput,
            Self::Arrow { .. }
            | Self::Index { .. }
            | Self::Io { .. }
            | Self::Schema { .. }
            | Self::Typesense { .. }
            | Self::Poisoned
            | Self::Task(_) => ErrorKind::Internal,
        }
    }
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
