//! The declared column lineage of ingestion, silver, gold and the assets computed on gold.
//!
//! These steps are Rust, not SQL, so their lineage is declared here beside the table registry,
//! one rule a statement of the contract (`DATA_CONTRACT.md`); a test holds the declarations to
//! the registry: every column of every table has inputs (or is said to be set by the platform)
//! and every column a rule names exists. The warehouse's lineage is derived from its SQL
//! (`retail_warehouse::lineage`) and the API's from which query answers each route.
//!
//! The models' and recommendations' tables are declared at table level: every column of such
//! a table has every input of the fitted model as a `DIRECT` `TRANSFORMATION` input.

use retail_domain::column::Column;
#[allow(clippy::enum_glob_use)] // the rules read as a table
use retail_domain::lineage::Subtype::*;
use retail_domain::lineage::{ColumnRef, Dataset, Edge, Lineage, Subtype};
use retail_lake::schema::{self as tables, TableSpec, Writer};

/// What a file, an HTTP body or a message carries: the eight business columns (by their
/// canonical names; the contract lists the accepted headers), an `email` column when the
/// source has one, any other columns, the record as a whole (kept when it cannot be split into
/// fields) and, for corrections sent through the API, the operation and its target.
pub const SOURCE: &str = "source.retail_transactions";

/// The columns of [`SOURCE`] beyond the eight business columns.
const SOURCE_EXTRA: [&str; 5] = [
    "email",
    "other_columns",
    "record",
    "operation",
    "target_transaction_id",
];

/// Every column of the dataset (a rule's outputs).
const ALL: &[&str] = &["*"];

/// The eight business columns.
const BUSINESS: &[&str] = &[
    "invoice",
    "stock_code",
    "description",
    "quantity",
    "invoice_date",
    "unit_price",
    "customer_id",
    "country",
];

/// The lineage columns bronze rows carry and silver, quarantine, duplicates and changes keep.
const ARRIVAL: &[&str] = &crate::silver::LINEAGE;

const BRONZE: &str = "bronze.retail_transactions";
const SILVER: &str = "silver.retail_transactions";
const QUARANTINE: &str = "silver.retail_transactions_quarantine";
const DUPLICATES: &str = "silver.retail_transactions_duplicates";
const CHANGES: &str = "silver.retail_transaction_changes";
const FACT: &str = "gold.fact_sales";
const DIM_CUSTOMER: &str = "gold.dim_customer";
const DIM_PRODUCT: &str = "gold.dim_product";
const DIM_COUNTRY: &str = "gold.dim_country";
const DIM_DATE: &str = "gold.dim_date";
const DAILY: &str = "gold.daily_sales";
const PRODUCT_MONTHLY: &str = "gold.product_monthly";
const RFM: &str = "gold.customer_rfm";
const COHORTS: &str = "gold.cohort_retention";

/// One declaration: `outputs` of `to` are made from `inputs` of `from`, as `subtype` says.
/// `outputs` [`ALL`] with an `INDIRECT` subtype: the inputs decide which rows `to` has.
struct Rule {
    to: &'static str,
    outputs: &'static [&'static str],
    from: &'static str,
    inputs: &'static [&'static str],
    subtype: Subtype,
    description: &'static str,
}

const fn rule(
    to: &'static str,
    outputs: &'static [&'static str],
    from: &'static str,
    inputs: &'static [&'static str],
    subtype: Subtype,
    description: &'static str,
) -> Rule {
    Rule {
        to,
        outputs,
        from,
        inputs,
        subtype,
        description,
    }
}

/// Columns copied unchanged from the column of the same name.
struct Same {
    to: &'static str,
    from: &'static str,
    columns: &'static [&'static str],
    description: &'static str,
}

/// Columns the platform sets itself (a run id, a time, a version): no column is read.
struct Set {
    to: &'static str,
    columns: &'static [&'static str],
    description: &'static str,
}

#[rustfmt::skip]
const SAME: &[Same] = &[
    Same { to: BRONZE, from: SOURCE, columns: BUSINESS, description: "as it arrived, as text" },
    Same { to: BRONZE, from: SOURCE, columns: &["operation", "target_transaction_id"], description: "a correction's operation and target, as sent" },
    Same { to: SILVER, from: BRONZE, columns: ARRIVAL, description: "the bronze row's arrival" },
    Same { to: SILVER, from: BRONZE, columns: &["extra_columns"], description: "" },
    Same { to: QUARANTINE, from: BRONZE, columns: ARRIVAL, description: "" },
    Same { to: QUARANTINE, from: BRONZE, columns: BUSINESS, description: "raw values, as they arrived" },
    Same { to: QUARANTINE, from: BRONZE, columns: &["record_hash", "extra_columns", "raw_text", "parse_error", "operation", "target_transaction_id"], description: "" },
    Same { to: DUPLICATES, from: BRONZE, columns: ARRIVAL, description: "the dropped row's arrival" },
    Same { to: DUPLICATES, from: BRONZE, columns: &["record_hash"], description: "" },
    Same { to: CHANGES, from: BRONZE, columns: ARRIVAL, description: "the correction's arrival" },
    Same { to: CHANGES, from: BRONZE, columns: &["record_hash", "target_transaction_id"], description: "" },
    Same { to: FACT, from: SILVER, columns: &["transaction_id", "invoice", "invoice_date", "quantity", "unit_price", "total_amount", "is_return", "is_cancellation", "line_type", "data_quality_score"], description: "one fact row per silver transaction" },
    Same { to: DIM_CUSTOMER, from: SILVER, columns: &["customer_id", "country_name"], description: "a customer's country in one version of its history" },
    Same { to: DIM_PRODUCT, from: SILVER, columns: &["stock_code"], description: "" },
    Same { to: DIM_COUNTRY, from: SILVER, columns: &["country_name", "country_code", "region"], description: "" },
    Same { to: DAILY, from: SILVER, columns: &["country_name"], description: "" },
    Same { to: PRODUCT_MONTHLY, from: SILVER, columns: &["stock_code"], description: "" },
    Same { to: RFM, from: SILVER, columns: &["customer_id"], description: "identified customers with a purchase line" },
];

#[rustfmt::skip]
const SET: &[Set] = &[
    Set { to: BRONZE, columns: ARRIVAL, description: "set by ingestion: ids of the ingestion and batch, the source system, where in the source, the row number, the time of arrival (UTC)" },
    Set { to: SILVER, columns: &["run_id"], description: "the pipeline run that wrote the row" },
    Set { to: QUARANTINE, columns: &["run_id", "quarantined_at"], description: "the pipeline run that quarantined the row, and when" },
    Set { to: DUPLICATES, columns: &["run_id"], description: "the pipeline run that dropped the row" },
    Set { to: CHANGES, columns: &["run_id", "bronze_version"], description: "the pipeline run that applied the correction, and bronze's version it read" },
    Set { to: "gold.model_versions", columns: ALL, description: "the model registry: one row per model trained, with its parameters and held-out metrics" },
];

#[rustfmt::skip]
const RULES: &[Rule] = &[
    // Bronze: everything as it arrived.
    rule(BRONZE, &["record_hash"], SOURCE, BUSINESS, Transformation, "SHA-256 of the eight business fields"),
    rule(BRONZE, &["extra_columns"], SOURCE, &["email", "other_columns"], Transformation, "the source's other columns, as a JSON object"),
    rule(BRONZE, &["raw_text"], SOURCE, &["record"], Identity, "a record that could not be split into fields"),
    rule(BRONZE, &["parse_error"], SOURCE, &["record"], Transformation, "why the record could not be read"),
    // Silver: normalised, validated, deduplicated.
    rule(SILVER, &["invoice"], BRONZE, &["invoice"], Transformation, "trimmed"),
    rule(SILVER, &["stock_code"], BRONZE, &["stock_code"], Transformation, "trimmed and upper-cased"),
    rule(SILVER, &["description"], BRONZE, &["description"], Transformation, "trimmed, control characters as spaces, white space collapsed; empty is null"),
    rule(SILVER, &["quantity"], BRONZE, &["quantity"], Transformation, "a whole number, not zero"),
    rule(SILVER, &["invoice_date"], BRONZE, &["invoice_date"], Transformation, "parsed as shop-local time (four accepted forms)"),
    rule(SILVER, &["unit_price"], BRONZE, &["unit_price"], Transformation, "an exact decimal, not negative"),
    rule(SILVER, &["customer_id"], BRONZE, &["customer_id"], Transformation, "trimmed, a trailing .0 removed; empty is a guest (null)"),
    rule(SILVER, &["country"], BRONZE, &["country"], Transformation, "trimmed"),
    rule(SILVER, &["country_name"], BRONZE, &["country"], Transformation, "the standard English name"),
    rule(SILVER, &["country_code"], BRONZE, &["country"], Transformation, "ISO 3166-1 alpha-2, null where there is none"),
    rule(SILVER, &["region"], BRONZE, &["country"], Transformation, "the country's region (a partition column)"),
    rule(SILVER, &["total_amount"], BRONZE, &["quantity", "unit_price"], Transformation, "quantity × unit_price, exact"),
    rule(SILVER, &["is_return"], BRONZE, &["quantity"], Transformation, "quantity < 0"),
    rule(SILVER, &["is_cancellation"], BRONZE, &["invoice"], Transformation, "the invoice starts with C"),
    rule(SILVER, &["line_type"], BRONZE, &["stock_code"], Transformation, "from the stock code (POST is shipping, M manual, ...)"),
    rule(SILVER, &["invoice_month"], BRONZE, &["invoice_date"], Transformation, "YYYY-MM of the invoice date (a partition column)"),
    rule(SILVER, &["transaction_id"], BRONZE, BUSINESS, Transformation, "deterministic id of the eight normalised business fields"),
    rule(SILVER, &["email"], BRONZE, &["extra_columns"], Transformation, "the source's email column, if any"),
    rule(SILVER, &["data_quality_score"], BRONZE, BUSINESS, Transformation, "the contract's score: completeness, accuracy, validity"),
    rule(SILVER, &["data_quality_score"], BRONZE, &["extra_columns"], Transformation, "validity: the email is well-formed"),
    rule(SILVER, ALL, BRONZE, BUSINESS, Filter, "rows that break a required rule are quarantined; rows equal on the eight normalised fields are one transaction (the first ingested kept)"),
    rule(SILVER, ALL, BRONZE, &["ingested_at"], Filter, "of equal rows the first ingested is kept"),
    rule(SILVER, ALL, BRONZE, &["operation", "target_transaction_id"], Filter, "corrections replace or delete their target transaction"),
    // Quarantine, duplicates, changes.
    rule(QUARANTINE, &["reasons"], BRONZE, BUSINESS, Transformation, "every required rule the row broke, as reason codes"),
    rule(QUARANTINE, &["reasons"], BRONZE, &["raw_text"], Transformation, "malformed_record"),
    rule(QUARANTINE, ALL, BRONZE, BUSINESS, Filter, "rows that break a required rule"),
    rule(DUPLICATES, &["transaction_id"], BRONZE, BUSINESS, Transformation, "the kept transaction's id"),
    rule(DUPLICATES, ALL, BRONZE, BUSINESS, Filter, "rows equal on the eight normalised fields to a row ingested before"),
    rule(CHANGES, &["replacement_transaction_id"], BRONZE, BUSINESS, Transformation, "the id of the corrected transaction, null for a deletion"),
    rule(CHANGES, &["change"], BRONZE, &["operation"], Transformation, "what the correction did"),
    rule(CHANGES, ALL, BRONZE, &["operation"], Filter, "bronze rows that are corrections"),
    // Gold: the star schema.
    rule(FACT, &["date_key"], SILVER, &["invoice_date"], Transformation, "yyyymmdd of the invoice date"),
    rule(FACT, &["customer_key"], DIM_CUSTOMER, &["customer_key"], Identity, "the customer's version valid at the invoice date; 0 for guest sales"),
    rule(FACT, &["customer_key"], SILVER, &["customer_id", "invoice_date"], Join, "matched to dim_customer's version"),
    rule(FACT, &["product_key"], DIM_PRODUCT, &["product_key"], Identity, ""),
    rule(FACT, &["product_key"], SILVER, &["stock_code"], Join, "matched to dim_product"),
    rule(FACT, &["country_key"], DIM_COUNTRY, &["country_key"], Identity, ""),
    rule(FACT, &["country_key"], SILVER, &["country_name"], Join, "matched to dim_country"),
    rule(DIM_CUSTOMER, &["customer_key"], SILVER, &["customer_id", "country_name", "invoice_date"], Transformation, "surrogate key of (customer, version, country), kept from build to build"),
    rule(DIM_CUSTOMER, &["country_key"], DIM_COUNTRY, &["country_key"], Identity, ""),
    rule(DIM_CUSTOMER, &["version", "valid_from", "valid_to", "is_current"], SILVER, &["customer_id", "country_name", "invoice_date"], Transformation, "type 2 history: a new version when a customer's transactions, in invoice-date order, change country"),
    rule(DIM_CUSTOMER, ALL, SILVER, &["customer_id"], GroupBy, "one history per identified customer, and the unknown member (key 0)"),
    rule(DIM_PRODUCT, &["product_key"], SILVER, &["stock_code"], Transformation, "surrogate key, kept from build to build"),
    rule(DIM_PRODUCT, &["description"], SILVER, &["description"], Aggregation, "the most frequent non-null description (ties: alphabetically first)"),
    rule(DIM_PRODUCT, &["line_type"], SILVER, &["line_type"], Aggregation, "the stock code's line type"),
    rule(DIM_PRODUCT, &["first_sale_date", "last_sale_date"], SILVER, &["invoice_date"], Aggregation, "first and last invoice date"),
    rule(DIM_PRODUCT, ALL, SILVER, &["stock_code"], GroupBy, "one row per stock code"),
    rule(DIM_COUNTRY, &["country_key"], SILVER, &["country_name"], Transformation, "surrogate key, kept from build to build"),
    rule(DIM_COUNTRY, ALL, SILVER, &["country_name"], GroupBy, "one row per country"),
    rule(DIM_DATE, ALL, SILVER, &["invoice_date"], Transformation, "every day from the first to the last invoice date, and its calendar"),
    // Gold: aggregates, all from silver.
    rule(DAILY, &["date", "date_key"], SILVER, &["invoice_date"], Transformation, "the invoice date's day"),
    rule(DAILY, &["gross_revenue"], SILVER, &["total_amount"], Aggregation, "Σ total_amount of lines with quantity > 0"),
    rule(DAILY, &["returns_amount"], SILVER, &["total_amount"], Aggregation, "−Σ total_amount of lines with quantity < 0"),
    rule(DAILY, &["gross_revenue", "returns_amount", "units", "orders"], SILVER, &["quantity"], Conditional, "the sign of the quantity"),
    rule(DAILY, &["net_revenue"], SILVER, &["total_amount"], Aggregation, "Σ total_amount"),
    rule(DAILY, &["orders"], SILVER, &["invoice"], Aggregation, "distinct non-cancellation invoices with a line of quantity > 0"),
    rule(DAILY, &["orders"], SILVER, &["is_cancellation"], Conditional, "not a cancellation"),
    rule(DAILY, &["units"], SILVER, &["quantity"], Aggregation, "Σ quantity of lines with quantity > 0"),
    rule(DAILY, &["customers"], SILVER, &["customer_id"], Aggregation, "distinct non-null customers"),
    rule(DAILY, &["lines"], SILVER, &["transaction_id"], Aggregation, "count of lines"),
    rule(DAILY, ALL, SILVER, &["invoice_date", "country_name"], GroupBy, "per date and country"),
    rule(PRODUCT_MONTHLY, &["month"], SILVER, &["invoice_month"], Identity, ""),
    rule(PRODUCT_MONTHLY, &["net_revenue"], SILVER, &["total_amount"], Aggregation, "Σ total_amount"),
    rule(PRODUCT_MONTHLY, &["units_sold", "units_returned", "return_rate"], SILVER, &["quantity"], Aggregation, "Σ quantity of lines with quantity > 0, −Σ of lines below 0, their ratio"),
    rule(PRODUCT_MONTHLY, &["orders"], SILVER, &["invoice"], Aggregation, "distinct non-cancellation invoices with a line of quantity > 0"),
    rule(PRODUCT_MONTHLY, &["orders"], SILVER, &["is_cancellation", "quantity"], Conditional, "purchase lines of non-cancellations"),
    rule(PRODUCT_MONTHLY, ALL, SILVER, &["invoice_month", "stock_code"], GroupBy, "per month and stock code"),
    rule(RFM, &["reference_date"], SILVER, &["invoice_date"], Aggregation, "the day after the newest invoice date in silver"),
    rule(RFM, &["last_purchase_date"], SILVER, &["invoice_date"], Aggregation, "the newest purchase line's date"),
    rule(RFM, &["last_purchase_date", "frequency"], SILVER, &["quantity"], Conditional, "lines with quantity > 0"),
    rule(RFM, &["recency_days"], RFM, &["reference_date", "last_purchase_date"], Transformation, "days from the last purchase to the reference date"),
    rule(RFM, &["frequency"], SILVER, &["invoice"], Aggregation, "distinct non-cancellation invoices with a line of quantity > 0"),
    rule(RFM, &["frequency"], SILVER, &["is_cancellation"], Conditional, "not a cancellation"),
    rule(RFM, &["monetary"], SILVER, &["total_amount"], Aggregation, "Σ total_amount over all the customer's lines"),
    rule(RFM, &["r_score"], RFM, &["recency_days", "customer_id"], Window, "NTILE(5) by recency_days descending, then customer_id"),
    rule(RFM, &["f_score"], RFM, &["frequency", "customer_id"], Window, "NTILE(5) by frequency, then customer_id"),
    rule(RFM, &["m_score"], RFM, &["monetary", "customer_id"], Window, "NTILE(5) by monetary, then customer_id"),
    rule(RFM, &["segment"], RFM, &["r_score", "f_score"], Transformation, "the contract's segment table"),
    rule(RFM, ALL, SILVER, &["customer_id"], GroupBy, "per identified customer"),
    rule(COHORTS, &["cohort_month"], SILVER, &["invoice_date"], Aggregation, "the month of the customer's first purchase"),
    rule(COHORTS, &["activity_month"], SILVER, &["invoice_month"], Identity, ""),
    rule(COHORTS, &["month_offset"], COHORTS, &["cohort_month", "activity_month"], Transformation, "months from the cohort's month"),
    rule(COHORTS, &["cohort_size", "active_customers"], SILVER, &["customer_id"], Aggregation, "distinct customers"),
    rule(COHORTS, &["retention"], COHORTS, &["active_customers", "cohort_size"], Transformation, "active / size"),
    rule(COHORTS, ALL, SILVER, &["quantity", "is_cancellation"], Filter, "purchase lines (quantity > 0) of non-cancellations"),
    // Gold's internal history: per month parts the incremental build merges.
    rule("gold.history_customers", ALL, SILVER, &["customer_id", "invoice_month", "total_amount", "invoice_date", "invoice", "country_name", "quantity", "is_cancellation"], Aggregation, "per customer and month: the parts of customer_rfm, dim_customer and cohort_retention"),
    rule("gold.history_products", ALL, SILVER, &["stock_code", "invoice_month", "description", "invoice_date"], Aggregation, "per stock code and month: the parts of dim_product"),
    rule("gold.history_invoices", ALL, SILVER, &["invoice", "invoice_month", "customer_id", "country_name", "quantity", "invoice_date", "is_cancellation"], Aggregation, "per invoice and month: the consistency rules' parts"),
    // The models (table level).
    rule("gold.forecast", ALL, DAILY, &["date", "country_name", "net_revenue", "orders", "units"], Transformation, "forecasts fitted on the daily series (model level: every column)"),
    rule("gold.forecast_backtest", ALL, DAILY, &["date", "country_name", "net_revenue", "orders", "units"], Transformation, "each candidate's rolling-origin backtest (model level)"),
    rule("gold.anomalies", ALL, DAILY, &["date", "net_revenue", "orders", "units"], Transformation, "seasonal residuals and an isolation forest on the daily series (model level)"),
    rule("gold.customer_clv", ALL, FACT, &["customer_key", "invoice", "invoice_date", "total_amount", "quantity", "is_cancellation"], Transformation, "BG/NBD and Gamma-Gamma fitted on purchases (model level)"),
    rule("gold.customer_clv", ALL, DIM_CUSTOMER, &["customer_key", "customer_id", "country_name"], Transformation, "the customer and their country"),
    rule("gold.customer_clv", &["segment"], RFM, &["segment"], Identity, "the customer's RFM segment"),
    // The recommendations (table level).
    rule("gold.product_pairs", ALL, FACT, &["invoice", "product_key", "quantity", "is_cancellation", "line_type"], Transformation, "association rules over baskets (model level)"),
    rule("gold.product_neighbours", ALL, FACT, &["customer_key", "product_key", "quantity", "is_cancellation", "line_type"], Transformation, "item-to-item similarity by customers (model level)"),
    rule("gold.customer_recommendations", ALL, FACT, &["customer_key", "invoice", "product_key", "quantity", "is_cancellation", "line_type"], Transformation, "products for each customer from rules and neighbours (model level)"),
    rule("gold.product_pairs", ALL, DIM_PRODUCT, &["product_key", "stock_code"], Transformation, "stock codes of the products"),
    rule("gold.product_neighbours", ALL, DIM_PRODUCT, &["product_key", "stock_code"], Transformation, "stock codes of the products"),
    rule("gold.customer_recommendations", ALL, DIM_PRODUCT, &["product_key", "stock_code"], Transformation, "stock codes of the products"),
    rule("gold.customer_recommendations", ALL, DIM_CUSTOMER, &["customer_key", "customer_id"], Transformation, "the customer's id"),
];

/// The dataset name of a lake table: `gold/fact_sales` is `gold.fact_sales`.
pub fn dataset_name(table: &TableSpec) -> String {
    table.name.replace('/', ".")
}

fn writer_name(writer: Writer) -> &'static str {
    match writer {
        Writer::Ingestion => "ingestion",
        Writer::Silver => "silver",
        Writer::Gold => "gold",
        Writer::Models => "models",
        Writer::Recommendations => "recommendations",
    }
}

/// The source and every table of the lake, with their columns, in the order data flows.
pub fn datasets() -> Vec<Dataset> {
    let mut source: Vec<String> = Column::ALL.iter().map(|c| c.name().to_owned()).collect();
    source.extend(SOURCE_EXTRA.iter().map(|c| (*c).to_owned()));
    let mut datasets = vec![Dataset {
        name: SOURCE.to_owned(),
        layer: "source".to_owned(),
        produced_by: "files, HTTP bodies and stream messages".to_owned(),
        columns: source,
    }];
    datasets.extend(tables::ALL_TABLES.iter().map(|table| {
        Dataset {
            name: dataset_name(table),
            layer: table.name.split('/').next().unwrap_or_default().to_owned(),
            produced_by: writer_name(table.writer).to_owned(),
            columns: table
                .arrow_schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
        }
    }));
    datasets
}

/// The lineage of the lake: [`datasets`] and the declared edges. Columns the platform sets
/// itself (run ids, times) have no edges.
pub fn lake_lineage() -> Lineage {
    let datasets = datasets();
    let columns_of = |name: &str| -> Vec<String> {
        datasets
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.columns.clone())
            .unwrap_or_default()
    };
    let mut edges = Vec::new();
    for same in SAME {
        for column in same.columns {
            edges.push(Edge::new(
                ColumnRef::new(same.from, *column),
                ColumnRef::new(same.to, *column),
                Identity,
                same.description,
            ));
        }
    }
    for rule in RULES {
        let outputs: Vec<String> = if rule.outputs == ALL {
            if rule.subtype.kind() == retail_domain::lineage::Kind::Indirect {
                vec![retail_domain::lineage::ROWS.to_owned()]
            } else {
                columns_of(rule.to)
            }
        } else {
            rule.outputs.iter().map(|c| (*c).to_owned()).collect()
        };
        for output in &outputs {
            for input in rule.inputs {
                edges.push(Edge::new(
                    ColumnRef::new(rule.from, *input),
                    ColumnRef::new(rule.to, output.clone()),
                    rule.subtype,
                    rule.description,
                ));
            }
        }
    }
    let mut lineage = Lineage { datasets, edges };
    lineage.normalise();
    lineage
}

/// The columns the platform sets itself, by dataset, with why (no input column).
pub fn set_by_platform() -> Vec<(String, String, &'static str)> {
    let datasets = datasets();
    let mut set = Vec::new();
    for declared in SET {
        let columns: Vec<String> = if declared.columns == ALL {
            datasets
                .iter()
                .find(|d| d.name == declared.to)
                .map(|d| d.columns.clone())
                .unwrap_or_default()
        } else {
            declared.columns.iter().map(|c| (*c).to_owned()).collect()
        };
        set.extend(
            columns
                .into_iter()
                .map(|c| (declared.to.to_owned(), c, declared.description)),
        );
    }
    set
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use retail_domain::lineage::{Direction, ROWS};

    use super::*;

    #[test]
    fn every_column_of_every_table_has_inputs_or_is_set_by_the_platform_and_every_named_column_exists()
     {
        let lineage = lake_lineage();
        let set: BTreeSet<(String, String)> = set_by_platform()
            .into_iter()
            .map(|(d, c, _)| (d, c))
            .collect();
        let exists = |r: &ColumnRef| {
            lineage
                .dataset(&r.dataset)
                .is_some_and(|d| r.column == ROWS || d.columns.contains(&r.column))
        };
        for edge in &lineage.edges {
            assert!(
                exists(&edge.from),
                "{edge:?} reads a column that does not exist"
            );
            assert!(
                exists(&edge.to),
                "{edge:?} writes a column that does not exist"
            );
            assert_ne!(edge.from.column, ROWS, "{edge:?}");
        }
        for (dataset, column) in &set {
            assert!(
                exists(&ColumnRef::new(dataset, column)),
                "{dataset}.{column} is not a column"
            );
        }
        let mut missing = Vec::new();
        for dataset in lineage.datasets.iter().filter(|d| d.layer != "source") {
            for column in &dataset.columns {
                let target = ColumnRef::new(&dataset.name, column);
                let has_input = lineage.edges.iter().any(|e| e.to == target);
                let declared = set.contains(&(dataset.name.clone(), column.clone()));
                assert!(
                    !(has_input && declared),
                    "{target} has inputs and is also said to be set by the platform"
                );
                if !has_input && !declared {
                    missing.push(target.to_string());
                }
            }
        }
        assert!(missing.is_empty(), "columns without lineage: {missing:?}");
    }

    #[test]
    fn the_business_columns_are_the_contracts() {
        assert_eq!(BUSINESS, Column::ALL.map(Column::name));
    }

    #[test]
    fn a_gold_measure_walks_back_to_the_source_columns_it_is_made_from() {
        let lineage = lake_lineage();
        let total = lineage.resolve("gold.fact_sales.total_amount").unwrap();
        let walk = lineage.walk(&total, Direction::Upstream);
        let direct_sources: BTreeSet<String> = walk
            .upstream
            .iter()
            .filter(|h| {
                h.edge.from.dataset == SOURCE && h.edge.kind == retail_domain::lineage::Kind::Direct
            })
            .map(|h| h.edge.from.column.clone())
            .collect();
        assert!(
            direct_sources.contains("quantity") && direct_sources.contains("unit_price"),
            "{direct_sources:?}"
        );
        assert_eq!(walk.upstream[0].hops, 1);
        assert_eq!(
            walk.upstream[0].edge.from.to_string(),
            "silver.retail_transactions.total_amount"
        );
        let down = lineage.walk(
            &ColumnRef::new(SILVER, "total_amount"),
            Direction::Downstream,
        );
        let reached: BTreeSet<String> = down
            .downstream
            .iter()
            .map(|h| h.edge.to.to_string())
            .collect();
        for expected in [
            "gold.fact_sales.total_amount",
            "gold.daily_sales.net_revenue",
            "gold.customer_rfm.m_score",
        ] {
            assert!(
                reached.contains(expected),
                "{expected} not reached: {reached:?}"
            );
        }
    }
}
