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
