//! State shared by API replicas through Redis: rate limits (the same algorithm as the
//! in-process limiter, run atomically in a Lua script on the server's clock) and a second cache
//! level for analytics answers.

use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;

use crate::ratelimit::Decision;

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

/// A connection to the shared Redis.
#[derive(Clone)]
pub(crate) struct Shared {
    connection: ConnectionManager,
    script: redis::Script,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL (it may hold a password).
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// Connects (and reconnects by itself later).
    pub(crate) async fn connect(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url)
            .map_err(|_| "api.redis_url is not a valid Redis URL".to_owned())?;
        let connection = ConnectionManager::new(client)
            .await
            .map_err(|error| format!("cannot reach Redis: {:?}", error.kind()))?;
        Ok(Self {
            connection,
            script: redis::Script::new(GCRA),
        })
    }

    /// Counts a request of `key` against `per_minute` with `burst`, shared by every replica.
    pub(crate) async fn rate(
        &self,
        key: &str,
        per_minute: u32,
        burst: u32,
    ) -> Result<Decision, redis::RedisError> {
        let interval = 60_000_000_u64 / u64::from(per_minute.max(1));
        let tolerance = interval * u64::from(burst);
        let mut connection = self.connection.clone();
        let (allowed, micros): (i64, String) = self
            .script
            .key(format!("retail:rl:{key}"))
            .arg(interval)
            .arg(tolerance)
            .invoke_async(&mut connection)
            .await?;
        let micros: u64 = micros.parse().unwrap_or(0);
        Ok(if allowed == 1 {
            let used = micros / interval.max(1);
            Decision::Allow {
                remaining: (u64::from(burst) + 1).saturating_sub(used) as u32,
            }
        } else {
            Decision::Deny {
                retry_after: micros.div_ceil(1_000_000).max(1),
            }
        })
    }

    /// A cached answer, if any replica stored one.
    pub(crate) async fn get(&self, key: &str) -> Option<String> {
        let mut connection = self.connection.clone();
        connection
            .get::<_, Option<String>>(format!("retail:cache:{key}"))
            .await
            .ok()
            .flatten()
    }

    /// Stores an answer for every replica, for `ttl` seconds.
    pub(crate) async fn put(&self, key: &str, value: &str, ttl: u64) {
        let mut connection = self.connection.clone();
        let _: Result<(), _> = connection
            .set_ex(format!("retail:cache:{key}"), value, ttl.max(1))
            .await;
    }
}
