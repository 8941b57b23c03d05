//! `POST /api/v1/transactions`, `PUT` and `DELETE /api/v1/transactions/{transaction_id}`:
//! create, update and delete raw transactions.
//!
//! Each request writes one bronze record, durably, before the response, and the next pipeline
//! run applies it: a create is an ordinary new record; an update replaces the silver row it
//! names with the record's fields; a delete removes the silver row it names. Bronze keeps
//! everything (the original and every change), so nothing is ever lost. A change naming a
//! transaction that silver does not hold when the run applies it is quarantined with the
//! reason `unknown_transaction`. An `Idempotency-Key` makes retries safe.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use retail_domain::record::{RawFields, cleanse};
use retail_domain::{Operation, parse_transaction_id};
use retail_pipeline::{RecordChange, RecordSource};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::ingest::{BodyFormat, Fields};
use crate::routes::{body_rejection, idempotency_key, request_id};
use crate::{AppState, header as header_value};

/// What a create, update or delete did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChangeReceipt {
    /// `accepted` (written to bronze; the next pipeline run applies it) or `replayed` (the
    /// idempotency key was used before: nothing written this time).
    status: &'static str,
    /// `insert`, `update` or `delete`.
    operation: &'static str,
    /// The ingestion's id; for a replay, the ingestion that wrote the record.
    ingestion_id: Option<String>,
    /// The `transaction_id` the new silver row will have (create and update), when its fields
    /// pass the contract's rules.
    transaction_id: Option<String>,
    /// The transaction updated or deleted.
    target_transaction_id: Option<String>,
    /// For a create: the rules its fields break (the row will be quarantined).
    will_be_quarantined: Vec<String>,
}

fn raw(fields: &Fields) -> RawFields<'_> {
    RawFields {
        invoice: fields[0].as_deref(),
        stock_code: fields[1].as_deref(),
        description: fields[2].as_deref(),
        quantity: fields[3].as_deref(),
        invoice_date: fields[4].as_deref(),
        unit_price: fields[5].as_deref(),
        customer_id: fields[6].as_deref(),
        country: fields[7].as_deref(),
    }
}

/// One transaction from a JSON object body.
fn one_record(
    headers: &HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Fields, ApiError> {
    let body = body.map_err(body_rejection)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if BodyFormat::of(content_type) != Some(BodyFormat::Json) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send one transaction as a JSON object (application/json)",
        ));
    }
    let is_object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !is_object {
        return Err(ApiError::invalid(
            "the body must be one JSON object; send many through /api/v1/ingest/transactions",
        ));
    }
    let mut records = crate::ingest::parse(BodyFormat::Json, &body).map_err(|problems| {
        ApiError::invalid(
            problems
                .into_iter()
                .flat_map(|p| p.problems)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Ok(records.remove(0))
}

fn target(transaction_id: &str) -> Result<String, ApiError> {
    parse_transaction_id(transaction_id)
        .map(|_| transaction_id.to_owned())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "transaction id {transaction_id:?} is not 32 lower-case hexadecimal digits"
            ))
        })
}

async fn write(
    state: &AppState,
    headers: &HeaderMap,
    principal: Option<&Principal>,
    record: Fields,
    change: Option<RecordChange>,
    what: &str,
) -> Result<(Option<String>, bool), ApiError> {
    let source = RecordSource {
        source_system: "api",
        location: format!("{what} {}", request_id(headers)),
        idempotency_key: idempotency_key(headers, principal)?,
        change,
    };
    let receipt = {
        let _one_at_a_time = state.inner.ingest_lock.lock().await;
        state
            .inner
            .ingest
            .ingest_records(&[record], &source)
            .await?
    };
    Ok((receipt.run.map(|run| run.run_id), receipt.replayed))
}

fn respond(receipt: ChangeReceipt, replayed: bool) -> Response {
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut response = (status, Json(receipt)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", header_value("true"));
    }
    response
}

fn status(replayed: bool) -> &'static str {
    if replayed { "replayed" } else { "accepted" }
}

#[utoipa::path(post, path = "/api/v1/transactions", tag = "ingestion",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    request_body(description = "One transaction: the eight business fields (any header variant)",
                 content_type = "application/json"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Written to bronze; the next pipeline run processes it", body = ChangeReceipt),
        (status = 200, description = "Already written under this idempotency key", body = ChangeReceipt),
        (status = 400, description = "Not one JSON object of known fields; nothing written", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody)))]
pub(crate) async fn create_transaction(
    State(state): State<AppState>,
    headers: HeaderMap,
    principal: Option<axum::Extension<Principal>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let record = one_record(&headers, body)?;
    let checked = cleanse(&raw(&record), None);
    let (ingestion_id, replayed) = write(
        &state,
        &headers,
        principal.as_ref().map(|p| &p.0),
        record,
        None,
        "POST /api/v1/transactions",
    )
    .await?;
    let (transaction_id, will_be_quarantined) = match checked {
        Ok(clean) => (Some(clean.transaction_id), Vec::new()),
        Err(reasons) => (
            None,
            reasons.iter().map(|r| r.as_str().to_owned()).collect(),
        ),
    };
    Ok(respond(
        ChangeReceipt {
            status: status(replayed),
            operation: Operation::Insert.as_str(),
            ingestion_id,
            transaction_id,
            target_transaction_id: None,
            will_be_quarantined,
        },
        replayed,
    ))
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
    headers: HeaderMap,
    principal: Option<axum::Extension<Principal>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let target = target(&transaction_id)?;
    let record = one_record(&headers, body)?;
    // An update that silver would refuse is refused now: it could only be quarantined.
    let clean = cleanse(&raw(&record), None).map_err(|reasons| {
        ApiError::invalid(format!(
            "the new fields break the contract's rules ({}); nothing was written",
            reasons
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let (ingestion_id, replayed) = write(
        &state,
        &headers,
        principal.as_ref().map(|p| &p.0),
        record,
        Some(RecordChange {
            operation: Operation::Update,
            target_transaction_id: target.clone(),
        }),
        "PUT /api/v1/transactions",
    )
    .await?;
    Ok(respond(
        ChangeReceipt {
            status: status(replayed),
            operation: Operation::Update.as_str(),
            ingestion_id,
            transaction_id: Some(clean.transaction_id),
            target_transaction_id: Some(target),
            will_be_quarantined: Vec::new(),
        },
        replayed,
    ))
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
    headers: HeaderMap,
    principal: Option<axum::Extension<Principal>>,
) -> Result<Response, ApiError> {
    let target = target(&transaction_id)?;
    let (ingestion_id, replayed) = write(
        &state,
        &headers,
        principal.as_ref().map(|p| &p.0),
        Fields::default(),
        Some(RecordChange {
            operation: Operation::Delete,
            target_transaction_id: target.clone(),
        }),
        "DELETE /api/v1/transactions",
    )
    .await?;
    Ok(respond(
        ChangeReceipt {
            status: status(replayed),
            operation: Operation::Delete.as_str(),
            ingestion_id,
            transaction_id: None,
            target_transaction_id: Some(target),
            will_be_quarantined: Vec::new(),
        },
        replayed,
    ))
}
