use std::path::PathBuf;

use retail_domain::error::{Classify, ErrorKind};

/// Errors of the source adapters.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input names nothing that exists.
    #[error("input {input:?} matches no file")]
    NoMatch {
        /// The input as given.
        input: String,
    },
    /// A glob pattern is not valid.
    #[error("invalid glob pattern {pattern:?}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// The cause.
        #[source]
        source: glob::PatternError,
    },
    /// A file's format is not one the platform reads.
    #[error("unsupported file {path}: expected .csv, .json, .jsonl, .ndjson, .xlsx or .parquet")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read from disk.
    #[error("failed to read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A source does not look like retail transactions.
    #[error("{source_name} has no retail transaction header: {reason}")]
    Header {
        /// The file (or `request body`).
        source_name: String,
        /// What is wrong with the header.
        reason: String,
    },
    /// A source as a whole could not be decoded (not a workbook, not Parquet, not JSON).
    #[error("failed to decode {source_name}: {reason}")]
    Decode {
        /// The file (or `request body`).
        source_name: String,
        /// Why.
        reason: String,
    },
    /// A batch could not be assembled (a bug: the builders follow the schemas).
    #[error("failed to build a batch of raw records")]
    Batch(#[source] deltalake::arrow::error::ArrowError),
    /// A stream's broker failed or refused a read (unreachable, records removed by retention).
    #[error("stream source failed: {0}")]
    Source(String),
    /// A blocking task panicked or was cancelled.
    #[error("background decoding failed")]
    Task(#[source] tokio::task::JoinError),
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoMatch { .. } => ErrorKind::NotFound,
            Self::Pattern { .. }
            | Self::UnsupportedFormat { .. }
            | Self::Header { .. }
            | Self::Decode { .. } => ErrorKind::InvalidInput,
            Self::Io { .. } | Self::Source(_) => ErrorKind::Unavailable,
            Self::Batch(_) | Self::Task(_) => ErrorKind::Internal,
        }
    }
}

/// The source adapters' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
