//! The aggregates: `daily_sales` and `product_monthly` from the rows being built,
//! `customer_rfm` and `cohort_retention` from the whole history, and the consistency figures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use deltalake::arrow::array::{
    Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use deltalake::arrow::error::ArrowError;
use retail_domain::rfm;
use retail_lake::schema as tables;
use retail_metadata::Consistency;

use super::{batch, money};
use crate::calendar::{date_key, day_of, month_index, month_label};
use crate::history::History;
use crate::silver_set::{FastMap, NONE, Row, SilverSet};

/// Counts distinct `(group, member)` pairs per group.
fn count_distinct<K: Ord + Copy>(mut pairs: Vec<(K, u32)>) -> BTreeMap<K, i64> {
    pairs.sort_unstable();
    pairs.dedup();
    let mut counts = BTreeMap::new();
    for (group, _) in pairs {
        *counts.entry(group).or_insert(0) += 1;
    }
    counts
}

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    gross: i64,
    returns: i64,
    net: i64,
    units_sold: i64,
    units_returned: i64,
    lines: i64,
}

impl Sums {
    fn add(&mut self, row: &Row) {
        self.net += row.total_amount;
        self.lines += 1;
        if row.is_purchase() {
            self.gross += row.total_amount;
            self.units_sold += row.quantity;
        } else {
            self.returns -= row.total_amount;
            self.units_returned -= row.quantity;
        }
    }
}

pub(super) fn daily_sales(silver: &SilverSet) -> Result<RecordBatch, ArrowError> {
    let mut sums: BTreeMap<(i32, u32), Sums> = BTreeMap::new();
    let mut orders = Vec::new();
    let mut customers = Vec::new();
    for row in &silver.rows {
        let key = (row.day(), row.country);
        sums.entry(key).or_default().add(row);
        if row.counts_as_order() {
            orders.push((key, row.invoice));
        }
        if row.customer != NONE {
            customers.push((key, row.customer));
        }
    }
    let orders = count_distinct(orders);
    let customers = count_distinct(customers);
    // Sorted by date, then country name.
    let mut keys: Vec<(i32, u32)> = sums.keys().copied().collect();
    keys.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| silver.countries.get(a.1).cmp(silver.countries.get(b.1)))
    });
    let get = |key: &(i32, u32)| sums[key];
    batch(
        tables::GOLD_DAILY_SALES.arrow_schema(),
        vec![
            Arc::new(Date32Array::from_iter_values(keys.iter().map(|k| k.0))),
            Arc::new(Int32Array::from_iter_values(
                keys.iter().map(|k| date_key(k.0)),
            )),
            Arc::new(StringArray::from_iter_values(
                keys.iter().map(|k| silver.countries.get(k.1)),
            )),
            money(keys.iter().map(|k| get(k).gross).collect())?,
            money(keys.iter().map(|k| get(k).returns).collect())?,
            money(keys.iter().map(|k| get(k).net).collect())?,
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|k| orders.get(k).copied().unwrap_or(0)),
            )),
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|k| get(k).units_sold),
            )),
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|k| customers.get(k).copied().unwrap_or(0)),
            )),
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|k| get(k).lines),
            )),
        ],
    )
}

pub(super) fn product_monthly(silver: &SilverSet) -> Result<RecordBatch, ArrowError> {
    let mut sums: FastMap<(i32, u32), Sums> = FastMap::default();
    let mut orders = Vec::new();
    for row in &silver.rows {
        let key = (month_index(row.day()), row.stock_code);
        sums.entry(key).or_default().add(row);
        if row.counts_as_order() {
            orders.push((key, row.invoice));
        }
    }
    let orders = count_distinct(orders);
    let mut keys: Vec<(i32, u32)> = sums.keys().copied().collect();
    keys.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| silver.stock_codes.get(a.1).cmp(silver.stock_codes.get(b.1)))
    });
    let get = |key: &(i32, u32)| sums[key];
    batch(
        tables::GOLD_PRODUCT_MONTHLY.arrow_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                keys.iter().map(|k| month_label(k.0)),
            )),
            Arc::new(StringArray::from_iter_values(
                keys.iter().map(|k| silver.stock_codes.get(k.1)),
            )),
            money(keys.iter().map(|k| get(k).net).collect())?,
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|k| get(k).units_sold),
            )),
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|k| get(k).units_returned),
            )),
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|k| orders.get(k).copied().unwrap_or(0)),
            )),
            Arc::new(Float64Array::from_iter(keys.iter().map(|k| {
                let sums = get(k);
                (sums.units_sold > 0).then(|| sums.units_returned as f64 / sums.units_sold as f64)
            }))),
        ],
    )
}

pub(super) fn customer_rfm(history: &History) -> Result<RecordBatch, ArrowError> {
    let Some((_, newest)) = history.span() else {
        return Ok(RecordBatch::new_empty(
            tables::GOLD_CUSTOMER_RFM.arrow_schema(),
        ));
    };
    let reference_day = day_of(newest) + 1;
    struct Scored<'a> {
        id: &'a str,
        last_purchase: i32,
        recency: i64,
        frequency: i64,
        monetary: i64,
        scores: [u8; 3],
    }
    let mut scored: Vec<Scored<'_>> = history
        .customers
        .iter()
        .filter_map(|(customer, months)| {
            let last_purchase = months.iter().filter_map(|(_, m)| m.last_purchase).max()?;
            let invoices: BTreeSet<&String> = months
                .iter()
                .flat_map(|(_, m)| m.purchase_invoices.iter())
                .collect();
            Some(Scored {
                id: customer.as_str(),
                last_purchase,
                recency: i64::from(reference_day - last_purchase),
                frequency: invoices.len() as i64,
                monetary: months.iter().map(|(_, m)| m.monetary).sum(),
                scores: [0; 3],
            })
        })
        .collect();
    let total = scored.len();
    // NTILE(5) over each ordering, ties broken by customer id.
    scored.sort_by(|a, b| b.recency.cmp(&a.recency).then_with(|| a.id.cmp(b.id)));
    for (position, customer) in scored.iter_mut().enumerate() {
        customer.scores[0] = rfm::ntile(position + 1, total, 5);
    }
    scored.sort_by(|a, b| a.frequency.cmp(&b.frequency).then_with(|| a.id.cmp(b.id)));
    for (position, customer) in scored.iter_mut().enumerate() {
        customer.scores[1] = rfm::ntile(position + 1, total, 5);
    }
    scored.sort_by(|a, b| a.monetary.cmp(&b.monetary).then_with(|| a.id.cmp(b.id)));
    for (position, customer) in scored.iter_mut().enumerate() {
        customer.scores[2] = rfm::ntile(position + 1, total, 5);
    }
    scored.sort_by(|a, b| a.id.cmp(b.id));
    batch(
        tables::GOLD_CUSTOMER_RFM.arrow_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(scored.iter().map(|c| c.id))),
            Arc::new(Date32Array::from(vec![reference_day; total])),
            Arc::new(Date32Array::from_iter_values(
                scored.iter().map(|c| c.last_purchase),
            )),
            Arc::new(Int64Array::from_iter_values(
                scored.iter().map(|c| c.recency),
            )),
            Arc::new(Int64Array::from_iter_values(
                scored.iter().map(|c| c.frequency),
            )),
            money(scored.iter().map(|c| c.monetary).collect())?,
            Arc::new(Int32Array::from_iter_values(
                scored.iter().map(|c| i32::from(c.scores[0])),
            )),
            Arc::new(Int32Array::from_iter_values(
                scored.iter().map(|c| i32::from(c.scores[1])),
            )),
            Arc::new(Int32Array::from_iter_values(
                scored.iter().map(|c| i32::from(c.scores[2])),
            )),
            Arc::new(StringArray::from_iter_values(
                scored
                    .iter()
                    .map(|c| rfm::segment(c.scores[0], c.scores[1])),
            )),
        ],
    )
}

pub(super) fn cohort_retention(history: &History) -> Result<RecordBatch, ArrowError> {
    let Some((_, newest)) = history.span() else {
        return Ok(RecordBatch::new_empty(
            tables::GOLD_COHORT_RETENTION.arrow_schema(),
        ));
    };
    let last_month = month_index(day_of(newest));
    let mut sizes: BTreeMap<i32, i64> = BTreeMap::new();
    let mut active: BTreeMap<(i32, i32), i64> = BTreeMap::new();
    for months in history.customers.values() {
        // Months with a purchase (a line with quantity > 0 on a non-cancellation invoice).
        let mut purchases = months
            .iter()
            .filter(|(_, part)| !part.purchase_invoices.is_empty())
            .map(|(month, _)| *month);
        let Some(cohort) = purchases.next() else {
            continue;
        };
        *sizes.entry(cohort).or_insert(0) += 1;
        for month in std::iter::once(cohort).chain(purchases) {
            *active.entry((cohort, month - cohort)).or_insert(0) += 1;
        }
    }
    let mut rows: Vec<(i32, i32, i64, i64)> = Vec::new();
    for (cohort, size) in &sizes {
        for offset in 0..=(last_month - cohort) {
            let count = active.get(&(*cohort, offset)).copied().unwrap_or(0);
            rows.push((*cohort, offset, *size, count));
        }
    }
    batch(
        tables::GOLD_COHORT_RETENTION.arrow_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| month_label(r.0)),
            )),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| month_label(r.0 + r.1)),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.3 as f64 / r.2 as f64),
            )),
        ],
    )
}

fn share(good: usize, total: usize) -> f64 {
    if total == 0 {
        1.0
    } else {
        good as f64 / total as f64
    }
}

pub(super) fn consistency(history: &History) -> Consistency {
    let mut consistent_invoices = 0;
    let (mut negative, mut cancellation_lines) = (0, 0);
    for months in history.invoices.values() {
        let parties: BTreeSet<&(Option<String>, String)> =
            months.iter().flat_map(|(_, m)| m.parties.iter()).collect();
        consistent_invoices += usize::from(parties.len() == 1);
        for (_, part) in months {
            negative += part.negative_cancellation_lines as usize;
            cancellation_lines += part.cancellation_lines as usize;
        }
    }
    let codes = history.products.len();
    let multi = history
        .products
        .values()
        .filter(|parts| {
            let descriptions: BTreeSet<&String> =
                parts.iter().filter_map(|((_, d), _)| d.as_ref()).collect();
            descriptions.len() > 1
        })
        .count();
    let invoices = share(consistent_invoices, history.invoices.len());
    let cancellations = share(negative, cancellation_lines);
    let products = share(codes - multi, codes);
    Consistency {
        invoices_with_one_customer_and_country: invoices,
        cancellations_with_negative_quantity: cancellations,
        stock_codes_with_one_description: products,
        overall: (invoices + cancellations + products) / 3.0,
    }
}
