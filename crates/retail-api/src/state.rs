//! What every handler can reach, and small helpers for answers.

use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use retail_services::Services;

/// What every handler can reach: the services, and how to tell the client's address.
///
/// Cloned for every request (by the guard, the middlewares and each `State` extractor), so it
/// is one shared allocation: a clone is one reference count, where cloning the services one by
/// one was fifteen, each a cache line the two cores passed back and forth (10 % of the cached
/// analytics endpoint's CPU in a profile).
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

/// The state behind [`AppState`].
pub(crate) struct Shared {
    pub(crate) services: Services,
    /// The header a reverse proxy puts the client's address in (`api.client_address_header`).
    pub(crate) client_header: Option<HeaderName>,
}

impl AppState {
    pub(crate) fn new(services: Services, client_header: Option<HeaderName>) -> Self {
        Self(Arc::new(Shared {
            services,
            client_header,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// A header value from anything displayable (empty when it is not a valid header value).
pub(crate) fn header(value: impl std::fmt::Display) -> HeaderValue {
    HeaderValue::from_str(&value.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}
