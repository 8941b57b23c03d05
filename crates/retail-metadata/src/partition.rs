//! Partitions: the state of each partition of an asset (`asset:gold`, by invoice month) and of
//! each partition a backfill re-materialises (`backfill:<id>`), read page by page.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a partition stands in its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartitionStatus {
    /// Waiting for its turn (a backfill's partitions before their run).
    Pending,
    /// In a run now (or in a run whose process died: a resumed backfill takes it again).
    Running,
    /// Materialised by its latest run.
    Succeeded,
    /// Its latest run failed; `error` says why.
    Failed,
}

impl PartitionStatus {
    /// Every status, in order.
    pub const ALL: [Self; 4] = [Self::Pending, Self::Running, Self::Succeeded, Self::Failed];

    /// The status as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// The status named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for PartitionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One partition's state in a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartitionState {
    /// The partition's key: an invoice month, `2011-03`.
    pub partition: String,
    /// Where it stands.
    pub status: PartitionStatus,
    /// The run that last took it (none while pending).
    pub run_id: Option<String>,
    /// Runs that took it so far (more than one after a resumed failure).
    pub attempts: u32,
    /// Rows it holds after its run (the fact rows of a month of gold).
    pub rows: Option<u64>,
    /// Why its latest run failed.
    pub error: Option<String>,
    /// When this state was recorded.
    pub updated_at: DateTime<Utc>,
}

impl PartitionState {
    /// A partition waiting for its first run.
    pub fn pending(partition: impl Into<String>) -> Self {
        Self {
            partition: partition.into(),
            status: PartitionStatus::Pending,
            run_id: None,
            attempts: 0,
            rows: None,
            error: None,
            updated_at: crate::now(),
        }
    }
}

/// Which partitions of a scope to read: in key order, after a key, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFilter {
    /// Only partitions in this state.
    pub status: Option<PartitionStatus>,
    /// Only keys after this one: the next page after a page that ended with it.
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

impl Default for PartitionFilter {
    fn default() -> Self {
        Self {
            status: None,
            after: None,
            limit: 100,
        }
    }
}

/// The scope of an asset's partitions: `asset:gold`.
pub fn asset_scope(asset: &str) -> String {
    format!("asset:{asset}")
}

/// The scope of a backfill's partitions: `backfill:<id>`.
pub fn backfill_scope(backfill_id: &str) -> String {
    format!("backfill:{backfill_id}")
}
