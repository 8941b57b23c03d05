//! Users, passwords (argon2), access tokens (JWT, HS256), rotating refresh tokens and API keys,
//! kept in tables of the metadata database.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand_core::RngCore as _;
use retail_domain::error::{Classify, ErrorKind};
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// What can go wrong with users, tokens and keys.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong user name or password, or a disabled user (one message for all: no enumeration).
    #[error("wrong user name or password")]
    BadCredentials,
    /// No token or key, or one that is malformed, expired, tampered with or wrongly signed.
    #[error("{0}")]
    BadToken(&'static str),
    /// A refresh token that was already used: its whole family is revoked.
    #[error("refresh token already used: every token of this session is revoked, log in again")]
    RefreshReused,
    /// A name that is taken.
    #[error("{0} already exists")]
    Exists(String),
    /// Something that does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A rule about names, roles or passwords.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("auth store: {0}")]
    Store(#[from] rusqlite::Error),
}

impl Classify for AuthError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::BadCredentials | Self::BadToken(_) | Self::RefreshReused => {
                ErrorKind::Unauthenticated
            }
            Self::Exists(_) => ErrorKind::Conflict,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Invalid(_) => ErrorKind::InvalidInput,
            Self::Store(_) => ErrorKind::Internal,
        }
    }
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name, or `key:<id>` for an API key.
    pub subject: String,
    /// The role that decides what it may do.
    pub role: String,
}

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iat: i64,
    exp: i64,
    jti: String,
    typ: String,
}

/// A pair of tokens handed out at login and at each refresh.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    /// The JWT to send as `Authorization: Bearer ...`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// An opaque token for `POST /api/v1/auth/refresh`; usable once.
    pub refresh_token: String,
}

/// A user as listed (never the password hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    /// The name.
    pub username: String,
    /// The role.
    pub role: String,
    /// Whether the user may log in.
    pub disabled: bool,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// An API key as listed (never the key).
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Its id (the part after `rk_`).
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The role it acts with.
    pub role: String,
    /// Whether it was revoked.
    pub revoked: bool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    family TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS api_refresh_tokens_family ON api_refresh_tokens (family);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS api_revoked_access (
    jti TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);";

/// Users, keys and tokens.
pub struct AuthService {
    connection: Mutex<Connection>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    access_seconds: u64,
    refresh_seconds: u64,
    revoked: Mutex<HashSet<String>>,
    /// A hash to verify against when the user does not exist, so both cases take as long.
    dummy_hash: String,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0_u8; bytes];
    rand_core::OsRng.fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// Hashes a password with argon2id (a fresh salt each time).
fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| AuthError::Invalid(format!("cannot hash the password: {error}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

impl AuthService {
    /// Opens the auth tables in the SQLite file at `path` (created when missing), or in memory
    /// when `path` is `None`. `secret` signs tokens; empty means a random one for this process.
    ///
    /// # Errors
    ///
    /// When the database cannot be opened or its tables created.
    pub fn open(
        path: Option<&Path>,
        secret: &str,
        access_minutes: u64,
        refresh_days: u64,
    ) -> Result<Self, AuthError> {
        let connection = match path {
            Some(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|error| {
                        AuthError::Invalid(format!("cannot create {}: {error}", parent.display()))
                    })?;
                }
                Connection::open(path)?
            }
            None => Connection::open_in_memory()?,
        };
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.execute_batch(SCHEMA)?;
        let now = Utc::now().timestamp();
        connection.execute(
            "DELETE FROM api_revoked_access WHERE expires_at < ?1",
            [now],
        )?;
        let revoked: HashSet<String> = connection
            .prepare("SELECT jti FROM api_revoked_access")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let secret = if secret.is_empty() {
            random_hex(32)
        } else {
            secret.to_owned()
        };
        Ok(Self {
            connection: Mutex::new(connection),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            access_seconds: access_minutes * 60,
            refresh_seconds: refresh_days * 86_400,
            revoked: Mutex::new(revoked),
            dummy_hash: hash_password("not a real password")?,
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .expect("auth store lock is never poisoned")
    }

    /// Creates a user.
    ///
    /// # Errors
    ///
    /// When the name is taken or invalid, or the password is shorter than 12 characters.
    pub fn create_user(&self, username: &str, role: &str, password: &str) -> Result<(), AuthError> {
        if username.is_empty()
            || username.len() > 64
            || !username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        {
            return Err(AuthError::Invalid(
                "user names are 1 to 64 letters, digits, '.', '_', '-' or '@'".to_owned(),
            ));
        }
        if password.chars().count() < 12 {
            return Err(AuthError::Invalid(
                "passwords must be at least 12 characters long".to_owned(),
            ));
        }
        let hash = hash_password(password)?;
        let inserted = self.db().execute(
            "INSERT OR IGNORE INTO api_users (username, password_hash, role, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![username, hash, role, Utc::now().to_rfc3339()],
        )?;
        if inserted == 0 {
            return Err(AuthError::Exists(format!("user {username}")));
        }
        Ok(())
    }

    /// Every user.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub fn users(&self) -> Result<Vec<UserInfo>, AuthError> {
        let db = self.db();
        let mut statement = db.prepare(
            "SELECT username, role, disabled, created_at FROM api_users ORDER BY username",
        )?;
        let users = statement
            .query_map([], |row| {
                Ok(UserInfo {
                    username: row.get(0)?,
                    role: row.get(1)?,
                    disabled: row.get(2)?,
                    created_at: row.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(users)
    }

    /// Disables a user and revokes their refresh tokens.
    ///
    /// # Errors
    ///
    /// When the user does not exist.
    pub fn disable_user(&self, username: &str) -> Result<(), AuthError> {
        let db = self.db();
        let changed = db.execute(
            "UPDATE api_users SET disabled = 1 WHERE username = ?1",
            [username],
        )?;
        if changed == 0 {
            return Err(AuthError::NotFound(format!("user {username}")));
        }
        db.execute(
            "UPDATE api_refresh_tokens SET revoked = 1 WHERE username = ?1",
            [username],
        )?;
        Ok(())
    }

    /// Checks a password and hands out tokens.
    ///
    /// # Errors
    ///
    /// [`AuthError::BadCredentials`] for an unknown or disabled user or a wrong password.
    pub fn login(&self, username: &str, password: &str) -> Result<TokenPair, AuthError> {
        let user: Option<(String, String, bool)> = self
            .db()
            .query_row(
                "SELECT password_hash, role, disabled FROM api_users WHERE username = ?1",
                [username],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let Some((hash, role, disabled)) = user else {
            // As long as a real check, so timing does not tell which names exist.
            let _ = verify_password(password, &self.dummy_hash);
            return Err(AuthError::BadCredentials);
        };
        if !verify_password(password, &hash) || disabled {
            return Err(AuthError::BadCredentials);
        }
        self.issue(username, &role, &random_hex(16))
    }

    fn issue(&self, username: &str, role: &str, family: &str) -> Result<TokenPair, AuthError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: username.to_owned(),
            role: role.to_owned(),
            iat: now,
            exp: now + self.access_seconds as i64,
            jti: random_hex(16),
            typ: "access".to_owned(),
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .map_err(|error| AuthError::Invalid(format!("cannot sign a token: {error}")))?;
        let refresh_token = format!("rt_{}", random_hex(32));
        self.db().execute(
            "INSERT INTO api_refresh_tokens (token_hash, username, family, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                sha256_hex(&refresh_token),
                username,
                family,
                now + self.refresh_seconds as i64
            ],
        )?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: self.access_seconds,
            refresh_token,
        })
    }

    /// Trades a refresh token for a new pair; the old one is spent. A spent token presented
    /// again revokes its whole family (the sign of a stolen token).
    ///
    /// # Errors
    ///
    /// For an unknown, expired, revoked or reused token, or a disabled user.
    pub fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let hash = sha256_hex(refresh_token);
        let (username, family, role) = {
            let db = self.db();
            let row: Option<(String, String, i64, bool, bool)> = db
                .query_row(
                    "SELECT username, family, expires_at, used, revoked FROM api_refresh_tokens
                     WHERE token_hash = ?1",
                    [&hash],
                    |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                        ))
                    },
                )
                .optional()?;
            let Some((username, family, expires_at, used, revoked)) = row else {
                return Err(AuthError::BadToken("unknown refresh token"));
            };
            if used {
                db.execute(
                    "UPDATE api_refresh_tokens SET revoked = 1 WHERE family = ?1",
                    [&family],
                )?;
                return Err(AuthError::RefreshReused);
            }
            if revoked {
                return Err(AuthError::BadToken("refresh token revoked"));
            }
            if expires_at < Utc::now().timestamp() {
                return Err(AuthError::BadToken("refresh token expired"));
            }
            let user: Option<(String, bool)> = db
                .query_row(
                    "SELECT role, disabled FROM api_users WHERE username = ?1",
                    [&username],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((role, false)) = user else {
                return Err(AuthError::BadToken("user disabled"));
            };
            db.execute(
                "UPDATE api_refresh_tokens SET used = 1 WHERE token_hash = ?1",
                [&hash],
            )?;
            (username, family, role)
        };
        self.issue(&username, &role, &family)
    }

    /// Ends a session: the refresh token's family is revoked and the access token (if given)
    /// stops working at once.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub fn logout(
        &self,
        refresh_token: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<(), AuthError> {
        if let Some(refresh_token) = refresh_token {
            let db = self.db();
            let family: Option<String> = db
                .query_row(
                    "SELECT family FROM api_refresh_tokens WHERE token_hash = ?1",
                    [sha256_hex(refresh_token)],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(family) = family {
                db.execute(
                    "UPDATE api_refresh_tokens SET revoked = 1 WHERE family = ?1",
                    [family],
                )?;
            }
        }
        if let Some(claims) = access_token.and_then(|t| self.claims(t).ok()) {
            self.db().execute(
                "INSERT OR IGNORE INTO api_revoked_access (jti, expires_at) VALUES (?1, ?2)",
                params![claims.jti, claims.exp],
            )?;
            self.revoked
                .lock()
                .expect("revocation set lock is never poisoned")
                .insert(claims.jti);
        }
        Ok(())
    }

    fn claims(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    AuthError::BadToken("access token expired")
                }
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    AuthError::BadToken("access token signature is not valid")
                }
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                    AuthError::BadToken("access token is not signed with HS256")
                }
                _ => AuthError::BadToken("access token is malformed"),
            },
        )?;
        if data.claims.typ != "access" {
            return Err(AuthError::BadToken("not an access token"));
        }
        Ok(data.claims)
    }

    /// The principal of a bearer access token.
    ///
    /// # Errors
    ///
    /// For a malformed, expired, tampered, wrongly signed or revoked token.
    pub fn verify_access(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.claims(token)?;
        if self
            .revoked
            .lock()
            .expect("revocation set lock is never poisoned")
            .contains(&claims.jti)
        {
            return Err(AuthError::BadToken("access token revoked (logged out)"));
        }
        Ok(Principal {
            subject: claims.sub,
            role: claims.role,
        })
    }

    /// Creates an API key; the key itself is returned once and only its hash is kept.
    ///
    /// # Errors
    ///
    /// When the store fails or the name is empty.
    pub fn create_key(&self, name: &str, role: &str) -> Result<(String, String), AuthError> {
        if name.trim().is_empty() {
            return Err(AuthError::Invalid("an API key needs a name".to_owned()));
        }
        let id = random_hex(6);
        let key = format!("rk_{id}_{}", random_hex(24));
        self.db().execute(
            "INSERT INTO api_keys (id, name, key_hash, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, name, sha256_hex(&key), role, Utc::now().to_rfc3339()],
        )?;
        Ok((id, key))
    }

    /// Revokes an API key.
    ///
    /// # Errors
    ///
    /// When no key has this id.
    pub fn revoke_key(&self, id: &str) -> Result<(), AuthError> {
        let changed = self
            .db()
            .execute("UPDATE api_keys SET revoked = 1 WHERE id = ?1", [id])?;
        if changed == 0 {
            return Err(AuthError::NotFound(format!("API key {id}")));
        }
        Ok(())
    }

    /// Every API key.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub fn keys(&self) -> Result<Vec<KeyInfo>, AuthError> {
        let db = self.db();
        let mut statement =
            db.prepare("SELECT id, name, role, revoked FROM api_keys ORDER BY created_at")?;
        let keys = statement
            .query_map([], |row| {
                Ok(KeyInfo {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    role: row.get(2)?,
                    revoked: row.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(keys)
    }

    /// The principal of an API key.
    ///
    /// # Errors
    ///
    /// For an unknown or revoked key.
    pub fn verify_key(&self, key: &str) -> Result<Principal, AuthError> {
        let row: Option<(String, String, bool)> = self
            .db()
            .query_row(
                "SELECT id, role, revoked FROM api_keys WHERE key_hash = ?1",
                [sha256_hex(key)],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        match row {
            Some((id, role, false)) => Ok(Principal {
                subject: format!("key:{id}"),
                role,
            }),
            Some(_) => Err(AuthError::BadToken("API key revoked")),
            None => Err(AuthError::BadToken("unknown API key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> AuthService {
        AuthService::open(None, &"s".repeat(32), 30, 7).unwrap()
    }

    #[test]
    fn passwords_are_hashed_and_checked() {
        let auth = service();
        auth.create_user("ana", "data_analyst", "correct horse battery")
            .unwrap();
        assert!(matches!(
            auth.login("ana", "wrong password here"),
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            auth.login("nobody", "correct horse battery"),
            Err(AuthError::BadCredentials)
        ));
        let pair = auth.login("ana", "correct horse battery").unwrap();
        let principal = auth.verify_access(&pair.access_token).unwrap();
        assert_eq!(principal.role, "data_analyst");
        let stored: String = auth
            .db()
            .query_row("SELECT password_hash FROM api_users", [], |r| r.get(0))
            .unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(matches!(
            auth.create_user("ana", "admin", "another long password"),
            Err(AuthError::Exists(_))
        ));
        assert!(matches!(
            auth.create_user("bob", "admin", "short"),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn refresh_tokens_rotate_and_a_reused_one_revokes_the_session() {
        let auth = service();
        auth.create_user("eng", "data_engineer", "a long enough password")
            .unwrap();
        let first = auth.login("eng", "a long enough password").unwrap();
        let second = auth.refresh(&first.refresh_token).unwrap();
        assert_ne!(first.refresh_token, second.refresh_token);
        assert!(matches!(
            auth.refresh(&first.refresh_token),
            Err(AuthError::RefreshReused)
        ));
        // The reuse revoked the family: the newer token is dead too.
        assert!(auth.refresh(&second.refresh_token).is_err());
    }

    #[test]
    fn tampered_foreign_and_logged_out_tokens_are_refused() {
        let auth = service();
        auth.create_user("eng", "data_engineer", "a long enough password")
            .unwrap();
        let pair = auth.login("eng", "a long enough password").unwrap();
        let mut tampered = pair.access_token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(auth.verify_access(&tampered).is_err());
        let other = AuthService::open(None, &"x".repeat(32), 30, 7).unwrap();
        assert!(other.verify_access(&pair.access_token).is_err());
        auth.logout(Some(&pair.refresh_token), Some(&pair.access_token))
            .unwrap();
        assert!(auth.verify_access(&pair.access_token).is_err());
        assert!(auth.refresh(&pair.refresh_token).is_err());
    }

    #[test]
    fn api_keys_work_until_revoked_and_only_their_hash_is_kept() {
        let auth = service();
        let (id, key) = auth.create_key("loader", "data_engineer").unwrap();
        assert_eq!(auth.verify_key(&key).unwrap().subject, format!("key:{id}"));
        let stored: String = auth
            .db()
            .query_row("SELECT key_hash FROM api_keys", [], |r| r.get(0))
            .unwrap();
        assert!(!stored.contains(&key[3..]));
        auth.revoke_key(&id).unwrap();
        assert!(auth.verify_key(&key).is_err());
    }
}
