//! The platform's HTTP API (axum): a thin layer over the services.
//!
//! [`router`] builds the whole application from the [`Services`] (trait objects the
//! composition root built) and binds no socket, so tests drive it in-process; [`serve`] runs
//! it until SIGTERM or Ctrl-C, letting requests in flight finish.
//!
//! Routes live in one module per resource under `routes/`; a handler parses the request with
//! the shared extractors (`extract.rs`), calls one service method and shapes the answer.
//! Protected routes pass the guard (`guard.rs`), which asks the access service to admit the
//! request. Every error becomes the one JSON shape through [`ApiError`].

mod error;
mod extract;
mod guard;
mod openapi;
mod routes;
mod state;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use retail_services::{ApiConfig, Services};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use openapi::document as openapi_document;

use crate::state::AppState;

/// Request counts and latency by route, method and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    retail_telemetry::metrics::record_http_request(
        route,
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Turns the plain-text rejections of lower layers (body too large, timeout, no such route)
/// into the JSON error shape.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || status.is_success() || status.is_redirection() {
        return response;
    }
    let (code, message) = match status.as_u16() {
        413 => (
            "payload_too_large",
            "the request body is larger than allowed",
        ),
        408 => ("timeout", "the request took longer than allowed"),
        404 => ("not_found", "no such endpoint"),
        405 => (
            "method_not_allowed",
            "this endpoint does not take that method",
        ),
        415 => (
            "unsupported_media_type",
            "unsupported content type: send application/json",
        ),
        _ if status.is_client_error() => ("invalid_input", "the request is not valid"),
        _ => ("internal", "internal error"),
    };
    ApiError::new(status, code, message).into_response()
}

/// The whole application over `services`, with `config`'s timeout and body limit.
pub fn router(services: Services, config: &ApiConfig) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    routes::routes(AppState { services })
        .layer(middleware::from_fn(json_errors))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            config.body_limit_bytes,
        ))
        // axum's own extractor limit (2 MB) gives way to the configured one.
        .layer(axum::extract::DefaultBodyLimit::max(
            config.body_limit_bytes,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(config.request_timeout_ms),
        ))
        .layer(middleware::from_fn(record_metrics))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                // The path only: query strings and headers (tokens) stay out of logs.
                tracing::info_span!(
                    "request",
                    request_id = %id,
                    method = %request.method(),
                    path = %request.uri().path()
                )
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Serves `router` on `listener` until `shutdown` resolves; requests in flight finish first.
///
/// # Errors
///
/// When serving fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(listen = ?listener.local_addr().ok(), "API listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("API stopped");
    Ok(())
}
