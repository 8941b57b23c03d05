//! `/api/v1/gdpr`: erasure requests (`manage:gdpr`, which only the admin role has). An erasure
//! runs while the request waits (seconds to a minute on the real data) and answers with its
//! report, which the audit trail keeps.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use retail_services::consent::ConsentChoice;
use retail_services::{CustomerConsent, ErasureReport, SubjectExport};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, ClientAddress, JsonBody, TypedQuery};
use crate::state::AppState;

/// Erasing customers and reading the reports (`manage:gdpr`).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/gdpr/erasures", post(forget).get(list))
        .route("/api/v1/gdpr/erasures/{request_id}", get(report))
        .route("/api/v1/customers/{customer_id}/export", get(export))
}

/// A customer's consent (`manage:consent`: the admin, and the `consent_recorder` role a shop's
/// front end may hold).
pub(crate) fn consent_routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/customers/{customer_id}/consent",
        get(consent).post(record_consent),
    )
}

#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/consent", tag = "gdpr",
    params(("customer_id" = String, Path, description = "The customer's id as the data has it")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Each purpose's state and every choice recorded, oldest first", body = CustomerConsent),
        (status = 400, description = "A customer id with control characters or too long", body = ErrorBody),
        (status = 422, description = "A blank customer id", body = ErrorBody)))]
pub(crate) async fn consent(
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
) -> Result<Json<CustomerConsent>, ApiError> {
    Ok(Json(state.services.consent.consent(&customer_id).await?))
}

#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/consent", tag = "gdpr",
    params(("customer_id" = String, Path, description = "The customer's id as the data has it")),
    request_body = ConsentChoice,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Recorded: the customer's consent after the choice", body = CustomerConsent),
        (status = 400, description = "An unknown purpose, a source too long or with control characters, a bad customer id", body = ErrorBody),
        (status = 422, description = "A blank customer id", body = ErrorBody)))]
pub(crate) async fn record_consent(
    State(state): State<AppState>,
    caller: Caller,
    Path(customer_id): Path<String>,
    JsonBody(choice): JsonBody<ConsentChoice>,
) -> Result<Json<CustomerConsent>, ApiError> {
    Ok(Json(
        state
            .services
            .consent
            .record(&customer_id, &choice, &caller.actor())
            .await?,
    ))
}

/// The export's format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// `json` (default): the tables with their rows as objects; `csv`: one line per cell,
    /// `table,row,column,value` (values as JSON text).
    #[param(required = false, nullable = false, pattern = "^(json|csv)$")]
    format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/export", tag = "gdpr",
    params(("customer_id" = String, Path, description = "The customer's id as the data has it"), ExportQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Everything the platform holds about the customer (empty tables: nothing); recorded in the audit trail as an export", 
            content((SubjectExport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A bad format, or a customer id with control characters or too long", body = ErrorBody),
        (status = 422, description = "A blank customer id", body = ErrorBody)))]
pub(crate) async fn export(
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
    TypedQuery(query): TypedQuery<ExportQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "format must be json or csv, not {other:?}"
            )));
        }
    };
    let export = state.services.gdpr.export(&customer_id).await?;
    if !csv {
        return Ok(Json(export).into_response());
    }
    let mut text = String::from("table,row,column,value\n");
    let quote = |value: &str| format!("\"{}\"", value.replace('"', "\"\""));
    for table in &export.tables {
        for (row, cells) in table.rows.iter().enumerate() {
            for (column, value) in cells {
                let value = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                text.push_str(&format!(
                    "{},{},{},{}\n",
                    quote(&table.table),
                    row + 1,
                    quote(column),
                    quote(&value)
                ));
            }
        }
    }
    for (row, event) in export.consent.history.iter().enumerate() {
        for (column, value) in [
            ("purpose", event.purpose.clone()),
            ("granted", event.granted.to_string()),
            ("at", event.at.clone()),
            ("recorded_by", event.recorded_by.clone()),
            ("source", event.source.clone()),
        ] {
            text.push_str(&format!(
                "\"consent\",{},{},{}\n",
                row + 1,
                quote(column),
                quote(&value)
            ));
        }
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        text,
    )
        .into_response())
}

/// Whom to forget.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErasureRequest {
    /// The customer's id, as the data has it (`17850`; `17850.0` is the same customer).
    #[schema(min_length = 1, max_length = 64)]
    customer_id: String,
}

/// How many reports.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// At most this many, newest first (1 to 1000, default 100).
    #[param(required = false, nullable = false, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[utoipa::path(post, path = "/api/v1/gdpr/erasures", tag = "gdpr", request_body = ErasureRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The customer is erased from every table, file, index and cache; the report is in the audit trail", body = ErasureReport),
        (status = 400, description = "A customer id with control characters or too long", body = ErrorBody),
        (status = 422, description = "A blank customer id (`.0` is blank too)", body = ErrorBody),
        (status = 409, description = "A pipeline run holds the pipeline: try again", body = ErrorBody)))]
pub(crate) async fn forget(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddress(client): ClientAddress,
    JsonBody(body): JsonBody<ErasureRequest>,
) -> Result<Json<ErasureReport>, ApiError> {
    if body.customer_id.chars().count() > 64 {
        return Err(ApiError::invalid(
            "customer_id must be at most 64 characters",
        ));
    }
    Ok(Json(
        state
            .services
            .gdpr
            .forget(&body.customer_id, &caller.actor(), &client)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/gdpr/erasures", tag = "gdpr", params(ListQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The latest erasures' reports, newest first", body = Vec<ErasureReport>),
        (status = 400, description = "A bad limit", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    TypedQuery(query): TypedQuery<ListQuery>,
) -> Result<Json<Vec<ErasureReport>>, ApiError> {
    let limit = super::page_limit(query.limit)?;
    Ok(Json(state.services.gdpr.erasures(limit).await?))
}

#[utoipa::path(get, path = "/api/v1/gdpr/erasures/{request_id}", tag = "gdpr",
    params(("request_id" = String, Path, description = "The request's id (`erasure-...`)")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The request's report", body = ErasureReport),
        (status = 404, description = "No such request", body = ErrorBody)))]
pub(crate) async fn report(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
) -> Result<Json<ErasureReport>, ApiError> {
    state
        .services
        .gdpr
        .erasure(&request_id)
        .await?
        .map(Json)
        .ok_or_else(|| {
            retail_services::Error::not_found(format!("no erasure request {request_id:?}")).into()
        })
}
