//! Parquet exports of sales lines: one row group per page, streamed as it is written.

use std::sync::Arc;

use retail_lake::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use retail_lake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use retail_lake::parquet::arrow::ArrowWriter;
use retail_lake::parquet::basic::Compression;
use retail_lake::parquet::file::properties::WriterProperties;
use retail_warehouse::{Cell, QueryResult};

/// Money is exported as `Decimal128(18, 3)`, as the lake holds it.
const MONEY: DataType = DataType::Decimal128(18, 3);

/// The columns of `sales_lines`, typed as in the lake.
fn sales_lines_schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new(
            "invoice_date",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        text("transaction_id", false),
        text("invoice", false),
        text("stock_code", false),
        text("description", true),
        Field::new("quantity", DataType::Int64, false),
        Field::new("unit_price", MONEY, false),
        Field::new("total_amount", MONEY, false),
        text("customer_id", true),
        text("country_name", false),
        text("line_type", false),
        Field::new("is_return", DataType::Boolean, false),
        Field::new("is_cancellation", DataType::Boolean, false),
    ]))
}

/// Writes pages of `sales_lines` as one Parquet file, handing out the bytes as they are made.
pub(crate) struct ParquetExport {
    writer: ArrowWriter<Vec<u8>>,
    schema: SchemaRef,
}

impl ParquetExport {
    pub(crate) fn new() -> Result<Self, String> {
        let schema = sales_lines_schema();
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!(
                "retail-data-platform {}",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(properties))
            .map_err(|e| e.to_string())?;
        Ok(Self { writer, schema })
    }

    /// Writes one page as a row group and returns the bytes written so far.
    pub(crate) fn page(&mut self, page: &QueryResult) -> Result<Vec<u8>, String> {
        if !page.rows.is_empty() {
            let batch = self.batch(page)?;
            self.writer.write(&batch).map_err(|e| e.to_string())?;
            self.writer.flush().map_err(|e| e.to_string())?;
        }
        self.take()
    }

    /// Writes the footer and returns the last bytes.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, String> {
        self.writer.finish().map_err(|e| e.to_string())?;
        self.take()
    }

    fn take(&mut self) -> Result<Vec<u8>, String> {
        self.writer.sync().map_err(|e| e.to_string())?;
        // The writer counts bytes as they pass; draining what reached the buffer is safe.
        Ok(std::mem::take(self.writer.inner_mut()))
    }

    fn batch(&self, page: &QueryResult) -> Result<RecordBatch, String> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let index = page
                .columns
                .iter()
                .position(|c| c == field.name())
                .ok_or_else(|| format!("the page has no column {}", field.name()))?;
            let cells = page.rows.iter().map(|row| &row[index]);
            let mismatch = |cell: &Cell| format!("column {} holds {cell:?}", field.name());
            let column: ArrayRef = match field.data_type() {
                DataType::Utf8 => {
                    let mut builder = StringBuilder::new();
                    for cell in cells {
                        match cell {
                            Cell::Text(text) => builder.append_value(text),
                            Cell::Null => builder.append_null(),
                            other => return Err(mismatch(other)),
                        }
                    }
                    Arc::new(builder.finish())
                }
                DataType::Int64 => {
                    let mut builder = Int64Builder::new();
                    for cell in cells {
                        match cell {
                            Cell::Int(value) => builder.append_value(*value),
                            other => return Err(mismatch(other)),
                        }
                    }
                    Arc::new(builder.finish())
                }
                DataType::Boolean => {
                    let mut builder = BooleanBuilder::new();
                    for cell in cells {
                        match cell {
                            Cell::Bool(value) => builder.append_value(*value),
                            other => return Err(mismatch(other)),
                        }
                    }
                    Arc::new(builder.finish())
                }
                DataType::Decimal128(_, scale) => {
                    let mut builder = Decimal128Builder::new();
                    for cell in cells {
                        match cell {
                            Cell::Decimal(value) => {
                                let mut value = *value;
                                value.rescale(u32::from(scale.unsigned_abs()));
                                builder.append_value(value.mantissa());
                            }
                            Cell::Int(value) => {
                                builder.append_value(
                                    i128::from(*value)
                                        * 10_i128.pow(u32::from(scale.unsigned_abs())),
                                );
                            }
                            other => return Err(mismatch(other)),
                        }
                    }
                    Arc::new(builder.finish().with_data_type(field.data_type().clone()))
                }
                DataType::Timestamp(_, _) => {
                    let mut builder = TimestampMicrosecondBuilder::new();
                    for cell in cells {
                        match cell {
                            Cell::Timestamp(at) => {
                                builder.append_value(at.and_utc().timestamp_micros());
                            }
                            other => return Err(mismatch(other)),
                        }
                    }
                    Arc::new(builder.finish())
                }
                other => return Err(format!("unexpected export type {other}")),
            };
            columns.push(column);
        }
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| e.to_string())
    }
}
