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

/// Gives every member (interned id, in `sorted` order) its prior key, or the next number after
/// the largest prior key. Indexed by interned id.
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
