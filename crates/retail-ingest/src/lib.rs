//! Source adapters: turn what arrives (files, HTTP bodies, and next the message streams) into
//! raw records for `bronze/retail_transactions`, keeping every record, malformed or not.
//!
//! - [`decode`](mod@decode): one decoder per format (CSV, JSON, JSON lines, XLSX, Parquet),
//!   over bytes, shared by every way data arrives;
//! - [`raw`](mod@raw): raw records as Arrow batches, and [`to_bronze`] that adds the lineage;
//! - [`Source`]: the seam every source implements: batches of raw records, each with the
//!   [`Checkpoint`] that lands in the same Delta commit; [`FileSource`] and [`BatchSource`]
//!   are the sources of files and of one in-memory batch;
//! - [`generate`]: the synthetic data generator.
//!
//! This crate reads and decodes; it does not write to the lake or apply the contract's silver
//! rules.
//!
//! ```
//! use retail_ingest::decode::{Format, decode};
//!
//! let csv = b"InvoiceNo,StockCode,Quantity,Country,Colour\n536365,85123A,6,France,red\n";
//! let parts = decode(Format::Csv, "example.csv", csv, 65_536).unwrap();
//! let rows = &parts[0].rows;
//! assert_eq!((rows.rows, rows.malformed), (1, 0));
//! assert_eq!(rows.fields()[0][1].as_deref(), Some("85123A"));
//! ```

pub mod decode;
mod error;
mod file;
pub mod generate;
pub mod raw;
mod source;

pub use error::{Error, Result};
pub use file::{FILE_APP_PREFIX, FileSource, content_checksum, resolve_inputs};
pub use raw::{Fields, Lineage, RawRows, RecordChange, raw_fields, raw_schema, to_bronze};
pub use source::{Announcement, BatchSource, Checkpoint, Source, SourceBatch};
