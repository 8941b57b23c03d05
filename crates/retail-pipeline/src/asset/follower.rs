//! Followers of gold as assets: each [`Follower`] (the PostgreSQL warehouse, the embedded
//! snapshot, and next the search index and models) is an asset downstream of gold, caught up
//! by the runner after every gold build.

use std::sync::Arc;

use async_trait::async_trait;
use retail_domain::ports::{Follower, GoldVersion};
use retail_lake::Lake;
use retail_lake::schema::{self as tables, GOLD_FACT_SALES, TableSpec};
use retail_metadata::AssetRun;

use super::{Asset, RunContext, Staleness};
use crate::GOLD_APP_ID;
use crate::error::{Error, Result};

/// A follower of gold, run as an asset downstream of gold.
#[derive(Debug, Clone)]
pub struct FollowerAsset {
    lake: Lake,
    follower: Arc<dyn Follower>,
}

impl FollowerAsset {
    /// `follower` as an asset over `lake`'s gold.
    pub fn new(lake: Lake, follower: Arc<dyn Follower>) -> Self {
        Self { lake, follower }
    }
}

/// The version of gold as a whole: the Delta version of `gold/fact_sales`, when every gold
/// table was built from the same silver version; `None` when gold was never built.
///
/// # Errors
///
/// [`Error::GoldIncomplete`] when a gold build was cut short (its tables disagree), or when a
/// log cannot be read.
pub async fn gold_version(lake: &Lake) -> Result<Option<GoldVersion>> {
    let mut marks = Vec::new();
    for table in tables::tables_of(tables::Writer::Gold) {
        marks.push(lake.app_version(&table, GOLD_APP_ID).await?);
    }
    if marks.iter().all(Option::is_none) {
        return Ok(None);
    }
    if marks.iter().any(|mark| *mark != marks[0]) {
        return Err(Error::GoldIncomplete);
    }
    Ok(lake
        .latest_version(&GOLD_FACT_SALES)
        .await?
        .map(|version| version as GoldVersion))
}

/// How far an asset is behind gold when every table it writes carries the mark `app_id` = the
/// gold version it was made from, `table` being committed last; `made` says how it was made
/// (`trained`, `fitted`), for the reason of a stale one.
///
/// # Errors
///
/// As [`gold_version`], or when `table`'s log cannot be read.
pub async fn staleness_by_mark(
    lake: &Lake,
    table: &TableSpec,
    app_id: &str,
    made: &str,
) -> Result<Staleness> {
    let Some(gold) = gold_version(lake).await? else {
        return Ok(Staleness::UpToDate);
    };
    Ok(match lake.app_version(table, app_id).await? {
        None => Staleness::Missing,
        Some(mark) if mark == gold => Staleness::UpToDate,
        Some(mark) => Staleness::Stale(format!(
            "{made} on gold version {mark}; gold is at version {gold}"
        )),
    })
}

/// The gold version such an asset (see [`staleness_by_mark`]) must be made from now; `None`
/// when gold was never built, or when the asset was made from the current gold and `force` is
/// not set.
///
/// # Errors
///
/// As [`staleness_by_mark`].
pub async fn gold_to_follow(
    lake: &Lake,
    table: &TableSpec,
    app_id: &str,
    force: bool,
) -> Result<Option<GoldVersion>> {
    let Some(gold) = gold_version(lake).await? else {
        return Ok(None);
    };
    let mark = lake.app_version(table, app_id).await?;
    Ok((mark != Some(gold) || force).then_some(gold))
}

#[async_trait]
impl Asset for FollowerAsset {
    fn key(&self) -> &'static str {
        self.follower.key()
    }

    fn description(&self) -> &'static str {
        self.follower.description()
    }

    fn upstream(&self) -> &'static [&'static str] {
        &["gold"]
    }

    async fn staleness(&self) -> Result<Staleness> {
        let Some(gold) = gold_version(&self.lake).await? else {
            return Ok(Staleness::UpToDate);
        };
        let caught_up = self
            .follower
            .caught_up()
            .await
            .map_err(|source| Error::Follower {
                key: self.follower.key(),
                source,
            })?;
        Ok(match caught_up {
            None => Staleness::Missing,
            Some(version) if version == gold => Staleness::UpToDate,
            Some(version) => Staleness::Stale(format!(
                "it follows gold version {version}; gold is at version {gold}"
            )),
        })
    }

    async fn materialize(&self, cx: &mut RunContext<'_>) -> Result<bool> {
        let key = self.follower.key();
        let failed = |source| Error::Follower { key, source };
        let Some(gold) = gold_version(&self.lake).await? else {
            cx.run.detail.assets.push(AssetRun::up_to_date(key));
            return Ok(false);
        };
        let caught_up = self.follower.caught_up().await.map_err(failed)?;
        if caught_up == Some(gold) && !cx.force {
            cx.run.detail.assets.push(AssetRun::up_to_date(key));
            return Ok(false);
        }
        let report = self.follower.catch_up(gold).await.map_err(failed)?;
        cx.run.detail.assets.push(AssetRun {
            detail: report
                .detail_json
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok()),
            ..AssetRun::materialized(key, report.rows, Some(gold as u64))
        });
        Ok(true)
    }
}
