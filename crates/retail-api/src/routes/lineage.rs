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
    /// A dataset (`gold.fact_sales`: the edges into and out of its columns) or a column,
    /// `DATASET.COLUMN` (`gold.fact_sales.total_amount`,
    /// `api/v2/analytics/sales-summary.rows.net_revenue`: its lineage); absent: everything.
    #[param(required = false, nullable = false, min_length = 1, max_length = 300)]
    of: Option<String>,
    /// With `of`: `upstream` (what it is made from; a dataset's edges into it), `downstream`
    /// (what is made from it; a dataset's edges out of it) or `both` (default). The whole
    /// graph has no direction.
    #[param(required = false, nullable = false, inline)]
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
    description = "Without `of`: every dataset (source, bronze, silver, gold, warehouse, \
        query, api) with its columns, and every edge. `of` a dataset: that dataset and the \
        edges into and out of its columns. `of` a column: the edges met walking from it, \
        nearest first, each with its distance (`hops`). An edge is `DIRECT` when the input's \
        values flow into the output (`IDENTITY`, `TRANSFORMATION`, `AGGREGATION`) and \
        `INDIRECT` when it decides rows (`FILTER`, `JOIN`, `GROUP_BY`, `SORT`, `WINDOW`, \
        `CONDITIONAL`); an edge into column `*` decides which rows the whole dataset has.",
    params(LineageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The lineage asked for", body = LineageAnswer),
        (status = 400, description = "An unknown parameter or direction", body = ErrorBody),
        (status = 404, description = "`of` names no dataset, or the dataset has no such \
            column (the message lists its columns)", body = ErrorBody)))]
pub(crate) async fn lineage(
    State(state): State<AppState>,
    TypedQuery(params): TypedQuery<LineageParams>,
) -> Result<Json<LineageAnswer>, ApiError> {
    let service = &state.services.lineage;
    let direction = params.direction.unwrap_or(Direction::Both);
    let lineage = service.lineage().await?;
    let answer = match params.of {
        None => LineageAnswer {
            datasets: lineage.datasets.clone(),
            edges: lineage.edges.clone(),
            column: None,
        },
        Some(of) if lineage.dataset(&of).is_some() => {
            let (dataset, edges) = service.dataset(&of, direction).await?;
            LineageAnswer {
                datasets: vec![dataset],
                edges,
                column: None,
            }
        }
        Some(of) => LineageAnswer {
            datasets: Vec::new(),
            edges: Vec::new(),
            column: Some(service.column(&of, direction).await?),
        },
    };
    Ok(Json(answer))
}
