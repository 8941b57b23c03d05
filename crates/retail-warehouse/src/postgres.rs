//! The PostgreSQL warehouse: connection pool, migrations, incremental loads, catalogue queries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::BufMut as _;
use bytes::BytesMut;
use chrono::{Datelike as _, NaiveDate, NaiveDateTime};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use deltalake::arrow::array::{
    Array, AsArray as _, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array,
    Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, Schema,
    TimestampMicrosecondType,
};
use futures::{SinkExt as _, StreamExt as _, TryStreamExt as _, pin_mut};
use retail_domain::error::Classify as _;
use retail_lake::Lake;
use retail_lake::schema::{self as tables, TableSpec};
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio_postgres::Transaction;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tracing::{debug, info, warn};

use crate::catalogue::{Arg, Params, QueryDef};
use crate::config::{Backend, WarehouseConfig};
use crate::error::{Error, Result};
use crate::fingerprint::{Fingerprints, SliceStat, route};
use crate::migrations::MIGRATIONS;
use crate::sql::{SUMMARIES, SliceBy, VIEWS};
use crate::value::QueryResult;
use crate::{ResultStream, Warehouse};
use retail_domain::names::is_sql_identifier;

/// How a gold table is loaded.
#[derive(Debug, Clone, Copy)]
struct LoadSpec {
    table: TableSpec,
    /// Relation name in PostgreSQL.
    relation: &'static str,
    /// The column whose values split the table into slices, when it is loaded by slice.
    slice: Option<&'static str>,
}

/// A statement's arguments as PostgreSQL parameters.
fn bound(args: &[Arg]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    args.iter()
        .map(|arg| -> Box<dyn ToSql + Sync + Send> {
            match arg {
                Arg::Int(value) => Box::new(*value),
                Arg::Date(value) => Box::new(*value),
                Arg::Timestamp(value) => Box::new(*value),
                Arg::Text(value) => Box::new(value.clone()),
            }
        })
        .collect()
}

/// The data version of the loaded tables, from `load_state`: `table:gold_version,...`.
const LOAD_VERSION: &str = "(SELECT COALESCE(string_agg(table_name || ':' || gold_version, ',' \
                            ORDER BY table_name), '') FROM load_state)";

/// How each table the warehouse serves is loaded, from the table registry.
fn loads() -> Vec<LoadSpec> {
    tables::warehouse_tables()
        .map(|(table, served)| LoadSpec {
            table,
            relation: served.relation,
            slice: served.slice_by,
        })
        .collect()
}

/// What a load did to one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableLoad {
    /// The PostgreSQL table.
    pub table: &'static str,
    /// The gold version now loaded.
    pub gold_version: u64,
    /// `unchanged` (gold version already loaded), `replaced` (whole table) or `slices`.
    pub action: &'static str,
    /// Slices in the table, for tables loaded by slice.
    pub slices: usize,
    /// Slices rewritten (changed, new or gone).
    pub slices_rewritten: usize,
    /// Rows deleted.
    pub rows_deleted: u64,
    /// Rows copied in.
    pub rows_copied: u64,
    /// Rows of gold read to decide what to copy (all of the version, or for a table loaded by
    /// slice after an earlier load, the data files that meet what changed).
    pub rows_read: u64,
    /// Rows in the table after the load (equal to gold's).
    pub rows: u64,
    /// Seconds spent in `COPY` and, for new partitions, attaching them (index builds).
    pub copy_seconds: f64,
}

/// What one load did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Per table.
    pub tables: Vec<TableLoad>,
    /// Monthly partitions of `fact_sales` created by this load.
    pub partitions_created: Vec<String>,
    /// Whether the materialized views were refreshed.
    pub views_refreshed: bool,
    /// Seconds spent copying (inside the transaction).
    pub copy_seconds: f64,
    /// Seconds in all.
    pub seconds: f64,
    /// Days of facts rewritten (their summary slices follow).
    #[serde(skip)]
    fact_days: BTreeSet<String>,
}

impl LoadReport {
    /// Rows copied into all tables.
    pub fn rows_copied(&self) -> u64 {
        self.tables.iter().map(|t| t.rows_copied).sum()
    }

    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.tables.iter().any(|t| t.action != "unchanged")
    }
}

/// Partitions, indexes and views of the warehouse schema, for `retail warehouse status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SchemaObjects {
    /// Applied migrations: (version, name).
    pub migrations: Vec<(i32, String)>,
    /// Partitions of `fact_sales` with their bounds and rows (estimated).
    pub partitions: Vec<(String, String)>,
    /// Indexes: (table, index definition).
    pub indexes: Vec<(String, String)>,
    /// Materialized views and whether they are populated.
    pub views: Vec<(String, bool)>,
    /// Load state: (table, gold version, rows).
    pub loaded: Vec<(String, i64, i64)>,
    /// Whether the materialized views reflect the load state (a refresh that failed leaves
    /// them behind until the next load).
    pub views_current: bool,
}

/// A PostgreSQL warehouse behind a connection pool.
#[derive(Clone)]
pub struct PostgresWarehouse {
    pool: Pool,
    /// Set once this process has brought the schema up to date.
    migrated: tokio::sync::OnceCell<()>,
    schema: String,
    load_timeout_ms: u64,
    max_attempts: u32,
    /// The analysts' schema of pseudonymised views, kept by every load.
    analysts: Option<AnalystViews>,
}

/// The analysts' schema (ADR 0015): `<schema>_analyst` holds one view per table and view of
/// the warehouse in which every `customer_id` is its keyed pseudonym
/// ([`retail_domain::privacy::pseudonym`]); `role` may read those views and nothing of the
/// warehouse's own schema.
#[derive(Clone)]
pub struct AnalystViews {
    /// The PostgreSQL role granted the views (created `NOLOGIN` when missing).
    pub role: String,
    /// The privacy key of the pseudonyms.
    pub key: std::sync::Arc<[u8]>,
}

/// The warehouse's own bookkeeping, which analysts do not see.
const BOOKKEEPING: &[&str] = &[
    "schema_migrations",
    "load_state",
    "load_slices",
    "view_state",
    "summary_views",
    "customer_pseudonyms",
];

impl std::fmt::Debug for PostgresWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the connection string.
        f.debug_struct("PostgresWarehouse")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresWarehouse {
    /// Builds the pool (connections open on first use) for the configured URL and schema.
    ///
    /// # Errors
    ///
    /// When the URL cannot be parsed (the message never repeats it) or the schema name is not a
    /// plain identifier.
    pub async fn connect(config: &WarehouseConfig) -> Result<Self> {
        Self::connect_with(config, &retail_tls::TlsConfig::default()).await
    }

    /// As [`PostgresWarehouse::connect`], with `tls`'s authorities and plaintext rule:
    /// `sslmode=require` in the URL encrypts the connections.
    ///
    /// # Errors
    ///
    /// As [`PostgresWarehouse::connect`]; also plaintext to another machine without
    /// `tls.allow_plaintext`, or authorities that cannot be used.
    pub async fn connect_with(
        config: &WarehouseConfig,
        tls: &retail_tls::TlsConfig,
    ) -> Result<Self> {
        if !is_sql_identifier(&config.postgres_schema) {
            return Err(Error::Pool(format!(
                "warehouse.postgres_schema {:?} is not a plain lower-case identifier",
                config.postgres_schema
            )));
        }
        let mut pg: tokio_postgres::Config = config.postgres_url.parse().map_err(|_| {
            Error::Pool("warehouse.postgres_url is not a valid PostgreSQL URL".to_owned())
        })?;
        pg.application_name("retail")
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            // Analytics sorts and hashes fit in memory instead of spilling to disk.
            .options(format!(
                "-c search_path={} -c statement_timeout={} -c work_mem=32MB",
                config.postgres_schema, config.statement_timeout_ms
            ));
        let connector = tls
            .postgres("warehouse.postgres_url", &mut pg)
            .map_err(|error| Error::Pool(error.to_string()))?;
        let manager = Manager::from_config(
            pg,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let wait = Duration::from_millis(config.connect_timeout_ms);
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(wait))
            .create_timeout(Some(wait))
            .build()
            .map_err(|error| Error::Pool(error.to_string()))?;
        let warehouse = Self {
            pool,
            migrated: tokio::sync::OnceCell::new(),
            schema: config.postgres_schema.clone(),
            load_timeout_ms: config.load_timeout_ms,
            max_attempts: config.max_attempts,
            analysts: None,
        };
        Ok(warehouse)
    }

    /// Every load also keeps the analysts' schema of pseudonymised views for `views.role`
    /// (ADR 0015).
    ///
    /// # Errors
    ///
    /// When the role is not a plain lower-case identifier.
    pub fn with_analyst_views(mut self, views: AnalystViews) -> Result<Self> {
        if !is_sql_identifier(&views.role) {
            return Err(Error::Pool(format!(
                "warehouse.analyst_role {:?} is not a plain lower-case identifier",
                views.role
            )));
        }
        self.analysts = Some(views);
        Ok(self)
    }

    /// The analysts' schema: the warehouse's schema with `_analyst` after it.
    pub fn analyst_schema(&self) -> String {
        format!("{}_analyst", self.schema)
    }

    /// Rebuilds, in the load's transaction, the pseudonyms of every customer of
    /// `dim_customer` and the analysts' views over every table and view of the warehouse
    /// (a table dropped and rebuilt by the load takes its views with it: all are made again).
    async fn keep_analyst_views(&self, tx: &Transaction<'_>, views: &AnalystViews) -> Result<()> {
        let schema = &self.schema;
        let analyst = self.analyst_schema();
        let role = &views.role;
        let failed = |what: &'static str| Error::postgres(format!("analysts' views: {what}"));
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {schema}.customer_pseudonyms (
                 customer_id text PRIMARY KEY, pseudonym text NOT NULL);
             TRUNCATE {schema}.customer_pseudonyms;
             DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                 CREATE ROLE {role} NOLOGIN;
               END IF;
             END $$;
             DROP SCHEMA IF EXISTS {analyst} CASCADE;
             CREATE SCHEMA {analyst};"
        ))
        .await
        .map_err(failed("preparing"))?;
        let ids: Vec<String> = tx
            .query(
                &format!(
                    "SELECT DISTINCT customer_id FROM {schema}.dim_customer \
                     WHERE customer_id IS NOT NULL"
                ),
                &[],
            )
            .await
            .map_err(failed("reading customers"))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let pseudonyms: Vec<String> = ids
            .iter()
            .map(|id| retail_domain::privacy::pseudonym(&views.key, "customer_id", id))
            .collect();
        tx.execute(
            &format!(
                "INSERT INTO {schema}.customer_pseudonyms
                 SELECT * FROM UNNEST($1::text[], $2::text[])"
            ),
            &[&ids, &pseudonyms],
        )
        .await
        .map_err(failed("writing pseudonyms"))?;
        let relations = tx
            .query(
                "SELECT c.relname, a.attname
                   FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                  WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
                  ORDER BY c.relname, a.attnum",
                &[schema],
            )
            .await
            .map_err(failed("listing relations"))?;
        let mut columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in &relations {
            columns.entry(row.get(0)).or_default().push(row.get(1));
        }
        let mut script = String::new();
        for (relation, names) in columns
            .iter()
            .filter(|(relation, _)| !BOOKKEEPING.contains(&relation.as_str()))
        {
            let masked = names.iter().any(|name| name == "customer_id");
            let select: Vec<String> = names
                .iter()
                .map(|name| {
                    if name == "customer_id" {
                        "p.pseudonym AS customer_id".to_owned()
                    } else {
                        format!("t.{name}")
                    }
                })
                .collect();
            let join = if masked {
                format!(
                    " LEFT JOIN {schema}.customer_pseudonyms p ON p.customer_id = t.customer_id"
                )
            } else {
                String::new()
            };
            script += &format!(
                "CREATE VIEW {analyst}.{relation} AS SELECT {} FROM {schema}.{relation} t{join};\n",
                select.join(", ")
            );
        }
        script += &format!(
            "GRANT USAGE ON SCHEMA {analyst} TO {role};
             GRANT SELECT ON ALL TABLES IN SCHEMA {analyst} TO {role};"
        );
        tx.batch_execute(&script)
            .await
            .map_err(failed("creating views"))?;
        debug!(
            views = columns.len(),
            customers = ids.len(),
            "analysts' views kept"
        );
        Ok(())
    }

    /// The schema that holds the warehouse.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|error| match error {
            deadpool_postgres::PoolError::Backend(source) => Error::Postgres {
                operation: "connecting".to_owned(),
                source,
            },
            other => Error::Pool(other.to_string()),
        })
    }

    /// Runs `operation` again after transient failures, with exponential backoff.
    async fn retrying<T, F, Fut>(&self, what: &str, mut operation: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match operation().await {
                Err(error) if error.is_retryable() && attempt < self.max_attempts => {
                    warn!(attempt, %error, "{what} failed; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Whether the server answers.
    ///
    /// # Errors
    ///
    /// When it does not.
    pub async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(Error::postgres("ping"))?;
        Ok(())
    }

    /// Applies the migrations this build has and the database lacks, then rebuilds summary
    /// views whose definition changed. Safe to run from several processes at once (an advisory
    /// lock serialises them). Returns the migrations applied.
    ///
    /// # Errors
    ///
    /// When a migration fails (nothing of it stays), an applied migration was edited, or the
    /// database is newer than this build.
    pub async fn migrate(&self) -> Result<Vec<i32>> {
        self.retrying("migrate", || self.migrate_once()).await
    }

    async fn migrate_once(&self) -> Result<Vec<i32>> {
        let mut client = self.client().await?;
        let schema = &self.schema;
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres("begin migration"))?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {};
             SELECT pg_advisory_xact_lock(hashtext('retail.migrate.' || '{schema}'));
             CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());",
            self.load_timeout_ms
        ))
        .await
        .map_err(Error::postgres("preparing migrations"))?;
        let applied: BTreeMap<i32, String> = tx
            .query(
                &format!("SELECT version, checksum FROM {schema}.schema_migrations"),
                &[],
            )
            .await
            .map_err(Error::postgres("reading applied migrations"))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if let Some(newest) = applied.keys().max()
            && *newest > known
        {
            return Err(Error::SchemaTooNew {
                database: *newest,
                known,
            });
        }
        let mut done = Vec::new();
        for migration in MIGRATIONS {
            let checksum = migration.checksum();
            match applied.get(&migration.version) {
                Some(recorded) if *recorded == checksum => {}
                Some(recorded) => {
                    return Err(Error::MigrationChanged {
                        version: migration.version,
                        name: migration.name,
                        applied: recorded.clone(),
                        current: checksum,
                    });
                }
                None => {
                    tx.batch_execute(&format!(
                        "SET LOCAL search_path = {schema}; {}",
                        migration.sql
                    ))
                    .await
                    .map_err(Error::postgres(format!(
                        "applying migration {} ({})",
                        migration.version, migration.name
                    )))?;
                    tx.execute(
                        &format!(
                            "INSERT INTO {schema}.schema_migrations (version, name, checksum) \
                             VALUES ($1, $2, $3)"
                        ),
                        &[&migration.version, &migration.name, &checksum],
                    )
                    .await
                    .map_err(Error::postgres("recording a migration"))?;
                    info!(
                        version = migration.version,
                        name = migration.name,
                        "migration applied"
                    );
                    done.push(migration.version);
                }
            }
        }
        self.ensure_views(&tx).await?;
        tx.commit()
            .await
            .map_err(Error::postgres("committing migrations"))?;
        Ok(done)
    }

    /// Creates (or re-creates, when the code's definition changed or it is missing) every
    /// summary table, filled from the facts loaded so far, and every summary view as a
    /// materialized view with the unique index a concurrent refresh needs.
    async fn ensure_views(&self, tx: &Transaction<'_>) -> Result<()> {
        let schema = &self.schema;
        let recorded: BTreeMap<String, String> = tx
            .query(
                &format!("SELECT view_name, sql_hash FROM {schema}.summary_views"),
                &[],
            )
            .await
            .map_err(Error::postgres("reading summary views"))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let hash =
            |query: &str, key: &[&str]| hex::encode(Sha256::digest(format!("{query}{key:?}")));
        let record = |name: &str, hash: &str| {
            format!(
                "INSERT INTO summary_views (view_name, sql_hash) VALUES ('{name}', '{hash}')
                 ON CONFLICT (view_name) DO UPDATE SET sql_hash = EXCLUDED.sql_hash;"
            )
        };
        let mut rebuilt = false;
        for summary in SUMMARIES {
            let name = summary.name;
            let hash = hash(&summary.text(), summary.key);
            if recorded.get(name) == Some(&hash) && relation_exists(tx, schema, name).await? {
                continue;
            }
            let full = summary.full();
            tx.batch_execute(&format!(
                "SET LOCAL search_path = {schema};
                 DROP TABLE IF EXISTS {name} CASCADE;
                 CREATE TABLE {name} AS {full} WITH NO DATA;
                 CREATE UNIQUE INDEX {name}_key ON {name} ({});
                 INSERT INTO {name} {full};
                 {}",
                summary.key.join(", "),
                record(name, &hash)
            ))
            .await
            .map_err(Error::postgres(format!("creating summary table {name}")))?;
            info!(table = name, "summary table (re)built");
            rebuilt = true;
        }
        for view in VIEWS {
            let name = view.name;
            let hash = hash(&(view.query)(), view.key);
            if !rebuilt
                && recorded.get(name) == Some(&hash)
                && relation_exists(tx, schema, name).await?
            {
                continue;
            }
            tx.batch_execute(&format!(
                "SET LOCAL search_path = {schema};
                 DROP MATERIALIZED VIEW IF EXISTS {name} CASCADE;
                 CREATE MATERIALIZED VIEW {name} AS {};
                 CREATE UNIQUE INDEX {name}_key ON {name} ({});
                 {}",
                (view.query)(),
                view.key.join(", "),
                record(name, &hash)
            ))
            .await
            .map_err(Error::postgres(format!("creating view {name}")))?;
            info!(view = name, "summary view (re)built");
            rebuilt = true;
        }
        Ok(())
    }

    /// Rewrites the slices of every summary table that the rewritten fact days touch.
    async fn maintain_summaries(
        &self,
        tx: &Transaction<'_>,
        days: &BTreeSet<String>,
    ) -> Result<()> {
        let keys: Vec<i32> = days.iter().filter_map(|s| s.parse().ok()).collect();
        let dates: BTreeSet<NaiveDate> = keys.iter().filter_map(|k| date_of_key(*k)).collect();
        let (Some(first), Some(last)) = (dates.first(), dates.last()) else {
            return Ok(());
        };
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight");
        for summary in SUMMARIES {
            let started = Instant::now();
            let name = summary.name;
            let failed = || Error::postgres(format!("maintaining {name}"));
            match summary.slice {
                SliceBy::Day => {
                    let (start, end) =
                        (midnight(*first), midnight(last.succ_opt().unwrap_or(*last)));
                    tx.execute(
                        &format!("DELETE FROM {name} WHERE date_key = ANY($1)"),
                        &[&keys],
                    )
                    .await
                    .map_err(failed())?;
                    tx.execute(
                        &format!(
                            "INSERT INTO {name} {}",
                            summary.sliced(
                                " AND f.date_key = ANY($1) AND f.invoice_date >= $2 \
                                 AND f.invoice_date < $3"
                            )
                        ),
                        &[&keys, &start, &end],
                    )
                    .await
                    .map_err(failed())?;
                }
                SliceBy::Customer => {
                    let (start, end) =
                        (midnight(*first), midnight(last.succ_opt().unwrap_or(*last)));
                    let customers: Vec<String> = tx
                        .query(
                            "SELECT DISTINCT d.customer_id FROM fact_sales f
                               JOIN dim_customer d ON d.customer_key = f.customer_key
                              WHERE f.customer_key <> 0 AND f.date_key = ANY($1)
                                AND f.invoice_date >= $2 AND f.invoice_date < $3",
                            &[&keys, &start, &end],
                        )
                        .await
                        .map_err(failed())?
                        .iter()
                        .map(|row| row.get(0))
                        .collect();
                    tx.execute(
                        &format!("DELETE FROM {name} WHERE customer_id = ANY($1)"),
                        &[&customers],
                    )
                    .await
                    .map_err(failed())?;
                    tx.execute(
                        &format!(
                            "INSERT INTO {name} {}",
                            summary.sliced(" AND d.customer_id = ANY($1)")
                        ),
                        &[&customers],
                    )
                    .await
                    .map_err(failed())?;
                    // A customer left without any fact (not expected: silver only grows).
                    tx.execute(
                        &format!(
                            "DELETE FROM {name} a WHERE NOT EXISTS \
                             (SELECT 1 FROM dim_customer d WHERE d.customer_id = a.customer_id)"
                        ),
                        &[],
                    )
                    .await
                    .map_err(failed())?;
                }
                SliceBy::Month => {
                    let months: BTreeSet<NaiveDate> =
                        dates.iter().filter_map(|d| d.with_day(1)).collect();
                    for month in months {
                        let next = month + chrono::Months::new(1);
                        tx.execute(&format!("DELETE FROM {name} WHERE month = $1"), &[&month])
                            .await
                            .map_err(failed())?;
                        tx.execute(
                            &format!(
                                "INSERT INTO {name} {}",
                                summary.sliced(" AND f.invoice_date >= $1 AND f.invoice_date < $2")
                            ),
                            &[&midnight(month), &midnight(next)],
                        )
                        .await
                        .map_err(failed())?;
                    }
                }
            }
            debug!(
                table = name,
                days = keys.len(),
                seconds = started.elapsed().as_secs_f64(),
                "summary maintained"
            );
        }
        Ok(())
    }

    /// Loads gold into the warehouse: tables whose gold version is already loaded are skipped;
    /// tables loaded by slice rewrite only the slices whose content changed; everything else is
    /// replaced. All of it in one transaction, so a failed load leaves the previous state. The
    /// materialized views are refreshed concurrently afterwards (readers are never blocked).
    ///
    /// # Errors
    ///
    /// When gold is missing, or PostgreSQL fails (after retries for transient failures).
    pub async fn load(&self, lake: &Lake) -> Result<LoadReport> {
        self.retrying("load", || self.load_once(lake)).await
    }

    async fn load_once(&self, lake: &Lake) -> Result<LoadReport> {
        let started = Instant::now();
        let loads = loads();
        // One generation of gold, also while a pipeline run commits its tables.
        let specs: Vec<TableSpec> = loads.iter().map(|spec| spec.table).collect();
        let versions = crate::embedded::one_generation(lake, &specs).await?;
        let mut client = self.client().await?;
        // One loader of this schema at a time: a second one waits here (until the first
        // commits), then finds what the first loaded and skips it.
        let tx = self.exclusive_transaction(&mut client, "load").await?;
        let loaded: BTreeMap<String, (i64, i64)> = tx
            .query("SELECT table_name, gold_version, rows FROM load_state", &[])
            .await
            .map_err(Error::postgres("reading load state"))?
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2))))
            .collect();
        let mut report = LoadReport {
            tables: Vec::new(),
            partitions_created: Vec::new(),
            views_refreshed: false,
            copy_seconds: 0.0,
            seconds: 0.0,
            fact_days: BTreeSet::new(),
        };
        for (spec, version) in loads.iter().zip(versions) {
            let gold_version = i64::try_from(version).expect("versions fit i64");
            if let Some((_, rows)) = loaded
                .get(spec.relation)
                .filter(|(loaded, _)| *loaded == gold_version)
            {
                report.tables.push(TableLoad {
                    table: spec.relation,
                    gold_version: version,
                    action: "unchanged",
                    slices: 0,
                    slices_rewritten: 0,
                    rows_deleted: 0,
                    rows_copied: 0,
                    rows_read: 0,
                    rows: u64::try_from(*rows).unwrap_or(0),
                    copy_seconds: 0.0,
                });
                continue;
            }
            // Read the version decided above, even if gold moves on meanwhile.
            let copy_started = Instant::now();
            let table_load = match spec.slice {
                None => self.replace_table(&tx, lake, spec, version).await?,
                Some(column) => {
                    let after = loaded
                        .get(spec.relation)
                        .and_then(|(loaded, _)| u64::try_from(*loaded).ok());
                    self.load_slices(&tx, lake, spec, column, (after, version), &mut report)
                        .await?
                }
            };
            report.copy_seconds += copy_started.elapsed().as_secs_f64();
            let rows = i64::try_from(table_load.rows).expect("row counts fit i64");
            tx.execute(
                "INSERT INTO load_state (table_name, gold_version, rows, loaded_at)
                 VALUES ($1, $2, $3, now())
                 ON CONFLICT (table_name) DO UPDATE
                 SET gold_version = EXCLUDED.gold_version, rows = EXCLUDED.rows,
                     loaded_at = EXCLUDED.loaded_at",
                &[&spec.relation, &gold_version, &rows],
            )
            .await
            .map_err(Error::postgres("recording load state"))?;
            debug!(
                table = spec.relation,
                seconds = copy_started.elapsed().as_secs_f64(),
                ?table_load,
                "table loaded"
            );
            report.tables.push(table_load);
        }
        let days = std::mem::take(&mut report.fact_days);
        if report.changed() {
            // Fresh statistics for what changed, inside the transaction, before the summaries
            // are recomputed from it: without them the planner takes a new partition for empty
            // and joins it by nested loops (tens of seconds instead of one).
            let mut analyze: Vec<String> = months_of(&days).into_keys().collect();
            analyze.extend(
                report
                    .tables
                    .iter()
                    .filter(|t| t.action != "unchanged" && t.table != "fact_sales")
                    .map(|t| t.table.to_owned()),
            );
            if !analyze.is_empty() {
                tx.batch_execute(&format!("ANALYZE {}", analyze.join(", ")))
                    .await
                    .map_err(Error::postgres("analyzing"))?;
            }
        }
        self.maintain_summaries(&tx, &days).await?;
        if !days.is_empty() {
            let summaries: Vec<&str> = SUMMARIES.iter().map(|s| s.name).collect();
            tx.batch_execute(&format!("ANALYZE {}", summaries.join(", ")))
                .await
                .map_err(Error::postgres("analyzing"))?;
        }
        if let Some(views) = &self.analysts {
            self.keep_analyst_views(&tx, views).await?;
        }
        tx.commit()
            .await
            .map_err(Error::postgres("committing the load"))?;
        // Also when nothing changed now: a refresh that failed after an earlier load is
        // retried, so the views never stay behind the tables.
        report.views_refreshed = self.refresh_views_if_behind(&mut client).await?;
        report.seconds = started.elapsed().as_secs_f64();
        info!(
            rows = report.rows_copied(),
            seconds = report.seconds,
            "warehouse load finished"
        );
        Ok(report)
    }

    /// A transaction with the load's statement timeout, once no other transaction of this
    /// schema holds the lock named `what` (`load`, `views`): a second holder waits for the
    /// first's commit or rollback.
    async fn exclusive_transaction<'a>(
        &self,
        client: &'a mut tokio_postgres::Client,
        what: &'static str,
    ) -> Result<Transaction<'a>> {
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres(format!("begin the {what} transaction")))?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}; SET LOCAL synchronous_commit = on;",
            self.load_timeout_ms
        ))
        .await
        .map_err(Error::postgres(format!(
            "configuring the {what} transaction"
        )))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("retail.{what}.{}", self.schema)],
        )
        .await
        .map_err(Error::postgres(format!(
            "waiting for another {what} of this schema"
        )))?;
        Ok(tx)
    }

    /// Refreshes the summary views when they reflect another data version than the load
    /// state's, and records the version they now reflect; whether it refreshed. In one
    /// transaction under a lock of its own, so concurrent refreshes record versions in order.
    async fn refresh_views_if_behind(&self, client: &mut tokio_postgres::Client) -> Result<bool> {
        self.refresh_views_where(client, None).await
    }

    /// As [`Self::refresh_views_if_behind`]; with `mark`, refreshes whatever the state and
    /// records the version with `mark` appended (a change the load state does not show, such
    /// as an erasure, so that caches keyed by the version drop their answers).
    async fn refresh_views_where(
        &self,
        client: &mut tokio_postgres::Client,
        mark: Option<&str>,
    ) -> Result<bool> {
        let tx = self.exclusive_transaction(client, "views").await?;
        // Read before refreshing: the views then reflect at least this version.
        let row = tx
            .query_one(
                &format!(
                    "SELECT {LOAD_VERSION}, (SELECT data_version FROM view_state WHERE id = 1)"
                ),
                &[],
            )
            .await
            .map_err(Error::postgres("reading the view state"))?;
        let (mut current, reflected): (String, Option<String>) = (row.get(0), row.get(1));
        match mark {
            Some(mark) => current.push_str(mark),
            None if reflected.as_deref() == Some(current.as_str()) => return Ok(false),
            None => {}
        }
        for view in VIEWS {
            let started = Instant::now();
            tx.batch_execute(&format!(
                "REFRESH MATERIALIZED VIEW CONCURRENTLY {}",
                view.name
            ))
            .await
            .map_err(Error::postgres(format!("refreshing {}", view.name)))?;
            debug!(
                view = view.name,
                seconds = started.elapsed().as_secs_f64(),
                "view refreshed"
            );
        }
        tx.execute(
            "INSERT INTO view_state (id, data_version, refreshed_at) VALUES (1, $1, now())
             ON CONFLICT (id) DO UPDATE
             SET data_version = EXCLUDED.data_version, refreshed_at = EXCLUDED.refreshed_at",
            &[&current],
        )
        .await
        .map_err(Error::postgres("recording the view state"))?;
        tx.commit()
            .await
            .map_err(Error::postgres("committing the view refresh"))?;
        Ok(true)
    }

    async fn replace_table(
        &self,
        tx: &Transaction<'_>,
        lake: &Lake,
        spec: &LoadSpec,
        version: u64,
    ) -> Result<TableLoad> {
        let deleted = tx
            .execute(&format!("DELETE FROM {}", spec.relation), &[])
            .await
            .map_err(Error::postgres(format!("clearing {}", spec.relation)))?;
        let batches = read_version(lake, spec, version).await?;
        let copy_started = Instant::now();
        let copied = copy_batches(tx, spec, spec.relation, &batches).await?;
        let copy_seconds = copy_started.elapsed().as_secs_f64();
        Ok(TableLoad {
            table: spec.relation,
            gold_version: version,
            action: "replaced",
            slices: 0,
            slices_rewritten: 0,
            rows_deleted: deleted,
            rows_copied: copied,
            rows_read: copied,
            rows: copied,
            copy_seconds,
        })
    }

    /// Loads a table by slice: the slices whose fingerprint changed are deleted and copied
    /// again. `versions` are the gold version loaded before (if any) and the one to load; when
    /// the data files that changed between them carry the slice column's range in their
    /// statistics, only the files meeting those ranges are read and only the slices in them
    /// compared (a new day reads its month, not the whole history).
    async fn load_slices(
        &self,
        tx: &Transaction<'_>,
        lake: &Lake,
        spec: &LoadSpec,
        column: &'static str,
        (after, version): (Option<u64>, u64),
        report: &mut LoadReport,
    ) -> Result<TableLoad> {
        let scope = match after {
            Some(after) => load_scope(lake, spec, column, after, version).await?,
            None => None,
        };
        let batches = match &scope {
            Some(scope) => read_files(lake, spec, scope).await?,
            None => read_version(lake, spec, version).await?,
        };
        let rows_read = batches.iter().map(|b| b.num_rows() as u64).sum();
        let covers = |slice: &str| scope.as_ref().is_none_or(|scope| scope.covers(slice));
        let mut prints =
            Fingerprints::new(&spec.table.arrow_schema(), column).map_err(arrow_error(spec))?;
        for batch in &batches {
            prints.add(batch).map_err(arrow_error(spec))?;
        }
        // Rows of a file that also holds slices outside the scope: those slices may have rows
        // in files not read, so they are neither compared nor copied.
        prints.slices.retain(|slice, _| covers(slice));
        let (stored, kept): (BTreeMap<String, SliceStat>, BTreeMap<String, SliceStat>) = tx
            .query(
                "SELECT slice, fingerprint, rows FROM load_slices WHERE table_name = $1",
                &[&spec.relation],
            )
            .await
            .map_err(Error::postgres("reading slice fingerprints"))?
            .iter()
            .map(|row| {
                (
                    row.get(0),
                    SliceStat {
                        fingerprint: row.get(1),
                        rows: row.get(2),
                    },
                )
            })
            .partition(|(slice, _): &(String, SliceStat)| covers(slice));
        let changed: BTreeSet<String> = prints
            .slices
            .iter()
            .filter(|(slice, stat)| stored.get(*slice) != Some(stat))
            .map(|(slice, _)| slice.clone())
            .collect();
        let gone: BTreeSet<String> = stored
            .keys()
            .filter(|slice| !prints.slices.contains_key(*slice))
            .cloned()
            .collect();
        let rewrite: Vec<String> = changed.union(&gone).cloned().collect();
        if spec.relation == "fact_sales" {
            report.fact_days.extend(rewrite.iter().cloned());
        }
        let mut deleted = 0;
        if !rewrite.is_empty() && !stored.is_empty() {
            deleted = self.delete_slices(tx, spec, column, &rewrite).await?;
        }
        // Months of fact_sales first seen in this load get a table of their own, filled by
        // COPY without indexes and then attached: the indexes are built once, in bulk, instead
        // of row by row.
        let mut new_months: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        if spec.relation == "fact_sales" {
            for (name, slices) in months_of(&changed) {
                if !partition_exists(tx, &name).await? {
                    tx.batch_execute(&format!(
                        "CREATE TABLE {name} (LIKE fact_sales INCLUDING DEFAULTS)"
                    ))
                    .await
                    .map_err(Error::postgres(format!("creating partition {name}")))?;
                    new_months.insert(name, slices);
                }
            }
        }
        let mut copied = 0;
        let mut copy_seconds = 0.0;
        if !changed.is_empty() {
            let in_new_month: BTreeSet<String> = new_months.values().flatten().cloned().collect();
            let existing: BTreeSet<String> = changed.difference(&in_new_month).cloned().collect();
            let mut targets: Vec<(String, BTreeSet<String>)> = new_months
                .iter()
                .map(|(name, slices)| (name.clone(), slices.clone()))
                .collect();
            if !existing.is_empty() {
                targets.push((spec.relation.to_owned(), existing));
            }
            let target_of: HashMap<&str, usize> = targets
                .iter()
                .enumerate()
                .flat_map(|(index, (_, slices))| slices.iter().map(move |s| (s.as_str(), index)))
                .collect();
            let mut routed: Vec<Vec<RecordBatch>> = vec![Vec::new(); targets.len()];
            for batch in &batches {
                for (index, part) in route(batch, column, &target_of, targets.len())
                    .map_err(arrow_error(spec))?
                    .into_iter()
                    .enumerate()
                {
                    if let Some(part) = part {
                        routed[index].push(part);
                    }
                }
            }
            drop(batches);
            let copy_started = Instant::now();
            for ((target, _), parts) in targets.iter().zip(&routed) {
                copied += copy_batches(tx, spec, target, parts).await?;
            }
            copy_seconds += copy_started.elapsed().as_secs_f64();
            debug!(table = spec.relation, seconds = copy_seconds, "copied");
        }
        let attach_started = Instant::now();
        for name in new_months.keys() {
            let (from, to) = month_bounds(name);
            tx.batch_execute(&format!(
                "ALTER TABLE fact_sales ATTACH PARTITION {name} FOR VALUES FROM ('{from}') TO ('{to}')"
            ))
            .await
            .map_err(Error::postgres(format!("attaching partition {name}")))?;
            report.partitions_created.push(name.clone());
        }
        if !new_months.is_empty() {
            let seconds = attach_started.elapsed().as_secs_f64();
            copy_seconds += seconds;
            debug!(seconds, "new partitions attached");
        }
        tx.execute(
            "DELETE FROM load_slices WHERE table_name = $1 AND slice = ANY($2)",
            &[&spec.relation, &rewrite],
        )
        .await
        .map_err(Error::postgres("clearing slice fingerprints"))?;
        let (slices, prints_, rows): (Vec<String>, Vec<i64>, Vec<i64>) = {
            let mut slices = Vec::new();
            let mut prints_ = Vec::new();
            let mut rows = Vec::new();
            for slice in &changed {
                let stat = prints.slices[slice];
                slices.push(slice.clone());
                prints_.push(stat.fingerprint);
                rows.push(stat.rows);
            }
            (slices, prints_, rows)
        };
        tx.execute(
            "INSERT INTO load_slices (table_name, slice, fingerprint, rows)
             SELECT $1, s, f, r FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS u(s, f, r)",
            &[&spec.relation, &slices, &prints_, &rows],
        )
        .await
        .map_err(Error::postgres("recording slice fingerprints"))?;
        Ok(TableLoad {
            table: spec.relation,
            gold_version: version,
            action: "slices",
            slices: kept.len() + prints.slices.len(),
            slices_rewritten: rewrite.len(),
            rows_deleted: deleted,
            rows_copied: copied,
            rows_read,
            rows: kept
                .values()
                .chain(prints.slices.values())
                .map(|s| s.rows as u64)
                .sum(),
            copy_seconds,
        })
    }

    async fn delete_slices(
        &self,
        tx: &Transaction<'_>,
        spec: &LoadSpec,
        column: &str,
        slices: &[String],
    ) -> Result<u64> {
        let operation = format!("deleting changed slices of {}", spec.relation);
        if spec.relation == "fact_sales" {
            // The invoice-date bounds let PostgreSQL touch only the partitions concerned.
            let keys: Vec<i32> = slices.iter().filter_map(|s| s.parse().ok()).collect();
            let days: Vec<NaiveDate> = keys.iter().filter_map(|k| date_of_key(*k)).collect();
            let (Some(first), Some(last)) = (days.iter().min(), days.iter().max()) else {
                return Ok(0);
            };
            let start = first.and_hms_opt(0, 0, 0).expect("midnight");
            let end = last
                .succ_opt()
                .unwrap_or(*last)
                .and_hms_opt(0, 0, 0)
                .expect("midnight");
            tx.execute(
                "DELETE FROM fact_sales WHERE date_key = ANY($1)
                    AND invoice_date >= $2 AND invoice_date < $3",
                &[&keys, &start, &end],
            )
            .await
            .map_err(Error::postgres(operation))
        } else if column == "date_key" {
            let keys: Vec<i32> = slices.iter().filter_map(|s| s.parse().ok()).collect();
            tx.execute(
                &format!("DELETE FROM {} WHERE date_key = ANY($1)", spec.relation),
                &[&keys],
            )
            .await
            .map_err(Error::postgres(operation))
        } else {
            tx.execute(
                &format!("DELETE FROM {} WHERE {column} = ANY($1)", spec.relation),
                &[&slices],
            )
            .await
            .map_err(Error::postgres(operation))
        }
    }

    /// Runs a catalogue query.
    ///
    /// # Errors
    ///
    /// When PostgreSQL fails (after retries for transient failures) or times out.
    pub async fn run(&self, query: &QueryDef, params: &Params) -> Result<QueryResult> {
        let statement = query.statement(params);
        self.retrying(query.name, || async {
            let client = self.client().await?;
            let prepared = client
                .prepare_cached(&statement.sql)
                .await
                .map_err(Error::postgres(format!("preparing {}", query.name)))?;
            let values = bound(&statement.args);
            let refs: Vec<&(dyn ToSql + Sync)> = values
                .iter()
                .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let rows = client
                .query(&prepared, &refs)
                .await
                .map_err(Error::postgres(format!("running {}", query.name)))?;
            QueryResult::from_rows(&rows)
        })
        .await
    }

    /// Runs a catalogue query and streams its rows in pages of `STREAM_PAGE` (1,000) rows, on a
    /// connection of its own (taken out of the pool and closed at the end, so a stream cut
    /// short never hands a busy connection back) whose statement timeout is the load timeout.
    /// One statement reads one snapshot, however long it streams.
    ///
    /// # Errors
    ///
    /// When PostgreSQL cannot be reached or refuses the query; later failures end the stream
    /// with an error.
    pub async fn run_streaming(&self, query: &QueryDef, params: &Params) -> Result<ResultStream> {
        let statement = query.statement(params);
        let name = query.name;
        let client = deadpool_postgres::Object::take(self.client().await?);
        client
            .batch_execute(&format!("SET statement_timeout = {}", self.load_timeout_ms))
            .await
            .map_err(Error::postgres("configuring a stream"))?;
        let values = bound(&statement.args);
        let rows = client
            .query_raw(
                statement.sql.as_str(),
                values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)),
            )
            .await
            .map_err(Error::postgres(format!("running {name}")))?;
        let pages = rows.chunks(STREAM_PAGE).map(move |chunk| {
            // The connection lives as long as the stream reads from it.
            let _connection = &client;
            let rows = chunk
                .into_iter()
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(Error::postgres(format!("streaming {name}")))?;
            QueryResult::from_rows(&rows)
        });
        Ok(Box::pin(pages))
    }

    /// A token that changes whenever a load changes the warehouse (the loaded gold versions),
    /// once the summary views reflect the change: the version recorded by their last refresh.
    ///
    /// # Errors
    ///
    /// When PostgreSQL fails.
    pub async fn data_version(&self) -> Result<String> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT data_version FROM view_state WHERE id = 1", &[])
            .await
            .map_err(Error::postgres("reading the view state"))?;
        Ok(row.map(|row| row.get(0)).unwrap_or_default())
    }

    /// The data version of the loaded tables and the one the views reflect; they differ while
    /// a refresh is due.
    ///
    /// # Errors
    ///
    /// When PostgreSQL fails.
    pub async fn view_lag(&self) -> Result<(String, String)> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!(
                    "SELECT {LOAD_VERSION},
                            COALESCE((SELECT data_version FROM view_state WHERE id = 1), '')"
                ),
                &[],
            )
            .await
            .map_err(Error::postgres("reading the view state"))?;
        Ok((row.get(0), row.get(1)))
    }

    /// Applies pending migrations once per process (later calls return at once).
    ///
    /// # Errors
    ///
    /// As [`PostgresWarehouse::migrate`].
    pub async fn ensure_migrated(&self) -> Result<()> {
        self.migrated
            .get_or_try_init(|| async { self.migrate().await.map(|_| ()) })
            .await?;
        Ok(())
    }

    /// The gold version loaded: the Delta version of `gold/fact_sales` in `load_state`, `None`
    /// before the first load.
    ///
    /// # Errors
    ///
    /// When PostgreSQL fails.
    pub async fn gold_version(&self) -> Result<Option<i64>> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT gold_version FROM load_state WHERE table_name = 'fact_sales'",
                &[],
            )
            .await
            .map_err(Error::postgres("reading load state"))?
            .map(|row| row.get(0)))
    }

    /// Removes everything the warehouse holds about these customers (their facts, type 2
    /// versions, RFM row and summary rows), in one transaction, then refreshes the views.
    /// Aggregates over all customers (daily and monthly sales) keep their totals. Returns the
    /// rows removed.
    ///
    /// # Errors
    ///
    /// When PostgreSQL fails (nothing is removed then).
    pub async fn forget_customers(&self, customers: &[String]) -> Result<u64> {
        if customers.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = customers.to_vec();
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres("begin forgetting customers"))?;
        let mut removed = 0;
        for statement in [
            "DELETE FROM fact_sales WHERE customer_key IN
               (SELECT customer_key FROM dim_customer WHERE customer_id = ANY($1))",
            "DELETE FROM customer_days WHERE customer_id = ANY($1)",
            "DELETE FROM customer_activity WHERE customer_id = ANY($1)",
            "DELETE FROM customer_rfm WHERE customer_id = ANY($1)",
            "DELETE FROM dim_customer WHERE customer_id = ANY($1)",
        ] {
            removed += tx
                .execute(statement, &[&ids])
                .await
                .map_err(Error::postgres("forgetting customers"))?;
        }
        // The analysts' pseudonyms, wherever a load made them: also when the analysts' views
        // have been switched off since.
        let pseudonyms: bool = tx
            .query_one("SELECT to_regclass('customer_pseudonyms') IS NOT NULL", &[])
            .await
            .map_err(Error::postgres("forgetting customers"))?
            .get(0);
        if pseudonyms {
            removed += tx
                .execute(
                    "DELETE FROM customer_pseudonyms WHERE customer_id = ANY($1)",
                    &[&ids],
                )
                .await
                .map_err(Error::postgres("forgetting customers"))?;
        }
        tx.commit()
            .await
            .map_err(Error::postgres("committing the erasure"))?;
        // The load state did not change: refresh anyway, under a new data version.
        let mark = format!(";erased@{}", chrono::Utc::now().timestamp_micros());
        self.refresh_views_where(&mut client, Some(&mark)).await?;
        info!(
            customers = customers.len(),
            rows = removed,
            "customers forgotten"
        );
        Ok(removed)
    }

    /// Runs any SQL in a read-only transaction and returns its rows (for checks and tests).
    ///
    /// # Errors
    ///
    /// When PostgreSQL fails or the statement tries to write.
    pub async fn sql(&self, sql: &str) -> Result<QueryResult> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(Error::postgres("begin"))?;
        let rows = tx
            .query(sql, &[])
            .await
            .map_err(Error::postgres("running SQL"))?;
        tx.commit().await.map_err(Error::postgres("commit"))?;
        QueryResult::from_rows(&rows)
    }

    /// Partitions, indexes, views, migrations and load state, as `psql` would show them.
    ///
    /// # Errors
    ///
    /// When PostgreSQL fails.
    pub async fn objects(&self) -> Result<SchemaObjects> {
        let client = self.client().await?;
        let schema = &self.schema;
        let migrations = client
            .query(
                "SELECT version, name FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
            .map_err(Error::postgres("reading migrations"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let partitions = client
            .query(
                "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid)
                   FROM pg_inherits i
                   JOIN pg_class c ON c.oid = i.inhrelid
                   JOIN pg_class p ON p.oid = i.inhparent
                   JOIN pg_namespace n ON n.oid = p.relnamespace
                  WHERE p.relname = 'fact_sales' AND n.nspname = $1
                  ORDER BY 1",
                &[schema],
            )
            .await
            .map_err(Error::postgres("reading partitions"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let indexes = client
            .query(
                "SELECT tablename::text, indexdef FROM pg_indexes
                  WHERE schemaname = $1 AND tablename NOT LIKE 'fact_sales_%'
                  ORDER BY 1, 2",
                &[schema],
            )
            .await
            .map_err(Error::postgres("reading indexes"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let views = client
            .query(
                "SELECT matviewname::text, ispopulated FROM pg_matviews
                  WHERE schemaname = $1 ORDER BY 1",
                &[schema],
            )
            .await
            .map_err(Error::postgres("reading views"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let loaded = client
            .query(
                "SELECT table_name, gold_version, rows FROM load_state ORDER BY 1",
                &[],
            )
            .await
            .map_err(Error::postgres("reading load state"))?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        drop(client);
        let (tables, reflected) = self.view_lag().await?;
        Ok(SchemaObjects {
            migrations,
            partitions,
            indexes,
            views,
            loaded,
            views_current: tables == reflected,
        })
    }

    /// Drops the whole warehouse schema (tests and `retail warehouse reset`).
    ///
    /// # Errors
    ///
    /// When PostgreSQL fails.
    pub async fn drop_schema(&self) -> Result<()> {
        let client = self.client().await?;
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE",
                self.analyst_schema(),
                self.schema
            ))
            .await
            .map_err(Error::postgres("dropping the schema"))
    }
}

#[async_trait::async_trait]
impl Warehouse for PostgresWarehouse {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn query(&self, query: &QueryDef, params: &Params) -> Result<QueryResult> {
        use tracing::Instrument as _;
        let span = tracing::info_span!("warehouse_query", query = query.name, backend = "postgres");
        self.run(query, params).instrument(span).await
    }

    async fn stream(&self, query: &QueryDef, params: &Params) -> Result<ResultStream> {
        use tracing::Instrument as _;
        let span = tracing::info_span!(
            "warehouse_query",
            query = query.name,
            backend = "postgres",
            streamed = true
        );
        self.run_streaming(query, params).instrument(span).await
    }

    async fn data_version(&self) -> Result<String> {
        PostgresWarehouse::data_version(self).await
    }
}

fn arrow_error(spec: &LoadSpec) -> impl FnOnce(deltalake::arrow::error::ArrowError) -> Error + '_ {
    move |source| Error::DataFusion {
        operation: format!("reading {}", spec.table.name),
        source: Box::new(source.into()),
    }
}

/// Reads one version of a gold table whole (gold tables are read once per load).
async fn read_version(lake: &Lake, spec: &LoadSpec, version: u64) -> Result<Vec<RecordBatch>> {
    let stream = lake.scan_version(&spec.table, version).await?;
    stream
        .try_collect()
        .await
        .map_err(|source| Error::DataFusion {
            operation: format!("reading {} version {version}", spec.table.name),
            source: Box::new(source),
        })
}

/// The part of a table a load looks at: the slice ranges that changed between two versions
/// (from the data files added and removed, by their statistics) and the files of the newer
/// version, opened, whose ranges meet them.
struct Scope {
    ranges: Vec<(i64, i64)>,
    table: deltalake::DeltaTable,
    files: Vec<String>,
}

impl Scope {
    fn covers(&self, slice: &str) -> bool {
        slice.parse::<i64>().is_ok_and(|key| {
            self.ranges
                .iter()
                .any(|(first, last)| *first <= key && key <= *last)
        })
    }
}

/// What a load of `spec` from version `after` to `version` has to read, or `None` when that
/// cannot be known from the log (the older version is gone, a changed file has no statistics
/// of the slice column, or the column is not an integer): then the whole version is read.
async fn load_scope(
    lake: &Lake,
    spec: &LoadSpec,
    column: &str,
    after: u64,
    version: u64,
) -> Result<Option<Scope>> {
    if after >= version {
        return Ok(None);
    }
    let before = match lake.open_at(&spec.table, after).await {
        Ok(before) => before,
        Err(error) => {
            debug!(table = spec.relation, after, %error, "loaded version not readable: reading all of gold");
            return Ok(None);
        }
    };
    let before: HashMap<String, Option<(i64, i64)>> = lake
        .file_ranges(&before, &spec.table, column)?
        .into_iter()
        .collect();
    let table = lake.open_at(&spec.table, version).await?;
    let now = lake.file_ranges(&table, &spec.table, column)?;
    let now_paths: BTreeSet<&str> = now.iter().map(|(path, _)| path.as_str()).collect();
    let changed: Option<Vec<(i64, i64)>> = now
        .iter()
        .filter(|(path, _)| !before.contains_key(path))
        .map(|(_, range)| *range)
        .chain(
            before
                .iter()
                .filter(|(path, _)| !now_paths.contains(path.as_str()))
                .map(|(_, range)| *range),
        )
        .collect();
    let Some(ranges) = changed else {
        return Ok(None);
    };
    let files = now
        .into_iter()
        .filter(|(_, range)| {
            range.is_none_or(|(first, last)| {
                ranges
                    .iter()
                    .any(|(from, to)| first <= *to && *from <= last)
            })
        })
        .map(|(path, _)| path)
        .collect();
    Ok(Some(Scope {
        ranges,
        table,
        files,
    }))
}

/// The rows of a scope's data files.
async fn read_files(lake: &Lake, spec: &LoadSpec, scope: &Scope) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for file in &scope.files {
        let stream = lake.read_file(&spec.table, &scope.table, file).await?;
        batches.extend(stream.try_collect::<Vec<_>>().await?);
    }
    Ok(batches)
}

fn date_of_key(key: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(key / 10_000, (key / 100 % 100) as u32, (key % 100) as u32)
}

/// Rows per page of a streamed query.
pub(crate) const STREAM_PAGE: usize = 1000;

/// The monthly partition (`fact_sales_2011_01`) of each date-key slice, grouped.
fn months_of(slices: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut months: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for slice in slices {
        if let Ok(key) = slice.parse::<i32>() {
            let name = format!("fact_sales_{:04}_{:02}", key / 10_000, key / 100 % 100);
            months.entry(name).or_default().insert(slice.clone());
        }
    }
    months
}

/// The first day of a partition's month and of the next month.
fn month_bounds(name: &str) -> (String, String) {
    let year: i32 = name[11..15].parse().expect("partition names are ours");
    let month: u32 = name[16..18].parse().expect("partition names are ours");
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    (
        format!("{year:04}-{month:02}-01"),
        format!("{next_year:04}-{next_month:02}-01"),
    )
}

async fn relation_exists(tx: &Transaction<'_>, schema: &str, name: &str) -> Result<bool> {
    Ok(tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{schema}.{name}")],
        )
        .await
        .map_err(Error::postgres("looking up a relation"))?
        .get(0))
}

async fn partition_exists(tx: &Transaction<'_>, name: &str) -> Result<bool> {
    Ok(tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .map_err(Error::postgres("looking up a partition"))?
        .get(0))
}

/// One value on its way into a binary `COPY`.
#[derive(Debug)]
enum PgValue<'a> {
    Null,
    Bool(bool),
    I32(i32),
    I64(i64),
    F64(f64),
    Text(&'a str),
    Numeric(Decimal),
    Timestamp(NaiveDateTime),
    Date(NaiveDate),
}

impl ToSql for PgValue<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Bool(v) => v.to_sql(ty, out),
            Self::I32(v) => v.to_sql(ty, out),
            Self::I64(v) => v.to_sql(ty, out),
            Self::F64(v) => v.to_sql(ty, out),
            Self::Text(v) => v.to_sql(ty, out),
            Self::Numeric(v) => v.to_sql(ty, out),
            Self::Timestamp(v) => v.to_sql(ty, out),
            Self::Date(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A typed view of one Arrow column.
enum Column<'a> {
    Bool(&'a BooleanArray),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    F64(&'a Float64Array),
    Text(&'a StringArray),
    Numeric(&'a Decimal128Array, u32),
    Timestamp(&'a TimestampMicrosecondArray),
    Date(&'a Date32Array),
}

impl Column<'_> {
    fn value(&self, row: usize) -> PgValue<'_> {
        let array: &dyn Array = match self {
            Self::Bool(a) => *a,
            Self::I32(a) => *a,
            Self::I64(a) => *a,
            Self::F64(a) => *a,
            Self::Text(a) => *a,
            Self::Numeric(a, _) => *a,
            Self::Timestamp(a) => *a,
            Self::Date(a) => *a,
        };
        if array.is_null(row) {
            return PgValue::Null;
        }
        match self {
            Self::Bool(a) => PgValue::Bool(a.value(row)),
            Self::I32(a) => PgValue::I32(a.value(row)),
            Self::I64(a) => PgValue::I64(a.value(row)),
            Self::F64(a) => PgValue::F64(a.value(row)),
            Self::Text(a) => PgValue::Text(a.value(row)),
            Self::Numeric(a, scale) => {
                PgValue::Numeric(Decimal::from_i128_with_scale(a.value(row), *scale))
            }
            Self::Timestamp(a) => chrono::DateTime::from_timestamp_micros(a.value(row))
                .map_or(PgValue::Null, |t| PgValue::Timestamp(t.naive_utc())),
            Self::Date(a) => {
                Date32Type::to_naive_date_opt(a.value(row)).map_or(PgValue::Null, PgValue::Date)
            }
        }
    }
}

fn pg_type(data_type: &DataType) -> Option<Type> {
    Some(match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int32 => Type::INT4,
        DataType::Int64 => Type::INT8,
        DataType::Float64 => Type::FLOAT8,
        DataType::Utf8 => Type::TEXT,
        DataType::Decimal128(_, _) => Type::NUMERIC,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Date32 => Type::DATE,
        _ => return None,
    })
}

fn columns<'a>(batch: &'a RecordBatch, schema: &Schema) -> Result<Vec<Column<'a>>> {
    batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(array, field)| {
            let unsupported = || Error::UnsupportedType {
                data_type: array.data_type().to_string(),
                context: format!("column {}", field.name()),
            };
            Ok(match array.data_type() {
                DataType::Boolean => Column::Bool(array.as_boolean()),
                DataType::Int32 => Column::I32(array.as_primitive::<Int32Type>()),
                DataType::Int64 => Column::I64(array.as_primitive::<Int64Type>()),
                DataType::Float64 => Column::F64(array.as_primitive::<Float64Type>()),
                DataType::Utf8 => Column::Text(array.as_string::<i32>()),
                DataType::Decimal128(_, scale) => Column::Numeric(
                    array.as_primitive::<Decimal128Type>(),
                    u32::try_from(*scale).map_err(|_| unsupported())?,
                ),
                DataType::Timestamp(_, None) => {
                    Column::Timestamp(array.as_primitive::<TimestampMicrosecondType>())
                }
                DataType::Date32 => Column::Date(array.as_primitive::<Date32Type>()),
                _ => return Err(unsupported()),
            })
        })
        .collect()
}

/// Copies batches into `target` with binary `COPY`, columns by name. Rows are encoded into
/// large buffers here (the COPY binary format), so the server, not per-row futures, sets the pace.
async fn copy_batches(
    tx: &Transaction<'_>,
    spec: &LoadSpec,
    target: &str,
    batches: &[RecordBatch],
) -> Result<u64> {
    const FLUSH_BYTES: usize = 1 << 20;
    let schema = spec.table.arrow_schema();
    let types = schema
        .fields()
        .iter()
        .map(|f| {
            pg_type(f.data_type()).ok_or_else(|| Error::UnsupportedType {
                data_type: f.data_type().to_string(),
                context: format!("{}.{}", spec.relation, f.name()),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let sink = tx
        .copy_in::<_, bytes::Bytes>(&format!(
            "COPY {target} ({}) FROM STDIN BINARY",
            names.join(", ")
        ))
        .await
        .map_err(Error::postgres(format!("starting COPY into {target}")))?;
    pin_mut!(sink);
    let failed = || Error::postgres(format!("COPY into {target}"));
    let mut buf = BytesMut::with_capacity(FLUSH_BYTES + (64 << 10));
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0);
    buf.put_i32(0);
    let field_count = i16::try_from(types.len()).expect("fewer than 32k columns");
    for batch in batches {
        let columns = columns(batch, &schema)?;
        for row in 0..batch.num_rows() {
            buf.put_i16(field_count);
            for (column, ty) in columns.iter().zip(&types) {
                let value = column.value(row);
                let at = buf.len();
                buf.put_i32(-1);
                let null = value
                    .to_sql(ty, &mut buf)
                    .map_err(|source| Error::UnsupportedType {
                        data_type: format!("{ty} ({source})"),
                        context: format!("COPY into {target}"),
                    })?;
                if let IsNull::No = null {
                    let len = i32::try_from(buf.len() - at - 4).expect("values under 2 GiB");
                    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
                }
            }
            if buf.len() >= FLUSH_BYTES {
                sink.send(buf.split().freeze()).await.map_err(failed())?;
            }
        }
    }
    buf.put_i16(-1);
    sink.send(buf.split().freeze()).await.map_err(failed())?;
    sink.as_mut().finish().await.map_err(failed())
}
