//! One decoder per format, over bytes: files and HTTP bodies (and, next, messages) are decoded
//! by the same code, so the same input gives the same raw records whichever way it arrives.
//!
//! Every record that can be located in the source becomes a raw record: split into the eight
//! fields when possible (other columns kept as JSON), otherwise kept with its raw text and the
//! reason. A source as a whole is refused only when it cannot be read at all or does not look
//! like retail transactions (see [`check`]): its header (CSV, workbook sheet, Parquet schema)
//! or its first JSON record must name at least four of the eight contract columns, none twice.

mod csv;
mod header;
mod json;
mod parquet;
mod xlsx;

use std::path::Path;

use crate::error::{Error, Result};
use crate::raw::RawRows;

/// A format the platform reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV, UTF-8, with or without BOM, LF or CRLF.
    Csv,
    /// One JSON object, or an array of objects.
    Json,
    /// One JSON object per line.
    JsonLines,
    /// An Excel workbook; every sheet is read.
    Xlsx,
    /// Apache Parquet; every column is read as text.
    Parquet,
}

impl Format {
    /// Every format.
    pub const ALL: [Self; 5] = [
        Self::Csv,
        Self::Json,
        Self::JsonLines,
        Self::Xlsx,
        Self::Parquet,
    ];

    /// The format of a file, from its extension.
    pub fn of_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            "jsonl" | "ndjson" => Some(Self::JsonLines),
            "xlsx" | "xlsm" => Some(Self::Xlsx),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// The format a `Content-Type` names (parameters such as `charset` are ignored).
    pub fn of_media_type(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/csv" => Some(Self::Csv),
            "application/json" => Some(Self::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(Self::JsonLines),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => Some(Self::Xlsx),
            "application/vnd.apache.parquet" | "application/x-parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// The media type of the format.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv",
            Self::Json => "application/json",
            Self::JsonLines => "application/x-ndjson",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The format's short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::JsonLines => "jsonl",
            Self::Xlsx => "xlsx",
            Self::Parquet => "parquet",
        }
    }
}

/// The raw records of one part of a source: the whole source, or one sheet of a workbook.
#[derive(Debug, Clone)]
pub struct Part {
    /// Appended to the source's location and batch id (`#<sheet>`); empty for the whole source.
    pub suffix: String,
    /// Its records.
    pub rows: RawRows,
}

/// For a JSON or JSON-lines source, each record (by index) that does not name all eight contract
/// columns, with the columns it lacks; empty for other formats. Files may lack columns (their
/// rows are quarantined); a request to the API must name every field, `null` for no value.
pub fn unnamed_columns(
    format: Format,
    bytes: &[u8],
) -> Vec<(usize, Vec<retail_domain::column::Column>)> {
    match format {
        Format::Json => json::unnamed_columns(bytes, false),
        Format::JsonLines => json::unnamed_columns(bytes, true),
        Format::Csv | Format::Xlsx | Format::Parquet => Vec::new(),
    }
}

/// Decodes messages of one JSON object each (stream events), `(position, payload)` in order;
/// see the JSON decoder's rules. Never fails on a bad message: it becomes a malformed record.
///
/// # Errors
///
/// When the records cannot be assembled into batches.
pub fn json_messages(messages: &[(i64, &[u8])], batch_rows: usize) -> Result<RawRows> {
    json::decode_messages(messages, batch_rows)
}

/// Decodes messages of one CSV line each (stream events without a header of their own),
/// `(position, payload)` in order, the fields named by `header` (any header variant; extra
/// names become extra columns, as a file's extra columns do). A message that is not one CSV
/// line of as many fields as the header becomes a malformed record with its payload.
///
/// # Errors
///
/// When the records cannot be assembled into batches.
pub fn csv_messages(
    messages: &[(i64, &[u8])],
    header: &[String],
    batch_rows: usize,
) -> Result<RawRows> {
    json::decode_csv_messages(messages, header, batch_rows)
}

/// The names of a CSV header line (for a stream's configured header).
///
/// # Errors
///
/// When it is not one CSV line, or names a field twice or no contract field at all.
pub fn csv_header(line: &str) -> std::result::Result<Vec<String>, String> {
    let names = json::csv_fields(line.as_bytes())?;
    let keys: Vec<&str> = names.iter().map(String::as_str).collect();
    header::HeaderMap::lenient(&keys)
        .map_err(|column| format!("the header names {} twice", column.name()))?;
    if !keys
        .iter()
        .any(|k| retail_domain::column::Column::from_header(k).is_some())
    {
        return Err(format!(
            "the header {line:?} names none of the fields (InvoiceNo, StockCode, ...)"
        ));
    }
    Ok(names)
}

/// Decodes a whole source. `source_name` (a path, `request body`) names it in errors.
///
/// # Errors
///
/// When the source cannot be read at all or does not look like retail transactions; records
/// that are merely malformed are kept, never an error.
pub fn decode(
    format: Format,
    source_name: &str,
    bytes: &[u8],
    batch_rows: usize,
) -> Result<Vec<Part>> {
    let whole = |rows| {
        vec![Part {
            suffix: String::new(),
            rows,
        }]
    };
    match format {
        Format::Csv => Ok(whole(csv::decode(source_name, bytes, batch_rows)?)),
        Format::Json => Ok(whole(json::decode_document(
            source_name,
            bytes,
            batch_rows,
        )?)),
        Format::JsonLines => Ok(whole(json::decode_lines(source_name, bytes, batch_rows)?)),
        Format::Parquet => Ok(whole(parquet::decode(source_name, bytes, batch_rows)?)),
        Format::Xlsx => xlsx::decode(source_name, bytes, batch_rows),
    }
}

/// Checks that a source can be decoded and looks like retail transactions, without keeping
/// its records: run over every input before any is written, so that one bad file changes
/// nothing.
///
/// # Errors
///
/// As [`decode`].
pub fn check(format: Format, source_name: &str, bytes: &[u8]) -> Result<()> {
    match format {
        Format::Csv => csv::check(source_name, bytes),
        Format::Json => json::check_document(source_name, bytes),
        Format::JsonLines => json::check_lines(source_name, bytes),
        Format::Parquet => parquet::check(source_name, bytes),
        Format::Xlsx => xlsx::decode(source_name, bytes, usize::MAX).map(|_| ()),
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes)
}

fn decode_error(source_name: &str, reason: impl std::fmt::Display) -> Error {
    Error::Decode {
        source_name: source_name.to_owned(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests;
