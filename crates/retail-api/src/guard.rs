//! The guard of protected routes: the access service admits the request (credentials, role,
//! rate limit) before the handler runs.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use retail_domain::audit::Outcome;
use retail_domain::error::{Classify as _, ErrorKind};
use retail_services::{Admission, Credentials, Principal, audit};

use crate::error::ApiError;
use crate::extract::{bearer, client_address};
use crate::state::{AppState, header};

#[derive(Clone)]
struct Guard {
    state: AppState,
    permission: &'static str,
}

/// Routes that can answer with customer-level data (customer ids with what they bought or are
/// predicted to do); a read of one by a caller who may see customers (`read:data`) is audited.
const CUSTOMER_LEVEL: &[&str] = &[
    "/api/v1/customers/{customer_id}",
    "/api/v1/customers/{customer_id}/consent",
    "/api/v1/invoices/{invoice}",
    "/api/v1/sales",
    "/api/v1/sales/export",
    "/api/v1/search",
    "/api/v1/search/suggest",
    "/api/v2/analytics/clv",
    "/api/v2/recommendations/customers/{customer_id}",
];

/// Routes whose answer is a bulk export.
const EXPORTS: &[&str] = &[
    "/api/v1/sales/export",
    "/api/v1/customers/{customer_id}/export",
    "/api/v1/marketing/audience",
];

/// The audit action of an admitted request, if it is audited: every write, every export,
/// every read of the audit trail and every read of customer-level data by a caller who may
/// see it.
fn audited(
    state: &AppState,
    principal: &Principal,
    method: &Method,
    route: &str,
    path: &str,
) -> Option<&'static str> {
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        Some("http.write")
    } else if EXPORTS.contains(&route) {
        Some("data.export")
    } else if route.starts_with("/api/v1/audit") {
        Some("audit.read")
    } else if CUSTOMER_LEVEL.contains(&route)
        && state.services.access.may(principal, "read:data", path)
    {
        Some("data.read_customer")
    } else {
        None
    }
}

/// The method and path of a request with its query, cut to 512 bytes: what the audit trail
/// names as the target.
fn target(method: &Method, uri: &axum::http::Uri) -> String {
    let target = format!(
        "{method} {}",
        uri.path_and_query().map_or(uri.path(), |p| p.as_str())
    );
    retail_domain::audit::truncated(&target, retail_domain::audit::MAX_TARGET_BYTES)
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
    let method = request.method().clone();
    // Where from and to what: worked out only for a request that is audited, so the cached
    // reads that make most of the traffic pay nothing for the trail.
    let place = |request: &Request| {
        (
            client_address(&guard.state, request.headers(), request.extensions()),
            target(&method, request.uri()),
        )
    };
    let services = &guard.state.services;
    let record = |(client, target): (String, String),
                  actor: String,
                  action: &str,
                  outcome: Outcome,
                  detail: serde_json::Value| {
        let mut event = retail_services::audit::event(actor, action, target, client, outcome);
        event.detail = detail.to_string();
        services.audit.record(event)
    };
    // A caller whose role masks a column may not name one of its values (ADR 0015): such a
    // request is refused like any other the role may not make.
    let masker = match &admission {
        Ok(Admission::Allowed { principal, .. }) => services.access.masker(principal),
        _ => retail_domain::privacy::Masker::default(),
    };
    let refused = match &admission {
        Ok(Admission::Allowed { principal, .. }) => {
            crate::masking::refusal(&masker, &principal.role, &route, request.uri())
        }
        _ => None,
    };
    let admission = match (admission, refused) {
        (Ok(Admission::Allowed { principal, .. }), Some(message)) => {
            Ok(Admission::Forbidden { principal, message })
        }
        (admission, _) => admission,
    };
    match admission {
        Ok(Admission::Allowed {
            principal,
            limit,
            remaining,
        }) => {
            let audited_as =
                audited(&guard.state, &principal, &method, &route, &path).map(|action| {
                    let who = (audit::actor_of(&principal.subject), principal.role.clone());
                    (action, who, place(&request))
                });
            request.extensions_mut().insert(principal);
            let mut response = next.run(request).await;
            if !masker.is_empty() {
                response = crate::masking::mask_response(response, &masker).await;
            }
            if let Some((action, (actor, role), place)) = audited_as {
                let status = response.status().as_u16();
                let detail = serde_json::json!({"route": route, "role": role, "status": status});
                record(place, actor, action, Outcome::of_status(status), detail).await;
            }
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", header(limit));
            headers.insert("x-ratelimit-remaining", header(remaining));
            response
        }
        Ok(Admission::Forbidden { principal, message }) => {
            let detail = serde_json::json!({"route": route, "role": principal.role, "status": 403, "reason": message});
            record(
                place(&request),
                audit::actor_of(&principal.subject),
                "http.denied",
                Outcome::Denied,
                detail,
            )
            .await;
            ApiError::from(retail_services::Error::forbidden(message)).into_response()
        }
        Ok(Admission::Limited { retry_after, limit }) => {
            let mut response = ApiError::rate_limited(retry_after).into_response();
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", header(limit));
            headers.insert("x-ratelimit-remaining", header(0));
            response
        }
        Err(error) => {
            if error.kind() == ErrorKind::Unauthenticated {
                let detail =
                    serde_json::json!({"route": route, "status": 401, "reason": error.to_string()});
                record(
                    place(&request),
                    "anonymous".to_owned(),
                    "http.denied",
                    Outcome::Denied,
                    detail,
                )
                .await;
            }
            ApiError::from(error).into_response()
        }
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
