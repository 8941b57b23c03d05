//! State shared by API replicas through Redis: rate limits (the same generic cell rate
//! algorithm as the in-process limiter, run atomically in a Lua script on the server's clock)
//! and a second cache level for analytics answers.
//!
//! [`RedisShared`] implements the ports [`SharedRateLimiter`] and [`SharedCache`]; the
//! composition root hands it to the services when `api.redis_url` is set. The URL is never
//! shown: errors name only what failed.

use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use retail_domain::error::{Classify, ErrorKind};
use retail_domain::ports::{BoxFuture, PortError, RateDecision, SharedCache, SharedRateLimiter};

/// Generic cell rate algorithm, in microseconds of the Redis server's clock.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, string.format('%.0f', allow_at - now)}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX',
           math.floor((next_tat - now) / 1000) + 1000)
return {1, string.format('%.0f', next_tat - now)}
";

/// Errors of the Redis adapter (never carrying the URL).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not a Redis URL.
    #[error("api.redis_url is not a valid Redis URL")]
    Url,
    /// The URL may not be used (plaintext to another machine) or its TLS cannot be set up.
    #[error("{0}")]
    Tls(String),
    /// Redis could not be reached or refused a command.
    #[error("Redis failed: {0:?}")]
    Redis(redis::ErrorKind),
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Url | Self::Tls(_) => ErrorKind::InvalidInput,
            Self::Redis(_) => ErrorKind::Unavailable,
        }
    }
}

/// A connection to the shared Redis (it reconnects by itself).
#[derive(Clone)]
pub struct RedisShared {
    connection: ConnectionManager,
    script: redis::Script,
}

impl std::fmt::Debug for RedisShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL (it may hold a password).
        f.debug_struct("RedisShared").finish_non_exhaustive()
    }
}

impl RedisShared {
    /// Connects to Redis at `url`.
    ///
    /// # Errors
    ///
    /// When the URL is invalid or Redis cannot be reached (the message never repeats the URL).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, &retail_tls::TlsConfig::default()).await
    }

    /// As [`RedisShared::connect`], with `tls`'s authorities and plaintext rule: a
    /// `rediss://` URL is encrypted and the server's certificate checked.
    ///
    /// # Errors
    ///
    /// As [`RedisShared::connect`]; also plaintext to another machine without
    /// `tls.allow_plaintext`, or authorities that cannot be used.
    pub async fn connect_with(url: &str, tls: &retail_tls::TlsConfig) -> Result<Self, Error> {
        let encrypted = tls
            .redis("api.redis_url", url)
            .map_err(|error| Error::Tls(error.to_string()))?;
        let client = if encrypted {
            let root_cert = tls
                .ca_pem()
                .map_err(|error| Error::Tls(error.to_string()))?;
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert,
                },
            )
        } else {
            redis::Client::open(url)
        }
        .map_err(|_| Error::Url)?;
        let connection = ConnectionManager::new(client)
            .await
            .map_err(|error| Error::Redis(error.kind()))?;
        Ok(Self {
            connection,
            script: redis::Script::new(GCRA),
        })
    }

    async fn rate(&self, key: &str, per_minute: u32, burst: u32) -> Result<RateDecision, Error> {
        let interval = 60_000_000_u64 / u64::from(per_minute.max(1));
        let tolerance = interval * u64::from(burst);
        let mut connection = self.connection.clone();
        let (allowed, micros): (i64, String) = self
            .script
            .key(format!("retail:rl:{key}"))
            .arg(interval)
            .arg(tolerance)
            .invoke_async(&mut connection)
            .await
            .map_err(|error| Error::Redis(error.kind()))?;
        let micros: u64 = micros.parse().unwrap_or(0);
        Ok(if allowed == 1 {
            let used = micros / interval.max(1);
            RateDecision::Allow {
                remaining: u32::try_from((u64::from(burst) + 1).saturating_sub(used))
                    .unwrap_or(u32::MAX),
            }
        } else {
            RateDecision::Deny {
                retry_after: micros.div_ceil(1_000_000).max(1),
            }
        })
    }
}

impl SharedRateLimiter for RedisShared {
    fn check<'a>(
        &'a self,
        key: &'a str,
        per_minute: u32,
        burst: u32,
    ) -> BoxFuture<'a, Result<RateDecision, PortError>> {
        Box::pin(async move {
            self.rate(key, per_minute, burst)
                .await
                .map_err(PortError::new)
        })
    }
}

impl SharedCache for RedisShared {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            connection
                .get::<_, Option<String>>(format!("retail:cache:{key}"))
                .await
                .ok()
                .flatten()
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: String, ttl_seconds: u64) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let _: Result<(), _> = connection
                .set_ex(format!("retail:cache:{key}"), value, ttl_seconds.max(1))
                .await;
        })
    }
}
