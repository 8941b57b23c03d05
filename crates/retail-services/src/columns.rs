//! Typed access to the cells of lake tables the services read, with the column named in
//! every error (never a panic on a table of another shape).

use chrono::{DateTime, NaiveDate, Utc};
use retail_lake::arrow::array::{Array as _, AsArray as _, RecordBatch};
use retail_lake::arrow::datatypes::{
    ArrowPrimitiveType, Date32Type, Float64Type, Int64Type, TimestampMicrosecondType,
};

use crate::models::Estimate;
use crate::{Error, Result};

/// A lake table that is not as the registry says: an internal error.
pub(crate) fn bad(message: String) -> Error {
    Error::new(retail_domain::error::ErrorKind::Internal, message)
}

/// Typed access to a batch's cells, with the column named in errors (never a panic on a
/// table of another shape).
pub(crate) struct Columns<'a>(pub(crate) &'a RecordBatch);

impl Columns<'_> {
    pub(crate) fn column(&self, name: &str) -> Result<&dyn retail_lake::arrow::array::Array> {
        self.0
            .column_by_name(name)
            .map(|c| c.as_ref())
            .ok_or_else(|| bad(format!("table without column {name}")))
    }

    pub(crate) fn wrong_type(name: &str) -> Error {
        bad(format!("column {name} of a table has another type"))
    }

    pub(crate) fn null_in(name: &str) -> Error {
        bad(format!("null in column {name} of a table"))
    }

    pub(crate) fn json(&self, name: &str, row: usize) -> Result<serde_json::Value> {
        serde_json::from_str(&self.text(name, row)?)
            .map_err(|error| bad(format!("column {name} of a table: {error}")))
    }

    /// A prediction and its interval: columns `name`, `name_lower`, `name_upper`.
    pub(crate) fn estimate(&self, name: &str, row: usize) -> Result<Estimate> {
        Ok(Estimate {
            value: self.float(name, row)?,
            lower: self.float(&format!("{name}_lower"), row)?,
            upper: self.float(&format!("{name}_upper"), row)?,
        })
    }

    pub(crate) fn text(&self, name: &str, row: usize) -> Result<String> {
        self.text_opt(name, row)?.ok_or_else(|| Self::null_in(name))
    }

    pub(crate) fn text_opt(&self, name: &str, row: usize) -> Result<Option<String>> {
        let column = self
            .column(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| Self::wrong_type(name))?;
        Ok(column.is_valid(row).then(|| column.value(row).to_owned()))
    }

    /// The non-null value of a primitive column.
    pub(crate) fn primitive<T: ArrowPrimitiveType>(
        &self,
        name: &str,
        row: usize,
    ) -> Result<T::Native> {
        let column = self
            .column(name)?
            .as_primitive_opt::<T>()
            .ok_or_else(|| Self::wrong_type(name))?;
        column
            .is_valid(row)
            .then(|| column.value(row))
            .ok_or_else(|| Self::null_in(name))
    }

    pub(crate) fn int(&self, name: &str, row: usize) -> Result<i64> {
        self.primitive::<Int64Type>(name, row)
    }

    pub(crate) fn float(&self, name: &str, row: usize) -> Result<f64> {
        self.primitive::<Float64Type>(name, row)
    }

    pub(crate) fn bool(&self, name: &str, row: usize) -> Result<bool> {
        let column = self
            .column(name)?
            .as_boolean_opt()
            .ok_or_else(|| Self::wrong_type(name))?;
        column
            .is_valid(row)
            .then(|| column.value(row))
            .ok_or_else(|| Self::null_in(name))
    }

    pub(crate) fn date(&self, name: &str, row: usize) -> Result<NaiveDate> {
        Date32Type::to_naive_date_opt(self.primitive::<Date32Type>(name, row)?)
            .ok_or_else(|| bad(format!("{name}: not a date")))
    }

    pub(crate) fn timestamp(&self, name: &str, row: usize) -> Result<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.primitive::<TimestampMicrosecondType>(name, row)?)
            .ok_or_else(|| bad(format!("{name}: not a time")))
    }
}
