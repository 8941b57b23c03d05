//! The metadata store: what the platform records about itself, behind one port.
//!
//! Runs (ingestions and pipeline runs, with their assets, reconciliation and quality report),
//! API users, refresh tokens, revoked access tokens and API keys live in one database, and
//! long operations claim it so that two processes never run them at once. Two adapters
//! implement [`MetadataStore`] with the same versioned schema and the same tests:
//!
//! - [`SqliteStore`]: a SQLite file beside the lake (the embedded profile), in WAL mode, used
//!   from the blocking pool so that no async worker waits on the disk; claims are OS file
//!   locks beside the file.
//! - [`PostgresStore`]: a schema of a PostgreSQL database (`metadata.url`), shared by API
//!   replicas; claims are session advisory locks, released when their connection closes.
//!
//! This crate does not decide which one to use: the composition root does, from
//! [`MetadataConfig`].
//!
//! ```no_run
//! # async fn example() -> retail_metadata::Result<()> {
//! use retail_metadata::{MetadataStore, RunKind, RunRecord, RunStatus, SqliteStore};
//!
//! let store = SqliteStore::open(std::path::Path::new("./data/retail.db"))?;
//! let _claim = store.claim("pipeline run").await?;
//! let mut run = RunRecord::start(RunKind::Pipeline);
//! store.save_run(&run).await?;
//! run.finish(RunStatus::Succeeded);
//! store.save_run(&run).await?;
//! # Ok(())
//! # }
//! ```

mod audit;
mod auth;
mod claim;
mod config;
mod consent;
mod error;
mod lease;
mod partition;
mod postgres;
mod record;
mod sealed;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use retail_domain::audit::{AuditEntry, AuditEvent};

pub use audit::AuditFilter;
pub use auth::{ApiKeyRecord, RefreshTokenRecord, Rotation, UserRecord};
pub use claim::Claim;
pub use config::MetadataConfig;
pub use consent::ConsentRecord;
pub use error::{Error, Result};
pub use lease::Lease;
pub use partition::{
    PartitionFilter, PartitionState, PartitionStatus, asset_scope, backfill_scope,
};
pub use postgres::PostgresStore;
pub use record::{
    AssetRun, CheckResult, Consistency, FileOutcome, QualityReport, Reconciliation, RunDetail,
    RunFilter, RunKind, RunRecord, RunStatus, Timeliness,
};
pub use sealed::{FieldKeys, SealedStore};
pub use sqlite::SqliteStore;

/// Everything the platform records about itself.
///
/// Every method is safe to call from async code: implementations never block an async
/// worker. Methods that change state are atomic on their own.
#[async_trait]
pub trait MetadataStore: Send + Sync + std::fmt::Debug {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Where the store lives, for messages (never a password).
    fn location(&self) -> String;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<()>;

    /// Claims an operation (`pipeline run`, `ingestion`) for this process, so that two
    /// processes sharing the store never run it at once. Released when the claim is dropped,
    /// and by the OS or the database when the process dies.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when another holder has it.
    async fn claim(&self, operation: &'static str) -> Result<Claim>;

    /// Inserts or replaces a run record.
    async fn save_run(&self, run: &RunRecord) -> Result<()>;

    /// The newest runs first, at most `limit`, optionally of one kind.
    async fn runs(&self, kind: Option<RunKind>, limit: usize) -> Result<Vec<RunRecord>> {
        self.list_runs(&RunFilter {
            kind,
            limit,
            ..RunFilter::default()
        })
        .await
    }

    /// The runs `filter` selects, newest first (by start, then id).
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>>;

    /// One run by id.
    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>>;

    /// The first ingestion recorded under an idempotency key's digest.
    async fn run_by_idempotency_key(&self, digest: &str) -> Result<Option<RunRecord>>;

    /// Marks every run of `kind` still `running` as failed with `error`: call it while holding
    /// the operation's claim, so that the runs it finds were left by a process that died.
    /// Returns how many were marked.
    async fn fail_interrupted_runs(&self, kind: RunKind, error: &str) -> Result<u64>;

    /// Adds a user; `false` when the name is taken.
    async fn insert_user(&self, user: &UserRecord) -> Result<bool>;

    /// A user by name.
    async fn user(&self, username: &str) -> Result<Option<UserRecord>>;

    /// Every user, by name.
    async fn users(&self) -> Result<Vec<UserRecord>>;

    /// Disables a user and revokes their refresh tokens; `false` when no such user.
    async fn disable_user(&self, username: &str) -> Result<bool>;

    /// Stores a refresh token (by its hash).
    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> Result<()>;

    /// A refresh token by its hash.
    async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshTokenRecord>>;

    /// Trades the refresh token `token_hash` for `next_hash` (expiring at `next_expires_at`)
    /// in one transaction, at `now` (Unix seconds): an unspent token is spent and the next
    /// one stored in its session; one spent less than `grace_seconds` ago (a client retrying
    /// a refresh whose answer it lost) also gets the next one; one spent longer ago revokes
    /// its whole session. Concurrent rotations of one token are serialised.
    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        next_hash: &str,
        next_expires_at: i64,
        now: i64,
        grace_seconds: i64,
    ) -> Result<Rotation>;

    /// Revokes every refresh token of a session family.
    async fn revoke_refresh_family(&self, family: &str) -> Result<()>;

    /// Records an access token (by its `jti`) as revoked until `expires_at` (Unix seconds).
    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<()>;

    /// The access tokens revoked and not yet expired at `now` (Unix seconds); expired entries
    /// are forgotten.
    async fn revoked_access_tokens(&self, now: i64) -> Result<Vec<String>>;

    /// Stores an API key (by its hash).
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()>;

    /// An API key by the hash of the key.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;

    /// Every API key, oldest first.
    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>>;

    /// Revokes an API key; `false` when no key has this id.
    async fn revoke_api_key(&self, id: &str) -> Result<bool>;

    /// The alert manager's state document and its version (0 and `None` when never saved).
    async fn alert_state(&self) -> Result<(i64, Option<String>)>;

    /// Replaces the alert manager's state document if its version is still `expected`
    /// (compare and swap: two replicas changing it at once cannot lose either change);
    /// `false` when another writer was first, and nothing was written.
    async fn save_alert_state(&self, expected: i64, document: &str) -> Result<bool>;

    /// A named cursor (a schedule's last tick, a sensor's position) and its version (0 and
    /// `None` when never saved).
    async fn cursor(&self, name: &str) -> Result<(i64, Option<String>)>;

    /// Replaces the cursor `name` if its version is still `expected` (compare and swap: a
    /// holder that lost its lease cannot overwrite its successor's progress); `false` when
    /// another writer was first, and nothing was written.
    async fn save_cursor(&self, name: &str, expected: i64, value: &str) -> Result<bool>;

    /// Takes the lease `name` for `holder` until `now + ttl` when it is free, expired at `now`
    /// or already `holder`'s (then renews it), in one atomic step; returns the lease as it
    /// stands afterwards, whoever holds it. Unlike a [`Claim`], a lease also lapses when its
    /// holder hangs or its machine vanishes without closing a connection.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<Lease>;

    /// Frees the lease `name` at once if `holder` holds it (a clean shutdown); nothing otherwise.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// The lease `name` as recorded (possibly expired); `None` when never taken or released.
    async fn lease(&self, name: &str) -> Result<Option<Lease>>;

    /// Records the state of partitions of `scope` (an asset's or a backfill's), replacing
    /// what was recorded for the same keys, in one transaction.
    async fn save_partitions(&self, scope: &str, states: &[PartitionState]) -> Result<()>;

    /// A page of the partitions of `scope`, in key order.
    async fn partitions(
        &self,
        scope: &str,
        filter: &PartitionFilter,
    ) -> Result<Vec<PartitionState>>;

    /// How many partitions of `scope` are in each state (states with none left out).
    async fn partition_counts(
        &self,
        scope: &str,
    ) -> Result<std::collections::BTreeMap<PartitionStatus, u64>>;

    /// Appends `event` to the audit trail as the entry after the last one, sealed with its
    /// hash (`retail_domain::audit`); appends from every process are serialised, so the chain
    /// has no fork. The trail's table refuses updates and deletes.
    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEntry>;

    /// Audit entries matching `filter`, in order of number.
    async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;

    /// Audit entries matching `filter` as the trail stores them, which is what the chain's
    /// hashes cover: the same as [`MetadataStore::audit_entries`] unless fields are sealed
    /// ([`SealedStore`]).
    async fn audit_entries_as_stored(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        self.audit_entries(filter).await
    }

    /// Appends a customer's choice to the consent log.
    async fn append_consent(&self, record: &ConsentRecord) -> Result<()>;

    /// A customer's choices, oldest first.
    async fn consent_history(&self, customer_id: &str) -> Result<Vec<ConsentRecord>>;

    /// The latest choice of every customer who made one about `purpose`: (customer, granted).
    async fn latest_consents(&self, purpose: &str) -> Result<Vec<(String, bool)>>;

    /// Removes a customer's choices (the GDPR erasure). Returns how many.
    async fn erase_consent(&self, customer_id: &str) -> Result<u64>;

    /// Every customer with a choice in the consent log, once each.
    async fn consent_customers(&self) -> Result<Vec<String>>;

    /// Files every choice of customer `from` under `to` (in one statement). Returns how many.
    async fn rename_consent_customer(&self, from: &str, to: &str) -> Result<u64>;
}

/// The current time as stored: UTC, truncated to microseconds (what both databases keep), so
/// that a record read back equals the one written.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
