use retail_domain::names::is_sql_identifier;
use serde::{Deserialize, Serialize};

/// Where the metadata store lives (`[metadata]`, `RETAIL__METADATA__...`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataConfig {
    /// Path of the SQLite file (created with its directory when missing), used when `url` is
    /// empty.
    pub path: String,
    /// A PostgreSQL URL (`postgres://user:password@host:5432/db`): the store lives in a schema
    /// of that database instead, shared by every process and API replica. Never logged.
    pub url: String,
    /// The PostgreSQL schema that holds the store's tables.
    pub schema: String,
    /// PostgreSQL connections in the pool.
    pub pool_size: usize,
    /// How long a write to the SQLite file waits for another process's write (milliseconds)
    /// before failing as unavailable (a `503` with `Retry-After` on the API): short, so a busy
    /// CLI never stalls API requests for seconds. Reads never wait (WAL).
    pub busy_timeout_ms: u64,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            path: "./data/retail.db".to_owned(),
            url: String::new(),
            schema: "retail_metadata".to_owned(),
            pool_size: 4,
            busy_timeout_ms: 1_000,
        }
    }
}

impl std::fmt::Debug for MetadataConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataConfig")
            .field("path", &self.path)
            .field("url", &if self.url.is_empty() { "" } else { "********" })
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("busy_timeout_ms", &self.busy_timeout_ms)
            .finish()
    }
}

impl MetadataConfig {
    /// Whether the store is PostgreSQL (a URL is set) rather than the SQLite file.
    pub fn is_postgres(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Every problem with the settings, as sentences.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.is_postgres() {
            if !is_sql_identifier(&self.schema) {
                problems.push(format!(
                    "metadata.schema must be a plain lower-case identifier, not {:?}",
                    self.schema
                ));
            }
            if self.pool_size == 0 {
                problems.push("metadata.pool_size must be at least 1".to_owned());
            }
            if !self.url.starts_with("postgres://") && !self.url.starts_with("postgresql://") {
                problems.push("metadata.url must be a postgres:// URL".to_owned());
            }
        } else if self.path.trim().is_empty() {
            problems.push("metadata.path must not be empty".to_owned());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_never_shows_and_bad_settings_are_named() {
        let config = MetadataConfig {
            url: "postgres://u:sekrit@127.0.0.1/db".to_owned(),
            schema: "Bad Schema".to_owned(),
            ..MetadataConfig::default()
        };
        assert!(!format!("{config:?}").contains("sekrit"));
        let problems = config.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("metadata.schema"));
        assert!(MetadataConfig::default().problems().is_empty());
        let mysql = MetadataConfig {
            url: "mysql://x".to_owned(),
            ..MetadataConfig::default()
        };
        assert!(mysql.problems()[0].contains("postgres://"));
    }
}
