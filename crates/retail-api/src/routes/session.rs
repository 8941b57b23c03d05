//! `/api/v1/auth/...`: log in, refresh, log out.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use retail_domain::audit::Outcome;
use retail_domain::error::{Classify as _, ErrorKind};
use retail_services::{TokenPair, audit};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ClientAddress, JsonBody, OptionalJsonBody, bearer};
use crate::state::AppState;

/// Largest body of an auth request: a user name, a password or a token fit many times over.
pub(crate) const AUTH_BODY_LIMIT: usize = 4 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .layer(DefaultBodyLimit::max(AUTH_BODY_LIMIT))
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
        (status = 400, description = "Not a user name and password", body = ErrorBody),
        (status = 401, description = "Wrong user name or password", body = ErrorBody),
        (status = 413, description = "Body larger than 4 KiB", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address or for this user, or failures in a row: wait Retry-After seconds", body = ErrorBody),
        (status = 503, description = "Too many logins at once: retry in a moment", body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let result = state
        .services
        .access
        .login(&body.username, &body.password, &client)
        .await;
    let actor = audit::actor_of(&retail_domain::audit::truncated(&body.username, 128));
    record(&state, actor, "auth.login", &client, &result).await;
    Ok(Json(result?))
}

/// Audits a session action: done, refused (bad credentials, throttled) or failed.
async fn record<T>(
    state: &AppState,
    actor: String,
    action: &str,
    client: &str,
    result: &retail_services::Result<T>,
) {
    let (outcome, detail) = match result {
        Ok(_) => (Outcome::Success, serde_json::json!({})),
        Err(error) => {
            let outcome = match error.kind() {
                ErrorKind::Unauthenticated | ErrorKind::Forbidden | ErrorKind::RateLimited => {
                    Outcome::Denied
                }
                _ => Outcome::Failure,
            };
            (outcome, serde_json::json!({"reason": error.to_string()}))
        }
    };
    let mut event = audit::event(actor, action, "session", client, outcome);
    event.detail = detail.to_string();
    state.services.audit.record(event).await;
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens; the refresh token sent is spent", body = TokenPair),
        (status = 400, description = "Not a refresh token", body = ErrorBody),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = ErrorBody),
        (status = 413, description = "Body larger than 4 KiB", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address", body = ErrorBody)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let result = state
        .services
        .access
        .refresh(&body.refresh_token, &client)
        .await;
    let actor = result.as_ref().map_or_else(
        |_| "anonymous".to_owned(),
        |pair| audit::actor_of(&pair.subject),
    );
    record(&state, actor, "auth.refresh", &client, &result).await;
    Ok(Json(result?))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = Option<LogoutRequest>,
    responses(
        (status = 204, description = "Session ended"),
        (status = 400, description = "Not a logout request", body = ErrorBody),
        (status = 413, description = "Body larger than 4 KiB", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address", body = ErrorBody)))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddress(client): ClientAddress,
    OptionalJsonBody(body): OptionalJsonBody<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    let body = body.unwrap_or_default();
    let result = state
        .services
        .access
        .logout(body.refresh_token.as_deref(), bearer(&headers), &client)
        .await;
    record(
        &state,
        "anonymous".to_owned(),
        "auth.logout",
        &client,
        &result,
    )
    .await;
    result?;
    Ok(StatusCode::NO_CONTENT)
}
