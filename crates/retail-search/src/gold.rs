//! Gold as search and recommendations read it: the documents of the index (products,
//! customers, invoices) and the purchase lines baskets and customer histories are made of.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use deltalake::arrow::array::{Array as _, AsArray as _, RecordBatch};
use deltalake::arrow::datatypes::{
    Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType,
};
use deltalake::arrow::error::ArrowError;
use futures::TryStreamExt as _;
use retail_domain::search::{CustomerDoc, InvoiceDoc, ProductDoc, price_band};
use retail_lake::Lake;
use retail_lake::cells::{column, day, money};
use retail_lake::schema::{
    GOLD_CUSTOMER_RFM, GOLD_DIM_COUNTRY, GOLD_DIM_CUSTOMER, GOLD_DIM_PRODUCT, GOLD_FACT_SALES,
    TableSpec,
};

use crate::error::{Error, Result};

/// A line that makes a basket and a customer's history: `line_type = product`, quantity > 0,
/// on an invoice that is not a cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purchase {
    /// Index into [`Gold::invoices`].
    pub invoice: u32,
    /// Index into [`Gold::customers`]; `None` for a guest.
    pub customer: Option<u32>,
    /// Index into [`Gold::products`].
    pub product: u32,
    /// The invoice day.
    pub date: NaiveDate,
}

/// What search and recommendations read from gold.
#[derive(Debug, Default, Clone)]
pub struct Gold {
    /// Every stock code, in `dim_product` order.
    pub products: Vec<ProductDoc>,
    /// Every identified customer.
    pub customers: Vec<CustomerDoc>,
    /// Every invoice.
    pub invoices: Vec<InvoiceDoc>,
    /// The basket lines, in fact order.
    pub purchases: Vec<Purchase>,
}

fn moment(micros: i64) -> std::result::Result<NaiveDateTime, ArrowError> {
    DateTime::from_timestamp_micros(micros)
        .map(|at| at.naive_utc())
        .ok_or_else(|| ArrowError::InvalidArgumentError(format!("timestamp {micros} out of range")))
}

async fn batches(lake: &Lake, table: &TableSpec) -> Result<Vec<RecordBatch>> {
    if lake.latest_version(table).await?.is_none() {
        return Ok(Vec::new());
    }
    Ok(lake.read_all(table).await?)
}

/// The median of `values` (the mean of the two middle ones when their number is even); 0
/// when empty.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// Per product, what the facts add up to.
#[derive(Debug, Default)]
struct ProductSums {
    prices: Vec<f64>,
    countries: BTreeSet<u32>,
    units: i64,
    revenue: f64,
    orders: HashSet<u32>,
}

/// Per customer, what the facts add up to.
#[derive(Debug, Default)]
struct CustomerSums {
    first: Option<NaiveDate>,
    last: Option<NaiveDate>,
    orders: HashSet<u32>,
    revenue: f64,
}

impl Gold {
    /// Reads gold from `lake`; empty when gold was never built.
    ///
    /// # Errors
    ///
    /// When a table cannot be read or lacks a column.
    pub async fn read(lake: &Lake) -> Result<Self> {
        let arrow = |source| Error::Arrow {
            what: "gold for search",
            source,
        };
        let mut country_of_key: HashMap<i64, u32> = HashMap::new();
        let mut country_names: Vec<String> = Vec::new();
        for batch in batches(lake, &GOLD_DIM_COUNTRY).await? {
            let keys = column(&batch, "country_key")
                .map_err(arrow)?
                .as_primitive::<Int64Type>();
            let names = column(&batch, "country_name")
                .map_err(arrow)?
                .as_string::<i32>();
            for row in 0..batch.num_rows() {
                country_of_key.insert(keys.value(row), country_names.len() as u32);
                country_names.push(names.value(row).to_owned());
            }
        }

        let mut gold = Gold::default();
        let mut product_of_key: HashMap<i64, u32> = HashMap::new();
        for batch in batches(lake, &GOLD_DIM_PRODUCT).await? {
            let keys = column(&batch, "product_key")
                .map_err(arrow)?
                .as_primitive::<Int64Type>();
            let codes = column(&batch, "stock_code")
                .map_err(arrow)?
                .as_string::<i32>();
            let descriptions = column(&batch, "description")
                .map_err(arrow)?
                .as_string::<i32>();
            let line_types = column(&batch, "line_type")
                .map_err(arrow)?
                .as_string::<i32>();
            let first = column(&batch, "first_sale_date")
                .map_err(arrow)?
                .as_primitive::<Date32Type>();
            let last = column(&batch, "last_sale_date")
                .map_err(arrow)?
                .as_primitive::<Date32Type>();
            for row in 0..batch.num_rows() {
                product_of_key.insert(keys.value(row), gold.products.len() as u32);
                let date = |array: &deltalake::arrow::array::Date32Array| {
                    if array.is_null(row) {
                        Ok(None)
                    } else {
                        day(array.value(row)).map(Some)
                    }
                };
                gold.products.push(ProductDoc {
                    stock_code: codes.value(row).to_owned(),
                    description: if descriptions.is_null(row) {
                        String::new()
                    } else {
                        descriptions.value(row).to_owned()
                    },
                    line_type: line_types.value(row).to_owned(),
                    price: 0.0,
                    price_band: String::new(),
                    countries: Vec::new(),
                    units: 0,
                    revenue: 0.0,
                    orders: 0,
                    first_sale: date(first).map_err(arrow)?,
                    last_sale: date(last).map_err(arrow)?,
                });
            }
        }

        let mut segment_of: HashMap<String, String> = HashMap::new();
        for batch in batches(lake, &GOLD_CUSTOMER_RFM).await? {
            let ids = column(&batch, "customer_id")
                .map_err(arrow)?
                .as_string::<i32>();
            let segments = column(&batch, "segment").map_err(arrow)?.as_string::<i32>();
            for row in 0..batch.num_rows() {
                segment_of.insert(ids.value(row).to_owned(), segments.value(row).to_owned());
            }
        }
        let mut customer_of_key: HashMap<i64, u32> = HashMap::new();
        let mut customer_of_id: HashMap<String, u32> = HashMap::new();
        for batch in batches(lake, &GOLD_DIM_CUSTOMER).await? {
            let keys = column(&batch, "customer_key")
                .map_err(arrow)?
                .as_primitive::<Int64Type>();
            let ids = column(&batch, "customer_id")
                .map_err(arrow)?
                .as_string::<i32>();
            let countries = column(&batch, "country_name")
                .map_err(arrow)?
                .as_string::<i32>();
            let current = column(&batch, "is_current").map_err(arrow)?.as_boolean();
            for row in 0..batch.num_rows() {
                if keys.value(row) == 0 {
                    continue;
                }
                let id = ids.value(row);
                let index = *customer_of_id.entry(id.to_owned()).or_insert_with(|| {
                    gold.customers.push(CustomerDoc {
                        customer_id: id.to_owned(),
                        country: String::new(),
                        segment: segment_of.get(id).cloned(),
                        first_purchase: None,
                        last_purchase: None,
                        orders: 0,
                        revenue: 0.0,
                    });
                    (gold.customers.len() - 1) as u32
                });
                customer_of_key.insert(keys.value(row), index);
                if current.value(row) {
                    gold.customers[index as usize].country = countries.value(row).to_owned();
                }
            }
        }

        let mut products = Vec::new();
        products.resize_with(gold.products.len(), ProductSums::default);
        let mut customers = Vec::new();
        customers.resize_with(gold.customers.len(), CustomerSums::default);
        let mut invoice_of: HashMap<String, u32> = HashMap::new();
        if lake.latest_version(&GOLD_FACT_SALES).await?.is_some() {
            let columns = [
                "customer_key",
                "product_key",
                "country_key",
                "invoice",
                "invoice_date",
                "quantity",
                "unit_price",
                "total_amount",
                "is_cancellation",
                "line_type",
            ];
            let mut stream = lake.scan(&GOLD_FACT_SALES, Some(&columns)).await?;
            while let Some(batch) = stream.try_next().await.map_err(|source| Error::Read {
                table: GOLD_FACT_SALES.name,
                source: Box::new(source),
            })? {
                let facts = Facts::of(&batch).map_err(arrow)?;
                for row in 0..batch.num_rows() {
                    let fact = facts.row(row).map_err(arrow)?;
                    let product = *product_of_key.get(&fact.product_key).ok_or_else(|| {
                        arrow(ArrowError::InvalidArgumentError(format!(
                            "product key {} is not in dim_product",
                            fact.product_key
                        )))
                    })?;
                    let customer = customer_of_key.get(&fact.customer_key).copied();
                    let country = country_of_key.get(&fact.country_key).copied();
                    let invoice = *invoice_of
                        .entry(fact.invoice.to_owned())
                        .or_insert_with(|| {
                            gold.invoices.push(InvoiceDoc {
                                invoice: fact.invoice.to_owned(),
                                customer_id: customer.map(|index| {
                                    gold.customers[index as usize].customer_id.clone()
                                }),
                                country: country
                                    .map(|index| country_names[index as usize].clone())
                                    .unwrap_or_default(),
                                date: fact.at,
                                total: 0.0,
                                lines: 0,
                                cancellation: false,
                            });
                            (gold.invoices.len() - 1) as u32
                        });
                    let doc = &mut gold.invoices[invoice as usize];
                    doc.total += fact.total;
                    doc.lines += 1;
                    doc.cancellation |= fact.cancellation;
                    doc.date = doc.date.min(fact.at);

                    let sums = &mut products[product as usize];
                    sums.revenue += fact.total;
                    let date = fact.at.date();
                    if fact.quantity > 0 {
                        sums.units += fact.quantity;
                        if fact.price > 0.0 {
                            sums.prices.push(fact.price);
                        }
                        if let Some(country) = country {
                            sums.countries.insert(country);
                        }
                        if !fact.cancellation {
                            sums.orders.insert(invoice);
                        }
                    }
                    if let Some(customer) = customer {
                        let sums = &mut customers[customer as usize];
                        sums.revenue += fact.total;
                        if fact.quantity > 0 {
                            sums.first = Some(sums.first.map_or(date, |first| first.min(date)));
                            sums.last = Some(sums.last.map_or(date, |last| last.max(date)));
                            if !fact.cancellation {
                                sums.orders.insert(invoice);
                            }
                        }
                    }
                    if fact.quantity > 0 && !fact.cancellation && fact.line_type == "product" {
                        gold.purchases.push(Purchase {
                            invoice,
                            customer,
                            product,
                            date,
                        });
                    }
                }
            }
        }
        for (doc, mut sums) in gold.products.iter_mut().zip(products) {
            doc.price = median(&mut sums.prices);
            doc.price_band = price_band(doc.price).to_owned();
            doc.countries = sums
                .countries
                .iter()
                .map(|&index| country_names[index as usize].clone())
                .collect();
            doc.countries.sort();
            doc.units = sums.units;
            doc.revenue = round3(sums.revenue);
            doc.orders = sums.orders.len() as i64;
        }
        for (doc, sums) in gold.customers.iter_mut().zip(customers) {
            doc.first_purchase = sums.first;
            doc.last_purchase = sums.last;
            doc.orders = sums.orders.len() as i64;
            doc.revenue = round3(sums.revenue);
        }
        for invoice in &mut gold.invoices {
            invoice.total = round3(invoice.total);
        }
        Ok(gold)
    }
}

/// Money stays exact to the thousandth in gold; sums of `f64` are rounded back to it.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The fact columns search reads, typed once per batch.
struct Facts<'a> {
    customer_key: &'a deltalake::arrow::array::Int64Array,
    product_key: &'a deltalake::arrow::array::Int64Array,
    country_key: &'a deltalake::arrow::array::Int64Array,
    invoice: &'a deltalake::arrow::array::StringArray,
    at: &'a deltalake::arrow::array::TimestampMicrosecondArray,
    quantity: &'a deltalake::arrow::array::Int64Array,
    price: &'a deltalake::arrow::array::Decimal128Array,
    total: &'a deltalake::arrow::array::Decimal128Array,
    cancellation: &'a deltalake::arrow::array::BooleanArray,
    line_type: &'a deltalake::arrow::array::StringArray,
}

/// One fact line.
struct Fact<'a> {
    customer_key: i64,
    product_key: i64,
    country_key: i64,
    invoice: &'a str,
    at: NaiveDateTime,
    quantity: i64,
    price: f64,
    total: f64,
    cancellation: bool,
    line_type: &'a str,
}

impl<'a> Facts<'a> {
    fn of(batch: &'a RecordBatch) -> std::result::Result<Self, ArrowError> {
        Ok(Self {
            customer_key: column(batch, "customer_key")?.as_primitive::<Int64Type>(),
            product_key: column(batch, "product_key")?.as_primitive::<Int64Type>(),
            country_key: column(batch, "country_key")?.as_primitive::<Int64Type>(),
            invoice: column(batch, "invoice")?.as_string::<i32>(),
            at: column(batch, "invoice_date")?.as_primitive::<TimestampMicrosecondType>(),
            quantity: column(batch, "quantity")?.as_primitive::<Int64Type>(),
            price: column(batch, "unit_price")?.as_primitive::<Decimal128Type>(),
            total: column(batch, "total_amount")?.as_primitive::<Decimal128Type>(),
            cancellation: column(batch, "is_cancellation")?.as_boolean(),
            line_type: column(batch, "line_type")?.as_string::<i32>(),
        })
    }

    fn row(&self, row: usize) -> std::result::Result<Fact<'a>, ArrowError> {
        Ok(Fact {
            customer_key: self.customer_key.value(row),
            product_key: self.product_key.value(row),
            country_key: self.country_key.value(row),
            invoice: self.invoice.value(row),
            at: moment(self.at.value(row))?,
            quantity: self.quantity.value(row),
            price: money(self.price.value(row)),
            total: money(self.total.value(row)),
            cancellation: self.cancellation.value(row),
            line_type: self.line_type.value(row),
        })
    }
}
