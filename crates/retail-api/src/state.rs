//! What every handler can reach, and small helpers for answers.

use axum::http::{HeaderName, HeaderValue};
use retail_services::Services;

/// What every handler can reach: the services, and how to tell the client's address.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) services: Services,
    /// The header a reverse proxy puts the client's address in (`api.client_address_header`).
    pub(crate) client_header: Option<HeaderName>,
}

/// A header value from anything displayable (empty when it is not a valid header value).
pub(crate) fn header(value: impl std::fmt::Display) -> HeaderValue {
    HeaderValue::from_str(&value.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}
