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
    #[error("unsupported file {path}: expected .csv, .xlsx, .parquet, .jsonl or .ndjson")]
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
    /// A file's header does not look like retail transactions.
    #[error("file {path} has no retail transaction header: {reason}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong with the header.
        reason: String,
    },
    /// A workbook or Parquet file as a whole could not be decoded.
    #[error("failed to decode {path}: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A batch could not be assembled (a bug: the builders follow the bronze schema).
    #[error("failed to build a bronze batch")]
    Batch(#[source] deltalake::arrow::error::ArrowError),
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoMatch { .. } => ErrorKind::NotFound,
            Self::Pattern { .. }
            | Self::UnsupportedFormat { .. }
            | Self::Header { .. }
            | Self::Decode { .. } => ErrorKind::InvalidInput,
            Self::Io { .. } => ErrorKind::Unavailable,
            Self::Batch(_) => ErrorKind::Internal,
        }
    }
}

/// The source adapters' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
