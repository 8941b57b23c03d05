//! Access: who the caller is (passwords, access tokens, rotating refresh tokens, API keys),
//! what their role lets them do ([`Policy`]), and how often (rate limits per caller and
//! route). One call, [`AccessService::admit`], decides all three for every protected request.
//!
//! Users, sessions and keys live in the metadata store (only hashes: argon2id for passwords,
//! SHA-256 for tokens and keys), so replicas sharing a PostgreSQL store share them.

mod credentials;
mod policy;
mod ratelimit;
mod throttle;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use retail_domain::error::ErrorKind;
use retail_domain::ports::{RateDecision, SharedRateLimiter};
use retail_domain::privacy::Masker;
use retail_metadata::{ApiKeyRecord, MetadataStore, RefreshTokenRecord, Rotation, UserRecord};
use serde::Serialize;
use tokio::sync::RwLock;
use tracing::warn;

pub use policy::{Policy, Role};

use crate::config::ApiConfig;
use crate::error::{Error, Result};
use credentials::{Claims, TokenKeys, hash_password, random_hex, sha256_hex, verify_password};
use ratelimit::RateLimiter;
use throttle::AuthThrottle;

/// How often revocations made by other replicas (logouts, disabled users) are picked up.
/// How every API key starts (an access token never does: it is a JWT).
pub const API_KEY_PREFIX: &str = "rk_";

const REVOCATIONS_REFRESH: Duration = Duration::from_secs(5);

/// What ended before its tokens expire, as last read from the store.
struct Revocations {
    /// Access tokens logged out, by `jti`.
    tokens: HashSet<String>,
    /// Users disabled: their access tokens stop working too.
    disabled: HashSet<String>,
    /// When the sets were read.
    read_at: Instant,
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name, or `key:<id>` for an API key.
    pub subject: String,
    /// The role that decides what it may do.
    pub role: String,
}

/// What a request presents.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// A bearer access token. A request presenting both a token and a key is refused,
    /// whichever is valid.
    pub bearer: Option<&'a str>,
    /// An API key.
    pub api_key: Option<&'a str>,
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
    /// Whose session it is (for the audit trail; not sent).
    #[serde(skip)]
    pub subject: String,
}

/// The verdict on a protected request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed {
        /// Who is calling.
        principal: Principal,
        /// The steady limit per minute.
        limit: u32,
        /// Requests left in the burst.
        remaining: u32,
    },
    /// Authenticated, but the role may not do this here.
    Forbidden {
        /// Who is calling.
        principal: Principal,
        /// Why, for the caller.
        message: String,
    },
    /// Over the limit: wait.
    Limited {
        /// Seconds to wait.
        retry_after: u64,
        /// The steady limit per minute.
        limit: u32,
    },
}

/// Authentication, authorisation and rate limits.
#[async_trait]
pub trait AccessService: Send + Sync {
    /// Checks a password and hands out tokens. `client` (the caller's address) and the user
    /// name are throttled before any password is hashed; failures in a row make the account
    /// wait longer and longer.
    async fn login(&self, username: &str, password: &str, client: &str) -> Result<TokenPair>;

    /// Trades a refresh token for a new pair; the old one is spent. A spent token presented
    /// again revokes its whole session (the sign of a stolen token). Throttled per `client`.
    async fn refresh(&self, refresh_token: &str, client: &str) -> Result<TokenPair>;

    /// Ends a session: its refresh tokens are revoked and the access token stops working.
    /// Throttled per `client`.
    async fn logout(
        &self,
        refresh_token: Option<&str>,
        access_token: Option<&str>,
        client: &str,
    ) -> Result<()>;

    /// Authenticates `credentials`, checks that the role may use `permission` on `path`, and
    /// counts the request against the caller's limit on `route`.
    async fn admit(
        &self,
        credentials: Credentials<'_>,
        permission: &str,
        path: &str,
        route: &str,
    ) -> Result<Admission>;

    /// Creates a user (password at least 12 characters, a known role).
    async fn create_user(&self, username: &str, role: &str, password: &str) -> Result<()>;

    /// Every user (never their password hash).
    async fn users(&self) -> Result<Vec<UserRecord>>;

    /// Disables a user and ends their sessions.
    async fn disable_user(&self, username: &str) -> Result<()>;

    /// Creates an API key for a known role; returns its id and the key, shown only now.
    async fn create_key(&self, name: &str, role: &str) -> Result<(String, String)>;

    /// Every API key (never the key).
    async fn keys(&self) -> Result<Vec<ApiKeyRecord>>;

    /// Revokes an API key.
    async fn revoke_key(&self, id: &str) -> Result<()>;

    /// The role names.
    fn roles(&self) -> Vec<String>;

    /// Whether `principal`'s role may use `permission` on `path` (for rules inside a route,
    /// such as customer-level detail in sales lines).
    fn may(&self, principal: &Principal, permission: &str, path: &str) -> bool;

    /// What `principal` sees of identifying columns: those their role pseudonymises, under
    /// the privacy key.
    fn masker(&self, principal: &Principal) -> Masker;
}

/// The permission and path that customer-level detail needs: who may not read a customer's
/// profile may not read that customer's lines either.
pub const CUSTOMER_DETAIL: (&str, &str) = ("read:data", "/api/v1/customers/");

/// The access service over the metadata store.
pub struct Access {
    store: Arc<dyn MetadataStore>,
    policy: Policy,
    keys: TokenKeys,
    access_seconds: u64,
    refresh_seconds: u64,
    refresh_grace_seconds: i64,
    limiter: RateLimiter,
    shared: Option<Arc<dyn SharedRateLimiter>>,
    per_minute: u32,
    burst: u32,
    /// Logged-out tokens and disabled users.
    revoked: RwLock<Revocations>,
    /// The key of the pseudonyms (`privacy.key`); without it masked values are withheld.
    pseudonym_key: Option<Arc<[u8]>>,
    /// A hash to verify against when the user does not exist, so both cases take as long.
    dummy_hash: String,
    /// The throttles of logins, refreshes and logouts, and the cap on hashing.
    throttle: AuthThrottle,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").finish_non_exhaustive()
    }
}

impl Access {
    /// The service for `config`'s tokens and limits over `store`, with `policy`'s roles and,
    /// when replicas share limits, `shared`. An empty `api.jwt_secret` signs with a random
    /// secret of this process.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub async fn new(
        config: &ApiConfig,
        store: Arc<dyn MetadataStore>,
        policy: Policy,
        shared: Option<Arc<dyn SharedRateLimiter>>,
    ) -> Result<Self> {
        let secret = if config.jwt_secret.is_empty() {
            random_hex(32)
        } else {
            config.jwt_secret.clone()
        };
        let revoked = read_revocations(store.as_ref()).await?;
        let dummy_hash = tokio::task::spawn_blocking(|| hash_password("not a real password"))
            .await
            .map_err(|error| Error::new(ErrorKind::Internal, error.to_string()))??;
        Ok(Self {
            store,
            policy,
            keys: TokenKeys::new(
                secret.as_bytes(),
                &config.token_issuer,
                &config.token_audience,
            ),
            access_seconds: config.access_token_minutes * 60,
            refresh_seconds: config.refresh_token_days * 86_400,
            refresh_grace_seconds: i64::try_from(config.refresh_grace_seconds).unwrap_or(i64::MAX),
            limiter: RateLimiter::new(config.rate_limit_per_minute, config.rate_limit_burst),
            shared,
            per_minute: config.rate_limit_per_minute,
            burst: config.rate_limit_burst,
            revoked: RwLock::new(revoked),
            dummy_hash,
            throttle: AuthThrottle::new(config.auth_per_minute, hashers()),
            pseudonym_key: None,
        })
    }

    /// Pseudonyms of masked columns are keyed hashes under `key` (`privacy.key`); without one
    /// masked values are withheld.
    #[must_use]
    pub fn with_pseudonym_key(mut self, key: Option<Vec<u8>>) -> Self {
        self.pseudonym_key = key.map(Arc::from);
        self
    }

    /// A signed access token for `username` acting as `role`.
    fn access_token(&self, username: &str, role: &str, now: i64) -> Result<String> {
        self.keys.sign(&Claims {
            iss: self.keys.issuer.clone(),
            aud: self.keys.audience.clone(),
            sub: username.to_owned(),
            role: role.to_owned(),
            iat: now,
            exp: now + self.access_seconds as i64,
            jti: random_hex(16),
            typ: "access".to_owned(),
        })
    }

    fn pair(&self, subject: &str, access_token: String, refresh_token: String) -> TokenPair {
        TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: self.access_seconds,
            refresh_token,
            subject: subject.to_owned(),
        }
    }

    /// A new session for `username`: an access token and the first refresh token.
    async fn issue(&self, username: &str, role: &str) -> Result<TokenPair> {
        let now = chrono::Utc::now().timestamp();
        let access_token = self.access_token(username, role, now)?;
        let refresh_token = format!("rt_{}", random_hex(32));
        self.store
            .insert_refresh_token(&RefreshTokenRecord {
                token_hash: sha256_hex(&refresh_token),
                username: username.to_owned(),
                family: random_hex(16),
                expires_at: now + self.refresh_seconds as i64,
                used: false,
                revoked: false,
            })
            .await?;
        Ok(self.pair(username, access_token, refresh_token))
    }

    /// Whether an access token of `username` was revoked (logged out, or its user disabled),
    /// here at once or on any replica within [`REVOCATIONS_REFRESH`].
    async fn is_revoked(&self, jti: &str, username: &str) -> Result<bool> {
        {
            let revoked = self.revoked.read().await;
            if revoked.read_at.elapsed() < REVOCATIONS_REFRESH {
                return Ok(revoked.tokens.contains(jti) || revoked.disabled.contains(username));
            }
        }
        let fresh = read_revocations(self.store.as_ref()).await?;
        let found = fresh.tokens.contains(jti) || fresh.disabled.contains(username);
        *self.revoked.write().await = fresh;
        Ok(found)
    }

    async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Principal> {
        // An API key sent as a bearer token (as Prometheus's `authorization` sends it).
        let credentials = match credentials {
            Credentials {
                bearer: Some(key),
                api_key: None,
            } if key.starts_with(API_KEY_PREFIX) => Credentials {
                bearer: None,
                api_key: Some(key),
            },
            other => other,
        };
        match credentials {
            Credentials {
                bearer: Some(_),
                api_key: Some(_),
            } => Err(Error::unauthenticated(
                "send one credential: Authorization: Bearer or X-API-Key, not both",
            )),
            Credentials {
                bearer: Some(token),
                ..
            } => {
                let claims = self.keys.verify(token)?;
                if self.is_revoked(&claims.jti, &claims.sub).await? {
                    return Err(Error::unauthenticated(
                        "access token revoked (logged out or user disabled)",
                    ));
                }
                Ok(Principal {
                    subject: claims.sub,
                    role: claims.role,
                })
            }
            Credentials {
                api_key: Some(key), ..
            } => match self.store.api_key_by_hash(&sha256_hex(key)).await? {
                Some(record) if !record.revoked => Ok(Principal {
                    subject: format!("key:{}", record.id),
                    role: record.role,
                }),
                Some(_) => Err(Error::unauthenticated("API key revoked")),
                None => Err(Error::unauthenticated("unknown API key")),
            },
            _ => Err(Error::unauthenticated(
                "sign in: send Authorization: Bearer <access token> or X-API-Key",
            )),
        }
    }

    async fn rate(&self, key: &str) -> RateDecision {
        match &self.shared {
            Some(shared) => match shared.check(key, self.per_minute, self.burst).await {
                Ok(decision) => decision,
                Err(error) => {
                    // The shared store is down: limit in-process rather than refuse or stop
                    // limiting.
                    warn!(%error, "shared rate limiter unreachable");
                    retail_telemetry::metrics::record_shared_state_error();
                    self.limiter.check(key)
                }
            },
            None => self.limiter.check(key),
        }
    }

    fn known_role(&self, role: &str) -> Result<()> {
        if self.policy.has_role(role) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "unknown role {role:?}; roles: {}",
                self.policy.role_names().join(", ")
            )))
        }
    }
}

/// The logged-out tokens and disabled users in `store` now.
async fn read_revocations(store: &dyn MetadataStore) -> Result<Revocations> {
    let tokens = store
        .revoked_access_tokens(chrono::Utc::now().timestamp())
        .await?
        .into_iter()
        .collect();
    let disabled = store
        .users()
        .await?
        .into_iter()
        .filter(|user| user.disabled)
        .map(|user| user.username)
        .collect();
    Ok(Revocations {
        tokens,
        disabled,
        read_at: Instant::now(),
    })
}

/// Password hashes that may run at once: every core but one, so logins never take them all.
fn hashers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

fn bad_credentials() -> Error {
    // One message for every case: no enumeration of user names.
    Error::unauthenticated("wrong user name or password")
}

#[async_trait]
impl AccessService for Access {
    async fn login(&self, username: &str, password: &str, client: &str) -> Result<TokenPair> {
        self.throttle.login_at(client, username, Instant::now())?;
        let user = self.store.user(username).await?;
        let (hash, usable) = match &user {
            Some(user) => (user.password_hash.clone(), !user.disabled),
            // As long as a real check, so timing does not tell which names exist.
            None => (self.dummy_hash.clone(), false),
        };
        let password = password.to_owned();
        // argon2 is deliberately slow: keep it off the async workers, a few at a time.
        let slot = self.throttle.hashing_slot().await?;
        let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|error| Error::new(ErrorKind::Internal, error.to_string()))?;
        drop(slot);
        let succeeded = matches && usable;
        self.throttle
            .outcome_at(username, succeeded, Instant::now());
        match user {
            Some(user) if succeeded => self.issue(&user.username, &user.role).await,
            _ => Err(bad_credentials()),
        }
    }

    async fn refresh(&self, refresh_token: &str, client: &str) -> Result<TokenPair> {
        self.throttle.client_at(client, Instant::now())?;
        let now = chrono::Utc::now().timestamp();
        let next = format!("rt_{}", random_hex(32));
        let rotation = self
            .store
            .rotate_refresh_token(
                &sha256_hex(refresh_token),
                &sha256_hex(&next),
                now + self.refresh_seconds as i64,
                now,
                self.refresh_grace_seconds,
            )
            .await?;
        let (username, family) = match rotation {
            Rotation::Rotated { username, family } => (username, family),
            Rotation::Reused => {
                return Err(Error::unauthenticated(
                    "refresh token already used: every token of this session is revoked, log \
                     in again",
                ));
            }
            Rotation::Revoked => return Err(Error::unauthenticated("refresh token revoked")),
            Rotation::Expired => return Err(Error::unauthenticated("refresh token expired")),
            Rotation::Unknown => return Err(Error::unauthenticated("unknown refresh token")),
        };
        let Some(user) = self
            .store
            .user(&username)
            .await?
            .filter(|user| !user.disabled)
        else {
            self.store.revoke_refresh_family(&family).await?;
            return Err(Error::unauthenticated("user disabled"));
        };
        let access_token = self.access_token(&user.username, &user.role, now)?;
        Ok(self.pair(&user.username, access_token, next))
    }

    async fn logout(
        &self,
        refresh_token: Option<&str>,
        access_token: Option<&str>,
        client: &str,
    ) -> Result<()> {
        self.throttle.client_at(client, Instant::now())?;
        if let Some(refresh_token) = refresh_token
            && let Some(token) = self.store.refresh_token(&sha256_hex(refresh_token)).await?
        {
            self.store.revoke_refresh_family(&token.family).await?;
        }
        if let Some(claims) = access_token.and_then(|token| self.keys.verify(token).ok()) {
            self.store
                .revoke_access_token(&claims.jti, claims.exp)
                .await?;
            self.revoked.write().await.tokens.insert(claims.jti);
        }
        Ok(())
    }

    async fn admit(
        &self,
        credentials: Credentials<'_>,
        permission: &str,
        path: &str,
        route: &str,
    ) -> Result<Admission> {
        let principal = self.authenticate(credentials).await?;
        if !self.policy.allows(&principal.role, permission, path) {
            let message = format!("role {} may not {permission} on {path}", principal.role);
            return Ok(Admission::Forbidden { principal, message });
        }
        let limit = self.limiter.limit();
        Ok(
            match self.rate(&format!("{}|{route}", principal.subject)).await {
                RateDecision::Allow { remaining } => Admission::Allowed {
                    principal,
                    limit,
                    remaining,
                },
                RateDecision::Deny { retry_after } => Admission::Limited { retry_after, limit },
            },
        )
    }

    async fn create_user(&self, username: &str, role: &str, password: &str) -> Result<()> {
        if username.is_empty()
            || username.len() > 64
            || !username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        {
            return Err(Error::invalid(
                "user names are 1 to 64 letters, digits, '.', '_', '-' or '@'",
            ));
        }
        if password.chars().count() < 12 {
            return Err(Error::invalid(
                "passwords must be at least 12 characters long",
            ));
        }
        self.known_role(role)?;
        let password = password.to_owned();
        let slot = self.throttle.hashing_slot().await?;
        let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|error| Error::new(ErrorKind::Internal, error.to_string()))??;
        drop(slot);
        let inserted = self
            .store
            .insert_user(&UserRecord {
                username: username.to_owned(),
                password_hash,
                role: role.to_owned(),
                disabled: false,
                created_at: retail_metadata::now(),
            })
            .await?;
        if !inserted {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("user {username} already exists"),
            ));
        }
        Ok(())
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        Ok(self.store.users().await?)
    }

    async fn disable_user(&self, username: &str) -> Result<()> {
        if self.store.disable_user(username).await? {
            self.revoked
                .write()
                .await
                .disabled
                .insert(username.to_owned());
            Ok(())
        } else {
            Err(Error::not_found(format!("user {username} not found")))
        }
    }

    async fn create_key(&self, name: &str, role: &str) -> Result<(String, String)> {
        if name.trim().is_empty() {
            return Err(Error::invalid("an API key needs a name"));
        }
        self.known_role(role)?;
        let id = random_hex(6);
        let key = format!("{API_KEY_PREFIX}{id}_{}", random_hex(24));
        self.store
            .insert_api_key(&ApiKeyRecord {
                id: id.clone(),
                name: name.to_owned(),
                key_hash: sha256_hex(&key),
                role: role.to_owned(),
                created_at: retail_metadata::now(),
                revoked: false,
            })
            .await?;
        Ok((id, key))
    }

    async fn keys(&self) -> Result<Vec<ApiKeyRecord>> {
        Ok(self.store.api_keys().await?)
    }

    async fn revoke_key(&self, id: &str) -> Result<()> {
        if self.store.revoke_api_key(id).await? {
            Ok(())
        } else {
            Err(Error::not_found(format!("API key {id} not found")))
        }
    }

    fn roles(&self) -> Vec<String> {
        self.policy
            .role_names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    fn may(&self, principal: &Principal, permission: &str, path: &str) -> bool {
        self.policy.allows(&principal.role, permission, path)
    }

    fn masker(&self, principal: &Principal) -> Masker {
        let columns = self.policy.pseudonymised(&principal.role);
        if columns.is_empty() {
            return Masker::default();
        }
        Masker::new(self.pseudonym_key.clone(), columns.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use retail_domain::error::Classify as _;
    use retail_metadata::SqliteStore;

    use super::*;

    async fn service() -> Access {
        let config = ApiConfig {
            jwt_secret: "s".repeat(32),
            // Any second use of a refresh token is a reuse.
            refresh_grace_seconds: 0,
            ..ApiConfig::default()
        };
        Access::new(
            &config,
            Arc::new(SqliteStore::in_memory().unwrap()),
            Policy::default(),
            None,
        )
        .await
        .unwrap()
    }

    fn bearer(token: &str) -> Credentials<'_> {
        Credentials {
            bearer: Some(token),
            api_key: None,
        }
    }

    async fn principal(access: &Access, token: &str) -> Result<Principal> {
        access.authenticate(bearer(token)).await
    }

    #[tokio::test]
    async fn passwords_are_hashed_and_checked() {
        let access = service().await;
        access
            .create_user("ana", "data_analyst", "correct horse battery")
            .await
            .unwrap();
        let wrong = access
            .login("ana", "wrong password here", "test")
            .await
            .unwrap_err();
        assert_eq!(wrong.kind(), ErrorKind::Unauthenticated);
        let nobody = access
            .login("nobody", "correct horse battery", "test")
            .await
            .unwrap_err();
        assert_eq!(wrong.message(), nobody.message(), "no enumeration");
        let pair = access
            .login("ana", "correct horse battery", "test")
            .await
            .unwrap();
        assert_eq!(
            principal(&access, &pair.access_token).await.unwrap().role,
            "data_analyst"
        );
        let stored = access.store.user("ana").await.unwrap().unwrap();
        assert!(stored.password_hash.starts_with("$argon2id$"));
        let taken = access
            .create_user("ana", "admin", "another long password")
            .await
            .unwrap_err();
        assert_eq!(taken.kind(), ErrorKind::Conflict);
        let short = access
            .create_user("bob", "admin", "short")
            .await
            .unwrap_err();
        assert_eq!(short.kind(), ErrorKind::InvalidInput);
        let role = access
            .create_user("bob", "wizard", "a long enough password")
            .await
            .unwrap_err();
        assert!(role.message().contains("unknown role"), "{role}");
    }

    #[tokio::test]
    async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_session() {
        let access = service().await;
        access
            .create_user("eng", "data_engineer", "a long enough password")
            .await
            .unwrap();
        let first = access
            .login("eng", "a long enough password", "test")
            .await
            .unwrap();
        let second = access.refresh(&first.refresh_token, "test").await.unwrap();
        assert_ne!(first.refresh_token, second.refresh_token);
        let reused = access
            .refresh(&first.refresh_token, "test")
            .await
            .unwrap_err();
        assert!(reused.message().contains("already used"), "{reused}");
        // The reuse revoked the family: the newer token is dead too.
        assert!(access.refresh(&second.refresh_token, "test").await.is_err());
    }

    #[tokio::test]
    async fn tampered_foreign_and_logged_out_tokens_are_refused() {
        let access = service().await;
        access
            .create_user("eng", "data_engineer", "a long enough password")
            .await
            .unwrap();
        let pair = access
            .login("eng", "a long enough password", "test")
            .await
            .unwrap();
        let mut tampered = pair.access_token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(principal(&access, &tampered).await.is_err());
        let other = Access::new(
            &ApiConfig {
                jwt_secret: "x".repeat(32),
                ..ApiConfig::default()
            },
            Arc::new(SqliteStore::in_memory().unwrap()),
            Policy::default(),
            None,
        )
        .await
        .unwrap();
        assert!(principal(&other, &pair.access_token).await.is_err());
        access
            .logout(Some(&pair.refresh_token), Some(&pair.access_token), "test")
            .await
            .unwrap();
        assert!(principal(&access, &pair.access_token).await.is_err());
        assert!(access.refresh(&pair.refresh_token, "test").await.is_err());
    }

    #[tokio::test]
    async fn api_keys_work_until_revoked_and_only_their_hash_is_kept() {
        let access = service().await;
        let (id, key) = access.create_key("loader", "data_engineer").await.unwrap();
        let found = access
            .authenticate(Credentials {
                bearer: None,
                api_key: Some(&key),
            })
            .await
            .unwrap();
        assert_eq!(found.subject, format!("key:{id}"));
        let stored = &access.store.api_keys().await.unwrap()[0];
        assert!(!stored.key_hash.contains(&key[3..]));
        access.revoke_key(&id).await.unwrap();
        assert!(
            access
                .authenticate(Credentials {
                    bearer: None,
                    api_key: Some(&key),
                })
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn admission_checks_the_role_then_counts_the_request() {
        let access = Access::new(
            &ApiConfig {
                jwt_secret: "s".repeat(32),
                rate_limit_per_minute: 60,
                rate_limit_burst: 1,
                ..ApiConfig::default()
            },
            Arc::new(SqliteStore::in_memory().unwrap()),
            Policy::default(),
            None,
        )
        .await
        .unwrap();
        let (_, key) = access.create_key("bi", "data_analyst").await.unwrap();
        let credentials = Credentials {
            bearer: None,
            api_key: Some(&key),
        };
        let path = "/api/v2/analytics/returns";
        for _ in 0..2 {
            let admitted = access
                .admit(credentials, "read:analytics", path, path)
                .await
                .unwrap();
            assert!(matches!(admitted, Admission::Allowed { limit: 60, .. }));
        }
        assert!(matches!(
            access
                .admit(credentials, "read:analytics", path, path)
                .await
                .unwrap(),
            Admission::Limited { .. }
        ));
        let forbidden = access
            .admit(credentials, "write:etl", "/api/v1/ingest/transactions", "x")
            .await
            .unwrap();
        assert!(
            matches!(&forbidden, Admission::Forbidden { principal, message }
                if principal.role == "data_analyst" && message.contains("may not write:etl")),
            "{forbidden:?}"
        );
        let anonymous = access
            .admit(Credentials::default(), "read:analytics", path, path)
            .await
            .unwrap_err();
        assert_eq!(anonymous.kind(), ErrorKind::Unauthenticated);
    }
}
