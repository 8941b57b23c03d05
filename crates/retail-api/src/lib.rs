//! The platform's HTTP API (axum): operations endpoints, authentication, role-based access,
//! and analytics answered from the warehouse's query catalogue.
//!
//! [`router`] builds the whole application from an [`AppState`]; [`serve`] runs it until
//! SIGTERM or Ctrl-C, letting requests in flight finish.

mod auth;
mod breaker;
mod changes;
mod config;
mod error;
mod export;
mod ingest;
mod openapi;
mod ratelimit;
mod rbac;
mod routes;
mod shared;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use retail_lake::Lake;
use retail_pipeline::{IngestOptions, IngestService, MetadataStore, PipelineService};
use retail_warehouse::AnyWarehouse;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use auth::{AuthError, AuthService, KeyInfo, Principal, TokenPair, UserInfo};
pub use breaker::{CircuitBreaker, CircuitState};
pub use config::ApiConfig;
pub use error::{ApiError, ErrorBody};
pub use ratelimit::{Decision, RateLimiter};
pub use rbac::{Policy, Role};

/// Everything a request may need.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: ApiConfig,
    lake: Lake,
    store: Arc<MetadataStore>,
    pipeline: PipelineService,
    ingest: IngestService,
    /// One API ingestion commits at a time, so an idempotency key is checked and recorded
    /// atomically within the process.
    ingest_lock: tokio::sync::Mutex<()>,
    warehouse: AnyWarehouse,
    auth: AuthService,
    policy: Policy,
    limiter: RateLimiter,
    breaker: CircuitBreaker,
    /// Redis shared by replicas, when configured.
    shared: Option<shared::Shared>,
    cache: moka::future::Cache<String, Arc<serde_json::Value>>,
    metrics: PrometheusHandle,
}

impl AppState {
    /// Assembles the state. `auth` holds users and keys; `policy` the roles.
    pub fn new(
        config: ApiConfig,
        lake: Lake,
        store: Arc<MetadataStore>,
        warehouse: AnyWarehouse,
        auth: AuthService,
        policy: Policy,
    ) -> Self {
        let pipeline = PipelineService::new(lake.clone(), Arc::clone(&store));
        let ingest = IngestService::new(lake.clone(), Arc::clone(&store), IngestOptions::default());
        let cache = moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(config.cache_ttl_seconds.max(1)))
            .build();
        let limiter = RateLimiter::new(config.rate_limit_per_minute, config.rate_limit_burst);
        let breaker = CircuitBreaker::new(
            config.breaker_failures,
            Duration::from_secs(config.breaker_cool_down_seconds),
        );
        Self {
            inner: Arc::new(Inner {
                config,
                lake,
                store,
                pipeline,
                ingest,
                ingest_lock: tokio::sync::Mutex::new(()),
                warehouse,
                auth,
                policy,
                limiter,
                breaker,
                shared: None,
                cache,
                metrics: metrics_handle(),
            }),
        }
    }

    /// Shares rate limits and cached answers with every replica through Redis at `url`.
    /// Call before the state is cloned.
    ///
    /// # Errors
    ///
    /// When the URL is invalid or Redis cannot be reached (the message never repeats the URL).
    pub async fn with_redis(mut self, url: &str) -> anyhow::Result<Self> {
        let shared = shared::Shared::connect(url)
            .await
            .map_err(|message| anyhow::anyhow!(message))?;
        Arc::get_mut(&mut self.inner)
            .ok_or_else(|| anyhow::anyhow!("with_redis must be called before the state is shared"))?
            .shared = Some(shared);
        Ok(self)
    }

    /// Users and keys.
    pub fn auth(&self) -> &AuthService {
        &self.inner.auth
    }

    /// Runs a warehouse call behind the circuit breaker: fails fast while the circuit is open;
    /// failures of the dependency (unreachable, internal errors) count, bad input does not.
    pub(crate) async fn warehouse<T>(
        &self,
        call: impl Future<Output = Result<T, retail_warehouse::Error>>,
    ) -> Result<T, ApiError> {
        use retail_domain::error::{Classify as _, ErrorKind};
        let breaker = &self.inner.breaker;
        if let Err(retry_after) = breaker.admit() {
            return Err(ApiError::unavailable(
                format!(
                    "the warehouse failed repeatedly: its circuit is open; retry in {retry_after} s"
                ),
                retry_after,
            ));
        }
        let result = call.await;
        let failed = result
            .as_ref()
            .err()
            .is_some_and(|e| matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal));
        breaker.record(!failed);
        result.map_err(ApiError::from)
    }
}

/// The process-wide Prometheus recorder (installed once; tests build several states).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0,
                ])
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (a test binary): then metrics from
            // the facade go there and this handle renders what it saw.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Request counts and latency by route, method and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("retail_http_requests_total", &labels).increment(1);
    metrics::histogram!("retail_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Turns the plain-text rejections of lower layers (body too large, timeout) into the JSON
/// error shape.
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
            "invalid_input",
            "unsupported content type: send application/json",
        ),
        _ if status.is_client_error() => ("invalid_input", "the request is not valid"),
        _ => ("internal", "internal error"),
    };
    ApiError::new(status, code, message).into_response()
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let config = &state.inner.config;
    routes::routes(state.clone())
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

/// Serves `state` on `listen` until SIGTERM or Ctrl-C; requests in flight finish first.
///
/// # Errors
///
/// When the address cannot be bound.
pub async fn serve(state: AppState, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {listen}: {error}"))?;
    tracing::info!(%listen, "API listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("API stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

pub(crate) fn header(value: impl std::fmt::Display) -> HeaderValue {
    HeaderValue::from_str(&value.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}
