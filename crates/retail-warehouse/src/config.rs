use retail_domain::names::is_sql_identifier;
use serde::{Deserialize, Serialize};

/// Which warehouse serves queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// DataFusion over the gold Delta tables (no server).
    #[default]
    Embedded,
    /// A PostgreSQL server loaded from gold.
    Postgres,
}

impl Backend {
    /// `embedded` or `postgres`, as configured and as metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Warehouse settings (`[warehouse]`, `RETAIL__WAREHOUSE__...`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarehouseConfig {
    /// `embedded` or `postgres`.
    pub backend: Backend,
    /// A libpq-style URL (`postgres://user:password@127.0.0.1:5432/db`) or key/value string.
    /// Empty when the backend is embedded. Never logged or printed.
    pub postgres_url: String,
    /// The PostgreSQL schema that holds the star schema.
    pub postgres_schema: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Longest a catalogue query may run, in milliseconds.
    pub statement_timeout_ms: u64,
    /// Longest a load may run, in milliseconds.
    pub load_timeout_ms: u64,
    /// Longest to wait for a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Attempts of an operation that failed for a transient reason (connection lost,
    /// serialization failure, deadlock), with exponential backoff from 100 ms.
    pub max_attempts: u32,
    /// A PostgreSQL role for analysts (`retail_analyst`): every load keeps the schema
    /// `<postgres_schema>_analyst` of views with customer ids as their pseudonyms and grants
    /// it to this role alone (needs `privacy.key`). Empty: no such schema.
    pub analyst_role: String,
}

impl Default for WarehouseConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Embedded,
            postgres_url: String::new(),
            postgres_schema: "retail".to_owned(),
            pool_size: 8,
            statement_timeout_ms: 30_000,
            load_timeout_ms: 600_000,
            connect_timeout_ms: 5_000,
            max_attempts: 3,
            analyst_role: String::new(),
        }
    }
}

impl std::fmt::Debug for WarehouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarehouseConfig")
            .field("backend", &self.backend)
            .field(
                "postgres_url",
                &if self.postgres_url.is_empty() {
                    ""
                } else {
                    "********"
                },
            )
            .field("postgres_schema", &self.postgres_schema)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("load_timeout_ms", &self.load_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("max_attempts", &self.max_attempts)
            .field("analyst_role", &self.analyst_role)
            .finish()
    }
}

impl WarehouseConfig {
    /// Every problem with the settings, as sentences.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.backend == Backend::Postgres && self.postgres_url.trim().is_empty() {
            problems.push(
                "warehouse.postgres_url must be set when warehouse.backend is postgres".to_owned(),
            );
        }
        if !is_sql_identifier(&self.postgres_schema) {
            problems.push(format!(
                "warehouse.postgres_schema must be a plain lower-case identifier, not {:?}",
                self.postgres_schema
            ));
        }
        if !self.analyst_role.is_empty() && !is_sql_identifier(&self.analyst_role) {
            problems.push(format!(
                "warehouse.analyst_role must be a plain lower-case identifier, not {:?}",
                self.analyst_role
            ));
        }
        if self.pool_size == 0 {
            problems.push("warehouse.pool_size must be at least 1".to_owned());
        }
        if self.max_attempts == 0 {
            problems.push("warehouse.max_attempts must be at least 1".to_owned());
        }
        if self.statement_timeout_ms == 0 || self.load_timeout_ms == 0 {
            problems.push("warehouse timeouts must be at least 1 ms".to_owned());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_never_shows_in_debug_output() {
        let config = WarehouseConfig {
            postgres_url: "postgres://u:secret@127.0.0.1/db".to_owned(),
            ..WarehouseConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("********"));
    }

    #[test]
    fn postgres_needs_a_url_and_schemas_must_be_plain_identifiers() {
        let config = WarehouseConfig {
            backend: Backend::Postgres,
            postgres_schema: "retail; drop table x".to_owned(),
            ..WarehouseConfig::default()
        };
        let problems = config.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(WarehouseConfig::default().problems().is_empty());
    }
}
