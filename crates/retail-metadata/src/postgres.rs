//! The metadata store in a PostgreSQL schema, shared by every process and API replica.
//!
//! Connections come from a pool; the schema is created and migrated at connection time
//! (versioned, checksummed migrations in `metadata_migrations`, serialised by an advisory lock
//! so that replicas starting together migrate once). Claims are session advisory locks, each
//! held by a connection of its own and released when that connection closes, also when the
//! process dies.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use sha2::{Digest as _, Sha256};
use tokio_postgres::Row;

use crate::auth::{TokenState, Verdict};
use crate::claim::{Claim, Held};
use crate::error::{Error, Result};
use crate::lease::{self, Lease};
use crate::{
    ApiKeyRecord, AuditFilter, ConsentRecord, MetadataStore, PartitionFilter, PartitionState,
    PartitionStatus, RefreshTokenRecord, Rotation, RunFilter, RunKind, RunRecord, RunStatus,
    UserRecord,
};
use chrono::{DateTime, Utc};
use retail_domain::audit::{AuditEntry, AuditEvent};
use retail_domain::names::is_sql_identifier;

/// Versioned migrations: (version, SQL). Append only; an applied migration is never edited
/// (its checksum is kept and checked at every start).
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE runs (
        run_id text PRIMARY KEY,
        kind text NOT NULL,
        status text NOT NULL,
        started_at timestamptz NOT NULL,
        finished_at timestamptz,
        duration_ms bigint,
        rows_in bigint NOT NULL DEFAULT 0,
        rows_out bigint NOT NULL DEFAULT 0,
        quarantined bigint NOT NULL DEFAULT 0,
        duplicates bigint NOT NULL DEFAULT 0,
        error text,
        detail jsonb NOT NULL
    );
    CREATE INDEX runs_by_start ON runs (started_at);
    CREATE INDEX runs_by_idempotency_key ON runs ((detail->>'idempotency_key'));
    CREATE INDEX runs_by_status ON runs (status, kind);
    CREATE TABLE api_users (
        username text PRIMARY KEY,
        password_hash text NOT NULL,
        role text NOT NULL,
        disabled boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL
    );
    CREATE TABLE api_refresh_tokens (
        token_hash text PRIMARY KEY,
        username text NOT NULL,
        family text NOT NULL,
        expires_at bigint NOT NULL,
        used boolean NOT NULL DEFAULT false,
        revoked boolean NOT NULL DEFAULT false
    );
    CREATE INDEX api_refresh_tokens_family ON api_refresh_tokens (family);
    CREATE TABLE api_keys (
        id text PRIMARY KEY,
        name text NOT NULL,
        key_hash text NOT NULL UNIQUE,
        role text NOT NULL,
        created_at timestamptz NOT NULL,
        revoked boolean NOT NULL DEFAULT false
    );
    CREATE TABLE api_revoked_access (
        jti text PRIMARY KEY,
        expires_at bigint NOT NULL
    );",
    ),
    // When a refresh token was spent, for the grace period of an honest retry.
    (
        2,
        "ALTER TABLE api_refresh_tokens ADD COLUMN used_at bigint",
    ),
    // The alert manager's state: one JSON document, replaced by compare and swap.
    (
        3,
        "CREATE TABLE alert_state (
        id integer PRIMARY KEY CHECK (id = 1),
        version bigint NOT NULL,
        document text NOT NULL,
        updated_at timestamptz NOT NULL
    )",
    ),
    // The audit trail: append only, each entry sealed with the hash of the one before.
    (
        4,
        "CREATE TABLE audit_log (
        seq bigint PRIMARY KEY,
        at text NOT NULL,
        actor text NOT NULL,
        action text NOT NULL,
        target text NOT NULL,
        source text NOT NULL,
        outcome text NOT NULL,
        detail text NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL
    );
    CREATE INDEX audit_log_by_at ON audit_log (at);
    CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
    CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
    CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();",
    ),
    // The consent log: every choice a customer made about a purpose.
    (
        5,
        "CREATE TABLE consent_log (
        seq bigserial PRIMARY KEY,
        customer_id text NOT NULL,
        purpose text NOT NULL,
        granted boolean NOT NULL,
        at text NOT NULL,
        recorded_by text NOT NULL,
        source text NOT NULL
    );
    CREATE INDEX consent_log_by_customer ON consent_log (customer_id, seq);
    CREATE INDEX consent_log_by_purpose ON consent_log (purpose, customer_id, seq);",
    ),
    // The scheduler's cursors (compare and swap on a version) and leases (times in Unix
    // microseconds).
    (
        6,
        "CREATE TABLE cursors (
        name text PRIMARY KEY,
        version bigint NOT NULL,
        value text NOT NULL,
        updated_at timestamptz NOT NULL
    );
    CREATE TABLE leases (
        name text PRIMARY KEY,
        holder text NOT NULL,
        acquired_at bigint NOT NULL,
        expires_at bigint NOT NULL
    );",
    ),
    // Partitions: each asset's (`asset:gold`) and each backfill's (`backfill:<id>`).
    (
        7,
        "CREATE TABLE partitions (
        scope text NOT NULL,
        partition_key text NOT NULL,
        status text NOT NULL,
        run_id text,
        attempts bigint NOT NULL,
        row_count bigint,
        error text,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (scope, partition_key)
    );
    CREATE INDEX partitions_by_status ON partitions (scope, status, partition_key);",
    ),
];

fn row_to_lease(row: &Row) -> Lease {
    Lease {
        holder: row.get(0),
        acquired_at: lease::from_micros(row.get(1)),
        expires_at: lease::from_micros(row.get(2)),
    }
}

const RUN_COLUMNS: &str = "run_id, kind, status, started_at, finished_at, duration_ms, rows_in, \
                           rows_out, quarantined, duplicates, error, detail::text";

/// The metadata store in a PostgreSQL schema.
pub struct PostgresStore {
    pool: Pool,
    /// For the claims' own connections.
    config: tokio_postgres::Config,
    tls: retail_tls::MakeRustlsConnect,
    schema: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the connection string.
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url`, creates the schema when missing and applies pending
    /// migrations.
    ///
    /// # Errors
    ///
    /// When the URL is not valid (the message never repeats it), the server cannot be reached,
    /// a migration fails, or the schema was migrated by a newer build.
    pub async fn connect(url: &str, schema: &str, pool_size: usize) -> Result<Self> {
        Self::connect_with(url, schema, pool_size, &retail_tls::TlsConfig::default()).await
    }

    /// As [`PostgresStore::connect`], with `tls`'s authorities and plaintext rule:
    /// `sslmode=require` in the URL encrypts the connections.
    ///
    /// # Errors
    ///
    /// As [`PostgresStore::connect`]; also plaintext to another machine without
    /// `tls.allow_plaintext`, or authorities that cannot be used.
    pub async fn connect_with(
        url: &str,
        schema: &str,
        pool_size: usize,
        tls: &retail_tls::TlsConfig,
    ) -> Result<Self> {
        if !is_sql_identifier(schema) {
            return Err(Error::Connection(format!(
                "metadata.schema {schema:?} is not a plain lower-case identifier"
            )));
        }
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            Error::Connection("metadata.url is not a valid PostgreSQL URL".to_owned())
        })?;
        config
            .application_name("retail-metadata")
            .connect_timeout(Duration::from_secs(5))
            .options(format!(
                "-c search_path={schema} -c statement_timeout=30000"
            ));
        let tls = tls
            .postgres("metadata.url", &mut config)
            .map_err(|error| Error::Connection(error.to_string()))?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|error| Error::Connection(error.to_string()))?;
        let store = Self {
            pool,
            config,
            tls,
            schema: schema.to_owned(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The schema that holds the store.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|error| match error {
            deadpool_postgres::PoolError::Backend(source) => Error::Postgres {
                operation: "connect",
                source,
            },
            other => Error::Connection(format!("cannot connect to PostgreSQL: {other}")),
        })
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let schema = &self.schema;
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .map_err(Error::postgres("create the schema"))?;
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres("migrate"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("retail-metadata-migrate:{schema}")],
        )
        .await
        .map_err(Error::postgres("migrate"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS metadata_migrations (
                version integer PRIMARY KEY,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(Error::postgres("migrate"))?;
        let applied: Vec<(i32, String)> = tx
            .query("SELECT version, checksum FROM metadata_migrations", &[])
            .await
            .map_err(Error::postgres("migrate"))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let known = MIGRATIONS.last().map_or(0, |(version, _)| *version);
        // A newer build's schema first: its migrations are unknown here, whatever else.
        if let Some((version, _)) = applied
            .iter()
            .find(|(v, _)| !MIGRATIONS.iter().any(|(known, _)| known == v))
        {
            return Err(Error::Schema(format!(
                "schema {schema} has migration {version}, newer than this build ({known}): \
                 upgrade the platform"
            )));
        }
        for (version, checksum) in &applied {
            if let Some((_, sql)) = MIGRATIONS.iter().find(|(v, _)| v == version)
                && sha256(sql) != *checksum
            {
                return Err(Error::Schema(format!(
                    "migration {version} of schema {schema} was changed after it was applied"
                )));
            }
        }
        for (version, sql) in MIGRATIONS {
            if applied.iter().any(|(v, _)| v == version) {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .map_err(Error::postgres("migrate"))?;
            tx.execute(
                "INSERT INTO metadata_migrations (version, checksum) VALUES ($1, $2)",
                &[version, &sha256(sql)],
            )
            .await
            .map_err(Error::postgres("migrate"))?;
            tracing::info!(schema, version, "metadata migration applied");
        }
        tx.commit().await.map_err(Error::postgres("migrate"))?;
        Ok(())
    }

    /// Drops the schema and everything in it (tests clean up with it).
    ///
    /// # Errors
    ///
    /// When PostgreSQL fails.
    pub async fn drop_schema(&self) -> Result<()> {
        self.client()
            .await?
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await
            .map_err(Error::postgres("drop the schema"))
    }
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn row_to_run(row: &Row) -> Result<RunRecord> {
    let detail: String = row.get(11);
    Ok(RunRecord {
        run_id: row.get(0),
        kind: RunKind::parse(row.get(1)),
        status: RunStatus::parse(row.get(2)),
        started_at: row.get(3),
        finished_at: row.get(4),
        duration_ms: row.get::<_, Option<i64>>(5).map(|ms| ms as u64),
        rows_in: row.get::<_, i64>(6) as u64,
        rows_out: row.get::<_, i64>(7) as u64,
        quarantined: row.get::<_, i64>(8) as u64,
        duplicates: row.get::<_, i64>(9) as u64,
        error: row.get(10),
        detail: serde_json::from_str(&detail).map_err(|error| Error::Corrupt {
            what: "run detail",
            detail: error.to_string(),
        })?,
    })
}

fn row_to_user(row: &Row) -> UserRecord {
    UserRecord {
        username: row.get(0),
        password_hash: row.get(1),
        role: row.get(2),
        disabled: row.get(3),
        created_at: row.get(4),
    }
}

fn row_to_key(row: &Row) -> ApiKeyRecord {
    ApiKeyRecord {
        id: row.get(0),
        name: row.get(1),
        key_hash: row.get(2),
        role: row.get(3),
        created_at: row.get(4),
        revoked: row.get(5),
    }
}

#[async_trait]
impl MetadataStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn location(&self) -> String {
        format!("PostgreSQL schema {}", self.schema)
    }

    async fn ping(&self) -> Result<()> {
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .map_err(Error::postgres("ping"))?;
        Ok(())
    }

    async fn claim(&self, operation: &'static str) -> Result<Claim> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(Error::postgres("connect for a claim"))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "the connection holding a claim ended");
            }
        });
        let key = format!("retail:{}:{operation}", self.schema);
        let taken: bool = client
            .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&key])
            .await
            .map_err(Error::postgres("claim an operation"))?
            .get(0);
        if !taken {
            return Err(Error::Busy { operation });
        }
        Ok(Claim::new(operation, Held::Postgres(client)))
    }

    async fn save_run(&self, run: &RunRecord) -> Result<()> {
        let detail = serde_json::to_string(&run.detail).expect("run details always serialise");
        self.client()
            .await?
            .execute(
                "INSERT INTO runs (run_id, kind, status, started_at, finished_at, duration_ms,
                   rows_in, rows_out, quarantined, duplicates, error, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, CAST(CAST($12 AS text) AS jsonb))
                 ON CONFLICT (run_id) DO UPDATE SET kind = EXCLUDED.kind,
                   status = EXCLUDED.status, started_at = EXCLUDED.started_at,
                   finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms,
                   rows_in = EXCLUDED.rows_in, rows_out = EXCLUDED.rows_out,
                   quarantined = EXCLUDED.quarantined, duplicates = EXCLUDED.duplicates,
                   error = EXCLUDED.error, detail = EXCLUDED.detail",
                &[
                    &run.run_id,
                    &run.kind.as_str(),
                    &run.status.as_str(),
                    &run.started_at,
                    &run.finished_at,
                    &run.duration_ms.map(|ms| ms as i64),
                    &(run.rows_in as i64),
                    &(run.rows_out as i64),
                    &(run.quarantined as i64),
                    &(run.duplicates as i64),
                    &run.error,
                    &detail,
                ],
            )
            .await
            .map_err(Error::postgres("save a run"))?;
        Ok(())
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs
                     WHERE ($1::text IS NULL OR kind = $1)
                       AND ($2::text IS NULL OR status = $2)
                       AND ($3::text[] IS NULL OR EXISTS (
                            SELECT 1 FROM jsonb_array_elements(detail->'assets') AS recorded
                            WHERE recorded->>'asset' = ANY($3)))
                       AND ($4::text IS NULL OR detail->>'requested_by' = $4
                            OR (right($4, 1) = ':' AND starts_with(detail->>'requested_by', $4)))
                       AND ($5::timestamptz IS NULL OR started_at >= $5)
                       AND ($6::timestamptz IS NULL OR started_at < $6)
                       AND ($7::text IS NULL OR (started_at, run_id) <
                            (SELECT started_at, run_id FROM runs WHERE run_id = $7))
                       AND ($9::text IS NULL OR detail->>'gold_build' = 'full'
                            OR coalesce(detail->'gold_months' ? $9, false)
                            OR coalesce(detail->'partitions' ? $9, false))
                     ORDER BY started_at DESC, run_id DESC LIMIT $8"
                ),
                &[
                    &filter.kind.map(RunKind::as_str),
                    &filter.status.map(RunStatus::as_str),
                    &(!filter.assets.is_empty()).then_some(&filter.assets),
                    &filter.requested_by,
                    &filter.since,
                    &filter.until,
                    &filter.before,
                    &limit,
                    &filter.partition,
                ],
            )
            .await
            .map_err(Error::postgres("list runs"))?;
        rows.iter().map(row_to_run).collect()
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        self.client()
            .await?
            .query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1"),
                &[&run_id],
            )
            .await
            .map_err(Error::postgres("read a run"))?
            .as_ref()
            .map(row_to_run)
            .transpose()
    }

    async fn run_by_idempotency_key(&self, digest: &str) -> Result<Option<RunRecord>> {
        self.client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE detail->>'idempotency_key' = $1
                     ORDER BY started_at LIMIT 1"
                ),
                &[&digest],
            )
            .await
            .map_err(Error::postgres("find a run by idempotency key"))?
            .as_ref()
            .map(row_to_run)
            .transpose()
    }

    async fn fail_interrupted_runs(&self, kind: RunKind, error: &str) -> Result<u64> {
        self.client()
            .await?
            .execute(
                "UPDATE runs SET status = 'failed', error = $1, finished_at = $2
                 WHERE status = 'running' AND kind = $3",
                &[&error, &crate::now(), &kind.as_str()],
            )
            .await
            .map_err(Error::postgres("mark interrupted runs"))
    }

    async fn insert_user(&self, user: &UserRecord) -> Result<bool> {
        let inserted = self
            .client()
            .await?
            .execute(
                "INSERT INTO api_users (username, password_hash, role, disabled, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING",
                &[
                    &user.username,
                    &user.password_hash,
                    &user.role,
                    &user.disabled,
                    &user.created_at,
                ],
            )
            .await
            .map_err(Error::postgres("create a user"))?;
        Ok(inserted == 1)
    }

    async fn user(&self, username: &str) -> Result<Option<UserRecord>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT username, password_hash, role, disabled, created_at FROM api_users
                 WHERE username = $1",
                &[&username],
            )
            .await
            .map_err(Error::postgres("read a user"))?
            .as_ref()
            .map(row_to_user))
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT username, password_hash, role, disabled, created_at FROM api_users
                 ORDER BY username",
                &[],
            )
            .await
            .map_err(Error::postgres("list users"))?
            .iter()
            .map(row_to_user)
            .collect())
    }

    async fn disable_user(&self, username: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres("disable a user"))?;
        let changed = tx
            .execute(
                "UPDATE api_users SET disabled = true WHERE username = $1",
                &[&username],
            )
            .await
            .map_err(Error::postgres("disable a user"))?;
        tx.execute(
            "UPDATE api_refresh_tokens SET revoked = true WHERE username = $1",
            &[&username],
        )
        .await
        .map_err(Error::postgres("disable a user"))?;
        tx.commit()
            .await
            .map_err(Error::postgres("disable a user"))?;
        Ok(changed == 1)
    }

    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO api_refresh_tokens (token_hash, username, family, expires_at, used,
                 revoked) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &token.token_hash,
                    &token.username,
                    &token.family,
                    &token.expires_at,
                    &token.used,
                    &token.revoked,
                ],
            )
            .await
            .map_err(Error::postgres("store a refresh token"))?;
        Ok(())
    }

    async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshTokenRecord>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT token_hash, username, family, expires_at, used, revoked
                 FROM api_refresh_tokens WHERE token_hash = $1",
                &[&token_hash],
            )
            .await
            .map_err(Error::postgres("read a refresh token"))?
            .map(|row| RefreshTokenRecord {
                token_hash: row.get(0),
                username: row.get(1),
                family: row.get(2),
                expires_at: row.get(3),
                used: row.get(4),
                revoked: row.get(5),
            }))
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        next_hash: &str,
        next_expires_at: i64,
        now: i64,
        grace_seconds: i64,
    ) -> Result<Rotation> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres("rotate a refresh token"))?;
        // FOR UPDATE: a concurrent rotation of the same token waits for this one.
        let Some(row) = tx
            .query_opt(
                "SELECT username, family, expires_at, used_at, revoked, used
                 FROM api_refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                &[&token_hash],
            )
            .await
            .map_err(Error::postgres("rotate a refresh token"))?
        else {
            return Ok(Rotation::Unknown);
        };
        let used: bool = row.get(5);
        let state = TokenState {
            username: row.get(0),
            family: row.get(1),
            expires_at: row.get(2),
            // Tokens spent before `used_at` existed count as spent long ago.
            used_at: row
                .get::<_, Option<i64>>(3)
                .or(used.then_some(i64::MIN / 2)),
            revoked: row.get(4),
        };
        let rotation = match state.verdict(now, grace_seconds) {
            Verdict::Revoked => Rotation::Revoked,
            Verdict::Expired => Rotation::Expired,
            Verdict::Reuse => {
                tx.execute(
                    "UPDATE api_refresh_tokens SET revoked = true WHERE family = $1",
                    &[&state.family],
                )
                .await
                .map_err(Error::postgres("rotate a refresh token"))?;
                Rotation::Reused
            }
            verdict @ (Verdict::Spend | Verdict::Retry) => {
                if verdict == Verdict::Spend {
                    tx.execute(
                        "UPDATE api_refresh_tokens SET used = true, used_at = $2
                         WHERE token_hash = $1",
                        &[&token_hash, &now],
                    )
                    .await
                    .map_err(Error::postgres("rotate a refresh token"))?;
                }
                tx.execute(
                    "INSERT INTO api_refresh_tokens (token_hash, username, family, expires_at,
                     used, revoked) VALUES ($1, $2, $3, $4, false, false)",
                    &[&next_hash, &state.username, &state.family, &next_expires_at],
                )
                .await
                .map_err(Error::postgres("rotate a refresh token"))?;
                Rotation::Rotated {
                    username: state.username,
                    family: state.family,
                }
            }
        };
        tx.commit()
            .await
            .map_err(Error::postgres("rotate a refresh token"))?;
        Ok(rotation)
    }

    async fn revoke_refresh_family(&self, family: &str) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE api_refresh_tokens SET revoked = true WHERE family = $1",
                &[&family],
            )
            .await
            .map_err(Error::postgres("revoke a session"))?;
        Ok(())
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO api_revoked_access (jti, expires_at) VALUES ($1, $2)
                 ON CONFLICT (jti) DO NOTHING",
                &[&jti, &expires_at],
            )
            .await
            .map_err(Error::postgres("revoke an access token"))?;
        Ok(())
    }

    async fn revoked_access_tokens(&self, now: i64) -> Result<Vec<String>> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM api_revoked_access WHERE expires_at < $1",
                &[&now],
            )
            .await
            .map_err(Error::postgres("read revoked access tokens"))?;
        Ok(client
            .query("SELECT jti FROM api_revoked_access", &[])
            .await
            .map_err(Error::postgres("read revoked access tokens"))?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO api_keys (id, name, key_hash, role, created_at, revoked)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &key.id,
                    &key.name,
                    &key.key_hash,
                    &key.role,
                    &key.created_at,
                    &key.revoked,
                ],
            )
            .await
            .map_err(Error::postgres("store an API key"))?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT id, name, key_hash, role, created_at, revoked FROM api_keys
                 WHERE key_hash = $1",
                &[&key_hash],
            )
            .await
            .map_err(Error::postgres("read an API key"))?
            .as_ref()
            .map(row_to_key))
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT id, name, key_hash, role, created_at, revoked FROM api_keys
                 ORDER BY created_at, id",
                &[],
            )
            .await
            .map_err(Error::postgres("list API keys"))?
            .iter()
            .map(row_to_key)
            .collect())
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        let changed = self
            .client()
            .await?
            .execute("UPDATE api_keys SET revoked = true WHERE id = $1", &[&id])
            .await
            .map_err(Error::postgres("revoke an API key"))?;
        Ok(changed == 1)
    }

    async fn alert_state(&self) -> Result<(i64, Option<String>)> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT version, document FROM alert_state WHERE id = 1",
                &[],
            )
            .await
            .map_err(Error::postgres("read the alert state"))?
            .map_or((0, None), |row| (row.get(0), Some(row.get(1)))))
    }

    async fn save_alert_state(&self, expected: i64, document: &str) -> Result<bool> {
        let client = self.client().await?;
        let changed = if expected == 0 {
            client
                .execute(
                    "INSERT INTO alert_state (id, version, document, updated_at)
                     VALUES (1, 1, $1, now()) ON CONFLICT (id) DO NOTHING",
                    &[&document],
                )
                .await
        } else {
            client
                .execute(
                    "UPDATE alert_state SET version = version + 1, document = $1,
                     updated_at = now() WHERE id = 1 AND version = $2",
                    &[&document, &expected],
                )
                .await
        }
        .map_err(Error::postgres("save the alert state"))?;
        Ok(changed == 1)
    }

    async fn cursor(&self, name: &str) -> Result<(i64, Option<String>)> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT version, value FROM cursors WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(Error::postgres("read a cursor"))?
            .map_or((0, None), |row| (row.get(0), Some(row.get(1)))))
    }

    async fn save_cursor(&self, name: &str, expected: i64, value: &str) -> Result<bool> {
        let client = self.client().await?;
        let changed = if expected == 0 {
            client
                .execute(
                    "INSERT INTO cursors (name, version, value, updated_at)
                     VALUES ($1, 1, $2, now()) ON CONFLICT (name) DO NOTHING",
                    &[&name, &value],
                )
                .await
        } else {
            client
                .execute(
                    "UPDATE cursors SET version = version + 1, value = $2, updated_at = now()
                     WHERE name = $1 AND version = $3",
                    &[&name, &value, &expected],
                )
                .await
        }
        .map_err(Error::postgres("save a cursor"))?;
        Ok(changed == 1)
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<Lease> {
        let (at, until) = (now.timestamp_micros(), lease::expiry_micros(now, ttl));
        let client = self.client().await?;
        // One statement: the row lock of the upsert makes concurrent takers wait and re-check.
        // When a racer inserted the row after this statement's snapshot was taken and keeps it,
        // the upsert returns nothing and the fallback read cannot see that row yet: the next
        // statement (a new snapshot) can, so the statement is run again.
        for _ in 0..3 {
            let row = client
                .query_opt(
                    "WITH taken AS (
                        INSERT INTO leases (name, holder, acquired_at, expires_at)
                        VALUES ($1, $2, $3, $4)
                        ON CONFLICT (name) DO UPDATE SET
                            acquired_at = CASE WHEN leases.holder = EXCLUDED.holder
                                          THEN leases.acquired_at ELSE EXCLUDED.acquired_at END,
                            holder = EXCLUDED.holder,
                            expires_at = EXCLUDED.expires_at
                        WHERE leases.holder = EXCLUDED.holder
                           OR leases.expires_at <= EXCLUDED.acquired_at
                        RETURNING holder, acquired_at, expires_at
                     )
                     SELECT holder, acquired_at, expires_at FROM taken
                     UNION ALL
                     SELECT holder, acquired_at, expires_at FROM leases
                     WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM taken)",
                    &[&name, &holder, &at, &until],
                )
                .await
                .map_err(Error::postgres("take a lease"))?;
            if let Some(row) = row {
                return Ok(row_to_lease(&row));
            }
        }
        Err(Error::Busy {
            operation: "lease holder",
        })
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.client()
            .await?
            .execute(
                "DELETE FROM leases WHERE name = $1 AND holder = $2",
                &[&name, &holder],
            )
            .await
            .map_err(Error::postgres("release a lease"))?;
        Ok(())
    }

    async fn lease(&self, name: &str) -> Result<Option<Lease>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT holder, acquired_at, expires_at FROM leases WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(Error::postgres("read a lease"))?
            .map(|row| row_to_lease(&row)))
    }

    async fn save_partitions(&self, scope: &str, states: &[PartitionState]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres("record partitions"))?;
        let statement = tx
            .prepare(
                "INSERT INTO partitions (scope, partition_key, status, run_id, attempts,
                                         row_count, error, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (scope, partition_key) DO UPDATE SET
                     status = EXCLUDED.status, run_id = EXCLUDED.run_id,
                     attempts = EXCLUDED.attempts, row_count = EXCLUDED.row_count,
                     error = EXCLUDED.error, updated_at = EXCLUDED.updated_at",
            )
            .await
            .map_err(Error::postgres("record partitions"))?;
        for state in states {
            tx.execute(
                &statement,
                &[
                    &scope,
                    &state.partition,
                    &state.status.as_str(),
                    &state.run_id,
                    &i64::from(state.attempts),
                    &state
                        .rows
                        .map(|rows| i64::try_from(rows).unwrap_or(i64::MAX)),
                    &state.error,
                    &state.updated_at,
                ],
            )
            .await
            .map_err(Error::postgres("record partitions"))?;
        }
        tx.commit()
            .await
            .map_err(Error::postgres("record partitions"))
    }

    async fn partitions(
        &self,
        scope: &str,
        filter: &PartitionFilter,
    ) -> Result<Vec<PartitionState>> {
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT partition_key, status, run_id, attempts, row_count, error, updated_at
                 FROM partitions
                 WHERE scope = $1 AND ($2::text IS NULL OR status = $2)
                   AND ($3::text IS NULL OR partition_key > $3)
                 ORDER BY partition_key LIMIT $4",
                &[
                    &scope,
                    &filter.status.map(PartitionStatus::as_str),
                    &filter.after,
                    &limit,
                ],
            )
            .await
            .map_err(Error::postgres("read partitions"))?;
        Ok(rows
            .iter()
            .map(|row| PartitionState {
                partition: row.get(0),
                status: PartitionStatus::parse(row.get(1)).unwrap_or(PartitionStatus::Pending),
                run_id: row.get(2),
                attempts: u32::try_from(row.get::<_, i64>(3)).unwrap_or(u32::MAX),
                rows: row
                    .get::<_, Option<i64>>(4)
                    .and_then(|rows| u64::try_from(rows).ok()),
                error: row.get(5),
                updated_at: row.get(6),
            })
            .collect())
    }

    async fn partition_counts(
        &self,
        scope: &str,
    ) -> Result<std::collections::BTreeMap<PartitionStatus, u64>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT status, count(*) FROM partitions WHERE scope = $1 GROUP BY status",
                &[&scope],
            )
            .await
            .map_err(Error::postgres("count partitions"))?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let count = u64::try_from(row.get::<_, i64>(1)).unwrap_or_default();
                PartitionStatus::parse(row.get(0)).map(|status| (status, count))
            })
            .collect())
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEntry> {
        let operation = "append to the audit trail";
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres(operation))?;
        // One appender at a time across replicas: the lock is held until the commit.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("retail-audit:{}", self.schema)],
        )
        .await
        .map_err(Error::postgres(operation))?;
        let (seq, prev): (i64, String) = tx
            .query_opt(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .await
            .map_err(Error::postgres(operation))?
            .map_or((0, retail_domain::audit::GENESIS.to_owned()), |row| {
                (row.get(0), row.get(1))
            });
        let at = retail_domain::audit::timestamp(crate::now());
        let entry = AuditEntry::seal(seq + 1, at, event.clone(), prev);
        tx.execute(
            &format!(
                "INSERT INTO audit_log ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                crate::audit::COLUMNS
            ),
            &[
                &entry.seq,
                &entry.at,
                &entry.event.actor,
                &entry.event.action,
                &entry.event.target,
                &entry.event.source,
                &entry.event.outcome.as_str(),
                &entry.event.detail,
                &entry.prev_hash,
                &entry.hash,
            ],
        )
        .await
        .map_err(Error::postgres(operation))?;
        tx.commit().await.map_err(Error::postgres(operation))?;
        Ok(entry)
    }

    async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let (sql, texts) = crate::audit::query(filter, |n| format!("${n}"));
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let mut values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&filter.after_seq];
        values.extend(
            texts
                .iter()
                .map(|t| t as &(dyn tokio_postgres::types::ToSql + Sync)),
        );
        values.push(&limit);
        let rows = self
            .client()
            .await?
            .query(&sql, &values)
            .await
            .map_err(Error::postgres("read the audit trail"))?;
        rows.iter()
            .map(|row| {
                let texts = (1..10).map(|i| row.get::<_, String>(i)).collect();
                crate::audit::entry(row.get(0), texts).map_err(|detail| Error::Corrupt {
                    what: "audit entry",
                    detail,
                })
            })
            .collect()
    }
    async fn append_consent(&self, record: &ConsentRecord) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO consent_log (customer_id, purpose, granted, at, recorded_by, source)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &record.customer_id,
                    &record.purpose,
                    &record.granted,
                    &record.at.to_rfc3339(),
                    &record.recorded_by,
                    &record.source,
                ],
            )
            .await
            .map_err(Error::postgres("record a consent"))?;
        Ok(())
    }

    async fn consent_history(&self, customer_id: &str) -> Result<Vec<ConsentRecord>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {} FROM consent_log WHERE customer_id = $1 ORDER BY seq",
                    crate::consent::COLUMNS
                ),
                &[&customer_id],
            )
            .await
            .map_err(Error::postgres("read a customer's consent"))?;
        rows.iter()
            .map(|row| {
                let at: String = row.get(3);
                crate::consent::record(
                    row.get(0),
                    row.get(1),
                    row.get(2),
                    &at,
                    row.get(4),
                    row.get(5),
                )
                .map_err(|detail| Error::Corrupt {
                    what: "consent record",
                    detail,
                })
            })
            .collect()
    }

    async fn latest_consents(&self, purpose: &str) -> Result<Vec<(String, bool)>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT DISTINCT ON (customer_id) customer_id, granted FROM consent_log
                 WHERE purpose = $1 ORDER BY customer_id, seq DESC",
                &[&purpose],
            )
            .await
            .map_err(Error::postgres("read the consents of a purpose"))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn erase_consent(&self, customer_id: &str) -> Result<u64> {
        self.client()
            .await?
            .execute(
                "DELETE FROM consent_log WHERE customer_id = $1",
                &[&customer_id],
            )
            .await
            .map_err(Error::postgres("erase a customer's consent"))
    }

    async fn consent_customers(&self) -> Result<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query("SELECT DISTINCT customer_id FROM consent_log", &[])
            .await
            .map_err(Error::postgres("list the customers of the consent log"))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn rename_consent_customer(&self, from: &str, to: &str) -> Result<u64> {
        self.client()
            .await?
            .execute(
                "UPDATE consent_log SET customer_id = $2 WHERE customer_id = $1",
                &[&from, &to],
            )
            .await
            .map_err(Error::postgres("change a customer's id in the consent log"))
    }
}
