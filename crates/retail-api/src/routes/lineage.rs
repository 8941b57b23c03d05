//! `/api/v1/lineage`: column-level lineage from the source columns through bronze, silver and
//! gold to the warehouse, the catalogue queries and the API answers that use them.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use retail_domain::lineage::{ColumnLineage, Dataset, Direction, Edge};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::TypedQuery;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/lineage", get(lineage))
}

/// What to answer: the whole graph, one dataset's edges, or one column's lineage.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineageParams {
    /// A column, `DATASET.COLUMN`: `gold.fact_sales.total_amount`,
    /// `api/v2/analytics/sales-summary.rows.net_revenue`.
    #[param(required = false, nullable = false, min_length = 3, max_length = 300)]
    column: Option<String>,
    /// A dataset (`gold.fact_sales`): the edges into and out of its columns.
    #[param(required = false, nullable = false, min_length = 1, max_length = 300)]
    dataset: Option<String>,
    /// With `column`: `upstream` (what it is made from), `downstream` (what is made from it)
    /// or `both` (default).
    #[param(required = false, nullable = false)]
    direction: Option<Direction>,
}

/// Lineage: datasets and edges, or one column's walk.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LineageAnswer {
    /// The datasets (all, or the one asked for); empty for a column.
    datasets: Vec<Dataset>,
    /// The edges (all, or those of the dataset asked for); empty for a column.
    edges: Vec<Edge>,
    /// The column's lineage, when a column was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<ColumnLineage>,
}

#[utoipa::path(get, path = "/api/v1/lineage", tag = "pipeline",
    summary = "Column-level lineage from the sources to the API",
    description = "Without parameters: every dataset (source, bronze, silver, gold, warehouse, \
        query, api) with its columns, and every edge. `dataset`: that dataset and the edges \
        into and out of its columns. `column`: the edges met walking from the column, nearest \
        first, each with its distance (`hops`). An edge is `DIRECT` when the input's values \
        flow into the output (`IDENTITY`, `TRANSFORMATION`, `AGGREGATION`) and `INDIRECT` when \
        it decides rows (`FILTER`, `JOIN`, `GROUP_BY`, `SORT`, `WINDOW`, `CONDITIONAL`); an \
        edge into column `*` decides which rows the whole dataset has.",
    params(LineageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The lineage asked for", body = LineageAnswer),
        (status = 400, description = "Both column and dataset, a direction without a column, \
            an unknown parameter, or a name of no dataset", body = ErrorBody),
        (status = 404, description = "The dataset has no such column", body = ErrorBody)))]
pub(crate) async fn lineage(
    State(state): State<AppState>,
    TypedQuery(params): TypedQuery<LineageParams>,
) -> Result<Json<LineageAnswer>, ApiError> {
    let service = &state.services.lineage;
    let answer = match (params.column, params.dataset) {
        (Some(_), Some(_)) => {
            return Err(retail_services::Error::invalid("give column or dataset, not both").into());
        }
        (Some(column), None) => LineageAnswer {
            datasets: Vec::new(),
            edges: Vec::new(),
            column: Some(
                service
                    .column(&column, params.direction.unwrap_or(Direction::Both))
                    .await?,
            ),
        },
        (None, dataset) if params.direction.is_some() => {
            let _ = dataset;
            return Err(retail_services::Error::invalid(
                "direction goes with column (which column's lineage to walk)",
            )
            .into());
        }
        (None, Some(dataset)) => {
            let (dataset, edges) = service.dataset(&dataset).await?;
            LineageAnswer {
                datasets: vec![dataset],
                edges,
                column: None,
            }
        }
        (None, None) => {
            let lineage = service.lineage().await?;
            LineageAnswer {
                datasets: lineage.datasets.clone(),
                edges: lineage.edges.clone(),
                column: None,
            }
        }
    };
    Ok(Json(answer))
}
