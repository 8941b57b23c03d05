//! `/api/v1/customers/{id}`, `/api/v1/products/{code}`, `/api/v1/invoices/{invoice}`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::routes::rows::{Rows, first_row};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/customers/{customer_id}", get(customer))
        .route("/api/v1/products/{stock_code}", get(product))
        .route("/api/v1/invoices/{invoice}", get(invoice))
}

/// A customer: profile and latest invoices.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CustomerView {
    /// Current country, versions, RFM scores and segment.
    #[schema(value_type = Object)]
    profile: serde_json::Value,
    /// The 20 newest invoices.
    #[schema(value_type = Vec<Object>)]
    invoices: Rows,
    /// Predicted value: probability alive, expected purchases, CLV with intervals, churn risk
    /// (absent when the models were not trained or do not know the customer).
    value: Option<retail_services::models::CustomerValue>,
}

#[utoipa::path(get, path = "/api/v1/customers/{customer_id}", tag = "data",
    params(("customer_id" = String, Path, description = "The customer's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The customer", body = CustomerView),
        (status = 404, description = "No such customer", body = ErrorBody)))]
pub(crate) async fn customer(
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
) -> Result<Json<CustomerView>, ApiError> {
    let rows = state.services.analytics.customer(&customer_id).await?;
    // The profile stands without the models: a failure to read them leaves `value` out.
    let value = match state.services.models.customer_value(&customer_id).await {
        Ok(value) => value,
        Err(error) => {
            tracing::warn!(%error, "customer value unavailable");
            None
        }
    };
    Ok(Json(CustomerView {
        profile: first_row(&rows.profile),
        invoices: Rows(rows.invoices),
        value,
    }))
}

/// A product: profile and monthly sales.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProductView {
    /// Description, line type, first and last sale dates.
    #[schema(value_type = Object)]
    profile: serde_json::Value,
    /// Revenue, units, orders and return rate per month.
    #[schema(value_type = Vec<Object>)]
    months: Rows,
}

#[utoipa::path(get, path = "/api/v1/products/{stock_code}", tag = "data",
    params(("stock_code" = String, Path, description = "The product's stock code")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 404, description = "No such product", body = ErrorBody)))]
pub(crate) async fn product(
    State(state): State<AppState>,
    Path(stock_code): Path<String>,
) -> Result<Json<ProductView>, ApiError> {
    let rows = state.services.analytics.product(&stock_code).await?;
    Ok(Json(ProductView {
        profile: first_row(&rows.profile),
        months: Rows(rows.months),
    }))
}

/// An invoice's lines.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InvoiceView {
    /// The invoice number.
    invoice: String,
    /// Its lines, in order.
    #[schema(value_type = Vec<Object>)]
    lines: Rows,
}

#[utoipa::path(get, path = "/api/v1/invoices/{invoice}", tag = "data",
    params(("invoice" = String, Path, description = "The invoice number (C... for cancellations)")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The invoice's lines", body = InvoiceView),
        (status = 404, description = "No such invoice", body = ErrorBody)))]
pub(crate) async fn invoice(
    State(state): State<AppState>,
    Path(invoice): Path<String>,
) -> Result<Json<InvoiceView>, ApiError> {
    let lines = state.services.analytics.invoice(&invoice).await?;
    Ok(Json(InvoiceView {
        invoice,
        lines: Rows(lines),
    }))
}
