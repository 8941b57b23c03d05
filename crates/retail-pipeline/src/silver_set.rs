//! The silver rows gold is built from, held compactly: strings interned, money as integer
//! thousandths, about 80 bytes a row, so a whole silver table fits in memory.

use std::collections::{BTreeMap, HashMap};

use deltalake::arrow::array::{Array as _, ArrayRef, AsArray as _, RecordBatch};
use deltalake::arrow::datatypes::{Decimal128Type, Int64Type, TimestampMicrosecondType};
use deltalake::arrow::error::ArrowError;
use retail_domain::line_type::LineType;
use retail_domain::measure;

use crate::calendar::day_of;

/// Marks an absent interned value.
pub(crate) const NONE: u32 = u32::MAX;
/// Silver columns the gold layer reads.
pub const SILVER_COLUMNS: [&str; 14] = [
    "transaction_id",
    "invoice",
    "stock_code",
    "description",
    "quantity",
    "invoice_date",
    "unit_price",
    "customer_id",
    "country_name",
    "country_code",
    "region",
    "total_amount",
    "line_type",
    "data_quality_score",
];

/// FxHash (as in rustc): interning hashes millions of short keys, where SipHash's
/// DoS resistance buys nothing (the keys come from our own tables).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        for chunk in bytes.chunks(8) {
            let mut word = [0_u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(SEED);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: FastMap<String, u32>,
    pub(crate) values: Vec<String>,
}

impl Interner {
    fn intern(&mut self, value: &str) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 4 billion distinct values");
        self.ids.insert(value.to_owned(), id);
        self.values.push(value.to_owned());
        id
    }

    fn intern_owned(&mut self, value: String) -> u32 {
        if let Some(id) = self.ids.get(&value) {
            return *id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 4 billion distinct values");
        self.ids.insert(value.clone(), id);
        self.values.push(value);
        id
    }

    pub(crate) fn get(&self, id: u32) -> &str {
        &self.values[id as usize]
    }

    /// Ids sorted by their string, and each id's rank (0-based) in that order.
    pub(crate) fn sorted(&self) -> (Vec<u32>, Vec<u32>) {
        let mut order: Vec<u32> = (0..self.values.len() as u32).collect();
        order.sort_unstable_by(|a, b| self.get(*a).cmp(self.get(*b)));
        let mut rank = vec![0; order.len()];
        for (position, id) in order.iter().enumerate() {
            rank[*id as usize] = position as u32;
        }
        (order, rank)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub(crate) transaction_id: u128,
    pub(crate) invoice_date: i64,
    pub(crate) quantity: i64,
    pub(crate) unit_price: i64,
    pub(crate) total_amount: i64,
    pub(crate) invoice: u32,
    pub(crate) stock_code: u32,
    pub(crate) description: u32,
    pub(crate) customer: u32,
    pub(crate) country: u32,
    pub(crate) score: i16,
    pub(crate) line_type: LineType,
    pub(crate) is_cancellation: bool,
}

impl Row {
    pub(crate) fn day(&self) -> i32 {
        day_of(self.invoice_date)
    }

    /// A purchase line (the contract's definition, [`measure::is_purchase`]).
    pub(crate) fn is_purchase(&self) -> bool {
        measure::is_purchase(self.quantity)
    }

    /// A line that makes its invoice an order ([`measure::counts_as_order`]).
    pub(crate) fn counts_as_order(&self) -> bool {
        measure::counts_as_order(self.quantity, self.is_cancellation)
    }
}

#[derive(Debug, Clone)]
struct CountryAttributes {
    code: Option<String>,
    region: String,
}

/// The silver rows the gold layer is built from, held compactly.
#[derive(Debug, Default)]
pub struct SilverSet {
    pub(crate) rows: Vec<Row>,
    pub(crate) invoices: Interner,
    pub(crate) stock_codes: Interner,
    pub(crate) descriptions: Interner,
    pub(crate) customers: Interner,
    pub(crate) countries: Interner,
    country_attributes: FastMap<u32, CountryAttributes>,
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("silver batch has no column {name}")))
}

impl SilverSet {
    /// An empty set with room for `rows` rows: filling it, and absorbing another set into it
    /// up to that many rows, then moves no row (a growing vector copies every row it holds
    /// each time it doubles, and at the end holds up to twice the memory it needs).
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            rows: Vec::with_capacity(rows),
            ..Self::default()
        }
    }

    /// Returns the number of silver rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Returns true when no row is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds the rows of one silver batch (with at least [`SILVER_COLUMNS`]).
    ///
    /// # Errors
    ///
    /// When a column is missing or of the wrong type.
    pub fn push_batch(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let text = |name| column(batch, name).map(|c| c.as_string::<i32>());
        let ids = text("transaction_id")?;
        let invoices = text("invoice")?;
        let stock_codes = text("stock_code")?;
        let descriptions = text("description")?;
        let customers = text("customer_id")?;
        let country_names = text("country_name")?;
        let country_codes = text("country_code")?;
        let regions = text("region")?;
        let line_types = text("line_type")?;
        let quantities = column(batch, "quantity")?.as_primitive::<Int64Type>();
        let dates = column(batch, "invoice_date")?.as_primitive::<TimestampMicrosecondType>();
        let prices = column(batch, "unit_price")?.as_primitive::<Decimal128Type>();
        let totals = column(batch, "total_amount")?.as_primitive::<Decimal128Type>();
        let scores = column(batch, "data_quality_score")?.as_primitive::<Decimal128Type>();
        self.rows.reserve(batch.num_rows());
        for i in 0..batch.num_rows() {
            let country = self.countries.intern(country_names.value(i));
            self.country_attributes
                .entry(country)
                .or_insert_with(|| CountryAttributes {
                    code: (!country_codes.is_null(i)).then(|| country_codes.value(i).to_owned()),
                    region: regions.value(i).to_owned(),
                });
            let invoice = invoices.value(i);
            let line_type = LineType::parse(line_types.value(i)).ok_or_else(|| {
                ArrowError::InvalidArgumentError(format!(
                    "unknown line type {}",
                    line_types.value(i)
                ))
            })?;
            self.rows.push(Row {
                transaction_id: u128::from_str_radix(ids.value(i), 16).map_err(|_| {
                    ArrowError::InvalidArgumentError(format!("bad transaction id {}", ids.value(i)))
                })?,
                invoice_date: dates.value(i),
                quantity: quantities.value(i),
                unit_price: money_mantissa(prices.value(i))?,
                total_amount: money_mantissa(totals.value(i))?,
                invoice: self.invoices.intern(invoice),
                stock_code: self.stock_codes.intern(stock_codes.value(i)),
                description: if descriptions.is_null(i) {
                    NONE
                } else {
                    self.descriptions.intern(descriptions.value(i))
                },
                customer: if customers.is_null(i) {
                    NONE
                } else {
                    self.customers.intern(customers.value(i))
                },
                country,
                score: i16::try_from(scores.value(i)).unwrap_or(i16::MAX),
                line_type,
                is_cancellation: retail_domain::field::is_cancellation_invoice(invoice),
            });
        }
        Ok(())
    }

    /// Moves the rows of `other` into this set, re-interning its strings: the set then holds
    /// what pushing `other`'s batches here would have given (gold's walks sort the rows, so
    /// their order does not matter).
    pub fn absorb(&mut self, other: SilverSet) {
        fn remap(into: &mut Interner, from: Interner) -> Vec<u32> {
            from.values
                .into_iter()
                .map(|value| into.intern_owned(value))
                .collect()
        }
        let lookup = |ids: &[u32], id: u32| if id == NONE { NONE } else { ids[id as usize] };
        let invoices = remap(&mut self.invoices, other.invoices);
        let stock_codes = remap(&mut self.stock_codes, other.stock_codes);
        let descriptions = remap(&mut self.descriptions, other.descriptions);
        let customers = remap(&mut self.customers, other.customers);
        let countries = remap(&mut self.countries, other.countries);
        self.rows.reserve(other.rows.len());
        self.rows.extend(other.rows.into_iter().map(|row| Row {
            invoice: lookup(&invoices, row.invoice),
            stock_code: lookup(&stock_codes, row.stock_code),
            description: lookup(&descriptions, row.description),
            customer: lookup(&customers, row.customer),
            country: lookup(&countries, row.country),
            ..row
        }));
        for (id, attributes) in other.country_attributes {
            self.country_attributes
                .entry(countries[id as usize])
                .or_insert(attributes);
        }
    }
}

fn money_mantissa(value: i128) -> Result<i64, ArrowError> {
    i64::try_from(value)
        .map_err(|_| ArrowError::InvalidArgumentError(format!("amount {value} out of range")))
}

/// The walk order of silver rows: invoice date, then invoice, then transaction id, so that
/// every derived choice is deterministic.
pub fn walk_order(silver: &SilverSet) -> Vec<u32> {
    let mut order: Vec<u32> = (0..silver.rows.len() as u32).collect();
    let (_, invoice_rank) = silver.invoices.sorted();
    order.sort_unstable_by_key(|i| {
        let row = &silver.rows[*i as usize];
        (
            row.invoice_date,
            invoice_rank[row.invoice as usize],
            row.transaction_id,
        )
    });
    order
}

/// A country's attributes: ISO code and region.
pub type CountryAttributesByName = BTreeMap<String, (Option<String>, String)>;

/// The attributes of every country the rows of `silver` name.
pub fn countries_of(silver: &SilverSet) -> CountryAttributesByName {
    silver
        .country_attributes
        .iter()
        .map(|(id, attributes)| {
            (
                silver.countries.get(*id).to_owned(),
                (attributes.code.clone(), attributes.region.clone()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_gives_one_id_per_value_and_ranks_by_the_value() {
        let mut interner = Interner::default();
        let ids: Vec<u32> = ["b", "a", "c", "a", "b"]
            .iter()
            .map(|v| interner.intern(v))
            .collect();
        assert_eq!(ids, [0, 1, 2, 1, 0]);
        assert_eq!(interner.get(2), "c");
        let (order, rank) = interner.sorted();
        assert_eq!(order, [1, 0, 2], "a, b, c");
        assert_eq!(rank, [1, 0, 2]);
    }

    #[test]
    fn a_row_is_80_bytes_as_the_docs_say() {
        // The handover's limit and the memory figures in the docs count on it.
        assert_eq!(std::mem::size_of::<Row>(), 80);
    }

    #[test]
    fn purchases_and_orders_follow_the_contract() {
        let row = |quantity, is_cancellation| Row {
            transaction_id: 1,
            invoice_date: 0,
            quantity,
            unit_price: 1_000,
            total_amount: quantity * 1_000,
            invoice: 0,
            stock_code: 0,
            description: NONE,
            customer: NONE,
            country: 0,
            score: 100,
            line_type: LineType::Product,
            is_cancellation,
        };
        assert!(row(2, false).is_purchase() && row(2, false).counts_as_order());
        assert!(!row(-2, false).is_purchase() && !row(-2, false).counts_as_order());
        assert!(!row(-2, true).counts_as_order());
        // A positive line on a cancellation invoice is not an order.
        assert!(!row(2, true).counts_as_order());
    }

    #[test]
    fn a_batch_without_a_silver_column_is_refused_by_name() {
        let batch = RecordBatch::try_from_iter([(
            "invoice",
            std::sync::Arc::new(deltalake::arrow::array::StringArray::from(vec!["536365"]))
                as ArrayRef,
        )])
        .unwrap();
        let error = SilverSet::default().push_batch(&batch).unwrap_err();
        assert!(error.to_string().contains("transaction_id"), "{error}");
    }
}
