//! What assets that process customers for a purpose do with the customers' consent (ADR
//! 0014): ask the register once per run, keep only the rows of customers it allows.

use std::sync::Arc;

use retail_domain::ports::ConsentRegister;
use retail_domain::privacy::{ConsentView, Purpose};
use retail_lake::arrow::array::{Array as _, AsArray as _, BooleanArray, RecordBatch};
use retail_lake::arrow::compute::filter_record_batch;
use retail_lake::arrow::error::ArrowError;

use crate::error::{Error, Result};

/// Who may be processed for `purpose` now: the register's view, or everyone when the platform
/// keeps no register (a library use without consent).
///
/// # Errors
///
/// [`Error::Consent`] when the register cannot be read.
pub async fn view(
    register: Option<&Arc<dyn ConsentRegister>>,
    purpose: Purpose,
) -> Result<ConsentView> {
    match register {
        Some(register) => register
            .view(purpose)
            .await
            .map_err(|source| Error::Consent { purpose, source }),
        None => Ok(ConsentView::everyone()),
    }
}

/// The rows of `batch` whose `customer_id` (a text column) names a customer `view` allows,
/// and how many rows were left out.
///
/// # Errors
///
/// When the batch has no text column `customer_id`.
pub fn keep_allowed(
    batch: &RecordBatch,
    view: &ConsentView,
) -> Result<(RecordBatch, usize), ArrowError> {
    let column = batch
        .column_by_name("customer_id")
        .ok_or_else(|| ArrowError::SchemaError("the batch has no customer_id column".to_owned()))?;
    let ids = column.as_string_opt::<i32>().ok_or_else(|| {
        ArrowError::SchemaError(format!("customer_id is {}, not text", column.data_type()))
    })?;
    let keep: BooleanArray = ids
        .iter()
        .map(|id| Some(id.is_none_or(|id| view.allows(id))))
        .collect();
    let left_out = keep.len() - keep.true_count();
    if left_out == 0 {
        return Ok((batch.clone(), 0));
    }
    Ok((filter_record_batch(batch, &keep)?, left_out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use retail_lake::arrow::array::{Int32Array, StringArray};
    use retail_lake::arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn only_the_rows_of_allowed_customers_are_kept() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, true),
            Field::new("rank", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("17850"),
                    Some("12346"),
                    None,
                    Some("17850"),
                ])),
                Arc::new(Int32Array::from(vec![1, 1, 1, 2])),
            ],
        )
        .unwrap();
        let mut view = ConsentView::everyone();
        view.exceptions.insert("17850".to_owned());
        let (kept, left_out) = keep_allowed(&batch, &view).unwrap();
        assert_eq!(left_out, 2);
        let ids = kept.column(0).as_string::<i32>();
        assert_eq!(ids.iter().collect::<Vec<_>>(), [Some("12346"), None]);
        let (all, none_left_out) = keep_allowed(&batch, &ConsentView::everyone()).unwrap();
        assert_eq!((all.num_rows(), none_left_out), (4, 0));
        let no_column = RecordBatch::new_empty(Arc::new(Schema::new(vec![Field::new(
            "id",
            DataType::Utf8,
            true,
        )])));
        assert!(keep_allowed(&no_column, &view).is_err());
    }
}
