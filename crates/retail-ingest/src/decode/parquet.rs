//! Parquet: every column is read as text (dates as ISO `YYYY-MM-DDTHH:MM:SS`).

use deltalake::arrow::array::{Array as _, AsArray as _};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::decode_error;
use super::header::HeaderMap;
use crate::error::Result;
use crate::raw::{RawRows, RawRowsBuilder};

pub(super) fn decode(source_name: &str, bytes: &[u8], batch_rows: usize) -> Result<RawRows> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .map_err(|error| decode_error(source_name, error))?;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let header = HeaderMap::new(
        source_name,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let reader = builder
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(|error| decode_error(source_name, error))?;
    let mut rows = RawRowsBuilder::new(batch_rows);
    let mut source_row: i64 = 0;
    for batch in reader {
        let batch = batch.map_err(|error| decode_error(source_name, error))?;
        let columns = batch
            .columns()
            .iter()
            .map(|column| {
                cast(column, &DataType::Utf8).map_err(|error| decode_error(source_name, error))
            })
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
            let (raw, extra) = header.split(&values);
            rows.push(source_row, &raw, extra.as_deref())?;
        }
    }
    rows.finish()
}

pub(super) fn check(source_name: &str, bytes: &[u8]) -> Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .map_err(|error| decode_error(source_name, error))?;
    let names: Vec<&str> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    HeaderMap::new(source_name, &names).map(|_| ())
}
