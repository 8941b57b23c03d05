//! `/health`, `/ready` and `/metrics`: what load balancers and Prometheus ask.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok` while the process serves requests.
    status: &'static str,
}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness of each dependency.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    /// Per dependency (`lake`, `warehouse`, `metadata`): `ok`, or a code saying what is wrong
    /// (`unavailable`, `not_found`, `internal`, `circuit_open`, `trial_in_flight`).
    checks: BTreeMap<&'static str, &'static str>,
}

#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Lake, warehouse and metadata store reachable", body = Readiness),
        (status = 503, description = "A dependency is not reachable", body = Readiness)))]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let readiness = state.services.operations.readiness().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if readiness.ready {
            "ready"
        } else {
            "not_ready"
        },
        checks: readiness.checks,
    };
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(crate) async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.services.operations.metrics().await,
    )
        .into_response()
}
