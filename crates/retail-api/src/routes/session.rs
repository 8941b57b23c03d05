//! `/api/v1/auth/...`: log in, refresh, log out.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use retail_services::TokenPair;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, OptionalJsonBody, bearer};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
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

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens", body = TokenPair),
        (status = 401, description = "Wrong user name or password", body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    Ok(Json(
        state
            .services
            .access
            .login(&body.username, &body.password)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens; the refresh token sent is spent", body = TokenPair),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = ErrorBody)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    Ok(Json(
        state.services.access.refresh(&body.refresh_token).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = LogoutRequest,
    responses((status = 204, description = "Session ended")))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalJsonBody(body): OptionalJsonBody<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    let body = body.unwrap_or_default();
    state
        .services
        .access
        .logout(body.refresh_token.as_deref(), bearer(&headers))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
