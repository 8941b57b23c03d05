//! Extractors shared by the routes: query pairs, JSON and raw bodies, the body's format, the
//! idempotency key, the request id and the caller. Each turns a bad request into the API's
//! error shape.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use retail_services::{Format, Principal};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// The query string as `name=value` pairs, in order (repeated names kept).
#[derive(Debug, Clone, Default)]
pub(crate) struct QueryPairs(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(pairs)| Self(pairs))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}

/// A typed query string (unknown fields refused).
#[derive(Debug, Clone)]
pub(crate) struct TypedQuery<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for TypedQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}

/// A JSON body of a typed request: one JSON object (serde would also read a struct from an
/// array), unknown fields refused by the type.
#[derive(Debug, Clone)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        object(json_value(request, state).await?).map(Self)
    }
}

/// A JSON body that is an array of objects (Alertmanager's `POST /api/v2/alerts`); an element
/// that is not a `T` is named by its position.
#[derive(Debug, Clone)]
pub(crate) struct JsonArray<T>(pub(crate) Vec<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonArray<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let serde_json::Value::Array(values) = json_value(request, state).await? else {
            return Err(ApiError::invalid("request body: must be a JSON array"));
        };
        values
            .into_iter()
            .enumerate()
            .map(|(index, value)| {
                if !value.is_object() {
                    return Err(ApiError::invalid(format!(
                        "request body: element {index} must be a JSON object"
                    )));
                }
                serde_json::from_value(value).map_err(|error| {
                    ApiError::invalid(format!("request body: element {index}: {error}"))
                })
            })
            .collect::<Result<Vec<T>, _>>()
            .map(Self)
    }
}

/// The body as JSON (any JSON).
async fn json_value<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<serde_json::Value, ApiError> {
    let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large()
            } else {
                ApiError::invalid(format!("request body: {}", rejection.body_text()))
            }
        })?;
    Ok(value)
}

/// `value` as a `T`, when it is a JSON object.
fn object<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid("request body: must be one JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|error| ApiError::invalid(format!("request body: {error}")))
}

/// An optional JSON body: absent, empty or `null` is `None`.
#[derive(Debug, Clone)]
pub(crate) struct OptionalJsonBody<T>(pub(crate) Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Body(bytes) = Body::from_request(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|error| ApiError::invalid(format!("request body: {error}")))?;
        if value.is_null() {
            return Ok(Self(None));
        }
        object(value).map(|value| Self(Some(value)))
    }
}

/// The raw body, within the configured limit.
#[derive(Debug, Clone)]
pub(crate) struct Body(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large()
                } else {
                    ApiError::invalid(rejection.body_text())
                }
            })
    }
}

/// The format the `Content-Type` names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyFormat(pub(crate) Format);

impl<S: Send + Sync> FromRequestParts<S> for BodyFormat {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Format::of_media_type(content_type)
            .map(Self)
            .ok_or_else(|| {
                ApiError::unsupported_media_type(
                    "send application/json, application/x-ndjson, text/csv, \
                 application/vnd.apache.parquet or an .xlsx workbook",
                )
            })
    }
}

/// The caller's `Idempotency-Key`, when sent: 1 to 200 visible ASCII characters (no spaces).
#[derive(Debug, Clone, Default)]
pub(crate) struct IdempotencyKey(pub(crate) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        value
            .to_str()
            .ok()
            .filter(|key| {
                (1..=200).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
            })
            .map(|key| Self(Some(key.to_owned())))
            .ok_or_else(|| {
                ApiError::invalid(
                    "Idempotency-Key must be 1 to 200 visible ASCII characters, without spaces",
                )
            })
    }
}

/// The request's id (set by the request-id layer, or the caller's own).
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestId(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        ))
    }
}

/// The authenticated caller of a protected route (set by the guard).
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Option<Principal>);

impl Caller {
    /// Who the audit trail and records name (`user:alice`, `key:…`; `anonymous` outside the
    /// guard).
    pub(crate) fn actor(&self) -> String {
        self.0.as_ref().map_or_else(
            || "anonymous".to_owned(),
            |p| retail_services::audit::actor_of(&p.subject),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<Principal>().cloned()))
    }
}

/// The client's address, for the throttles of logins: the last entry of the configured proxy
/// header when it holds an IP address, else the TCP peer, else `local` (an in-process call).
#[derive(Debug, Clone)]
pub(crate) struct ClientAddress(pub(crate) String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(
            state,
            &parts.headers,
            &parts.extensions,
        )))
    }
}

/// The client's address of a request's headers and extensions (see [`ClientAddress`]).
pub(crate) fn client_address(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
) -> String {
    let forwarded = state.client_header.as_ref().and_then(|name| {
        let last = headers.get_all(name).iter().next_back()?;
        let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
        entry.parse::<IpAddr>().ok()
    });
    let peer = || {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
    };
    forwarded
        .or_else(peer)
        .map_or_else(|| "local".to_owned(), |ip| ip.to_string())
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}
