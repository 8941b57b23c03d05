//! The composition root: reads the configuration, picks the adapters (embedded or PostgreSQL
//! warehouse, SQLite or PostgreSQL metadata store, in-process or Redis shared state) and builds
//! the services. The CLI, the API server and (next) the scheduler and stream consumers only
//! call [`App::build`]; no other crate wires services.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use retail_app::{App, Config, Role};
//!
//! let config = Config::load(None, std::env::vars())?;
//! let app = App::build(config, Role::Cli).await?;
//! let run = app
//!     .services
//!     .pipeline
//!     .run(Default::default(), &retail_domain::progress::NoProgress)
//!     .await?;
//! println!("run {} {}", run.run_id, run.status.as_str());
//! # Ok(())
//! # }
//! ```

pub mod alerting;
mod config;
pub mod openlineage;
pub mod scheduling;
pub mod secrets;
pub mod streams;
pub mod warehouses;

use std::sync::Arc;

use anyhow::Context as _;
use retail_domain::ports::{Follower, SharedCache, SharedRateLimiter};
use retail_lake::Lake;
use retail_metadata::{MetadataStore, PostgresStore, SqliteStore};
use retail_pipeline::{
    Asset, FollowerAsset, IngestOptions, IngestionService, RetryPolicy, Runner, default_assets,
};
use retail_services::Services;
use retail_services::access::{Access, Policy};
use retail_services::analytics::{Analytics, BreakerWarehouse, CachedWarehouse, CircuitBreaker};
use retail_services::ingest::Ingest;
use retail_services::operations::Operations;
use retail_services::pipeline::Pipeline;
use retail_warehouse::{Backend, EmbeddedFollower, PostgresFollower, PostgresWarehouse, Warehouse};

pub use config::{
    AssetRetry, Config, ENV_PREFIX, IngestConfig, ModelsConfig, OpenLineageConfig, PipelineConfig,
    RecommendationsConfig, SearchConfig, StreamConfig, TelemetryConfig,
};

/// What the process is for: it decides what is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A command that runs and exits: background runs go to the command's own runtime; no
    /// shared state, no embedded snapshot to follow.
    Cli,
    /// `retail serve`: background runs get a runtime of their own (CPU-heavy stages never hold
    /// the workers that answer requests), the embedded warehouse's snapshot follows gold, Redis
    /// is used when configured, and runs a dead process left `running` are closed at start.
    Server,
}

/// The platform, built.
pub struct App {
    /// The configuration it was built from.
    pub config: Config,
    /// The lake.
    pub lake: Lake,
    /// The metadata store.
    pub store: Arc<dyn MetadataStore>,
    /// The configured warehouse backend, bare (no cache, no breaker).
    pub warehouse: Arc<dyn Warehouse>,
    /// The PostgreSQL warehouse, when that is the backend.
    pub postgres: Option<Arc<PostgresWarehouse>>,
    /// The services.
    pub services: Services,
    /// Ingestion into bronze, for sources the services do not wrap (streams).
    pub ingestion: IngestionService,
    /// Whether this process' stream consumers reach their brokers (`/ready`).
    pub stream_health: Arc<retail_services::StreamHealth>,
    /// A runtime of its own for background runs (server role only).
    _jobs: Option<JobRuntime>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("lake", &self.lake.root().as_str())
            .field("metadata", &self.store.location())
            .field("warehouse", &self.warehouse.backend())
            .finish_non_exhaustive()
    }
}

/// A runtime for background runs, shut down without blocking when dropped (possibly from
/// inside another runtime).
struct JobRuntime(Option<tokio::runtime::Runtime>);

impl Drop for JobRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The roles of the API: the built-in ones, and those of `api.roles_file` (overriding by name).
///
/// # Errors
///
/// When the roles file cannot be read or is not valid.
pub fn policy(config: &retail_services::ApiConfig) -> anyhow::Result<Policy> {
    if config.roles_file.is_empty() {
        return Ok(Policy::default());
    }
    let text = std::fs::read_to_string(&config.roles_file)
        .with_context(|| format!("cannot read api.roles_file {}", config.roles_file))?;
    Policy::with_file_text(&text)
        .map_err(|error| anyhow::anyhow!("invalid api.roles_file {}: {error}", config.roles_file))
}

/// How often `retail serve` reads the audit trail for erasures other processes made (a
/// `retail gdpr forget` from the command line, another replica).
pub const ERASURES_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Until `stop`, every [`ERASURES_EVERY`], adds the subjects of erasures recorded in the trail
/// by other processes to `erased`, so that ingestion keeps those customers out as well. Each
/// look reads only the trail's erasure entries after the last one seen.
async fn follow_erasures(
    audit: Arc<dyn retail_services::AuditService>,
    erased: retail_pipeline::Erased,
    key: Vec<u8>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut seen = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(ERASURES_EVERY) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        match retail_services::Gdpr::erased_since(audit.as_ref(), seen).await {
            Ok((subjects, last)) => {
                seen = last;
                if subjects.is_empty() {
                    continue;
                }
                let mut current = erased
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut next = current
                    .as_deref()
                    .cloned()
                    .unwrap_or_else(|| retail_domain::privacy::ErasedSubjects::new(key.clone()));
                let known = next.len();
                for subject in subjects {
                    next.insert(subject);
                }
                if next.len() > known {
                    tracing::info!(subjects = next.len(), "erasures made elsewhere learnt");
                    *current = Some(Arc::new(next));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the audit trail for erasures made elsewhere");
            }
        }
    }
}

/// Opens the configured lake (a local root directory is created when missing); an encrypted
/// lake opens its keyring (made on a new lake) and every data key.
///
/// # Errors
///
/// When the root is neither a URL nor a directory that can be made, or the lake's encryption
/// keys do not open (a missing, malformed or wrong master key).
pub async fn open_lake(config: &Config) -> anyhow::Result<Lake> {
    let lake = Lake::new(&config.lake).context("cannot open the lake")?;
    lake.check_encryption()
        .await
        .context("cannot open the lake")?;
    Ok(lake)
}

/// Opens the configured metadata store: the PostgreSQL schema when `metadata.url` is set,
/// else the SQLite file. On an encrypted lake the store's personal fields are sealed under
/// the lake's data keys ([`retail_metadata::SealedStore`], ADR 0017).
///
/// # Errors
///
/// When the store cannot be opened or migrated, or its sealed fields' keys cannot be had.
pub async fn open_store(config: &Config, lake: &Lake) -> anyhow::Result<Arc<dyn MetadataStore>> {
    let metadata = &config.metadata;
    let store: Arc<dyn MetadataStore> = if metadata.is_postgres() {
        Arc::new(
            PostgresStore::connect_with(
                &metadata.url,
                &metadata.schema,
                metadata.pool_size,
                &config.tls,
            )
            .await
            .context("cannot open the metadata store")?,
        )
    } else {
        let path = std::path::PathBuf::from(&metadata.path);
        let busy = std::time::Duration::from_millis(metadata.busy_timeout_ms);
        Arc::new(
            tokio::task::spawn_blocking(move || SqliteStore::open_with(&path, busy))
                .await
                .context("cannot open the metadata store")?
                .context("cannot open the metadata store")?,
        )
    };
    let Some(keyring) = lake.keyring() else {
        return Ok(store);
    };
    let (sealed, now_sealed) =
        retail_metadata::SealedStore::open(store, Arc::new(LakeKeys(Arc::clone(keyring))))
            .await
            .context("cannot seal the metadata store's personal fields")?;
    if now_sealed > 0 {
        tracing::info!(
            customers = now_sealed,
            "sealed the consent log's customer ids written before encryption was on"
        );
    }
    Ok(Arc::new(sealed))
}

/// The lake's data keys, lent to the metadata store's sealed fields.
#[derive(Debug)]
struct LakeKeys(Arc<retail_lake::encryption::Keyring>);

#[async_trait::async_trait]
impl retail_metadata::FieldKeys for LakeKeys {
    async fn current(&self) -> Result<(u32, [u8; 32]), String> {
        self.0
            .current_data_key()
            .await
            .map_err(|error| error.to_string())
    }

    async fn key(&self, id: u32) -> Result<[u8; 32], String> {
        self.0.data_key(id).await.map_err(|error| error.to_string())
    }
}

/// This machine's name, as the audit trail names where a command or server ran (`localhost`
/// when the system does not say).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

impl App {
    /// Builds the platform for `role` from `config`.
    ///
    /// # Errors
    ///
    /// When the lake root is invalid, the metadata store cannot be opened, the roles file is
    /// invalid, Redis (server role, when configured) or PostgreSQL (server role, when the
    /// backend) cannot be reached.
    pub async fn build(config: Config, role: Role) -> anyhow::Result<Self> {
        Self::build_with_clock(config, role, Arc::new(retail_services::alerts::SystemClock)).await
    }

    /// As [`App::build`], the alert manager telling the time by `clock` (tests move it).
    ///
    /// # Errors
    ///
    /// As [`App::build`].
    pub async fn build_with_clock(
        config: Config,
        role: Role,
        clock: Arc<dyn retail_services::alerts::Clock>,
    ) -> anyhow::Result<Self> {
        let lake = open_lake(&config).await?;
        let store = open_store(&config, &lake).await?;

        // The warehouse backend and its follower of gold.
        let mut followers: Vec<Arc<dyn Follower>> = Vec::new();
        let (warehouse, postgres): (Arc<dyn Warehouse>, _) = match config.warehouse.backend {
            Backend::Embedded => {
                let embedded = Arc::new(warehouses::embedded(&lake));
                if role == Role::Server {
                    followers.push(Arc::new(EmbeddedFollower::new(Arc::clone(&embedded))));
                }
                (embedded, None)
            }
            Backend::Postgres => {
                // The server brings the schema up to date at start; a command leaves that to
                // `retail migrate` and the load.
                let mut postgres =
                    warehouses::postgres(&config.warehouse, &config.tls, role == Role::Server)
                        .await?;
                if let (false, Some(key)) = (
                    config.warehouse.analyst_role.is_empty(),
                    config.privacy.key_bytes(),
                ) {
                    postgres = postgres.with_analyst_views(retail_warehouse::AnalystViews {
                        role: config.warehouse.analyst_role.clone(),
                        key: Arc::from(key),
                    })?;
                }
                let postgres = Arc::new(postgres);
                followers.push(Arc::new(PostgresFollower::new(
                    Arc::clone(&postgres),
                    lake.clone(),
                )));
                (Arc::clone(&postgres) as Arc<dyn Warehouse>, Some(postgres))
            }
        };

        // State shared by replicas.
        let mut shared_cache: Option<Arc<dyn SharedCache>> = None;
        let mut shared_limits: Option<Arc<dyn SharedRateLimiter>> = None;
        if role == Role::Server && !config.api.redis_url.is_empty() {
            let redis = Arc::new(
                retail_redis::RedisShared::connect_with(&config.api.redis_url, &config.tls)
                    .await
                    .context("cannot use api.redis_url")?,
            );
            shared_cache = Some(Arc::clone(&redis) as _);
            shared_limits = Some(redis as _);
        }

        // The asset graph and its runner.
        let (jobs, jobs_handle) = match role {
            Role::Cli => (None, tokio::runtime::Handle::current()),
            Role::Server => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("retail-job")
                    .enable_all()
                    .build()
                    .context("cannot start the runtime of background runs")?;
                let handle = runtime.handle().clone();
                (Some(JobRuntime(Some(runtime))), handle)
            }
        };
        let search_dir = config.search.index_dir(lake.root(), &config.metadata.path);
        let typesense = config
            .search
            .typesense()
            .map(retail_search::typesense::Typesense::new)
            .transpose()
            .context("cannot use search.typesense_url")?;
        if config.search.enabled {
            followers.push(Arc::new(retail_search::SearchFollower::new(
                lake.clone(),
                search_dir.clone(),
                config.search.embedding(),
            )));
            if let Some(typesense) = &typesense {
                followers.push(Arc::new(retail_search::typesense::TypesenseFollower::new(
                    lake.clone(),
                    typesense.clone(),
                )));
            }
        }
        let search_index: Arc<dyn retail_domain::ports::SearchIndex> = match typesense {
            Some(typesense) => Arc::new(typesense),
            None => Arc::new(retail_search::TantivySearch::new(
                retail_search::Location::new(search_dir, lake.keyring().cloned()),
            )),
        };
        let mut assets: Vec<Arc<dyn Asset>> = default_assets(
            &lake,
            config.pipeline.silver_rules(),
            config.pipeline.silver_handover_max_rows,
        );
        let gold_followers = followers.clone();
        // Consent per customer and purpose: what profiling and marketing may use.
        let consent = Arc::new(retail_services::Consents::new(
            Arc::clone(&store),
            config.privacy.opt_in.iter().copied(),
        ));
        let register: Arc<dyn retail_domain::ports::ConsentRegister> = Arc::clone(&consent) as _;
        if config.models.enabled {
            assets.push(Arc::new(
                retail_models::ModelsAsset::new(lake.clone(), config.models.settings())
                    .with_consent(Arc::clone(&register)),
            ));
        }
        if config.recommendations.enabled {
            assets.push(Arc::new(
                retail_search::RecommendationsAsset::new(
                    lake.clone(),
                    config.recommendations.settings(),
                )
                .with_consent(Arc::clone(&register)),
            ));
        }
        assets.extend(
            followers
                .into_iter()
                .map(|follower| Arc::new(FollowerAsset::new(lake.clone(), follower)) as _),
        );
        let mut runner = Runner::new(
            lake.clone(),
            Arc::clone(&store),
            assets,
            RetryPolicy {
                max_attempts: config.pipeline.max_attempts,
                backoff: std::time::Duration::from_millis(config.pipeline.retry_backoff_ms),
            },
            jobs_handle,
        )?;
        runner = runner
            .with_retries(
                config
                    .pipeline
                    .retries
                    .iter()
                    .map(|(asset, retry)| (asset.clone(), retry.policy()))
                    .collect(),
            )
            .context("invalid pipeline.retries")?;
        let keys: Vec<&str> = runner.assets().iter().map(|a| a.key()).collect();
        let checks = retail_pipeline::Check::all(&config.checks, &keys)
            .map_err(|problems| anyhow::anyhow!("invalid [[checks]]: {}", problems.join("; ")))?;
        let unknown: Vec<&String> = config
            .pipeline
            .freshness
            .keys()
            .filter(|key| !keys.contains(&key.as_str()))
            .collect();
        if !unknown.is_empty() {
            anyhow::bail!(
                "invalid pipeline.freshness: {unknown:?} are not assets (known: {})",
                keys.join(", ")
            );
        }
        runner = runner.with_checks(checks);
        runner = runner.with_freshness(config.pipeline.freshness.clone());
        if config.lake.vacuum_after_runs {
            runner = runner.with_vacuum(config.lake.vacuum_retention());
        }
        let lineage: Arc<dyn retail_services::LineageService> =
            Arc::new(retail_services::PlatformLineage::new());
        let listener: Option<Arc<dyn retail_pipeline::RunListener>> =
            openlineage::emitter(&config, Arc::clone(&lineage), runner.assets())?
                .map(|emitter| Arc::new(emitter) as _);
        if let Some(listener) = &listener {
            runner = runner.with_listener(Arc::clone(listener));
        }
        let runner = Arc::new(runner);
        if role == Role::Server {
            runner.recover().await?;
        }

        // The services.
        let access = Access::new(
            &config.api,
            Arc::clone(&store),
            policy(&config.api)?,
            shared_limits,
        )
        .await?
        .with_pseudonym_key(config.privacy.key_bytes());
        let breaker = Arc::new(CircuitBreaker::new(
            config.api.breaker_failures,
            std::time::Duration::from_secs(config.api.breaker_cool_down_seconds),
        ));
        let guarded: Arc<dyn Warehouse> = Arc::new(BreakerWarehouse::new(
            Arc::clone(&warehouse),
            Arc::clone(&breaker),
            std::time::Duration::from_millis(config.api.warehouse_timeout_ms),
        ));
        let cached = Arc::new(CachedWarehouse::new(
            Arc::clone(&guarded),
            shared_cache,
            config.api.cache_ttl_seconds,
            lake.root().to_string(),
        ));
        // The customers erased so far, kept out of bronze on arrival (with a privacy key).
        let audit: Arc<dyn retail_services::AuditService> =
            Arc::new(retail_services::Audit::new(Arc::clone(&store)));
        let erased = retail_pipeline::Erased::default();
        if let Some(key) = config.privacy.key_bytes() {
            let subjects = retail_services::Gdpr::erased_subjects(audit.as_ref(), key).await?;
            *erased
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(subjects));
        }
        let ingestion = IngestionService::new(
            lake.clone(),
            Arc::clone(&store),
            IngestOptions {
                commit_rows: config.ingest.commit_rows,
            },
        )
        .with_erased(Arc::clone(&erased));
        let ingestion = match listener {
            Some(listener) => ingestion.with_listener(listener),
            None => ingestion,
        };
        let stream_health = Arc::new(retail_services::StreamHealth::default());
        let models: Arc<dyn retail_services::ModelsService> = Arc::new(
            retail_services::LakeModels::new(lake.clone()).with_consent(Arc::clone(&register)),
        );
        // Without the recorder, the metrics macros do nothing.
        let render: retail_services::operations::MetricsRenderer = if config.telemetry.metrics {
            let metrics = retail_telemetry::prometheus::handle();
            Arc::new(move || metrics.render())
        } else {
            Arc::new(String::new)
        };
        let pipeline: Arc<dyn retail_services::PipelineService> =
            Arc::new(Pipeline::new(Arc::clone(&runner), Arc::clone(&store)));
        let alerts = retail_services::AlertManager::new(
            Arc::clone(&store),
            config.alerts.clone(),
            Arc::clone(&clock),
            Arc::new(alerting::HttpWebhook::new(
                &config.tls,
                std::time::Duration::from_secs(10),
            )?),
            Some(retail_services::alerts::RuleSources {
                lake: lake.clone(),
                models: Arc::clone(&models),
                metrics: Arc::clone(&render),
                pipeline: Arc::clone(&pipeline),
            }),
        )
        .map_err(|problems| anyhow::anyhow!("invalid [alerts]: {}", problems.join("; ")))?;
        let analytics: Arc<dyn retail_services::AnalyticsService> = Arc::new(Analytics::new(
            cached,
            Arc::clone(&guarded),
            config.api.export_limits(),
        ));
        let consent: Arc<dyn retail_services::ConsentService> = consent;
        let ingest: Arc<dyn retail_services::IngestService> = Arc::new(Ingest::new(
            ingestion.clone(),
            Arc::clone(&store),
            config.pipeline.silver_rules(),
        ));
        let scheduler = retail_services::Scheduler::new(
            config.scheduler.clone(),
            Arc::clone(&store),
            Arc::clone(&pipeline),
            Arc::clone(&ingest),
            clock,
        )
        .map_err(|problems| anyhow::anyhow!("invalid [scheduler]: {}", problems.join("; ")))?
        .with_storage_options(config.lake.storage_options.clone())
        .with_stream_lag(Arc::new(streams::BrokerLag {
            lake: lake.clone(),
            ingestion: ingestion.clone(),
            streams: config.streams.clone(),
        }));
        let problems = config.stream_sensor_problems();
        if !problems.is_empty() {
            anyhow::bail!("invalid [scheduler]: {}", problems.join("; "));
        }
        let services = Services {
            access: Arc::new(access),
            analytics: Arc::clone(&analytics),
            ingest,
            pipeline,
            scheduler: Arc::new(scheduler),
            operations: Arc::new(Operations::new(
                lake.clone(),
                guarded,
                breaker,
                Arc::clone(&store),
                render,
                Arc::clone(&stream_health),
            )),
            models,
            search: Arc::new(retail_services::Search::new(search_index)),
            recommendations: Arc::new(
                retail_services::LakeRecommendations::new(
                    lake.clone(),
                    config.recommendations.min_pair_baskets,
                )
                .with_consent(register),
            ),
            alerts: Arc::new(alerts),
            audit: Arc::clone(&audit),
            gdpr: Arc::new(retail_services::Gdpr::new(
                lake.clone(),
                Arc::clone(&runner),
                retail_pipeline::SilverAsset::new(lake.clone(), config.pipeline.silver_rules()),
                gold_followers,
                audit,
                Arc::clone(&consent),
                config.privacy.key_bytes(),
                erased,
            )),
            marketing: Arc::new(retail_services::Marketing::new(
                analytics,
                Arc::clone(&consent),
            )),
            consent,
            lineage,
        };
        Ok(Self {
            config,
            lake,
            store,
            warehouse,
            postgres,
            services,
            ingestion,
            stream_health,
            _jobs: jobs,
        })
    }

    /// The HTTP application (binds no socket).
    pub fn router(&self) -> axum::Router {
        retail_api::router(self.services.clone(), &self.config.api)
    }

    /// Records the start of a server in the audit trail, with the SHA-256 of its effective
    /// configuration (secrets masked): a configuration change shows as a new fingerprint.
    async fn record_start(&self, listener: &tokio::net::TcpListener, tls: bool) {
        use sha2::Digest as _;
        let fingerprint = hex::encode(sha2::Sha256::digest(self.config.to_masked_toml()));
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut event = retail_services::audit::event(
            "system",
            "serve.start",
            format!("retail serve on {address}"),
            format!("serve@{}", host_name()),
            retail_domain::audit::Outcome::Success,
        );
        event.detail = serde_json::json!({
            "config_sha256": fingerprint,
            "version": env!("CARGO_PKG_VERSION"),
            "tls": tls,
        })
        .to_string();
        self.services.audit.record(event).await;
    }

    /// Serves the API on `listener` until SIGTERM or Ctrl-C; requests in flight finish first.
    /// The streams of the configuration (`[[streams]]`) are consumed meanwhile, with the
    /// pipeline following bronze; on shutdown each commits its round in flight. The alert
    /// manager evaluates its rules and sends notifications meanwhile (`alerts.enabled`).
    ///
    /// # Errors
    ///
    /// When serving fails.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
        self.serve_until(listener, shutdown_signal()).await
    }

    /// As [`App::serve`], until `shutdown` resolves.
    ///
    /// # Errors
    ///
    /// When serving fails.
    pub async fn serve_until(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let tls = retail_tls::ServerTls::from_config(&self.config.tls)
            .context("cannot serve the API over TLS")?
            .map(|tls| {
                let reload = std::time::Duration::from_secs(self.config.tls.reload_seconds);
                (tls, reload)
            });
        self.record_start(&listener, tls.is_some()).await;
        let (stop, signal) = stop_on(shutdown);
        let stopped = |stop: &tokio::sync::watch::Sender<bool>| {
            let mut receiver = stop.subscribe();
            async move {
                let _ = receiver.wait_for(|stop| *stop).await;
            }
        };
        let server = async {
            let served = retail_api::serve(listener, self.router(), stopped(&stop), tls).await;
            // A server that fails stops the streams too.
            let _ = stop.send(true);
            served
        };
        let streams = async {
            if !self.config.streams.is_empty() {
                streams::run_in_background(self, Arc::clone(&self.stream_health), stop.subscribe())
                    .await;
            }
        };
        let alerts = async {
            if self.config.alerts.enabled {
                alerting::run_in_background(
                    Arc::clone(&self.services.alerts),
                    Arc::clone(&self.store),
                    self.config.alerts.clone(),
                    stop.subscribe(),
                )
                .await;
            }
        };
        let scheduler = async {
            let scheduler = &self.config.scheduler;
            if scheduler.enabled
                && !(scheduler.schedules.is_empty() && scheduler.sensors.is_empty())
            {
                scheduling::run_in_background(
                    Arc::clone(&self.services.scheduler),
                    &self.config.scheduler,
                    stop.subscribe(),
                )
                .await;
            }
        };
        let erasures = self.follow_erasures(stop.subscribe());
        let (served, (), (), (), ()) = tokio::join!(server, streams, alerts, scheduler, erasures);
        signal.abort();
        served?;
        Ok(())
    }
}

impl App {
    /// Runs the schedules and sensors (`[scheduler]`, whatever `scheduler.enabled` says) while
    /// this process holds the scheduler's lease, until `shutdown` resolves: `retail
    /// scheduler`, for deployments that keep the scheduler apart from the API replicas. It
    /// follows erasures made elsewhere, as `retail serve` does, so that a landing file never
    /// brings back an erased customer.
    ///
    /// # Errors
    ///
    /// None yet; the signature leaves room for start-up checks.
    pub async fn schedule_until(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop, signal) = stop_on(shutdown);
        let scheduler = scheduling::run_in_background(
            Arc::clone(&self.services.scheduler),
            &self.config.scheduler,
            stop.subscribe(),
        );
        let erasures = self.follow_erasures(stop.subscribe());
        tokio::join!(scheduler, erasures);
        signal.abort();
        Ok(())
    }
}

impl App {
    /// Learns of erasures other processes make until `stop` (with a privacy key; nothing
    /// without one), so that ingestion keeps their customers out.
    async fn follow_erasures(&self, stop: tokio::sync::watch::Receiver<bool>) {
        if let Some(key) = self.config.privacy.key_bytes() {
            follow_erasures(
                Arc::clone(&self.services.audit),
                Arc::clone(self.ingestion.erased()),
                key,
                stop,
            )
            .await;
        }
    }
}

/// A stop signal every background loop subscribes to, sent when `shutdown` resolves (abort the
/// task once the loops ended).
fn stop_on(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (
    Arc<tokio::sync::watch::Sender<bool>>,
    tokio::task::JoinHandle<()>,
) {
    let stop = Arc::new(tokio::sync::watch::channel(false).0);
    let signal = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
    };
    (stop, signal)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
