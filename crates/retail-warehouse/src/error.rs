use retail_domain::error::{Classify, ErrorKind};

/// What can go wrong in the warehouse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A query name the catalogue does not have.
    #[error("unknown query {name:?}; the catalogue has: {known}")]
    UnknownQuery {
        /// The name asked for.
        name: String,
        /// The names the catalogue has, comma-separated.
        known: String,
    },
    /// A parameter that is missing, unknown or not of its type.
    #[error("query {query}: {message}")]
    BadParameter {
        /// The catalogue query.
        query: &'static str,
        /// What is wrong, naming the parameter.
        message: String,
    },
    /// The gold layer has not been built yet.
    #[error("gold table {table} does not exist yet: run `retail pipeline run` first")]
    NoGold {
        /// The missing table.
        table: &'static str,
    },
    /// Reading the lake failed.
    #[error(transparent)]
    Lake(#[from] retail_lake::Error),
    /// DataFusion failed to run a query.
    #[error("embedded warehouse: {operation}: {source}")]
    DataFusion {
        /// What was being done.
        operation: String,
        /// The cause.
        #[source]
        source: Box<deltalake::datafusion::error::DataFusionError>,
    },
    /// A statement's plan could not be walked for its column lineage (a plan node the walk
    /// does not know: a bug).
    #[error("lineage of {statement}: cannot follow {problem}")]
    Lineage {
        /// The summary, view or query.
        statement: String,
        /// What could not be followed.
        problem: String,
    },
    /// PostgreSQL refused or failed an operation.
    #[error("postgres: {operation}: {}", describe(source))]
    Postgres {
        /// What was being done.
        operation: String,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection could be had from the pool.
    #[error("postgres: no connection: {0}")]
    Pool(String),
    /// A migration already applied was changed afterwards.
    #[error(
        "migration {version} ({name}) was changed after it was applied (checksum {applied} in the \
         database, {current} in this build); add a new migration instead"
    )]
    MigrationChanged {
        /// The migration number.
        version: i32,
        /// Its name.
        name: &'static str,
        /// Checksum recorded when applied.
        applied: String,
        /// Checksum of this build's text.
        current: String,
    },
    /// The database has migrations this build does not know.
    #[error(
        "the warehouse schema is at migration {database}, newer than this build knows ({known}); \
         upgrade the binary"
    )]
    SchemaTooNew {
        /// Highest migration in the database.
        database: i32,
        /// Highest migration in this build.
        known: i32,
    },
    /// The warehouse failed repeatedly and its circuit breaker is open.
    #[error("the warehouse failed repeatedly: its circuit is open; retry in {retry_after} s")]
    CircuitOpen {
        /// Seconds until a trial call is let through.
        retry_after: u64,
    },
    /// A call took longer than its deadline.
    #[error("the warehouse did not answer within {millis} ms")]
    Timeout {
        /// The deadline.
        millis: u64,
    },
    /// A value of a type the warehouse does not convert.
    #[error("unsupported column type {data_type} in {context}")]
    UnsupportedType {
        /// The type.
        data_type: String,
        /// Where it was met.
        context: String,
    },
}

/// The database's own message, with its SQLSTATE, without the connection details.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

impl Error {
    /// Seconds the caller should wait before trying again, when the error says.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::CircuitOpen { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    pub(crate) fn postgres(
        operation: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let operation = operation.into();
        move |source| Self::Postgres { operation, source }
    }

    pub(crate) fn datafusion(
        operation: impl Into<String>,
    ) -> impl FnOnce(deltalake::datafusion::error::DataFusionError) -> Self {
        let operation = operation.into();
        move |source| Self::DataFusion {
            operation,
            source: Box::new(source),
        }
    }
}

/// SQLSTATE classes and codes worth a retry: connection exceptions, serialization failures,
/// deadlocks, shutdowns, too many connections.
fn is_transient(error: &tokio_postgres::Error) -> bool {
    match error.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08")
                || matches!(
                    code,
                    "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300"
                )
        }
        // No SQLSTATE: the connection itself failed or closed.
        None => error.is_closed() || error.as_db_error().is_none(),
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownQuery { .. } | Self::BadParameter { .. } => ErrorKind::InvalidInput,
            Self::NoGold { .. } => ErrorKind::NotFound,
            Self::Lake(error) => error.kind(),
            Self::Postgres { source, .. } if is_transient(source) => ErrorKind::Unavailable,
            Self::Postgres { source, .. } if source.code().is_some_and(|c| c.code() == "57014") => {
                // statement timeout
                ErrorKind::Unavailable
            }
            // Data exceptions (SQLSTATE class 22: a value out of range, an invalid text
            // representation, a bad byte sequence): the value came from the caller.
            Self::Postgres { source, .. }
                if source.code().is_some_and(|c| c.code().starts_with("22")) =>
            {
                ErrorKind::InvalidInput
            }
            Self::Pool(_) | Self::CircuitOpen { .. } | Self::Timeout { .. } => {
                ErrorKind::Unavailable
            }
            Self::DataFusion { .. }
            | Self::Lineage { .. }
            | Self::Postgres { .. }
            | Self::MigrationChanged { .. }
            | Self::SchemaTooNew { .. }
            | Self::UnsupportedType { .. } => ErrorKind::Internal,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
