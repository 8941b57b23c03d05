//! `/api/v1/marketing/audience` (`export:marketing`): the customers a campaign may address,
//! only those who consent to marketing.

use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, QueryPairs};
use crate::routes::rows::Rows;
use crate::state::AppState;

/// The marketing export.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/marketing/audience", get(audience))
}

/// The audience's format; its filters (`segment`, `country`) are the catalogue query
/// `marketing_audience`'s, added to the document from the catalogue.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read as pairs; here for the document.
pub(crate) struct AudienceQuery {
    /// `json` (default) or `csv` (a header line, then one line per customer).
    #[param(required = false, nullable = false, pattern = "^(json|csv)$")]
    format: Option<String>,
}

/// The customers who may be addressed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AudienceAnswer {
    /// Changes whenever the data served changes.
    data_version: String,
    /// Customers the filters selected who were left out: their consent to marketing does
    /// not hold (`privacy.opt_in` decides what no recorded choice means).
    left_out_without_consent: usize,
    /// One object per customer, highest monetary value first: `customer_id`,
    /// `country_name`, `segment`, `recency_days`, `frequency`, `monetary`,
    /// `last_purchase_date`.
    #[schema(value_type = Vec<Object>)]
    rows: Rows,
}

#[utoipa::path(get, path = "/api/v1/marketing/audience", tag = "gdpr", params(AudienceQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The customers who consent to marketing among those selected; recorded in the audit trail as an export",
            content((AudienceAnswer = "application/json"), (String = "text/csv"))),
        (status = 400, description = "An unknown parameter or format", body = ErrorBody)))]
pub(crate) async fn audience(
    State(state): State<AppState>,
    caller: Caller,
    QueryPairs(mut pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let mut csv = false;
    let mut formats = pairs.iter().filter(|(name, _)| name == "format");
    if let Some((_, format)) = formats.next() {
        csv = match format.as_str() {
            "json" => false,
            "csv" => true,
            other => {
                return Err(ApiError::invalid(format!(
                    "format must be json or csv, not {other:?}"
                )));
            }
        };
        if formats.next().is_some() {
            return Err(ApiError::invalid("format is given more than once"));
        }
    }
    pairs.retain(|(name, _)| name != "format");
    let audience = state.services.marketing.audience(pairs).await?;
    if csv {
        // Not JSON: masked here for a role that pseudonymises customer ids.
        let masker = caller
            .0
            .as_ref()
            .map(|principal| state.services.access.masker(principal))
            .filter(|masker| masker.masks("customer_id"));
        let body = match masker {
            Some(masker) => {
                let mut rows = audience.answer.rows.as_ref().clone();
                retail_services::CustomerDetail::Masked(masker).apply(&mut rows);
                retail_services::analytics::csv_page(&rows, true)
            }
            None => retail_services::analytics::csv_page(&audience.answer.rows, true),
        };
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            body,
        )
            .into_response());
    }
    Ok(Json(AudienceAnswer {
        data_version: audience.answer.data_version,
        left_out_without_consent: audience.left_out,
        rows: Rows(audience.answer.rows.as_ref().clone()),
    })
    .into_response())
}
