//! `/api/v1/sales` (pages with a cursor) and `/api/v1/sales/export` (streamed files).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use retail_services::CustomerDetail;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, QueryPairs};
use crate::routes::rows::Rows;
use crate::state::AppState;

/// What the caller sees of the customers: the customer of each line, and lines selected by
/// customer, need customer-level detail (the rule of `/api/v1/customers/{id}`). A JSON answer is masked by the guard
/// (`masking.rs`), so for it a masked caller gets the ids here and pseudonyms on the wire;
/// an export (not JSON) is masked as it is written.
fn sees_customers(state: &AppState, caller: &Caller, json: bool) -> CustomerDetail {
    let (permission, path) = retail_services::access::CUSTOMER_DETAIL;
    let Some(principal) = caller.0.as_ref() else {
        return CustomerDetail::Hidden;
    };
    match CustomerDetail::of(
        state.services.access.may(principal, permission, path),
        &state.services.access.masker(principal),
    ) {
        CustomerDetail::Masked(_) if json => CustomerDetail::Ids,
        detail => detail,
    }
}

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

/// The filters, `order`, `limit` and `cursor` are the catalogue query `sales_lines`'s (the
/// OpenAPI document lists them from the catalogue).
#[utoipa::path(get, path = "/api/v1/sales", tag = "data",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of sales lines; customer_id is a pseudonym for a role that pseudonymises it, empty unless the caller may read customers (read:data)", body = SalesPage),
        (status = 400, description = "A filter is unknown or not of its type", body = ErrorBody),
        (status = 403, description = "Filtering by customer_id without customer-level access (read:data)", body = ErrorBody)))]
pub(crate) async fn sales(
    State(state): State<AppState>,
    caller: Caller,
    QueryPairs(params): QueryPairs,
) -> Result<Json<SalesPage>, ApiError> {
    let customers = sees_customers(&state, &caller, true);
    let page = state.services.analytics.sales(params, &customers).await?;
    Ok(Json(SalesPage {
        rows: Rows(page.rows),
        next_cursor: page.next_cursor,
    }))
}

/// The formats of an export.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[expect(
    dead_code,
    reason = "it describes the parameter in the OpenAPI document only"
)]
pub(crate) enum ExportFormatName {
    /// RFC 4180 CSV with a header.
    Csv,
    /// JSON lines.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

/// The filters are the catalogue query `sales_export`'s (the OpenAPI document lists them from
/// the catalogue).
#[utoipa::path(get, path = "/api/v1/sales/export", tag = "data",
    params(
        ("format" = inline(ExportFormatName), Query, description = "csv, jsonl or parquet (one row group per 1,000 lines; money as decimal(18,3))")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The selection, streamed (exact money, oldest first)",
         content((String = "text/csv"), (String = "application/x-ndjson"), (Vec<u8> = "application/vnd.apache.parquet"))),
        (status = 400, description = "A filter or the format is not valid", body = ErrorBody),
        (status = 400, description = "The selection holds more lines than api.export_max_rows", body = ErrorBody),
        (status = 403, description = "Filtering by customer_id without customer-level access (read:data)", body = ErrorBody),
        (status = 429, description = "Too many exports at once for this caller or in all", body = ErrorBody)))]
pub(crate) async fn export(
    State(state): State<AppState>,
    caller: Caller,
    QueryPairs(mut params): QueryPairs,
) -> Result<Response, ApiError> {
    let customers = sees_customers(&state, &caller, false);
    let format = match params.iter().position(|(k, _)| k == "format") {
        Some(index) => params.remove(index).1,
        None => {
            return Err(ApiError::invalid(
                "format is required: csv, jsonl or parquet",
            ));
        }
    };
    let subject = caller.0.as_ref().map_or("", |p| p.subject.as_str());
    let export = state
        .services
        .analytics
        .export(params, &format, &customers, subject)
        .await?;
    Ok((
        [(header::CONTENT_TYPE, export.content_type)],
        axum::body::Body::from_stream(export.body),
    )
        .into_response())
}
