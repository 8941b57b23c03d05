//! The crate's error type and the error vocabulary shared across the workspace.

/// What went wrong, from the caller's point of view.
///
/// Every error type in the workspace maps itself onto this small vocabulary through
/// [`Classify`], so the API can turn it into an HTTP status in one place and ingestion can
/// decide between a retry and the dead-letter table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The caller sent something that breaks a rule; repeating it will fail again.
    InvalidInput,
    /// The thing asked for does not exist.
    NotFound,
    /// The request clashes with the current state (a duplicate, a concurrent write).
    Conflict,
    /// The request is well formed but contradicts what was sent before under the same
    /// identity (an idempotency key reused for different content).
    Unprocessable,
    /// The caller did not prove who they are.
    Unauthenticated,
    /// The caller is known but not allowed to do this.
    Forbidden,
    /// The caller sent too many requests; trying again after a wait will succeed.
    RateLimited,
    /// A dependency is temporarily out of reach; trying again later may succeed.
    Unavailable,
    /// A bug or an unexpected state inside the platform.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 9] = [
        Self::InvalidInput,
        Self::NotFound,
        Self::Conflict,
        Self::Unprocessable,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::RateLimited,
        Self::Unavailable,
        Self::Internal,
    ];

    /// Returns the stable `snake_case` code of the kind, as used in API error bodies.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Unprocessable => "unprocessable",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that knows which [`ErrorKind`] it belongs to.
pub trait Classify {
    /// Returns what went wrong, from the caller's point of view.
    fn kind(&self) -> ErrorKind;

    /// Returns whether repeating the same operation later may succeed.
    fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Unavailable | ErrorKind::RateLimited)
    }
}

/// Errors raised by the domain's own conversions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A code that should name one of a closed set of values (a quarantine reason, a line
    /// type, a region) names none of them.
    #[error("unknown {what} code {code:?}")]
    UnknownCode {
        /// What the code should have named, e.g. `"quarantine reason"`.
        what: &'static str,
        /// The code as given.
        code: String,
    },
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownCode { .. } => ErrorKind::InvalidInput,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with its causes, `a: b: c`: what a log line or a run record keeps of it.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_snake_case_codes() {
        let codes: Vec<&str> = ErrorKind::ALL.iter().map(ErrorKind::as_str).collect();
        assert_eq!(
            codes,
            [
                "invalid_input",
                "not_found",
                "conflict",
                "unprocessable",
                "unauthenticated",
                "forbidden",
                "rate_limited",
                "unavailable",
                "internal"
            ]
        );
    }

    #[test]
    fn only_unavailable_and_rate_limited_are_retryable() {
        struct Fixed(ErrorKind);
        impl Classify for Fixed {
            fn kind(&self) -> ErrorKind {
                self.0
            }
        }
        for kind in ErrorKind::ALL {
            assert_eq!(
                Fixed(kind).is_retryable(),
                matches!(kind, ErrorKind::Unavailable | ErrorKind::RateLimited)
            );
        }
    }

    #[test]
    fn unknown_code_is_invalid_input_with_a_lowercase_message() {
        let err = Error::UnknownCode {
            what: "line type",
            code: "Widget".to_owned(),
        };
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(!err.is_retryable());
        assert_eq!(err.to_string(), "unknown line type code \"Widget\"");
    }
}
