//! The gold asset: the star schema and aggregates from silver, full or month by month over the
//! stored per-month history (see `ARCHITECTURE.md`, data flow step 3).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use deltalake::arrow::array::{Array as _, AsArray as _, RecordBatch};
use deltalake::arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use deltalake::arrow::error::ArrowError;
use futures::TryStreamExt as _;
use retail_domain::progress::Progress;
use retail_lake::Lake;
use retail_lake::schema::{self as tables, HISTORY_TABLES, SILVER_TRANSACTIONS, TableSpec};
use retail_metadata::{AssetRun, Consistency, RunRecord};
use retail_telemetry::metrics;
use tracing::{Instrument as _, debug, info, info_span};

use super::{Asset, RunContext, SilverRows, Staleness};
use crate::GOLD_APP_ID;
use crate::error::{Error, Result};
use crate::gold::{
    CountryAttributesByName, Gold, GoldInput, GoldTable, PriorKeys, SILVER_COLUMNS, SilverSet,
    build_gold, countries_of, walk_order,
};
use crate::history::History;

/// Silver → the star schema (`fact_sales`, `dim_*`) and the aggregates, with gold's per-month
/// history.
#[derive(Debug, Clone)]
pub struct GoldAsset {
    lake: Lake,
}

impl GoldAsset {
    /// The gold asset of `lake`.
    pub fn new(lake: Lake) -> Self {
        Self { lake }
    }
}

#[async_trait]
impl Asset for GoldAsset {
    fn key(&self) -> &'static str {
        "gold"
    }

    fn description(&self) -> &'static str {
        "the star schema (fact_sales, dim_customer type 2, dim_product, dim_country, dim_date) \
         and the aggregates (daily_sales, product_monthly, customer_rfm, cohort_retention)"
    }

    fn upstream(&self) -> &'static [&'static str] {
        &["silver"]
    }

    fn tables(&self) -> Vec<TableSpec> {
        tables::tables_of(tables::Writer::Gold)
    }

    async fn staleness(&self) -> Result<Staleness> {
        let Some(silver) = self.lake.latest_version(&SILVER_TRANSACTIONS).await? else {
            return Ok(Staleness::UpToDate);
        };
        let mut behind = Vec::new();
        for table in tables::tables_of(tables::Writer::Gold) {
            match self.lake.app_version(&table, GOLD_APP_ID).await? {
                None => return Ok(Staleness::Missing),
                Some(mark) if mark == silver as i64 => {}
                Some(_) => behind.push(table.name),
            }
        }
        Ok(if behind.is_empty() {
            Staleness::UpToDate
        } else {
            Staleness::Stale(format!(
                "silver is at version {silver}; behind it: {}",
                behind.join(", ")
            ))
        })
    }

    async fn materialize(&self, cx: &mut RunContext<'_>) -> Result<bool> {
        let built = self
            .run_gold(
                cx.run,
                cx.force,
                cx.partitions,
                cx.silver_rows.take(),
                cx.progress,
            )
            .instrument(info_span!("gold"))
            .await?;
        let Some((consistency, months)) = built else {
            return Ok(false);
        };
        cx.consistency = Some(consistency);
        cx.built = months;
        Ok(true)
    }
}

impl GoldAsset {
    /// The surrogate keys of the current gold dimensions, so that a rebuild keeps them.
    async fn prior_keys(&self) -> Result<PriorKeys> {
        let (countries, products, customers) = tokio::try_join!(
            self.read_if_any(&tables::GOLD_DIM_COUNTRY),
            self.read_if_any(&tables::GOLD_DIM_PRODUCT),
            self.read_if_any(&tables::GOLD_DIM_CUSTOMER),
        )?;
        PriorKeys::from_dimensions(&countries, &products, &customers)
            .map_err(Error::transform("gold"))
    }

    /// A whole table, or nothing when it was never written.
    async fn read_if_any(&self, table: &TableSpec) -> Result<Vec<RecordBatch>> {
        match self.lake.read_all(table).await {
            Err(retail_lake::Error::MissingTable { .. }) => Ok(Vec::new()),
            read => Ok(read?),
        }
    }

    /// Brings the gold tables up to date with silver, rebuilding the invoice months
    /// `partitions` (`2011-03`) also when they are up to date. Returns the consistency
    /// measured on silver and the months rebuilt with their fact rows, or `None` when every
    /// gold table was already up to date and no month was asked for.
    ///
    /// When gold was built from an earlier silver version, only the invoice months whose
    /// silver files changed since are read from silver: their facts, daily and monthly
    /// aggregates are remade, and the whole-history tables come from the stored per-month
    /// history with those months' parts remade. Otherwise (first build, `force`, tables at
    /// different versions, fact files not one month each, a customer's versions changing before
    /// a kept month) gold is built from all of silver. Both give the same tables. All of
    /// silver is taken from `silver_rows`, the rows this run's silver stage wrote, when silver
    /// is still at their version, and read from the lake otherwise.
    async fn run_gold(
        &self,
        run: &mut RunRecord,
        force: bool,
        partitions: &[String],
        silver_rows: Option<SilverRows>,
        progress: &dyn Progress,
    ) -> Result<Option<(Consistency, Vec<(String, u64)>)>> {
        let lake = &self.lake;
        let Some(silver_version) = lake.latest_version(&SILVER_TRANSACTIONS).await? else {
            info!("silver is empty: no gold to build");
            return Ok(None);
        };
        let target = i64::try_from(silver_version).expect("versions fit i64");
        let all_tables: Vec<TableSpec> = tables::GOLD_TABLES
            .iter()
            .chain(HISTORY_TABLES.iter())
            .copied()
            .collect();
        // Each table's log is read at once with the others' (small reads, mostly waiting).
        let marks = futures::future::try_join_all(
            all_tables
                .iter()
                .map(|table| lake.app_version(table, GOLD_APP_ID)),
        )
        .await?;
        if !force && partitions.is_empty() && marks.iter().all(|mark| *mark == Some(target)) {
            info!(silver_version, "gold is up to date");
            run.detail.assets.extend(
                tables::GOLD_TABLES
                    .iter()
                    .map(|table| AssetRun::up_to_date(table.name)),
            );
            return Ok(None);
        }
        let started = Instant::now();
        let plan = match (force, marks.first().copied().flatten()) {
            (false, Some(built_from)) if marks.iter().all(|m| *m == Some(built_from)) => {
                self.incremental_plan(built_from, partitions).await?
            }
            _ => None,
        };
        // Only a full build takes the silver stage's rows; otherwise they go now.
        let silver_rows =
            silver_rows.filter(|rows| plan.is_none() && rows.version == silver_version);
        let silver_from = if silver_rows.is_some() {
            "silver_stage"
        } else {
            "lake"
        };
        let (silver, slice) = match &plan {
            Some(plan) => {
                progress.begin("gold: reading the new months of silver", 0);
                let stream = lake
                    .scan_partitions(
                        &SILVER_TRANSACTIONS,
                        "invoice_month",
                        &plan.months.iter().cloned().collect::<Vec<_>>(),
                        Some(&SILVER_COLUMNS),
                    )
                    .await?;
                (read_silver_set(stream, None, progress).await?, true)
            }
            None => match silver_rows {
                Some(rows) => {
                    debug!(
                        silver_version,
                        "gold builds from the rows the silver stage just wrote"
                    );
                    (rows.set, false)
                }
                None => {
                    let rows = lake.count_rows(&SILVER_TRANSACTIONS).await?;
                    progress.begin("gold: reading silver", rows);
                    let stream = lake
                        .scan(&SILVER_TRANSACTIONS, Some(&SILVER_COLUMNS))
                        .await?;
                    (read_silver_set(stream, Some(rows), progress).await?, false)
                }
            },
        };
        progress.end();
        let read_seconds = started.elapsed().as_secs_f64();
        debug!(rows = silver.len(), seconds = read_seconds, "silver read");
        let (prior, (old_history, old_countries)) = tokio::try_join!(self.prior_keys(), async {
            Ok(if slice {
                let (history, countries) =
                    tokio::try_join!(self.stored_history(), self.stored_countries())?;
                (Some(history), countries)
            } else {
                (None, CountryAttributesByName::new())
            })
        })?;
        let batch_rows = lake.batch_rows();
        let (silver, built) = tokio::task::spawn_blocking(move || {
            let order = walk_order(&silver);
            let parts = History::from_silver(&silver, &order);
            let history = match old_history {
                Some(mut history) => {
                    history.replace_months(&parts.months(), parts);
                    history
                }
                None => parts,
            };
            // Countries some row still names (a change may have removed a country's last row).
            let mut countries = old_countries;
            let named = history.countries();
            countries.retain(|name, _| named.contains(name.as_str()));
            countries.extend(countries_of(&silver));
            let gold = build_gold(GoldInput {
                silver: &silver,
                order,
                history: &history,
                countries: &countries,
                prior: &prior,
                batch_rows,
            });
            (silver, gold.map(|gold| (gold, history)))
        })
        .await
        .map_err(Error::Task)?;
        let (gold, history) = built.map_err(Error::transform("gold"))?;
        let computed_seconds = started.elapsed().as_secs_f64();
        debug!(
            rows = silver.len(),
            seconds = computed_seconds,
            "gold computed"
        );
        let Gold {
            tables: mut gold_tables,
            facts,
            consistency,
        } = gold;
        let mut fact_files_replaced = Vec::new();
        if let Some(plan) = &plan {
            // A customer whose versions changed before the rebuilt months would change the
            // keys of facts outside them: then build from all of silver instead.
            let dim_customer = &gold_tables
                .iter()
                .find(|t| t.table.name == tables::GOLD_DIM_CUSTOMER.name)
                .expect("dim_customer is built")
                .batches;
            let rebuilt: BTreeSet<i32> = plan
                .months
                .iter()
                .filter_map(|m| crate::calendar::parse_month_label(m))
                .collect();
            let latest_kept = history.months().difference(&rebuilt).max().copied();
            // The kept rows of the monthly aggregates are read while the keys are compared.
            let (moved, mut daily_kept, mut monthly_kept) = tokio::try_join!(
                self.keys_move_outside(dim_customer, latest_kept),
                self.rows_outside_months(&tables::GOLD_DAILY_SALES, &plan.months),
                self.rows_outside_months(&tables::GOLD_PRODUCT_MONTHLY, &plan.months),
            )?;
            if let Some(customer) = moved {
                info!(
                    customer,
                    "a customer's versions changed before the new months: building gold from all of silver"
                );
                return Box::pin(self.run_gold(run, true, partitions, None, progress)).await;
            }
            for table in &mut gold_tables {
                let kept = if table.table.name == tables::GOLD_DAILY_SALES.name {
                    std::mem::take(&mut daily_kept)
                } else if table.table.name == tables::GOLD_PRODUCT_MONTHLY.name {
                    std::mem::take(&mut monthly_kept)
                } else {
                    continue;
                };
                table.batches.splice(0..0, kept);
            }
            fact_files_replaced.clone_from(&plan.fact_files);
        }
        run.detail.gold_build = Some(
            if plan.is_some() {
                "incremental"
            } else {
                "full"
            }
            .to_owned(),
        );
        run.detail.gold_silver_from = Some(silver_from.to_owned());
        run.detail.gold_months = plan
            .as_ref()
            .map(|plan| plan.months.iter().cloned().collect())
            .unwrap_or_default();
        let history_batches = history.to_batches().map_err(Error::transform("gold"))?;
        progress.begin("gold: writing", all_tables.len() as u64);
        let marker = [(GOLD_APP_ID.to_owned(), target)];
        let fact_rows = facts.rows();
        // The fact table, by far the largest, is encoded on other workers while the
        // dimensions and aggregates are written here: two, alternate months each, whose files
        // go into one commit. Its files hold one month each, so a later run can replace months.
        let fact_task = {
            let lake = self.lake.clone();
            let marker = marker.clone();
            let silver = Arc::new(silver);
            let facts = Arc::new(facts);
            tokio::spawn(async move {
                let started = Instant::now();
                let mut writer = if fact_files_replaced.is_empty() && !slice {
                    lake.overwriter(&tables::GOLD_FACT_SALES).await?
                } else {
                    let mut writer = lake.appender(&tables::GOLD_FACT_SALES).await?;
                    writer.remove_files(fact_files_replaced);
                    writer
                };
                // Opened after the first, which creates the table on a first build.
                let odd_months = {
                    let (lake, silver, facts) =
                        (lake.clone(), Arc::clone(&silver), Arc::clone(&facts));
                    tokio::spawn(
                        async move {
                            let mut writer = lake.appender(&tables::GOLD_FACT_SALES).await?;
                            let rows = write_fact_months(&mut writer, &facts, &silver, 1).await?;
                            Ok::<_, Error>((writer, rows))
                        }
                        .in_current_span(),
                    )
                };
                let mut month_rows = write_fact_months(&mut writer, &facts, &silver, 0).await?;
                let (odd_writer, odd_rows) = odd_months.await.map_err(Error::Task)??;
                writer.join(odd_writer).await?;
                month_rows.extend(odd_rows);
                let version = writer.commit(&marker).await?;
                metrics::record_commit("gold", started.elapsed().as_secs_f64());
                Ok::<_, Error>((version, month_rows))
            })
        };
        let history_writes = HISTORY_TABLES
            .iter()
            .zip(history_batches)
            .map(|(table, batch)| GoldTable {
                table: *table,
                batches: vec![batch],
            });
        // The other tables are written each on a worker of its own: most are small, and their
        // time is the Delta commit's (the log read again, the commit written), mostly waiting.
        let writes: Vec<_> = gold_tables
            .into_iter()
            .chain(history_writes)
            .filter(|table| table.table.name != tables::GOLD_FACT_SALES.name)
            .map(|table| {
                let lake = self.lake.clone();
                let marker = marker.clone();
                tokio::spawn(
                    async move {
                        let rows = table.rows();
                        let started = Instant::now();
                        let mut writer = lake.overwriter(&table.table).await?;
                        for batch in table.batches {
                            writer.write(batch).await?;
                        }
                        let version = writer.commit(&marker).await?;
                        metrics::record_commit("gold", started.elapsed().as_secs_f64());
                        metrics::record_rows_written(table.table.name, rows);
                        Ok::<_, Error>((table.table, rows, version))
                    }
                    .in_current_span(),
                )
            })
            .collect();
        for write in writes {
            let (table, rows, version) = write.await.map_err(Error::Task)??;
            if !table.internal {
                run.detail
                    .assets
                    .push(AssetRun::materialized(table.name, rows, version));
            }
            progress.advance(1);
        }
        let (version, month_rows) = fact_task.await.map_err(Error::Task)??;
        // The months rebuilt: those of the plan (a month left with no rows has 0), or every
        // month of a full build.
        let months: Vec<(String, u64)> = match &plan {
            Some(plan) => plan
                .months
                .iter()
                .map(|month| {
                    let rows = crate::calendar::parse_month_label(month)
                        .and_then(|index| month_rows.get(&index).copied())
                        .unwrap_or(0);
                    (month.clone(), rows)
                })
                .collect(),
            None => month_rows
                .iter()
                .map(|(index, rows)| (crate::calendar::month_label(*index), *rows))
                .collect(),
        };
        metrics::record_rows_written(tables::GOLD_FACT_SALES.name, fact_rows);
        run.detail.assets.push(AssetRun::materialized(
            tables::GOLD_FACT_SALES.name,
            fact_rows,
            version,
        ));
        progress.advance(1);
        progress.end();
        info!(
            build = run.detail.gold_build.as_deref().unwrap_or_default(),
            months = ?run.detail.gold_months,
            silver_version,
            read_seconds,
            compute_seconds = computed_seconds - read_seconds,
            seconds = started.elapsed().as_secs_f64(),
            "gold stage finished"
        );
        Ok(Some((consistency, months)))
    }

    /// Decides whether gold, built from silver version `built_from`, can be brought up to date
    /// month by month: the months whose silver files were added or removed since, and the
    /// months `asked` for, when every fact file holds one month.
    async fn incremental_plan(
        &self,
        built_from: i64,
        asked: &[String],
    ) -> Result<Option<IncrementalPlan>> {
        let lake = &self.lake;
        let Ok(after) = u64::try_from(built_from) else {
            return Ok(None);
        };
        // Files added bring rows; files removed (rewritten by the delete that applies
        // changes) take rows away: either way their months are remade from silver as it is.
        let (added, removed) = lake.file_changes(&SILVER_TRANSACTIONS, after).await?;
        let months: BTreeSet<String> = added
            .iter()
            .chain(&removed)
            .filter_map(|(_, partition)| partition.get("invoice_month").cloned().flatten())
            .chain(asked.iter().cloned())
            .collect();
        if months.is_empty() {
            return Ok(None);
        }
        let Some(facts) = lake.open(&tables::GOLD_FACT_SALES).await? else {
            return Ok(None);
        };
        let mut fact_files = Vec::new();
        for (path, range) in lake.file_ranges(&facts, &tables::GOLD_FACT_SALES, "date_key")? {
            let Some((first, last)) = range else {
                return Ok(None);
            };
            if first / 100 != last / 100 {
                info!(
                    path,
                    "a fact file spans months: building gold from all of silver"
                );
                return Ok(None);
            }
            let month = format!("{:04}-{:02}", first / 10_000, first / 100 % 100);
            if months.contains(&month) {
                fact_files.push(path);
            }
        }
        Ok(Some(IncrementalPlan { months, fact_files }))
    }

    /// The per-month history stored by the last gold build.
    async fn stored_history(&self) -> Result<History> {
        let [customers, products, invoices] = HISTORY_TABLES;
        History::from_batches(
            &self.lake.read_all(&customers).await?,
            &self.lake.read_all(&products).await?,
            &self.lake.read_all(&invoices).await?,
        )
        .map_err(Error::transform("gold"))
    }

    /// The countries of the current `gold/dim_country`, with their attributes.
    async fn stored_countries(&self) -> Result<CountryAttributesByName> {
        let mut countries = CountryAttributesByName::new();
        for batch in self.lake.read_all(&tables::GOLD_DIM_COUNTRY).await? {
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_string_opt::<i32>())
                    .ok_or_else(|| Error::Transform {
                        stage: "gold",
                        source: ArrowError::SchemaError(format!(
                            "dim_country has no text column {name}"
                        )),
                    })
            };
            let (names, codes, regions) = (
                column("country_name")?,
                column("country_code")?,
                column("region")?,
            );
            for row in 0..batch.num_rows() {
                countries.insert(
                    names.value(row).to_owned(),
                    (
                        (!codes.is_null(row)).then(|| codes.value(row).to_owned()),
                        regions.value(row).to_owned(),
                    ),
                );
            }
        }
        Ok(countries)
    }

    /// The rows of a gold aggregate (`daily_sales` by its date, `product_monthly` by its
    /// month) that fall outside `months`.
    async fn rows_outside_months(
        &self,
        table: &TableSpec,
        months: &BTreeSet<String>,
    ) -> Result<Vec<RecordBatch>> {
        let mut kept = Vec::new();
        for batch in self.lake.read_all(table).await? {
            let keep: deltalake::arrow::array::BooleanArray = if let Some(month) = batch
                .column_by_name("month")
                .and_then(|c| c.as_string_opt::<i32>())
            {
                month
                    .iter()
                    .map(|m| Some(!m.is_some_and(|m| months.contains(m))))
                    .collect()
            } else {
                let keys = batch
                    .column_by_name("date_key")
                    .and_then(|c| c.as_primitive_opt::<Int32Type>())
                    .ok_or_else(|| Error::Transform {
                        stage: "gold",
                        source: ArrowError::SchemaError(format!(
                            "{table} has neither month nor date_key"
                        )),
                    })?;
                keys.iter()
                    .map(|key| {
                        key.map(|key| {
                            !months.contains(&format!("{:04}-{:02}", key / 10_000, key / 100 % 100))
                        })
                    })
                    .collect()
            };
            kept.push(
                deltalake::arrow::compute::filter_record_batch(&batch, &keep)
                    .map_err(Error::transform("gold"))?,
            );
        }
        Ok(kept)
    }

    /// Compares the new `dim_customer` with the stored one: returns a customer whose facts in
    /// a month that is not rebuilt (the latest being `latest_kept_month`) would now point at
    /// another version, if any.
    async fn keys_move_outside(
        &self,
        new_dim: &[RecordBatch],
        latest_kept_month: Option<i32>,
    ) -> Result<Option<String>> {
        let old_dim = self.lake.read_all(&tables::GOLD_DIM_CUSTOMER).await?;
        let (old, new) = (customer_versions(&old_dim)?, customer_versions(new_dim)?);
        let Some(latest_kept) = latest_kept_month else {
            return Ok(None);
        };
        for (customer, old_versions) in &old {
            let new_versions = new.get(customer).map_or(&[][..], Vec::as_slice);
            let differs = (0..old_versions.len().max(new_versions.len())).find(|i| {
                match (old_versions.get(*i), new_versions.get(*i)) {
                    // Version 1's start may move earlier; its key is what matters.
                    (Some(a), Some(b)) if *i == 0 => a.0 != b.0,
                    (Some(a), Some(b)) => a != b,
                    _ => true,
                }
            });
            let Some(index) = differs else { continue };
            let changed_at = [old_versions.get(index), new_versions.get(index)]
                .into_iter()
                .flatten()
                .map(|(_, from)| *from)
                .min()
                .unwrap_or(i64::MIN);
            let changed_month = crate::calendar::month_index(crate::calendar::day_of(changed_at));
            if index == 0 || changed_month <= latest_kept {
                return Ok(Some(customer.clone()));
            }
        }
        Ok(None)
    }
}

/// Each customer's type 2 versions in a `gold/dim_customer`: (key, valid_from) in version
/// order. The unknown member is left out.
fn customer_versions(batches: &[RecordBatch]) -> Result<HashMap<String, Vec<(i64, i64)>>> {
    let mut map: HashMap<String, Vec<(i32, i64, i64)>> = HashMap::new();
    for batch in batches {
        let bad = || Error::Transform {
            stage: "gold",
            source: ArrowError::SchemaError("dim_customer lacks its columns".to_owned()),
        };
        let column = |name: &str| batch.column_by_name(name).ok_or_else(bad);
        let ids = column("customer_id")?
            .as_string_opt::<i32>()
            .ok_or_else(bad)?;
        let keys = column("customer_key")?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(bad)?;
        let numbers = column("version")?
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(bad)?;
        let from = column("valid_from")?
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(bad)?;
        for row in 0..batch.num_rows() {
            if keys.value(row) == crate::gold::UNKNOWN_CUSTOMER_KEY {
                continue;
            }
            map.entry(ids.value(row).to_owned()).or_default().push((
                numbers.value(row),
                keys.value(row),
                from.value(row),
            ));
        }
    }
    Ok(map
        .into_iter()
        .map(|(id, mut list)| {
            list.sort_unstable();
            (
                id,
                list.into_iter().map(|(_, key, from)| (key, from)).collect(),
            )
        })
        .collect())
}

/// Writes the fact batches of the months (indexes) whose remainder by 2 is `parity`, one file
/// per month, and returns the rows of each month written.
async fn write_fact_months(
    writer: &mut retail_lake::TableAppender,
    facts: &crate::gold::FactPlan,
    silver: &SilverSet,
    parity: i32,
) -> Result<BTreeMap<i32, u64>> {
    let mut current = None;
    let mut month_rows = BTreeMap::<i32, u64>::new();
    for (month, batch) in facts.batches_of(silver, |month| month.rem_euclid(2) == parity) {
        if current.is_some_and(|m| m != month) {
            writer.cut().await?;
        }
        current = Some(month);
        let batch = batch.map_err(Error::transform("gold"))?;
        *month_rows.entry(month).or_default() += batch.num_rows() as u64;
        writer.write(batch).await?;
    }
    Ok(month_rows)
}

/// Which months an incremental gold build remakes, and the fact files it replaces.
struct IncrementalPlan {
    months: BTreeSet<String>,
    fact_files: Vec<String>,
}

/// Reads silver rows into the compact set gold is built from. Batches alternate between this
/// worker and another, each filling a set of its own, and the two are joined at the end: the
/// scan decodes on both cores, and interning the rows would otherwise be the one busy thread.
///
/// With the number of rows known (`rows`), this worker's set is made with room for all of
/// them and the other's for half: the memory is only reserved, and touched as rows arrive, so
/// neither vector grows by copying itself, the join copies the other's rows once into room
/// already there, and the peak is about one and a half copies of the rows, not the two or
/// three a growing vector passes through.
async fn read_silver_set(
    mut stream: futures::stream::BoxStream<
        'static,
        deltalake::datafusion::error::Result<RecordBatch>,
    >,
    rows: Option<u64>,
    progress: &dyn Progress,
) -> Result<SilverSet> {
    let capacity = rows
        .and_then(|rows| usize::try_from(rows).ok())
        .unwrap_or(0);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<RecordBatch>(2);
    let other = tokio::spawn(
        async move {
            let mut silver = SilverSet::with_capacity(capacity / 2 + 1);
            while let Some(batch) = receiver.recv().await {
                silver
                    .push_batch(&batch)
                    .map_err(Error::transform("gold"))?;
            }
            Ok::<_, Error>(silver)
        }
        .in_current_span(),
    );
    let mut silver = SilverSet::with_capacity(capacity);
    let mut here = true;
    while let Some(batch) = stream.try_next().await.map_err(|source| Error::Read {
        table: SILVER_TRANSACTIONS.name,
        source: Box::new(source),
    })? {
        let rows = batch.num_rows() as u64;
        if here {
            silver
                .push_batch(&batch)
                .map_err(Error::transform("gold"))?;
        } else if sender.send(batch).await.is_err() {
            break; // the other worker stopped on an error, returned below
        }
        here = !here;
        progress.advance(rows);
    }
    drop(sender);
    silver.absorb(other.await.map_err(Error::Task)??);
    Ok(silver)
}
