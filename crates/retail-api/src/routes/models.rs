//! `/api/v2/analytics/{forecast,anomalies,clv}` and `/api/v2/models`: what the models trained
//! on gold predict, each answer naming the model version that made it.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use retail_services::models::{
    AnomaliesAnswer, AnomalyQuery, ClvPage, ClvQuery, ForecastAnswer, ForecastQuery, ModelVersion,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ErrorBody};
use crate::extract::TypedQuery;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/analytics/forecast", get(forecast))
        .route("/api/v2/analytics/anomalies", get(anomalies))
        .route("/api/v2/analytics/clv", get(clv))
        .route("/api/v2/models", get(models))
}

/// Which forecast.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForecastParams {
    /// `revenue` (net revenue, default), `orders` or `units`.
    #[param(
        required = false,
        nullable = false,
        pattern = "^(revenue|orders|units)$"
    )]
    metric: Option<String>,
    /// Calendar days ahead (1 to 90, default 30).
    #[param(required = false, nullable = false, minimum = 1, maximum = 90)]
    horizon: Option<u32>,
    /// A country forecast on its own (the largest by revenue; see the model's parameters);
    /// absent: all countries together.
    #[param(required = false, nullable = false)]
    country: Option<String>,
}

#[utoipa::path(get, path = "/api/v2/analytics/forecast", tag = "analytics",
    summary = "Daily forecast with 80 % and 95 % prediction intervals",
    params(ForecastParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "One point per open day, the model chosen and its backtest", body = ForecastAnswer),
        (status = 400, description = "A parameter is unknown or out of range", body = ErrorBody),
        (status = 404, description = "No forecast for this country, or the models were not trained", body = ErrorBody)))]
pub(crate) async fn forecast(
    State(state): State<AppState>,
    TypedQuery(params): TypedQuery<ForecastParams>,
) -> Result<Json<ForecastAnswer>, ApiError> {
    let query = ForecastQuery {
        metric: params.metric.unwrap_or_else(|| "revenue".to_owned()),
        horizon_days: params.horizon.unwrap_or(30),
        country: params.country,
    };
    Ok(Json(state.services.models.forecast(&query).await?))
}

/// Which days.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnomalyParams {
    /// First day (inclusive), `YYYY-MM-DD`.
    #[param(required = false, nullable = false)]
    from: Option<NaiveDate>,
    /// Last day (inclusive), `YYYY-MM-DD`.
    #[param(required = false, nullable = false)]
    to: Option<NaiveDate>,
    /// Every scored trading day, not only anomalies (default false).
    #[param(required = false, nullable = false)]
    all: Option<bool>,
}

#[utoipa::path(get, path = "/api/v2/analytics/anomalies", tag = "analytics",
    summary = "Anomalous trading days and the metrics that made them unusual",
    params(AnomalyParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The days, oldest first", body = AnomaliesAnswer),
        (status = 400, description = "A date is not YYYY-MM-DD (a reversed period selects nothing)", body = ErrorBody),
        (status = 404, description = "The models were not trained", body = ErrorBody)))]
pub(crate) async fn anomalies(
    State(state): State<AppState>,
    TypedQuery(params): TypedQuery<AnomalyParams>,
) -> Result<Json<AnomaliesAnswer>, ApiError> {
    let query = AnomalyQuery {
        from: params.from,
        to: params.to,
        all: params.all.unwrap_or(false),
    };
    Ok(Json(state.services.models.anomalies(&query).await?))
}

/// Which customers.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClvParams {
    /// Only customers whose current country is this.
    #[param(required = false, nullable = false)]
    country: Option<String>,
    /// Only customers of this RFM segment (`Champions`, `At Risk`, ...).
    #[param(required = false, nullable = false)]
    segment: Option<String>,
    /// Customers per page (1 to 1000, default 50).
    #[param(required = false, nullable = false, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Customers skipped (default 0).
    #[param(
        required = false,
        nullable = false,
        minimum = 0,
        maximum = 4294967295_u64
    )]
    offset: Option<usize>,
}

#[utoipa::path(get, path = "/api/v2/analytics/clv", tag = "analytics",
    summary = "Customers ranked by predicted 12-month lifetime value, with intervals",
    params(ClvParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of customers", body = ClvPage),
        (status = 400, description = "A parameter is unknown or out of range", body = ErrorBody),
        (status = 404, description = "The models were not trained", body = ErrorBody)))]
pub(crate) async fn clv(
    State(state): State<AppState>,
    TypedQuery(params): TypedQuery<ClvParams>,
) -> Result<Json<ClvPage>, ApiError> {
    let query = ClvQuery {
        country: params.country,
        segment: params.segment,
        limit: params.limit.unwrap_or(50),
        offset: params.offset.unwrap_or(0),
    };
    Ok(Json(state.services.models.clv(&query).await?))
}

#[utoipa::path(get, path = "/api/v2/models", tag = "analytics",
    summary = "Every model version trained, with its parameters and held-out accuracy",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Newest first", body = Vec<ModelVersion>)))]
pub(crate) async fn models(
    State(state): State<AppState>,
) -> Result<Json<Vec<ModelVersion>>, ApiError> {
    Ok(Json(state.services.models.models().await?))
}
