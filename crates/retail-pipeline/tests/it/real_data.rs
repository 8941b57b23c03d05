//! The whole Online Retail I dataset through the pipeline, checked against its known totals
//! and against an independent computation straight from the CSV files.

use std::collections::{HashMap, HashSet};
use std::str::FromStr as _;

use deltalake::datafusion::prelude::SessionContext;
use retail_lake::schema::{
    self as tables, BRONZE_TRANSACTIONS, SILVER_DUPLICATES, SILVER_QUARANTINE, SILVER_TRANSACTIONS,
};
use retail_metadata::RunStatus;
use rust_decimal::Decimal;

use crate::support::{TestLake, daily_files, real_data, rows, strings, sum_int, sum_money};

/// Figures computed from the raw CSV files without the platform: exact duplicates (on the raw
/// text of the eight fields) removed, rows with a negative price dropped, amounts exact.
struct Independent {
    raw_rows: usize,
    raw_total: Decimal,
    duplicates: usize,
    negative_price: usize,
    net_revenue: Decimal,
    gross_revenue: Decimal,
    units: i64,
    customers: usize,
    invoices: usize,
}

fn compute_independently(files: &[std::path::PathBuf]) -> Independent {
    let mut seen = HashSet::new();
    let mut result = Independent {
        raw_rows: 0,
        raw_total: Decimal::ZERO,
        duplicates: 0,
        negative_price: 0,
        net_revenue: Decimal::ZERO,
        gross_revenue: Decimal::ZERO,
        units: 0,
        customers: 0,
        invoices: 0,
    };
    let mut customers = HashSet::new();
    let mut invoices = HashSet::new();
    for file in files {
        let mut reader = csv::Reader::from_path(file).expect("readable csv");
        for record in reader.records() {
            let record = record.expect("well-formed record");
            result.raw_rows += 1;
            let quantity = Decimal::from_str(&record[3]).expect("quantity");
            let price = Decimal::from_str(&record[5]).expect("price");
            result.raw_total += quantity * price;
            if price < Decimal::ZERO {
                result.negative_price += 1;
                continue;
            }
            let key: Vec<String> = record.iter().map(str::to_owned).collect();
            if !seen.insert(key) {
                result.duplicates += 1;
                continue;
            }
            result.net_revenue += quantity * price;
            if quantity > Decimal::ZERO {
                result.gross_revenue += quantity * price;
                result.units += i64::try_from(quantity.mantissa()).expect("whole quantity");
            }
            if !record[6].is_empty() {
                customers.insert(record[6].to_owned());
            }
            invoices.insert(record[0].to_owned());
        }
    }
    result.customers = customers.len();
    result.invoices = invoices.len();
    result
}

#[tokio::test]
async fn the_whole_dataset_reconciles_with_its_known_totals_and_an_independent_computation() {
    let Some(data) = real_data() else { return };
    let files = daily_files(&data);
    assert_eq!(files.len(), 305);
    let expected = compute_independently(&files);
    // The data's README: 541,909 rows, 5,268 exact duplicates, sum 9,747,747.93.
    assert_eq!(expected.raw_rows, 541_909);
    assert_eq!(
        expected.raw_total.round_dp(2),
        Decimal::from_str("9747747.93").unwrap()
    );

    let lake = TestLake::new();
    let ingestion = lake.ingest(&[data.join("spark-guide-by-day")]).await;
    assert_eq!(ingestion.rows_out, 541_909);
    assert_eq!(ingestion.detail.files.len(), 305);
    let run = lake.run().await;
    assert_eq!(run.status, RunStatus::Succeeded);

    // Bronze = silver + quarantine + duplicates, as tables and as the run saw it.
    let reconciliation = run.detail.reconciliation.expect("recorded");
    assert_eq!(reconciliation.bronze, 541_909);
    assert_eq!(reconciliation.quarantine, expected.negative_price as u64);
    assert_eq!(reconciliation.duplicates, expected.duplicates as u64);
    assert_eq!(expected.duplicates, 5_268);
    assert_eq!(reconciliation.silver, 541_909 - 5_268 - 2);
    assert!(reconciliation.balances());
    assert_eq!(
        lake.lake.count_rows(&BRONZE_TRANSACTIONS).await.unwrap(),
        541_909
    );
    assert_eq!(lake.lake.count_rows(&SILVER_QUARANTINE).await.unwrap(), 2);
    assert_eq!(
        lake.lake.count_rows(&SILVER_DUPLICATES).await.unwrap(),
        5_268
    );

    // Money, exactly, in silver, the fact table and the daily aggregate.
    let silver = lake.read(&SILVER_TRANSACTIONS).await;
    assert_eq!(sum_money(&silver, "total_amount"), expected.net_revenue);
    let facts = lake.read(&tables::GOLD_FACT_SALES).await;
    assert_eq!(rows(&facts), 536_639);
    assert_eq!(sum_money(&facts, "total_amount"), expected.net_revenue);
    let daily = lake.read(&tables::GOLD_DAILY_SALES).await;
    assert_eq!(sum_money(&daily, "net_revenue"), expected.net_revenue);
    assert_eq!(sum_money(&daily, "gross_revenue"), expected.gross_revenue);
    assert_eq!(
        sum_money(&daily, "gross_revenue") - sum_money(&daily, "returns_amount"),
        expected.net_revenue
    );
    assert_eq!(sum_int(&daily, "units"), expected.units);
    assert_eq!(sum_int(&daily, "lines"), 536_639);

    // Known distinct counts: 4,372 customers, 38 countries; invoices less the two bad-debt
    // adjustments, which only hold quarantined lines.
    let silver_customers: HashSet<_> = strings(&silver, "customer_id")
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(silver_customers.len(), 4_372);
    assert_eq!(silver_customers.len(), expected.customers);
    let silver_invoices: HashSet<_> = strings(&silver, "invoice").into_iter().flatten().collect();
    assert_eq!(silver_invoices.len(), 25_900 - 2);
    assert_eq!(rows(&lake.read(&tables::GOLD_DIM_COUNTRY).await), 38);
    assert_eq!(expected.invoices, 25_898);
    // The data README's "standard clean" subset (customer present, quantity > 0, price > 0):
    // 4,338 customers and 18,532 invoices; duplicates do not change distinct counts.
    let quantities = int_column(&silver, "quantity");
    let prices = decimal_column(&silver, "unit_price");
    let (mut clean_customers, mut clean_invoices) = (HashSet::new(), HashSet::new());
    for (((customer, invoice), quantity), price) in strings(&silver, "customer_id")
        .into_iter()
        .zip(strings(&silver, "invoice"))
        .zip(&quantities)
        .zip(&prices)
    {
        if let Some(customer) = customer.filter(|_| *quantity > 0 && *price > 0) {
            clean_customers.insert(customer);
            clean_invoices.insert(invoice);
        }
    }
    assert_eq!(
        (clean_customers.len(), clean_invoices.len()),
        (4_338, 18_532)
    );

    // RFM covers exactly the customers with a purchase line; every score is 1 to 5.
    let rfm = lake.read(&tables::GOLD_CUSTOMER_RFM).await;
    let with_purchase: HashSet<String> = strings(&silver, "customer_id")
        .into_iter()
        .zip(&quantities)
        .filter_map(|(customer, quantity)| customer.filter(|_| *quantity > 0))
        .collect();
    assert_eq!(rows(&rfm), with_purchase.len());
    let segments: HashMap<String, usize> =
        strings(&rfm, "segment")
            .into_iter()
            .flatten()
            .fold(HashMap::new(), |mut counts, s| {
                *counts.entry(s).or_default() += 1;
                counts
            });
    assert!(
        segments.len() >= 8,
        "customers spread over the segments: {segments:?}"
    );

    // A second reader: DataFusion SQL over the Delta table gives the same figures.
    let ctx = SessionContext::new();
    let table = lake
        .lake
        .open(&SILVER_TRANSACTIONS)
        .await
        .unwrap()
        .expect("silver exists");
    ctx.register_table("silver", table.table_provider().await.unwrap())
        .unwrap();
    let frame = ctx
        .sql("SELECT count(*) AS n, CAST(sum(total_amount) AS VARCHAR) AS total, count(DISTINCT customer_id) AS customers FROM silver")
        .await
        .unwrap();
    let batches = frame.collect().await.unwrap();
    let rendered = retail_lake::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(rendered.contains("536639"), "{rendered}");
    assert!(
        rendered.contains(&expected.net_revenue.to_string()),
        "{rendered}"
    );
    assert!(rendered.contains("4372"), "{rendered}");

    // Running again with nothing new changes nothing and says so.
    let versions_before = table_versions(&lake).await;
    let again = lake.run().await;
    assert_eq!(again.status, RunStatus::UpToDate);
    assert_eq!((again.rows_in, again.rows_out), (0, 0));
    assert_eq!(table_versions(&lake).await, versions_before);
}

fn int_column(batches: &[retail_lake::arrow::array::RecordBatch], name: &str) -> Vec<i64> {
    use retail_lake::arrow::array::AsArray as _;
    batches
        .iter()
        .flat_map(|b| {
            let column = b.column_by_name(name).expect("column");
            column
                .as_primitive::<retail_lake::arrow::datatypes::Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

/// Decimal mantissas of a column (the scale is the column's).
fn decimal_column(batches: &[retail_lake::arrow::array::RecordBatch], name: &str) -> Vec<i128> {
    use retail_lake::arrow::array::AsArray as _;
    batches
        .iter()
        .flat_map(|b| {
            let column = b.column_by_name(name).expect("column");
            column
                .as_primitive::<retail_lake::arrow::datatypes::Decimal128Type>()
                .values()
                .to_vec()
        })
        .collect()
}

async fn table_versions(lake: &TestLake) -> Vec<Option<u64>> {
    let mut versions = Vec::new();
    for table in tables::ALL_TABLES {
        versions.push(lake.lake.latest_version(&table).await.unwrap());
    }
    versions
}
