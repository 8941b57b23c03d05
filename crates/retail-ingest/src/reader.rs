//! Readers of each file format into bronze rows. Every record that can be located in the source
//! becomes a bronze row: split into fields when possible, otherwise with its raw text and error.

use std::collections::BTreeMap;
use std::path::Path;

use calamine::{Data, Reader as _};
use deltalake::arrow::array::{Array, AsArray as _};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use retail_domain::column::Column;
use retail_domain::record::RawFields;

use crate::bronze::{BronzeBuilder, BronzeContext, BronzeRows};
use crate::error::{Error, Result};
use crate::source::Format;

/// Fewest recognised contract columns a header must have to be taken as retail transactions.
const MIN_KNOWN_COLUMNS: usize = 4;

/// How the columns of a source map onto the contract's columns.
#[derive(Debug)]
pub(crate) struct HeaderMap {
    /// For each source column, the contract column it holds, if any.
    known: Vec<Option<Column>>,
    /// Names of the source columns, for the extra columns kept as JSON.
    names: Vec<String>,
}

impl HeaderMap {
    pub(crate) fn new(path: &Path, headers: &[&str]) -> Result<Self> {
        let mut known = Vec::with_capacity(headers.len());
        let mut seen: Vec<Column> = Vec::new();
        for header in headers {
            let column = Column::from_header(header);
            if let Some(column) = column {
                if seen.contains(&column) {
                    return Err(Error::Header {
                        path: path.to_owned(),
                        reason: format!("column {} appears twice", column.name()),
                    });
                }
                seen.push(column);
            }
            known.push(column);
        }
        if seen.len() < MIN_KNOWN_COLUMNS {
            return Err(Error::Header {
                path: path.to_owned(),
                reason: format!(
                    "only {} of the 8 contract columns recognised in [{}]",
                    seen.len(),
                    headers.join(", ")
                ),
            });
        }
        let names = headers
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
            .collect();
        Ok(Self { known, names })
    }

    fn width(&self) -> usize {
        self.known.len()
    }

    /// Splits a record's values into the eight fields and a JSON object of the other columns.
    fn split<'v>(&self, values: &[Option<&'v str>]) -> (RawFields<'v>, Option<String>) {
        let mut raw = RawFields::default();
        let mut extra: Option<BTreeMap<&str, &str>> = None;
        for ((column, name), value) in self.known.iter().zip(&self.names).zip(values) {
            match column {
                Some(column) => {
                    let slot = match column {
                        Column::Invoice => &mut raw.invoice,
                        Column::StockCode => &mut raw.stock_code,
                        Column::Description => &mut raw.description,
                        Column::Quantity => &mut raw.quantity,
                        Column::InvoiceDate => &mut raw.invoice_date,
                        Column::UnitPrice => &mut raw.unit_price,
                        Column::CustomerId => &mut raw.customer_id,
                        Column::Country => &mut raw.country,
                    };
                    *slot = *value;
                }
                None => {
                    if let Some(value) = value {
                        extra.get_or_insert_with(BTreeMap::new).insert(name, value);
                    }
                }
            }
        }
        let extra = extra
            .map(|map| serde_json::to_string(&map).expect("a map of strings always serialises"));
        (raw, extra)
    }
}

/// Reads one file into bronze rows. Workbooks yield one [`BronzeRows`] per sheet, with the
/// sheet name appended to the context's source location.
///
/// # Errors
///
/// When the file cannot be read at all or its header is not retail transactions; rows that are
/// merely malformed are kept, never an error.
pub fn read_file(
    path: &Path,
    bytes: &[u8],
    context: &BronzeContext,
    batch_rows: usize,
) -> Result<Vec<(BronzeContext, BronzeRows)>> {
    let format = Format::of(path).ok_or_else(|| Error::UnsupportedFormat {
        path: path.to_owned(),
    })?;
    match format {
        Format::Csv => Ok(vec![(
            context.clone(),
            read_csv(path, bytes, context, batch_rows)?,
        )]),
        Format::JsonLines => Ok(vec![(
            context.clone(),
            read_json_lines(path, bytes, context, batch_rows)?,
        )]),
        Format::Parquet => Ok(vec![(
            context.clone(),
            read_parquet(path, bytes, context, batch_rows)?,
        )]),
        Format::Xlsx => read_xlsx(path, bytes, context, batch_rows),
    }
}

/// Reads CSV text. A record with the wrong number of fields or invalid UTF-8 is kept as
/// malformed with its exact source text.
pub fn read_csv(
    path: &Path,
    bytes: &[u8],
    context: &BronzeContext,
    batch_rows: usize,
) -> Result<BronzeRows> {
    let body = strip_bom(bytes);
    let (mut reader, header) = open_csv(path, body)?;
    let mut record = csv::ByteRecord::new();
    let mut builder = BronzeBuilder::new(context, batch_rows);
    let mut source_row: i64 = 0;
    loop {
        let start = reader.position().byte() as usize;
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                // The csv reader only fails on IO or UTF-8 with StringRecord; ByteRecord reads
                // cannot fail on content, so this is an IO problem of an in-memory slice.
                return Err(Error::Decode {
                    path: path.to_owned(),
                    reason: error.to_string(),
                });
            }
        }
        source_row += 1;
        let end = reader.position().byte() as usize;
        let raw_text = || {
            let text = String::from_utf8_lossy(&body[start..end.min(body.len())]);
            text.trim_end_matches(['\r', '\n']).to_owned()
        };
        if record.len() != header.width() {
            if record.len() == 1 && record.get(0).is_some_and(<[u8]>::is_empty) {
                source_row -= 1; // a blank line is not a record
                continue;
            }
            let error = format!("expected {} fields, found {}", header.width(), record.len());
            builder.push_malformed(source_row, &raw_text(), &error)?;
            continue;
        }
        let mut values: Vec<Option<&str>> = Vec::with_capacity(header.width());
        let mut bad_field = None;
        for (index, field) in record.iter().enumerate() {
            match std::str::from_utf8(field) {
                Ok("") => values.push(None),
                Ok(text) => values.push(Some(text)),
                Err(_) => {
                    bad_field = Some(index);
                    break;
                }
            }
        }
        if let Some(index) = bad_field {
            let error = format!("invalid UTF-8 in column {}", header.names[index]);
            builder.push_malformed(source_row, &raw_text(), &error)?;
            continue;
        }
        let (raw, extra) = header.split(&values);
        builder.push(source_row, &raw, extra.as_deref())?;
    }
    builder.finish()
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes)
}

/// Opens CSV text (without its BOM) and maps its header; the reader is left at the first record.
fn open_csv<'b>(path: &Path, body: &'b [u8]) -> Result<(csv::Reader<&'b [u8]>, HeaderMap)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut record = csv::ByteRecord::new();
    let has_header = reader
        .read_byte_record(&mut record)
        .map_err(|error| Error::Decode {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
    if !has_header {
        return Err(Error::Header {
            path: path.to_owned(),
            reason: "the file is empty".to_owned(),
        });
    }
    let header_text: Vec<String> = record
        .iter()
        .map(|field| String::from_utf8_lossy(field).into_owned())
        .collect();
    let header_refs: Vec<&str> = header_text.iter().map(String::as_str).collect();
    Ok((reader, HeaderMap::new(path, &header_refs)?))
}

/// Reads JSON lines: each non-blank line one object whose keys are column headers. A line that
/// is not a JSON object is kept as malformed.
pub fn read_json_lines(
    path: &Path,
    bytes: &[u8],
    context: &BronzeContext,
    batch_rows: usize,
) -> Result<BronzeRows> {
    let body = strip_bom(bytes);
    let mut builder = BronzeBuilder::new(context, batch_rows);
    let mut header: Option<(Vec<String>, HeaderMap)> = None;
    let mut source_row: i64 = 0;
    for line in body.split(|byte| *byte == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        source_row += 1;
        let parsed = std::str::from_utf8(line)
            .map_err(|error| format!("invalid UTF-8: {error}"))
            .and_then(|text| {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
                    .map_err(|error| format!("not a JSON object: {error}"))
            });
        let object = match parsed {
            Ok(object) => object,
            Err(error) => {
                builder.push_malformed(source_row, &String::from_utf8_lossy(line), &error)?;
                continue;
            }
        };
        let keys: Vec<String> = object.keys().cloned().collect();
        if header.as_ref().is_none_or(|(known, _)| *known != keys) {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let map = HeaderMap::new(path, &refs)?;
            header = Some((keys, map));
        }
        let (_, map) = header.as_ref().expect("set just above");
        let texts: Vec<Option<String>> = object.values().map(json_text).collect();
        let values: Vec<Option<&str>> = texts.iter().map(Option::as_deref).collect();
        let (raw, extra) = map.split(&values);
        builder.push(source_row, &raw, extra.as_deref())?;
    }
    builder.finish()
}

fn json_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) if text.is_empty() => None,
        serde_json::Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// Reads a Parquet file; every column is taken as text (dates as ISO `YYYY-MM-DDTHH:MM:SS`).
pub fn read_parquet(
    path: &Path,
    bytes: &[u8],
    context: &BronzeContext,
    batch_rows: usize,
) -> Result<BronzeRows> {
    let decode = |reason: String| Error::Decode {
        path: path.to_owned(),
        reason,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .map_err(|error| decode(error.to_string()))?
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(|error| decode(error.to_string()))?;
    let mut builder = BronzeBuilder::new(context, batch_rows);
    let mut header: Option<HeaderMap> = None;
    let mut source_row: i64 = 0;
    for batch in reader {
        let batch = batch.map_err(|error| decode(error.to_string()))?;
        if header.is_none() {
            let schema = batch.schema();
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            header = Some(HeaderMap::new(path, &names)?);
        }
        let map = header.as_ref().expect("set just above");
        let columns = batch
            .columns()
            .iter()
            .map(|column| cast(column, &DataType::Utf8).map_err(|error| decode(error.to_string())))
            .collect::<Result<Vec<_>>>()?;
        let columns: Vec<_> = columns
            .iter()
            .map(|column| column.as_string::<i32>())
            .collect();
        let mut values: Vec<Option<&str>> = Vec::with_capacity(columns.len());
        for row in 0..batch.num_rows() {
            source_row += 1;
            values.clear();
            values.extend(columns.iter().map(|column| {
                (!column.is_null(row))
                    .then(|| column.value(row))
                    .filter(|text| !text.is_empty())
            }));
            let (raw, extra) = map.split(&values);
            builder.push(source_row, &raw, extra.as_deref())?;
        }
    }
    builder.finish()
}

/// Reads every sheet of a workbook; a sheet whose first row is not a retail header is an error.
pub fn read_xlsx(
    path: &Path,
    bytes: &[u8],
    context: &BronzeContext,
    batch_rows: usize,
) -> Result<Vec<(BronzeContext, BronzeRows)>> {
    let decode = |reason: String| Error::Decode {
        path: path.to_owned(),
        reason,
    };
    let mut workbook = calamine::Xlsx::new(std::io::Cursor::new(bytes))
        .map_err(|error| decode(error.to_string()))?;
    let mut sheets = Vec::new();
    for sheet in workbook.sheet_names() {
        let range = workbook
            .worksheet_range(&sheet)
            .map_err(|error| decode(error.to_string()))?;
        let mut rows = range.rows();
        let Some(first) = rows.next() else {
            continue; // an empty sheet holds no records
        };
        let header_text: Vec<String> = first
            .iter()
            .map(|cell| cell_text(cell).unwrap_or_default())
            .collect();
        let header_refs: Vec<&str> = header_text.iter().map(String::as_str).collect();
        let map = HeaderMap::new(path, &header_refs)?;
        let sheet_context = BronzeContext {
            batch_id: format!("{}#{sheet}", context.batch_id),
            source_location: format!("{}#{sheet}", context.source_location),
            ..context.clone()
        };
        let mut builder = BronzeBuilder::new(&sheet_context, batch_rows);
        let mut source_row: i64 = 0;
        for row in rows {
            source_row += 1;
            if row.iter().all(|cell| matches!(cell, Data::Empty)) {
                continue;
            }
            if let Some(error) = row.iter().find_map(|cell| match cell {
                Data::Error(error) => Some(error.to_string()),
                _ => None,
            }) {
                let raw: Vec<String> = row
                    .iter()
                    .map(|c| cell_text(c).unwrap_or_default())
                    .collect();
                builder.push_malformed(
                    source_row,
                    &raw.join(","),
                    &format!("cell error {error}"),
                )?;
                continue;
            }
            let texts: Vec<Option<String>> = row.iter().map(cell_text).collect();
            let values: Vec<Option<&str>> = texts.iter().map(Option::as_deref).collect();
            let (raw, extra) = map.split(&values);
            builder.push(source_row, &raw, extra.as_deref())?;
        }
        sheets.push((sheet_context.clone(), builder.finish()?));
    }
    Ok(sheets)
}

fn cell_text(cell: &Data) -> Option<String> {
    match cell {
        Data::Empty => None,
        Data::String(text) if text.is_empty() => None,
        Data::String(text) => Some(text.clone()),
        Data::Int(value) => Some(value.to_string()),
        Data::Float(value) => Some(value.to_string()),
        Data::Bool(value) => Some(value.to_string()),
        Data::DateTime(value) => Some(match value.as_datetime() {
            Some(datetime) => datetime.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => value.as_f64().to_string(),
        }),
        Data::DateTimeIso(text) | Data::DurationIso(text) => Some(text.clone()),
        Data::Error(error) => Some(error.to_string()),
    }
}

/// Checks that a file can be decoded and has a retail transaction header, without keeping its
/// rows: run over every input before any is written, so that one bad file changes nothing.
///
/// # Errors
///
/// As [`read_file`] for a bad header or an undecodable file.
pub fn check_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let format = Format::of(path).ok_or_else(|| Error::UnsupportedFormat {
        path: path.to_owned(),
    })?;
    let body = strip_bom(bytes);
    match format {
        Format::Csv => open_csv(path, body).map(|_| ()),
        Format::JsonLines => {
            let first_object = body
                .split(|byte| *byte == b'\n')
                .filter_map(|line| std::str::from_utf8(line).ok())
                .find_map(|line| {
                    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line).ok()
                });
            match first_object {
                Some(object) => {
                    HeaderMap::new(path, &object.keys().map(String::as_str).collect::<Vec<_>>())
                        .map(|_| ())
                }
                None => Err(Error::Header {
                    path: path.to_owned(),
                    reason: "no line is a JSON object".to_owned(),
                }),
            }
        }
        Format::Parquet => {
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
                    .map_err(|error| Error::Decode {
                        path: path.to_owned(),
                        reason: error.to_string(),
                    })?;
            let names: Vec<&str> = builder
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            HeaderMap::new(path, &names).map(|_| ())
        }
        Format::Xlsx => {
            let context = BronzeContext {
                ingestion_id: String::new(),
                batch_id: String::new(),
                source_system: String::new(),
                source_location: String::new(),
                ingested_at: chrono::DateTime::UNIX_EPOCH,
            };
            read_xlsx(path, bytes, &context, usize::MAX).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::DateTime;
    use deltalake::arrow::array::{RecordBatch, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use deltalake::parquet::arrow::ArrowWriter;

    use super::*;

    fn context() -> BronzeContext {
        BronzeContext {
            ingestion_id: "ingestion".into(),
            batch_id: "batch".into(),
            source_system: "file".into(),
            source_location: "test".into(),
            ingested_at: DateTime::from_timestamp(1_700_000_000, 0).expect("valid"),
        }
    }

    /// One text column of every batch.
    fn column(rows: &BronzeRows, name: &str) -> Vec<Option<String>> {
        rows.batches
            .iter()
            .flat_map(|batch| {
                let array = batch
                    .column_by_name(name)
                    .expect("bronze column")
                    .as_string::<i32>();
                (0..array.len())
                    .map(|i| (!array.is_null(i)).then(|| array.value(i).to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn source_rows(rows: &BronzeRows) -> Vec<i64> {
        rows.batches
            .iter()
            .flat_map(|b| {
                b.column_by_name("source_row")
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    fn some(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| Some((*v).to_owned())).collect()
    }

    #[test]
    fn reads_csv_with_bom_online_retail_ii_header_crlf_and_us_dates() {
        let bytes = include_bytes!("../testdata/or2_header_bom_us_dates.csv");
        let rows = read_csv(Path::new("or2.csv"), bytes, &context(), 100).unwrap();
        assert_eq!((rows.rows, rows.malformed), (2, 0));
        assert_eq!(column(&rows, "invoice"), some(&["536365", "536366"]));
        assert_eq!(
            column(&rows, "invoice_date"),
            some(&["12/1/2010 08:26", "12/1/2010 8:28"])
        );
        assert_eq!(column(&rows, "unit_price"), some(&["2.55", "1.85"]));
        assert_eq!(
            column(&rows, "customer_id"),
            vec![Some("17850".to_owned()), None]
        );
        assert_eq!(
            column(&rows, "description")[1].as_deref(),
            Some("HAND WARMER UNION JACK, RED")
        );
        assert_eq!(column(&rows, "country"), some(&["United Kingdom", "EIRE"]));
        assert_eq!(source_rows(&rows), [1, 2]);
        assert_eq!(column(&rows, "raw_text"), [None, None]);
    }

    #[test]
    fn keeps_malformed_csv_records_with_their_exact_text_and_error() {
        let bytes = include_bytes!("../testdata/malformed.csv");
        let rows = read_csv(Path::new("bad.csv"), bytes, &context(), 2).unwrap();
        assert_eq!((rows.rows, rows.malformed), (4, 2));
        assert_eq!(rows.batches.len(), 2, "cut into batches of two rows");
        assert_eq!(
            source_rows(&rows),
            [1, 2, 3, 4],
            "the blank line is not a record"
        );
        let raw_text = column(&rows, "raw_text");
        assert_eq!(
            raw_text[1].as_deref(),
            Some("536365,71053,TOO FEW FIELDS,6")
        );
        assert!(
            raw_text[2]
                .as_deref()
                .unwrap()
                .contains("BAD \u{fffd} ENCODING")
        );
        let errors = column(&rows, "parse_error");
        assert_eq!(errors[1].as_deref(), Some("expected 8 fields, found 4"));
        assert_eq!(
            errors[2].as_deref(),
            Some("invalid UTF-8 in column Description")
        );
        assert_eq!(
            column(&rows, "invoice")[1],
            None,
            "a malformed record has no fields"
        );
        assert_eq!(
            column(&rows, "description")[3].as_deref(),
            Some("QUOTED, COMMA")
        );
    }

    #[test]
    fn reads_json_lines_with_either_header_style_and_keeps_bad_lines_and_extra_fields() {
        let bytes = include_bytes!("../testdata/sample.jsonl");
        let rows = read_json_lines(Path::new("s.jsonl"), bytes, &context(), 100).unwrap();
        assert_eq!((rows.rows, rows.malformed), (3, 1));
        assert_eq!(
            column(&rows, "invoice"),
            vec![Some("536365".to_owned()), None, Some("536366".to_owned())]
        );
        assert_eq!(
            column(&rows, "quantity")[0].as_deref(),
            Some("6"),
            "numbers become text"
        );
        assert_eq!(column(&rows, "unit_price")[0].as_deref(), Some("2.55"));
        assert_eq!(
            column(&rows, "extra_columns")[0].as_deref(),
            Some(r#"{"email":"a@b.co"}"#)
        );
        assert_eq!(column(&rows, "description")[2], None, "null stays null");
        assert_eq!(column(&rows, "customer_id")[2], None, "empty is absent");
        assert!(
            column(&rows, "parse_error")[1]
                .as_deref()
                .unwrap()
                .starts_with("not a JSON object")
        );
    }

    #[test]
    fn reads_every_sheet_of_a_workbook_with_dates_and_extra_columns() {
        let bytes = include_bytes!("../testdata/two_sheets.xlsx");
        let sheets = read_xlsx(Path::new("w.xlsx"), bytes, &context(), 100).unwrap();
        assert_eq!(sheets.len(), 2);
        let (first_context, first) = &sheets[0];
        assert_eq!(first_context.source_location, "test#Year 2009-2010");
        assert_eq!(first.rows, 3, "the empty row is skipped");
        assert_eq!(
            column(first, "invoice_date")[0].as_deref(),
            Some("2009-12-01 07:45:00")
        );
        assert_eq!(column(first, "customer_id")[0].as_deref(), Some("13085"));
        assert_eq!(column(first, "quantity")[2].as_deref(), Some("-12"));
        assert_eq!(
            source_rows(first),
            [1, 2, 4],
            "row numbers count the skipped row"
        );
        let (_, second) = &sheets[1];
        assert_eq!(
            column(second, "extra_columns")[0].as_deref(),
            Some(r#"{"Email":"buyer@example.com"}"#)
        );
        assert_eq!(column(second, "unit_price")[0].as_deref(), Some("2.55"));
    }

    #[test]
    fn reads_parquet_columns_of_any_type_as_text() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("InvoiceNo", DataType::Utf8, false),
            Field::new("StockCode", DataType::Utf8, false),
            Field::new("Quantity", DataType::Int64, false),
            Field::new("UnitPrice", DataType::Float64, false),
            Field::new("Country", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec!["536365", "536366"])),
                Arc::new(StringArray::from(vec!["85123A", "22633"])),
                Arc::new(deltalake::arrow::array::Int64Array::from(vec![6, -2])),
                Arc::new(deltalake::arrow::array::Float64Array::from(vec![
                    2.55, 1.85,
                ])),
                Arc::new(StringArray::from(vec![Some("United Kingdom"), None])),
            ],
        )
        .unwrap();
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let rows = read_parquet(Path::new("p.parquet"), &bytes, &context(), 100).unwrap();
        assert_eq!(rows.rows, 2);
        assert_eq!(column(&rows, "quantity"), some(&["6", "-2"]));
        assert_eq!(column(&rows, "unit_price"), some(&["2.55", "1.85"]));
        assert_eq!(
            column(&rows, "country"),
            vec![Some("United Kingdom".to_owned()), None]
        );
        assert_eq!(
            column(&rows, "invoice_date"),
            [None, None],
            "an absent column is null"
        );
        check_file(Path::new("p.parquet"), &bytes).unwrap();
    }

    #[test]
    fn rejects_files_that_are_not_retail_transactions_naming_the_problem() {
        let path = Path::new("other.csv");
        let error = read_csv(path, b"a,b,c\n1,2,3\n", &context(), 10).unwrap_err();
        assert!(error.to_string().contains("other.csv"), "{error}");
        assert!(matches!(error, Error::Header { .. }));
        assert!(matches!(check_file(path, b""), Err(Error::Header { .. })));
        let twice = b"Invoice,InvoiceNo,StockCode,Quantity,Country\n";
        let error = check_file(path, twice).unwrap_err();
        assert!(
            error.to_string().contains("column invoice appears twice"),
            "{error}"
        );
        assert!(matches!(
            check_file(Path::new("x.parquet"), b"nope"),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            check_file(Path::new("x.jsonl"), b"[1]\n"),
            Err(Error::Header { .. })
        ));
        assert!(matches!(
            check_file(Path::new("x.txt"), b""),
            Err(Error::UnsupportedFormat { .. })
        ));
    }
}
