//! `/api/v2/analytics/...`: catalogue queries, cached, with the data version they reflect.

use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::QueryPairs;
use crate::routes::rows::Rows;
use crate::state::{AppState, header};

/// Which catalogue query each analytics path runs (the OpenAPI document reads it too).
pub(crate) const ENDPOINTS: [(&str, &str); 7] = [
    ("/api/v2/analytics/sales-summary", "sales_summary"),
    ("/api/v2/analytics/revenue-trend", "revenue_trend"),
    ("/api/v2/analytics/top-products", "top_products"),
    ("/api/v2/analytics/returns", "returns"),
    ("/api/v2/analytics/customers/rfm", "rfm_segments"),
    ("/api/v2/analytics/cohorts", "cohort_retention"),
    ("/api/v2/analytics/geography", "geography"),
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(ENDPOINTS[0].0, get(sales_summary))
        .route(ENDPOINTS[1].0, get(revenue_trend))
        .route(ENDPOINTS[2].0, get(top_products))
        .route(ENDPOINTS[3].0, get(returns))
        .route(ENDPOINTS[4].0, get(rfm))
        .route(ENDPOINTS[5].0, get(cohorts))
        .route(ENDPOINTS[6].0, get(geography))
}

/// Rows of a catalogue query, money rounded to cents.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnalyticsAnswer {
    /// The catalogue query that answered.
    query: &'static str,
    /// `embedded` or `postgres`.
    backend: String,
    /// Changes whenever the data served changes.
    data_version: String,
    /// One object per row (see each endpoint for its columns).
    #[schema(value_type = Vec<Object>)]
    rows: Rows,
}

/// Runs catalogue query `name` and answers with its rows and where they came from
/// (`X-Cache: hit`, `hit-shared` or `miss`).
async fn answer(state: &AppState, name: &str, params: QueryPairs) -> Result<Response, ApiError> {
    let answer = state.services.analytics.query(name, params.0).await?;
    let body = AnalyticsAnswer {
        query: answer.query,
        backend: answer.backend.to_string(),
        data_version: answer.data_version,
        rows: Rows(answer.rows.as_ref().clone()),
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert("x-cache", header(answer.cache.as_str()));
    Ok(response)
}

macro_rules! analytics_endpoint {
    ($handler:ident, $path:literal, $query:literal, $summary:literal) => {
        #[utoipa::path(get, path = $path, tag = "analytics", summary = $summary,
            security(("bearer" = []), ("api_key" = [])),
            responses(
                (status = 200, description = "Rows of the catalogue query", body = AnalyticsAnswer),
                (status = 400, description = "A parameter is unknown or not of its type", body = ErrorBody),
                (status = 401, description = "Not signed in", body = ErrorBody),
                (status = 403, description = "The role may not read analytics", body = ErrorBody),
                (status = 429, description = "Rate limited", body = ErrorBody),
                (status = 503, description = "The warehouse is unavailable", body = ErrorBody)))]
        pub(crate) async fn $handler(
            State(state): State<AppState>,
            params: QueryPairs,
        ) -> Result<Response, ApiError> {
            answer(&state, $query, params).await
        }
    };
}

analytics_endpoint!(
    sales_summary,
    "/api/v2/analytics/sales-summary",
    "sales_summary",
    "Gross, returns and net revenue, orders, units, lines and customers over a period"
);
analytics_endpoint!(
    revenue_trend,
    "/api/v2/analytics/revenue-trend",
    "revenue_trend",
    "Revenue per day, ISO week or month"
);
analytics_endpoint!(
    top_products,
    "/api/v2/analytics/top-products",
    "top_products",
    "Best-selling products over a period"
);
analytics_endpoint!(
    returns,
    "/api/v2/analytics/returns",
    "returns",
    "Returns and cancellations per month"
);
analytics_endpoint!(
    rfm,
    "/api/v2/analytics/customers/rfm",
    "rfm_segments",
    "Customers per RFM segment"
);
analytics_endpoint!(
    cohorts,
    "/api/v2/analytics/cohorts",
    "cohort_retention",
    "Monthly cohort retention"
);
analytics_endpoint!(
    geography,
    "/api/v2/analytics/geography",
    "geography",
    "Revenue, orders and customers per country"
);
