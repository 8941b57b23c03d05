//! `/api/v1/sales` (pages with a cursor) and `/api/v1/sales/export` (streamed files).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::QueryPairs;
use crate::routes::rows::Rows;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sales", get(sales))
        .route("/api/v1/sales/export", get(export))
}

/// A page of sales lines.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SalesPage {
    /// The lines, money rounded to cents.
    #[schema(value_type = Vec<Object>)]
    rows: Rows,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/sales", tag = "data",
    params(
        ("from" = Option<String>, Query, description = "first day, YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "last day, YYYY-MM-DD"),
        ("country" = Option<String>, Query, description = "country name"),
        ("customer_id" = Option<String>, Query, description = "customer id"),
        ("stock_code" = Option<String>, Query, description = "stock code"),
        ("invoice" = Option<String>, Query, description = "invoice number"),
        ("order" = Option<String>, Query, description = "desc (newest first, default) or asc"),
        ("limit" = Option<u32>, Query, description = "rows per page, 1 to 1000 (default 100)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of sales lines", body = SalesPage),
        (status = 400, description = "A filter is unknown or not of its type", body = ErrorBody)))]
pub(crate) async fn sales(
    State(state): State<AppState>,
    QueryPairs(params): QueryPairs,
) -> Result<Json<SalesPage>, ApiError> {
    let page = state.services.analytics.sales(params).await?;
    Ok(Json(SalesPage {
        rows: Rows(page.rows),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/sales/export", tag = "data",
    params(
        ("format" = String, Query, description = "csv, jsonl or parquet (one row group per 1,000 lines; money as decimal(18,3))"),
        ("from" = Option<String>, Query, description = "first day, YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "last day, YYYY-MM-DD"),
        ("country" = Option<String>, Query, description = "country name"),
        ("customer_id" = Option<String>, Query, description = "customer id"),
        ("stock_code" = Option<String>, Query, description = "stock code"),
        ("invoice" = Option<String>, Query, description = "invoice number")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The selection, streamed (exact money, oldest first)",
         content((String = "text/csv"), (String = "application/x-ndjson"), (Vec<u8> = "application/vnd.apache.parquet"))),
        (status = 400, description = "A filter or the format is not valid", body = ErrorBody)))]
pub(crate) async fn export(
    State(state): State<AppState>,
    QueryPairs(mut params): QueryPairs,
) -> Result<Response, ApiError> {
    let format = match params.iter().position(|(k, _)| k == "format") {
        Some(index) => params.remove(index).1,
        None => {
            return Err(ApiError::invalid(
                "format is required: csv, jsonl or parquet",
            ));
        }
    };
    let export = state.services.analytics.export(params, &format)?;
    Ok((
        [(header::CONTENT_TYPE, export.content_type)],
        axum::body::Body::from_stream(export.body),
    )
        .into_response())
}
