//! `/api/v2/recommendations/products/{stock_code}` and `/api/v2/recommendations/customers/{id}`:
//! what sells with a product, and what to suggest to a returning customer, each with a reason.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use retail_services::recommendations::{
    CustomerRecommendations, ProductRecommendations, RuleThresholds,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ErrorBody};
use crate::extract::TypedQuery;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/recommendations/products/{stock_code}",
            get(product),
        )
        .route(
            "/api/v2/recommendations/customers/{customer_id}",
            get(customer),
        )
}

/// Thresholds of the association rules.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProductParams {
    /// Rules with at least this support (baskets with both / all baskets; 0 to 1, default 0).
    #[param(required = false, nullable = false, minimum = 0, maximum = 1)]
    min_support: Option<f64>,
    /// Rules with at least this confidence (0 to 1, default 0).
    #[param(required = false, nullable = false, minimum = 0, maximum = 1)]
    min_confidence: Option<f64>,
    /// Rules with at least this lift (default 1: bought together more than by chance).
    #[param(required = false, nullable = false, minimum = 0)]
    min_lift: Option<f64>,
    /// Products per list (1 to 100, default 10).
    #[param(required = false, nullable = false, minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v2/recommendations/products/{stock_code}", tag = "analytics",
    summary = "Frequently bought together (association rules) and customers who bought this also bought",
    params(("stock_code" = String, Path, description = "The product's stock code"), ProductParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The product's rules and neighbours", body = ProductRecommendations),
        (status = 400, description = "A threshold is out of range", body = ErrorBody),
        (status = 404, description = "No such product, or the recommendations were not fitted", body = ErrorBody)))]
pub(crate) async fn product(
    State(state): State<AppState>,
    Path(stock_code): Path<String>,
    TypedQuery(params): TypedQuery<ProductParams>,
) -> Result<Json<ProductRecommendations>, ApiError> {
    let defaults = RuleThresholds::default();
    let thresholds = RuleThresholds {
        min_support: params.min_support.unwrap_or(defaults.min_support),
        min_confidence: params.min_confidence.unwrap_or(defaults.min_confidence),
        min_lift: params.min_lift.unwrap_or(defaults.min_lift),
        limit: params.limit.unwrap_or(defaults.limit),
    };
    Ok(Json(
        state
            .services
            .recommendations
            .product(&stock_code, thresholds)
            .await?,
    ))
}

/// How many.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomerParams {
    /// Products (1 to 100, default 10; at most `recommendations.per_customer` are kept).
    #[param(required = false, nullable = false, minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v2/recommendations/customers/{customer_id}", tag = "analytics",
    summary = "Products for a customer that they have not bought yet, each with its reason",
    params(("customer_id" = String, Path, description = "The customer's id"), CustomerParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The customer's products, best first", body = CustomerRecommendations),
        (status = 400, description = "The limit is out of range", body = ErrorBody),
        (status = 404, description = "No such customer, or the recommendations were not fitted", body = ErrorBody)))]
pub(crate) async fn customer(
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
    TypedQuery(params): TypedQuery<CustomerParams>,
) -> Result<Json<CustomerRecommendations>, ApiError> {
    Ok(Json(
        state
            .services
            .recommendations
            .customer(&customer_id, params.limit.unwrap_or(10))
            .await?,
    ))
}
