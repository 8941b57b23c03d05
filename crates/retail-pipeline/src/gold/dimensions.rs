//! The dimensions: `dim_date`, `dim_country`, `dim_product` and the type 2 `dim_customer`, from
//! the per-month history, with the keys facts need.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use deltalake::arrow::array::{
    BooleanArray, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::error::ArrowError;
use retail_domain::line_type::LineType;
use retail_lake::schema as tables;

use super::keys::{PriorKeys, assign_keys};
use super::{UNKNOWN_CUSTOMER_KEY, batch};
use crate::calendar::{date_key, date_of_day, day_of};
use crate::history::{History, Position};
use crate::silver_set::CountryAttributesByName;

/// Customer id → (start of each type 2 version, its key), in version order.
type VersionKeys = HashMap<String, Vec<(Position, i64)>>;

/// The dimensions and the keys facts need.
pub(super) struct Dimensions {
    pub(super) countries: HashMap<String, i64>,
    pub(super) products: HashMap<String, i64>,
    pub(super) versions: VersionKeys,
    pub(super) batches: [RecordBatch; 4],
}

pub(super) fn build_dimensions(
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
