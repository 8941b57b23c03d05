//! One error for every service: what went wrong (the workspace's [`ErrorKind`]), a message for
//! the caller, and when to try again. The API maps it to a status in one place.

use retail_domain::error::{Classify, ErrorKind, error_chain};

/// A service's error.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    retry_after: Option<u64>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error of `kind` with a message for the caller.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// The caller sent something that breaks a rule.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// The thing asked for does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// The caller did not prove who they are.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }

    /// The caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    /// A dependency is out of reach; try again after `retry_after` seconds.
    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(ErrorKind::Unavailable, message)
        }
    }

    /// The same error, telling the caller to retry after `seconds`.
    #[must_use]
    pub fn with_retry_after(self, seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..self
        }
    }

    /// Too many requests; try again after `retry_after` seconds.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                ErrorKind::RateLimited,
                format!("too many requests: retry after {retry_after} s"),
            )
        }
    }

    /// Wraps an error that classifies itself: its message is the caller's, unless it is an
    /// internal error (then the caller gets a generic message and the cause is kept as the
    /// source, for the logs).
    pub fn from_classified<E>(error: E) -> Self
    where
        E: Classify + std::error::Error + Send + Sync + 'static,
    {
        let kind = error.kind();
        let message = if kind == ErrorKind::Internal {
            "internal error (logged with this request's id)".to_owned()
        } else {
            error_chain(&error)
        };
        Self {
            kind,
            message,
            retry_after: (kind == ErrorKind::Unavailable).then_some(1),
            source: Some(Box::new(error)),
        }
    }

    /// When to try again, in seconds, if the caller should.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The message for the caller.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The whole cause chain, for logs (never for callers of internal errors).
    pub fn detail(&self) -> String {
        match &self.source {
            Some(source) => error_chain(source.as_ref()),
            None => self.message.clone(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

macro_rules! from_classified {
    ($($error:ty),*) => {
        $(impl From<$error> for Error {
            fn from(error: $error) -> Self {
                Self::from_classified(error)
            }
        })*
    };
}

impl From<retail_warehouse::Error> for Error {
    fn from(error: retail_warehouse::Error) -> Self {
        let retry_after = error.retry_after();
        let mut converted = Self::from_classified(error);
        if retry_after.is_some() {
            converted.retry_after = retry_after;
        }
        converted
    }
}

from_classified!(
    retail_pipeline::Error,
    retail_metadata::Error,
    retail_ingest::Error,
    retail_lake::Error
);

/// The services' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
