//! The fact table: every silver row with its surrogate keys, made batch by batch so that it is
//! never whole in memory.

use std::sync::Arc;

use deltalake::arrow::array::{
    BooleanArray, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;
use retail_lake::schema as tables;

use super::dimensions::Dimensions;
use super::{UNKNOWN_CUSTOMER_KEY, batch, money};
use crate::calendar::{date_key, month_index};
use crate::silver_set::{NONE, Row, SilverSet};

/// The keys every fact row needs, computed once; batches are made on demand so the fact table
/// is never whole in memory.
#[derive(Debug)]
pub struct FactPlan {
    order: Vec<u32>,
    customer_keys: Vec<i64>,
    /// Surrogate key of each interned stock code.
    product_keys: Vec<i64>,
    /// Surrogate key of each interned country.
    country_keys: Vec<i64>,
    batch_rows: usize,
}

impl FactPlan {
    /// Returns the number of fact rows.
    pub fn rows(&self) -> u64 {
        self.order.len() as u64
    }

    /// Produces the fact rows in invoice-date order, one batch at a time, each with the month
    /// (index) of its rows: a batch never spans two months.
    pub fn batches<'a>(
        &'a self,
        silver: &'a SilverSet,
    ) -> impl Iterator<Item = (i32, Result<RecordBatch, ArrowError>)> + 'a {
        self.batches_of(silver, |_| true)
    }

    /// As [`FactPlan::batches`], for the months (indexes) `wanted` keeps only: the other
    /// months' batches are not made.
    pub fn batches_of<'a>(
        &'a self,
        silver: &'a SilverSet,
        wanted: impl Fn(i32) -> bool + 'a,
    ) -> impl Iterator<Item = (i32, Result<RecordBatch, ArrowError>)> + 'a {
        let schema = tables::GOLD_FACT_SALES.arrow_schema();
        let month_of = |index: &u32| month_index(silver.rows[*index as usize].day());
        self.order
            .chunk_by(move |a, b| month_of(a) == month_of(b))
            .filter(move |month| wanted(month_of(&month[0])))
            .flat_map(move |month| month.chunks(self.batch_rows.max(1)))
            .map(move |chunk| {
                (
                    month_of(&chunk[0]),
                    fact_batch(silver, self, chunk, Arc::clone(&schema)),
                )
            })
    }
}

impl FactPlan {
    pub(super) fn new(
        silver: &SilverSet,
        order: Vec<u32>,
        dimensions: &Dimensions,
        batch_rows: usize,
    ) -> Result<Self, ArrowError> {
        let missing =
            |what: &str, name: &str| ArrowError::ComputeError(format!("no key for {what} {name}"));
        let product_keys = silver
            .stock_codes
            .values
            .iter()
            .map(|code| {
                dimensions
                    .products
                    .get(code)
                    .copied()
                    .ok_or_else(|| missing("stock code", code))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let country_keys = silver
            .countries
            .values
            .iter()
            .map(|name| {
                dimensions
                    .countries
                    .get(name)
                    .copied()
                    .ok_or_else(|| missing("country", name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Each interned customer's versions, looked up once.
        let customer_versions = silver
            .customers
            .values
            .iter()
            .map(|customer| {
                dimensions
                    .versions
                    .get(customer)
                    .ok_or_else(|| missing("customer", customer))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut customer_keys = vec![UNKNOWN_CUSTOMER_KEY; silver.rows.len()];
        for (index, row) in silver.rows.iter().enumerate() {
            if row.customer == NONE {
                continue;
            }
            let versions = customer_versions[row.customer as usize];
            customer_keys[index] = match versions.as_slice() {
                [(_, key)] => *key,
                _ => {
                    // The last version starting at or before the row (the first when none
                    // does: its start is the customer's first row).
                    let position = (
                        row.invoice_date,
                        silver.invoices.get(row.invoice),
                        row.transaction_id,
                    );
                    let after = versions.partition_point(|(start, _)| {
                        (start.at, start.invoice.as_str(), start.id) <= position
                    });
                    versions[after.saturating_sub(1)].1
                }
            };
        }
        Ok(Self {
            order,
            customer_keys,
            product_keys,
            country_keys,
            batch_rows,
        })
    }
}

fn fact_batch(
    silver: &SilverSet,
    plan: &FactPlan,
    chunk: &[u32],
    schema: SchemaRef,
) -> Result<RecordBatch, ArrowError> {
    let rows: Vec<&Row> = chunk.iter().map(|i| &silver.rows[*i as usize]).collect();
    let scores: Vec<i128> = rows.iter().map(|r| i128::from(r.score)).collect();
    batch(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| format!("{:032x}", r.transaction_id)),
            )),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| date_key(r.day())),
            )),
            Arc::new(Int64Array::from_iter_values(
                chunk.iter().map(|i| plan.customer_keys[*i as usize]),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter()
                    .map(|r| plan.product_keys[r.stock_code as usize]),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| plan.country_keys[r.country as usize]),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| silver.invoices.get(r.invoice)),
            )),
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                rows.iter().map(|r| r.invoice_date),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.quantity),
            )),
            money(rows.iter().map(|r| r.unit_price).collect())?,
            money(rows.iter().map(|r| r.total_amount).collect())?,
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.quantity < 0)),
            )),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.is_cancellation)),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.line_type.as_str()),
            )),
            Arc::new(Decimal128Array::from(scores).with_precision_and_scale(3, 2)?),
        ],
    )
}
