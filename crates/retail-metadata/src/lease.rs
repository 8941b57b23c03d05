//! Leases: one holder at a time for work that must survive its holder's death on another
//! machine (the scheduler), renewed while held and free once expired.

use chrono::{DateTime, Utc};

/// Who holds a lease, since when, and until when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Lease {
    /// The holder's name (host, process and a random part).
    pub holder: String,
    /// When this holder took it (kept across renewals).
    pub acquired_at: DateTime<Utc>,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// Whether `holder` holds it at `now`.
    pub fn held_by(&self, holder: &str, now: DateTime<Utc>) -> bool {
        self.holder == holder && self.expires_at > now
    }
}

/// Times of leases are stored as Unix microseconds: both databases compare them as integers.
pub(crate) fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// `now + ttl` in Unix microseconds, saturating.
pub(crate) fn expiry_micros(now: DateTime<Utc>, ttl: std::time::Duration) -> i64 {
    let ttl = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    now.timestamp_micros().saturating_add(ttl)
}
