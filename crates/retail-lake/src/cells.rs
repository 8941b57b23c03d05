//! The cells of the registry's tables as plain values, for the assets that compute on gold in
//! memory (the models, search and recommendations): a column by name (an error naming it when it
//! is absent), a money cell as a float, a date cell as a day.

use chrono::NaiveDate;
use deltalake::arrow::array::{ArrayRef, RecordBatch};
use deltalake::arrow::datatypes::Date32Type;
use deltalake::arrow::error::ArrowError;

/// The column `name` of `batch`; an error naming it when the batch has none.
///
/// # Errors
///
/// When the batch has no such column.
pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is missing")))
}

/// A [`MONEY`](crate::schema::MONEY) cell (thousandths) as a float.
pub fn money(thousandths: i128) -> f64 {
    thousandths as f64 / 1000.0
}

/// A `Date32` cell (days since 1970-01-01) as a day.
///
/// # Errors
///
/// When the day is out of chrono's range.
pub fn day(days: i32) -> Result<NaiveDate, ArrowError> {
    Date32Type::to_naive_date_opt(days)
        .ok_or_else(|| ArrowError::InvalidArgumentError(format!("date {days} out of range")))
}
