//! Raw records: what a decoder makes of a source, before the ingestion adds its lineage.
//!
//! A raw batch is an Arrow batch of [`raw_schema`]: the row's number in its source, a hash of
//! its eight business fields, the fields as text exactly as they arrived, the source's other
//! columns as JSON, and, for a record that could not be split into fields, its raw text and
//! the parse error. [`to_bronze`] adds the lineage columns (ingestion, batch, source, time) and
//! the change columns, making a batch of `bronze/retail_transactions` without copying the
//! record columns.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    Array as _, ArrayRef, AsArray as _, Int64Array, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use retail_domain::Operation;
use retail_domain::column::Column;
use retail_domain::record::RawFields;
use retail_domain::transaction::raw_record_hash;
use retail_lake::schema::BRONZE_TRANSACTIONS;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// The eight business fields of one record as text, in [`Column::ALL`] order; `None` is absent.
pub type Fields = [Option<String>; 8];

/// The schema of raw batches: the record columns of bronze, in bronze's order.
pub fn raw_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    Arc::clone(SCHEMA.get_or_init(|| {
        let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
        let mut fields = vec![
            Field::new("source_row", DataType::Int64, false),
            text("record_hash", false),
        ];
        fields.extend(Column::ALL.iter().map(|c| text(c.name(), true)));
        fields.push(text("extra_columns", true));
        fields.push(text("raw_text", true));
        fields.push(text("parse_error", true));
        Arc::new(Schema::new(fields))
    }))
}

/// Column index of `parse_error` in [`raw_schema`].
const PARSE_ERROR: usize = 12;
/// Column index of `raw_text` in [`raw_schema`].
const RAW_TEXT: usize = 11;
/// Column index of the first business field in [`raw_schema`].
const FIRST_FIELD: usize = 2;

/// The raw records of one source unit (a file, a sheet, a request body, a run of messages).
#[derive(Debug, Clone, Default)]
pub struct RawRows {
    /// Batches of [`raw_schema`], in source order.
    pub batches: Vec<RecordBatch>,
    /// Records in all.
    pub rows: u64,
    /// Records that could not be split into fields.
    pub malformed: u64,
}

impl RawRows {
    /// Records already split into the eight fields (an API call, a test), numbered from 1.
    ///
    /// # Errors
    ///
    /// Only on a bug (a batch that does not fit the raw schema).
    pub fn from_fields(records: &[Fields], batch_rows: usize) -> Result<Self> {
        let mut builder = RawRowsBuilder::new(batch_rows);
        for (index, fields) in records.iter().enumerate() {
            builder.push(index as i64 + 1, &raw_fields(fields), None)?;
        }
        builder.finish()
    }

    /// Each malformed record: its position among the records (from 0), raw text and error.
    pub fn malformed_records(&self) -> Vec<(usize, String, String)> {
        let mut found = Vec::new();
        let mut offset = 0;
        for batch in &self.batches {
            let errors = batch.column(PARSE_ERROR).as_string::<i32>();
            let texts = batch.column(RAW_TEXT).as_string::<i32>();
            for row in 0..batch.num_rows() {
                if !errors.is_null(row) {
                    found.push((
                        offset + row,
                        texts.value(row).to_owned(),
                        errors.value(row).to_owned(),
                    ));
                }
            }
            offset += batch.num_rows();
        }
        found
    }

    /// The eight fields of every record, in order (malformed records have none).
    pub fn fields(&self) -> Vec<Fields> {
        let mut records = Vec::with_capacity(self.rows as usize);
        for batch in &self.batches {
            let columns: Vec<_> = (0..8)
                .map(|i| batch.column(FIRST_FIELD + i).as_string::<i32>())
                .collect();
            for row in 0..batch.num_rows() {
                records.push(std::array::from_fn(|i| {
                    (!columns[i].is_null(row)).then(|| columns[i].value(row).to_owned())
                }));
            }
        }
        records
    }
}

/// Borrows owned fields as the domain's raw fields.
pub fn raw_fields(fields: &Fields) -> RawFields<'_> {
    RawFields::from_array(fields)
}

/// Accumulates raw records and cuts them into batches of a bounded size.
pub(crate) struct RawRowsBuilder {
    batch_rows: usize,
    source_row: Vec<i64>,
    record_hash: StringBuilder,
    business: [StringBuilder; 8],
    extra_columns: StringBuilder,
    raw_text: StringBuilder,
    parse_error: StringBuilder,
    output: RawRows,
}

impl RawRowsBuilder {
    pub(crate) fn new(batch_rows: usize) -> Self {
        Self {
            batch_rows: batch_rows.max(1),
            source_row: Vec::new(),
            record_hash: StringBuilder::new(),
            business: std::array::from_fn(|_| StringBuilder::new()),
            extra_columns: StringBuilder::new(),
            raw_text: StringBuilder::new(),
            parse_error: StringBuilder::new(),
            output: RawRows::default(),
        }
    }

    /// Adds a record that was split into fields.
    pub(crate) fn push(
        &mut self,
        source_row: i64,
        raw: &RawFields<'_>,
        extra_columns: Option<&str>,
    ) -> Result<()> {
        self.source_row.push(source_row);
        self.record_hash.append_value(raw_record_hash(raw));
        for (builder, value) in self.business.iter_mut().zip(raw.to_array()) {
            builder.append_option(value);
        }
        self.extra_columns.append_option(extra_columns);
        self.raw_text.append_null();
        self.parse_error.append_null();
        self.after_push()
    }

    /// Adds a record that could not be split into fields: its raw text and why.
    pub(crate) fn push_malformed(
        &mut self,
        source_row: i64,
        raw_text: &str,
        error: &str,
    ) -> Result<()> {
        self.source_row.push(source_row);
        self.record_hash
            .append_value(hex::encode(&Sha256::digest(raw_text.as_bytes())[..16]));
        for builder in &mut self.business {
            builder.append_null();
        }
        self.extra_columns.append_null();
        self.raw_text.append_value(raw_text);
        self.parse_error.append_value(error);
        self.output.malformed += 1;
        self.after_push()
    }

    fn after_push(&mut self) -> Result<()> {
        self.output.rows += 1;
        if self.source_row.len() >= self.batch_rows {
            self.cut()?;
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<()> {
        if self.source_row.is_empty() {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(std::mem::take(&mut self.source_row))),
            Arc::new(self.record_hash.finish()),
        ];
        columns.extend(
            self.business
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.extra_columns.finish()));
        columns.push(Arc::new(self.raw_text.finish()));
        columns.push(Arc::new(self.parse_error.finish()));
        let batch = RecordBatch::try_new(raw_schema(), columns).map_err(Error::Batch)?;
        self.output.batches.push(batch);
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<RawRows> {
        self.cut()?;
        Ok(self.output)
    }
}

/// Where a group of bronze rows came from; every row of the group carries it.
#[derive(Debug, Clone)]
pub struct Lineage {
    /// One id per ingestion (a `retail ingest` call, an API request, a stream interval).
    pub ingestion_id: String,
    /// One id per source unit within it (a file, a sheet, a request body).
    pub batch_id: String,
    /// `file`, `api`, `kafka`, `rabbitmq`, ...
    pub source_system: String,
    /// File path (with `#sheet` for workbooks), topic/partition/offset, or request.
    pub source_location: String,
    /// When the rows were ingested.
    pub ingested_at: DateTime<Utc>,
}

/// An update or delete of a transaction already in silver, carried by a bronze record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    /// [`Operation::Update`] or [`Operation::Delete`].
    pub operation: Operation,
    /// The `transaction_id` of the silver row to replace or remove (32 hex digits).
    pub target_transaction_id: String,
}

/// Makes a batch of `bronze/retail_transactions` from a raw batch: the lineage columns and the
/// change columns (null for inserts) around the record columns, which are shared, not copied.
///
/// # Errors
///
/// When `raw` is not a batch of [`raw_schema`].
pub fn to_bronze(
    raw: &RecordBatch,
    lineage: &Lineage,
    change: Option<&RecordChange>,
) -> Result<RecordBatch> {
    if raw.schema() != raw_schema() {
        return Err(Error::Batch(
            deltalake::arrow::error::ArrowError::SchemaError(
                "not a batch of raw records".to_owned(),
            ),
        ));
    }
    let rows = raw.num_rows();
    let repeat = |value: &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            value, rows,
        )))
    };
    let nulls = || -> ArrayRef { Arc::new(StringArray::new_null(rows)) };
    let mut columns: Vec<ArrayRef> = vec![
        repeat(&lineage.ingestion_id),
        repeat(&lineage.batch_id),
        repeat(&lineage.source_system),
        repeat(&lineage.source_location),
        Arc::clone(raw.column(0)),
        Arc::new(
            TimestampMicrosecondArray::from(vec![lineage.ingested_at.timestamp_micros(); rows])
                .with_timezone("UTC"),
        ),
    ];
    columns.extend(raw.columns()[1..].iter().cloned());
    match change {
        Some(change) => {
            columns.push(repeat(change.operation.as_str()));
            columns.push(repeat(&change.target_transaction_id));
        }
        None => {
            columns.push(nulls());
            columns.push(nulls());
        }
    }
    RecordBatch::try_new(BRONZE_TRANSACTIONS.arrow_schema(), columns).map_err(Error::Batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_batches_at_the_size_bound_and_keeps_malformed_rows() {
        let mut builder = RawRowsBuilder::new(2);
        let raw = RawFields {
            invoice: Some("536365"),
            ..RawFields::default()
        };
        builder.push(1, &raw, None).unwrap();
        builder
            .push(2, &raw, Some("{\"email\":\"a@b.c\"}"))
            .unwrap();
        builder
            .push_malformed(3, "x,y", "expected 8 fields, found 2")
            .unwrap();
        let rows = builder.finish().unwrap();
        assert_eq!((rows.rows, rows.malformed), (3, 1));
        assert_eq!(
            rows.batches
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(
            rows.malformed_records(),
            [(2, "x,y".to_owned(), "expected 8 fields, found 2".to_owned())]
        );
        assert_eq!(rows.fields()[0][0].as_deref(), Some("536365"));
    }

    #[test]
    fn bronze_batches_carry_the_lineage_and_the_change() {
        let records: Vec<Fields> = vec![std::array::from_fn(|i| Some(format!("v{i}")))];
        let raw = RawRows::from_fields(&records, 10).unwrap();
        let lineage = Lineage {
            ingestion_id: "ing".into(),
            batch_id: "batch".into(),
            source_system: "api".into(),
            source_location: "POST /x".into(),
            ingested_at: DateTime::from_timestamp(1_700_000_000, 0).expect("valid"),
        };
        let change = RecordChange {
            operation: Operation::Delete,
            target_transaction_id: "0".repeat(32),
        };
        let bronze = to_bronze(&raw.batches[0], &lineage, Some(&change)).unwrap();
        assert_eq!(bronze.schema(), BRONZE_TRANSACTIONS.arrow_schema());
        let text = |name: &str| {
            bronze
                .column_by_name(name)
                .unwrap()
                .as_string::<i32>()
                .value(0)
                .to_owned()
        };
        assert_eq!(text("ingestion_id"), "ing");
        assert_eq!(text("source_location"), "POST /x");
        assert_eq!(text("invoice"), "v0");
        assert_eq!(text("country"), "v7");
        assert_eq!(text("operation"), "delete");
        assert_eq!(
            text("record_hash"),
            raw_record_hash(&raw_fields(&records[0]))
        );
        let plain = to_bronze(&raw.batches[0], &lineage, None).unwrap();
        assert!(plain.column_by_name("operation").unwrap().is_null(0));
    }
}
