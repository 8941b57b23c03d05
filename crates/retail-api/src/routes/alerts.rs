//! Alerts: Alertmanager's receiving endpoint (`POST /api/v2/alerts`, so a Prometheus sends its
//! alerts through the platform's routing), the alerts the manager tracks, acknowledgements and
//! silences.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use retail_services::alerts::{AlertView, PostableAlert, SilenceRequest, SilenceView};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonArray, JsonBody};
use crate::state::AppState;

/// Taking alerts in (`write:alerts`).
pub(crate) fn receive_routes() -> Router<AppState> {
    Router::new().route("/api/v2/alerts", post(receive))
}

/// Reading alerts and silences (`read:alerts`).
pub(crate) fn read_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alerts", get(list))
        .route("/api/v1/alerts/silences", get(silences))
}

/// Acknowledging and silencing (`manage:alerts`).
pub(crate) fn manage_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alerts/{fingerprint}/ack", post(acknowledge))
        .route("/api/v1/alerts/silences", post(silence))
        .route("/api/v1/alerts/silences/{id}", delete(expire))
}

fn who(caller: Caller) -> String {
    caller.0.map_or_else(|| "api".to_owned(), |p| p.subject)
}

/// How many alerts were taken in.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Received {
    /// Alerts taken in (new or updated).
    received: usize,
}

#[utoipa::path(post, path = "/api/v2/alerts", tag = "alerts", request_body = Vec<PostableAlert>,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Taken in (Alertmanager's API v2: a Prometheus's `alerting` section can point here; an API key may be sent as a bearer token)", body = Received),
        (status = 400, description = "An alert breaks a rule (the answer names it by position); none was taken", body = ErrorBody)))]
pub(crate) async fn receive(
    State(state): State<AppState>,
    JsonArray(alerts): JsonArray<PostableAlert>,
) -> Result<Json<Received>, ApiError> {
    let received = state.services.alerts.receive(alerts).await?;
    Ok(Json(Received { received }))
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "Every tracked alert, firing first", body = Vec<AlertView>)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<AlertView>>, ApiError> {
    Ok(Json(state.services.alerts.alerts().await?))
}

#[utoipa::path(post, path = "/api/v1/alerts/{fingerprint}/ack", tag = "alerts",
    params(("fingerprint" = String, Path, description = "The alert's fingerprint (from the list)")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Acknowledged: a critical alert acknowledged before its escalation does not escalate", body = AlertView),
        (status = 404, description = "No such alert", body = ErrorBody)))]
pub(crate) async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Path(fingerprint): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    let by = who(caller);
    Ok(Json(
        state.services.alerts.acknowledge(&fingerprint, &by).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/alerts/silences", tag = "alerts",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "The active silences", body = Vec<SilenceView>)))]
pub(crate) async fn silences(
    State(state): State<AppState>,
) -> Result<Json<Vec<SilenceView>>, ApiError> {
    Ok(Json(state.services.alerts.silences().await?))
}

#[utoipa::path(post, path = "/api/v1/alerts/silences", tag = "alerts", request_body = SilenceRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Silenced until it expires", body = SilenceView),
        (status = 400, description = "No matcher, a bad matcher, a bad duration or no comment", body = ErrorBody)))]
pub(crate) async fn silence(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<SilenceRequest>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
    let by = who(caller);
    let silence = state.services.alerts.silence(request, &by).await?;
    Ok((StatusCode::CREATED, Json(silence)))
}

#[utoipa::path(delete, path = "/api/v1/alerts/silences/{id}", tag = "alerts",
    params(("id" = String, Path, description = "The silence's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Expired now"),
        (status = 404, description = "No such active silence", body = ErrorBody)))]
pub(crate) async fn expire(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services.alerts.expire_silence(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
