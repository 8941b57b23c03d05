//! What keeps search and recommendations in step with gold:
//!
//! - [`SearchFollower`], a follower of gold (the `search` asset): reads gold's products,
//!   customers and invoices, trains the product embeddings, and brings the index up to date,
//!   rewriting only the documents that changed;
//! - [`RecommendationsAsset`] (`recommendations`): fits the association rules, the item-to-item
//!   neighbours and every customer's "for you" list and writes them to gold's
//!   `product_pairs`, `product_neighbours` and `customer_recommendations`, each commit marked
//!   with the gold version.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use deltalake::arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, StringArray};
use deltalake::arrow::record_batch::RecordBatch;
use retail_domain::ports::{BoxFuture, CatchUp, ConsentRegister, Follower, GoldVersion, PortError};
use retail_domain::privacy::Purpose;
use retail_domain::search::Document;
use retail_lake::Lake;
use retail_lake::schema::{
    self as tables, GOLD_CUSTOMER_RECOMMENDATIONS, GOLD_PRODUCT_NEIGHBOURS, GOLD_PRODUCT_PAIRS,
    RECOMMENDATIONS_MARK, TableSpec,
};
use retail_metadata::AssetRun;
use retail_pipeline::{
    Asset, RunContext, Staleness, gold_to_follow, gold_version, staleness_by_mark,
};
use serde_json::json;
use tracing::info;

use crate::baskets::Groups;
use crate::embed::{EmbeddingSettings, Embeddings};
use crate::error::{Error, Result};
use crate::gold::Gold;
use crate::index::{IndexDir, Payload, payload};
use crate::recommend::{self, RecommendSettings};
use crate::sealed::Location;

/// What one catch-up of the index did.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexReport {
    /// The commit's payload.
    pub payload: Payload,
    /// Milliseconds reading gold, training the embeddings, writing the index.
    pub read_ms: u64,
    /// See `read_ms`.
    pub embed_ms: u64,
    /// See `read_ms`.
    pub index_ms: u64,
    /// The index's size on disk, in bytes.
    pub bytes: u64,
}

/// The documents of gold, in the order the index takes them.
pub fn documents(gold: &Gold) -> Vec<Document> {
    let mut out =
        Vec::with_capacity(gold.products.len() + gold.customers.len() + gold.invoices.len());
    out.extend(gold.products.iter().cloned().map(Document::Product));
    out.extend(gold.customers.iter().cloned().map(Document::Customer));
    out.extend(gold.invoices.iter().cloned().map(Document::Invoice));
    out
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(std::result::Result::ok)
                .filter_map(|entry| entry.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|meta| meta.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Reads gold and brings the index in `dir` up to date with it (`rebuild`: from scratch).
///
/// # Errors
///
/// When gold cannot be read or the index written.
pub async fn index_gold(
    lake: &Lake,
    dir: &std::path::Path,
    settings: EmbeddingSettings,
    rebuild: bool,
) -> Result<IndexReport> {
    let gold_version = gold_version(lake)
        .await
        .map_err(|source| Error::Schema {
            detail: format!("cannot tell gold's version: {source}"),
        })?
        .ok_or_else(|| {
            Error::Invalid("gold has not been built yet: run retail pipeline run".to_owned())
        })?;
    let started = Instant::now();
    let gold = Gold::read(lake).await?;
    let read_ms = started.elapsed().as_millis() as u64;
    let dir = dir.to_path_buf();
    let location = Location::new(&dir, lake.keyring().cloned());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let embeddings = Embeddings::train(&gold, settings).to_bytes();
        let embed_ms = started.elapsed().as_millis() as u64;
        let started = Instant::now();
        let payload =
            IndexDir::new(location).sync(gold_version, &documents(&gold), &embeddings, rebuild)?;
        Ok(IndexReport {
            payload,
            read_ms,
            embed_ms,
            index_ms: started.elapsed().as_millis() as u64,
            bytes: dir_size(&dir),
        })
    })
    .await
    .map_err(Error::Task)?
}

/// The search index as a follower of gold.
#[derive(Debug, Clone)]
pub struct SearchFollower {
    lake: Lake,
    dir: PathBuf,
    settings: EmbeddingSettings,
}

impl SearchFollower {
    /// The index of `lake`'s gold in `dir`.
    pub fn new(lake: Lake, dir: impl Into<PathBuf>, settings: EmbeddingSettings) -> Self {
        Self {
            lake,
            dir: dir.into(),
            settings,
        }
    }
}

impl SearchFollower {
    /// The index's location, sealed when the lake is.
    fn location(&self) -> Location {
        Location::new(&self.dir, self.lake.keyring().cloned())
    }
}

impl Follower for SearchFollower {
    fn key(&self) -> &'static str {
        "search"
    }

    fn description(&self) -> &'static str {
        "the search index of products, customers and invoices, with the product embeddings"
    }

    fn caught_up(&self) -> BoxFuture<'_, std::result::Result<Option<GoldVersion>, PortError>> {
        Box::pin(async move {
            let location = self.location();
            let found = tokio::task::spawn_blocking(move || payload(&location))
                .await
                .map_err(|source| PortError::new(Error::Task(source)))?
                .map_err(PortError::new)?;
            Ok(found.map(|payload| payload.gold_version))
        })
    }

    fn catch_up(
        &self,
        _gold: GoldVersion,
    ) -> BoxFuture<'_, std::result::Result<CatchUp, PortError>> {
        Box::pin(async move {
            let report = index_gold(&self.lake, &self.dir, self.settings, false)
                .await
                .map_err(PortError::new)?;
            info!(?report, "search index caught up");
            Ok(CatchUp {
                rows: report.payload.written,
                detail_json: Some(
                    json!({
                        "documents": report.payload.documents,
                        "written": report.payload.written,
                        "removed": report.payload.removed,
                        "read_ms": report.read_ms,
                        "embed_ms": report.embed_ms,
                        "index_ms": report.index_ms,
                        "bytes": report.bytes,
                    })
                    .to_string(),
                ),
            })
        })
    }

    fn forget(&self, customers: &[String]) -> BoxFuture<'_, std::result::Result<u64, PortError>> {
        let customers = customers.to_vec();
        Box::pin(async move {
            let location = self.location();
            tokio::task::spawn_blocking(move || IndexDir::new(location).forget(&customers))
                .await
                .map_err(|source| PortError::new(Error::Task(source)))?
                .map_err(PortError::new)
        })
    }
}

/// Gold → association rules, item-to-item neighbours and "for you" lists.
#[derive(Debug, Clone)]
pub struct RecommendationsAsset {
    lake: Lake,
    settings: RecommendSettings,
    consent: Option<Arc<dyn ConsentRegister>>,
}

impl RecommendationsAsset {
    /// The recommendations of `lake`'s gold, fitted with `settings`.
    pub fn new(lake: Lake, settings: RecommendSettings) -> Self {
        Self {
            lake,
            settings,
            consent: None,
        }
    }

    /// Writes "for you" lists only for customers `register` allows to be profiled (ADR 0014).
    #[must_use]
    pub fn with_consent(mut self, register: Arc<dyn ConsentRegister>) -> Self {
        self.consent = Some(register);
        self
    }
}

fn strings(values: impl IntoIterator<Item = String>) -> ArrayRef {
    Arc::new(StringArray::from(values.into_iter().collect::<Vec<_>>()))
}

fn batch(table: &TableSpec, columns: Vec<ArrayRef>) -> retail_pipeline::Result<RecordBatch> {
    RecordBatch::try_new(table.arrow_schema(), columns)
        .map_err(retail_pipeline::Error::transform("recommendations"))
}

/// The three tables' content.
struct Fitted {
    pairs: RecordBatch,
    neighbours: RecordBatch,
    customers: RecordBatch,
    detail: serde_json::Value,
}

fn fit(gold: &Gold, settings: RecommendSettings) -> retail_pipeline::Result<Fitted> {
    let code = |product: u32| gold.products[product as usize].stock_code.clone();
    let n = gold.products.len();
    let baskets = Groups::baskets(&gold.purchases, n, None);
    let rules = recommend::rules(&baskets, settings.min_pair_baskets);
    let pairs = batch(
        &GOLD_PRODUCT_PAIRS,
        vec![
            strings(rules.iter().map(|rule| code(rule.antecedent))),
            strings(rules.iter().map(|rule| code(rule.consequent))),
            Arc::new(Int64Array::from(vec![baskets.len() as i64; rules.len()])),
            Arc::new(Int64Array::from_iter_values(
                rules.iter().map(|rule| i64::from(rule.baskets_antecedent)),
            )),
            Arc::new(Int64Array::from_iter_values(
                rules.iter().map(|rule| i64::from(rule.baskets_consequent)),
            )),
            Arc::new(Int64Array::from_iter_values(
                rules.iter().map(|rule| i64::from(rule.baskets_both)),
            )),
            Arc::new(Float64Array::from_iter_values(
                rules.iter().map(|r| r.support),
            )),
            Arc::new(Float64Array::from_iter_values(
                rules.iter().map(|r| r.confidence),
            )),
            Arc::new(Float64Array::from_iter_values(rules.iter().map(|r| r.lift))),
        ],
    )?;
    let model = recommend::ForYouModel::fit(gold, None, settings);
    let flat: Vec<(usize, &recommend::Neighbour)> = model
        .neighbours
        .iter()
        .flat_map(|list| list.iter().enumerate())
        .collect();
    let neighbour_batch = batch(
        &GOLD_PRODUCT_NEIGHBOURS,
        vec![
            strings(flat.iter().map(|(_, n)| code(n.product))),
            Arc::new(Int32Array::from_iter_values(
                flat.iter().map(|(rank, _)| *rank as i32 + 1),
            )),
            strings(flat.iter().map(|(_, n)| code(n.neighbour))),
            Arc::new(Float64Array::from_iter_values(
                flat.iter().map(|(_, n)| n.similarity),
            )),
            Arc::new(Int64Array::from_iter_values(
                flat.iter().map(|(_, n)| i64::from(n.customers_both)),
            )),
        ],
    )?;
    let (mut ids, mut ranks, mut codes, mut scores, mut because) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (index, customer) in model.histories.keys.iter().enumerate() {
        for (rank, pick) in model
            .picks(Some(index), settings.per_customer)
            .iter()
            .enumerate()
        {
            ids.push(gold.customers[*customer as usize].customer_id.clone());
            ranks.push(rank as i32 + 1);
            codes.push(code(pick.product));
            scores.push(pick.score);
            because.push(pick.because.map(code));
        }
    }
    let customers = batch(
        &GOLD_CUSTOMER_RECOMMENDATIONS,
        vec![
            strings(ids),
            Arc::new(Int32Array::from(ranks)),
            strings(codes),
            Arc::new(Float64Array::from(scores)),
            Arc::new(StringArray::from(because)),
        ],
    )?;
    let detail = json!({
        "baskets": baskets.len(),
        "rules": pairs.num_rows(),
        "neighbours": neighbour_batch.num_rows(),
        "customer_recommendations": customers.num_rows(),
        "min_pair_baskets": settings.min_pair_baskets,
    });
    Ok(Fitted {
        pairs,
        neighbours: neighbour_batch,
        customers,
        detail,
    })
}

#[async_trait]
impl Asset for RecommendationsAsset {
    fn key(&self) -> &'static str {
        "recommendations"
    }

    fn description(&self) -> &'static str {
        "association rules (support, confidence, lift), products bought by the same customers, \
         and every customer's products for you"
    }

    fn upstream(&self) -> &'static [&'static str] {
        &["gold"]
    }

    fn tables(&self) -> Vec<TableSpec> {
        tables::tables_of(tables::Writer::Recommendations)
    }

    async fn staleness(&self) -> retail_pipeline::Result<Staleness> {
        staleness_by_mark(
            &self.lake,
            &GOLD_CUSTOMER_RECOMMENDATIONS,
            RECOMMENDATIONS_MARK,
            "fitted",
        )
        .await
    }

    async fn materialize(&self, cx: &mut RunContext<'_>) -> retail_pipeline::Result<bool> {
        let key = self.key();
        let Some(gold) = gold_to_follow(
            &self.lake,
            &GOLD_CUSTOMER_RECOMMENDATIONS,
            RECOMMENDATIONS_MARK,
            cx.force,
        )
        .await?
        else {
            cx.run.detail.assets.push(AssetRun::up_to_date(key));
            return Ok(false);
        };
        cx.progress
            .begin("recommendations (read gold, fit, write)", 3);
        let started = Instant::now();
        let consent =
            retail_pipeline::consent::view(self.consent.as_ref(), Purpose::Profiling).await?;
        let data = Gold::read(&self.lake)
            .await
            .map_err(|source| retail_pipeline::Error::Read {
                table: tables::GOLD_FACT_SALES.name,
                source: Box::new(source),
            })?;
        cx.progress.advance(1);
        let settings = self.settings;
        let fitted = tokio::task::spawn_blocking(move || fit(&data, settings))
            .await
            .map_err(retail_pipeline::Error::Task)??;
        cx.progress.advance(1);
        // Personal lists only for customers who consent to profiling; the rules and
        // neighbours are about products, counted over everyone's baskets.
        let (customers, withheld) =
            retail_pipeline::consent::keep_allowed(&fitted.customers, &consent)
                .map_err(retail_pipeline::Error::transform("recommendations"))?;
        let marks = [(RECOMMENDATIONS_MARK.to_owned(), gold)];
        let mut rows = 0;
        for (table, batch) in [
            (GOLD_PRODUCT_PAIRS, &fitted.pairs),
            (GOLD_PRODUCT_NEIGHBOURS, &fitted.neighbours),
            (GOLD_CUSTOMER_RECOMMENDATIONS, &customers),
        ] {
            let mut writer = self.lake.overwriter(&table).await?;
            writer.write(batch.clone()).await?;
            writer.commit(&marks).await?;
            rows += batch.num_rows() as u64;
        }
        cx.progress.advance(1);
        cx.progress.end();
        let mut detail = fitted.detail;
        detail["ms"] = json!(started.elapsed().as_millis() as u64);
        detail["withheld_rows_without_consent"] = json!(withheld);
        info!(gold, rows, "recommendations fitted");
        cx.run.detail.assets.push(AssetRun {
            detail: Some(detail),
            ..AssetRun::materialized(key, rows, Some(gold as u64))
        });
        Ok(true)
    }
}
