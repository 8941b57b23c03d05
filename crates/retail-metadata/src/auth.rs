//! What the store keeps of users, sessions and API keys: never a password or a key, only their
//! hashes.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A user of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    /// The user name.
    pub username: String,
    /// The argon2id hash of the password (PHC string). Never serialised.
    #[serde(skip)]
    pub password_hash: String,
    /// The role that decides what the user may do.
    pub role: String,
    /// Whether logins are refused.
    pub disabled: bool,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
}

/// A refresh token of a session, by the SHA-256 of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// Whose session it is.
    pub username: String,
    /// The session: every token handed out by refreshing one login shares it.
    pub family: String,
    /// When it expires (Unix seconds).
    pub expires_at: i64,
    /// Whether it was traded for a new pair already.
    pub used: bool,
    /// Whether its session was ended.
    pub revoked: bool,
}

/// What presenting a refresh token did ([`crate::MetadataStore::rotate_refresh_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was spent (or was spent within the grace period, a client's honest retry) and the
    /// next token stored in its session, in one transaction.
    Rotated {
        /// Whose session it is.
        username: String,
        /// The session.
        family: String,
    },
    /// It was spent longer ago than the grace period: the sign of a stolen token, so every
    /// token of its session was revoked in the same transaction.
    Reused,
    /// Its session was ended.
    Revoked,
    /// Past its expiry.
    Expired,
    /// No such token.
    Unknown,
}

/// A stored refresh token's state, as a rotation reads it.
pub(crate) struct TokenState {
    pub(crate) username: String,
    pub(crate) family: String,
    pub(crate) expires_at: i64,
    pub(crate) used_at: Option<i64>,
    pub(crate) revoked: bool,
}

/// What a rotation does with a token in `state` at `now` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Spend it and store the next one.
    Spend,
    /// Already spent less than the grace period ago: store the next one, spend nothing.
    Retry,
    /// Spent before the grace period: revoke the session.
    Reuse,
    /// Refuse: revoked.
    Revoked,
    /// Refuse: expired.
    Expired,
}

impl TokenState {
    pub(crate) fn verdict(&self, now: i64, grace_seconds: i64) -> Verdict {
        if self.revoked {
            Verdict::Revoked
        } else if self.expires_at < now {
            Verdict::Expired
        } else {
            match self.used_at {
                None => Verdict::Spend,
                Some(used_at) if now - used_at < grace_seconds => Verdict::Retry,
                Some(_) => Verdict::Reuse,
            }
        }
    }
}

/// An API key, by the SHA-256 of the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyRecord {
    /// Its id (the part after `rk_`).
    pub id: String,
    /// A name for people.
    pub name: String,
    /// SHA-256 (hex) of the key. Never serialised.
    #[serde(skip)]
    pub key_hash: String,
    /// The role it acts with.
    pub role: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Whether it was revoked.
    pub revoked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(used_at: Option<i64>, revoked: bool) -> TokenState {
        TokenState {
            username: "ana".into(),
            family: "f".into(),
            expires_at: 1_000,
            used_at,
            revoked,
        }
    }

    #[test]
    fn a_spent_token_is_a_retry_within_the_grace_period_and_a_reuse_after_it() {
        assert_eq!(token(None, false).verdict(100, 10), Verdict::Spend);
        assert_eq!(token(Some(95), false).verdict(100, 10), Verdict::Retry);
        assert_eq!(token(Some(91), false).verdict(100, 10), Verdict::Retry);
        assert_eq!(token(Some(90), false).verdict(100, 10), Verdict::Reuse);
        assert_eq!(token(Some(100), false).verdict(100, 0), Verdict::Reuse);
        assert_eq!(token(None, true).verdict(100, 10), Verdict::Revoked);
        assert_eq!(token(None, false).verdict(1_001, 10), Verdict::Expired);
    }
}
