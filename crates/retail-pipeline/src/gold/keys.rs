//! Surrogate keys: a member keeps its key from run to run, a new member gets the next number.

use std::collections::HashMap;

use deltalake::arrow::array::{AsArray as _, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{Int32Type, Int64Type};
use deltalake::arrow::error::ArrowError;

use super::UNKNOWN_CUSTOMER_KEY;

/// Surrogate keys handed out by the previous gold version. A member keeps its key from run to
/// run; a new member gets the next unused number. So facts of untouched days keep their exact
/// rows, which is what lets the warehouse load only what changed.
#[derive(Debug, Default, Clone)]
pub struct PriorKeys {
    /// Country name → `country_key`.
    pub countries: HashMap<String, i64>,
    /// Stock code → `product_key`.
    pub products: HashMap<String, i64>,
    /// (customer id, version number, country name) → `customer_key` of that type 2 version.
    /// Not `valid_from`: a late row that only moves a version's start keeps its key.
    pub customers: HashMap<(String, i32, String), i64>,
}

impl PriorKeys {
    /// Reads the keys from the batches of `gold/dim_country`, `gold/dim_product` and
    /// `gold/dim_customer` (any of them may be empty).
    ///
    /// # Errors
    ///
    /// When a batch does not have its table's columns.
    pub fn from_dimensions(
        countries: &[RecordBatch],
        products: &[RecordBatch],
        customers: &[RecordBatch],
    ) -> Result<Self, ArrowError> {
        let mut prior = Self::default();
        for batch in countries {
            let keys = int64_column(batch, "country_key")?;
            let names = string_column(batch, "country_name")?;
            for row in 0..batch.num_rows() {
                prior
                    .countries
                    .insert(names.value(row).to_owned(), keys.value(row));
            }
        }
        for batch in products {
            let keys = int64_column(batch, "product_key")?;
            let codes = string_column(batch, "stock_code")?;
            for row in 0..batch.num_rows() {
                prior
                    .products
                    .insert(codes.value(row).to_owned(), keys.value(row));
            }
        }
        for batch in customers {
            let keys = int64_column(batch, "customer_key")?;
            let ids = string_column(batch, "customer_id")?;
            let names = string_column(batch, "country_name")?;
            let numbers = batch
                .column_by_name("version")
                .and_then(|column| column.as_primitive_opt::<Int32Type>())
                .ok_or_else(|| missing_column("version"))?;
            for row in 0..batch.num_rows() {
                if keys.value(row) == UNKNOWN_CUSTOMER_KEY {
                    continue;
                }
                prior.customers.insert(
                    (
                        ids.value(row).to_owned(),
                        numbers.value(row),
                        names.value(row).to_owned(),
                    ),
                    keys.value(row),
                );
            }
        }
        Ok(prior)
    }
}

fn missing_column(name: &str) -> ArrowError {
    ArrowError::SchemaError(format!("gold dimension without a usable {name} column"))
}

fn int64_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a deltalake::arrow::array::PrimitiveArray<Int64Type>, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| missing_column(name))
}

fn string_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_string_opt::<i32>())
        .ok_or_else(|| missing_column(name))
}

/// Assigns keys to members given by name in sorted order: a member keeps its prior key, a new
/// one gets the next unused number.
pub(super) fn assign_keys<'a>(
    sorted: impl Iterator<Item = &'a str>,
    prior: &HashMap<String, i64>,
) -> HashMap<String, i64> {
    let mut next = prior.values().copied().max().unwrap_or(0) + 1;
    sorted
        .map(|name| {
            let key = prior.get(name).copied().unwrap_or_else(|| {
                next += 1;
                next - 1
            });
            (name.to_owned(), key)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{ArrayRef, Int32Array, Int64Array};

    use super::*;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn members_keep_their_keys_and_new_ones_get_numbers_after_the_largest() {
        let prior = HashMap::from([("B".to_owned(), 1), ("D".to_owned(), 7)]);
        let keys = assign_keys(["A", "B", "C", "D", "E"].into_iter(), &prior);
        assert_eq!(keys["B"], 1);
        assert_eq!(keys["D"], 7);
        // New members in sorted order, after the largest prior key (never reusing a gap).
        assert_eq!((keys["A"], keys["C"], keys["E"]), (8, 9, 10));
        // A first build numbers from 1.
        let first = assign_keys(["X", "Y"].into_iter(), &HashMap::new());
        assert_eq!((first["X"], first["Y"]), (1, 2));
    }

    #[test]
    fn prior_keys_are_read_from_the_dimensions_without_the_unknown_customer() {
        let countries = batch(vec![
            (
                "country_key",
                Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            ),
            (
                "country_name",
                Arc::new(StringArray::from(vec!["France", "EIRE"])),
            ),
        ]);
        let products = batch(vec![
            (
                "product_key",
                Arc::new(Int64Array::from(vec![5])) as ArrayRef,
            ),
            ("stock_code", Arc::new(StringArray::from(vec!["85123A"]))),
        ]);
        let customers = batch(vec![
            (
                "customer_key",
                Arc::new(Int64Array::from(vec![UNKNOWN_CUSTOMER_KEY, 3, 4])) as ArrayRef,
            ),
            (
                "customer_id",
                Arc::new(StringArray::from(vec!["", "17850", "17850"])),
            ),
            ("version", Arc::new(Int32Array::from(vec![0, 1, 2]))),
            (
                "country_name",
                Arc::new(StringArray::from(vec!["", "United Kingdom", "France"])),
            ),
        ]);
        let prior = PriorKeys::from_dimensions(
            std::slice::from_ref(&countries),
            std::slice::from_ref(&products),
            std::slice::from_ref(&customers),
        )
        .unwrap();
        assert_eq!(prior.countries["EIRE"], 2);
        assert_eq!(prior.products["85123A"], 5);
        assert_eq!(prior.customers.len(), 2);
        assert_eq!(
            prior.customers[&("17850".to_owned(), 2, "France".to_owned())],
            4
        );

        // A dimension without its key column is an error naming the column.
        let error =
            PriorKeys::from_dimensions(&[], std::slice::from_ref(&countries), &[]).unwrap_err();
        assert!(error.to_string().contains("product_key"), "{error}");
    }
}
