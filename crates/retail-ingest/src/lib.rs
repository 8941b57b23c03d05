//! Source adapters: turn what arrives (files today; HTTP bodies and streams later) into bronze
//! rows of `bronze/retail_transactions`, keeping every record, malformed or not.
//!
//! This crate reads and decodes; it does not write to the lake or apply the contract's silver
//! rules. It also holds the synthetic data generator ([`generate`]).
//!
//! ```no_run
//! use std::path::Path;
//! use retail_ingest::{BronzeContext, read_file};
//!
//! # fn example(context: &BronzeContext) -> retail_ingest::Result<()> {
//! let path = Path::new("2010-12-01.csv");
//! let bytes = std::fs::read(path).expect("readable");
//! for (_, rows) in read_file(path, &bytes, context, 65_536)? {
//!     println!("{} rows, {} malformed", rows.rows, rows.malformed);
//! }
//! # Ok(())
//! # }
//! ```

mod bronze;
mod error;
pub mod generate;
mod reader;
mod source;

pub use bronze::{BronzeContext, BronzeRows, RecordChange, records_to_bronze};
pub use error::{Error, Result};
pub use reader::{check_file, read_csv, read_file, read_json_lines, read_parquet, read_xlsx};
pub use source::{Format, content_checksum, resolve_inputs};
