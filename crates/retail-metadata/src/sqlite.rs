//! The metadata store in a SQLite file (the embedded profile).
//!
//! The file is in WAL mode, so readers never wait for a writer; every statement runs on the
//! blocking pool, so no async worker waits on the disk. Claims are OS file locks beside the
//! file (`.pipeline run.lock`, ...).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use retail_domain::audit::{AuditEntry, AuditEvent};

use crate::auth::{TokenState, Verdict};
use crate::claim::{Claim, Held};
use crate::error::{Error, Result};
use crate::lease::{self, Lease};
use crate::{
    ApiKeyRecord, AuditFilter, ConsentRecord, MetadataStore, PartitionFilter, PartitionState,
    PartitionStatus, RefreshTokenRecord, Rotation, RunFilter, RunKind, RunRecord, RunStatus,
    UserRecord,
};

/// Versioned schema migrations, applied in order; `PRAGMA user_version` holds how many ran.
/// Append only: an applied migration is never edited.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        duration_ms INTEGER,
        rows_in INTEGER NOT NULL DEFAULT 0,
        rows_out INTEGER NOT NULL DEFAULT 0,
        quarantined INTEGER NOT NULL DEFAULT 0,
        duplicates INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        detail TEXT NOT NULL
    );
    CREATE INDEX runs_by_start ON runs (started_at)",
    "CREATE INDEX runs_by_idempotency_key ON runs (json_extract(detail, '$.idempotency_key'))",
    // The API's tables. Releases before this migration created them on their own when the API
    // first opened the file, hence IF NOT EXISTS.
    "CREATE TABLE IF NOT EXISTS api_users (
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
    );
    CREATE INDEX runs_by_status ON runs (status, kind)",
    // When a refresh token was spent, for the grace period of an honest retry.
    "ALTER TABLE api_refresh_tokens ADD COLUMN used_at INTEGER",
    // The alert manager's state: one JSON document, replaced by compare and swap.
    "CREATE TABLE alert_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        document TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )",
    // The audit trail: append only, each entry sealed with the hash of the one before.
    "CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        source TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_log_by_at ON audit_log (at);
    CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    // The consent log: every choice a customer made about a purpose.
    "CREATE TABLE consent_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        customer_id TEXT NOT NULL,
        purpose TEXT NOT NULL,
        granted INTEGER NOT NULL,
        at TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        source TEXT NOT NULL
    );
    CREATE INDEX consent_log_by_customer ON consent_log (customer_id, seq);
    CREATE INDEX consent_log_by_purpose ON consent_log (purpose, customer_id, seq)",
    // The scheduler's cursors (compare and swap on a version) and leases (times in Unix
    // microseconds).
    "CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        acquired_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    )",
    // Partitions: each asset's (`asset:gold`) and each backfill's (`backfill:<id>`).
    "CREATE TABLE partitions (
        scope TEXT NOT NULL,
        partition_key TEXT NOT NULL,
        status TEXT NOT NULL,
        run_id TEXT,
        attempts INTEGER NOT NULL,
        row_count INTEGER,
        error TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (scope, partition_key)
    );
    CREATE INDEX partitions_by_status ON partitions (scope, status, partition_key)",
];

/// Takes a free or expired lease, or renews the holder's own (keeping when it was taken).
const LEASE_UPSERT: &str = "INSERT INTO leases (name, holder, acquired_at, expires_at)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (name) DO UPDATE SET
        acquired_at = CASE WHEN leases.holder = excluded.holder
                      THEN leases.acquired_at ELSE excluded.acquired_at END,
        holder = excluded.holder,
        expires_at = excluded.expires_at
    WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.acquired_at";

fn row_to_lease(row: &rusqlite::Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        holder: row.get(0)?,
        acquired_at: lease::from_micros(row.get(1)?),
        expires_at: lease::from_micros(row.get(2)?),
    })
}

const RUN_COLUMNS: &str = "run_id, kind, status, started_at, finished_at, duration_ms, rows_in, \
                           rows_out, quarantined, duplicates, error, detail";

/// Switches the file to WAL mode (kept in the file: once is enough), waiting up to `wait` while
/// another process opening it at the same moment holds it (SQLite answers that switch busy at
/// once, without its busy handler).
fn switch_to_wal(connection: &Connection, wait: std::time::Duration) -> Result<String> {
    let started = std::time::Instant::now();
    loop {
        match connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < wait =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            mode => return mode.map_err(Error::sqlite("switch to WAL mode")),
        }
    }
}

/// The metadata store in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    /// The database file; `None` for an in-memory store.
    path: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating when missing) the file and its directory, switches it to WAL mode and
    /// applies pending migrations. Blocking: call it at start-up, or from the blocking pool.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened, a migration fails, or the file was written by a newer
    /// build.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, std::time::Duration::from_secs(1))
    }

    /// As [`SqliteStore::open`], a write waiting at most `busy_timeout` for another
    /// process's write before failing with an error of kind `Unavailable`.
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`].
    pub fn open_with(path: &Path, busy_timeout: std::time::Duration) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Directory {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let connection = Connection::open(path).map_err(Error::sqlite("open the database"))?;
        connection
            .busy_timeout(busy_timeout)
            .map_err(Error::sqlite("open the database"))?;
        let mode = switch_to_wal(&connection, busy_timeout)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "the metadata file could not be switched to WAL mode");
        }
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(Error::sqlite("open the database"))?;
        // Deleted rows (an erased customer's consent) are overwritten, not left in free pages.
        connection
            .pragma_update(None, "secure_delete", "ON")
            .map_err(Error::sqlite("open the database"))?;
        Self::with_connection(connection, Some(path.to_path_buf()))
    }

    /// A store that lives in memory (tests).
    ///
    /// # Errors
    ///
    /// When a migration fails.
    pub fn in_memory() -> Result<Self> {
        let connection =
            Connection::open_in_memory().map_err(Error::sqlite("open the database"))?;
        Self::with_connection(connection, None)
    }

    fn with_connection(mut connection: Connection, path: Option<PathBuf>) -> Result<Self> {
        // The version is read under the write lock: two processes opening a new file at once
        // would otherwise both see version 0 and the later would apply migration 1 again.
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::sqlite("migrate"))?;
        let applied: usize = transaction
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(Error::sqlite("read the schema version"))?;
        if applied > MIGRATIONS.len() {
            return Err(Error::Schema(format!(
                "the database is at schema version {applied}, newer than this build ({}): \
                 upgrade the platform",
                MIGRATIONS.len()
            )));
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            transaction
                .execute_batch(migration)
                .map_err(Error::sqlite("migrate"))?;
            transaction
                .pragma_update(None, "user_version", index + 1)
                .map_err(Error::sqlite("migrate"))?;
        }
        transaction.commit().map_err(Error::sqlite("migrate"))?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            path,
        })
    }

    /// Runs `work` on the connection, on the blocking pool.
    async fn call<T, F>(&self, operation: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave SQLite inconsistent: use it.
            let mut connection = connection
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            work(&mut connection)
        })
        .await
        .map_err(Error::Task)?
        .map_err(Error::sqlite(operation))
    }
}

fn time(index: usize, text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Text,
                Box::new(error),
            )
        })
}

fn row_to_run(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let kind: String = row.get(1)?;
    let status: String = row.get(2)?;
    let finished_at: Option<String> = row.get(4)?;
    let detail: String = row.get(11)?;
    Ok(RunRecord {
        run_id: row.get(0)?,
        kind: RunKind::parse(&kind),
        status: RunStatus::parse(&status),
        started_at: time(3, &row.get::<_, String>(3)?)?,
        finished_at: finished_at.map(|text| time(4, &text)).transpose()?,
        duration_ms: row.get::<_, Option<i64>>(5)?.map(|ms| ms as u64),
        rows_in: row.get::<_, i64>(6)? as u64,
        rows_out: row.get::<_, i64>(7)? as u64,
        quarantined: row.get::<_, i64>(8)? as u64,
        duplicates: row.get::<_, i64>(9)? as u64,
        error: row.get(10)?,
        detail: serde_json::from_str(&detail).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                11,
                rusqlite::types::Type::Text,
                Box::new(error),
            )
        })?,
    })
}

fn row_to_user(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        username: row.get(0)?,
        password_hash: row.get(1)?,
        role: row.get(2)?,
        disabled: row.get(3)?,
        created_at: time(4, &row.get::<_, String>(4)?)?,
    })
}

fn row_to_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        key_hash: row.get(2)?,
        role: row.get(3)?,
        created_at: time(4, &row.get::<_, String>(4)?)?,
        revoked: row.get(5)?,
    })
}

#[async_trait]
impl MetadataStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn location(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "(in memory)".to_owned(), |p| p.display().to_string())
    }

    async fn ping(&self) -> Result<()> {
        self.call("ping", |c| c.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    async fn claim(&self, operation: &'static str) -> Result<Claim> {
        let Some(path) = &self.path else {
            return Ok(Claim::new(operation, Held::Nothing));
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let lock = dir.join(format!(".{operation}.lock"));
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock)
                .map_err(|source| Error::Directory {
                    path: lock.display().to_string(),
                    source,
                })?;
            match file.try_lock() {
                Ok(()) => Ok(Claim::new(operation, Held::File(file))),
                Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy { operation }),
                Err(std::fs::TryLockError::Error(source)) => Err(Error::Directory {
                    path: lock.display().to_string(),
                    source,
                }),
            }
        })
        .await
        .map_err(Error::Task)?
    }

    async fn save_run(&self, run: &RunRecord) -> Result<()> {
        let run = run.clone();
        let detail = serde_json::to_string(&run.detail).expect("run details always serialise");
        self.call("save a run", move |c| {
            c.execute(
                &format!(
                    "INSERT OR REPLACE INTO runs ({RUN_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    run.run_id,
                    run.kind.as_str(),
                    run.status.as_str(),
                    run.started_at.to_rfc3339(),
                    run.finished_at.map(|at| at.to_rfc3339()),
                    run.duration_ms.map(|ms| ms as i64),
                    run.rows_in as i64,
                    run.rows_out as i64,
                    run.quarantined as i64,
                    run.duplicates as i64,
                    run.error,
                    detail,
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let kind = filter.kind.map(RunKind::as_str);
        let status = filter.status.map(RunStatus::as_str);
        let assets = (!filter.assets.is_empty())
            .then(|| serde_json::to_string(&filter.assets).expect("strings serialise"));
        let requested_by = filter.requested_by.clone();
        let since = filter.since.map(|at| at.to_rfc3339());
        let until = filter.until.map(|at| at.to_rfc3339());
        let before = filter.before.clone();
        let partition = filter.partition.clone();
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        self.call("list runs", move |c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE (?1 IS NULL OR kind = ?1)
                   AND (?2 IS NULL OR status = ?2)
                   AND (?3 IS NULL OR EXISTS (
                        SELECT 1 FROM json_each(runs.detail, '$.assets') AS recorded
                        WHERE json_extract(recorded.value, '$.asset')
                              IN (SELECT value FROM json_each(?3))))
                   AND (?4 IS NULL OR json_extract(detail, '$.requested_by') = ?4
                        OR (substr(?4, -1) = ':'
                            AND substr(json_extract(detail, '$.requested_by'), 1, length(?4)) = ?4))
                   AND (?5 IS NULL OR started_at >= ?5)
                   AND (?6 IS NULL OR started_at < ?6)
                   AND (?7 IS NULL OR (started_at, run_id) <
                        (SELECT started_at, run_id FROM runs WHERE run_id = ?7))
                   AND (?9 IS NULL OR json_extract(detail, '$.gold_build') = 'full'
                        OR EXISTS (SELECT 1 FROM json_each(runs.detail, '$.gold_months')
                                   WHERE value = ?9)
                        OR EXISTS (SELECT 1 FROM json_each(runs.detail, '$.partitions')
                                   WHERE value = ?9))
                 ORDER BY started_at DESC, run_id DESC LIMIT ?8"
            ))?;
            let rows = statement.query_map(
                params![
                    kind,
                    status,
                    assets,
                    requested_by,
                    since,
                    until,
                    before,
                    limit,
                    partition
                ],
                row_to_run,
            )?;
            rows.collect()
        })
        .await
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        let run_id = run_id.to_owned();
        self.call("read a run", move |c| {
            c.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
                params![run_id],
                row_to_run,
            )
            .optional()
        })
        .await
    }

    async fn run_by_idempotency_key(&self, digest: &str) -> Result<Option<RunRecord>> {
        let digest = digest.to_owned();
        self.call("find a run by idempotency key", move |c| {
            c.query_row(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs
                     WHERE json_extract(detail, '$.idempotency_key') = ?1
                     ORDER BY started_at LIMIT 1"
                ),
                params![digest],
                row_to_run,
            )
            .optional()
        })
        .await
    }

    async fn fail_interrupted_runs(&self, kind: RunKind, error: &str) -> Result<u64> {
        let error = error.to_owned();
        let now = crate::now().to_rfc3339();
        self.call("mark interrupted runs", move |c| {
            c.execute(
                "UPDATE runs SET status = 'failed', error = ?1, finished_at = ?2
                 WHERE status = 'running' AND kind = ?3",
                params![error, now, kind.as_str()],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn insert_user(&self, user: &UserRecord) -> Result<bool> {
        let user = user.clone();
        self.call("create a user", move |c| {
            c.execute(
                "INSERT OR IGNORE INTO api_users (username, password_hash, role, disabled,
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    user.username,
                    user.password_hash,
                    user.role,
                    user.disabled,
                    user.created_at.to_rfc3339()
                ],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn user(&self, username: &str) -> Result<Option<UserRecord>> {
        let username = username.to_owned();
        self.call("read a user", move |c| {
            c.query_row(
                "SELECT username, password_hash, role, disabled, created_at FROM api_users
                 WHERE username = ?1",
                params![username],
                row_to_user,
            )
            .optional()
        })
        .await
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        self.call("list users", |c| {
            let mut statement = c.prepare_cached(
                "SELECT username, password_hash, role, disabled, created_at FROM api_users
                 ORDER BY username",
            )?;
            let rows = statement.query_map([], row_to_user)?;
            rows.collect()
        })
        .await
    }

    async fn disable_user(&self, username: &str) -> Result<bool> {
        let username = username.to_owned();
        self.call("disable a user", move |c| {
            let transaction = c.transaction()?;
            let changed = transaction.execute(
                "UPDATE api_users SET disabled = 1 WHERE username = ?1",
                params![username],
            )?;
            transaction.execute(
                "UPDATE api_refresh_tokens SET revoked = 1 WHERE username = ?1",
                params![username],
            )?;
            transaction.commit()?;
            Ok(changed == 1)
        })
        .await
    }

    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> Result<()> {
        let token = token.clone();
        self.call("store a refresh token", move |c| {
            c.execute(
                "INSERT INTO api_refresh_tokens (token_hash, username, family, expires_at, used,
                 revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    token.token_hash,
                    token.username,
                    token.family,
                    token.expires_at,
                    token.used,
                    token.revoked
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshTokenRecord>> {
        let token_hash = token_hash.to_owned();
        self.call("read a refresh token", move |c| {
            c.query_row(
                "SELECT token_hash, username, family, expires_at, used, revoked
                 FROM api_refresh_tokens WHERE token_hash = ?1",
                params![token_hash],
                |row| {
                    Ok(RefreshTokenRecord {
                        token_hash: row.get(0)?,
                        username: row.get(1)?,
                        family: row.get(2)?,
                        expires_at: row.get(3)?,
                        used: row.get(4)?,
                        revoked: row.get(5)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        next_hash: &str,
        next_expires_at: i64,
        now: i64,
        grace_seconds: i64,
    ) -> Result<Rotation> {
        let (token_hash, next_hash) = (token_hash.to_owned(), next_hash.to_owned());
        self.call("rotate a refresh token", move |c| {
            // IMMEDIATE: the write lock first, so two processes cannot both read it unspent.
            let transaction = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let state = transaction
                .query_row(
                    "SELECT username, family, expires_at, used_at, revoked, used
                     FROM api_refresh_tokens WHERE token_hash = ?1",
                    params![token_hash],
                    |row| {
                        // Tokens spent before `used_at` existed count as spent long ago.
                        let used: bool = row.get(5)?;
                        let used_at: Option<i64> = row.get(3)?;
                        Ok(TokenState {
                            username: row.get(0)?,
                            family: row.get(1)?,
                            expires_at: row.get(2)?,
                            used_at: used_at.or(used.then_some(i64::MIN / 2)),
                            revoked: row.get(4)?,
                        })
                    },
                )
                .optional()?;
            let Some(state) = state else {
                return Ok(Rotation::Unknown);
            };
            let rotation = match state.verdict(now, grace_seconds) {
                Verdict::Revoked => Rotation::Revoked,
                Verdict::Expired => Rotation::Expired,
                Verdict::Reuse => {
                    transaction.execute(
                        "UPDATE api_refresh_tokens SET revoked = 1 WHERE family = ?1",
                        params![state.family],
                    )?;
                    Rotation::Reused
                }
                verdict @ (Verdict::Spend | Verdict::Retry) => {
                    if verdict == Verdict::Spend {
                        transaction.execute(
                            "UPDATE api_refresh_tokens SET used = 1, used_at = ?2
                             WHERE token_hash = ?1",
                            params![token_hash, now],
                        )?;
                    }
                    transaction.execute(
                        "INSERT INTO api_refresh_tokens (token_hash, username, family,
                         expires_at, used, revoked) VALUES (?1, ?2, ?3, ?4, 0, 0)",
                        params![next_hash, state.username, state.family, next_expires_at],
                    )?;
                    Rotation::Rotated {
                        username: state.username,
                        family: state.family,
                    }
                }
            };
            transaction.commit()?;
            Ok(rotation)
        })
        .await
    }

    async fn revoke_refresh_family(&self, family: &str) -> Result<()> {
        let family = family.to_owned();
        self.call("revoke a session", move |c| {
            c.execute(
                "UPDATE api_refresh_tokens SET revoked = 1 WHERE family = ?1",
                params![family],
            )
            .map(|_| ())
        })
        .await
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<()> {
        let jti = jti.to_owned();
        self.call("revoke an access token", move |c| {
            c.execute(
                "INSERT OR IGNORE INTO api_revoked_access (jti, expires_at) VALUES (?1, ?2)",
                params![jti, expires_at],
            )
            .map(|_| ())
        })
        .await
    }

    async fn revoked_access_tokens(&self, now: i64) -> Result<Vec<String>> {
        self.call("read revoked access tokens", move |c| {
            c.execute(
                "DELETE FROM api_revoked_access WHERE expires_at < ?1",
                params![now],
            )?;
            let mut statement = c.prepare_cached("SELECT jti FROM api_revoked_access")?;
            let rows = statement.query_map([], |row| row.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let key = key.clone();
        self.call("store an API key", move |c| {
            c.execute(
                "INSERT INTO api_keys (id, name, key_hash, role, created_at, revoked)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    key.id,
                    key.name,
                    key.key_hash,
                    key.role,
                    key.created_at.to_rfc3339(),
                    key.revoked
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let key_hash = key_hash.to_owned();
        self.call("read an API key", move |c| {
            c.query_row(
                "SELECT id, name, key_hash, role, created_at, revoked FROM api_keys
                 WHERE key_hash = ?1",
                params![key_hash],
                row_to_key,
            )
            .optional()
        })
        .await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.call("list API keys", |c| {
            let mut statement = c.prepare_cached(
                "SELECT id, name, key_hash, role, created_at, revoked FROM api_keys
                 ORDER BY created_at, id",
            )?;
            let rows = statement.query_map([], row_to_key)?;
            rows.collect()
        })
        .await
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.call("revoke an API key", move |c| {
            c.execute("UPDATE api_keys SET revoked = 1 WHERE id = ?1", params![id])
                .map(|n| n == 1)
        })
        .await
    }

    async fn alert_state(&self) -> Result<(i64, Option<String>)> {
        self.call("read the alert state", |c| {
            Ok(c.query_row(
                "SELECT version, document FROM alert_state WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, Some(row.get(1)?))),
            )
            .optional()?
            .unwrap_or((0, None)))
        })
        .await
    }

    async fn save_alert_state(&self, expected: i64, document: &str) -> Result<bool> {
        let document = document.to_owned();
        let at = crate::now().to_rfc3339();
        self.call("save the alert state", move |c| {
            let changed = if expected == 0 {
                c.execute(
                    "INSERT INTO alert_state (id, version, document, updated_at)
                     VALUES (1, 1, ?1, ?2) ON CONFLICT (id) DO NOTHING",
                    params![document, at],
                )?
            } else {
                c.execute(
                    "UPDATE alert_state SET version = version + 1, document = ?1, updated_at = ?2
                     WHERE id = 1 AND version = ?3",
                    params![document, at, expected],
                )?
            };
            Ok(changed == 1)
        })
        .await
    }

    async fn cursor(&self, name: &str) -> Result<(i64, Option<String>)> {
        let name = name.to_owned();
        self.call("read a cursor", move |c| {
            Ok(c.query_row(
                "SELECT version, value FROM cursors WHERE name = ?1",
                params![name],
                |row| Ok((row.get(0)?, Some(row.get(1)?))),
            )
            .optional()?
            .unwrap_or((0, None)))
        })
        .await
    }

    async fn save_cursor(&self, name: &str, expected: i64, value: &str) -> Result<bool> {
        let (name, value) = (name.to_owned(), value.to_owned());
        let at = crate::now().to_rfc3339();
        self.call("save a cursor", move |c| {
            let changed = if expected == 0 {
                c.execute(
                    "INSERT INTO cursors (name, version, value, updated_at)
                     VALUES (?1, 1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
                    params![name, value, at],
                )?
            } else {
                c.execute(
                    "UPDATE cursors SET version = version + 1, value = ?2, updated_at = ?3
                     WHERE name = ?1 AND version = ?4",
                    params![name, value, at, expected],
                )?
            };
            Ok(changed == 1)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<Lease> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        let (at, until) = (now.timestamp_micros(), lease::expiry_micros(now, ttl));
        self.call("take a lease", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(LEASE_UPSERT, params![name, holder, at, until])?;
            let lease = tx.query_row(
                "SELECT holder, acquired_at, expires_at FROM leases WHERE name = ?1",
                params![name],
                row_to_lease,
            )?;
            tx.commit()?;
            Ok(lease)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.call("release a lease", move |c| {
            c.execute(
                "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
                params![name, holder],
            )
            .map(drop)
        })
        .await
    }

    async fn lease(&self, name: &str) -> Result<Option<Lease>> {
        let name = name.to_owned();
        self.call("read a lease", move |c| {
            c.query_row(
                "SELECT holder, acquired_at, expires_at FROM leases WHERE name = ?1",
                params![name],
                row_to_lease,
            )
            .optional()
        })
        .await
    }

    async fn save_partitions(&self, scope: &str, states: &[PartitionState]) -> Result<()> {
        let (scope, states) = (scope.to_owned(), states.to_vec());
        self.call("record partitions", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut statement = tx.prepare_cached(
                    "INSERT INTO partitions (scope, partition_key, status, run_id, attempts,
                                             row_count, error, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (scope, partition_key) DO UPDATE SET
                         status = excluded.status, run_id = excluded.run_id,
                         attempts = excluded.attempts, row_count = excluded.row_count,
                         error = excluded.error, updated_at = excluded.updated_at",
                )?;
                for state in &states {
                    statement.execute(params![
                        scope,
                        state.partition,
                        state.status.as_str(),
                        state.run_id,
                        state.attempts,
                        state
                            .rows
                            .map(|rows| i64::try_from(rows).unwrap_or(i64::MAX)),
                        state.error,
                        state.updated_at.to_rfc3339(),
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn partitions(
        &self,
        scope: &str,
        filter: &PartitionFilter,
    ) -> Result<Vec<PartitionState>> {
        let scope = scope.to_owned();
        let status = filter.status.map(PartitionStatus::as_str);
        let after = filter.after.clone();
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        self.call("read partitions", move |c| {
            let mut statement = c.prepare_cached(
                "SELECT partition_key, status, run_id, attempts, row_count, error, updated_at
                 FROM partitions
                 WHERE scope = ?1 AND (?2 IS NULL OR status = ?2)
                   AND (?3 IS NULL OR partition_key > ?3)
                 ORDER BY partition_key LIMIT ?4",
            )?;
            let rows = statement.query_map(params![scope, status, after, limit], |row| {
                let rows: Option<i64> = row.get(4)?;
                Ok(PartitionState {
                    partition: row.get(0)?,
                    status: PartitionStatus::parse(&row.get::<_, String>(1)?)
                        .unwrap_or(PartitionStatus::Pending),
                    run_id: row.get(2)?,
                    attempts: row.get(3)?,
                    rows: rows.and_then(|rows| u64::try_from(rows).ok()),
                    error: row.get(5)?,
                    updated_at: time(6, &row.get::<_, String>(6)?)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn partition_counts(&self, scope: &str) -> Result<BTreeMap<PartitionStatus, u64>> {
        let scope = scope.to_owned();
        self.call("count partitions", move |c| {
            let mut statement = c.prepare_cached(
                "SELECT status, count(*) FROM partitions WHERE scope = ?1 GROUP BY status",
            )?;
            let rows = statement.query_map(params![scope], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            let mut counts = BTreeMap::new();
            for row in rows {
                let (status, count) = row?;
                if let Some(status) = PartitionStatus::parse(&status) {
                    counts.insert(status, u64::try_from(count).unwrap_or_default());
                }
            }
            Ok(counts)
        })
        .await
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEntry> {
        let event = event.clone();
        let at = retail_domain::audit::timestamp(crate::now());
        self.call("append to the audit trail", move |c| {
            // IMMEDIATE: the write lock first, so another process cannot append between the
            // read of the last entry and this one.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (seq, prev): (i64, String) = tx
                .query_row(
                    "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?
                .unwrap_or((0, retail_domain::audit::GENESIS.to_owned()));
            let entry = AuditEntry::seal(seq + 1, at, event, prev);
            tx.execute(
                &format!(
                    "INSERT INTO audit_log ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    crate::audit::COLUMNS
                ),
                params![
                    entry.seq,
                    entry.at,
                    entry.event.actor,
                    entry.event.action,
                    entry.event.target,
                    entry.event.source,
                    entry.event.outcome.as_str(),
                    entry.event.detail,
                    entry.prev_hash,
                    entry.hash
                ],
            )?;
            tx.commit()?;
            Ok(entry)
        })
        .await
    }

    async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let (sql, texts) = crate::audit::query(filter, |n| format!("?{n}"));
        let (after, limit) = (
            filter.after_seq,
            i64::try_from(filter.limit).unwrap_or(i64::MAX),
        );
        let rows: Vec<(i64, Vec<String>)> = self
            .call("read the audit trail", move |c| {
                let mut statement = c.prepare(&sql)?;
                let mut values: Vec<&dyn rusqlite::ToSql> = vec![&after];
                values.extend(texts.iter().map(|t| t as &dyn rusqlite::ToSql));
                values.push(&limit);
                let rows = statement.query_map(values.as_slice(), |row| {
                    let texts = (1..10)
                        .map(|i| row.get::<_, String>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok((row.get(0)?, texts))
                })?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(seq, texts)| {
                crate::audit::entry(seq, texts).map_err(|detail| Error::Corrupt {
                    what: "audit entry",
                    detail,
                })
            })
            .collect()
    }

    async fn append_consent(&self, record: &ConsentRecord) -> Result<()> {
        let record = record.clone();
        self.call("record a consent", move |c| {
            c.execute(
                "INSERT INTO consent_log (customer_id, purpose, granted, at, recorded_by, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    record.customer_id,
                    record.purpose,
                    record.granted,
                    record.at.to_rfc3339(),
                    record.recorded_by,
                    record.source
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn consent_history(&self, customer_id: &str) -> Result<Vec<ConsentRecord>> {
        let customer_id = customer_id.to_owned();
        let rows: Vec<(String, String, bool, String, String, String)> = self
            .call("read a customer's consent", move |c| {
                let mut statement = c.prepare(&format!(
                    "SELECT {} FROM consent_log WHERE customer_id = ?1 ORDER BY seq",
                    crate::consent::COLUMNS
                ))?;
                let rows = statement.query_map(params![customer_id], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                    ))
                })?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(customer, purpose, granted, at, by, source)| {
                crate::consent::record(customer, purpose, granted, &at, by, source).map_err(
                    |detail| Error::Corrupt {
                        what: "consent record",
                        detail,
                    },
                )
            })
            .collect()
    }

    async fn latest_consents(&self, purpose: &str) -> Result<Vec<(String, bool)>> {
        let purpose = purpose.to_owned();
        self.call("read the consents of a purpose", move |c| {
            let mut statement = c.prepare(
                "SELECT customer_id, granted FROM consent_log
                 WHERE seq IN (SELECT MAX(seq) FROM consent_log WHERE purpose = ?1
                               GROUP BY customer_id)
                 ORDER BY customer_id",
            )?;
            let rows =
                statement.query_map(params![purpose], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    async fn erase_consent(&self, customer_id: &str) -> Result<u64> {
        let customer_id = customer_id.to_owned();
        self.call("erase a customer's consent", move |c| {
            let erased = c.execute(
                "DELETE FROM consent_log WHERE customer_id = ?1",
                params![customer_id],
            )?;
            if erased > 0 {
                // The write-ahead log still holds the pages as they were: copy it into the
                // file and empty it (best effort: a reader in another process may hold it).
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            }
            Ok(erased as u64)
        })
        .await
    }

    async fn consent_customers(&self) -> Result<Vec<String>> {
        self.call("list the customers of the consent log", |c| {
            let mut statement = c.prepare("SELECT DISTINCT customer_id FROM consent_log")?;
            let rows = statement.query_map([], |row| row.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn rename_consent_customer(&self, from: &str, to: &str) -> Result<u64> {
        let (from, to) = (from.to_owned(), to.to_owned());
        self.call("change a customer's id in the consent log", move |c| {
            c.execute(
                "UPDATE consent_log SET customer_id = ?2 WHERE customer_id = ?1",
                params![from, to],
            )
            .map(|n| n as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_opening_a_new_file_at_once_migrate_it_once() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("retail.db");
            let openers: Vec<_> = (0..6)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || SqliteStore::open(&path).map(drop))
                })
                .collect();
            for opener in openers {
                opener
                    .join()
                    .unwrap()
                    .expect("every opener sees a migrated file");
            }
        }
    }

    #[tokio::test]
    async fn a_writer_in_another_process_never_blocks_reads_and_writes_wait_only_briefly() {
        use retail_domain::error::{Classify as _, ErrorKind};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("retail.db");
        let store = SqliteStore::open_with(&path, std::time::Duration::from_millis(50)).unwrap();
        store
            .insert_user(&UserRecord {
                username: "ana".into(),
                password_hash: "h".into(),
                role: "admin".into(),
                disabled: false,
                created_at: crate::now(),
            })
            .await
            .unwrap();
        // Another process (a CLI) holds the write lock.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        other
            .execute("UPDATE api_users SET role = 'data_analyst'", [])
            .unwrap();
        // Reads go on, seeing the last committed state.
        let ana = store.user("ana").await.unwrap().unwrap();
        assert_eq!(ana.role, "admin");
        // A write waits for the busy timeout, then fails as unavailable (retry later).
        let error = store.disable_user("ana").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
        other.execute_batch("COMMIT").unwrap();
        assert!(store.disable_user("ana").await.unwrap());
    }

    #[tokio::test]
    async fn an_operation_is_claimed_by_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("retail.db");
        let first = SqliteStore::open(&path).unwrap();
        let second = SqliteStore::open(&path).unwrap();
        let held = first.claim("pipeline run").await.unwrap();
        assert!(matches!(
            second.claim("pipeline run").await,
            Err(Error::Busy {
                operation: "pipeline run"
            })
        ));
        let _other_operation = second.claim("ingestion").await.unwrap();
        drop(held);
        second.claim("pipeline run").await.unwrap();
    }

    #[tokio::test]
    async fn a_file_of_an_earlier_release_is_migrated_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m/retail.db");
        // The first release's file: the runs table only, with the API's own tables created
        // by the API on the side.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute_batch(
                "CREATE TABLE api_users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
                 role TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,
                 created_at TEXT NOT NULL);
                 INSERT INTO api_users VALUES ('ana', 'h', 'admin', 0, '2026-11-20T10:00:00+00:00');",
            )
            .unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let ana = store.user("ana").await.unwrap().expect("kept");
        assert_eq!(ana.role, "admin");
        let run = RunRecord::start(RunKind::Pipeline);
        store.save_run(&run).await.unwrap();
        drop(store);
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.runs(None, 5).await.unwrap(), vec![run]);
        drop(reopened);
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let error = SqliteStore::open(&path).unwrap_err();
        assert!(
            error.to_string().contains("newer than this build"),
            "{error}"
        );
    }
}
