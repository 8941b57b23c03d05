//! What the runner and the ingestion service tell about the runs they make: the seam of
//! run-event emitters (OpenLineage). A listener never fails a run: it logs its own trouble.

use async_trait::async_trait;
use retail_metadata::{AssetRun, RunRecord};

/// Told of each pipeline run and each asset it materialises, in order: `run_started`, then
/// for each asset `asset_started` and `asset_finished`, then `run_finished`. A listener is
/// called inline; one that talks to a server bounds its waits.
#[async_trait]
pub trait RunListener: Send + Sync + std::fmt::Debug {
    /// The run was recorded as running.
    async fn run_started(&self, run: &RunRecord);

    /// The runner is about to materialise `asset`.
    async fn asset_started(&self, run: &RunRecord, asset: &str);

    /// `asset` finished: `recorded` is what it added to the run's detail (its tables and
    /// rows); `error` why it failed, if it did.
    async fn asset_finished(
        &self,
        run: &RunRecord,
        asset: &str,
        recorded: &[AssetRun],
        error: Option<&str>,
    );

    /// The run was recorded as finished (its status and error say how).
    async fn run_finished(&self, run: &RunRecord);

    /// An ingestion from a source of `system` (`file`, `api`, `kafka`, ...) was recorded as
    /// finished: told once, at the end (stream rounds that landed nothing are not recorded,
    /// nor told).
    async fn ingestion_finished(&self, run: &RunRecord, system: &str);
}
