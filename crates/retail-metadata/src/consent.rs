//! The consent log: every choice a customer made about a purpose, oldest first (ADR 0014).

use chrono::{DateTime, Utc};

/// One choice: `customer_id` granted or withdrew consent to `purpose` at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// The customer, normalised (`17850`).
    pub customer_id: String,
    /// `analytics`, `marketing` or `profiling`.
    pub purpose: String,
    /// Granted (`true`) or withdrawn.
    pub granted: bool,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// Who recorded it (`user:alice`, `key:shop`).
    pub recorded_by: String,
    /// Where the choice was made, as the caller says (`web-form`, `store`), or how it arrived.
    pub source: String,
}

/// The columns of `consent_log` in the order [`record`] reads them.
pub(crate) const COLUMNS: &str = "customer_id, purpose, granted, at, recorded_by, source";

/// A record from its columns (`at` as RFC 3339).
pub(crate) fn record(
    customer_id: String,
    purpose: String,
    granted: bool,
    at: &str,
    recorded_by: String,
    source: String,
) -> Result<ConsentRecord, String> {
    let at = DateTime::parse_from_rfc3339(at)
        .map_err(|error| format!("consent time {at:?}: {error}"))?
        .with_timezone(&Utc);
    Ok(ConsentRecord {
        customer_id,
        purpose,
        granted,
        at,
        recorded_by,
        source,
    })
}
