use serde::{Deserialize, Serialize};

/// API settings (`[api]`, `RETAIL__API__...`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on. Loopback by default: exposing the API is a deliberate choice.
    pub listen: String,
    /// Secret for signing tokens (HS256), at least 32 bytes. Empty: a random secret per process
    /// (tokens do not survive a restart; fine for a demo, not for production). Never logged.
    pub jwt_secret: String,
    /// Lifetime of an access token, in minutes.
    pub access_token_minutes: u64,
    /// Lifetime of a refresh token, in days.
    pub refresh_token_days: u64,
    /// Seconds after a refresh during which the spent refresh token may be presented again
    /// (a client retrying a refresh whose answer it lost) without ending the session; 0: never.
    pub refresh_grace_seconds: u64,
    /// The `iss` claim of access tokens: tokens from another issuer are refused.
    pub token_issuer: String,
    /// The `aud` claim of access tokens: tokens for another audience are refused.
    pub token_audience: String,
    /// A TOML file of extra roles (see `config/roles.example.toml`); empty for the built-in roles.
    pub roles_file: String,
    /// Longest a request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// How long an analytics answer is reused (seconds); a new gold or warehouse version
    /// invalidates it sooner.
    pub cache_ttl_seconds: u64,
    /// Requests per minute per user and endpoint.
    pub rate_limit_per_minute: u32,
    /// Requests allowed at once above the steady rate.
    pub rate_limit_burst: u32,
    /// A Redis URL (`redis://127.0.0.1:6379/`) for rate limits and an analytics cache shared
    /// by every API replica; empty: both in-process. Never logged.
    pub redis_url: String,
    /// Consecutive warehouse failures that open its circuit breaker.
    pub breaker_failures: u32,
    /// Seconds an open circuit waits before letting one trial call through.
    pub breaker_cool_down_seconds: u64,
    /// Logins, refreshes and logouts per minute per client address, and logins per minute per
    /// user name (each with a burst of as many); checked before any password is hashed.
    pub auth_per_minute: u32,
    /// The header that carries the client's address when a reverse proxy sits in front
    /// (`x-forwarded-for`: its last entry, the address the proxy saw); empty: the TCP peer.
    pub client_address_header: String,
    /// Most lines one export may hold; a larger selection is refused with a `400`.
    pub export_max_rows: u64,
    /// Longest one export may stream, in seconds; then it is cut short.
    pub export_timeout_seconds: u64,
    /// Exports one caller may run at once.
    pub exports_per_user: usize,
    /// Exports that may run at once in all.
    pub exports_in_all: usize,
    /// Longest one warehouse call may take, in milliseconds: shorter than the request timeout,
    /// so a slow warehouse is a `503` the breaker counts, not a request the server cuts off.
    pub warehouse_timeout_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            jwt_secret: String::new(),
            access_token_minutes: 30,
            refresh_token_days: 7,
            refresh_grace_seconds: 10,
            token_issuer: "retail-platform".to_owned(),
            token_audience: "retail-api".to_owned(),
            roles_file: String::new(),
            request_timeout_ms: 30_000,
            body_limit_bytes: 16 * 1024 * 1024,
            cache_ttl_seconds: 300,
            rate_limit_per_minute: 600,
            rate_limit_burst: 100,
            redis_url: String::new(),
            breaker_failures: 5,
            breaker_cool_down_seconds: 60,
            auth_per_minute: 30,
            export_max_rows: 1_000_000,
            export_timeout_seconds: 600,
            exports_per_user: 2,
            exports_in_all: 4,
            client_address_header: String::new(),
            warehouse_timeout_ms: 10_000,
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field(
                "jwt_secret",
                &if self.jwt_secret.is_empty() {
                    ""
                } else {
                    "********"
                },
            )
            .field("access_token_minutes", &self.access_token_minutes)
            .field("refresh_token_days", &self.refresh_token_days)
            .field("refresh_grace_seconds", &self.refresh_grace_seconds)
            .field("token_issuer", &self.token_issuer)
            .field("token_audience", &self.token_audience)
            .field("roles_file", &self.roles_file)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("cache_ttl_seconds", &self.cache_ttl_seconds)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field(
                "redis_url",
                &if self.redis_url.is_empty() {
                    ""
                } else {
                    "********"
                },
            )
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cool_down_seconds", &self.breaker_cool_down_seconds)
            .field("auth_per_minute", &self.auth_per_minute)
            .field("export_max_rows", &self.export_max_rows)
            .field("export_timeout_seconds", &self.export_timeout_seconds)
            .field("exports_per_user", &self.exports_per_user)
            .field("exports_in_all", &self.exports_in_all)
            .field("client_address_header", &self.client_address_header)
            .field("warehouse_timeout_ms", &self.warehouse_timeout_ms)
            .finish()
    }
}

impl ApiConfig {
    /// The limits of exports these settings make.
    pub fn export_limits(&self) -> crate::analytics::ExportLimits {
        crate::analytics::ExportLimits {
            max_rows: self.export_max_rows,
            deadline: std::time::Duration::from_secs(self.export_timeout_seconds),
            per_user: self.exports_per_user,
            in_all: self.exports_in_all,
        }
    }

    /// Why the API may not serve on `address` with these settings: a random per-process
    /// signing secret (no `api.jwt_secret`) is for one process on loopback only, since tokens
    /// one replica signs would fail on the others, and a restart logs everybody out.
    pub fn serving_problem(&self, address: std::net::SocketAddr) -> Option<String> {
        if !self.jwt_secret.is_empty() {
            return None;
        }
        if !address.ip().is_loopback() {
            Some(format!(
                "api.jwt_secret is not set and the API would listen on {address}, beyond \
                 loopback: set RETAIL__API__JWT_SECRET (at least 32 bytes, the same on every \
                 replica)"
            ))
        } else if !self.redis_url.is_empty() {
            Some(
                "api.jwt_secret is not set but api.redis_url shares state with other replicas: \
                 set RETAIL__API__JWT_SECRET (at least 32 bytes, the same on every replica)"
                    .to_owned(),
            )
        } else {
            None
        }
    }

    /// Every problem with the settings, as sentences.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "api.listen must be an address such as 127.0.0.1:8080, not {:?}",
                self.listen
            ));
        }
        if !self.jwt_secret.is_empty() && self.jwt_secret.len() < 32 {
            problems.push("api.jwt_secret must be at least 32 bytes long".to_owned());
        }
        if self.token_issuer.trim().is_empty() || self.token_audience.trim().is_empty() {
            problems.push("api.token_issuer and api.token_audience must not be empty".to_owned());
        }
        if self.access_token_minutes == 0 || self.refresh_token_days == 0 {
            problems.push("api token lifetimes must be at least 1".to_owned());
        }
        if self.breaker_failures == 0 {
            problems.push("api.breaker_failures must be at least 1".to_owned());
        }
        if self.export_max_rows == 0
            || self.export_timeout_seconds == 0
            || self.exports_per_user == 0
            || self.exports_in_all == 0
        {
            problems.push(
                "api.export_max_rows, export_timeout_seconds, exports_per_user and \
                 exports_in_all must be at least 1"
                    .to_owned(),
            );
        }
        if self.auth_per_minute == 0 {
            problems.push("api.auth_per_minute must be at least 1".to_owned());
        }
        if !self.client_address_header.is_empty() && !is_header_name(&self.client_address_header) {
            problems.push(format!(
                "api.client_address_header {:?} is not a header name",
                self.client_address_header
            ));
        }
        if self.rate_limit_per_minute == 0 {
            problems.push("api.rate_limit_per_minute must be at least 1".to_owned());
        }
        if self.request_timeout_ms == 0 || self.body_limit_bytes == 0 {
            problems.push(
                "api.request_timeout_ms and api.body_limit_bytes must be positive".to_owned(),
            );
        }
        if self.warehouse_timeout_ms == 0 || self.warehouse_timeout_ms >= self.request_timeout_ms {
            problems.push(format!(
                "api.warehouse_timeout_ms must be positive and shorter than api.request_timeout_ms \
                 ({} ms)",
                self.request_timeout_ms
            ));
        }
        problems
    }
}

/// A lower-case HTTP header name: letters, digits and `-`.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_secret_serves_only_one_process_on_loopback() {
        let local: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let exposed: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let random = ApiConfig::default();
        assert_eq!(random.serving_problem(local), None);
        assert!(
            random
                .serving_problem(exposed)
                .is_some_and(|problem| problem.contains("RETAIL__API__JWT_SECRET"))
        );
        let shared = ApiConfig {
            redis_url: "redis://127.0.0.1:6379/".to_owned(),
            ..ApiConfig::default()
        };
        assert!(shared.serving_problem(local).is_some());
        let set = ApiConfig {
            jwt_secret: "a secret of at least thirty-two bytes!!".to_owned(),
            ..shared
        };
        assert_eq!(set.serving_problem(exposed), None);
    }
}
