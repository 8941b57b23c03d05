//! The retail platform's pure domain: the data contract's rules, with no IO.
//!
//! This crate owns what `DATA_CONTRACT.md` says about a single record and about scores:
//!
//! - [`change`](mod@change): updates and deletes of transactions already in silver;
//! - [`column`](mod@column): the eight business columns and the source headers that name them;
//! - [`field`](mod@field): parsing and normalising each field (dates, exact prices, customer ids, ...);
//! - [`record`](mod@record): raw source fields, the silver cleansing rules ([`cleanse`]) and the
//!   quarantine reasons of a rejected row;
//! - [`line_type`](mod@line_type) and [`country`](mod@country): what a stock code and a country mean;
//! - [`score`](mod@score): the per-row data quality score;
//! - [`transaction`](mod@transaction): the deterministic transaction id and the bronze record hash;
//! - [`rfm`](mod@rfm): SQL-exact `NTILE` and the RFM segment table (in Rust and in SQL);
//! - [`measure`](mod@measure): what counts as a purchase, an order, units sold (in Rust and in SQL);
//! - [`names`](mod@names): names safe to write into SQL;
//! - [`search`](mod@search): the search index's documents, requests and answers, and the text
//!   rules every search backend shares;
//! - [`error`](mod@error): the workspace's error vocabulary ([`ErrorKind`], [`Classify`]);
//! - [`progress`](mod@progress): how long work reports its progress;
//! - [`ports`](mod@ports): the traits adapters implement ([`ports::Follower`]).
//!
//! It must not do IO, spawn tasks or depend on an engine: adapters call it row by row (it is
//! written to run on millions of rows without needless allocation), and SQL models must
//! agree with it.
//!
//! ```
//! use retail_domain::{cleanse, DateWindow, LineType, QuarantineReason, RawFields};
//!
//! let raw = RawFields {
//!     invoice: Some("536365"),
//!     stock_code: Some("85123a"),
//!     description: Some("WHITE HANGING HEART T-LIGHT HOLDER"),
//!     quantity: Some("6"),
//!     invoice_date: Some("12/1/2010 8:26"),
//!     unit_price: Some("2.55"),
//!     customer_id: Some("17850.0"),
//!     country: Some("United Kingdom"),
//! };
//! let clean = cleanse(&raw, None, &DateWindow::ingested_now()).expect("a valid row");
//! assert_eq!(clean.stock_code, "85123A");
//! assert_eq!(clean.total_amount.to_string(), "15.300");
//! assert_eq!(clean.line_type, LineType::Product);
//! assert_eq!(clean.data_quality_score.to_string(), "1.00");
//!
//! let broken = RawFields { quantity: Some("0"), unit_price: Some("-1"), ..raw };
//! assert_eq!(
//!     cleanse(&broken, None, &DateWindow::ingested_now()),
//!     Err(vec![QuarantineReason::ZeroQuantity, QuarantineReason::NegativeUnitPrice])
//! );
//! ```

pub mod alerts;
pub mod audit;
pub mod change;
pub mod column;
pub mod country;
pub mod error;
pub mod field;
pub mod hash;
pub mod line_type;
pub mod lineage;
pub mod measure;
pub mod names;
pub mod pattern;
pub mod ports;
pub mod privacy;
pub mod progress;
pub mod record;
pub mod rfm;
pub mod schedule;
pub mod score;
pub mod search;
pub mod transaction;

pub use change::{Operation, parse_transaction_id};
pub use column::Column;
pub use country::{CountryInfo, Region, lookup_country};
pub use error::{Classify, Error, ErrorKind, Result};
pub use line_type::LineType;
pub use record::{CleanTransaction, DateWindow, QuarantineReason, RawFields, cleanse};
pub use rfm::{ntile, segment};
pub use score::{ScoreInputs, quality_score};
pub use transaction::{raw_record_hash, transaction_id};
