//! The services callers use: the API holds them as a handful of trait objects, the CLI and
//! (next) the scheduler and stream consumers call the same ones.
//!
//! - [`AccessService`]: log in, refresh, log out, and admit a request (who, may they, how often);
//! - [`AnalyticsService`]: the warehouse's catalogue, entities, pages and exports, behind a
//!   circuit breaker and a cache layered around the warehouse;
//! - [`IngestService`]: files, HTTP bodies and changes to one transaction into bronze;
//! - [`PipelineService`]: start, run and follow runs of the asset graph;
//! - [`OperationsService`]: readiness and metrics;
//! - [`ModelsService`]: forecasts, anomalies, customer lifetime value and the model registry,
//!   as the models asset wrote them to gold;
//! - [`SearchService`]: searches and completions over the search index port;
//! - [`RecommendationsService`]: what sells with a product, what to suggest to a customer, as
//!   the recommendations asset wrote them to gold;
//! - [`AlertsService`]: alerts from the platform's rules and from Prometheus, routed, grouped,
//!   silenced, acknowledged and escalated, as notifications to receivers;
//! - [`SchedulerService`]: cron schedules and sensors (a landing directory, an asset's new
//!   version) that start ingestions and runs, under a lease one replica holds;
//! - [`GdprService`]: erasure, access and portability; [`ConsentService`]: consent per customer
//!   and purpose, which profiling and marketing respect.
//!
//! Each is a trait with one implementation here, built from ports and the pipeline's use cases
//! by the composition root (`retail-app`); nothing here picks an adapter.

pub mod access;
pub mod alerts;
pub mod analytics;
pub mod audit;
pub mod clock;
mod columns;
mod config;
pub mod consent;
mod error;
pub mod gdpr;
pub mod ingest;
pub mod lineage;
pub mod marketing;
pub mod models;
pub mod openlineage;
pub mod operations;
pub mod pipeline;
pub mod recommendations;
pub mod scheduler;
pub mod search;
mod tables;

use std::sync::Arc;

pub use access::{AccessService, Admission, Credentials, Principal, TokenPair};
pub use alerts::{AlertManager, AlertsService};
pub use analytics::{AnalyticsService, Answer, CustomerDetail, RawParams};
pub use audit::{Audit, AuditService};
pub use config::ApiConfig;
pub use consent::{ConsentService, Consents, CustomerConsent};
pub use error::{Error, Result};
pub use gdpr::{ErasureReport, Gdpr, GdprService, SubjectExport};
pub use ingest::{IngestOutcome, IngestService, RecordProblem, Sender, TransactionChange};
pub use lineage::{LineageService, PlatformLineage};
pub use marketing::{Audience, Marketing, MarketingService};
pub use models::{LakeModels, ModelsService};
pub use operations::{OperationsService, Readiness, StreamHealth};
pub use pipeline::{AssetInfo, BackfillSummary, PartitionScope, PipelineService};
pub use recommendations::{LakeRecommendations, RecommendationsService};
pub use retail_ingest::decode::Format;
pub use retail_metadata::{
    PartitionFilter, PartitionState, PartitionStatus, RunFilter, RunKind, RunRecord, RunStatus,
};
pub use retail_pipeline::{
    BackfillRequest, PipelineStatus, RunRequest, Staleness, invoice_month, months_between,
};
pub use retail_warehouse::{Catalogue, Cell, QueryResult, catalogue};
pub use scheduler::{Scheduler, SchedulerService};
pub use search::{Search, SearchService};

/// The services, as the API and the CLI hold them.
#[derive(Clone)]
pub struct Services {
    /// Authentication, roles and rate limits.
    pub access: Arc<dyn AccessService>,
    /// The warehouse's answers.
    pub analytics: Arc<dyn AnalyticsService>,
    /// Ingestion into bronze.
    pub ingest: Arc<dyn IngestService>,
    /// Pipeline runs.
    pub pipeline: Arc<dyn PipelineService>,
    /// Schedules and sensors.
    pub scheduler: Arc<dyn SchedulerService>,
    /// Readiness and metrics.
    pub operations: Arc<dyn OperationsService>,
    /// What the models predict.
    pub models: Arc<dyn ModelsService>,
    /// Search and completions.
    pub search: Arc<dyn SearchService>,
    /// What sells with what.
    pub recommendations: Arc<dyn RecommendationsService>,
    /// Alerts, silences and notifications.
    pub alerts: Arc<dyn AlertsService>,
    /// The audit trail.
    pub audit: Arc<dyn AuditService>,
    /// GDPR requests: erasure, access and portability.
    pub gdpr: Arc<dyn GdprService>,
    /// Consent per customer and purpose.
    pub consent: Arc<dyn ConsentService>,
    /// The marketing audience (customers who consent to marketing).
    pub marketing: Arc<dyn MarketingService>,
    /// Column lineage from the sources to the API.
    pub lineage: Arc<dyn LineageService>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}
