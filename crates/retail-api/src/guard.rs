//! The guard of protected routes: the access service admits the request (credentials, role,
//! rate limit) before the handler runs.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use retail_services::{Admission, Credentials};

use crate::error::ApiError;
use crate::extract::bearer;
use crate::state::{AppState, header};

#[derive(Clone)]
struct Guard {
    state: AppState,
    permission: &'static str,
}

async fn guard(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let presented =
        headers.get_all(AUTHORIZATION).iter().count() + headers.get_all("x-api-key").iter().count();
    if presented > 1 {
        // Two credentials: refuse rather than pick one, so a bad one never hides behind a good.
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send one credential: one Authorization: Bearer header or one X-API-Key, not both",
        )
        .into_response();
    }
    let credentials = Credentials {
        bearer: headers
            .get(AUTHORIZATION)
            .map(|value| bearer(headers).unwrap_or_else(|| value.to_str().unwrap_or_default())),
        api_key: headers.get("x-api-key").and_then(|v| v.to_str().ok()),
    };
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let admission = guard
        .state
        .services
        .access
        .admit(credentials, guard.permission, &path, &route)
        .await;
    match admission {
        Ok(Admission::Allowed {
            principal,
            limit,
            remaining,
        }) => {
            request.extensions_mut().insert(principal);
            let mut response = next.run(request).await;
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", header(limit));
            headers.insert("x-ratelimit-remaining", header(remaining));
            response
        }
        Ok(Admission::Limited { retry_after, limit }) => {
            let mut response = ApiError::rate_limited(retry_after).into_response();
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", header(limit));
            headers.insert("x-ratelimit-remaining", header(0));
            response
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// `router`'s routes, each admitted for `permission` first.
pub(crate) fn protected(
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
