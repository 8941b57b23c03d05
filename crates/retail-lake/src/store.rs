use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use deltalake::arrow::array::RecordBatch;

use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::arrow::error::ArrowError;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, StructType, Transaction, Version};
#[allow(deprecated)] // the replacement (a hand-written AsyncFileReader) is not worth it yet
use deltalake::parquet::arrow::async_reader::{
    ParquetObjectReader, ParquetRecordBatchStreamBuilder,
};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter as _, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::ObjectStoreExt as _;
use tracing::{debug, instrument, warn};
use url::Url;

use crate::config::LakeConfig;
use crate::encryption::{EncryptedStore, KEYRING, KeyError, Keyring, MasterKey};
use crate::error::{Error, Result};
use crate::schema::TableSpec;

/// A checkpoint is written after every this many commits of an appender, so that opening a
/// table or looking up an application's mark replays a bounded tail of the JSON log however
/// many small commits a stream or an API makes (Delta's own default is every 100).
const CHECKPOINT_EVERY: Version = 10;

/// A data file's path and the smallest and largest value of a column in it, when known.
pub type FileRange = (String, Option<(i64, i64)>);

/// Data files with their partition values (column → value).
pub type AddedFiles = Vec<(String, HashMap<String, Option<String>>)>;

/// What a vacuum removed (or, dry, would remove) from one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Vacuumed {
    /// The table (`layer/name`).
    pub table: String,
    /// Data files removed: no version within the retention references them.
    pub files: usize,
    /// Their size in bytes.
    pub bytes: u64,
    /// Whether nothing was removed, only counted.
    pub dry_run: bool,
}

/// What [`Lake::purge_history`] removed from one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Purged {
    /// The table (`layer/name`).
    pub table: String,
    /// Data files removed: the latest version does not reference them.
    pub files: usize,
    /// Their size in bytes.
    pub bytes: u64,
    /// Log files deleted (commits and checkpoints before the latest version's checkpoint).
    pub log_files: usize,
}

/// Handle to the lake: resolves table locations and runs Delta operations on them.
#[derive(Debug, Clone)]
pub struct Lake {
    root: Url,
    storage_options: HashMap<String, String>,
    batch_rows: usize,
    /// Whether commits on a local root are flushed to disk.
    fsync: bool,
    /// The root's object store sealing and opening every object, when the lake is encrypted.
    encrypted: Option<(Arc<EncryptedStore>, Arc<Keyring>)>,
    /// Tables opened while a [`KeptTables`] scope lasts, shared by every clone.
    kept: Arc<Mutex<OpenedTables>>,
}

/// The most versions of one table a [`KeptTables`] scope keeps (the newest).
const KEPT_VERSIONS: usize = 4;

/// Tables opened during [`KeptTables`] scopes, by name and version.
#[derive(Default)]
struct OpenedTables {
    /// How many scopes are open: the tables are dropped when the last one ends.
    scopes: usize,
    tables: HashMap<&'static str, BTreeMap<Version, DeltaTable>>,
}

impl std::fmt::Debug for OpenedTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedTables")
            .field("scopes", &self.scopes)
            .field("tables", &self.tables.len())
            .finish()
    }
}

/// While it lives, a lake and its clones keep the tables they open: opening one again reads
/// only the commits made since (a listing of its log when there are none) instead of its
/// checkpoint and log tail, and a version opened before is not read again. See
/// [`Lake::keep_opened_tables`].
#[must_use = "the tables are kept only while the scope lives"]
#[derive(Debug)]
pub struct KeptTables {
    kept: Arc<Mutex<OpenedTables>>,
}

impl Drop for KeptTables {
    fn drop(&mut self) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.scopes -= 1;
        if kept.scopes == 0 {
            kept.tables.clear();
        }
    }
}

impl Lake {
    /// Resolves the configured root; a local root directory is created when missing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRoot`] when the root is not a URL and cannot be made a local directory;
    /// [`Error::Encryption`] when a master key is not 64 hex digits.
    pub fn new(config: &LakeConfig) -> Result<Self> {
        let root = resolve_root(&config.root)?;
        if matches!(root.scheme(), "s3" | "s3a") {
            // The deltalake facade registers S3 from a constructor that a linker may drop when
            // nothing else references its object file: register explicitly (idempotent).
            static REGISTER_S3: std::sync::Once = std::sync::Once::new();
            REGISTER_S3.call_once(|| deltalake::aws::register_handlers(None));
        }
        let storage_options: HashMap<String, String> = config
            .storage_options
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let encrypted = if config.encryption.is_enabled() {
            let masters = config
                .encryption
                .master_keys()
                .map(|(setting, key)| MasterKey::parse(&setting, key))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let storage = DeltaTableBuilder::from_url(root.clone())
                .map(|builder| builder.with_storage_options(storage_options.clone()))
                .and_then(|builder| builder.build_storage())
                .map_err(|source| Error::InvalidRoot {
                    root: config.root.clone(),
                    reason: source.to_string(),
                })?;
            let keyring = Arc::new(Keyring::new(storage.object_store(None), masters));
            let store = EncryptedStore::new(storage.root_object_store(None), Arc::clone(&keyring));
            Some((Arc::new(store), keyring))
        } else {
            None
        };
        Ok(Self {
            root,
            storage_options,
            batch_rows: config.batch_rows.max(1024),
            fsync: config.fsync,
            encrypted,
            kept: Arc::default(),
        })
    }

    /// Keeps the tables this lake and its clones open until the returned scope is dropped
    /// (scopes nest; the last one to end drops the tables). Meant for a pipeline run, which
    /// opens each table a few times: a run's ~45 opens would otherwise each read the table's
    /// checkpoint and log tail again. Each open still lists the table's log, so it sees every
    /// commit made since, by this process or another; a table deleted and created again under
    /// the same name while a scope lasts is not noticed, which no run does.
    pub fn keep_opened_tables(&self) -> KeptTables {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .scopes += 1;
        KeptTables {
            kept: Arc::clone(&self.kept),
        }
    }

    /// A kept snapshot of `table`: the newest (`at` `None`), or the newest at or before `at`.
    fn kept(&self, table: &TableSpec, at: Option<Version>) -> Option<DeltaTable> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.scopes == 0 {
            return None;
        }
        let versions = kept.tables.get(table.name)?;
        let found = match at {
            None => versions.last_key_value(),
            Some(at) => versions.range(..=at).next_back(),
        };
        found.map(|(_, delta)| delta.clone())
    }

    /// Keeps a snapshot of `table` while a scope lasts.
    fn keep(&self, table: &TableSpec, delta: &DeltaTable) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(version) = delta.version().filter(|_| kept.scopes > 0) else {
            return;
        };
        let versions = kept.tables.entry(table.name).or_default();
        versions.insert(version, delta.clone());
        while versions.len() > KEPT_VERSIONS {
            versions.pop_first();
        }
    }

    /// The keyring of an encrypted lake.
    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        self.encrypted.as_ref().map(|(_, keyring)| keyring)
    }

    /// On an encrypted lake, opens its keyring (making it on a new lake) and every data key,
    /// so that a wrong or missing master key stops a command before it starts.
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] when the keyring cannot be read or made, or a key does not open.
    pub async fn check_encryption(&self) -> Result<()> {
        if let Some(keyring) = self.keyring() {
            keyring.check().await?;
            return Ok(());
        }
        // Unencrypted: a keyring means the lake was written encrypted and cannot be read.
        let invalid = |reason: String| Error::InvalidRoot {
            root: self.root.to_string(),
            reason,
        };
        let root = DeltaTableBuilder::from_url(self.root.clone())
            .map(|builder| builder.with_storage_options(self.storage_options.clone()))
            .and_then(|builder| builder.build_storage())
            .map_err(|source| invalid(source.to_string()))?
            .object_store(None);
        match root.head(&object_store::path::Path::from(KEYRING)).await {
            Ok(_) => Err(KeyError::NoMasterKey.into()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(invalid(error.to_string())),
        }
    }

    /// Returns the lake's root URL (always ending with `/`).
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// Returns how many rows the lake puts in one streamed batch.
    pub fn batch_rows(&self) -> usize {
        self.batch_rows
    }

    /// Returns the location of a table.
    pub fn table_url(&self, table: &TableSpec) -> Url {
        self.root
            .join(&format!("{}/", table.name))
            .expect("table names are valid relative URL paths")
    }

    fn builder(&self, table: &TableSpec) -> Result<DeltaTableBuilder> {
        let url = self.table_url(table);
        let builder = DeltaTableBuilder::from_url(url.clone())
            .map(|builder| builder.with_storage_options(self.storage_options.clone()))
            .map_err(|source| table_error("open", table, source))?;
        Ok(match &self.encrypted {
            Some((store, _)) => builder.with_storage_backend(Arc::clone(store) as _, url),
            None => builder,
        })
    }

    /// Opens a table at its latest version, or returns `None` when it was never written.
    ///
    /// # Errors
    ///
    /// When the table's log cannot be read.
    pub async fn open(&self, table: &TableSpec) -> Result<Option<DeltaTable>> {
        if let Some(mut delta) = self.kept(table, None) {
            delta
                .update_incremental(None)
                .await
                .map_err(|source| table_error("open", table, source))?;
            self.keep(table, &delta);
            return Ok(Some(delta));
        }
        let mut delta = self
            .builder(table)?
            .build()
            .map_err(|source| table_error("open", table, source))?;
        let exists = delta
            .verify_deltatable_existence()
            .await
            .map_err(|source| table_error("open", table, source))?;
        if !exists {
            return Ok(None);
        }
        match delta.load().await {
            Ok(()) => {
                self.keep(table, &delta);
                Ok(Some(delta))
            }
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(source) => Err(table_error("open", table, source)),
        }
    }

    /// Opens a table at a given version.
    ///
    /// # Errors
    ///
    /// When the table or the version does not exist.
    pub async fn open_at(&self, table: &TableSpec, version: Version) -> Result<DeltaTable> {
        let delta = match self.kept(table, Some(version)) {
            Some(mut delta) => {
                if delta.version() != Some(version) {
                    delta
                        .update_incremental(Some(version))
                        .await
                        .map_err(|source| table_error("open", table, source))?;
                }
                delta
            }
            None => self
                .builder(table)?
                .with_version(version)
                .load()
                .await
                .map_err(|source| table_error("open", table, source))?,
        };
        self.keep(table, &delta);
        Ok(delta)
    }

    /// Returns the latest version of a table, `None` when it does not exist.
    ///
    /// # Errors
    ///
    /// When the table's log cannot be read.
    pub async fn latest_version(&self, table: &TableSpec) -> Result<Option<Version>> {
        Ok(self.open(table).await?.and_then(|delta| delta.version()))
    }

    /// As [`Lake::latest_version`], cheaply when the caller knows a version the table had:
    /// only the log's listing from `known` on is read, not the table's state. Falls back to
    /// opening the table when that version's commit is gone (a cleaned log).
    ///
    /// # Errors
    ///
    /// When the table's log cannot be read.
    pub async fn latest_version_since(
        &self,
        table: &TableSpec,
        known: Option<Version>,
    ) -> Result<Option<Version>> {
        if let Some(known) = known
            && let Ok(store) = self.builder(table)?.build_storage()
            && let Ok(latest) = store.get_latest_version(known).await
        {
            return Ok(Some(latest));
        }
        self.latest_version(table).await
    }

    /// When the latest commit of a table was made (its commit's timestamp), `None` when the
    /// table does not exist or the commit has no timestamp.
    ///
    /// # Errors
    ///
    /// When the table's log cannot be read.
    pub async fn last_commit_time(
        &self,
        table: &TableSpec,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let Some(delta) = self.open(table).await? else {
            return Ok(None);
        };
        let latest = delta
            .history(Some(1))
            .try_next()
            .await
            .map_err(|source| table_error("read the history of", table, source))?;
        Ok(latest
            .and_then(|commit| commit.timestamp)
            .and_then(chrono::DateTime::from_timestamp_millis))
    }

    /// The time of the earliest commit to a table made after `after` (of its first commit when
    /// `None`); `None` when there is none (or no table). Reads the log from the newest commit
    /// back to the first at or before `after`.
    ///
    /// # Errors
    ///
    /// When the table's log cannot be read.
    pub async fn first_commit_after(
        &self,
        table: &TableSpec,
        after: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let Some(delta) = self.open(table).await? else {
            return Ok(None);
        };
        let mut history = delta.history(None);
        let mut first = None;
        while let Some(commit) = history
            .try_next()
            .await
            .map_err(|source| table_error("read the history of", table, source))?
        {
            let Some(at) = commit
                .timestamp
                .and_then(chrono::DateTime::from_timestamp_millis)
            else {
                continue;
            };
            if after.is_some_and(|after| at <= after) {
                break;
            }
            first = Some(at);
        }
        Ok(first)
    }

    /// Opens a table, creating it empty with its schema and partitioning when missing.
    ///
    /// # Errors
    ///
    /// When the table cannot be read or created.
    pub async fn ensure_table(&self, table: &TableSpec) -> Result<DeltaTable> {
        if let Some(delta) = self.open(table).await? {
            return upgrade(delta, table).await;
        }
        let schema: StructType =
            table
                .arrow_schema()
                .as_ref()
                .try_into_kernel()
                .map_err(|source| Error::Arrow {
                    operation: "create",
                    table: table.name.to_owned(),
                    source,
                })?;
        let delta = self
            .builder(table)?
            .build()
            .map_err(|source| table_error("create", table, source))?;
        let created = delta
            .create()
            .with_columns(schema.fields().cloned())
            .with_partition_columns(table.partition_columns.iter().copied())
            .with_table_name(table.name.replace('/', "."))
            // Without retries: a creation that lost the race to another process would
            // otherwise be retried as the next version, a second CREATE TABLE that replaces
            // the winner's table id and metadata.
            .with_commit_properties(CommitProperties::default().with_max_retries(0))
            .await;
        match created {
            Ok(delta) => Ok(delta),
            // Another process created it first (the creation saw the table, or lost the race
            // to write its first version): use theirs.
            Err(source) => match self.open(table).await? {
                Some(delta) => Ok(delta),
                None => Err(table_error("create", table, source)),
            },
        }
    }

    /// Counts the rows of the data files in one partition (`column=value`), from the log's
    /// statistics. A missing table has zero rows.
    ///
    /// # Errors
    ///
    /// When the log cannot be read.
    pub async fn count_partition_rows(
        &self,
        table: &TableSpec,
        column: &str,
        value: &str,
    ) -> Result<u64> {
        let segment = format!("{column}={value}/");
        match self.open(table).await? {
            Some(delta) => rows_where(&delta, table, |path| {
                path.starts_with(&segment) || path.contains(&format!("/{segment}"))
            }),
            None => Ok(0),
        }
    }

    /// Deletes the rows whose `column` is one of `values`, in one commit that also records
    /// `app_versions` (as [`TableAppender::commit`] does). Files holding no such row are left
    /// alone; the others are rewritten without those rows. Returns the new version and the
    /// number of rows deleted.
    ///
    /// `values` are compared as text, as literals of an expression (never spliced into SQL),
    /// so any text is safe.
    ///
    /// # Errors
    ///
    /// When the delete fails (the table is then unchanged).
    pub async fn delete_where_in(
        &self,
        table: &TableSpec,
        column: &str,
        values: &[String],
        app_versions: &[(String, i64)],
    ) -> Result<(Option<Version>, u64)> {
        self.delete_where_any(table, &[(column, values)], app_versions)
            .await
    }

    /// Deletes the rows where any of `conditions` holds (`column` is one of its values), in
    /// one commit that also records `app_versions`; as [`Lake::delete_where_in`]. Conditions
    /// without values are left out; with none left, only the marks are committed (an empty
    /// append carries them).
    ///
    /// # Errors
    ///
    /// When the delete fails (the table is then unchanged).
    #[instrument(skip_all, fields(table = %table))]
    pub async fn delete_where_any(
        &self,
        table: &TableSpec,
        conditions: &[(&str, &[String])],
        app_versions: &[(String, i64)],
    ) -> Result<(Option<Version>, u64)> {
        use deltalake::datafusion::prelude::{Expr, col, lit};
        let delta = self.ensure_table(table).await?;
        let predicate = conditions
            .iter()
            .filter(|(_, values)| !values.is_empty())
            .map(|(column, values)| {
                col(format!("\"{column}\""))
                    .in_list(values.iter().map(|v| lit(v.as_str())).collect(), false)
            })
            .reduce(Expr::or);
        let Some(predicate) = predicate else {
            // Only the markers: an empty append carries them.
            let appender =
                TableAppender::new(*table, delta, SaveMode::Append, self.batch_rows, self.fsync)?;
            return Ok((appender.commit(app_versions).await?, 0));
        };
        let properties = CommitProperties::default().with_application_transactions(
            app_versions
                .iter()
                .map(|(app, version)| Transaction::new(app, *version))
                .collect(),
        );
        let (delta, metrics) = delta
            .delete()
            .with_predicate(predicate)
            .with_commit_properties(properties)
            .await
            .map_err(|source| table_error("delete from", table, source))?;
        let deleted = metrics.num_deleted_rows.unwrap_or(0) as u64;
        if deleted == 0 && !app_versions.is_empty() {
            // A delete that matches nothing commits nothing: the marks still must land.
            let appender =
                TableAppender::new(*table, delta, SaveMode::Append, self.batch_rows, self.fsync)?;
            return Ok((appender.commit(app_versions).await?, 0));
        }
        Ok((delta.version(), deleted))
    }

    /// Rewrites an unpartitioned `table` whole, keeping the rows `keep` selects, in one
    /// overwrite commit that records nothing of what was dropped (unlike a delete, whose
    /// predicate the log keeps). The table's progress marks stay as they were. Returns the new
    /// version (`None`: nothing dropped, nothing written) and the rows dropped.
    ///
    /// # Errors
    ///
    /// When the table is partitioned, cannot be read, or `keep` or the write fails (the
    /// table is then unchanged).
    pub async fn rewrite_keeping(
        &self,
        table: &TableSpec,
        keep: impl Fn(
            &RecordBatch,
        ) -> std::result::Result<deltalake::arrow::array::BooleanArray, ArrowError>,
    ) -> Result<(Option<Version>, u64)> {
        if !table.partition_columns.is_empty() {
            return Err(table_error(
                "rewrite",
                table,
                DeltaTableError::Generic("only unpartitioned tables are rewritten whole".into()),
            ));
        }
        if self.open(table).await?.is_none() {
            return Ok((None, 0));
        }
        let batches = self.read_all(table).await?;
        let mut kept = Vec::with_capacity(batches.len());
        let mut dropped = 0u64;
        for batch in batches {
            let mask = keep(&batch).map_err(|error| {
                table_error(
                    "rewrite",
                    table,
                    DeltaTableError::Generic(error.to_string()),
                )
            })?;
            let filtered =
                deltalake::arrow::compute::filter_record_batch(&batch, &mask).map_err(|error| {
                    table_error(
                        "rewrite",
                        table,
                        DeltaTableError::Generic(error.to_string()),
                    )
                })?;
            dropped += (batch.num_rows() - filtered.num_rows()) as u64;
            kept.push(filtered);
        }
        if dropped == 0 {
            return Ok((None, 0));
        }
        let mut writer = self.overwriter(table).await?;
        for batch in kept {
            if batch.num_rows() > 0 {
                writer.write(batch).await?;
            }
        }
        Ok((writer.commit(&[]).await?, dropped))
    }

    /// Makes `table`'s past unreadable: removes every data file the latest version does not
    /// reference (whatever its age), writes a checkpoint of the latest version and deletes
    /// every log file before it, so no earlier version can be read back (time travel ends at
    /// the latest version). For the GDPR erasure; readers holding an older snapshot fail.
    /// Returns the data files and bytes removed and the log files deleted.
    ///
    /// # Errors
    ///
    /// When the table cannot be read or a file cannot be removed.
    pub async fn purge_history(&self, table: &TableSpec) -> Result<Purged> {
        let vacuumed = self
            .vacuum(table, std::time::Duration::ZERO, true, false)
            .await?;
        let mut purged = Purged {
            table: table.name.to_owned(),
            files: vacuumed.files,
            bytes: vacuumed.bytes,
            log_files: 0,
        };
        let Some(delta) = self.open(table).await? else {
            return Ok(purged);
        };
        let Some(version) = delta.version() else {
            return Ok(purged);
        };
        deltalake::checkpoints::create_checkpoint(&delta, None)
            .await
            .map_err(|source| table_error("checkpoint", table, source))?;
        // Every log file before the checkpoint, whatever its age.
        let cutoff = chrono::Utc::now().timestamp_millis() + 60_000;
        purged.log_files = deltalake::checkpoints::cleanup_expired_logs_for(
            version,
            delta.log_store().as_ref(),
            cutoff,
            None,
        )
        .await
        .map_err(|source| table_error("clean the log of", table, source))?;
        debug!(?purged, "history purged");
        Ok(purged)
    }

    /// Removes the data files of `table` that no version within `retention` references: files
    /// removed from the table longer ago than that, and (with `orphans`) files no commit ever
    /// referenced that are older than that (left by a write that failed before its commit).
    /// Writes nothing to the log, so table versions and progress marks stay as they are.
    /// `dry_run` only counts.
    ///
    /// # Errors
    ///
    /// When the table cannot be read or a file cannot be removed (files removed before stay
    /// removed: each was unreferenced).
    pub async fn vacuum(
        &self,
        table: &TableSpec,
        retention: std::time::Duration,
        orphans: bool,
        dry_run: bool,
    ) -> Result<Vacuumed> {
        let mut outcome = Vacuumed {
            table: table.name.to_owned(),
            files: 0,
            bytes: 0,
            dry_run,
        };
        let Some(delta) = self.open(table).await? else {
            return Ok(outcome);
        };
        let store = delta.log_store().object_store(None);
        let retention = chrono::Duration::from_std(retention).map_err(|error| {
            table_error("vacuum", table, DeltaTableError::Generic(error.to_string()))
        })?;
        // A dry run of delta's vacuum plans what to remove; the files are removed here so that
        // no VACUUM commit bumps the table's version.
        let (_, planned) = delta
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_mode(if orphans {
                deltalake::operations::vacuum::VacuumMode::Full
            } else {
                deltalake::operations::vacuum::VacuumMode::Lite
            })
            .with_dry_run(true)
            .await
            .map_err(|source| table_error("vacuum", table, source))?;
        for file in planned.files_deleted {
            let path = deltalake::Path::from(file.as_str());
            let size = match store.head(&path).await {
                Ok(meta) => meta.size,
                Err(deltalake::ObjectStoreError::NotFound { .. }) => continue,
                Err(error) => {
                    return Err(table_error("vacuum", table, DeltaTableError::from(error)));
                }
            };
            if !dry_run {
                match store.delete(&path).await {
                    Ok(()) | Err(deltalake::ObjectStoreError::NotFound { .. }) => {}
                    Err(error) => {
                        return Err(table_error("vacuum", table, DeltaTableError::from(error)));
                    }
                }
            }
            outcome.files += 1;
            outcome.bytes += size;
        }
        debug!(?outcome, "vacuumed");
        Ok(outcome)
    }

    /// [`Lake::vacuum`] of every table of the lake, one after the other.
    ///
    /// # Errors
    ///
    /// As [`Lake::vacuum`]; tables vacuumed before stay vacuumed.
    pub async fn vacuum_all(
        &self,
        retention: std::time::Duration,
        orphans: bool,
        dry_run: bool,
    ) -> Result<Vec<Vacuumed>> {
        // Each table's plan is a read of its log, mostly waiting: all at once, in order.
        futures::future::try_join_all(
            crate::schema::ALL_TABLES
                .iter()
                .map(|table| self.vacuum(table, retention, orphans, dry_run)),
        )
        .await
    }

    /// Starts a streaming write that appends to a table when committed.
    ///
    /// # Errors
    ///
    /// When the table cannot be opened or created.
    pub async fn appender(&self, table: &TableSpec) -> Result<TableAppender> {
        TableAppender::new(
            *table,
            self.ensure_table(table).await?,
            SaveMode::Append,
            self.batch_rows * 2,
            self.fsync,
        )
    }

    /// Starts a streaming write that replaces a table's content when committed.
    ///
    /// # Errors
    ///
    /// When the table cannot be opened or created.
    pub async fn overwriter(&self, table: &TableSpec) -> Result<TableAppender> {
        TableAppender::new(
            *table,
            self.ensure_table(table).await?,
            SaveMode::Overwrite,
            self.batch_rows * 2,
            self.fsync,
        )
    }

    /// Returns the last version an application recorded on a table (`txn` action), if any.
    ///
    /// # Errors
    ///
    /// When the table's log cannot be read.
    pub async fn app_version(&self, table: &TableSpec, app_id: &str) -> Result<Option<i64>> {
        let Some(delta) = self.open(table).await? else {
            return Ok(None);
        };
        self.app_version_in(&delta, table, app_id).await
    }

    /// Returns the last version an application recorded in an already opened table.
    ///
    /// # Errors
    ///
    /// When the table's log cannot be read.
    pub async fn app_version_in(
        &self,
        delta: &DeltaTable,
        table: &TableSpec,
        app_id: &str,
    ) -> Result<Option<i64>> {
        let snapshot = delta
            .snapshot()
            .map_err(|source| table_error("read", table, source))?;
        snapshot
            .transaction_version(delta.log_store().as_ref(), app_id)
            .await
            .map_err(|source| table_error("read", table, source))
    }

    /// Streams a whole table (partition columns included), optionally only some columns.
    ///
    /// # Errors
    ///
    /// [`Error::MissingTable`] when the table was never written, or when it cannot be scanned.
    pub async fn scan(
        &self,
        table: &TableSpec,
        columns: Option<&[&str]>,
    ) -> Result<BoxStream<'static, deltalake::datafusion::error::Result<RecordBatch>>> {
        let delta = self.open(table).await?.ok_or_else(|| Error::MissingTable {
            table: table.name.to_owned(),
        })?;
        scan_delta(delta, table, columns).await
    }

    /// As [`Lake::scan`], at a given version of the table: readers see one consistent state
    /// even while writers commit.
    ///
    /// # Errors
    ///
    /// When the table or the version does not exist, or it cannot be scanned.
    pub async fn scan_version(
        &self,
        table: &TableSpec,
        version: Version,
    ) -> Result<BoxStream<'static, deltalake::datafusion::error::Result<RecordBatch>>> {
        let delta = self.open_at(table, version).await?;
        scan_delta(delta, table, None).await
    }

    /// Streams the rows of a table whose partition `column` is one of `values` (partition
    /// pruning: other partitions' files are not opened), optionally only some columns.
    ///
    /// # Errors
    ///
    /// When the table does not exist or cannot be scanned.
    pub async fn scan_partitions(
        &self,
        table: &TableSpec,
        column: &str,
        values: &[String],
        columns: Option<&[&str]>,
    ) -> Result<BoxStream<'static, deltalake::datafusion::error::Result<RecordBatch>>> {
        use deltalake::datafusion::prelude::{col, lit};
        let delta = self.open(table).await?.ok_or_else(|| Error::MissingTable {
            table: table.name.to_owned(),
        })?;
        let config = SessionConfig::new().set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        );
        let session = SessionContext::new_with_config(config);
        session.runtime_env().register_object_store(
            &self.table_url(table),
            delta.log_store().root_object_store(None),
        );
        let datafusion_error = |source: deltalake::datafusion::error::DataFusionError| {
            table_error("scan", table, DeltaTableError::from(source))
        };
        let provider = delta.table_provider().await.map_err(datafusion_error)?;
        let mut frame = session
            .read_table(provider)
            .map_err(datafusion_error)?
            .filter(col(column).in_list(values.iter().map(|v| lit(v.clone())).collect(), false))
            .map_err(datafusion_error)?;
        if let Some(columns) = columns {
            frame = frame.select_columns(columns).map_err(datafusion_error)?;
        }
        let stream = frame.execute_stream().await.map_err(datafusion_error)?;
        let spec = *table;
        Ok(stream
            .map(move |batch| {
                batch.and_then(|batch| {
                    conform(batch, &spec)
                        .map_err(deltalake::datafusion::error::DataFusionError::from)
                })
            })
            .boxed())
    }

    /// The smallest and largest value of an integer column in each data file of a loaded
    /// table, from the log's statistics (`None` for a file without them).
    ///
    /// # Errors
    ///
    /// When the table's state is not loaded.
    pub fn file_ranges(
        &self,
        delta: &DeltaTable,
        table: &TableSpec,
        column: &str,
    ) -> Result<Vec<FileRange>> {
        let snapshot = delta
            .snapshot()
            .map_err(|source| table_error("list", table, source))?;
        Ok(snapshot
            .log_data()
            .into_iter()
            .map(|file| {
                let range = file.stats().and_then(|stats| {
                    let stats: serde_json::Value = serde_json::from_str(&stats).ok()?;
                    let min = stats["minValues"][column].as_i64()?;
                    let max = stats["maxValues"][column].as_i64()?;
                    Some((min, max))
                });
                (file.object_store_path().to_string(), range)
            })
            .collect())
    }

    /// Reads a whole table into memory. For small tables (dimensions, aggregates) and tests.
    ///
    /// # Errors
    ///
    /// As [`Lake::scan`], plus any error while reading.
    pub async fn read_all(&self, table: &TableSpec) -> Result<Vec<RecordBatch>> {
        let stream = self.scan(table, None).await?;
        stream.try_collect().await.map_err(|source| Error::Table {
            operation: "read",
            table: table.name.to_owned(),
            source: Box::new(source.into()),
        })
    }

    /// Counts a table's rows from the Delta log's file statistics, without reading data.
    /// A missing table has zero rows.
    ///
    /// # Errors
    ///
    /// When the log cannot be read.
    pub async fn count_rows(&self, table: &TableSpec) -> Result<u64> {
        match self.open(table).await? {
            Some(delta) => rows_where(&delta, table, |_| true),
            None => Ok(0),
        }
    }

    /// Counts the rows of a table at one of its versions, from the Delta log's statistics.
    ///
    /// # Errors
    ///
    /// When the version does not exist or its log cannot be read.
    pub async fn count_rows_at(&self, table: &TableSpec, version: Version) -> Result<u64> {
        let delta = self.open_at(table, version).await?;
        rows_where(&delta, table, |_| true)
    }

    /// Sums the rows of some data files of a table, from the Delta log's statistics.
    ///
    /// # Errors
    ///
    /// When the table's state is not loaded.
    pub fn rows_in_files(
        &self,
        delta: &DeltaTable,
        table: &TableSpec,
        files: &[String],
    ) -> Result<u64> {
        let wanted: HashSet<&str> = files.iter().map(String::as_str).collect();
        rows_where(delta, table, |path| wanted.contains(path))
    }

    /// Lists every data file of a loaded table.
    ///
    /// # Errors
    ///
    /// When the table's state is not loaded.
    pub fn data_files(&self, delta: &DeltaTable, table: &TableSpec) -> Result<Vec<String>> {
        Ok(active_files(delta, table)?
            .into_iter()
            .map(|(path, _)| path)
            .collect())
    }

    /// Lists the data files of a loaded table whose partition `column` has one of `values`.
    ///
    /// # Errors
    ///
    /// When the table's state is not loaded.
    pub fn files_in_partitions(
        &self,
        delta: &DeltaTable,
        table: &TableSpec,
        column: &str,
        values: &HashSet<String>,
    ) -> Result<Vec<String>> {
        let snapshot = delta
            .snapshot()
            .map_err(|source| table_error("list", table, source))?;
        Ok(snapshot
            .log_data()
            .into_iter()
            .filter(|file| {
                file.partition_values_map()
                    .get(column)
                    .and_then(Option::as_deref)
                    .is_some_and(|value| values.contains(value))
            })
            .map(|file| file.object_store_path().to_string())
            .collect())
    }

    /// The values the partition `column` takes in a table's data files (none for a table
    /// never written): read from the log, not the data.
    ///
    /// # Errors
    ///
    /// When the table's log cannot be read.
    pub async fn partition_values(
        &self,
        table: &TableSpec,
        column: &str,
    ) -> Result<std::collections::BTreeSet<String>> {
        let Some(delta) = self.open(table).await? else {
            return Ok(std::collections::BTreeSet::new());
        };
        let snapshot = delta
            .snapshot()
            .map_err(|source| table_error("list", table, source))?;
        Ok(snapshot
            .log_data()
            .into_iter()
            .filter_map(|file| file.partition_values_map().get(column).cloned().flatten())
            .collect())
    }

    /// What changed in a table's data files since version `after`: the files added and the
    /// files removed, each with its partition values.
    ///
    /// # Errors
    ///
    /// When either version of the log cannot be read.
    pub async fn file_changes(
        &self,
        table: &TableSpec,
        after: Version,
    ) -> Result<(AddedFiles, AddedFiles)> {
        let latest = self.open(table).await?.ok_or_else(|| Error::MissingTable {
            table: table.name.to_owned(),
        })?;
        let files =
            |delta: &DeltaTable| -> Result<HashMap<String, HashMap<String, Option<String>>>> {
                let snapshot = delta
                    .snapshot()
                    .map_err(|source| table_error("list", table, source))?;
                Ok(snapshot
                    .log_data()
                    .into_iter()
                    .map(|file| {
                        (
                            file.object_store_path().to_string(),
                            file.partition_values_map(),
                        )
                    })
                    .collect())
            };
        let before = files(&self.open_at(table, after).await?)?;
        let now = files(&latest)?;
        let added = now
            .iter()
            .filter(|(path, _)| !before.contains_key(*path))
            .map(|(path, values)| (path.clone(), values.clone()))
            .collect();
        let removed = before
            .into_iter()
            .filter(|(path, _)| !now.contains_key(path))
            .collect();
        Ok((added, removed))
    }

    /// Lists the data files a table gained after `after` (all files when `None`), oldest first,
    /// together with the version they were read at. Meant for append-only tables (bronze).
    ///
    /// # Errors
    ///
    /// When either version of the log cannot be read.
    pub async fn files_added_after(
        &self,
        table: &TableSpec,
        after: Option<Version>,
    ) -> Result<Option<(Version, Vec<String>)>> {
        self.files_added_between(table, after, None).await
    }

    /// As [`Lake::files_added_after`], up to version `upto` (`None`: the latest) instead of
    /// the latest.
    ///
    /// # Errors
    ///
    /// When either version of the log cannot be read.
    pub async fn files_added_between(
        &self,
        table: &TableSpec,
        after: Option<Version>,
        upto: Option<Version>,
    ) -> Result<Option<(Version, Vec<String>)>> {
        let latest = match upto {
            None => self.open(table).await?,
            Some(version) => Some(self.open_at(table, version).await?),
        };
        let Some(latest) = latest else {
            return Ok(None);
        };
        let version = latest.version().unwrap_or_default();
        let seen: HashSet<String> = match after {
            Some(after) if after >= version => return Ok(Some((version, Vec::new()))),
            Some(after) => active_files(&self.open_at(table, after).await?, table)?
                .into_iter()
                .map(|(path, _)| path)
                .collect(),
            None => HashSet::new(),
        };
        let mut added: Vec<(String, i64)> = active_files(&latest, table)?
            .into_iter()
            .filter(|(path, _)| !seen.contains(path))
            .collect();
        added.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        Ok(Some((
            version,
            added.into_iter().map(|(path, _)| path).collect(),
        )))
    }

    /// Streams one data file of an unpartitioned table.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or is not Parquet.
    pub async fn read_file(
        &self,
        table: &TableSpec,
        delta: &DeltaTable,
        file: &str,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        self.read_file_columns(table, delta, file, None).await
    }

    /// As [`Lake::read_file`], only some of the file's columns (partition columns are not in
    /// the files of a partitioned table).
    ///
    /// # Errors
    ///
    /// When the file cannot be opened, is not Parquet, or lacks a column.
    pub async fn read_file_columns(
        &self,
        table: &TableSpec,
        delta: &DeltaTable,
        file: &str,
        columns: Option<&[&str]>,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let parquet_error = |source| Error::Parquet {
            table: table.name.to_owned(),
            file: file.to_owned(),
            source,
        };
        let path = deltalake::Path::parse(file).map_err(|error| Error::Parquet {
            table: table.name.to_owned(),
            file: file.to_owned(),
            source: deltalake::parquet::errors::ParquetError::External(Box::new(error)),
        })?;
        #[allow(deprecated)]
        let reader = ParquetObjectReader::new(delta.object_store(), path);
        let mut builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(parquet_error)?
            .with_batch_size(self.batch_rows);
        if let Some(columns) = columns {
            let mask = deltalake::parquet::arrow::ProjectionMask::columns(
                builder.parquet_schema(),
                columns.iter().copied(),
            );
            builder = builder.with_projection(mask);
        }
        let stream = builder.build().map_err(parquet_error)?;
        let spec = *table;
        let file = file.to_owned();
        Ok(stream
            .map(move |batch| {
                let batch = batch.map_err(|source| Error::Parquet {
                    table: spec.name.to_owned(),
                    file: file.clone(),
                    source,
                })?;
                conform(batch, &spec).map_err(|source| Error::Arrow {
                    operation: "read",
                    table: spec.name.to_owned(),
                    source,
                })
            })
            .boxed())
    }
}

/// Adds the nullable columns a table's spec gained since the table was created (they are
/// always declared last), so that lakes written by an earlier release keep working. A missing
/// required column is an error: that would need a migration of the data.
async fn upgrade(delta: DeltaTable, table: &TableSpec) -> Result<DeltaTable> {
    let present: HashSet<String> = delta
        .snapshot()
        .map_err(|source| table_error("open", table, source))?
        .schema()
        .fields()
        .map(|field| field.name().to_owned())
        .collect();
    let schema = table.arrow_schema();
    let missing: Vec<&Field> = schema
        .fields()
        .iter()
        .filter(|field| !present.contains(field.name()))
        .map(AsRef::as_ref)
        .collect();
    if missing.is_empty() {
        return Ok(delta);
    }
    if let Some(required) = missing.iter().find(|field| !field.is_nullable()) {
        return Err(table_error(
            "upgrade",
            table,
            DeltaTableError::Generic(format!(
                "the table lacks the required column {}; it was written by an incompatible release",
                required.name()
            )),
        ));
    }
    let fields: StructType = (&Schema::new(missing.into_iter().cloned().collect::<Vec<_>>()))
        .try_into_kernel()
        .map_err(|source| Error::Arrow {
            operation: "upgrade",
            table: table.name.to_owned(),
            source,
        })?;
    debug!(table = %table, "adding the table's new nullable columns");
    delta
        .add_columns()
        .with_fields(fields.fields().cloned().collect::<Vec<_>>())
        .await
        .map_err(|source| table_error("upgrade", table, source))
}

/// Sums, from the log's statistics, the rows of the data files whose path passes `keep`.
fn rows_where(delta: &DeltaTable, table: &TableSpec, keep: impl Fn(&str) -> bool) -> Result<u64> {
    let snapshot = delta
        .snapshot()
        .map_err(|source| table_error("count", table, source))?;
    Ok(snapshot
        .log_data()
        .into_iter()
        .filter(|file| keep(file.object_store_path().as_ref()))
        .map(|file| file.num_records().unwrap_or(0) as u64)
        .sum())
}

fn active_files(delta: &DeltaTable, table: &TableSpec) -> Result<Vec<(String, i64)>> {
    let snapshot = delta
        .snapshot()
        .map_err(|source| table_error("list", table, source))?;
    Ok(snapshot
        .log_data()
        .into_iter()
        .map(|file| {
            (
                file.object_store_path().to_string(),
                file.modification_time(),
            )
        })
        .collect())
}

/// Casts the columns of a batch read back from a table to the types of the table's schema
/// (readers may return equivalent encodings, such as string views for strings).
fn conform(batch: RecordBatch, table: &TableSpec) -> Result<RecordBatch, ArrowError> {
    let schema = table.arrow_schema();
    let mut changed = false;
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match schema.field_with_name(field.name()) {
            Ok(expected) if expected.data_type() != column.data_type() => {
                changed = true;
                columns.push(cast(column, expected.data_type())?);
                fields.push(Field::new(
                    field.name(),
                    expected.data_type().clone(),
                    field.is_nullable(),
                ));
            }
            _ => {
                columns.push(Arc::clone(column));
                fields.push(field.as_ref().clone());
            }
        }
    }
    if !changed {
        return Ok(batch);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

fn table_error(operation: &'static str, table: &TableSpec, source: DeltaTableError) -> Error {
    Error::Table {
        operation,
        table: table.name.to_owned(),
        source: Box::new(source),
    }
}

fn resolve_root(root: &str) -> Result<Url> {
    let invalid = |reason: String| Error::InvalidRoot {
        root: root.to_owned(),
        reason,
    };
    let url = if root.contains("://") {
        Url::parse(root).map_err(|error| invalid(error.to_string()))?
    } else {
        let path = Path::new(root);
        std::fs::create_dir_all(path).map_err(|error| invalid(error.to_string()))?;
        let absolute = std::fs::canonicalize(path).map_err(|error| invalid(error.to_string()))?;
        Url::from_directory_path(&absolute)
            .map_err(|()| invalid("not an absolute directory path".to_owned()))?
    };
    if url.scheme() == "file" {
        let path = url
            .to_file_path()
            .map_err(|()| invalid("not a local path".to_owned()))?;
        std::fs::create_dir_all(&path).map_err(|error| invalid(error.to_string()))?;
    }
    let mut url = url;
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    Ok(url)
}

/// A streaming write into one table: batches are encoded to Parquet files as they arrive and
/// become visible only at [`TableAppender::commit`], atomically, together with the
/// application-transaction markers given there. Dropping it uncommitted leaves the table as it
/// was (the written files stay unreferenced until a vacuum).
pub struct TableAppender {
    table: TableSpec,
    delta: DeltaTable,
    writer: RecordBatchWriter,
    mode: SaveMode,
    schema: SchemaRef,
    rows: u64,
    /// Files already closed by [`TableAppender::cut`].
    adds: Vec<deltalake::kernel::Add>,
    /// Data files the commit removes (an append that replaces some files).
    removes: HashSet<String>,
    /// Whether the commit is flushed to disk (a local table with `lake.fsync`).
    fsync: bool,
}

impl std::fmt::Debug for TableAppender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableAppender")
            .field("table", &self.table.name)
            .field("mode", &self.mode)
            .field("rows", &self.rows)
            .finish()
    }
}

impl TableAppender {
    fn new(
        table: TableSpec,
        delta: DeltaTable,
        mode: SaveMode,
        row_group_rows: usize,
        fsync: bool,
    ) -> Result<Self> {
        // Bounded row groups: a partitioned table keeps one open row group per partition, and
        // closing them at a fixed size keeps memory flat however much is written.
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(row_group_rows))
            .set_created_by(format!(
                "retail-data-platform {}",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        let writer = RecordBatchWriter::for_table(&delta)
            .map_err(|source| table_error("write", &table, source))?
            .with_writer_properties(properties);
        Ok(Self {
            table,
            delta,
            writer,
            mode,
            schema: table.arrow_schema(),
            rows: 0,
            adds: Vec::new(),
            removes: HashSet::new(),
            fsync,
        })
    }

    /// Closes the files written so far, so that later rows go to new files: a caller can
    /// keep slices of a table (months of facts) in files of their own.
    ///
    /// # Errors
    ///
    /// When the files cannot be finalised.
    pub async fn cut(&mut self) -> Result<()> {
        let adds = self
            .writer
            .flush()
            .await
            .map_err(|source| table_error("write", &self.table, source))?;
        self.adds.extend(adds);
        Ok(())
    }

    /// Takes in what `other`, a writer of the same table, wrote (its files, rows and files to
    /// remove), so that this writer's commit holds both: two workers can encode parts of one
    /// commit at once.
    ///
    /// # Errors
    ///
    /// When `other` writes another table, or its last file cannot be written.
    pub async fn join(&mut self, mut other: TableAppender) -> Result<()> {
        if other.table.name != self.table.name {
            return Err(table_error(
                "write",
                &self.table,
                DeltaTableError::Generic(format!(
                    "cannot join a writer of {} to one of {}",
                    other.table.name, self.table.name
                )),
            ));
        }
        other.cut().await?;
        self.adds.append(&mut other.adds);
        self.removes.extend(other.removes);
        self.rows += other.rows;
        Ok(())
    }

    /// Makes the commit of an append also remove these data files (paths as the log lists
    /// them): their rows are replaced by what this appender writes, atomically.
    pub fn remove_files(&mut self, files: impl IntoIterator<Item = String>) {
        self.removes.extend(files);
    }

    /// Returns the schema batches must have.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Returns the rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Returns the version at which the table will hold exactly the rows this appender writes,
    /// if there is one: the version after the snapshot the write is built on, when that
    /// snapshot holds no data file (a new table) or the write replaces them all. A commit
    /// that returns another version came after someone else's, whose rows it then holds too.
    ///
    /// # Errors
    ///
    /// When the table's snapshot cannot be read.
    pub fn holds_only_this_write_at(&self) -> Result<Option<Version>> {
        let snapshot = self
            .delta
            .snapshot()
            .map_err(|source| table_error("read", &self.table, source))?;
        let empty = snapshot.log_data().into_iter().next().is_none();
        Ok(
            (self.removes.is_empty() && (empty || self.mode == SaveMode::Overwrite))
                .then(|| snapshot.version() + 1),
        )
    }

    /// Returns the last version an application recorded in the table as this appender sees it:
    /// the snapshot its commit is built on. A marker checked here and committed by
    /// [`TableAppender::commit`] is one atomic step: a concurrent commit of the same marker
    /// makes this one fail with a conflict ([`Error::is_commit_conflict`]).
    ///
    /// # Errors
    ///
    /// When the table's log cannot be read.
    pub async fn app_version(&mut self, app_id: &str) -> Result<Option<i64>> {
        let snapshot = self
            .delta
            .snapshot()
            .map_err(|source| table_error("read", &self.table, source))?;
        snapshot
            .transaction_version(self.delta.log_store().as_ref(), app_id)
            .await
            .map_err(|source| table_error("read", &self.table, source))
    }

    /// Encodes one batch (not yet visible to readers).
    ///
    /// # Errors
    ///
    /// When the batch does not fit the table's schema or cannot be written.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        self.writer
            .write(batch)
            .await
            .map_err(|source| table_error("write", &self.table, source))
    }

    /// Commits what was written as one new table version, with `app_versions` recorded as
    /// application transactions (`txn` actions) in the same commit. An append of nothing with
    /// no markers commits nothing and returns `None`.
    ///
    /// # Errors
    ///
    /// When the files cannot be finalised or the commit fails; the table is then unchanged.
    #[instrument(skip_all, fields(table = %self.table, rows = self.rows))]
    pub async fn commit(mut self, app_versions: &[(String, i64)]) -> Result<Option<Version>> {
        let table = self.table;
        let mut adds = std::mem::take(&mut self.adds);
        adds.extend(
            self.writer
                .flush()
                .await
                .map_err(|source| table_error("write", &table, source))?,
        );
        if adds.is_empty()
            && app_versions.is_empty()
            && self.removes.is_empty()
            && self.mode == SaveMode::Append
        {
            return Ok(None);
        }
        let snapshot = self
            .delta
            .snapshot()
            .map_err(|source| table_error("commit", &table, source))?;
        let mut actions: Vec<Action> = Vec::with_capacity(adds.len());
        if self.mode == SaveMode::Overwrite {
            actions.extend(
                snapshot
                    .log_data()
                    .into_iter()
                    .map(|file| Action::Remove(file.remove_action(true))),
            );
        } else if !self.removes.is_empty() {
            let mut found = 0;
            for file in snapshot.log_data() {
                if self.removes.contains(file.object_store_path().as_ref()) {
                    found += 1;
                    actions.push(Action::Remove(file.remove_action(true)));
                }
            }
            if found != self.removes.len() {
                return Err(table_error(
                    "commit",
                    &table,
                    DeltaTableError::Generic(format!(
                        "{} of the {} files to replace are no longer in the table",
                        self.removes.len() - found,
                        self.removes.len()
                    )),
                ));
            }
        }
        actions.extend(adds.into_iter().map(Action::Add));
        let properties = CommitProperties::default().with_application_transactions(
            app_versions
                .iter()
                .map(|(app, version)| Transaction::new(app, *version))
                .collect(),
        );
        let partition_by = (!table.partition_columns.is_empty()).then(|| {
            table
                .partition_columns
                .iter()
                .map(|c| (*c).to_owned())
                .collect()
        });
        let operation = DeltaOperation::Write {
            mode: self.mode,
            partition_by,
            predicate: None,
        };
        // The data files reach the disk before the log entry that references them.
        let local = self
            .delta
            .table_url()
            .to_file_path()
            .ok()
            .filter(|_| self.fsync);
        if let Some(root) = &local {
            let files: Vec<std::path::PathBuf> = actions
                .iter()
                .filter_map(|action| match action {
                    Action::Add(add) => Some(
                        root.join(
                            deltalake::Path::from_url_path(&add.path)
                                .map_or_else(|_| add.path.clone(), |path| path.to_string()),
                        ),
                    ),
                    _ => None,
                })
                .collect();
            sync_to_disk(files)
                .await
                .map_err(|error| table_error("flush", &table, DeltaTableError::from(error)))?;
        }
        // The commit without deltalake's post-commit step, which replays the new entry (with
        // the statistics of every file it adds) into a snapshot nothing here reads, and looks
        // for a checkpoint or expired logs to write or remove: this appender writes its own
        // checkpoints (below) and `Lake::vacuum` removes expired logs.
        let commit_error = |source| table_error("commit", &table, source);
        let version = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), self.delta.log_store(), operation)
            .into_prepared_commit_future()
            .await
            .map_err(commit_error)?
            .await
            .map_err(commit_error)?
            .version;
        if let Some(root) = &local {
            let entry = root.join("_delta_log").join(format!("{version:020}.json"));
            sync_to_disk(vec![entry])
                .await
                .map_err(|error| table_error("flush", &table, DeltaTableError::from(error)))?;
        }
        debug!(version, "table committed");
        if version > 0 && version % CHECKPOINT_EVERY == 0 {
            self.checkpoint(version).await;
        }
        Ok(Some(version))
    }

    /// Writes a checkpoint of the table at `version`, which this appender just committed.
    /// Readers then replay at most [`CHECKPOINT_EVERY`] JSON commits after the checkpoint.
    /// A failure is logged, not returned: the commit stands and the next one tries again.
    async fn checkpoint(&mut self, version: Version) {
        let written = async {
            self.delta.update_incremental(Some(version)).await?;
            deltalake::checkpoints::create_checkpoint(&self.delta, None).await
        }
        .await;
        match written {
            Ok(()) => debug!(version, "checkpoint written"),
            Err(error) => warn!(table = %self.table, version, %error, "checkpoint failed"),
        }
    }
}

/// At most this many threads flush one commit's files at once.
const SYNC_THREADS: usize = 16;

/// Flushes `files`, then the directories that hold them, to disk (on the blocking pool).
async fn sync_to_disk(files: Vec<std::path::PathBuf>) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || {
        let directories: Vec<std::path::PathBuf> = files
            .iter()
            .filter_map(|file| file.parent().map(Path::to_path_buf))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        sync_all(&files)?;
        sync_all(&directories)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Flushes `paths` to disk on up to [`SYNC_THREADS`] threads: the filesystem's journal
/// commits flushes that wait together as one, so a commit of 103 silver files (each in a
/// directory of its own) waits about half as long as flushing them one after another.
fn sync_all(paths: &[std::path::PathBuf]) -> std::io::Result<()> {
    let sync = |chunk: &[std::path::PathBuf]| -> std::io::Result<()> {
        chunk
            .iter()
            .try_for_each(|path| std::fs::File::open(path)?.sync_all())
    };
    if paths.len() <= 1 {
        return sync(paths);
    }
    let per_thread = paths.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|scope| {
        let threads: Vec<_> = paths
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || sync(chunk)))
            .collect();
        threads.into_iter().try_for_each(|thread| {
            thread
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a flushing thread panicked")))
        })
    })
}

/// Streams a loaded table's rows, conformed to the table's declared schema.
async fn scan_delta(
    delta: DeltaTable,
    table: &TableSpec,
    columns: Option<&[&str]>,
) -> Result<BoxStream<'static, deltalake::datafusion::error::Result<RecordBatch>>> {
    // Plain strings, as the tables are declared: string views would be cast back anyway.
    let config = SessionConfig::new().set_bool(
        "datafusion.execution.parquet.schema_force_view_types",
        false,
    );
    let session = SessionContext::new_with_config(config);
    // The table's files through its own store (an encrypted lake's opens them), not the
    // session's default one for their scheme.
    session.runtime_env().register_object_store(
        delta.log_store().config().location(),
        delta.log_store().root_object_store(None),
    );
    let mut load = delta
        .scan_table()
        .with_session_state(Arc::new(session.state()));
    if let Some(columns) = columns {
        load = load.with_columns(columns.iter().copied());
    }
    let (_, stream) = load
        .await
        .map_err(|source| table_error("scan", table, source))?;
    let spec = *table;
    Ok(stream
        .map(move |batch| {
            batch.and_then(|batch| {
                conform(batch, &spec).map_err(deltalake::datafusion::error::DataFusionError::from)
            })
        })
        .boxed())
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::array::{ArrayRef, AsArray as _, StringArray};
    use deltalake::arrow::datatypes::DataType;

    use super::*;
    use crate::schema::{BRONZE_TRANSACTIONS, SILVER_DUPLICATES};

    fn lake(dir: &tempfile::TempDir) -> Lake {
        Lake::new(&LakeConfig {
            root: dir.path().display().to_string(),
            ..LakeConfig::default()
        })
        .expect("lake")
    }

    #[tokio::test]
    async fn the_last_commit_time_is_the_newest_commits() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = lake(&dir);
        assert_eq!(
            lake.last_commit_time(&SILVER_DUPLICATES).await.unwrap(),
            None
        );
        let before = chrono::Utc::now() - chrono::Duration::seconds(1);
        lake.ensure_table(&SILVER_DUPLICATES).await.unwrap();
        let created = lake.last_commit_time(&SILVER_DUPLICATES).await.unwrap();
        let created = created.expect("a commit time");
        assert!(created >= before, "{created} {before}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let appender = lake.appender(&SILVER_DUPLICATES).await.unwrap();
        appender.commit(&[("app".to_owned(), 1)]).await.unwrap();
        let appended = lake.last_commit_time(&SILVER_DUPLICATES).await.unwrap();
        assert!(
            appended.expect("a commit time") > created,
            "{appended:?} {created}"
        );
    }

    #[tokio::test]
    async fn the_latest_version_since_a_known_one_agrees_with_opening_the_table() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = lake(&dir);
        let table = &SILVER_DUPLICATES;
        assert_eq!(lake.latest_version_since(table, None).await.unwrap(), None);
        assert_eq!(
            lake.latest_version_since(table, Some(3)).await.unwrap(),
            None,
            "no table: whatever was known"
        );
        lake.ensure_table(table).await.unwrap();
        for mark in 1..=3 {
            let appender = lake.appender(table).await.unwrap();
            appender.commit(&[("app".to_owned(), mark)]).await.unwrap();
        }
        let latest = lake.latest_version(table).await.unwrap();
        assert_eq!(latest, Some(3));
        for known in [None, Some(0), Some(2), Some(3), Some(9)] {
            assert_eq!(
                lake.latest_version_since(table, known).await.unwrap(),
                latest,
                "known {known:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_table_written_before_new_nullable_columns_gains_them_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = lake(&dir);
        // Bronze as the first release created it: without the two change columns.
        let full = BRONZE_TRANSACTIONS.arrow_schema();
        let old: Vec<Field> = full.fields()[..full.fields().len() - 2]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let old_schema: StructType = (&Schema::new(old)).try_into_kernel().expect("schema");
        lake.builder(&BRONZE_TRANSACTIONS)
            .unwrap()
            .build()
            .unwrap()
            .create()
            .with_columns(old_schema.fields().cloned())
            .await
            .expect("old table created");

        let delta = lake
            .ensure_table(&BRONZE_TRANSACTIONS)
            .await
            .expect("upgraded");
        let names: Vec<String> = delta
            .snapshot()
            .unwrap()
            .schema()
            .fields()
            .map(|f| f.name().to_owned())
            .collect();
        assert_eq!(
            names[names.len() - 2..],
            ["operation", "target_transaction_id"]
        );
        // A second look changes nothing.
        let version = delta.version();
        let again = lake.ensure_table(&BRONZE_TRANSACTIONS).await.unwrap();
        assert_eq!(again.version(), version);
    }

    /// A batch of `silver/transaction_duplicates` with these transaction ids.
    fn duplicates(ids: &[&str]) -> RecordBatch {
        let schema = SILVER_DUPLICATES.arrow_schema();
        let rows = ids.len();
        // Lineage columns need values of their own types.
        RecordBatch::try_new(
            Arc::clone(&schema),
            schema
                .fields()
                .iter()
                .map(|field| -> ArrayRef {
                    match field.data_type() {
                        DataType::Utf8 => Arc::new(StringArray::from_iter_values(ids)),
                        DataType::Int64 => Arc::new(deltalake::arrow::array::Int64Array::from(
                            (1..=rows as i64).collect::<Vec<_>>(),
                        )),
                        DataType::Timestamp(_, _) => Arc::new(
                            deltalake::arrow::array::TimestampMicrosecondArray::from(vec![0; rows])
                                .with_timezone("UTC"),
                        ),
                        other => panic!("unexpected type {other}"),
                    }
                })
                .collect(),
        )
        .expect("batch")
    }

    #[tokio::test]
    async fn two_writers_joined_make_one_commit_and_a_writer_of_another_table_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = lake(&dir);
        let mut writer = lake.appender(&SILVER_DUPLICATES).await.unwrap();
        writer.write(duplicates(&["a1"])).await.unwrap();
        writer.commit(&[]).await.unwrap();

        // An overwrite encoded by two writers: the old row goes, both new ones come, at once.
        let mut first = lake.overwriter(&SILVER_DUPLICATES).await.unwrap();
        let mut second = lake.appender(&SILVER_DUPLICATES).await.unwrap();
        first.write(duplicates(&["b2"])).await.unwrap();
        second.write(duplicates(&["c3", "d4"])).await.unwrap();
        first.join(second).await.unwrap();
        assert_eq!(first.rows(), 3);
        let version = first.commit(&[]).await.unwrap();
        assert_eq!(
            version,
            Some(2),
            "one commit after the table's creation and the first"
        );
        assert_eq!(lake.count_rows(&SILVER_DUPLICATES).await.unwrap(), 3);

        let error = lake
            .appender(&SILVER_DUPLICATES)
            .await
            .unwrap()
            .join(lake.appender(&BRONZE_TRANSACTIONS).await.unwrap())
            .await
            .unwrap_err();
        assert!(
            format!("{error:?}").contains("cannot join a writer of bronze"),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn an_append_to_an_empty_table_or_an_overwrite_holds_only_its_rows_at_the_next_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = lake(&dir);
        let other = self::lake(&dir);
        let table = &SILVER_DUPLICATES;
        // A new table (created at version 0): the append is the whole table at version 1.
        let mut first = lake.appender(table).await.unwrap();
        assert_eq!(first.holds_only_this_write_at().unwrap(), Some(1));
        first.write(duplicates(&["a1"])).await.unwrap();
        // Another writer committed first: the append lands later and holds its rows too.
        let mut theirs = other.appender(table).await.unwrap();
        theirs.write(duplicates(&["b2"])).await.unwrap();
        assert_eq!(theirs.commit(&[]).await.unwrap(), Some(1));
        assert_eq!(first.commit(&[]).await.unwrap(), Some(2));
        assert_eq!(lake.count_rows(table).await.unwrap(), 2);

        // A table with rows: an append adds to them, an overwrite replaces them.
        let appender = lake.appender(table).await.unwrap();
        assert_eq!(appender.holds_only_this_write_at().unwrap(), None);
        let mut overwriter = lake.overwriter(table).await.unwrap();
        assert_eq!(overwriter.holds_only_this_write_at().unwrap(), Some(3));
        overwriter.write(duplicates(&["c3"])).await.unwrap();
        assert_eq!(overwriter.commit(&[]).await.unwrap(), Some(3));
        assert_eq!(lake.count_rows(table).await.unwrap(), 1);
        // An append that replaces some files keeps the others.
        let mut replacing = lake.appender(table).await.unwrap();
        replacing.remove_files(["part-0.parquet".to_owned()]);
        assert_eq!(replacing.holds_only_this_write_at().unwrap(), None);
    }

    #[tokio::test]
    async fn kept_tables_see_every_commit_and_each_version_as_a_fresh_open_does() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = lake(&dir);
        // Another process: a lake of its own on the same root, keeping nothing.
        let other = self::lake(&dir);
        let table = &SILVER_DUPLICATES;
        let state = |delta: &DeltaTable| {
            let mut files = lake.data_files(delta, table).unwrap();
            files.sort();
            (
                delta.version(),
                files,
                rows_where(delta, table, |_| true).unwrap(),
            )
        };
        let mut scope = lake.keep_opened_tables();
        assert!(lake.open(table).await.unwrap().is_none(), "no table yet");
        lake.ensure_table(table).await.unwrap();
        let mut versions = Vec::new();
        for (mark, id) in [(1, "a1"), (2, "b2"), (3, "c3")] {
            // Written alternately by this lake and the other one.
            let writer = if mark % 2 == 0 { &other } else { &lake };
            let mut appender = writer.appender(table).await.unwrap();
            appender.write(duplicates(&[id])).await.unwrap();
            versions.push(
                appender
                    .commit(&[("app".to_owned(), mark)])
                    .await
                    .unwrap()
                    .unwrap(),
            );
            let kept = lake.open(table).await.unwrap().unwrap();
            let fresh = other.open(table).await.unwrap().unwrap();
            assert_eq!(state(&kept), state(&fresh), "after mark {mark}");
            assert_eq!(lake.app_version(table, "app").await.unwrap(), Some(mark));
        }
        // Each version: kept, then (in a new scope) brought forward from the one before it.
        let all: Vec<Version> = [0].into_iter().chain(versions).collect();
        for round in ["kept", "brought forward"] {
            for &version in &all {
                let kept = lake.open_at(table, version).await.unwrap();
                let fresh = other.open_at(table, version).await.unwrap();
                assert_eq!(state(&kept), state(&fresh), "{round}: version {version}");
            }
            if round == "kept" {
                drop(scope);
                scope = lake.keep_opened_tables();
                assert!(lake.kept(table, None).is_none(), "a new scope starts empty");
            }
        }
        let nested = lake.keep_opened_tables();
        drop(scope);
        assert!(lake.kept(table, None).is_some(), "a scope still lasts");
        drop(nested);
        assert!(
            lake.kept(table, None).is_none(),
            "the last scope dropped them"
        );
        assert!(lake.open_at(table, 99).await.is_err(), "no such version");
    }

    #[test]
    fn files_are_flushed_on_several_threads_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut paths: Vec<std::path::PathBuf> = (0..40)
            .map(|i| {
                let path = dir.path().join(format!("part-{i}.parquet"));
                std::fs::write(&path, [i as u8; 16]).expect("write");
                path
            })
            .collect();
        sync_all(&paths).expect("flushed");
        sync_all(&paths[..1]).expect("one, on this thread");
        sync_all(&[]).expect("none");
        paths.insert(17, dir.path().join("gone.parquet"));
        let error = sync_all(&paths).expect_err("a missing file");
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn a_vacuum_removes_only_unreferenced_files_past_the_retention_and_keeps_the_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = lake(&dir);
        let mut writer = lake.appender(&SILVER_DUPLICATES).await.unwrap();
        writer.write(duplicates(&["a1"])).await.unwrap();
        writer.commit(&[]).await.unwrap();
        // A rewrite: the first file is no longer referenced by the latest version.
        let mut writer = lake.overwriter(&SILVER_DUPLICATES).await.unwrap();
        writer.write(duplicates(&["b2"])).await.unwrap();
        let version = writer.commit(&[]).await.unwrap();
        // A file no commit references (a write that failed before its commit).
        let table_dir = lake
            .table_url(&SILVER_DUPLICATES)
            .to_file_path()
            .expect("a local table");
        std::fs::write(table_dir.join("part-00000-orphan.parquet"), b"not parquet").unwrap();
        let files = || {
            std::fs::read_dir(&table_dir)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "parquet")
                })
                .count()
        };
        assert_eq!(files(), 3);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;

        let hour = std::time::Duration::from_secs(3600);
        let kept = lake
            .vacuum(&SILVER_DUPLICATES, hour, true, false)
            .await
            .unwrap();
        assert_eq!((kept.files, files()), (0, 3), "younger than the retention");
        let zero = std::time::Duration::ZERO;
        let dry = lake
            .vacuum(&SILVER_DUPLICATES, zero, false, true)
            .await
            .unwrap();
        assert_eq!((dry.files, files()), (1, 3), "a dry run only counts");
        assert!(dry.bytes > 0);
        let done = lake
            .vacuum(&SILVER_DUPLICATES, zero, true, false)
            .await
            .unwrap();
        assert_eq!(
            (done.files, files()),
            (2, 1),
            "the removed file and the orphan"
        );
        assert_eq!(
            lake.latest_version(&SILVER_DUPLICATES).await.unwrap(),
            version,
            "no commit: versions and progress marks stay"
        );
        let left = lake.read_all(&SILVER_DUPLICATES).await.unwrap();
        assert_eq!(left.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
        let all = lake.vacuum_all(zero, true, false).await.unwrap();
        assert_eq!(all.len(), crate::schema::ALL_TABLES.len());
        assert_eq!(all.iter().map(|t| t.files).sum::<usize>(), 0);
    }

    #[tokio::test]
    async fn every_tenth_commit_writes_a_checkpoint_and_marks_read_through_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = lake(&dir);
        // Version 0 creates the table; versions 1..=25 are appends, each with a mark.
        for n in 1..=25_i64 {
            let mut writer = lake.appender(&SILVER_DUPLICATES).await.unwrap();
            writer.write(duplicates(&[&format!("t{n}")])).await.unwrap();
            let version = writer.commit(&[("test.app".to_owned(), n)]).await.unwrap();
            assert_eq!(version, Some(n as Version));
        }
        let log = lake
            .table_url(&SILVER_DUPLICATES)
            .to_file_path()
            .expect("a local table")
            .join("_delta_log");
        let mut checkpoints: Vec<String> = std::fs::read_dir(&log)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".checkpoint.parquet"))
            .collect();
        checkpoints.sort();
        assert_eq!(
            checkpoints,
            [
                "00000000000000000010.checkpoint.parquet",
                "00000000000000000020.checkpoint.parquet"
            ]
        );
        let hint = std::fs::read_to_string(log.join("_last_checkpoint")).unwrap();
        assert!(hint.contains("\"version\":20"), "{hint}");
        // What readers see through the newest checkpoint and the five commits after it.
        assert_eq!(
            lake.app_version(&SILVER_DUPLICATES, "test.app")
                .await
                .unwrap(),
            Some(25)
        );
        let rows = lake.read_all(&SILVER_DUPLICATES).await.unwrap();
        assert_eq!(rows.iter().map(RecordBatch::num_rows).sum::<usize>(), 25);
    }

    #[tokio::test]
    async fn delete_where_in_removes_exactly_the_listed_rows_and_takes_odd_values_as_text() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = lake(&dir);
        let batch = duplicates(&["a1", "b2", "c3"]);
        let mut writer = lake.appender(&SILVER_DUPLICATES).await.unwrap();
        writer.write(batch).await.unwrap();
        writer.commit(&[]).await.unwrap();

        // Values are literals, not SQL: a quote is just a character that matches nothing.
        let (_, deleted) = lake
            .delete_where_in(
                &SILVER_DUPLICATES,
                "transaction_id",
                &["a1' OR '1'='1".to_owned()],
                &[("test.nothing".to_owned(), 3)],
            )
            .await
            .expect("deleted nothing");
        assert_eq!(deleted, 0);
        // A delete that matches nothing still records its marks.
        assert_eq!(
            lake.app_version(&SILVER_DUPLICATES, "test.nothing")
                .await
                .unwrap(),
            Some(3)
        );
        let (_, deleted) = lake
            .delete_where_in(
                &SILVER_DUPLICATES,
                "transaction_id",
                &["b2".to_owned(), "zz".to_owned()],
                &[("test.app".to_owned(), 7)],
            )
            .await
            .expect("deleted");
        assert_eq!(deleted, 1);
        let left: Vec<String> = lake
            .read_all(&SILVER_DUPLICATES)
            .await
            .unwrap()
            .iter()
            .flat_map(|b| {
                let column = b.column(0).as_string::<i32>();
                (0..b.num_rows())
                    .map(|i| column.value(i).to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut left = left;
        left.sort();
        assert_eq!(left, ["a1", "c3"]);
        assert_eq!(
            lake.app_version(&SILVER_DUPLICATES, "test.app")
                .await
                .unwrap(),
            Some(7)
        );
    }

    /// Every file under `dir`, with its bytes.
    fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                let bytes = std::fs::read(&path).unwrap();
                found.push((path, bytes));
            }
        }
        found
    }

    #[tokio::test]
    async fn an_encrypted_lake_reads_back_what_it_wrote_and_its_disk_holds_no_plaintext() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = MasterKey::generate().unwrap();
        let config = |master_key: &str| LakeConfig {
            root: dir.path().display().to_string(),
            encryption: crate::EncryptionConfig {
                master_key: master_key.to_owned(),
                previous_master_keys: Vec::new(),
            },
            ..LakeConfig::default()
        };
        let lake = Lake::new(&config(&key)).unwrap();
        lake.check_encryption().await.unwrap();
        // More commits than a checkpoint's interval: log entries, checkpoints and data files.
        for i in 0..12 {
            let mut writer = lake.appender(&SILVER_DUPLICATES).await.unwrap();
            writer
                .write(duplicates(&[&format!("secret-id-{i}")]))
                .await
                .unwrap();
            writer.commit(&[("app".to_owned(), i)]).await.unwrap();
        }
        let rows: usize = lake
            .read_all(&SILVER_DUPLICATES)
            .await
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows, 12);
        assert_eq!(
            lake.app_version(&SILVER_DUPLICATES, "app").await.unwrap(),
            Some(11)
        );
        assert_eq!(
            lake.count_rows_at(&SILVER_DUPLICATES, 3).await.unwrap(),
            3,
            "time travel"
        );
        // A rewrite and a vacuum work through the encrypted store as well.
        let mut writer = lake.overwriter(&SILVER_DUPLICATES).await.unwrap();
        writer.write(duplicates(&["kept"])).await.unwrap();
        writer.commit(&[]).await.unwrap();
        let zero = std::time::Duration::ZERO;
        let vacuumed = lake
            .vacuum(&SILVER_DUPLICATES, zero, false, false)
            .await
            .unwrap();
        assert_eq!(vacuumed.files, 12);
        assert_eq!(lake.count_rows(&SILVER_DUPLICATES).await.unwrap(), 1);

        let files = files_under(dir.path());
        let checkpoints = files
            .iter()
            .filter(|(path, _)| path.to_string_lossy().contains("checkpoint"))
            .count();
        assert!(checkpoints > 0, "a checkpoint was written");
        for (path, bytes) in &files {
            if path.ends_with(KEYRING) {
                continue;
            }
            assert!(bytes.starts_with(b"RDPENC01"), "{}", path.display());
            for plain in [&b"PAR1"[..], b"commitInfo", b"secret-id", b"kept"] {
                assert!(
                    !bytes.windows(plain.len()).any(|w| w == plain),
                    "{} holds {}",
                    path.display(),
                    String::from_utf8_lossy(plain)
                );
            }
        }

        // Without the master key, or with another, the lake says why it cannot be read.
        let error = Lake::new(&config("")).unwrap().check_encryption().await;
        let error = error.unwrap_err().to_string();
        assert!(
            error.contains("lake.encryption.master_key is not set"),
            "{error}"
        );
        let other = MasterKey::generate().unwrap();
        let error = Lake::new(&config(&other)).unwrap().check_encryption().await;
        let error = error.unwrap_err().to_string();
        assert!(error.contains("is wrapped by master key"), "{error}");
        let error = Lake::new(&config("not hex")).unwrap_err().to_string();
        assert!(error.contains("64 hex digits"), "{error}");
    }

    /// One HTTP/1.1 request to moto, which checks no signature but treats a request without
    /// one as anonymous: the status line and headers, and the body.
    fn moto_request(url: &str, method: &str, path: &str) -> (String, Vec<u8>) {
        use std::io::{Read as _, Write as _};
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = std::net::TcpStream::connect(host).expect("moto reachable");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=0\r\n\r\n"
        )
        .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("headers end");
        let head = String::from_utf8_lossy(&answer[..split]).to_lowercase();
        (head, answer[split + 4..].to_vec())
    }

    /// An encrypted lake on S3 (moto's server) with the bucket's server-side encryption asked
    /// for through the storage options: both apply to every object.
    #[tokio::test]
    async fn on_s3_objects_are_sealed_by_the_lake_and_server_side_encryption_is_passed_through() {
        let Ok(moto) = std::env::var("RETAIL_TEST_MOTO_URL") else {
            assert!(
                std::env::var_os("RETAIL_REQUIRE_MOTO").is_none(),
                "RETAIL_TEST_MOTO_URL is not set (scripts/services.sh start moto)"
            );
            eprintln!("skipped: RETAIL_TEST_MOTO_URL is not set");
            return;
        };
        let bucket = format!("lake-{}", std::process::id());
        let (created, _) = moto_request(&moto, "PUT", &format!("/{bucket}"));
        assert!(created.starts_with("http/1.1 200"), "{created}");
        let options = [
            ("AWS_ENDPOINT_URL", moto.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_S3_ALLOW_UNSAFE_RENAME", "true"),
            ("aws_server_side_encryption", "AES256"),
        ];
        let lake = Lake::new(&LakeConfig {
            root: format!("s3://{bucket}/lake"),
            storage_options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            encryption: crate::EncryptionConfig {
                master_key: MasterKey::generate().unwrap(),
                previous_master_keys: Vec::new(),
            },
            ..LakeConfig::default()
        })
        .unwrap();
        lake.check_encryption().await.unwrap();
        let mut writer = lake.appender(&SILVER_DUPLICATES).await.unwrap();
        writer.write(duplicates(&["on-s3"])).await.unwrap();
        writer.commit(&[]).await.unwrap();
        assert_eq!(lake.count_rows(&SILVER_DUPLICATES).await.unwrap(), 1);

        let delta = lake.open(&SILVER_DUPLICATES).await.unwrap().unwrap();
        let file = lake.data_files(&delta, &SILVER_DUPLICATES).unwrap()[0].clone();
        for key in [
            format!("lake/{}/{file}", SILVER_DUPLICATES.name),
            format!(
                "lake/{}/_delta_log/00000000000000000000.json",
                SILVER_DUPLICATES.name
            ),
        ] {
            let (head, body) = moto_request(&moto, "GET", &format!("/{bucket}/{key}"));
            assert!(head.starts_with("http/1.1 200"), "{key}: {head}");
            assert!(
                head.contains("x-amz-server-side-encryption: aes256"),
                "{key}: {head}"
            );
            assert!(body.starts_with(b"RDPENC01"), "{key} is sealed by the lake");
        }
    }
}
