//! Assembles bronze rows into Arrow batches of the `bronze/retail_transactions` schema.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::SchemaRef;
use retail_domain::Operation;
use retail_domain::record::RawFields;
use retail_domain::transaction::raw_record_hash;
use retail_lake::schema::BRONZE_TRANSACTIONS;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// Where a group of bronze rows came from; every row of the group carries it.
#[derive(Debug, Clone)]
pub struct BronzeContext {
    /// One id per ingestion request (a `retail ingest` call, an API request).
    pub ingestion_id: String,
    /// One id per source unit within it (a file, a sheet, a request body).
    pub batch_id: String,
    /// `file`, `api`, `kafka`, `rabbitmq`, ...
    pub source_system: String,
    /// File path (with `#sheet` for workbooks), topic/partition/offset, or request id.
    pub source_location: String,
    /// When the rows were ingested.
    pub ingested_at: DateTime<Utc>,
}

/// The rows of one source unit, as bronze batches.
#[derive(Debug, Default)]
pub struct BronzeRows {
    /// The batches, in source order.
    pub batches: Vec<RecordBatch>,
    /// Rows in all.
    pub rows: u64,
    /// Rows that could not be split into fields (kept with their raw text and error).
    pub malformed: u64,
}

/// Accumulates bronze rows and cuts them into batches of a bounded size.
pub(crate) struct BronzeBuilder<'a> {
    context: &'a BronzeContext,
    batch_rows: usize,
    schema: SchemaRef,
    source_row: Vec<i64>,
    record_hash: StringBuilder,
    business: [StringBuilder; 8],
    extra_columns: StringBuilder,
    raw_text: StringBuilder,
    parse_error: StringBuilder,
    operation: StringBuilder,
    target: StringBuilder,
    /// The change every record pushed makes (`None`: inserts).
    change: Option<&'a RecordChange>,
    output: BronzeRows,
}

/// An update or delete of a transaction already in silver, carried by a bronze record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    /// [`Operation::Update`] or [`Operation::Delete`].
    pub operation: Operation,
    /// The `transaction_id` of the silver row to replace or remove (32 hex digits).
    pub target_transaction_id: String,
}

impl<'a> BronzeBuilder<'a> {
    pub(crate) fn new(context: &'a BronzeContext, batch_rows: usize) -> Self {
        Self {
            context,
            batch_rows: batch_rows.max(1),
            schema: BRONZE_TRANSACTIONS.arrow_schema(),
            source_row: Vec::new(),
            record_hash: StringBuilder::new(),
            business: std::array::from_fn(|_| StringBuilder::new()),
            extra_columns: StringBuilder::new(),
            raw_text: StringBuilder::new(),
            parse_error: StringBuilder::new(),
            operation: StringBuilder::new(),
            target: StringBuilder::new(),
            change: None,
            output: BronzeRows::default(),
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
        match self.change {
            Some(change) => {
                self.operation.append_value(change.operation.as_str());
                self.target.append_value(&change.target_transaction_id);
            }
            None => {
                self.operation.append_null();
                self.target.append_null();
            }
        }
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
        self.operation.append_null();
        self.target.append_null();
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
        let rows = self.source_row.len();
        if rows == 0 {
            return Ok(());
        }
        let context = self.context;
        let repeat = |value: &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                value, rows,
            )))
        };
        let mut columns: Vec<ArrayRef> = vec![
            repeat(&context.ingestion_id),
            repeat(&context.batch_id),
            repeat(&context.source_system),
            repeat(&context.source_location),
            Arc::new(Int64Array::from(std::mem::take(&mut self.source_row))),
            Arc::new(
                TimestampMicrosecondArray::from(vec![context.ingested_at.timestamp_micros(); rows])
                    .with_timezone("UTC"),
            ),
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
        columns.push(Arc::new(self.operation.finish()));
        columns.push(Arc::new(self.target.finish()));
        let batch =
            RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(Error::Batch)?;
        self.output.batches.push(batch);
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<BronzeRows> {
        self.cut()?;
        Ok(self.output)
    }
}

/// Turns records that arrived already split into the eight business fields (an HTTP body, a
/// message) into bronze rows; row numbers count from 1 in the order given.
///
/// With `change`, every record is that update or delete (a delete's fields are all `None`).
///
/// # Errors
///
/// Only on a bug (a batch that does not fit the bronze schema).
pub fn records_to_bronze(
    records: &[[Option<String>; 8]],
    change: Option<&RecordChange>,
    context: &BronzeContext,
    batch_rows: usize,
) -> Result<BronzeRows> {
    let mut builder = BronzeBuilder::new(context, batch_rows);
    builder.change = change;
    for (index, fields) in records.iter().enumerate() {
        let [
            invoice,
            stock_code,
            description,
            quantity,
            invoice_date,
            unit_price,
            customer_id,
            country,
        ] = fields;
        let raw = RawFields {
            invoice: invoice.as_deref(),
            stock_code: stock_code.as_deref(),
            description: description.as_deref(),
            quantity: quantity.as_deref(),
            invoice_date: invoice_date.as_deref(),
            unit_price: unit_price.as_deref(),
            customer_id: customer_id.as_deref(),
            country: country.as_deref(),
        };
        builder.push(index as i64 + 1, &raw, None)?;
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> BronzeContext {
        BronzeContext {
            ingestion_id: "ing".into(),
            batch_id: "batch".into(),
            source_system: "file".into(),
            source_location: "a.csv".into(),
            ingested_at: DateTime::from_timestamp(1_700_000_000, 0).expect("valid"),
        }
    }

    #[test]
    fn cuts_batches_at_the_size_bound_and_keeps_malformed_rows() {
        let context = context();
        let mut builder = BronzeBuilder::new(&context, 2);
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
        assert_eq!(rows.rows, 3);
        assert_eq!(rows.malformed, 1);
        assert_eq!(
            rows.batches
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(rows.batches[0].schema(), BRONZE_TRANSACTIONS.arrow_schema());
    }
}
