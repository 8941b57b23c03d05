//! Column lineage from the sources to the API: the lake's declared lineage
//! (`retail_pipeline::lineage`), the warehouse's derived from its SQL
//! (`retail_warehouse::lineage`) and which catalogue query answers each API route
//! ([`API_ANSWERS`]).

use std::sync::Arc;

use async_trait::async_trait;
use retail_domain::error::ErrorKind;
use retail_domain::lineage::{
    ColumnLineage, ColumnRef, Dataset, Direction, Edge, Lineage, LineageError, Subtype,
};
use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// An API route that answers with the rows of a catalogue query.
#[derive(Debug, Clone, Copy)]
pub struct ApiAnswer {
    /// The route, as the OpenAPI document names it (`/api/v1/sales`).
    pub route: &'static str,
    /// Where the query's rows are in the answer (`rows`, `profile`); `None`: the answer is
    /// the rows themselves (an export).
    pub field: Option<&'static str>,
    /// The catalogue query.
    pub query: &'static str,
}

const fn answer(route: &'static str, field: &'static str, query: &'static str) -> ApiAnswer {
    ApiAnswer {
        route,
        field: Some(field),
        query,
    }
}

/// Every API answer made of a catalogue query's rows. A route serving a role that
/// pseudonymises identifying columns replaces those values by keyed pseudonyms
/// (`retail_domain::privacy`); lineage is the same.
pub const API_ANSWERS: &[ApiAnswer] = &[
    answer("/api/v2/analytics/sales-summary", "rows", "sales_summary"),
    answer("/api/v2/analytics/revenue-trend", "rows", "revenue_trend"),
    answer("/api/v2/analytics/top-products", "rows", "top_products"),
    answer("/api/v2/analytics/returns", "rows", "returns"),
    answer("/api/v2/analytics/customers/rfm", "rows", "rfm_segments"),
    answer("/api/v2/analytics/cohorts", "rows", "cohort_retention"),
    answer("/api/v2/analytics/geography", "rows", "geography"),
    answer(
        "/api/v1/customers/{customer_id}",
        "profile",
        "customer_profile",
    ),
    answer(
        "/api/v1/customers/{customer_id}",
        "invoices",
        "customer_history",
    ),
    answer(
        "/api/v1/products/{stock_code}",
        "profile",
        "product_profile",
    ),
    answer("/api/v1/products/{stock_code}", "months", "product_history"),
    answer("/api/v1/invoices/{invoice}", "lines", "sales_lines"),
    answer("/api/v1/sales", "rows", "sales_lines"),
    ApiAnswer {
        route: "/api/v1/sales/export",
        field: None,
        query: "sales_export",
    },
    answer("/api/v1/marketing/audience", "rows", "marketing_audience"),
];

/// The dataset name of an API route's answer: the route without its first `/`
/// (`api/v1/sales`).
pub fn api_dataset(route: &str) -> String {
    route.trim_start_matches('/').to_owned()
}

/// Column lineage, from the sources to the API.
#[async_trait]
pub trait LineageService: Send + Sync {
    /// The whole lineage: every dataset with its columns, and every edge.
    async fn lineage(&self) -> Result<Arc<Lineage>>;

    /// The lineage of one column, named `DATASET.COLUMN` (`gold.fact_sales.total_amount`):
    /// the edges walking `direction`, nearest first.
    async fn column(&self, column: &str, direction: Direction) -> Result<ColumnLineage>;

    /// The edges into (`Upstream`), out of (`Downstream`) or into and out of (`Both`) the
    /// columns of one dataset.
    async fn dataset(&self, dataset: &str, direction: Direction) -> Result<(Dataset, Vec<Edge>)>;
}

/// The platform's lineage, built once on first use (planning the warehouse's statements takes
/// a few milliseconds).
#[derive(Debug, Default)]
pub struct PlatformLineage {
    built: OnceCell<Arc<Lineage>>,
}

impl PlatformLineage {
    /// Lineage built on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Builds the platform's lineage.
///
/// # Errors
///
/// When a warehouse statement cannot be planned (a bug).
pub async fn build() -> Result<Lineage> {
    let mut lineage = retail_pipeline::lineage::lake_lineage();
    let warehouse = retail_warehouse::lineage::lineage().await?;
    lineage.datasets.extend(warehouse.datasets);
    lineage.edges.extend(warehouse.edges);
    for answer in API_ANSWERS {
        let query = retail_warehouse::lineage::query_dataset(answer.query);
        let columns = lineage
            .dataset(&query)
            .map(|d| d.columns.clone())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Internal,
                    format!("no catalogue query {}", answer.query),
                )
            })?;
        let dataset = api_dataset(answer.route);
        let named: Vec<String> = columns
            .iter()
            .map(|c| {
                answer
                    .field
                    .map_or_else(|| c.clone(), |f| format!("{f}.{c}"))
            })
            .collect();
        for (column, name) in columns.iter().zip(&named) {
            lineage.edges.push(Edge::new(
                ColumnRef::new(query.clone(), column.clone()),
                ColumnRef::new(dataset.clone(), name.clone()),
                Subtype::Identity,
                "served as the query answers (money rounded to cents)",
            ));
        }
        if let Some(existing) = lineage.datasets.iter_mut().find(|d| d.name == dataset) {
            existing.columns.extend(named);
        } else {
            lineage.datasets.push(Dataset {
                name: dataset,
                layer: "api".to_owned(),
                produced_by: format!("GET {}", answer.route),
                columns: named,
            });
        }
    }
    lineage.normalise();
    Ok(lineage)
}

/// Naming nothing the lineage holds is a lookup that found nothing.
fn lineage_error(error: LineageError) -> Error {
    Error::not_found(error.to_string())
}

#[async_trait]
impl LineageService for PlatformLineage {
    async fn lineage(&self) -> Result<Arc<Lineage>> {
        self.built
            .get_or_try_init(|| async { build().await.map(Arc::new) })
            .await
            .cloned()
    }

    async fn column(&self, column: &str, direction: Direction) -> Result<ColumnLineage> {
        let lineage = self.lineage().await?;
        let column = lineage.resolve(column).map_err(lineage_error)?;
        Ok(lineage.walk(&column, direction))
    }

    async fn dataset(&self, dataset: &str, direction: Direction) -> Result<(Dataset, Vec<Edge>)> {
        let lineage = self.lineage().await?;
        let found = lineage
            .dataset(dataset)
            .cloned()
            .ok_or_else(|| lineage_error(LineageError::UnknownDataset(format!("{dataset}.?"))))?;
        let edges = lineage
            .edges
            .iter()
            .filter(|e| {
                let into = e.to.dataset == dataset;
                let out_of = e.from.dataset == dataset;
                match direction {
                    Direction::Upstream => into,
                    Direction::Downstream => out_of,
                    Direction::Both => into || out_of,
                }
            })
            .cloned()
            .collect();
        Ok((found, edges))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use retail_domain::lineage::Kind;

    use super::*;

    #[tokio::test]
    async fn a_gold_column_reaches_the_api_answers_that_use_it_and_the_sources_it_comes_from() {
        let lineage = PlatformLineage::new();
        let walk = lineage
            .column("gold.fact_sales.total_amount", Direction::Both)
            .await
            .unwrap();
        let reached: BTreeSet<String> = walk
            .downstream
            .iter()
            .map(|h| h.edge.to.to_string())
            .collect();
        for expected in [
            "warehouse.fact_sales.total_amount",
            "query.sales_lines.total_amount",
            "api/v1/sales.rows.total_amount",
            "api/v1/invoices/{invoice}.lines.total_amount",
        ] {
            assert!(reached.contains(expected), "{expected} not in {reached:?}");
        }
        // The summary answers are made from gold's daily aggregate, not from the facts.
        let daily = lineage
            .column("gold.daily_sales.net_revenue", Direction::Downstream)
            .await
            .unwrap();
        assert!(
            daily
                .downstream
                .iter()
                .any(|h| h.edge.to.to_string() == "api/v2/analytics/sales-summary.rows.net_revenue"),
            "{daily:?}"
        );
        let sources: BTreeSet<(String, Kind)> = walk
            .upstream
            .iter()
            .filter(|h| h.edge.from.dataset == retail_pipeline::lineage::SOURCE)
            .map(|h| (h.edge.from.column.clone(), h.edge.kind))
            .collect();
        assert!(
            sources.contains(&("unit_price".to_owned(), Kind::Direct)),
            "{sources:?}"
        );
        assert!(
            sources.contains(&("quantity".to_owned(), Kind::Direct)),
            "{sources:?}"
        );
        let error = lineage
            .column("gold.fact_sales.nope", Direction::Both)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("total_amount"), "{error}");
        let error = lineage
            .column("nowhere.x", Direction::Both)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("unknown dataset"), "{error}");
    }

    #[tokio::test]
    async fn every_api_answer_column_has_a_path_to_gold() {
        let lineage = PlatformLineage::new().lineage().await.unwrap();
        for dataset in lineage.datasets.iter().filter(|d| d.layer == "api") {
            for column in &dataset.columns {
                let walk =
                    lineage.walk(&ColumnRef::new(&dataset.name, column), Direction::Upstream);
                assert!(
                    walk.upstream
                        .iter()
                        .any(|h| h.edge.from.dataset.starts_with("gold.")),
                    "{}.{column} does not reach gold",
                    dataset.name
                );
            }
        }
    }
}
