//! Ports: the traits adapters implement so that use cases can drive them without knowing
//! them. Only the composition root picks the implementations.
//!
//! - [`Follower`]: everything that follows gold (the PostgreSQL warehouse, the embedded
//!   warehouse's snapshot, and next the search index, models and caches);
//! - [`SharedCache`] and [`SharedRateLimiter`]: state shared by API replicas (Redis);
//! - [`SearchIndex`]: full-text and semantic search of products, customers and invoices (the
//!   embedded tantivy index, Typesense);
//! - [`ConsentRegister`]: whom each purpose may process (the consent log of the metadata
//!   store), asked by the assets that profile customers.
//!
//! Ports return [`PortError`], which keeps the adapter's error as its source and its
//! [`ErrorKind`], so a caller can tell a transient failure (worth a retry) from a bug.

use std::future::Future;
use std::pin::Pin;

use crate::error::{Classify, ErrorKind};
use crate::privacy::{ConsentView, Purpose};
use crate::search::{DocKind, SearchRequest, SearchResults, Suggestion};

/// A boxed future, as object-safe async methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An adapter's error seen through a port: what kind of failure it is, and the adapter's own
/// error as its source.
#[derive(Debug)]
pub struct PortError {
    kind: ErrorKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl PortError {
    /// Wraps an adapter's error, keeping its kind.
    pub fn new<E>(error: E) -> Self
    where
        E: Classify + std::error::Error + Send + Sync + 'static,
    {
        Self {
            kind: error.kind(),
            source: Box::new(error),
        }
    }

    /// An error of `kind` with a message.
    pub fn message(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            source: message.into().into(),
        }
    }
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for PortError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

impl Classify for PortError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// Which gold a follower reflects: the Delta version of `gold/fact_sales` that a complete gold
/// build wrote. Every gold build commits `fact_sales` once, after its other tables agree on the
/// silver version they were built from, so the number names one build of all of gold.
pub type GoldVersion = i64;

/// What a follower did when it caught up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Rows it wrote or loaded.
    pub rows: u64,
    /// What it reports beyond rows, as a JSON document (a warehouse load's tables).
    pub detail_json: Option<String>,
}

/// Something that follows gold and must be kept in step with it: a warehouse, a snapshot, an
/// index, a model, a cache. The asset runner drives every follower after gold, and the GDPR
/// erasure asks each to forget customers.
pub trait Follower: Send + Sync + std::fmt::Debug {
    /// Its asset key, such as `warehouse/postgres`.
    fn key(&self) -> &'static str;

    /// What it is, for people.
    fn description(&self) -> &'static str;

    /// The gold version it has caught up to; `None` when it holds nothing yet.
    fn caught_up(&self) -> BoxFuture<'_, Result<Option<GoldVersion>, PortError>>;

    /// Brings it up to date with gold, which is at version `gold`.
    fn catch_up(&self, gold: GoldVersion) -> BoxFuture<'_, Result<CatchUp, PortError>>;

    /// Removes everything it holds about these customers (their ids). Returns the rows removed.
    fn forget(&self, customers: &[String]) -> BoxFuture<'_, Result<u64, PortError>>;
}

/// The verdict on one request against a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Go ahead; this many more fit in the burst right now.
    Allow {
        /// Requests left before limiting starts.
        remaining: u32,
    },
    /// Wait this long.
    Deny {
        /// Seconds until a request would be allowed (at least 1).
        retry_after: u64,
    },
}

/// Rate limits shared by every replica of the API.
pub trait SharedRateLimiter: Send + Sync + std::fmt::Debug {
    /// Counts a request of `key` against `per_minute` with `burst` extra at once.
    fn check<'a>(
        &'a self,
        key: &'a str,
        per_minute: u32,
        burst: u32,
    ) -> BoxFuture<'a, Result<RateDecision, PortError>>;
}

/// A cache shared by every replica of the API: text values under text keys, with a lifetime.
/// A cache that fails behaves as a cache that misses.
pub trait SharedCache: Send + Sync + std::fmt::Debug {
    /// The value stored under `key`, if any replica stored one still alive.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<String>>;

    /// Stores `value` under `key` for `ttl_seconds`.
    fn put<'a>(&'a self, key: &'a str, value: String, ttl_seconds: u64) -> BoxFuture<'a, ()>;
}

/// A search index of gold's products, customers and invoices. An index that has not been
/// built yet answers [`ErrorKind::Unavailable`]; a request it cannot serve (a semantic search
/// of invoices) [`ErrorKind::InvalidInput`].
pub trait SearchIndex: Send + Sync + std::fmt::Debug {
    /// Which engine answers (`tantivy`, `typesense`).
    fn engine(&self) -> &'static str;

    /// Runs a search.
    fn search<'a>(
        &'a self,
        request: &'a SearchRequest,
    ) -> BoxFuture<'a, Result<SearchResults, PortError>>;

    /// Completes what is being typed: documents (of `kind`, or any) whose words start with
    /// the last word of `prefix` and contain the others, the most popular first.
    fn suggest<'a>(
        &'a self,
        prefix: &'a str,
        kind: Option<DocKind>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Suggestion>, PortError>>;
}

/// The customers' consent, as the assets that process customers for a purpose ask it.
pub trait ConsentRegister: Send + Sync + std::fmt::Debug {
    /// Who may be processed for `purpose` now.
    fn view(&self, purpose: Purpose) -> BoxFuture<'_, Result<ConsentView, PortError>>;
}
