//! The metadata store: a record of every ingestion and pipeline run (SQLite file, embedded).

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::quality::QualityReport;

/// Where the metadata store lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataConfig {
    /// Path of the SQLite file (created with its directory when missing).
    pub path: String,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            path: "./data/retail.db".to_owned(),
        }
    }
}

/// Versioned schema migrations, applied in order; `PRAGMA user_version` holds how many ran.
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
];

/// What kind of work a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// `retail ingest`.
    Ingest,
    /// `retail pipeline run`.
    Pipeline,
}

/// How a run ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still going (or the process died: a run stuck here never finished).
    Running,
    /// Finished and wrote what it had to.
    Succeeded,
    /// Found nothing new: changed nothing.
    UpToDate,
    /// Stopped by an error; every table is at its last good version.
    Failed,
}

impl RunStatus {
    /// Returns the status as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::UpToDate => "up_to_date",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "succeeded" => Self::Succeeded,
            "up_to_date" => Self::UpToDate,
            "failed" => Self::Failed,
            _ => Self::Running,
        }
    }
}

/// What happened to one asset in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRun {
    /// The asset (table) name.
    pub asset: String,
    /// `materialized`, `up_to_date` or `failed`.
    pub status: String,
    /// Rows written (for an overwrite: rows in the table).
    pub rows: u64,
    /// The table version written, if any.
    pub version: Option<u64>,
}

/// Table counts that must add up after a run:
/// bronze = silver + quarantine + duplicates + updates + 2 × deletes.
///
/// An applied update removed one silver row (its replacement is a silver row or a duplicate
/// of its own); an applied delete removed one silver row and is itself a bronze row that
/// became no silver row, so it counts twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Rows in bronze.
    pub bronze: u64,
    /// Rows in silver.
    pub silver: u64,
    /// Rows in quarantine.
    pub quarantine: u64,
    /// Rows counted as duplicates.
    pub duplicates: u64,
    /// Updates applied to silver.
    #[serde(default)]
    pub updates: u64,
    /// Deletes applied to silver.
    #[serde(default)]
    pub deletes: u64,
}

impl Reconciliation {
    /// Returns true when every bronze row is accounted for.
    pub fn balances(&self) -> bool {
        self.bronze
            == self.silver + self.quarantine + self.duplicates + self.updates + 2 * self.deletes
    }
}

impl std::fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bronze {} = silver {} + quarantine {} + duplicates {}",
            self.bronze, self.silver, self.quarantine, self.duplicates,
        )?;
        if self.updates > 0 || self.deletes > 0 {
            write!(
                f,
                " + updates {} + 2 × deletes {}",
                self.updates, self.deletes
            )?;
        }
        write!(
            f,
            " ({})",
            if self.balances() {
                "balanced"
            } else {
                "NOT BALANCED"
            }
        )
    }
}

/// Details of a run that are kept as one JSON document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    /// What happened to each asset.
    pub assets: Vec<AssetRun>,
    /// Bronze versions processed: (after, up to and including).
    pub bronze_versions: Option<(Option<u64>, u64)>,
    /// Table counts after the run.
    pub reconciliation: Option<Reconciliation>,
    /// The run's data quality report.
    pub quality: Option<QualityReport>,
    /// Files ingested and skipped (ingestion runs).
    pub files: Vec<FileOutcome>,
    /// How gold was built: `full` (from all of silver) or `incremental`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold_build: Option<String>,
    /// The invoice months (`YYYY-MM`) an incremental gold build recomputed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gold_months: Vec<String>,
    /// SHA-256 (hex) of the caller's idempotency key, for records ingested under one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// What became of one source file in an ingestion run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOutcome {
    /// The file's path as given.
    pub path: String,
    /// SHA-256 of its content.
    pub checksum: String,
    /// Rows it added to bronze (0 when skipped).
    pub rows: u64,
    /// Malformed rows among them.
    pub malformed: u64,
    /// True when the content had been ingested before.
    pub skipped: bool,
}

/// One recorded run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique id (UUID v7: sorts by start time).
    pub run_id: String,
    /// Ingestion or pipeline.
    pub kind: RunKind,
    /// How it ended.
    pub status: RunStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// How long it took.
    pub duration_ms: Option<u64>,
    /// Rows read (bronze rows for a pipeline run, source rows for an ingestion).
    pub rows_in: u64,
    /// Rows written to silver (pipeline) or bronze (ingestion).
    pub rows_out: u64,
    /// Rows quarantined.
    pub quarantined: u64,
    /// Rows dropped as duplicates.
    pub duplicates: u64,
    /// The error chain of a failed run.
    pub error: Option<String>,
    /// Everything else.
    pub detail: RunDetail,
}

impl RunRecord {
    /// Starts a record for a run beginning now.
    pub fn start(kind: RunKind) -> Self {
        Self {
            run_id: uuid::Uuid::now_v7().to_string(),
            kind,
            status: RunStatus::Running,
            started_at: Utc::now(),
            finished_at: None,
            duration_ms: None,
            rows_in: 0,
            rows_out: 0,
            quarantined: 0,
            duplicates: 0,
            error: None,
            detail: RunDetail::default(),
        }
    }

    /// Marks the run finished with a status.
    pub fn finish(&mut self, status: RunStatus) {
        let now = Utc::now();
        self.status = status;
        self.finished_at = Some(now);
        self.duration_ms = u64::try_from((now - self.started_at).num_milliseconds()).ok();
    }
}

/// The metadata store.
#[derive(Debug)]
pub struct MetadataStore {
    connection: Mutex<Connection>,
    /// Where operation locks live (beside the database file); none for an in-memory store.
    lock_dir: Option<std::path::PathBuf>,
}

/// An exclusive, process-wide claim on one kind of operation (`pipeline`, `ingest`), held by an
/// OS file lock: released when dropped, and by the OS if the process dies.
#[derive(Debug)]
pub struct OperationLock {
    _file: Option<std::fs::File>,
}

impl MetadataStore {
    /// Opens (creating when missing) the store and applies pending migrations.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or a migration fails.
    pub fn open(config: &MetadataConfig) -> Result<Self> {
        let path = Path::new(&config.path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::MetadataDirectory {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let connection = Connection::open(path).map_err(Error::metadata("open"))?;
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(Error::metadata("open"))?;
        let mut store = Self::with_connection(connection)?;
        store.lock_dir = Some(path.parent().map_or_else(|| ".".into(), Path::to_path_buf));
        Ok(store)
    }

    /// Opens a store that lives in memory (tests).
    ///
    /// # Errors
    ///
    /// When a migration fails.
    pub fn open_in_memory() -> Result<Self> {
        Self::with_connection(Connection::open_in_memory().map_err(Error::metadata("open"))?)
    }

    fn with_connection(mut connection: Connection) -> Result<Self> {
        let applied: usize = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(Error::metadata("migrate"))?;
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            let transaction = connection
                .transaction()
                .map_err(Error::metadata("migrate"))?;
            transaction
                .execute_batch(migration)
                .map_err(Error::metadata("migrate"))?;
            transaction
                .pragma_update(None, "user_version", index + 1)
                .map_err(Error::metadata("migrate"))?;
            transaction.commit().map_err(Error::metadata("migrate"))?;
        }
        Ok(Self {
            connection: Mutex::new(connection),
            lock_dir: None,
        })
    }

    /// Claims an operation for this process, so that two processes never run it at once on
    /// the same lake (two concurrent silver appends would both keep the same rows).
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when another process holds it; an IO error when the lock file cannot
    /// be created.
    pub fn claim(&self, operation: &'static str) -> Result<OperationLock> {
        let Some(dir) = &self.lock_dir else {
            return Ok(OperationLock { _file: None });
        };
        let path = dir.join(format!(".{operation}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| Error::MetadataDirectory {
                path: path.display().to_string(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(OperationLock { _file: Some(file) }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy { operation }),
            Err(std::fs::TryLockError::Error(source)) => Err(Error::MetadataDirectory {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: use the connection.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Inserts or replaces a run record.
    ///
    /// # Errors
    ///
    /// When the write fails.
    pub fn save_run(&self, run: &RunRecord) -> Result<()> {
        let detail = serde_json::to_string(&run.detail).expect("run details always serialise");
        self.lock()
            .execute(
                "INSERT OR REPLACE INTO runs (run_id, kind, status, started_at, finished_at,
                 duration_ms, rows_in, rows_out, quarantined, duplicates, error, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    run.run_id,
                    match run.kind {
                        RunKind::Ingest => "ingest",
                        RunKind::Pipeline => "pipeline",
                    },
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
            .map_err(Error::metadata("save run"))?;
        Ok(())
    }

    /// Returns the newest runs first, at most `limit`, optionally of one kind.
    ///
    /// # Errors
    ///
    /// When the read fails.
    pub fn runs(&self, kind: Option<RunKind>, limit: usize) -> Result<Vec<RunRecord>> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT run_id, kind, status, started_at, finished_at, duration_ms, rows_in,
                 rows_out, quarantined, duplicates, error, detail FROM runs
                 WHERE ?1 IS NULL OR kind = ?1 ORDER BY started_at DESC, run_id DESC LIMIT ?2",
            )
            .map_err(Error::metadata("list runs"))?;
        let kind = kind.map(|kind| match kind {
            RunKind::Ingest => "ingest",
            RunKind::Pipeline => "pipeline",
        });
        let rows = statement
            .query_map(params![kind, limit as i64], row_to_run)
            .map_err(Error::metadata("list runs"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Error::metadata("list runs"))
    }

    /// Returns the ingestion recorded under an idempotency key's digest, if any.
    ///
    /// # Errors
    ///
    /// When the read fails.
    pub fn run_by_idempotency_key(&self, digest: &str) -> Result<Option<RunRecord>> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT run_id, kind, status, started_at, finished_at, duration_ms, rows_in,
                 rows_out, quarantined, duplicates, error, detail FROM runs
                 WHERE json_extract(detail, '$.idempotency_key') = ?1
                 ORDER BY started_at LIMIT 1",
            )
            .map_err(Error::metadata("find run"))?;
        let mut rows = statement
            .query_map(params![digest], row_to_run)
            .map_err(Error::metadata("find run"))?;
        rows.next().transpose().map_err(Error::metadata("find run"))
    }

    /// Returns one run by id.
    ///
    /// # Errors
    ///
    /// When the read fails.
    pub fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        self.lock()
            .query_row(
                "SELECT run_id, kind, status, started_at, finished_at, duration_ms, rows_in,
                 rows_out, quarantined, duplicates, error, detail FROM runs WHERE run_id = ?1",
                params![run_id],
                row_to_run,
            )
            .optional()
            .map_err(Error::metadata("read run"))
    }
}

fn row_to_run(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let time = |index: usize, text: String| {
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|error| {
                rusqlite::Error::FromSqlConversionFailure(
                    index,
                    rusqlite::types::Type::Text,
                    Box::new(error),
                )
            })
    };
    let kind: String = row.get(1)?;
    let status: String = row.get(2)?;
    let finished_at: Option<String> = row.get(4)?;
    let detail: String = row.get(11)?;
    Ok(RunRecord {
        run_id: row.get(0)?,
        kind: if kind == "ingest" {
            RunKind::Ingest
        } else {
            RunKind::Pipeline
        },
        status: RunStatus::parse(&status),
        started_at: time(3, row.get(3)?)?,
        finished_at: finished_at.map(|text| time(4, text)).transpose()?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_lists_runs_newest_first() {
        let store = MetadataStore::open_in_memory().unwrap();
        let mut first = RunRecord::start(RunKind::Ingest);
        first.rows_in = 10;
        first.finish(RunStatus::Succeeded);
        store.save_run(&first).unwrap();
        let mut second = RunRecord::start(RunKind::Pipeline);
        second.started_at = first.started_at + chrono::Duration::seconds(1);
        second.error = Some("boom".into());
        second.finish(RunStatus::Failed);
        store.save_run(&second).unwrap();

        let all = store.runs(None, 10).unwrap();
        assert_eq!(
            all.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
            [second.run_id.as_str(), first.run_id.as_str()]
        );
        assert_eq!(
            store.runs(Some(RunKind::Ingest), 10).unwrap(),
            vec![first.clone()]
        );
        assert_eq!(
            store.run(&second.run_id).unwrap().unwrap().status,
            RunStatus::Failed
        );
        assert!(store.run("nope").unwrap().is_none());
    }

    #[test]
    fn an_operation_is_claimed_by_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let config = MetadataConfig {
            path: dir.path().join("retail.db").display().to_string(),
        };
        let first = MetadataStore::open(&config).unwrap();
        let second = MetadataStore::open(&config).unwrap();
        let held = first.claim("pipeline").unwrap();
        assert!(matches!(
            second.claim("pipeline"),
            Err(Error::Busy {
                operation: "pipeline"
            })
        ));
        let _other_operation = second.claim("ingest").unwrap();
        drop(held);
        second.claim("pipeline").unwrap();
    }

    #[test]
    fn migrations_run_once_on_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = MetadataConfig {
            path: dir.path().join("m/retail.db").display().to_string(),
        };
        let run = RunRecord::start(RunKind::Pipeline);
        MetadataStore::open(&config)
            .unwrap()
            .save_run(&run)
            .unwrap();
        let reopened = MetadataStore::open(&config).unwrap();
        assert_eq!(reopened.runs(None, 5).unwrap().len(), 1);
    }
}
