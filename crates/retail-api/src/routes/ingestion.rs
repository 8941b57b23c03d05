//! `POST /api/v1/ingest/transactions`: records in any of the file formats (JSON, JSON lines,
//! CSV, Parquet, XLSX), decoded by the file decoders.
//!
//! Every record lands in bronze in one Delta commit before the answer, including those the
//! contract will quarantine (they are listed with their reasons). A body with malformed records
//! is refused whole, every problem listed, and changes nothing. An `Idempotency-Key` makes a
//! retry safe.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::post;
use axum::{Json, Router};
use retail_services::{IngestOutcome, RecordProblem, Sender};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, ErrorDetail, IngestRefusal};
use crate::extract::{Body, BodyFormat, Caller, IdempotencyKey, RequestId};
use crate::state::{AppState, header};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/ingest/transactions", post(ingest_transactions))
}

/// What an ingestion request did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IngestReceipt {
    /// `accepted` (written to bronze) or `replayed` (the idempotency key was used before:
    /// nothing written this time).
    status: &'static str,
    /// The ingestion's id (its run id); for a replay, the ingestion that wrote the records.
    ingestion_id: Option<String>,
    /// Records in the request.
    records: usize,
    /// Records written to bronze now.
    written: u64,
    /// Records written that the contract will quarantine at the next pipeline run, with the
    /// reasons.
    will_be_quarantined: Vec<RecordProblem>,
}

#[utoipa::path(post, path = "/api/v1/ingest/transactions", tag = "ingestion",
    params(("Idempotency-Key" = Option<String>, Header,
            description = "Makes a retry safe: records sent again under the same key are not written twice")),
    request_body(description = "Transactions as a JSON object or array (application/json), JSON lines (application/x-ndjson), CSV with a header (text/csv), Parquet or an XLSX workbook; header variants and extra columns as in files",
                 content_type = "application/json"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Written to bronze", body = IngestReceipt),
        (status = 200, description = "Already written under this idempotency key", body = IngestReceipt),
        (status = 400, description = "Malformed records, each listed; nothing written", body = IngestRefusal),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Unsupported content type", body = ErrorBody)))]
pub(crate) async fn ingest_transactions(
    State(state): State<AppState>,
    BodyFormat(format): BodyFormat,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    RequestId(request_id): RequestId,
    Caller(caller): Caller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let sender = Sender {
        caller,
        idempotency_key,
        location: format!("POST /api/v1/ingest/transactions {request_id}"),
    };
    let outcome = state
        .services
        .ingest
        .ingest_body(format, body, sender)
        .await?;
    Ok(match outcome {
        IngestOutcome::Accepted(receipt) => (
            StatusCode::ACCEPTED,
            Json(IngestReceipt {
                status: "accepted",
                ingestion_id: receipt.ingestion_id,
                records: receipt.records,
                written: receipt.written,
                will_be_quarantined: receipt.will_be_quarantined,
            }),
        )
            .into_response(),
        IngestOutcome::Replayed(receipt) => {
            let mut response = Json(IngestReceipt {
                status: "replayed",
                ingestion_id: receipt.ingestion_id,
                records: receipt.records,
                written: 0,
                will_be_quarantined: Vec::new(),
            })
            .into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", header("true"));
            response
        }
        IngestOutcome::Refused(problems) => (
            StatusCode::BAD_REQUEST,
            Json(IngestRefusal {
                error: ErrorDetail {
                    code: "invalid_input",
                    message: format!(
                        "{} malformed record(s); nothing was written",
                        problems.len()
                    ),
                },
                records: problems,
            }),
        )
            .into_response(),
    })
}
