//! Freshness SLAs: how far each asset with a policy lags behind the data that reached the
//! platform, and whether that is more than it may.
//!
//! **The lag of an asset**, exactly: 0 while it and every asset upstream of it are up to date.
//! Otherwise the time from the *first commit it has not caught up with* to now, where that
//! commit is the earliest commit to an upstream table (bronze for silver; the first table of
//! each upstream asset for the rest) made after the start of the newest run in which the asset
//! was up to date (recorded as `materialized` or `up_to_date`); an asset that was never up to
//! date counts from the first commit upstream. An asset's lag is at least the lag of every
//! asset upstream of it: gold that is current with a silver that has not read the morning's
//! files is as late as silver.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use retail_lake::TableSpec;
use retail_lake::schema::BRONZE_TRANSACTIONS;
use retail_metadata::{RunFilter, RunKind};
use serde::{Deserialize, Serialize};

use super::Runner;
use crate::asset::{BRONZE, Staleness};
use crate::error::Result;

/// How stale an asset may get (`[pipeline.freshness."KEY"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessPolicy {
    /// The most minutes it may lag (at least 1).
    pub max_lag_minutes: u64,
    /// The severity of the alert a breach raises: `warning` (default) or `critical`.
    #[serde(default = "warning")]
    pub severity: String,
}

fn warning() -> String {
    "warning".to_owned()
}

/// An asset's freshness against its policy.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Freshness {
    /// The asset.
    pub asset: String,
    /// Its policy's limit.
    pub max_lag_minutes: u64,
    /// Its policy's severity.
    pub severity: String,
    /// Its lag in seconds now (see the module's definition).
    pub lag_seconds: u64,
    /// The first commit upstream it has not caught up with (`None` while up to date).
    pub behind_since: Option<DateTime<Utc>>,
    /// Whether the lag is over the limit.
    pub breached: bool,
}

impl Runner {
    /// Sets the freshness policies (by asset key).
    #[must_use]
    pub fn with_freshness(mut self, policies: BTreeMap<String, FreshnessPolicy>) -> Self {
        self.freshness = policies;
        self
    }

    /// Every asset with a policy, its lag at `now` and whether it breaches the policy.
    ///
    /// # Errors
    ///
    /// When a table's log or the run history cannot be read.
    pub async fn freshness(&self, now: DateTime<Utc>) -> Result<Vec<Freshness>> {
        let mut since: HashMap<String, Option<DateTime<Utc>>> = HashMap::new();
        let mut out = Vec::with_capacity(self.freshness.len());
        for (key, policy) in &self.freshness {
            let behind = self.behind_since(key, &mut since).await?;
            let lag = behind.map_or(0, |at| u64::try_from((now - at).num_seconds()).unwrap_or(0));
            let breached = lag > policy.max_lag_minutes.saturating_mul(60);
            retail_telemetry::metrics::set_asset_freshness(key, lag, breached);
            out.push(Freshness {
                asset: key.clone(),
                max_lag_minutes: policy.max_lag_minutes,
                severity: policy.severity.clone(),
                lag_seconds: lag,
                behind_since: behind,
                breached,
            });
        }
        Ok(out)
    }

    /// The first commit upstream `key` has not caught up with, or `None` when it and its
    /// upstream are up to date; memoised in `known`.
    async fn behind_since(
        &self,
        key: &str,
        known: &mut HashMap<String, Option<DateTime<Utc>>>,
    ) -> Result<Option<DateTime<Utc>>> {
        if let Some(at) = known.get(key) {
            return Ok(*at);
        }
        let Some(asset) = self.asset(key).cloned() else {
            return Ok(None);
        };
        let mut earliest: Option<DateTime<Utc>> = None;
        for upstream in asset.upstream() {
            if *upstream != BRONZE {
                let theirs = Box::pin(self.behind_since(upstream, known)).await?;
                earliest = min_time(earliest, theirs);
            }
        }
        if asset.staleness().await? != Staleness::UpToDate {
            let current_at = self.last_current_run(key).await?;
            let mut own = None;
            for table in self.upstream_tables(asset.upstream()) {
                let first = self.lake.first_commit_after(&table, current_at).await?;
                own = min_time(own, first);
            }
            // Behind, but nothing upstream committed since it was current (a commit in the
            // same instant): count from then.
            earliest = min_time(earliest, own.or(current_at));
        }
        known.insert(key.to_owned(), earliest);
        Ok(earliest)
    }

    /// The start of the newest run that left `key` up to date, if any (of the last 100 runs
    /// that went through it).
    async fn last_current_run(&self, key: &str) -> Result<Option<DateTime<Utc>>> {
        let names = self.recorded_names(key);
        let runs = self
            .store
            .list_runs(&RunFilter {
                kind: Some(RunKind::Pipeline),
                assets: names.clone(),
                limit: 100,
                ..RunFilter::default()
            })
            .await?;
        Ok(runs
            .iter()
            .find(|run| {
                let entries: Vec<_> = run
                    .detail
                    .assets
                    .iter()
                    .filter(|a| names.contains(&a.asset))
                    .collect();
                !entries.is_empty()
                    && entries
                        .iter()
                        .all(|a| a.status == "materialized" || a.status == "up_to_date")
            })
            .map(|run| run.started_at))
    }

    /// The table that stands for each upstream asset: bronze's, or the first it writes (the
    /// upstream of a follower, gold, writes all of its tables in every build).
    fn upstream_tables(&self, upstream: &[&str]) -> Vec<TableSpec> {
        upstream
            .iter()
            .filter_map(|key| {
                if *key == BRONZE {
                    return Some(BRONZE_TRANSACTIONS);
                }
                self.asset(key).and_then(|a| a.tables().first().copied())
            })
            .collect()
    }
}

/// The earlier of two times, either of which may be missing.
fn min_time(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    a.into_iter().chain(b).min()
}
