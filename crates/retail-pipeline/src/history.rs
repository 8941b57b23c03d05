//! History: the per-month partial aggregates that gold's whole-history tables are made from.
//!
//! `dim_customer`, `dim_product`, `customer_rfm`, `cohort_retention`, `dim_date` and the
//! consistency figures depend on every silver row, not on one day. Each is a merge of small
//! per-month parts: a customer's country runs, purchase invoices and money per month; a stock
//! code's description counts and sale dates per month; an invoice's parties per month. The
//! parts are kept in three internal gold tables (`gold/history_*`), so a run after new data
//! recomputes the parts of the months it touched from those months' silver rows, merges them
//! with the stored parts of the other months, and derives the same tables a build from all of
//! silver would (the full build goes through the very same merge).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray as _, Date32Array, Date32Builder, Decimal128Array, Int64Array,
    ListBuilder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{
    Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType,
};
use deltalake::arrow::error::ArrowError;
use retail_lake::schema::{HISTORY_CUSTOMERS, HISTORY_INVOICES, HISTORY_PRODUCTS};

use crate::calendar::{month_index, month_label, parse_month_label};
use crate::silver_set::{FastMap, NONE, SilverSet};

/// A row's place in the walk that type 2 versions follow: invoice date, then invoice, then
/// transaction id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub(crate) at: i64,
    pub(crate) invoice: String,
    pub(crate) id: u128,
}

/// A run of a customer's rows in one country, from `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) country: String,
    pub(crate) start: Position,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CustomerMonth {
    /// Non-cancellation invoices with a line of `quantity > 0`.
    /// Sorted, without repeats.
    pub(crate) purchase_invoices: Vec<String>,
    /// Σ `total_amount` of all the customer's lines, thousandths.
    pub(crate) monetary: i64,
    /// The day of the last line with `quantity > 0`.
    pub(crate) last_purchase: Option<i32>,
    /// Country runs in walk order.
    pub(crate) runs: Vec<Run>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProductPart {
    pub(crate) lines: i64,
    pub(crate) first_sale: Option<i32>,
    pub(crate) last_sale: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct InvoiceMonth {
    /// Distinct (customer, country) pairs of the invoice's lines.
    /// Sorted, without repeats.
    pub(crate) parties: Vec<(Option<String>, String)>,
    pub(crate) cancellation_lines: i64,
    pub(crate) negative_cancellation_lines: i64,
    /// First and last invoice date (micros) of the invoice's lines that month.
    pub(crate) first_at: i64,
    pub(crate) last_at: i64,
}

/// An entity's parts, sorted by key (a month first). A vector, not a map: most entities have
/// a handful of parts, and a tree node per entity would cost more than the parts.
pub(crate) type Parts<K, P> = Vec<(K, P)>;

/// Every part, by entity and month index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub(crate) customers: BTreeMap<String, Parts<i32, CustomerMonth>>,
    /// Stock code → (month, description) → part.
    pub(crate) products: BTreeMap<String, Parts<(i32, Option<String>), ProductPart>>,
    pub(crate) invoices: BTreeMap<String, Parts<i32, InvoiceMonth>>,
}

impl History {
    /// The parts of every month the rows of `silver` fall in; `order` is the walk order of
    /// its rows (invoice date, invoice, transaction id).
    pub(crate) fn from_silver(silver: &SilverSet, order: &[u32]) -> Self {
        // Gathered by interned ids first (one hash lookup a row, no allocation), named at
        // the end (one allocation per part).
        #[derive(Default)]
        struct Customer {
            invoices: Vec<u32>,
            monetary: i64,
            last_purchase: Option<i32>,
            runs: Vec<(u32, i64, u32, u128)>,
        }
        struct Invoice {
            parties: Vec<(u32, u32)>,
            cancellation_lines: i64,
            negative_cancellation_lines: i64,
            first_at: i64,
            last_at: i64,
        }
        let mut customers: FastMap<(u32, i32), Customer> = FastMap::default();
        let mut products: FastMap<(u32, i32, u32), ProductPart> = FastMap::default();
        let mut invoices: FastMap<(u32, i32), Invoice> = FastMap::default();
        for index in order {
            let row = &silver.rows[*index as usize];
            let month = month_index(row.day());
            if row.customer != NONE {
                let part = customers.entry((row.customer, month)).or_default();
                part.monetary += row.total_amount;
                if row.is_purchase() {
                    part.last_purchase = part.last_purchase.max(Some(row.day()));
                }
                if row.counts_as_order() {
                    part.invoices.push(row.invoice);
                }
                if part.runs.last().is_none_or(|run| run.0 != row.country) {
                    part.runs.push((
                        row.country,
                        row.invoice_date,
                        row.invoice,
                        row.transaction_id,
                    ));
                }
            }
            let product = products
                .entry((row.stock_code, month, row.description))
                .or_default();
            product.lines += 1;
            if row.is_purchase() {
                product.first_sale =
                    Some(product.first_sale.map_or(row.day(), |d| d.min(row.day())));
                product.last_sale = product.last_sale.max(Some(row.day()));
            }
            let part = invoices
                .entry((row.invoice, month))
                .or_insert_with(|| Invoice {
                    parties: Vec::new(),
                    cancellation_lines: 0,
                    negative_cancellation_lines: 0,
                    first_at: row.invoice_date,
                    last_at: row.invoice_date,
                });
            if !part.parties.contains(&(row.customer, row.country)) {
                part.parties.push((row.customer, row.country));
            }
            if row.is_cancellation {
                part.cancellation_lines += 1;
                part.negative_cancellation_lines += i64::from(row.quantity < 0);
            }
            part.first_at = part.first_at.min(row.invoice_date);
            part.last_at = part.last_at.max(row.invoice_date);
        }
        let name = |id: u32, interner: &crate::silver_set::Interner| -> Option<String> {
            (id != NONE).then(|| interner.get(id).to_owned())
        };
        let mut history = Self::default();
        for ((customer, month), mut part) in customers {
            part.invoices.sort_unstable();
            part.invoices.dedup();
            history
                .customers
                .entry(silver.customers.get(customer).to_owned())
                .or_default()
                .push((
                    month,
                    CustomerMonth {
                        purchase_invoices: sorted(
                            part.invoices
                                .iter()
                                .map(|i| silver.invoices.get(*i).to_owned())
                                .collect(),
                        ),
                        monetary: part.monetary,
                        last_purchase: part.last_purchase,
                        runs: part
                            .runs
                            .into_iter()
                            .map(|(country, at, invoice, id)| Run {
                                country: silver.countries.get(country).to_owned(),
                                start: Position {
                                    at,
                                    invoice: silver.invoices.get(invoice).to_owned(),
                                    id,
                                },
                            })
                            .collect(),
                    },
                ));
        }
        for ((code, month, description), part) in products {
            history
                .products
                .entry(silver.stock_codes.get(code).to_owned())
                .or_default()
                .push(((month, name(description, &silver.descriptions)), part));
        }
        for ((invoice, month), part) in invoices {
            history
                .invoices
                .entry(silver.invoices.get(invoice).to_owned())
                .or_default()
                .push((
                    month,
                    InvoiceMonth {
                        parties: sorted(
                            part.parties
                                .into_iter()
                                .map(|(customer, country)| {
                                    (
                                        name(customer, &silver.customers),
                                        silver.countries.get(country).to_owned(),
                                    )
                                })
                                .collect(),
                        ),
                        cancellation_lines: part.cancellation_lines,
                        negative_cancellation_lines: part.negative_cancellation_lines,
                        first_at: part.first_at,
                        last_at: part.last_at,
                    },
                ));
        }
        history.sort_parts();
        history
    }

    /// Sorts every entity's parts by key.
    fn sort_parts(&mut self) {
        for parts in self.customers.values_mut() {
            parts.sort_unstable_by_key(|(month, _)| *month);
        }
        for parts in self.products.values_mut() {
            parts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        for parts in self.invoices.values_mut() {
            parts.sort_unstable_by_key(|(month, _)| *month);
        }
    }

    /// The months any part is about.
    pub(crate) fn months(&self) -> BTreeSet<i32> {
        self.invoices
            .values()
            .flat_map(|parts| parts.iter().map(|(month, _)| *month))
            .collect()
    }

    /// Replaces the parts of `months` with those of `newer` (which holds only such months).
    pub(crate) fn replace_months(&mut self, months: &BTreeSet<i32>, newer: Self) {
        fn replace<K, P>(
            mine: &mut BTreeMap<String, Parts<K, P>>,
            theirs: BTreeMap<String, Parts<K, P>>,
            in_months: impl Fn(&K) -> bool,
        ) {
            for parts in mine.values_mut() {
                parts.retain(|(key, _)| !in_months(key));
            }
            mine.retain(|_, parts| !parts.is_empty());
            for (entity, parts) in theirs {
                mine.entry(entity).or_default().extend(parts);
            }
        }
        replace(&mut self.customers, newer.customers, |m| months.contains(m));
        replace(&mut self.products, newer.products, |(m, _)| {
            months.contains(m)
        });
        replace(&mut self.invoices, newer.invoices, |m| months.contains(m));
        self.sort_parts();
    }

    /// Every country some row names.
    pub(crate) fn countries(&self) -> BTreeSet<&str> {
        self.invoices
            .values()
            .flat_map(|parts| parts.iter())
            .flat_map(|(_, part)| part.parties.iter().map(|(_, country)| country.as_str()))
            .collect()
    }

    /// The first and last invoice date (micros) of all rows.
    pub(crate) fn span(&self) -> Option<(i64, i64)> {
        let parts = self
            .invoices
            .values()
            .flat_map(|parts| parts.iter().map(|(_, part)| part));
        let first = parts.clone().map(|p| p.first_at).min()?;
        let last = parts.map(|p| p.last_at).max()?;
        Some((first, last))
    }

    /// A customer's country runs over all months, adjacent runs in one country merged: its
    /// type 2 versions, in order.
    pub(crate) fn versions(&self, customer: &str) -> Vec<Run> {
        let mut versions: Vec<Run> = Vec::new();
        for (_, part) in self.customers.get(customer).into_iter().flatten() {
            for run in &part.runs {
                if versions
                    .last()
                    .is_none_or(|last| last.country != run.country)
                {
                    versions.push(run.clone());
                }
            }
        }
        versions
    }
}

fn strings<'a>(
    builder: &mut ListBuilder<StringBuilder>,
    values: impl IntoIterator<Item = Option<&'a str>>,
) {
    for value in values {
        builder.values().append_option(value);
    }
    builder.append(true);
}

fn money(values: Vec<i64>) -> Result<ArrayRef, ArrowError> {
    Ok(Arc::new(
        Decimal128Array::from_iter_values(values.into_iter().map(i128::from))
            .with_precision_and_scale(18, 3)?,
    ))
}

impl History {
    /// The three tables' batches.
    pub(crate) fn to_batches(&self) -> Result<[RecordBatch; 3], ArrowError> {
        // Customers.
        let mut ids = Vec::new();
        let mut months = Vec::new();
        let mut monetary = Vec::new();
        let mut last_purchase = Vec::new();
        let mut invoices = ListBuilder::new(StringBuilder::new());
        let mut run_countries = ListBuilder::new(StringBuilder::new());
        let mut run_at = ListBuilder::new(TimestampMicrosecondBuilder::new());
        let mut run_invoices = ListBuilder::new(StringBuilder::new());
        let mut run_ids = ListBuilder::new(StringBuilder::new());
        for (customer, parts) in &self.customers {
            for (month, part) in parts {
                ids.push(customer.as_str());
                months.push(month_label(*month));
                monetary.push(part.monetary);
                last_purchase.push(part.last_purchase);
                strings(
                    &mut invoices,
                    part.purchase_invoices.iter().map(|i| Some(i.as_str())),
                );
                strings(
                    &mut run_countries,
                    part.runs.iter().map(|r| Some(r.country.as_str())),
                );
                for run in &part.runs {
                    run_at.values().append_value(run.start.at);
                }
                run_at.append(true);
                strings(
                    &mut run_invoices,
                    part.runs.iter().map(|r| Some(r.start.invoice.as_str())),
                );
                let hex: Vec<String> = part
                    .runs
                    .iter()
                    .map(|r| format!("{:032x}", r.start.id))
                    .collect();
                strings(&mut run_ids, hex.iter().map(|h| Some(h.as_str())));
            }
        }
        let customers = RecordBatch::try_new(
            HISTORY_CUSTOMERS.arrow_schema(),
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(StringArray::from(months)),
                money(monetary)?,
                Arc::new(Date32Array::from(last_purchase)),
                Arc::new(invoices.finish()),
                Arc::new(run_countries.finish()),
                Arc::new(run_at.finish()),
                Arc::new(run_invoices.finish()),
                Arc::new(run_ids.finish()),
            ],
        )?;

        // Products.
        let mut codes = Vec::new();
        let mut months = Vec::new();
        let mut descriptions = Vec::new();
        let mut lines = Vec::new();
        let mut first = Date32Builder::new();
        let mut last = Date32Builder::new();
        for (code, parts) in &self.products {
            for ((month, description), part) in parts {
                codes.push(code.as_str());
                months.push(month_label(*month));
                descriptions.push(description.as_deref());
                lines.push(part.lines);
                first.append_option(part.first_sale);
                last.append_option(part.last_sale);
            }
        }
        let products = RecordBatch::try_new(
            HISTORY_PRODUCTS.arrow_schema(),
            vec![
                Arc::new(StringArray::from(codes)),
                Arc::new(StringArray::from(months)),
                Arc::new(StringArray::from(descriptions)),
                Arc::new(Int64Array::from(lines)),
                Arc::new(first.finish()),
                Arc::new(last.finish()),
            ],
        )?;

        // Invoices.
        let mut numbers = Vec::new();
        let mut months = Vec::new();
        let mut customers_list = ListBuilder::new(StringBuilder::new());
        let mut countries_list = ListBuilder::new(StringBuilder::new());
        let mut cancellations = Vec::new();
        let mut negative = Vec::new();
        let mut first_at = Vec::new();
        let mut last_at = Vec::new();
        for (invoice, parts) in &self.invoices {
            for (month, part) in parts {
                numbers.push(invoice.as_str());
                months.push(month_label(*month));
                strings(
                    &mut customers_list,
                    part.parties.iter().map(|(c, _)| c.as_deref()),
                );
                strings(
                    &mut countries_list,
                    part.parties.iter().map(|(_, c)| Some(c.as_str())),
                );
                cancellations.push(part.cancellation_lines);
                negative.push(part.negative_cancellation_lines);
                first_at.push(part.first_at);
                last_at.push(part.last_at);
            }
        }
        let invoices = RecordBatch::try_new(
            HISTORY_INVOICES.arrow_schema(),
            vec![
                Arc::new(StringArray::from(numbers)),
                Arc::new(StringArray::from(months)),
                Arc::new(customers_list.finish()),
                Arc::new(countries_list.finish()),
                Arc::new(Int64Array::from(cancellations)),
                Arc::new(Int64Array::from(negative)),
                Arc::new(deltalake::arrow::array::TimestampMicrosecondArray::from(
                    first_at,
                )),
                Arc::new(deltalake::arrow::array::TimestampMicrosecondArray::from(
                    last_at,
                )),
            ],
        )?;
        Ok([customers, products, invoices])
    }

    /// Reads the parts back from the three tables' batches.
    ///
    /// # Errors
    ///
    /// When a batch lacks a column of its table or holds a value that cannot be read.
    pub(crate) fn from_batches(
        customers: &[RecordBatch],
        products: &[RecordBatch],
        invoices: &[RecordBatch],
    ) -> Result<Self, ArrowError> {
        let mut history = Self::default();
        for batch in customers {
            let ids = text(batch, "customer_id")?;
            let months = text(batch, "month")?;
            let monetary = column(batch, "monetary")?.as_primitive::<Decimal128Type>();
            let last_purchase = column(batch, "last_purchase")?.as_primitive::<Date32Type>();
            let invoices = column(batch, "purchase_invoices")?.as_list::<i32>();
            let countries = column(batch, "run_countries")?.as_list::<i32>();
            let at = column(batch, "run_at")?.as_list::<i32>();
            let run_invoices = column(batch, "run_invoices")?.as_list::<i32>();
            let run_ids = column(batch, "run_ids")?.as_list::<i32>();
            for row in 0..batch.num_rows() {
                let list_strings = |list: &deltalake::arrow::array::ListArray| -> Vec<String> {
                    let values = list.value(row);
                    let values = values.as_string::<i32>();
                    (0..values.len())
                        .map(|i| values.value(i).to_owned())
                        .collect()
                };
                let run_at = at.value(row);
                let run_at = run_at.as_primitive::<TimestampMicrosecondType>();
                let countries = list_strings(countries);
                let run_invoices = list_strings(run_invoices);
                let run_ids = list_strings(run_ids);
                let mut runs = Vec::with_capacity(countries.len());
                for (i, country) in countries.into_iter().enumerate() {
                    runs.push(Run {
                        country,
                        start: Position {
                            at: run_at.value(i),
                            invoice: run_invoices[i].clone(),
                            id: u128::from_str_radix(&run_ids[i], 16).map_err(|_| {
                                ArrowError::InvalidArgumentError(format!(
                                    "bad transaction id {}",
                                    run_ids[i]
                                ))
                            })?,
                        },
                    });
                }
                let part = CustomerMonth {
                    purchase_invoices: list_strings(invoices),
                    monetary: i64::try_from(monetary.value(row)).map_err(|_| {
                        ArrowError::InvalidArgumentError("monetary out of range".into())
                    })?,
                    last_purchase: (!last_purchase.is_null(row)).then(|| last_purchase.value(row)),
                    runs,
                };
                history
                    .customers
                    .entry(ids.value(row).to_owned())
                    .or_default()
                    .push((month_of(months.value(row))?, part));
            }
        }
        for batch in products {
            let codes = text(batch, "stock_code")?;
            let months = text(batch, "month")?;
            let descriptions = text(batch, "description")?;
            let lines = column(batch, "lines")?.as_primitive::<Int64Type>();
            let first = column(batch, "first_sale")?.as_primitive::<Date32Type>();
            let last = column(batch, "last_sale")?.as_primitive::<Date32Type>();
            for row in 0..batch.num_rows() {
                let description =
                    (!descriptions.is_null(row)).then(|| descriptions.value(row).to_owned());
                history
                    .products
                    .entry(codes.value(row).to_owned())
                    .or_default()
                    .push((
                        (month_of(months.value(row))?, description),
                        ProductPart {
                            lines: lines.value(row),
                            first_sale: (!first.is_null(row)).then(|| first.value(row)),
                            last_sale: (!last.is_null(row)).then(|| last.value(row)),
                        },
                    ));
            }
        }
        for batch in invoices {
            let numbers = text(batch, "invoice")?;
            let months = text(batch, "month")?;
            let customers = column(batch, "party_customers")?.as_list::<i32>();
            let countries = column(batch, "party_countries")?.as_list::<i32>();
            let cancellations = column(batch, "cancellation_lines")?.as_primitive::<Int64Type>();
            let negative =
                column(batch, "negative_cancellation_lines")?.as_primitive::<Int64Type>();
            let first_at = column(batch, "first_at")?.as_primitive::<TimestampMicrosecondType>();
            let last_at = column(batch, "last_at")?.as_primitive::<TimestampMicrosecondType>();
            for row in 0..batch.num_rows() {
                let party_customers = customers.value(row);
                let party_customers = party_customers.as_string::<i32>();
                let party_countries = countries.value(row);
                let party_countries = party_countries.as_string::<i32>();
                let parties = (0..party_countries.len())
                    .map(|i| {
                        (
                            (!party_customers.is_null(i))
                                .then(|| party_customers.value(i).to_owned()),
                            party_countries.value(i).to_owned(),
                        )
                    })
                    .collect();
                history
                    .invoices
                    .entry(numbers.value(row).to_owned())
                    .or_default()
                    .push((
                        month_of(months.value(row))?,
                        InvoiceMonth {
                            parties,
                            cancellation_lines: cancellations.value(row),
                            negative_cancellation_lines: negative.value(row),
                            first_at: first_at.value(row),
                            last_at: last_at.value(row),
                        },
                    ));
            }
        }
        history.sort_parts();
        Ok(history)
    }
}

/// Sorts and removes repeats.
fn sorted<T: Ord>(mut values: Vec<T>) -> Vec<T> {
    values.sort_unstable();
    values.dedup();
    values
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("history batch has no column {name}")))
}

fn text<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, ArrowError> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError(format!("history column {name} is not text")))
}

fn month_of(label: &str) -> Result<i32, ArrowError> {
    parse_month_label(label)
        .ok_or_else(|| ArrowError::InvalidArgumentError(format!("bad month {label:?}")))
}
