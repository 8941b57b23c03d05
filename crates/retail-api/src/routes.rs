//! Routes and handlers.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use retail_lake::schema as tables;
use retail_pipeline::{NoProgress, RunOptions};
use retail_warehouse::{Catalogue, Params, Warehouse as _};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Principal, TokenPair};
use crate::error::{ApiError, ErrorBody};
use crate::ratelimit::Decision;
use crate::{AppState, header as header_value};

/// Which permission a group of routes needs.
#[derive(Clone)]
struct Guard {
    state: AppState,
    permission: &'static str,
}

fn credentials(headers: &HeaderMap) -> (Option<&str>, Option<&str>) {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    (bearer, key)
}

/// Authenticates, authorises and rate-limits every request of a protected route.
async fn guard(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let inner = &guard.state.inner;
    let principal = match credentials(request.headers()) {
        (Some(token), _) => inner.auth.verify_access(token),
        (None, Some(key)) => inner.auth.verify_key(key),
        (None, None) => {
            let mut response = ApiError::unauthenticated(
                "sign in: send Authorization: Bearer <access token> or X-API-Key",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header_value("Bearer"));
            return response;
        }
    };
    let principal = match principal {
        Ok(principal) => principal,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let path = request.uri().path().to_owned();
    if !inner
        .policy
        .allows(&principal.role, guard.permission, &path)
    {
        return ApiError::forbidden(format!(
            "role {} may not {} on {path}",
            principal.role, guard.permission
        ))
        .into_response();
    }
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let key = format!("{}|{route}", principal.subject);
    let decision = match &inner.shared {
        Some(shared) => match shared
            .rate(
                &key,
                inner.config.rate_limit_per_minute,
                inner.config.rate_limit_burst,
            )
            .await
        {
            Ok(decision) => decision,
            Err(error) => {
                // Redis is down: limit in-process rather than refuse or stop limiting.
                tracing::warn!(error = ?error.kind(), "shared rate limiter unreachable");
                metrics::counter!("retail_api_redis_errors_total").increment(1);
                inner.limiter.check(&key)
            }
        },
        None => inner.limiter.check(&key),
    };
    let remaining = match decision {
        Decision::Allow { remaining } => remaining,
        Decision::Deny { retry_after } => {
            let mut response = ApiError::rate_limited(retry_after).into_response();
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", header_value(inner.limiter.limit()));
            headers.insert("x-ratelimit-remaining", header_value(0));
            return response;
        }
    };
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", header_value(inner.limiter.limit()));
    headers.insert("x-ratelimit-remaining", header_value(remaining));
    response
}

fn protected(
    state: &AppState,
    permission: &'static str,
    router: Router<AppState>,
) -> Router<AppState> {
    router.route_layer(middleware::from_fn_with_state(
        Guard {
            state: state.clone(),
            permission,
        },
        guard,
    ))
}

pub(crate) fn routes(state: AppState) -> Router {
    let analytics = Router::new()
        .route("/api/v2/analytics/sales-summary", get(sales_summary))
        .route("/api/v2/analytics/revenue-trend", get(revenue_trend))
        .route("/api/v2/analytics/top-products", get(top_products))
        .route("/api/v2/analytics/returns", get(returns))
        .route("/api/v2/analytics/customers/rfm", get(rfm))
        .route("/api/v2/analytics/cohorts", get(cohorts))
        .route("/api/v2/analytics/geography", get(geography));
    let data = Router::new()
        .route("/api/v1/customers/{customer_id}", get(customer))
        .route("/api/v1/products/{stock_code}", get(product))
        .route("/api/v1/invoices/{invoice}", get(invoice));
    let reports = Router::new()
        .route("/api/v1/sales", get(sales))
        .route("/api/v1/sales/export", get(export));
    let runs = Router::new().route("/admin/pipeline/runs", get(pipeline_runs));
    let ingest = Router::new()
        .route("/api/v1/ingest/transactions", post(ingest_transactions))
        .route(
            "/api/v1/transactions",
            post(crate::changes::create_transaction),
        )
        .route(
            "/api/v1/transactions/{transaction_id}",
            axum::routing::put(crate::changes::update_transaction)
                .delete(crate::changes::delete_transaction),
        );
    let run = Router::new().route("/admin/pipeline/run", post(pipeline_run));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .merge(protected(&state, "read:analytics", analytics))
        .merge(protected(&state, "read:data", data))
        .merge(protected(&state, "read:reports", reports))
        .merge(protected(&state, "read:pipelines", runs))
        .merge(protected(&state, "manage:pipelines", run))
        .merge(protected(&state, "write:etl", ingest))
        .merge(
            // Serves /openapi.json (the document with the catalogue's parameters) and the docs.
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .external_url_unchecked("/openapi.json", crate::openapi::document_json()),
        )
        .with_state(state)
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
    /// `ok` or what failed, per dependency: `lake`, `warehouse`, `metadata`.
    checks: BTreeMap<&'static str, String>,
}

#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Lake, warehouse and metadata store reachable", body = Readiness),
        (status = 503, description = "A dependency is not reachable", body = Readiness)))]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let inner = &state.inner;
    let mut checks = BTreeMap::new();
    let outcome = |result: Result<(), String>| result.err().unwrap_or_else(|| "ok".to_owned());
    checks.insert(
        "lake",
        outcome(
            inner
                .lake
                .latest_version(&tables::GOLD_FACT_SALES)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        ),
    );
    let circuit = inner.breaker.state();
    let warehouse = if circuit == crate::CircuitState::Open {
        Err("circuit open after repeated failures".to_owned())
    } else {
        inner
            .warehouse
            .data_version()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    checks.insert("warehouse", outcome(warehouse));
    checks.insert(
        "metadata",
        outcome(
            inner
                .store
                .runs(None, 1)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        ),
    );
    let ready = checks.values().all(|v| v == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if ready { "ready" } else { "not_ready" },
            checks,
        }),
    )
        .into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(crate) async fn metrics_text(State(state): State<AppState>) -> Response {
    let inner = &state.inner;
    for (table, layer) in [
        (tables::BRONZE_TRANSACTIONS, "bronze"),
        (tables::SILVER_TRANSACTIONS, "silver"),
        (tables::SILVER_QUARANTINE, "quarantine"),
        (tables::SILVER_DUPLICATES, "duplicates"),
        (tables::GOLD_FACT_SALES, "gold_fact_sales"),
    ] {
        if let Ok(rows) = inner.lake.count_rows(&table).await {
            metrics::gauge!("retail_layer_rows", "layer" => layer).set(rows as f64);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        inner.metrics.render(),
    )
        .into_response()
}

/// A user name and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// The user name.
    username: String,
    /// The password.
    password: String,
}

/// A refresh token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    refresh_token: String,
}

/// Logging out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogoutRequest {
    /// The session's refresh token (revoked with every token of its session).
    #[serde(default)]
    refresh_token: Option<String>,
}

fn json_body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    body.map(|Json(value)| value).map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than allowed",
            )
        } else {
            ApiError::invalid(format!("request body: {}", rejection.body_text()))
        }
    })
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens", body = TokenPair),
        (status = 401, description = "Wrong user name or password", body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<TokenPair>, ApiError> {
    let body = json_body(body)?;
    let inner = Arc::clone(&state.inner);
    // argon2 is deliberately slow: keep it off the async workers.
    let pair =
        tokio::task::spawn_blocking(move || inner.auth.login(&body.username, &body.password))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "login failed",
                )
            })??;
    Ok(Json(pair))
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens; the refresh token sent is spent", body = TokenPair),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = ErrorBody)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    body: Result<Json<RefreshRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<TokenPair>, ApiError> {
    let body = json_body(body)?;
    Ok(Json(state.inner.auth.refresh(&body.refresh_token)?))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = LogoutRequest,
    responses((status = 204, description = "Session ended")))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Option<Json<LogoutRequest>>,
) -> Result<StatusCode, ApiError> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let (bearer, _) = credentials(&headers);
    state
        .inner
        .auth
        .logout(body.refresh_token.as_deref(), bearer)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rows of a catalogue query, money rounded to cents.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Analytics {
    /// The catalogue query that answered.
    query: String,
    /// `embedded` or `postgres`.
    backend: String,
    /// Changes whenever the data served changes.
    data_version: String,
    /// One object per row.
    #[schema(value_type = Vec<Object>)]
    rows: serde_json::Value,
}

async fn run_query(
    state: &AppState,
    name: &'static str,
    raw: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    let inner = &state.inner;
    let query = Catalogue::get(name)?;
    let params = Params::parse(query, raw.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let version = state.warehouse(inner.warehouse.data_version()).await?;
    // The lake's root names the data: replicas of one deployment share entries, others never.
    let key = format!("{}|{name}?{params:?}@{version}", inner.lake.root());
    if let Some(hit) = inner.cache.get(&key).await {
        metrics::counter!("retail_api_cache_total", "result" => "hit").increment(1);
        let mut response = Json(hit.as_ref().clone()).into_response();
        response
            .headers_mut()
            .insert("x-cache", header_value("hit"));
        return Ok(response);
    }
    if let Some(shared) = &inner.shared
        && let Some(text) = shared.get(&key).await
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(&text)
    {
        metrics::counter!("retail_api_cache_total", "result" => "shared_hit").increment(1);
        let value = Arc::new(value);
        inner.cache.insert(key, Arc::clone(&value)).await;
        let mut response = Json(value.as_ref().clone()).into_response();
        response
            .headers_mut()
            .insert("x-cache", header_value("hit-shared"));
        return Ok(response);
    }
    metrics::counter!("retail_api_cache_total", "result" => "miss").increment(1);
    let result = state
        .warehouse(inner.warehouse.query(query, &params))
        .await?;
    let body = serde_json::to_value(Analytics {
        query: name.to_owned(),
        backend: inner.warehouse.backend().to_string(),
        data_version: version,
        rows: serde_json::to_value(&result).map_err(|e| ApiError::invalid(e.to_string()))?,
    })
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    if let Some(shared) = &inner.shared {
        shared
            .put(&key, &body.to_string(), inner.config.cache_ttl_seconds)
            .await;
    }
    let body = Arc::new(body);
    inner.cache.insert(key, Arc::clone(&body)).await;
    let mut response = Json(body.as_ref().clone()).into_response();
    response
        .headers_mut()
        .insert("x-cache", header_value("miss"));
    Ok(response)
}

macro_rules! analytics_endpoint {
    ($handler:ident, $path:literal, $query:literal, $summary:literal) => {
        #[utoipa::path(get, path = $path, tag = "analytics", summary = $summary,
            security(("bearer" = []), ("api_key" = [])),
            responses(
                (status = 200, description = "Rows of the catalogue query", body = Analytics),
                (status = 400, description = "A parameter is unknown or not of its type", body = ErrorBody),
                (status = 401, description = "Not signed in", body = ErrorBody),
                (status = 403, description = "The role may not read analytics", body = ErrorBody),
                (status = 429, description = "Rate limited", body = ErrorBody)))]
        pub(crate) async fn $handler(
            State(state): State<AppState>,
            raw: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
        ) -> Result<Response, ApiError> {
            let Query(raw) = raw.map_err(|r| ApiError::invalid(r.body_text()))?;
            run_query(&state, $query, raw).await
        }
    };
}

analytics_endpoint!(
    sales_summary,
    "/api/v2/analytics/sales-summary",
    "sales_summary",
    "Gross, returns and net revenue, orders, units, lines and customers over a period"
);
analytics_endpoint!(
    revenue_trend,
    "/api/v2/analytics/revenue-trend",
    "revenue_trend",
    "Revenue per day, ISO week or month"
);
analytics_endpoint!(
    top_products,
    "/api/v2/analytics/top-products",
    "top_products",
    "Best-selling products over a period"
);
analytics_endpoint!(
    returns,
    "/api/v2/analytics/returns",
    "returns",
    "Returns and cancellations per month"
);
analytics_endpoint!(
    rfm,
    "/api/v2/analytics/customers/rfm",
    "rfm_segments",
    "Customers per RFM segment"
);
analytics_endpoint!(
    cohorts,
    "/api/v2/analytics/cohorts",
    "cohort_retention",
    "Monthly cohort retention"
);
analytics_endpoint!(
    geography,
    "/api/v2/analytics/geography",
    "geography",
    "Revenue, orders and customers per country"
);

/// A customer: profile and latest invoices.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CustomerView {
    /// Current country, versions, RFM scores and segment.
    #[schema(value_type = Object)]
    profile: serde_json::Value,
    /// The 20 newest invoices.
    #[schema(value_type = Vec<Object>)]
    invoices: serde_json::Value,
}

async fn rows_of(
    state: &AppState,
    name: &str,
    raw: &[(&str, &str)],
) -> Result<retail_warehouse::QueryResult, ApiError> {
    let query = Catalogue::get(name)?;
    let params = Params::parse(query, raw.iter().copied())?;
    state
        .warehouse(state.inner.warehouse.query(query, &params))
        .await
}

#[utoipa::path(get, path = "/api/v1/customers/{customer_id}", tag = "data",
    params(("customer_id" = String, Path, description = "The customer's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The customer", body = CustomerView),
        (status = 404, description = "No such customer", body = ErrorBody)))]
pub(crate) async fn customer(
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
) -> Result<Json<CustomerView>, ApiError> {
    let profile = rows_of(&state, "customer_profile", &[("customer_id", &customer_id)]).await?;
    if profile.rows.is_empty() {
        return Err(ApiError::not_found(format!("no customer {customer_id:?}")));
    }
    let invoices = rows_of(
        &state,
        "customer_history",
        &[("customer_id", &customer_id), ("limit", "20")],
    )
    .await?;
    let to_json = |r: &retail_warehouse::QueryResult| {
        serde_json::to_value(r).map_err(|e| ApiError::invalid(e.to_string()))
    };
    let profile = to_json(&profile)?
        .as_array()
        .and_then(|rows| rows.first().cloned())
        .unwrap_or_default();
    Ok(Json(CustomerView {
        profile,
        invoices: to_json(&invoices)?,
    }))
}

/// A product: profile and monthly sales.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProductView {
    /// Description, line type, first and last sale dates.
    #[schema(value_type = Object)]
    profile: serde_json::Value,
    /// Revenue, units, orders and return rate per month.
    #[schema(value_type = Vec<Object>)]
    months: serde_json::Value,
}

#[utoipa::path(get, path = "/api/v1/products/{stock_code}", tag = "data",
    params(("stock_code" = String, Path, description = "The product's stock code")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 404, description = "No such product", body = ErrorBody)))]
pub(crate) async fn product(
    State(state): State<AppState>,
    Path(stock_code): Path<String>,
) -> Result<Json<ProductView>, ApiError> {
    let profile = rows_of(&state, "product_profile", &[("stock_code", &stock_code)]).await?;
    if profile.rows.is_empty() {
        return Err(ApiError::not_found(format!("no product {stock_code:?}")));
    }
    let months = rows_of(&state, "product_history", &[("stock_code", &stock_code)]).await?;
    let to_json = |r: &retail_warehouse::QueryResult| {
        serde_json::to_value(r).map_err(|e| ApiError::invalid(e.to_string()))
    };
    let profile = to_json(&profile)?
        .as_array()
        .and_then(|rows| rows.first().cloned())
        .unwrap_or_default();
    Ok(Json(ProductView {
        profile,
        months: to_json(&months)?,
    }))
}

/// How many runs to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    /// At most this many, newest first (1 to 1000, default 20).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/admin/pipeline/runs", tag = "pipeline", params(RunsQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "Recorded runs, newest first")))]
pub(crate) async fn pipeline_runs(
    State(state): State<AppState>,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|r| ApiError::invalid(r.body_text()))?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit must be from 1 to 1000"));
    }
    let runs = state.inner.store.runs(None, limit)?;
    Ok(Json(runs).into_response())
}

#[utoipa::path(post, path = "/admin/pipeline/run", tag = "pipeline",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The run record (silver and gold brought up to date)"),
        (status = 409, description = "Another run is in progress", body = ErrorBody)))]
pub(crate) async fn pipeline_run(
    State(state): State<AppState>,
    principal: Option<axum::Extension<Principal>>,
) -> Result<Response, ApiError> {
    if let Some(axum::Extension(principal)) = principal {
        tracing::info!(by = %principal.subject, "pipeline run requested");
    }
    let run = state
        .inner
        .pipeline
        .run(RunOptions::default(), &NoProgress)
        .await?;
    Ok(Json(run).into_response())
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
    will_be_quarantined: Vec<crate::ingest::RecordProblem>,
}

/// A refused ingestion: every malformed record with its problems.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IngestRefusal {
    /// `invalid_input` and a summary.
    error: crate::error::ErrorDetail,
    /// The malformed records.
    records: Vec<crate::ingest::RecordProblem>,
}

#[utoipa::path(post, path = "/api/v1/ingest/transactions", tag = "ingestion",
    params(("Idempotency-Key" = Option<String>, Header,
            description = "Makes a retry safe: records sent again under the same key are not written twice")),
    request_body(description = "One transaction or an array (application/json), one per line (application/x-ndjson), or CSV with a header (text/csv)",
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
    headers: HeaderMap,
    principal: Option<axum::Extension<Principal>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_rejection)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(format) = crate::ingest::BodyFormat::of(content_type) else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json, application/x-ndjson or text/csv",
        ));
    };
    let key = idempotency_key(&headers, principal.as_ref().map(|p| &p.0))?;
    let request_id = request_id(&headers);
    let parsed = tokio::task::spawn_blocking(move || {
        crate::ingest::parse(format, &body).map(|records| {
            let quarantined = crate::ingest::will_be_quarantined(&records);
            (records, quarantined)
        })
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "parsing failed",
        )
    })?;
    let (records, will_be_quarantined) = match parsed {
        Ok(parsed) => parsed,
        Err(problems) => {
            let refusal = IngestRefusal {
                error: crate::error::ErrorDetail {
                    code: "invalid_input",
                    message: format!(
                        "{} malformed record(s); nothing was written",
                        problems.len()
                    ),
                },
                records: problems,
            };
            return Ok((StatusCode::BAD_REQUEST, Json(refusal)).into_response());
        }
    };
    let source = retail_pipeline::RecordSource {
        source_system: "api",
        location: format!("POST /api/v1/ingest/transactions {request_id}"),
        idempotency_key: key,
        change: None,
    };
    let receipt = {
        let _one_at_a_time = state.inner.ingest_lock.lock().await;
        state.inner.ingest.ingest_records(&records, &source).await?
    };
    let (status, body) = if receipt.replayed {
        (
            StatusCode::OK,
            IngestReceipt {
                status: "replayed",
                ingestion_id: receipt.run.map(|run| run.run_id),
                records: records.len(),
                written: 0,
                will_be_quarantined: Vec::new(),
            },
        )
    } else {
        let run = receipt.run.expect("a written ingestion has its run");
        (
            StatusCode::ACCEPTED,
            IngestReceipt {
                status: "accepted",
                ingestion_id: Some(run.run_id),
                records: records.len(),
                written: run.rows_out,
                will_be_quarantined,
            },
        )
    };
    let mut response = (status, Json(body)).into_response();
    if receipt.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", header_value("true"));
    }
    Ok(response)
}

/// Maps a body that could not be read to the API's error (413 when too large).
pub(crate) fn body_rejection(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than allowed",
        )
    } else {
        ApiError::invalid(rejection.body_text())
    }
}

/// The caller's `Idempotency-Key`, scoped to the caller so that two callers never collide.
pub(crate) fn idempotency_key(
    headers: &HeaderMap,
    principal: Option<&Principal>,
) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|k| (1..=200).contains(&k.len()));
    let key = key.ok_or_else(|| {
        ApiError::invalid("Idempotency-Key must be 1 to 200 visible ASCII characters")
    })?;
    let subject = principal.map_or("", |p| p.subject.as_str());
    Ok(Some(format!("{subject}\n{key}")))
}

/// The request's id (set by the request-id layer).
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A page of sales lines.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SalesPage {
    /// The lines, money rounded to cents.
    #[schema(value_type = Vec<Object>)]
    rows: serde_json::Value,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

fn next_cursor(result: &retail_warehouse::QueryResult, limit: usize) -> Option<String> {
    if result.rows.len() < limit {
        return None;
    }
    let last = result.rows.len() - 1;
    let at = match result.get(last, "invoice_date")? {
        retail_warehouse::Cell::Timestamp(at) => at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        _ => return None,
    };
    Some(format!("{at}~{}", result.get(last, "transaction_id")?))
}

fn query_pairs(
    raw: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Vec<(String, String)>, ApiError> {
    raw.map(|Query(pairs)| pairs)
        .map_err(|r| ApiError::invalid(r.body_text()))
}

#[utoipa::path(get, path = "/api/v1/sales", tag = "data",
    params(
        ("from" = Option<String>, Query, description = "first day, YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "last day, YYYY-MM-DD"),
        ("country" = Option<String>, Query, description = "country name"),
        ("customer_id" = Option<String>, Query, description = "customer id"),
        ("stock_code" = Option<String>, Query, description = "stock code"),
        ("invoice" = Option<String>, Query, description = "invoice number"),
        ("order" = Option<String>, Query, description = "desc (newest first, default) or asc"),
        ("limit" = Option<u32>, Query, description = "rows per page, 1 to 1000 (default 100)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of sales lines", body = SalesPage),
        (status = 400, description = "A filter is unknown or not of its type", body = ErrorBody)))]
pub(crate) async fn sales(
    State(state): State<AppState>,
    raw: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SalesPage>, ApiError> {
    let raw = query_pairs(raw)?;
    let pairs: Vec<(&str, &str)> = raw.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let query = Catalogue::get("sales_lines")?;
    let params = Params::parse(query, pairs.iter().copied())?;
    let limit = pairs
        .iter()
        .find(|(k, _)| *k == "limit")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(100);
    let result = state
        .warehouse(state.inner.warehouse.query(query, &params))
        .await?;
    Ok(Json(SalesPage {
        next_cursor: next_cursor(&result, limit),
        rows: serde_json::to_value(&result).map_err(|e| ApiError::invalid(e.to_string()))?,
    }))
}

/// An invoice's lines and total.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InvoiceView {
    /// The invoice number.
    invoice: String,
    /// Its lines, in order.
    #[schema(value_type = Vec<Object>)]
    lines: serde_json::Value,
}

#[utoipa::path(get, path = "/api/v1/invoices/{invoice}", tag = "data",
    params(("invoice" = String, Path, description = "The invoice number (C... for cancellations)")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The invoice's lines", body = InvoiceView),
        (status = 404, description = "No such invoice", body = ErrorBody)))]
pub(crate) async fn invoice(
    State(state): State<AppState>,
    Path(invoice): Path<String>,
) -> Result<Json<InvoiceView>, ApiError> {
    let lines = rows_of(
        &state,
        "sales_lines",
        &[("invoice", &invoice), ("order", "asc"), ("limit", "1000")],
    )
    .await?;
    if lines.rows.is_empty() {
        return Err(ApiError::not_found(format!("no invoice {invoice:?}")));
    }
    Ok(Json(InvoiceView {
        invoice,
        lines: serde_json::to_value(&lines).map_err(|e| ApiError::invalid(e.to_string()))?,
    }))
}

/// Sales lines as JSON lines, money as exact decimal text.
fn jsonl(page: &retail_warehouse::QueryResult) -> Vec<u8> {
    let mut out = Vec::new();
    for row in &page.rows {
        let object: serde_json::Map<String, serde_json::Value> = page
            .columns
            .iter()
            .zip(row)
            .map(|(name, cell)| {
                let value = match cell {
                    retail_warehouse::Cell::Decimal(d) => {
                        serde_json::Value::String(d.normalize().to_string())
                    }
                    other => serde_json::to_value(other).unwrap_or_default(),
                };
                (name.clone(), value)
            })
            .collect();
        out.extend(serde_json::to_vec(&object).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

/// Rows per page while exporting.
const EXPORT_PAGE: usize = 1000;

#[utoipa::path(get, path = "/api/v1/sales/export", tag = "data",
    params(
        ("format" = String, Query, description = "csv, jsonl or parquet (one row group per 1,000 lines; money as decimal(18,3))"),
        ("from" = Option<String>, Query, description = "first day, YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "last day, YYYY-MM-DD"),
        ("country" = Option<String>, Query, description = "country name"),
        ("customer_id" = Option<String>, Query, description = "customer id"),
        ("stock_code" = Option<String>, Query, description = "stock code"),
        ("invoice" = Option<String>, Query, description = "invoice number")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The selection, streamed (exact money, oldest first)",
         content((String = "text/csv"), (String = "application/x-ndjson"), (Vec<u8> = "application/vnd.apache.parquet"))),
        (status = 400, description = "A filter or the format is not valid", body = ErrorBody)))]
pub(crate) async fn export(
    State(state): State<AppState>,
    raw: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let mut raw = query_pairs(raw)?;
    let format = match raw.iter().position(|(k, _)| k == "format") {
        Some(index) => raw.remove(index).1,
        None => {
            return Err(ApiError::invalid(
                "format is required: csv, jsonl or parquet",
            ));
        }
    };
    #[derive(Clone, Copy, PartialEq)]
    enum Format {
        Csv,
        Jsonl,
        Parquet,
    }
    let (content_type, format) = match format.as_str() {
        "csv" => ("text/csv; charset=utf-8", Format::Csv),
        "jsonl" => ("application/x-ndjson", Format::Jsonl),
        "parquet" => ("application/vnd.apache.parquet", Format::Parquet),
        other => {
            return Err(ApiError::invalid(format!(
                "format {other:?} is not supported: csv, jsonl or parquet"
            )));
        }
    };
    for (name, _) in &raw {
        if ["order", "limit", "cursor"].contains(&name.as_str()) {
            return Err(ApiError::invalid(format!(
                "{name} is not a filter of an export (it always covers the whole selection)"
            )));
        }
    }
    let query = Catalogue::get("sales_lines")?;
    // Check the filters now, so a bad one is a 400 and not a broken stream.
    Params::parse(query, raw.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let limit = EXPORT_PAGE.to_string();
    let parquet = match format {
        Format::Parquet => Some(crate::export::ParquetExport::new().map_err(|message| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
        })?),
        _ => None,
    };
    let failed = |what: &str| {
        tracing::error!(what, "export stopped");
        std::io::Error::other("export failed")
    };
    let stream = futures::stream::unfold(
        (Some(None::<String>), true, parquet),
        move |(cursor, first, mut parquet)| {
            let state = state.clone();
            let raw = raw.clone();
            let limit = limit.clone();
            async move {
                let cursor = cursor?;
                let mut pairs: Vec<(&str, &str)> =
                    raw.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                pairs.push(("order", "asc"));
                pairs.push(("limit", &limit));
                if let Some(cursor) = &cursor {
                    pairs.push(("cursor", cursor));
                }
                let page = match rows_of(&state, "sales_lines", &pairs).await {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::error!(status = %error.status(), "export stopped");
                        return Some((Err(failed("query")), (None, false, None)));
                    }
                };
                let next = next_cursor(&page, EXPORT_PAGE);
                let bytes = match format {
                    Format::Csv => {
                        let mut writer = ::csv::Writer::from_writer(Vec::new());
                        if first {
                            let _ = writer.write_record(&page.columns);
                        }
                        for row in &page.rows {
                            let _ = writer.write_record(row.iter().map(ToString::to_string));
                        }
                        writer.into_inner().unwrap_or_default()
                    }
                    Format::Jsonl => jsonl(&page),
                    Format::Parquet => {
                        let mut writer = parquet.take().expect("a parquet export has its writer");
                        let written = writer.page(&page).and_then(|mut bytes| {
                            if next.is_none() {
                                bytes.extend(writer.finish()?);
                            } else {
                                parquet = Some(writer);
                            }
                            Ok(bytes)
                        });
                        match written {
                            Ok(bytes) => bytes,
                            Err(message) => {
                                tracing::error!(%message, "parquet export failed");
                                return Some((Err(failed("parquet")), (None, false, None)));
                            }
                        }
                    }
                };
                Some((
                    Ok(axum::body::Bytes::from(bytes)),
                    (next.map(Some), false, parquet),
                ))
            }
        },
    );
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}
