//! Streamed exports of sales lines (CSV, JSON lines, Parquet), page by page through the
//! catalogue's `sales_lines` query, so an export of any size is never whole in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;

use retail_lake::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use retail_lake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use retail_lake::parquet::arrow::ArrowWriter;
use retail_lake::parquet::basic::Compression;
use retail_lake::parquet::file::properties::WriterProperties;
use retail_warehouse::{Catalogue, Cell, Params, QueryResult, ResultStream, Warehouse};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// Rows as CSV (a header line first when `header`), text cells a spreadsheet would run as a
/// formula neutralised.
pub fn csv_page(page: &QueryResult, header: bool) -> Vec<u8> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    if header {
        let _ = writer.write_record(&page.columns);
    }
    for row in &page.rows {
        let _ = writer.write_record(row.iter().map(|cell| match cell {
            Cell::Text(text) => neutralise_formula(text),
            other => other.to_string(),
        }));
    }
    writer.into_inner().unwrap_or_default()
}

/// A text cell a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab
/// or a carriage return) gets a leading `'`, which spreadsheets show as text. Numbers are not
/// text cells, so a negative quantity stays a number.
fn neutralise_formula(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// How much one export may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportLimits {
    /// Most lines one export may hold (`api.export_max_rows`); a larger selection is refused
    /// before anything is sent.
    pub max_rows: u64,
    /// Longest one export may stream (`api.export_timeout_seconds`); then it is cut short.
    pub deadline: Duration,
    /// Exports one caller may run at once (`api.exports_per_user`).
    pub per_user: usize,
    /// Exports that may run at once in all (`api.exports_in_all`).
    pub in_all: usize,
}

impl Default for ExportLimits {
    fn default() -> Self {
        Self {
            max_rows: 1_000_000,
            deadline: Duration::from_secs(600),
            per_user: 2,
            in_all: 4,
        }
    }
}

/// The exports running now, per caller and in all.
#[derive(Debug)]
pub(crate) struct ExportSlots {
    limits: ExportLimits,
    in_all: Arc<Semaphore>,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
}

/// A running export's place; freed when the export's stream ends or is dropped.
#[derive(Debug)]
pub(crate) struct ExportSlot {
    _in_all: OwnedSemaphorePermit,
    user: String,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut running = self
            .per_user
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = running.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.user);
            }
        }
    }
}

impl ExportSlots {
    pub(crate) fn new(limits: ExportLimits) -> Self {
        Self {
            limits,
            in_all: Arc::new(Semaphore::new(limits.in_all.max(1))),
            per_user: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub(crate) fn limits(&self) -> ExportLimits {
        self.limits
    }

    /// A place for an export of `user`; `429` when they, or everybody, run as many as allowed.
    pub(crate) fn take(&self, user: &str) -> Result<ExportSlot> {
        let busy = || {
            Error::new(
                retail_domain::error::ErrorKind::RateLimited,
                format!(
                    "too many exports at once ({} per caller, {} in all): retry when one has \
                     finished",
                    self.limits.per_user, self.limits.in_all
                ),
            )
            .with_retry_after(5)
        };
        let mut running = self
            .per_user
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = running.get(user).copied().unwrap_or(0);
        if mine >= self.limits.per_user.max(1) {
            return Err(busy());
        }
        let permit = Arc::clone(&self.in_all)
            .try_acquire_owned()
            .map_err(|_| busy())?;
        running.insert(user.to_owned(), mine + 1);
        Ok(ExportSlot {
            _in_all: permit,
            user: user.to_owned(),
            per_user: Arc::clone(&self.per_user),
        })
    }
}

/// The export of the sales lines that `filters` select (the `sales_lines` filters, without
/// paging), oldest first, in one pass over one snapshot of the warehouse. The filters and the
/// size of the selection are checked now, so a bad filter or a selection over
/// `limits.max_rows` is an error and not a broken stream. `slot` is held until the stream
/// ends; the stream is cut short with an error after `limits.deadline`.
pub(crate) async fn export(
    warehouse: Arc<dyn Warehouse>,
    filters: Vec<(String, String)>,
    format: ExportFormat,
    customers: super::CustomerDetail,
    limits: ExportLimits,
    slot: ExportSlot,
) -> Result<Export> {
    for (name, _) in &filters {
        if ["order", "limit", "cursor"].contains(&name.as_str()) {
            return Err(Error::invalid(format!(
                "{name} is not a filter of an export (it always covers the whole selection)"
            )));
        }
    }
    let pairs = || filters.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let counted = Catalogue::get("sales_count")?;
    let count = warehouse
        .query(counted, &Params::parse(counted, pairs())?)
        .await?;
    let lines = match count.get(0, "lines") {
        Some(Cell::Int(lines)) => u64::try_from(*lines).unwrap_or(0),
        _ => 0,
    };
    if lines > limits.max_rows {
        return Err(Error::invalid(format!(
            "the selection holds {lines} lines, more than the {} one export may hold \
             (api.export_max_rows): narrow it with from and to, country, stock_code or \
             customer_id",
            limits.max_rows
        )));
    }
    let query = Catalogue::get("sales_export")?;
    let pages = warehouse
        .stream(query, &Params::parse(query, pairs())?)
        .await?;
    let parquet =
        match format {
            ExportFormat::Parquet => Some(ParquetExport::new().map_err(|message| {
                Error::new(retail_domain::error::ErrorKind::Internal, message)
            })?),
            _ => None,
        };
    let state = Streaming {
        pages,
        pending: QueryResult {
            columns: query.columns.iter().map(|c| c.name.to_owned()).collect(),
            rows: Vec::new(),
        },
        first: true,
        parquet,
        format,
        customers,
        deadline: tokio::time::Instant::now() + limits.deadline,
        done: false,
        _slot: slot,
    };
    let body = futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.next().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(state))),
            Ok(None) => None,
            Err(what) => {
                tracing::error!(what, "export stopped");
                Some((Err(std::io::Error::other("export failed")), None))
            }
        }
    });
    Ok(Export {
        content_type: format.content_type(),
        body: Box::pin(body),
    })
}

/// An export on its way: the warehouse's pages, regrouped into pages of [`EXPORT_PAGE`]
/// lines (one Parquet row group each) and encoded.
struct Streaming {
    pages: ResultStream,
    pending: QueryResult,
    first: bool,
    parquet: Option<ParquetExport>,
    format: ExportFormat,
    customers: super::CustomerDetail,
    deadline: tokio::time::Instant,
    done: bool,
    _slot: ExportSlot,
}

impl Streaming {
    /// The next bytes; `None` once the export is whole.
    async fn next(&mut self) -> std::result::Result<Option<Bytes>, String> {
        if self.done {
            return Ok(None);
        }
        loop {
            if self.pending.rows.len() >= EXPORT_PAGE {
                let rest = self.pending.rows.split_off(EXPORT_PAGE);
                let page = QueryResult {
                    columns: self.pending.columns.clone(),
                    rows: std::mem::replace(&mut self.pending.rows, rest),
                };
                return self.encode(page, false).map(Some);
            }
            match tokio::time::timeout_at(self.deadline, self.pages.next()).await {
                Err(_) => {
                    return Err("the export took longer than api.export_timeout_seconds".into());
                }
                Ok(Some(Err(error))) => return Err(error.to_string()),
                Ok(Some(Ok(page))) => {
                    if page.columns != self.pending.columns && !page.rows.is_empty() {
                        return Err(format!("unexpected columns {:?}", page.columns));
                    }
                    self.pending.rows.extend(page.rows);
                }
                Ok(None) => {
                    self.done = true;
                    let page = QueryResult {
                        columns: self.pending.columns.clone(),
                        rows: std::mem::take(&mut self.pending.rows),
                    };
                    return self.encode(page, true).map(Some);
                }
            }
        }
    }

    fn encode(&mut self, mut page: QueryResult, last: bool) -> std::result::Result<Bytes, String> {
        self.customers.apply(&mut page);
        let first = std::mem::replace(&mut self.first, false);
        let bytes = match self.format {
            ExportFormat::Csv => csv_page(&page, first),
            ExportFormat::Jsonl => jsonl(&page),
            ExportFormat::Parquet => {
                let mut writer = self
                    .parquet
                    .take()
                    .ok_or_else(|| "the parquet writer is gone".to_owned())?;
                let mut bytes = writer.page(&page)?;
                if last {
                    bytes.extend(writer.finish()?);
                } else {
                    self.parquet = Some(writer);
                }
                bytes
            }
        };
        Ok(Bytes::from(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cells_that_spreadsheets_would_run_get_a_quote_and_numbers_do_not() {
        let page = QueryResult {
            columns: vec!["description".to_owned(), "quantity".to_owned()],
            rows: vec![
                vec![
                    Cell::Text("=HYPERLINK(\"http://x\")".to_owned()),
                    Cell::Int(-3),
                ],
                vec![Cell::Text("@SUM(A1)".to_owned()), Cell::Int(2)],
                vec![Cell::Text("+1".to_owned()), Cell::Int(1)],
                vec![Cell::Text("-".to_owned()), Cell::Int(1)],
                vec![Cell::Text("HEART".to_owned()), Cell::Int(1)],
            ],
        };
        let text = String::from_utf8(csv_page(&page, true)).unwrap();
        assert_eq!(
            text,
            "description,quantity\n\"'=HYPERLINK(\"\"http://x\"\")\",-3\n'@SUM(A1),2\n'+1,1\n'-,1\nHEART,1\n"
        );
    }
}
