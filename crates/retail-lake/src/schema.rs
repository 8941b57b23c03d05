//! The tables of the lake and their Arrow schemas, as `DATA_CONTRACT.md` names them.
//!
//! Money is `Decimal128(18, 3)` (exact, three fractional digits as the contract allows), quality
//! scores `Decimal128(3, 2)`, shop-local times `Timestamp(µs)` without a zone (Delta
//! `timestamp_ntz`) and ingestion times `Timestamp(µs, UTC)`.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use retail_domain::column::Column;

/// A table of the lake, as the registry defines it: its name (also its path below the root),
/// schema and partitioning, which asset writes it, and how the warehouse serves it.
///
/// Every list of tables in the platform (the lake's, the asset graph's, the embedded
/// warehouse's relations, the PostgreSQL loads) is derived from [`ALL_TABLES`].
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// `layer/name`, for example `silver/retail_transactions`.
    pub name: &'static str,
    /// Builds the table's Arrow schema.
    pub schema: fn() -> SchemaRef,
    /// Partition columns (strings), in order.
    pub partition_columns: &'static [&'static str],
    /// What writes it.
    pub writer: Writer,
    /// How the warehouse serves it, when it does.
    pub warehouse: Option<WarehouseTable>,
    /// An internal table (gold's per-month history): kept for the platform, not for readers.
    pub internal: bool,
}

/// What writes a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Ingestion (every source).
    Ingestion,
    /// The silver asset.
    Silver,
    /// The gold asset.
    Gold,
    /// The models asset (forecasts, anomalies, customer lifetime value, the model registry).
    Models,
    /// The recommendations asset (association rules, item-to-item neighbours, "for you").
    Recommendations,
}

/// How a gold table is served by the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarehouseTable {
    /// The relation's name on both backends (`fact_sales`).
    pub relation: &'static str,
    /// The column whose values split the table into slices that a PostgreSQL load compares
    /// and rewrites one by one; `None`: the table is replaced whole.
    pub slice_by: Option<&'static str>,
}

const fn served(relation: &'static str) -> Option<WarehouseTable> {
    Some(WarehouseTable {
        relation,
        slice_by: None,
    })
}

const fn served_by_slice(relation: &'static str, column: &'static str) -> Option<WarehouseTable> {
    Some(WarehouseTable {
        relation,
        slice_by: Some(column),
    })
}

impl TableSpec {
    /// Returns the table's Arrow schema.
    pub fn arrow_schema(&self) -> SchemaRef {
        (self.schema)()
    }
}

impl std::fmt::Display for TableSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Application id of the mark every gold commit carries: the silver version the build read.
/// The tables of one complete build carry the same mark, so readers can tell one generation
/// of gold from a build still committing its tables.
pub const GOLD_MARK: &str = "retail.pipeline.gold";

/// The application id of the models' progress mark: every table the models asset writes
/// carries the gold version (`gold/fact_sales`' Delta version) its models were trained on.
pub const MODELS_MARK: &str = "retail.models";

/// The application id of the recommendations' progress mark: every table the
/// recommendations asset writes carries the gold version it was fitted on.
pub const RECOMMENDATIONS_MARK: &str = "retail.recommendations";

/// Decimal type of money columns.
pub const MONEY: DataType = DataType::Decimal128(18, 3);
/// Decimal type of quality scores.
pub const SCORE: DataType = DataType::Decimal128(3, 2);

/// Type of shop-local timestamps (no time zone).
pub fn local_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// Type of UTC instants.
pub fn utc_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn field(name: &str, data_type: DataType, nullable: bool) -> Field {
    Field::new(name, data_type, nullable)
}

fn utf8(name: &str) -> Field {
    field(name, DataType::Utf8, false)
}

fn utf8_null(name: &str) -> Field {
    field(name, DataType::Utf8, true)
}

/// Nullable text fields of the eight business columns, by their canonical names, in contract
/// order: how bronze and quarantine keep values as they arrived.
fn raw_business_fields() -> impl Iterator<Item = Field> {
    Column::ALL
        .into_iter()
        .map(|column| utf8_null(column.name()))
}

/// Lineage columns that bronze rows carry and silver, quarantine and duplicates keep.
fn lineage_fields() -> Vec<Field> {
    vec![
        utf8("ingestion_id"),
        utf8("batch_id"),
        utf8("source_system"),
        utf8("source_location"),
        field("source_row", DataType::Int64, false),
        field("ingested_at", utc_timestamp(), false),
    ]
}

fn bronze_schema() -> SchemaRef {
    let mut fields = lineage_fields();
    fields.push(utf8("record_hash"));
    fields.extend(raw_business_fields());
    fields.push(utf8_null("extra_columns"));
    fields.push(utf8_null("raw_text"));
    fields.push(utf8_null("parse_error"));
    fields.extend(change_fields());
    Arc::new(Schema::new(fields))
}

/// The change a bronze record makes (null: an insert) and the transaction it targets. Added
/// after the first release: lakes written before get them as null columns (see
/// `Lake::ensure_table`), so they stay last.
fn change_fields() -> [Field; 2] {
    [utf8_null("operation"), utf8_null("target_transaction_id")]
}

fn silver_schema() -> SchemaRef {
    let mut fields = vec![
        utf8("transaction_id"),
        utf8("invoice"),
        utf8("stock_code"),
        utf8_null("description"),
        field("quantity", DataType::Int64, false),
        field("invoice_date", local_timestamp(), false),
        field("unit_price", MONEY, false),
        utf8_null("customer_id"),
        utf8("country"),
        utf8("country_name"),
        utf8_null("country_code"),
        field("total_amount", MONEY, false),
        field("is_return", DataType::Boolean, false),
        field("is_cancellation", DataType::Boolean, false),
        utf8("line_type"),
        field("data_quality_score", SCORE, false),
        utf8_null("email"),
        utf8_null("extra_columns"),
    ];
    fields.extend(lineage_fields());
    fields.push(utf8("run_id"));
    fields.push(utf8("region"));
    fields.push(utf8("invoice_month"));
    Arc::new(Schema::new(fields))
}

fn quarantine_schema() -> SchemaRef {
    let mut fields = lineage_fields();
    fields.push(utf8("record_hash"));
    fields.extend(raw_business_fields());
    fields.push(utf8_null("extra_columns"));
    fields.push(utf8_null("raw_text"));
    fields.push(utf8_null("parse_error"));
    fields.push(field(
        "reasons",
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        false,
    ));
    fields.push(utf8("run_id"));
    fields.push(field("quarantined_at", utc_timestamp(), false));
    fields.extend(change_fields());
    Arc::new(Schema::new(fields))
}

fn changes_schema() -> SchemaRef {
    let mut fields = vec![
        utf8("target_transaction_id"),
        utf8_null("replacement_transaction_id"),
    ];
    fields.extend(lineage_fields());
    fields.push(utf8("record_hash"));
    fields.push(utf8("run_id"));
    fields.push(field("bronze_version", DataType::Int64, false));
    fields.push(utf8("change"));
    Arc::new(Schema::new(fields))
}

fn duplicates_schema() -> SchemaRef {
    let mut fields = vec![utf8("transaction_id")];
    fields.extend(lineage_fields());
    fields.push(utf8("record_hash"));
    fields.push(utf8("run_id"));
    Arc::new(Schema::new(fields))
}

fn fact_sales_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("transaction_id"),
        field("date_key", DataType::Int32, false),
        field("customer_key", DataType::Int64, false),
        field("product_key", DataType::Int64, false),
        field("country_key", DataType::Int64, false),
        utf8("invoice"),
        field("invoice_date", local_timestamp(), false),
        field("quantity", DataType::Int64, false),
        field("unit_price", MONEY, false),
        field("total_amount", MONEY, false),
        field("is_return", DataType::Boolean, false),
        field("is_cancellation", DataType::Boolean, false),
        utf8("line_type"),
        field("data_quality_score", SCORE, false),
    ]))
}

fn dim_customer_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("customer_key", DataType::Int64, false),
        utf8("customer_id"),
        utf8("country_name"),
        field("country_key", DataType::Int64, false),
        field("version", DataType::Int32, false),
        field("valid_from", local_timestamp(), false),
        field("valid_to", local_timestamp(), true),
        field("is_current", DataType::Boolean, false),
    ]))
}

fn dim_product_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("product_key", DataType::Int64, false),
        utf8("stock_code"),
        utf8_null("description"),
        utf8("line_type"),
        field("first_sale_date", DataType::Date32, true),
        field("last_sale_date", DataType::Date32, true),
    ]))
}

fn dim_country_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("country_key", DataType::Int64, false),
        utf8("country_name"),
        utf8_null("country_code"),
        utf8("region"),
    ]))
}

fn dim_date_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("date_key", DataType::Int32, false),
        field("date", DataType::Date32, false),
        field("year", DataType::Int32, false),
        field("quarter", DataType::Int32, false),
        field("month", DataType::Int32, false),
        utf8("month_name"),
        field("iso_year", DataType::Int32, false),
        field("iso_week", DataType::Int32, false),
        field("day_of_week", DataType::Int32, false),
        utf8("day_name"),
        field("is_weekend", DataType::Boolean, false),
    ]))
}

fn daily_sales_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("date", DataType::Date32, false),
        field("date_key", DataType::Int32, false),
        utf8("country_name"),
        field("gross_revenue", MONEY, false),
        field("returns_amount", MONEY, false),
        field("net_revenue", MONEY, false),
        field("orders", DataType::Int64, false),
        field("units", DataType::Int64, false),
        field("customers", DataType::Int64, false),
        field("lines", DataType::Int64, false),
    ]))
}

fn product_monthly_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("month"),
        utf8("stock_code"),
        field("net_revenue", MONEY, false),
        field("units_sold", DataType::Int64, false),
        field("units_returned", DataType::Int64, false),
        field("orders", DataType::Int64, false),
        field("return_rate", DataType::Float64, true),
    ]))
}

fn customer_rfm_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("customer_id"),
        field("reference_date", DataType::Date32, false),
        field("last_purchase_date", DataType::Date32, false),
        field("recency_days", DataType::Int64, false),
        field("frequency", DataType::Int64, false),
        field("monetary", MONEY, false),
        field("r_score", DataType::Int32, false),
        field("f_score", DataType::Int32, false),
        field("m_score", DataType::Int32, false),
        utf8("segment"),
    ]))
}

fn cohort_retention_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("cohort_month"),
        field("month_offset", DataType::Int32, false),
        utf8("activity_month"),
        field("cohort_size", DataType::Int64, false),
        field("active_customers", DataType::Int64, false),
        field("retention", DataType::Float64, false),
    ]))
}

fn float(name: &str) -> Field {
    field(name, DataType::Float64, false)
}

fn forecast_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("model_version", DataType::Int64, false),
        utf8("metric"),
        utf8_null("country_name"),
        field("date", DataType::Date32, false),
        float("value"),
        float("lower_80"),
        float("upper_80"),
        float("lower_95"),
        float("upper_95"),
        utf8("model"),
    ]))
}

fn forecast_backtest_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("model_version", DataType::Int64, false),
        utf8("metric"),
        utf8_null("country_name"),
        utf8("model"),
        field("chosen", DataType::Boolean, false),
        float("mase"),
        float("smape"),
        float("coverage_80"),
        float("coverage_95"),
        float("raw_coverage_80"),
        float("raw_coverage_95"),
        float("scale_80"),
        float("scale_95"),
        field("days", DataType::Int64, false),
    ]))
}

fn product_pairs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("antecedent"),
        utf8("consequent"),
        field("baskets", DataType::Int64, false),
        field("baskets_antecedent", DataType::Int64, false),
        field("baskets_consequent", DataType::Int64, false),
        field("baskets_both", DataType::Int64, false),
        float("support"),
        float("confidence"),
        float("lift"),
    ]))
}

fn product_neighbours_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("stock_code"),
        field("rank", DataType::Int32, false),
        utf8("neighbour"),
        float("similarity"),
        field("customers_both", DataType::Int64, false),
    ]))
}

fn customer_recommendations_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("customer_id"),
        field("rank", DataType::Int32, false),
        utf8("stock_code"),
        float("score"),
        utf8_null("because"),
    ]))
}

fn anomalies_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("model_version", DataType::Int64, false),
        field("date", DataType::Date32, false),
        float("score"),
        field("is_anomaly", DataType::Boolean, false),
        utf8("reasons"),
        utf8("metrics"),
    ]))
}

fn customer_clv_schema() -> SchemaRef {
    let mut fields = vec![
        field("model_version", DataType::Int64, false),
        utf8("customer_id"),
        utf8("country_name"),
        utf8_null("segment"),
        float("frequency"),
        float("recency"),
        float("t"),
        float("monetary_value"),
    ];
    for name in [
        "probability_alive",
        "expected_purchases_30d",
        "expected_purchases_90d",
        "expected_purchases_365d",
        "expected_spend",
        "clv_6m",
        "clv_12m",
    ] {
        fields.push(float(name));
        fields.push(Field::new(
            format!("{name}_lower"),
            DataType::Float64,
            false,
        ));
        fields.push(Field::new(
            format!("{name}_upper"),
            DataType::Float64,
            false,
        ));
    }
    fields.push(float("churn_risk"));
    Arc::new(Schema::new(fields))
}

fn model_versions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("model"),
        field("version", DataType::Int64, false),
        utf8("status"),
        field("gold_version", DataType::Int64, false),
        field("trained_at", utc_timestamp(), false),
        field("training_ms", DataType::Int64, false),
        field("rows", DataType::Int64, false),
        utf8("parameters"),
        utf8("metrics"),
    ]))
}

fn list(name: &str, item: DataType, nullable_items: bool) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", item, nullable_items))),
        false,
    )
}

fn history_customers_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("customer_id"),
        utf8("month"),
        field("monetary", MONEY, false),
        field("last_purchase", DataType::Date32, true),
        list("purchase_invoices", DataType::Utf8, true),
        list("run_countries", DataType::Utf8, true),
        list("run_at", local_timestamp(), true),
        list("run_invoices", DataType::Utf8, true),
        list("run_ids", DataType::Utf8, true),
    ]))
}

fn history_products_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("stock_code"),
        utf8("month"),
        utf8_null("description"),
        field("lines", DataType::Int64, false),
        field("first_sale", DataType::Date32, true),
        field("last_sale", DataType::Date32, true),
    ]))
}

fn history_invoices_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("invoice"),
        utf8("month"),
        list("party_customers", DataType::Utf8, true),
        list("party_countries", DataType::Utf8, true),
        field("cancellation_lines", DataType::Int64, false),
        field("negative_cancellation_lines", DataType::Int64, false),
        field("first_at", local_timestamp(), false),
        field("last_at", local_timestamp(), false),
    ]))
}

/// `bronze/retail_transactions`: everything that arrived, as it arrived.
pub const BRONZE_TRANSACTIONS: TableSpec = TableSpec {
    name: "bronze/retail_transactions",
    schema: bronze_schema,
    partition_columns: &[],
    writer: Writer::Ingestion,
    warehouse: None,
    internal: false,
};

/// `silver/retail_transactions`: cleansed, deduplicated transactions.
pub const SILVER_TRANSACTIONS: TableSpec = TableSpec {
    name: "silver/retail_transactions",
    schema: silver_schema,
    partition_columns: &["region", "invoice_month"],
    writer: Writer::Silver,
    warehouse: None,
    internal: false,
};

/// `silver/retail_transactions_quarantine`: rows that broke a required rule, with every reason.
pub const SILVER_QUARANTINE: TableSpec = TableSpec {
    name: "silver/retail_transactions_quarantine",
    schema: quarantine_schema,
    partition_columns: &[],
    writer: Writer::Silver,
    warehouse: None,
    internal: false,
};

/// `silver/retail_transactions_duplicates`: bronze rows dropped as duplicates of a kept row.
pub const SILVER_DUPLICATES: TableSpec = TableSpec {
    name: "silver/retail_transactions_duplicates",
    schema: duplicates_schema,
    partition_columns: &[],
    writer: Writer::Silver,
    warehouse: None,
    internal: false,
};

/// `silver/retail_transaction_changes`: updates and deletes applied to silver, one row per
/// applied change record, partitioned by `change` (`update`, `delete`).
pub const SILVER_CHANGES: TableSpec = TableSpec {
    name: "silver/retail_transaction_changes",
    schema: changes_schema,
    partition_columns: &["change"],
    writer: Writer::Silver,
    warehouse: None,
    internal: false,
};

/// `gold/fact_sales`.
pub const GOLD_FACT_SALES: TableSpec = TableSpec {
    name: "gold/fact_sales",
    schema: fact_sales_schema,
    partition_columns: &[],
    writer: Writer::Gold,
    warehouse: served_by_slice("fact_sales", "date_key"),
    internal: false,
};

/// `gold/dim_customer` (type 2).
pub const GOLD_DIM_CUSTOMER: TableSpec = TableSpec {
    name: "gold/dim_customer",
    schema: dim_customer_schema,
    partition_columns: &[],
    writer: Writer::Gold,
    warehouse: served("dim_customer"),
    internal: false,
};

/// `gold/dim_product`.
pub const GOLD_DIM_PRODUCT: TableSpec = TableSpec {
    name: "gold/dim_product",
    schema: dim_product_schema,
    partition_columns: &[],
    writer: Writer::Gold,
    warehouse: served("dim_product"),
    internal: false,
};

/// `gold/dim_country`.
pub const GOLD_DIM_COUNTRY: TableSpec = TableSpec {
    name: "gold/dim_country",
    schema: dim_country_schema,
    partition_columns: &[],
    writer: Writer::Gold,
    warehouse: served("dim_country"),
    internal: false,
};

/// `gold/dim_date`.
pub const GOLD_DIM_DATE: TableSpec = TableSpec {
    name: "gold/dim_date",
    schema: dim_date_schema,
    partition_columns: &[],
    writer: Writer::Gold,
    warehouse: served("dim_date"),
    internal: false,
};

/// `gold/daily_sales`.
pub const GOLD_DAILY_SALES: TableSpec = TableSpec {
    name: "gold/daily_sales",
    schema: daily_sales_schema,
    partition_columns: &[],
    writer: Writer::Gold,
    warehouse: served_by_slice("daily_sales", "date_key"),
    internal: false,
};

/// `gold/product_monthly`.
pub const GOLD_PRODUCT_MONTHLY: TableSpec = TableSpec {
    name: "gold/product_monthly",
    schema: product_monthly_schema,
    partition_columns: &[],
    writer: Writer::Gold,
    warehouse: served_by_slice("product_monthly", "month"),
    internal: false,
};

/// `gold/customer_rfm`.
pub const GOLD_CUSTOMER_RFM: TableSpec = TableSpec {
    name: "gold/customer_rfm",
    schema: customer_rfm_schema,
    partition_columns: &[],
    writer: Writer::Gold,
    warehouse: served("customer_rfm"),
    internal: false,
};

/// `gold/cohort_retention`.
pub const GOLD_COHORT_RETENTION: TableSpec = TableSpec {
    name: "gold/cohort_retention",
    schema: cohort_retention_schema,
    partition_columns: &[],
    writer: Writer::Gold,
    warehouse: served("cohort_retention"),
    internal: false,
};

/// Every gold table, dimensions first.
pub const GOLD_TABLES: [TableSpec; 9] = [
    GOLD_DIM_DATE,
    GOLD_DIM_COUNTRY,
    GOLD_DIM_PRODUCT,
    GOLD_DIM_CUSTOMER,
    GOLD_FACT_SALES,
    GOLD_DAILY_SALES,
    GOLD_PRODUCT_MONTHLY,
    GOLD_CUSTOMER_RFM,
    GOLD_COHORT_RETENTION,
];

/// `gold/history_customers`: gold's per-month history, one row per customer and month.
pub const HISTORY_CUSTOMERS: TableSpec = TableSpec {
    name: "gold/history_customers",
    schema: history_customers_schema,
    partition_columns: &[],
    writer: Writer::Gold,
    warehouse: None,
    internal: true,
};

/// `gold/history_products`: one row per stock code, month and description.
pub const HISTORY_PRODUCTS: TableSpec = TableSpec {
    name: "gold/history_products",
    schema: history_products_schema,
    partition_columns: &[],
    writer: Writer::Gold,
    warehouse: None,
    internal: true,
};

/// `gold/history_invoices`: one row per invoice and month.
pub const HISTORY_INVOICES: TableSpec = TableSpec {
    name: "gold/history_invoices",
    schema: history_invoices_schema,
    partition_columns: &[],
    writer: Writer::Gold,
    warehouse: None,
    internal: true,
};

const fn model_table(name: &'static str, schema: fn() -> SchemaRef) -> TableSpec {
    TableSpec {
        name,
        schema,
        partition_columns: &[],
        writer: Writer::Models,
        warehouse: None,
        internal: false,
    }
}

/// The metrics `gold/forecast` holds (its `metric` column): daily net revenue, orders and
/// units.
pub const FORECAST_METRICS: [&str; 3] = ["revenue", "orders", "units"];

/// `gold/forecast`: each series' forecast, one row per future trading day.
pub const GOLD_FORECAST: TableSpec = model_table("gold/forecast", forecast_schema);

/// `gold/forecast_backtest`: every candidate model's backtest per series.
pub const GOLD_FORECAST_BACKTEST: TableSpec =
    model_table("gold/forecast_backtest", forecast_backtest_schema);

/// `gold/anomalies`: every trading day's anomaly score and verdict.
pub const GOLD_ANOMALIES: TableSpec = model_table("gold/anomalies", anomalies_schema);

/// `gold/customer_clv`: per customer, the BG/NBD and Gamma-Gamma predictions.
pub const GOLD_CUSTOMER_CLV: TableSpec = model_table("gold/customer_clv", customer_clv_schema);

/// `gold/model_versions`: the model registry, one row per model trained (appended).
pub const GOLD_MODEL_VERSIONS: TableSpec =
    model_table("gold/model_versions", model_versions_schema);

const fn recommendation_table(name: &'static str, schema: fn() -> SchemaRef) -> TableSpec {
    TableSpec {
        name,
        schema,
        partition_columns: &[],
        writer: Writer::Recommendations,
        warehouse: None,
        internal: false,
    }
}

/// `gold/product_pairs`: the association rules `antecedent ⇒ consequent` with their support,
/// confidence and lift (pairs sharing at least `recommendations.min_pair_baskets` baskets).
pub const GOLD_PRODUCT_PAIRS: TableSpec =
    recommendation_table("gold/product_pairs", product_pairs_schema);

/// `gold/product_neighbours`: each product's most similar products by the customers who
/// bought them.
pub const GOLD_PRODUCT_NEIGHBOURS: TableSpec =
    recommendation_table("gold/product_neighbours", product_neighbours_schema);

/// `gold/customer_recommendations`: each customer's products "for you", with the reason.
pub const GOLD_CUSTOMER_RECOMMENDATIONS: TableSpec = recommendation_table(
    "gold/customer_recommendations",
    customer_recommendations_schema,
);

/// The recommendations asset's tables, in the order it commits them.
pub const RECOMMENDATION_TABLES: [TableSpec; 3] = [
    GOLD_PRODUCT_PAIRS,
    GOLD_PRODUCT_NEIGHBOURS,
    GOLD_CUSTOMER_RECOMMENDATIONS,
];

/// The models asset's tables, the registry last (it is committed last).
pub const MODEL_TABLES: [TableSpec; 5] = [
    GOLD_FORECAST,
    GOLD_FORECAST_BACKTEST,
    GOLD_ANOMALIES,
    GOLD_CUSTOMER_CLV,
    GOLD_MODEL_VERSIONS,
];

/// The three history tables.
pub const HISTORY_TABLES: [TableSpec; 3] = [HISTORY_CUSTOMERS, HISTORY_PRODUCTS, HISTORY_INVOICES];

/// The registry: every table of the lake, in the order data flows (bronze, silver, gold
/// dimensions, facts, aggregates, gold's internal history, the models' tables).
pub const ALL_TABLES: [TableSpec; 25] = [
    BRONZE_TRANSACTIONS,
    SILVER_TRANSACTIONS,
    SILVER_QUARANTINE,
    SILVER_DUPLICATES,
    SILVER_CHANGES,
    GOLD_DIM_DATE,
    GOLD_DIM_COUNTRY,
    GOLD_DIM_PRODUCT,
    GOLD_DIM_CUSTOMER,
    GOLD_FACT_SALES,
    GOLD_DAILY_SALES,
    GOLD_PRODUCT_MONTHLY,
    GOLD_CUSTOMER_RFM,
    GOLD_COHORT_RETENTION,
    HISTORY_CUSTOMERS,
    HISTORY_PRODUCTS,
    HISTORY_INVOICES,
    GOLD_FORECAST,
    GOLD_FORECAST_BACKTEST,
    GOLD_ANOMALIES,
    GOLD_CUSTOMER_CLV,
    GOLD_MODEL_VERSIONS,
    GOLD_PRODUCT_PAIRS,
    GOLD_PRODUCT_NEIGHBOURS,
    GOLD_CUSTOMER_RECOMMENDATIONS,
];

/// The tables a writer writes, in registry order.
pub fn tables_of(writer: Writer) -> Vec<TableSpec> {
    ALL_TABLES
        .iter()
        .copied()
        .filter(|table| table.writer == writer)
        .collect()
}

/// The tables the warehouse serves, with how, in registry order (dimensions first).
pub fn warehouse_tables() -> impl Iterator<Item = (TableSpec, WarehouseTable)> {
    ALL_TABLES
        .into_iter()
        .filter_map(|table| table.warehouse.map(|served| (table, served)))
}

/// The tables readers see (every table but gold's internal history).
pub fn public_tables() -> impl Iterator<Item = TableSpec> {
    ALL_TABLES.into_iter().filter(|table| !table.internal)
}

/// Finds a table by its name (`silver/retail_transactions`).
pub fn find_table(name: &str) -> Option<TableSpec> {
    ALL_TABLES.iter().copied().find(|table| table.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_column_is_a_string_column_of_its_table() {
        for table in ALL_TABLES {
            let schema = table.arrow_schema();
            for column in table.partition_columns {
                let found = schema
                    .field_with_name(column)
                    .expect("partition column exists");
                assert_eq!(found.data_type(), &DataType::Utf8, "{table}.{column}");
            }
        }
    }

    #[test]
    fn the_registry_derives_each_list_of_tables() {
        assert_eq!(tables_of(Writer::Ingestion).len(), 1);
        assert_eq!(tables_of(Writer::Silver).len(), 4);
        assert_eq!(tables_of(Writer::Gold).len(), 12);
        let models: Vec<&str> = tables_of(Writer::Models).iter().map(|t| t.name).collect();
        let registry: Vec<&str> = MODEL_TABLES.iter().map(|t| t.name).collect();
        assert_eq!(models, registry, "the models' tables, the registry last");
        let recommendations: Vec<&str> = tables_of(Writer::Recommendations)
            .iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(
            recommendations,
            RECOMMENDATION_TABLES.map(|t| t.name),
            "the recommendations' tables"
        );
        let relations: Vec<&str> = warehouse_tables().map(|(_, w)| w.relation).collect();
        assert_eq!(relations.len(), GOLD_TABLES.len());
        for table in GOLD_TABLES {
            let served = table.warehouse.expect("every public gold table is served");
            assert_eq!(format!("gold/{}", served.relation), table.name);
            if let Some(column) = served.slice_by {
                assert!(
                    table.arrow_schema().field_with_name(column).is_ok(),
                    "{table}"
                );
            }
        }
        assert_eq!(public_tables().count(), 22);
    }

    #[test]
    fn table_names_are_unique_and_found_by_name() {
        for table in ALL_TABLES {
            assert_eq!(find_table(table.name).map(|t| t.name), Some(table.name));
        }
        assert!(find_table("gold/nope").is_none());
    }
}
