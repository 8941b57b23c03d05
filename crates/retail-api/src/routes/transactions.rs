//! `POST /api/v1/transactions`, `PUT` and `DELETE /api/v1/transactions/{transaction_id}`:
//! create, update and delete raw transactions.
//!
//! Each request writes one bronze record, durably, before the response, and the next pipeline
//! run applies it: a create is an ordinary new record; an update replaces the silver row it
//! names with the record's fields; a delete removes the silver row it names. Bronze keeps
//! everything (the original and every change), so nothing is ever lost. A change naming a
//! transaction that silver does not hold when the run applies it is quarantined with the
//! reason `unknown_transaction`. An `Idempotency-Key` makes retries safe.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::post;
use axum::{Json, Router};
use retail_services::ingest::ChangeReceipt as Receipt;
use retail_services::{Format, Sender, TransactionChange};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Body, BodyFormat, Caller, IdempotencyKey, RequestId};
use crate::state::{AppState, header};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/transactions", post(create_transaction))
        .route(
            "/api/v1/transactions/{transaction_id}",
            axum::routing::put(update_transaction).delete(delete_transaction),
        )
}

/// What a create, update or delete did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChangeReceipt {
    /// `accepted` (written to bronze; the next pipeline run applies it) or `replayed` (the
    /// idempotency key was used before: nothing written this time).
    status: &'static str,
    /// `insert`, `update` or `delete`.
    operation: &'static str,
    /// The ingestion's id; for a replay, the ingestion that wrote the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    ingestion_id: Option<String>,
    /// The `transaction_id` the new silver row will have (create and update; absent for a
    /// delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_id: Option<String>,
    /// The transaction updated or deleted (absent for a create).
    #[serde(skip_serializing_if = "Option::is_none")]
    target_transaction_id: Option<String>,
    /// Always empty: a create or update whose fields break the contract's rules is refused.
    will_be_quarantined: Vec<String>,
}

fn respond(receipt: Receipt) -> Response {
    let replayed = receipt.replayed;
    let body = ChangeReceipt {
        status: if replayed { "replayed" } else { "accepted" },
        operation: receipt.operation,
        ingestion_id: receipt.ingestion_id,
        transaction_id: receipt.transaction_id,
        target_transaction_id: receipt.target_transaction_id,
        will_be_quarantined: receipt.will_be_quarantined,
    };
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut response = (status, Json(body)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", header("true"));
    }
    response
}

fn one_json_object(format: Format) -> Result<(), ApiError> {
    if format == Format::Json {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(
            "send one transaction as a JSON object (application/json)",
        ))
    }
}

fn sender(caller: Caller, key: IdempotencyKey, request: RequestId, what: &str) -> Sender {
    Sender {
        caller: caller.0,
        idempotency_key: key.0,
        location: format!("{what} {}", request.0),
    }
}

#[utoipa::path(post, path = "/api/v1/transactions", tag = "ingestion",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    request_body(description = "One transaction: the eight business fields (any header variant)",
                 content_type = "application/json"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Written to bronze; the next pipeline run processes it", body = ChangeReceipt),
        (status = 200, description = "Already written under this idempotency key", body = ChangeReceipt),
        (status = 400, description = "Not one JSON object of a transaction; nothing written", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody)))]
pub(crate) async fn create_transaction(
    State(state): State<AppState>,
    BodyFormat(format): BodyFormat,
    key: IdempotencyKey,
    request: RequestId,
    caller: Caller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    one_json_object(format)?;
    let sender = sender(caller, key, request, "POST /api/v1/transactions");
    let receipt = state
        .services
        .ingest
        .change(TransactionChange::Create, Some(body), sender)
        .await?;
    Ok(respond(receipt))
}

#[utoipa::path(put, path = "/api/v1/transactions/{transaction_id}", tag = "ingestion",
    params(("transaction_id" = String, Path, description = "The silver transaction to replace (32 hex digits)"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    request_body(description = "The transaction's new fields: all eight business fields",
                 content_type = "application/json"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Written to bronze; the next pipeline run replaces the transaction", body = ChangeReceipt),
        (status = 200, description = "Already written under this idempotency key", body = ChangeReceipt),
        (status = 400, description = "Bad id, or new fields that break the contract's rules (listed); nothing written", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody)))]
pub(crate) async fn update_transaction(
    State(state): State<AppState>,
    Path(transaction_id): Path<String>,
    BodyFormat(format): BodyFormat,
    key: IdempotencyKey,
    request: RequestId,
    caller: Caller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    one_json_object(format)?;
    let sender = sender(caller, key, request, "PUT /api/v1/transactions");
    let receipt = state
        .services
        .ingest
        .change(
            TransactionChange::Update(transaction_id),
            Some(body),
            sender,
        )
        .await?;
    Ok(respond(receipt))
}

#[utoipa::path(delete, path = "/api/v1/transactions/{transaction_id}", tag = "ingestion",
    params(("transaction_id" = String, Path, description = "The silver transaction to remove (32 hex digits)"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Written to bronze; the next pipeline run removes the transaction", body = ChangeReceipt),
        (status = 200, description = "Already written under this idempotency key", body = ChangeReceipt),
        (status = 400, description = "Not a transaction id; nothing written", body = ErrorBody)))]
pub(crate) async fn delete_transaction(
    State(state): State<AppState>,
    Path(transaction_id): Path<String>,
    key: IdempotencyKey,
    request: RequestId,
    caller: Caller,
) -> Result<Response, ApiError> {
    let sender = sender(caller, key, request, "DELETE /api/v1/transactions");
    let receipt = state
        .services
        .ingest
        .change(TransactionChange::Delete(transaction_id), None, sender)
        .await?;
    Ok(respond(receipt))
}
