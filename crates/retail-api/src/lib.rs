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
mod masking;
mod openapi;
mod routes;
mod state;
mod tls;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use retail_services::{ApiConfig, Services};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument as _;

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use openapi::{Context as OpenApiContext, document as openapi_document};

use crate::state::AppState;

/// Request counts and latency by route, method and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = next.run(request).await;
    retail_telemetry::metrics::record_http_request(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        method.as_str(),
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

/// A handler that panicked answers the JSON `500` and the server lives on; the panic is
/// logged with the request's span (its message stays out of the answer).
fn panic_answer(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!(panic = message, "a request handler panicked");
    retail_telemetry::metrics::record_handler_panic();
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
    .into_response()
}

/// The whole application over `services`, with `config`'s timeout and body limit.
pub fn router(services: Services, config: &ApiConfig) -> Router {
    let client_header = (!config.client_address_header.is_empty())
        .then(|| HeaderName::try_from(config.client_address_header.as_str()).ok())
        .flatten();
    let state = AppState::new(services, client_header);
    with_layers(routes::routes(state), config)
}

/// The layers every route passes: panics and lower layers' rejections as JSON errors, the body
/// limit, the timeout, metrics, request ids and the request's span.
fn with_layers(routes: Router, config: &ApiConfig) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    routes
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_answer,
        ))
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
        .layer(middleware::from_fn(request_span))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Runs the request in its `request` span (method, path without the query, request id), a
/// child of the caller's trace when it sent a W3C `traceparent`; a server error is logged in
/// it with the time taken. The answer names its trace in `x-trace-id`: the request's own when
/// its trace is sampled and exported, else the trace its caller's `traceparent` named, if any.
/// (A plain span around the handler: `tower-http`'s `TraceLayer` also entered it on every poll
/// of the response body and ran its callbacks there, a cost on every request.)
async fn request_span(request: Request, next: Next) -> Response {
    let (span, traceparent) = {
        let headers = request.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let span = retail_telemetry::tracing_setup::continued_span(header, || {
            let id = header("x-request-id").unwrap_or("");
            // The path only: query strings and headers (tokens) stay out of logs.
            tracing::info_span!(
                "request",
                request_id = %id,
                method = %request.method(),
                path = %request.uri().path()
            )
        });
        (span, header("traceparent").map(str::to_owned))
    };
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    if response.status().is_server_error() {
        span.in_scope(|| {
            tracing::error!(
                status = response.status().as_u16(),
                latency_ms = started.elapsed().as_millis() as u64,
                "response failed"
            );
        });
    }
    let trace = retail_telemetry::tracing_setup::trace_id(&span).or_else(|| {
        let traceparent = traceparent.as_deref()?;
        retail_telemetry::tracing_setup::callers_trace_id(|name| {
            (name == "traceparent").then_some(traceparent)
        })
    });
    if let Some(id) = trace
        && let Ok(value) = axum::http::HeaderValue::from_str(&id)
    {
        response.headers_mut().insert("x-trace-id", value);
    }
    response
}

/// Serves `router` on `listener` until `shutdown` resolves; requests in flight finish first.
/// With `tls`, every connection is TLS 1.3 (see the `tls` module); else plain HTTP.
///
/// # Errors
///
/// When serving fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    tls: Option<(retail_tls::ServerTls, std::time::Duration)>,
) -> std::io::Result<()> {
    if let Some((tls, reload)) = tls {
        return tls::serve(listener, router, shutdown, tls, reload).await;
    }
    tracing::info!(listen = ?listener.local_addr().ok(), "API listening");
    // The peer's address reaches the handlers (the login throttles key on it).
    let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("API stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn a_handler_that_panics_answers_the_json_500_and_the_router_lives_on() {
        async fn boom() -> &'static str {
            panic!("a bug")
        }
        let routes = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }));
        let app = with_layers(routes, &ApiConfig::default());
        let response = app
            .clone()
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().contains_key("x-request-id"));
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "internal");
        assert!(!json.to_string().contains("a bug"), "no panic text leaks");
        let response = app
            .oneshot(Request::get("/fine").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
