//! Gold: the star schema and the aggregates of the contract, computed from silver rows.
//!
//! Pure computation, split by concern: the rows come as a [`SilverSet`](crate::silver_set),
//! days and months are counted by `calendar.rs`, the whole-history tables read the per-month
//! [`History`]; here [`build_gold`] assembles the dimensions (`dimensions.rs`) with their
//! surrogate keys (`keys.rs`), the facts (`facts.rs`) and the aggregates (`aggregates.rs`)
//! into one set of batches per gold table.

mod aggregates;
mod dimensions;
mod facts;
mod keys;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, Decimal128Array, RecordBatch};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;
use retail_lake::schema::{self as tables, TableSpec};
use retail_metadata::Consistency;

pub use facts::FactPlan;
pub use keys::PriorKeys;

use crate::history::History;
pub use crate::silver_set::{
    CountryAttributesByName, SILVER_COLUMNS, SilverSet, countries_of, walk_order,
};

/// Money mantissas are thousandths (scale 3).
const MONEY_SCALE: u32 = 3;
/// Key of the unknown customer, used by guest sales.
pub const UNKNOWN_CUSTOMER_KEY: i64 = 0;

/// One gold table's new content.
#[derive(Debug)]
pub struct GoldTable {
    /// The table.
    pub table: TableSpec,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
}

impl GoldTable {
    /// Returns the number of rows.
    pub fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.num_rows() as u64).sum()
    }
}

/// Everything the gold stage produces.
#[derive(Debug)]
pub struct Gold {
    /// Every gold table, in [`tables::GOLD_TABLES`] order. The fact table's batches are not
    /// held here (see [`Gold::facts`]): they are produced one at a time while written.
    pub tables: Vec<GoldTable>,
    /// How to produce `gold/fact_sales`.
    pub facts: FactPlan,
    /// Cross-row consistency measured on the way.
    pub consistency: Consistency,
}

/// What [`build_gold`] works from.
#[derive(Debug)]
pub struct GoldInput<'a> {
    /// The silver rows of the months being (re)built: all of silver for a full build.
    pub silver: &'a SilverSet,
    /// Their walk order ([`walk_order`]).
    pub order: Vec<u32>,
    /// The parts of every month, those of `silver`'s months made from `silver`.
    pub history: &'a History,
    /// Every country, with its attributes.
    pub countries: &'a CountryAttributesByName,
    /// Keys handed out before.
    pub prior: &'a PriorKeys,
    /// Rows per fact batch.
    pub batch_rows: usize,
}

/// Builds every gold table: the dimensions, `customer_rfm` and `cohort_retention` from the
/// history of all months; `daily_sales`, `product_monthly` and the fact plan for the rows of
/// `input.silver` only (all of them in a full build). Keys of `input.prior` are kept.
///
/// # Errors
///
/// Only on a bug (a batch that does not fit its table's schema).
pub fn build_gold(input: GoldInput<'_>) -> Result<Gold, ArrowError> {
    let GoldInput {
        silver,
        order,
        history,
        countries,
        prior,
        batch_rows,
    } = input;
    // The slice's aggregates do not depend on the dimensions: a second thread makes them.
    let (dimensions, aggregates) = std::thread::scope(|scope| {
        let aggregates = scope.spawn(|| -> Result<_, ArrowError> {
            Ok((
                aggregates::daily_sales(silver)?,
                aggregates::product_monthly(silver)?,
                aggregates::customer_rfm(history)?,
                aggregates::cohort_retention(history)?,
                aggregates::consistency(history),
            ))
        });
        let dimensions = dimensions::build_dimensions(history, countries, prior);
        let aggregates = aggregates
            .join()
            .expect("the aggregate thread does not panic");
        (dimensions, aggregates)
    });
    let dimensions = dimensions?;
    let (daily, monthly, rfm, cohorts, consistency) = aggregates?;
    let one = |table: TableSpec, batch: RecordBatch| GoldTable {
        table,
        batches: vec![batch],
    };
    let facts = FactPlan::new(silver, order, &dimensions, batch_rows)?;
    let [dim_date, dim_country, dim_product, dim_customer] = dimensions.batches;
    let tables = vec![
        one(tables::GOLD_DIM_DATE, dim_date),
        one(tables::GOLD_DIM_COUNTRY, dim_country),
        one(tables::GOLD_DIM_PRODUCT, dim_product),
        one(tables::GOLD_DIM_CUSTOMER, dim_customer),
        GoldTable {
            table: tables::GOLD_FACT_SALES,
            batches: Vec::new(),
        },
        one(tables::GOLD_DAILY_SALES, daily),
        one(tables::GOLD_PRODUCT_MONTHLY, monthly),
        one(tables::GOLD_CUSTOMER_RFM, rfm),
        one(tables::GOLD_COHORT_RETENTION, cohorts),
    ];
    Ok(Gold {
        tables,
        facts,
        consistency,
    })
}

pub(super) fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(schema, columns)
}

pub(super) fn money(values: Vec<i64>) -> Result<ArrayRef, ArrowError> {
    let values: Vec<i128> = values.into_iter().map(i128::from).collect();
    Ok(Arc::new(
        Decimal128Array::from(values).with_precision_and_scale(18, MONEY_SCALE as i8)?,
    ))
}
