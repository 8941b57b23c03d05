//! Fingerprints of slices of a table (a day of facts, a month of product sales), so a load
//! rewrites only the slices whose content changed since the previous load.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash as _, Hasher as _};

use deltalake::arrow::array::{Array, AsArray as _, RecordBatch, UInt32Array};
use deltalake::arrow::compute::take_record_batch;
use deltalake::arrow::datatypes::{DataType, Int32Type};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::row::{RowConverter, SortField};

/// The rows and order-independent content hash of one slice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SliceStat {
    /// Sum (wrapping) of the hashes of the slice's rows.
    pub(crate) fingerprint: i64,
    /// Rows in the slice.
    pub(crate) rows: i64,
}

/// The slice key of every row of a batch, as text (`20110105`, `2011-01`).
pub(crate) fn slice_keys(batch: &RecordBatch, column: &str) -> Result<Vec<String>, ArrowError> {
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| ArrowError::SchemaError(format!("no slice column {column}")))?;
    Ok(match array.data_type() {
        DataType::Int32 => array
            .as_primitive::<Int32Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()).unwrap_or_default())
            .collect(),
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or_default().to_owned())
            .collect(),
        other => {
            return Err(ArrowError::SchemaError(format!(
                "slice column {column} has unsupported type {other}"
            )));
        }
    })
}

/// Accumulates slice fingerprints over batches.
pub(crate) struct Fingerprints {
    converter: RowConverter,
    column: &'static str,
    pub(crate) slices: BTreeMap<String, SliceStat>,
}

impl Fingerprints {
    pub(crate) fn new(
        schema: &deltalake::arrow::datatypes::Schema,
        column: &'static str,
    ) -> Result<Self, ArrowError> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(Self {
            converter: RowConverter::new(fields)?,
            column,
            slices: BTreeMap::new(),
        })
    }

    pub(crate) fn add(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let keys = slice_keys(batch, self.column)?;
        let rows = self.converter.convert_columns(batch.columns())?;
        for (index, key) in keys.into_iter().enumerate() {
            let mut hasher = std::hash::DefaultHasher::new();
            rows.row(index).as_ref().hash(&mut hasher);
            let stat = self.slices.entry(key).or_default();
            stat.fingerprint = stat.fingerprint.wrapping_add(hasher.finish() as i64);
            stat.rows += 1;
        }
        Ok(())
    }
}

/// Splits a batch by slice: part `i` holds the rows whose slice maps to target `i`; rows of
/// slices not in `target_of` are left out.
pub(crate) fn route(
    batch: &RecordBatch,
    column: &str,
    target_of: &HashMap<&str, usize>,
    targets: usize,
) -> Result<Vec<Option<RecordBatch>>, ArrowError> {
    let keys = slice_keys(batch, column)?;
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); targets];
    for (row, key) in keys.iter().enumerate() {
        if let Some(target) = target_of.get(key.as_str()) {
            rows[*target].push(u32::try_from(row).expect("batches hold fewer than 4G rows"));
        }
    }
    rows.into_iter()
        .map(|indices| {
            if indices.is_empty() {
                Ok(None)
            } else {
                take_record_batch(batch, &UInt32Array::from(indices)).map(Some)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Int32Array, StringArray};
    use deltalake::arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(days: Vec<i32>, names: Vec<&str>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("date_key", DataType::Int32, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(days)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    fn fingerprints(batches: &[RecordBatch]) -> BTreeMap<String, SliceStat> {
        let mut prints = Fingerprints::new(&batches[0].schema(), "date_key").unwrap();
        for b in batches {
            prints.add(b).unwrap();
        }
        prints.slices
    }

    #[test]
    fn fingerprints_ignore_row_order_and_batching_but_see_every_change() {
        let a = fingerprints(&[batch(vec![1, 1, 2], vec!["x", "y", "z"])]);
        let b = fingerprints(&[batch(vec![2], vec!["z"]), batch(vec![1, 1], vec!["y", "x"])]);
        assert_eq!(a, b);
        let c = fingerprints(&[batch(vec![1, 1, 2], vec!["x", "Y", "z"])]);
        assert_ne!(a["1"], c["1"]);
        assert_eq!(a["2"], c["2"]);
        assert_eq!(a["1"].rows, 2);
    }
}
