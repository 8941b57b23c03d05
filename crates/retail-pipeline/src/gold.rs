//! Gold: the star schema and the aggregates of the contract, computed from silver rows.
//!
//! Pure computation: [`SilverSet`] is filled from silver batches, [`build_gold`] turns it into
//! one set of batches per gold table. Strings are interned so that a whole silver table fits in a
//! compact row array (about 70 bytes a row); money stays exact as integer thousandths.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray as _, BooleanArray, Date32Array, Decimal128Array, Float64Array,
    Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{
    Decimal128Type, Int32Type, Int64Type, SchemaRef, TimestampMicrosecondType,
};
use deltalake::arrow::error::ArrowError;
use retail_domain::line_type::LineType;
use retail_domain::rfm;
use retail_lake::schema::{self as tables, TableSpec};

use retail_metadata::Consistency;

use crate::history::{History, Position};

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Money mantissas are thousandths (scale 3).
const MONEY_SCALE: u32 = 3;
/// Marks an absent interned value.
const NONE: u32 = u32::MAX;
/// Marks an absent interned value (for the history module).
pub(crate) const NONE_ID: u32 = NONE;
/// Key of the unknown customer, used by guest sales.
pub const UNKNOWN_CUSTOMER_KEY: i64 = 0;

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
        self.invoice_date.div_euclid(MICROS_PER_DAY) as i32
    }

    fn is_purchase(&self) -> bool {
        self.quantity > 0
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
}

fn money_mantissa(value: i128) -> Result<i64, ArrowError> {
    i64::try_from(value)
        .map_err(|_| ArrowError::InvalidArgumentError(format!("amount {value} out of range")))
}

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
        let schema = tables::GOLD_FACT_SALES.arrow_schema();
        let month_of = |index: &u32| month_index(silver.rows[*index as usize].day());
        self.order
            .chunk_by(move |a, b| month_of(a) == month_of(b))
            .flat_map(move |month| month.chunks(self.batch_rows.max(1)))
            .map(move |chunk| {
                (
                    month_of(&chunk[0]),
                    fact_batch(silver, self, chunk, Arc::clone(&schema)),
                )
            })
    }
}

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
fn assign_keys<'a>(
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
                daily_sales(silver)?,
                product_monthly(silver)?,
                customer_rfm(history)?,
                cohort_retention(history)?,
                consistency(history),
            ))
        });
        let dimensions = build_dimensions(history, countries, prior);
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

/// Customer id → (start of each type 2 version, its key), in version order.
type VersionKeys = HashMap<String, Vec<(Position, i64)>>;

/// The dimensions and the keys facts need.
struct Dimensions {
    countries: HashMap<String, i64>,
    products: HashMap<String, i64>,
    versions: VersionKeys,
    batches: [RecordBatch; 4],
}

fn build_dimensions(
    history: &History,
    countries: &CountryAttributesByName,
    prior: &PriorKeys,
) -> Result<Dimensions, ArrowError> {
    let country_keys = assign_keys(countries.keys().map(String::as_str), &prior.countries);
    let product_keys = assign_keys(history.products.keys().map(String::as_str), &prior.products);
    let (versions, dim_customer) = dim_customer(history, &country_keys, prior)?;
    let batches = [
        dim_date(history)?,
        dim_country(countries, &country_keys)?,
        dim_product(history, &product_keys)?,
        dim_customer,
    ];
    Ok(Dimensions {
        countries: country_keys,
        products: product_keys,
        versions,
        batches,
    })
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(schema, columns)
}

fn money(values: Vec<i64>) -> Result<ArrayRef, ArrowError> {
    let values: Vec<i128> = values.into_iter().map(i128::from).collect();
    Ok(Arc::new(
        Decimal128Array::from(values).with_precision_and_scale(18, MONEY_SCALE as i8)?,
    ))
}

/// The day (since 1970-01-01) of a timestamp in micros.
pub(crate) fn day_of(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

/// Parses a `YYYY-MM` label back into a month index.
pub(crate) fn parse_month_label(label: &str) -> Option<i32> {
    let (year, month) = label.split_once('-')?;
    let (year, month): (i32, i32) = (year.parse().ok()?, month.parse().ok()?);
    (label.len() == 7 && (1..=12).contains(&month)).then_some(year * 12 + month - 1)
}

fn date_of_day(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).expect("days of real invoice dates")
}

fn date_key(day: i32) -> i32 {
    let date = date_of_day(day);
    date.year() * 10_000 + date.month() as i32 * 100 + date.day() as i32
}

/// Months since year 0, for month arithmetic.
pub(crate) fn month_index(day: i32) -> i32 {
    let date = date_of_day(day);
    date.year() * 12 + date.month0() as i32
}

pub(crate) fn month_label(index: i32) -> String {
    format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    )
}

fn dim_date(history: &History) -> Result<RecordBatch, ArrowError> {
    let days: Vec<i32> = match history.span() {
        Some((first, last)) => (day_of(first)..=day_of(last)).collect(),
        None => Vec::new(),
    };
    let dates: Vec<NaiveDate> = days.iter().map(|d| date_of_day(*d)).collect();
    let iso = |date: &NaiveDate| date.iso_week();
    batch(
        tables::GOLD_DIM_DATE.arrow_schema(),
        vec![
            Arc::new(Int32Array::from_iter_values(
                days.iter().map(|d| date_key(*d)),
            )),
            Arc::new(Date32Array::from(days.clone())),
            Arc::new(Int32Array::from_iter_values(
                dates.iter().map(Datelike::year),
            )),
            Arc::new(Int32Array::from_iter_values(
                dates.iter().map(|d| d.month0() as i32 / 3 + 1),
            )),
            Arc::new(Int32Array::from_iter_values(
                dates.iter().map(|d| d.month() as i32),
            )),
            Arc::new(StringArray::from_iter_values(
                dates.iter().map(|d| d.format("%B").to_string()),
            )),
            Arc::new(Int32Array::from_iter_values(
                dates.iter().map(|d| iso(d).year()),
            )),
            Arc::new(Int32Array::from_iter_values(
                dates.iter().map(|d| iso(d).week() as i32),
            )),
            Arc::new(Int32Array::from_iter_values(
                dates
                    .iter()
                    .map(|d| d.weekday().number_from_monday() as i32),
            )),
            Arc::new(StringArray::from_iter_values(
                dates.iter().map(|d| d.format("%A").to_string()),
            )),
            Arc::new(BooleanArray::from_iter(
                dates
                    .iter()
                    .map(|d| Some(d.weekday().number_from_monday() >= 6)),
            )),
        ],
    )
}

fn dim_country(
    countries: &CountryAttributesByName,
    keys: &HashMap<String, i64>,
) -> Result<RecordBatch, ArrowError> {
    batch(
        tables::GOLD_DIM_COUNTRY.arrow_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(
                countries.keys().map(|name| keys[name]),
            )),
            Arc::new(StringArray::from_iter_values(countries.keys())),
            Arc::new(StringArray::from_iter(
                countries.values().map(|(code, _)| code.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                countries.values().map(|(_, region)| region.as_str()),
            )),
        ],
    )
}

fn dim_product(history: &History, keys: &HashMap<String, i64>) -> Result<RecordBatch, ArrowError> {
    let mut descriptions = Vec::with_capacity(history.products.len());
    let mut first_sale = Vec::with_capacity(history.products.len());
    let mut last_sale = Vec::with_capacity(history.products.len());
    for parts in history.products.values() {
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        let (mut first, mut last) = (None::<i32>, None::<i32>);
        for ((_, description), part) in parts {
            if let Some(description) = description {
                *counts.entry(description.as_str()).or_default() += part.lines;
            }
            if let Some(day) = part.first_sale {
                first = Some(first.map_or(day, |f| f.min(day)));
            }
            last = last.max(part.last_sale);
        }
        // The most frequent description; ties go to the alphabetically first (the map is
        // sorted, and only a strictly larger count replaces the best).
        let mut best: Option<(&str, i64)> = None;
        for (description, count) in counts {
            if best.is_none_or(|(_, best_count)| count > best_count) {
                best = Some((description, count));
            }
        }
        descriptions.push(best.map(|(description, _)| description));
        first_sale.push(first);
        last_sale.push(last);
    }
    batch(
        tables::GOLD_DIM_PRODUCT.arrow_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(
                history.products.keys().map(|code| keys[code]),
            )),
            Arc::new(StringArray::from_iter_values(history.products.keys())),
            Arc::new(StringArray::from(descriptions)),
            Arc::new(StringArray::from_iter_values(
                history
                    .products
                    .keys()
                    .map(|code| LineType::from_stock_code(code).as_str()),
            )),
            Arc::new(Date32Array::from(first_sale)),
            Arc::new(Date32Array::from(last_sale)),
        ],
    )
}

/// Type 2 versions of every customer (with their keys) and `gold/dim_customer`.
fn dim_customer(
    history: &History,
    country_keys: &HashMap<String, i64>,
    prior: &PriorKeys,
) -> Result<(VersionKeys, RecordBatch), ArrowError> {
    let mut next_key = prior
        .customers
        .values()
        .copied()
        .max()
        .unwrap_or(UNKNOWN_CUSTOMER_KEY)
        + 1;
    let mut keys = vec![UNKNOWN_CUSTOMER_KEY];
    let mut ids = vec!["unknown"];
    let mut countries = vec!["Unknown".to_owned()];
    let mut customer_country_keys = vec![0];
    let mut numbers = vec![1];
    // Key 0: the unknown member that guest sales point to.
    let mut valid_from = vec![history.span().map_or(0, |(first, _)| first)];
    let mut valid_to: Vec<Option<i64>> = vec![None];
    let mut current = vec![true];
    let mut versions_by_customer = HashMap::with_capacity(history.customers.len());
    for customer in history.customers.keys() {
        let versions = history.versions(customer);
        let mut keyed = Vec::with_capacity(versions.len());
        for (index, version) in versions.iter().enumerate() {
            let number = index as i32 + 1;
            let identity = (customer.clone(), number, version.country.clone());
            let key = prior.customers.get(&identity).copied().unwrap_or_else(|| {
                next_key += 1;
                next_key - 1
            });
            let next = versions.get(index + 1);
            keys.push(key);
            ids.push(customer.as_str());
            countries.push(version.country.clone());
            customer_country_keys.push(country_keys.get(&version.country).copied().unwrap_or(0));
            numbers.push(number);
            valid_from.push(version.start.at);
            valid_to.push(next.map(|next| next.start.at));
            current.push(next.is_none());
            keyed.push((version.start.clone(), key));
        }
        versions_by_customer.insert(customer.clone(), keyed);
    }
    let batch = batch(
        tables::GOLD_DIM_CUSTOMER.arrow_schema(),
        vec![
            Arc::new(Int64Array::from(keys)),
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(countries)),
            Arc::new(Int64Array::from(customer_country_keys)),
            Arc::new(Int32Array::from(numbers)),
            Arc::new(TimestampMicrosecondArray::from(valid_from)),
            Arc::new(TimestampMicrosecondArray::from(valid_to)),
            Arc::new(BooleanArray::from(current)),
        ],
    )?;
    Ok((versions_by_customer, batch))
}

impl FactPlan {
    fn new(
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
        if row.quantity > 0 {
            self.gross += row.total_amount;
            self.units_sold += row.quantity;
        } else {
            self.returns -= row.total_amount;
            self.units_returned -= row.quantity;
        }
    }
}

fn daily_sales(silver: &SilverSet) -> Result<RecordBatch, ArrowError> {
    let mut sums: BTreeMap<(i32, u32), Sums> = BTreeMap::new();
    let mut orders = Vec::new();
    let mut customers = Vec::new();
    for row in &silver.rows {
        let key = (row.day(), row.country);
        sums.entry(key).or_default().add(row);
        if row.is_purchase() && !row.is_cancellation {
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

fn product_monthly(silver: &SilverSet) -> Result<RecordBatch, ArrowError> {
    let mut sums: FastMap<(i32, u32), Sums> = FastMap::default();
    let mut orders = Vec::new();
    for row in &silver.rows {
        let key = (month_index(row.day()), row.stock_code);
        sums.entry(key).or_default().add(row);
        if row.is_purchase() && !row.is_cancellation {
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

fn customer_rfm(history: &History) -> Result<RecordBatch, ArrowError> {
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

fn cohort_retention(history: &History) -> Result<RecordBatch, ArrowError> {
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

fn consistency(history: &History) -> Consistency {
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
