//! The scheduler: cron schedules and sensors that start pipeline runs (and, for a landing
//! directory, ingestions), run by the one process holding the scheduler's lease.
//!
//! Every schedule and sensor keeps a **cursor** in the metadata store (a schedule: the last
//! tick it handled; a landing sensor: the files it has seen and what became of them; an asset
//! sensor: the versions of the asset's tables), changed by compare and swap. A cursor moves only
//! after the work it records is done, and a scheduler that lost its lease cannot move it after
//! its successor did, so a restart or a takeover neither misses nor repeats work: what could be
//! done twice (ingesting a file whose cursor was not saved) is skipped by ingestion's content
//! checkpoints.
//!
//! Time comes from a [`Clock`], so tests move it by hand.

pub mod config;
mod landing;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use retail_domain::error::{Classify as _, ErrorKind};
use retail_domain::schedule;
use retail_metadata::{Lease, MetadataStore, RunRecord, RunStatus};
use retail_pipeline::RunRequest;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use config::{ScheduleConfig, SchedulerConfig, SensorConfig, SensorKind};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::ingest::IngestService;
use crate::pipeline::PipelineService;
use config::{Schedule, Sensor, Watch};

/// The lease's name in the metadata store.
pub const LEASE: &str = "scheduler";

/// How often a started run's record is read until it ends.
const RUN_POLL: Duration = Duration::from_millis(200);

/// Schedules and sensors.
#[async_trait]
pub trait SchedulerService: Send + Sync {
    /// Takes or renews the scheduler's lease for `holder`; `true` while `holder` holds it.
    async fn hold_lease(&self, holder: &str) -> Result<bool>;

    /// Gives the lease up (a clean shutdown), so another replica takes over at once.
    async fn release_lease(&self, holder: &str) -> Result<()>;

    /// One look at every schedule and sensor, running what is due (and waiting for it). Call
    /// it while holding the lease.
    async fn tick(&self) -> Result<TickReport>;

    /// Every schedule and sensor with its cursor, and who holds the lease.
    async fn status(&self) -> Result<SchedulerStatus>;
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Runs started, as `(requested by, run id, status)`.
    pub runs: Vec<(String, String, RunStatus)>,
    /// Files a landing sensor ingested (or found ingested before).
    pub ingested_files: Vec<String>,
    /// Files a landing sensor could not ingest, with why.
    pub failed_files: Vec<(String, String)>,
    /// Ticks dropped or merged by the catch-up rules.
    pub passed_over: usize,
    /// Work that could not start because another run or ingestion held the pipeline; it is
    /// tried again next tick.
    pub deferred: Vec<String>,
    /// Problems of single schedules or sensors (the others went on).
    pub problems: Vec<String>,
    /// Another scheduler moved a cursor: this one lost its lease and stopped.
    pub lost_lease: bool,
}

/// The scheduler as `GET /admin/scheduler` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SchedulerStatus {
    /// Whether `retail serve` runs the schedules and sensors (`scheduler.enabled`).
    pub enabled: bool,
    /// Who holds the lease and until when (`None`: nobody has taken it, or it was released).
    pub lease: Option<Lease>,
    /// Whether the lease is held now (not lapsed).
    pub lease_held: bool,
    /// The schedules.
    pub schedules: Vec<ScheduleStatus>,
    /// The sensors.
    pub sensors: Vec<SensorStatus>,
}

/// One schedule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleStatus {
    /// Its name.
    pub name: String,
    /// Its cron expression.
    pub cron: String,
    /// Its time zone.
    pub timezone: String,
    /// `skip`, `once` or `each`.
    pub catch_up: String,
    /// The assets it runs (empty: every asset).
    pub assets: Vec<String>,
    /// The last tick handled (`None`: no scheduler has seen it yet).
    pub last_tick: Option<DateTime<Utc>>,
    /// The next tick after the last one handled (or after now, when none was).
    pub next_tick: Option<DateTime<Utc>>,
}

/// One sensor.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SensorStatus {
    /// Its name.
    pub name: String,
    /// `landing`, `prefix`, `asset` or `stream_lag`.
    pub kind: SensorKind,
    /// The directory or the asset it watches.
    pub watches: String,
    /// The assets it runs (empty: every asset).
    pub assets: Vec<String>,
    /// It has fired and its run has not happened yet (another run held the pipeline).
    pub run_pending: bool,
    /// A landing sensor's files by state: `pending` (seen once, taken when unchanged on the
    /// next look), `ingested`, `failed`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, usize>,
    /// A landing sensor's files that could not be ingested, with why (tried again when the
    /// file changes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_files: Vec<FailedFile>,
    /// An asset sensor's view of the asset's tables and their versions.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, Option<u64>>,
    /// A stream_lag sensor's last look: the lag and whether it was above `max_lag`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<LagLook>,
}

/// What a stream_lag sensor saw last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LagLook {
    /// Messages on the broker not yet in bronze, summed over the partitions.
    pub lag: u64,
    /// Whether that was above the sensor's `max_lag` (it fired when it rose above).
    pub above: bool,
}

/// How far a stream lags: the messages on its broker not yet in bronze. The composition root
/// implements it over the `[[streams]]` (Kafka, RabbitMQ).
#[async_trait]
pub trait StreamLag: Send + Sync {
    /// The lag of the stream `name`, summed over its partitions.
    ///
    /// # Errors
    ///
    /// A message when the stream is unknown or its broker cannot tell.
    async fn lag(&self, name: &str) -> std::result::Result<u64, String>;
}

/// A stream_lag sensor's cursor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LagCursor {
    look: LagLook,
    run_pending: bool,
}

/// A file a landing sensor could not ingest.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FailedFile {
    /// Its name in the landing directory.
    pub file: String,
    /// Why.
    pub error: String,
}

/// A schedule's cursor.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScheduleCursor {
    last_tick: DateTime<Utc>,
}

/// An asset sensor's cursor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AssetCursor {
    versions: BTreeMap<String, Option<u64>>,
    run_pending: bool,
}

/// A sensor's cursor, which remembers that the sensor fired and its run has not happened yet.
pub(super) trait Fired: Serialize + Clone {
    /// Whether the sensor's run is still to happen.
    fn run_pending(&self) -> bool;
    /// The same cursor with that flag set to `pending`.
    fn with_run_pending(&self, pending: bool) -> Self;
}

impl Fired for AssetCursor {
    fn run_pending(&self) -> bool {
        self.run_pending
    }

    fn with_run_pending(&self, pending: bool) -> Self {
        Self {
            run_pending: pending,
            ..self.clone()
        }
    }
}

impl Fired for LagCursor {
    fn run_pending(&self) -> bool {
        self.run_pending
    }

    fn with_run_pending(&self, pending: bool) -> Self {
        Self {
            run_pending: pending,
            ..self.clone()
        }
    }
}

/// The scheduler over the pipeline and ingestion services.
pub struct Scheduler {
    config: SchedulerConfig,
    schedules: Vec<Schedule>,
    sensors: Vec<Sensor>,
    store: Arc<dyn MetadataStore>,
    pipeline: Arc<dyn PipelineService>,
    ingest: Arc<dyn IngestService>,
    clock: Arc<dyn Clock>,
    /// How prefix sensors reach their store (the lake's `storage_options`).
    storage_options: BTreeMap<String, String>,
    /// How stream_lag sensors learn a stream's lag.
    stream_lag: Option<Arc<dyn StreamLag>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("schedules", &self.schedules.len())
            .field("sensors", &self.sensors.len())
            .finish_non_exhaustive()
    }
}

/// A cursor as read: its version (for the compare and swap) and value.
struct Cursor<T> {
    name: String,
    version: i64,
    value: Option<T>,
}

impl Scheduler {
    /// The scheduler of `config`, its schedules and sensors checked against the pipeline's
    /// assets.
    ///
    /// # Errors
    ///
    /// Every problem of `config`, listed.
    pub fn new(
        config: SchedulerConfig,
        store: Arc<dyn MetadataStore>,
        pipeline: Arc<dyn PipelineService>,
        ingest: Arc<dyn IngestService>,
        clock: Arc<dyn Clock>,
    ) -> std::result::Result<Self, Vec<String>> {
        let assets = pipeline.assets();
        let keys: Vec<&str> = assets.iter().map(|a| a.key).collect();
        let (schedules, sensors) = config.checked(Some(&keys[..]))?;
        let mut problems = Vec::new();
        for (index, sensor) in sensors.iter().enumerate() {
            if let Watch::Asset(watched) = &sensor.watch
                && assets
                    .iter()
                    .any(|a| a.key == watched.as_str() && a.tables.is_empty())
            {
                problems.push(format!(
                    "scheduler.sensors[{index}].asset {watched:?} writes no table of its own \
                     (it follows gold): watch the asset it follows"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            config,
            schedules,
            sensors,
            store,
            pipeline,
            ingest,
            clock,
            storage_options: BTreeMap::new(),
            stream_lag: None,
        })
    }

    /// Sets how stream_lag sensors learn a stream's lag.
    #[must_use]
    pub fn with_stream_lag(mut self, lag: Arc<dyn StreamLag>) -> Self {
        self.stream_lag = Some(lag);
        self
    }

    /// Sets how prefix sensors reach their object store: the lake's `storage_options`
    /// (endpoint, region, credentials).
    #[must_use]
    pub fn with_storage_options(mut self, options: BTreeMap<String, String>) -> Self {
        self.storage_options = options;
        self
    }

    fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.config.lease_seconds)
    }

    async fn read_cursor<T: for<'de> Deserialize<'de>>(&self, name: String) -> Result<Cursor<T>> {
        let (version, value) = self.store.cursor(&name).await?;
        let value = match value {
            Some(text) => Some(serde_json::from_str(&text).map_err(|error| {
                Error::new(
                    ErrorKind::Internal,
                    format!("the scheduler's cursor {name} cannot be read: {error}"),
                )
            })?),
            None => None,
        };
        Ok(Cursor {
            name,
            version,
            value,
        })
    }

    /// Saves `value` over the cursor read; `false` when another scheduler moved it first.
    async fn save_cursor<T: Serialize>(&self, cursor: &mut Cursor<T>, value: T) -> Result<bool> {
        let text = serde_json::to_string(&value)
            .map_err(|error| Error::new(ErrorKind::Internal, error.to_string()))?;
        if !self
            .store
            .save_cursor(&cursor.name, cursor.version, &text)
            .await?
        {
            return Ok(false);
        }
        cursor.version += 1;
        cursor.value = Some(value);
        Ok(true)
    }

    /// Starts a run of `assets` and waits for it to end; `None` when another run holds the
    /// pipeline.
    async fn run(&self, by: &str, assets: &[String], force: bool) -> Result<Option<RunRecord>> {
        let request = RunRequest {
            assets: assets.to_vec(),
            force,
            requested_by: by.to_owned(),
            ..RunRequest::default()
        };
        let started = match self.pipeline.start(request).await {
            Ok(run) => run,
            Err(error) if error.kind() == ErrorKind::Conflict => return Ok(None),
            Err(error) => return Err(error),
        };
        tracing::info!(run = %started.run_id, requested_by = by, "scheduled run started");
        loop {
            tokio::time::sleep(RUN_POLL).await;
            let record = self.pipeline.run_record(&started.run_id).await?;
            if record.status != RunStatus::Running {
                retail_telemetry::metrics::record_scheduler_run(
                    by.split(':').next().unwrap_or(by),
                    record.status.as_str(),
                );
                return Ok(Some(record));
            }
        }
    }

    /// Runs what a schedule owes; `false` when the lease was lost.
    async fn tick_schedule(&self, schedule: &Schedule, report: &mut TickReport) -> Result<bool> {
        let name = &schedule.config.name;
        let by = format!("schedule:{name}");
        let now = self.clock.now();
        let mut cursor = self
            .read_cursor::<ScheduleCursor>(format!("schedule:{name}"))
            .await?;
        let Some(last) = cursor.value.as_ref().map(|c| c.last_tick) else {
            // First seen: ticks count from now, the past is not owed.
            return self
                .save_cursor(&mut cursor, ScheduleCursor { last_tick: now })
                .await;
        };
        let due = schedule::due(
            &schedule.cron,
            schedule.zone,
            last,
            now,
            schedule.config.catch_up,
            chrono::Duration::seconds(i64::try_from(self.config.grace_seconds).unwrap_or(i64::MAX)),
            self.config.catch_up_limit,
        );
        if due.handled_until == last {
            return Ok(true);
        }
        if due.passed_over > 0 {
            tracing::warn!(
                schedule = %name,
                passed_over = due.passed_over,
                catch_up = ?schedule.config.catch_up,
                "ticks missed while no scheduler ran were passed over"
            );
            report.passed_over += due.passed_over;
        }
        for tick in &due.runs {
            match self
                .run(&by, &schedule.config.assets, schedule.config.force)
                .await?
            {
                Some(run) => {
                    tracing::info!(schedule = %name, %tick, run = %run.run_id, status = run.status.as_str(), "scheduled run ended");
                    report.runs.push((by.clone(), run.run_id, run.status));
                }
                None => {
                    report.deferred.push(by.clone());
                    return Ok(true);
                }
            }
            if !self
                .save_cursor(&mut cursor, ScheduleCursor { last_tick: *tick })
                .await?
            {
                return Ok(false);
            }
        }
        self.save_cursor(
            &mut cursor,
            ScheduleCursor {
                last_tick: due.handled_until,
            },
        )
        .await
    }

    /// Fires an asset sensor when the asset's tables moved; `false` when the lease was lost.
    async fn tick_asset_sensor(
        &self,
        sensor: &Sensor,
        watched: &str,
        report: &mut TickReport,
    ) -> Result<bool> {
        let name = &sensor.config.name;
        let mut cursor = self
            .read_cursor::<AssetCursor>(format!("sensor:{name}"))
            .await?;
        // From the versions seen last: only the logs' listings since are read.
        let known = cursor
            .value
            .as_ref()
            .map(|state| state.versions.clone())
            .unwrap_or_default();
        let versions: BTreeMap<String, Option<u64>> = self
            .pipeline
            .asset_versions(watched, &known)
            .await?
            .into_iter()
            .map(|(table, version)| (table.to_owned(), version))
            .collect();
        // First seen: only later versions fire it.
        let Some(mut state) = cursor.value.clone() else {
            let first = AssetCursor {
                versions,
                run_pending: false,
            };
            return self.save_cursor(&mut cursor, first).await;
        };
        if state.versions != versions {
            tracing::info!(sensor = %name, asset = watched, "a new version of the asset fires the sensor");
            state = AssetCursor {
                versions,
                run_pending: true,
            };
            if !self.save_cursor(&mut cursor, state.clone()).await? {
                return Ok(false);
            }
        }
        self.run_pending(&sensor.config, report, &state, &mut cursor)
            .await
    }

    /// Looks at a stream's lag: a rise above `max_lag` fires the sensor once, until the lag
    /// falls back to `max_lag` or below; `false` when the lease was lost.
    async fn tick_stream_lag_sensor(
        &self,
        sensor: &Sensor,
        stream: &str,
        max_lag: u64,
        report: &mut TickReport,
    ) -> Result<bool> {
        let name = &sensor.config.name;
        let Some(port) = &self.stream_lag else {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("no stream lag is known to this process (stream {stream})"),
            ));
        };
        let lag = port.lag(stream).await.map_err(|error| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot read the lag of stream {stream}: {error}"),
            )
        })?;
        let mut cursor = self
            .read_cursor::<LagCursor>(format!("sensor:{name}"))
            .await?;
        let before = cursor.value.clone().unwrap_or_default();
        let above = lag > max_lag;
        let state = LagCursor {
            look: LagLook { lag, above },
            run_pending: before.run_pending || (above && !before.look.above),
        };
        if state.run_pending && !before.run_pending {
            tracing::info!(sensor = %name, stream, lag, max_lag, "a stream's lag rose above its limit");
        }
        if (state.look != before.look || state.run_pending != before.run_pending)
            && !self.save_cursor(&mut cursor, state.clone()).await?
        {
            return Ok(false);
        }
        self.run_pending(&sensor.config, report, &state, &mut cursor)
            .await
    }

    /// Runs a fired sensor's assets, if its run is pending, and clears the flag; `false` when
    /// the lease was lost.
    async fn run_pending<T: Fired>(
        &self,
        sensor: &SensorConfig,
        report: &mut TickReport,
        state: &T,
        cursor: &mut Cursor<T>,
    ) -> Result<bool> {
        if !state.run_pending() {
            return Ok(true);
        }
        let by = format!("sensor:{}", sensor.name);
        match self.run(&by, &sensor.assets, false).await? {
            Some(run) => {
                report.runs.push((by, run.run_id, run.status));
                self.save_cursor(cursor, state.with_run_pending(false))
                    .await
            }
            None => {
                report.deferred.push(by);
                Ok(true)
            }
        }
    }
}

/// Takes the outcome of one schedule's or sensor's look into `report`; `false` when the tick
/// must stop (the lease was lost). A problem of one does not stop the others.
fn settle(outcome: Result<bool>, what: &str, name: &str, report: &mut TickReport) -> bool {
    match outcome {
        Ok(true) => true,
        Ok(false) => {
            report.lost_lease = true;
            false
        }
        Err(error) => {
            report.problems.push(format!("{what} {name}: {error}"));
            true
        }
    }
}

#[async_trait]
impl SchedulerService for Scheduler {
    async fn hold_lease(&self, holder: &str) -> Result<bool> {
        let now = self.clock.now();
        let lease = self
            .store
            .acquire_lease(LEASE, holder, now, self.lease_ttl())
            .await?;
        let held = lease.held_by(holder, now);
        retail_telemetry::metrics::set_scheduler_lease_held(held);
        Ok(held)
    }

    async fn release_lease(&self, holder: &str) -> Result<()> {
        retail_telemetry::metrics::set_scheduler_lease_held(false);
        Ok(self.store.release_lease(LEASE, holder).await?)
    }

    async fn tick(&self) -> Result<TickReport> {
        let mut report = TickReport::default();
        for schedule in &self.schedules {
            let outcome = self.tick_schedule(schedule, &mut report).await;
            if !settle(outcome, "schedule", &schedule.config.name, &mut report) {
                return Ok(report);
            }
        }
        for sensor in &self.sensors {
            let outcome = match &sensor.watch {
                Watch::Landing(dir) => {
                    self.tick_landing_sensor(sensor, &landing::Landing::Dir(dir), &mut report)
                        .await
                }
                Watch::Prefix(url) => {
                    match retail_lake::ObjectPrefix::open(url, &self.storage_options) {
                        Ok(prefix) => {
                            self.tick_landing_sensor(
                                sensor,
                                &landing::Landing::Prefix(&prefix),
                                &mut report,
                            )
                            .await
                        }
                        Err(error) => Err(Error::new(
                            ErrorKind::InvalidInput,
                            format!("cannot open the prefix {url}: {error}"),
                        )),
                    }
                }
                Watch::Asset(asset) => self.tick_asset_sensor(sensor, asset, &mut report).await,
                Watch::StreamLag(stream, max_lag) => {
                    self.tick_stream_lag_sensor(sensor, stream, *max_lag, &mut report)
                        .await
                }
            };
            if !settle(outcome, "sensor", &sensor.config.name, &mut report) {
                return Ok(report);
            }
        }
        for problem in &report.problems {
            tracing::warn!(problem = %problem, "the scheduler could not do everything due");
        }
        Ok(report)
    }

    async fn status(&self) -> Result<SchedulerStatus> {
        let now = self.clock.now();
        let lease = self.store.lease(LEASE).await?;
        let mut schedules = Vec::new();
        for schedule in &self.schedules {
            let config = &schedule.config;
            let cursor = self
                .read_cursor::<ScheduleCursor>(format!("schedule:{}", config.name))
                .await?;
            let last_tick = cursor.value.map(|c| c.last_tick);
            schedules.push(ScheduleStatus {
                name: config.name.clone(),
                cron: config.cron.clone(),
                timezone: config.timezone.clone(),
                catch_up: format!("{:?}", config.catch_up).to_lowercase(),
                assets: config.assets.clone(),
                last_tick,
                next_tick: schedule
                    .cron
                    .next_after(last_tick.unwrap_or(now), schedule.zone),
            });
        }
        let mut sensors = Vec::new();
        for sensor in &self.sensors {
            let config = &sensor.config;
            let mut status = SensorStatus {
                name: config.name.clone(),
                kind: config.kind,
                watches: String::new(),
                assets: config.assets.clone(),
                run_pending: false,
                files: BTreeMap::new(),
                failed_files: Vec::new(),
                versions: BTreeMap::new(),
                lag: None,
            };
            match &sensor.watch {
                Watch::Landing(_) | Watch::Prefix(_) => {
                    status.watches = match &sensor.watch {
                        Watch::Landing(dir) => dir.display().to_string(),
                        Watch::Prefix(url) => url.clone(),
                        Watch::Asset(_) | Watch::StreamLag(..) => String::new(),
                    };
                    let cursor = self
                        .read_cursor::<landing::LandingCursor>(format!("sensor:{}", config.name))
                        .await?;
                    if let Some(cursor) = cursor.value {
                        cursor.describe(&mut status);
                    }
                }
                Watch::StreamLag(stream, max_lag) => {
                    status.watches = format!("stream {stream} (max lag {max_lag})");
                    let cursor = self
                        .read_cursor::<LagCursor>(format!("sensor:{}", config.name))
                        .await?;
                    if let Some(cursor) = cursor.value {
                        status.run_pending = cursor.run_pending;
                        status.lag = Some(cursor.look);
                    }
                }
                Watch::Asset(asset) => {
                    status.watches.clone_from(asset);
                    let cursor = self
                        .read_cursor::<AssetCursor>(format!("sensor:{}", config.name))
                        .await?;
                    if let Some(cursor) = cursor.value {
                        status.run_pending = cursor.run_pending;
                        status.versions = cursor.versions;
                    }
                }
            }
            sensors.push(status);
        }
        Ok(SchedulerStatus {
            enabled: self.config.enabled,
            lease_held: lease.as_ref().is_some_and(|l| l.expires_at > now),
            lease,
            schedules,
            sensors,
        })
    }
}
