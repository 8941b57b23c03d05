//! Streamed exports of sales lines (CSV, JSON lines, Parquet), page by page through the
//! catalogue's `sales_lines` query, so an export of any size is never whole in memory.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;

use retail_lake::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use retail_lake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use retail_lake::parquet::arrow::ArrowWriter;
use retail_lake::parquet::basic::Compression;
use retail_lake::parquet::file::properties::WriterProperties;
use retail_warehouse::{Catalogue, Cell, Params, QueryResult, Warehouse};

use super::next_cursor;
use crate::error::{Error, Result};

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
struct ParquetExport {
    writer: ArrowWriter<Vec<u8>>,
    schema: SchemaRef,
}

impl ParquetExport {
    fn new() -> std::result::Result<Self, String> {
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
    fn page(&mut self, page: &QueryResult) -> std::result::Result<Vec<u8>, String> {
        if !page.rows.is_empty() {
            let batch = self.batch(page)?;
            self.writer.write(&batch).map_err(|e| e.to_string())?;
            self.writer.flush().map_err(|e| e.to_string())?;
        }
        self.take()
    }

    /// Writes the footer and returns the last bytes.
    fn finish(mut self) -> std::result::Result<Vec<u8>, String> {
        self.writer.finish().map_err(|e| e.to_string())?;
        self.take()
    }

    fn take(&mut self) -> std::result::Result<Vec<u8>, String> {
        self.writer.sync().map_err(|e| e.to_string())?;
        // The writer counts bytes as they pass; draining what reached the buffer is safe.
        Ok(std::mem::take(self.writer.inner_mut()))
    }

    fn batch(&self, page: &QueryResult) -> std::result::Result<RecordBatch, String> {
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

/// Rows per page while exporting (and per Parquet row group).
pub const EXPORT_PAGE: usize = 1000;

/// The formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// CSV with a header row; money as exact decimal text.
    Csv,
    /// One JSON object per line; money as exact decimal text.
    Jsonl,
    /// Apache Parquet, one row group per page; money as `decimal(18,3)`.
    Parquet,
}

impl ExportFormat {
    /// The format called `name`.
    ///
    /// # Errors
    ///
    /// For any other name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "csv" => Ok(Self::Csv),
            "jsonl" => Ok(Self::Jsonl),
            "parquet" => Ok(Self::Parquet),
            other => Err(Error::invalid(format!(
                "format {other:?} is not supported: csv, jsonl or parquet"
            ))),
        }
    }

    /// The media type of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Jsonl => "application/x-ndjson",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// An export: its media type and its bytes, as they are made.
pub struct Export {
    /// The media type.
    pub content_type: &'static str,
    /// The bytes; an error ends the stream early (the response is then cut short).
    pub body: BoxStream<'static, std::result::Result<Bytes, std::io::Error>>,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// Sales lines as JSON lines, money as exact decimal text.
fn jsonl(page: &QueryResult) -> Vec<u8> {
    let mut out = Vec::new();
    for row in &page.rows {
        let object: serde_json::Map<String, serde_json::Value> = page
            .columns
            .iter()
            .zip(row)
            .map(|(name, cell)| {
                let value = match cell {
                    Cell::Decimal(d) => serde_json::Value::String(d.normalize().to_string()),
                    other => serde_json::to_value(other).unwrap_or_default(),
                };
                (name.clone(), value)
            })
            .collect();
        out.extend(serde_json::to_vec(&object).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

fn csv_page(page: &QueryResult, header: bool) -> Vec<u8> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    if header {
        let _ = writer.write_record(&page.columns);
    }
    for row in &page.rows {
        let _ = writer.write_record(row.iter().map(ToString::to_string));
    }
    writer.into_inner().unwrap_or_default()
}

/// The export of the sales lines that `filters` select (the `sales_lines` filters, without
/// paging), oldest first. The filters are checked now, so a bad one is an error and not a
/// broken stream.
pub(crate) fn export(
    warehouse: Arc<dyn Warehouse>,
    filters: Vec<(String, String)>,
    format: ExportFormat,
) -> Result<Export> {
    for (name, _) in &filters {
        if ["order", "limit", "cursor"].contains(&name.as_str()) {
            return Err(Error::invalid(format!(
                "{name} is not a filter of an export (it always covers the whole selection)"
            )));
        }
    }
    let query = Catalogue::get("sales_lines")?;
    Params::parse(query, filters.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let parquet =
        match format {
            ExportFormat::Parquet => Some(ParquetExport::new().map_err(|message| {
                Error::new(retail_domain::error::ErrorKind::Internal, message)
            })?),
            _ => None,
        };
    let failed = |what: &str| {
        tracing::error!(what, "export stopped");
        std::io::Error::other("export failed")
    };
    let limit = EXPORT_PAGE.to_string();
    let body = futures::stream::unfold(
        (Some(None::<String>), true, parquet),
        move |(cursor, first, mut parquet)| {
            let warehouse = Arc::clone(&warehouse);
            let filters = filters.clone();
            let limit = limit.clone();
            async move {
                let cursor = cursor?;
                let mut pairs: Vec<(&str, &str)> = filters
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                pairs.push(("order", "asc"));
                pairs.push(("limit", &limit));
                if let Some(cursor) = &cursor {
                    pairs.push(("cursor", cursor));
                }
                let page = match Params::parse(query, pairs.iter().copied()) {
                    Ok(params) => warehouse.query(query, &params).await,
                    Err(error) => Err(error),
                };
                let page = match page {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::error!(%error, "export stopped");
                        return Some((Err(failed("query")), (None, false, None)));
                    }
                };
                let next = next_cursor(&page, EXPORT_PAGE);
                let bytes = match format {
                    ExportFormat::Csv => csv_page(&page, first),
                    ExportFormat::Jsonl => jsonl(&page),
                    ExportFormat::Parquet => {
                        let mut writer = parquet.take().expect("a parquet export has its writer");
                        let written = writer.page(&page).and_then(|mut bytes| {
                            if next.is_none() {
                                bytes.extend(writer.finish()?);
                            } else {
                                parquet = Some(writer);
                            }
                            Ok(bytes)
                        });
                        match written {
                            Ok(bytes) => bytes,
                            Err(message) => {
                                tracing::error!(%message, "parquet export failed");
                                return Some((Err(failed("parquet")), (None, false, None)));
                            }
                        }
                    }
                };
                Some((Ok(Bytes::from(bytes)), (next.map(Some), false, parquet)))
            }
        },
    );
    Ok(Export {
        content_type: format.content_type(),
        body: Box::pin(body),
    })
}
