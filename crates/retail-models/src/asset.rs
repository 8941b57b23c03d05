//! The `models` asset: downstream of gold, it reads gold (and silver's quarantine for the
//! anomaly metrics), fits the forecasts, the anomaly detector and the customer models, and
//! writes `gold/forecast`, `gold/forecast_backtest`, `gold/anomalies`, `gold/customer_clv`
//! and one row per model in the registry `gold/model_versions`.
//!
//! Every table it writes carries the mark [`MODELS_APP_ID`] = the gold version the models
//! were trained on; the registry is committed last, so its mark says whether the models are
//! current. A model that cannot be fitted (too few trading days for a backtest, no repeat
//! customers) is recorded in the registry as `skipped` with the reason, and its table is left
//! empty: the run does not fail for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{Datelike as _, NaiveDate, Utc};
use deltalake::arrow::array::{
    ArrayRef, AsArray as _, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{
    Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType,
};
use deltalake::arrow::error::ArrowError;
use futures::TryStreamExt as _;
use retail_domain::ports::ConsentRegister;
use retail_domain::privacy::Purpose;
use retail_lake::Lake;
use retail_lake::cells::{column, day, money};
use retail_lake::schema::{
    self as tables, GOLD_ANOMALIES, GOLD_CUSTOMER_CLV, GOLD_DAILY_SALES, GOLD_DIM_CUSTOMER,
    GOLD_FACT_SALES, GOLD_FORECAST, GOLD_FORECAST_BACKTEST, GOLD_MODEL_VERSIONS, SILVER_QUARANTINE,
    TableSpec,
};
use retail_metadata::AssetRun;
use retail_pipeline::{
    Asset, Error, Result, RunContext, Staleness, gold_to_follow, staleness_by_mark,
};
use serde::Serialize;
use serde_json::json;
use tracing::info;

use crate::anomaly::{self, DayScore};
use crate::clv::{self, ClvModel, Summary};
use crate::forecast::{self, BacktestPlan, SeriesForecast, TradingCalendar};

/// The mark on every table of the asset: the gold version its models were trained on.
pub const MODELS_APP_ID: &str = tables::MODELS_MARK;

/// The forecast metrics, as `daily_sales` names them.
pub const METRICS: [&str; 3] = tables::FORECAST_METRICS;

/// The anomaly metrics, in the order of each day's vector: net revenue, orders and
/// identified customers (from gold), the share of gross revenue returned, the mean quality
/// score of the day's silver rows, the share of the day's rows quarantined and the day's rows
/// (silver + quarantine, by invoice date).
pub const ANOMALY_METRICS: [anomaly::Metric; 7] = [
    anomaly::Metric {
        name: "revenue",
        relative: true,
    },
    anomaly::Metric {
        name: "orders",
        relative: true,
    },
    anomaly::Metric {
        name: "customers",
        relative: true,
    },
    anomaly::Metric {
        name: "return_share",
        relative: false,
    },
    anomaly::Metric {
        name: "mean_quality_score",
        relative: false,
    },
    anomaly::Metric {
        name: "quarantine_share",
        relative: false,
    },
    anomaly::Metric {
        name: "rows",
        relative: true,
    },
];

/// How the models are trained (`[models]` in the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelsSettings {
    /// Countries (by net revenue, largest first) that get their own forecasts.
    pub countries: usize,
    /// Calendar days forecast (at most 90 are served).
    pub horizon_days: u32,
    /// The forecasts' backtest.
    pub backtest: BacktestPlan,
    /// The anomaly detector.
    pub anomaly: anomaly::Settings,
    /// Bootstrap replicates of the customer models.
    pub bootstrap: usize,
    /// Monthly discount rate of CLV.
    pub discount: f64,
    /// Days at the end held out to validate the customer models.
    pub holdout_days: u32,
    /// Threads for the bootstrap.
    pub threads: usize,
    /// The seed of every random choice (isolation forest, bootstrap).
    pub seed: u64,
}

impl Default for ModelsSettings {
    fn default() -> Self {
        Self {
            countries: 5,
            horizon_days: 90,
            backtest: BacktestPlan::default(),
            anomaly: anomaly::Settings::default(),
            bootstrap: 40,
            discount: 0.01,
            holdout_days: 91,
            threads: 2,
            seed: 42,
        }
    }
}

/// Gold → forecasts, anomalies, customer lifetime value and the model registry.
#[derive(Debug, Clone)]
pub struct ModelsAsset {
    lake: Lake,
    settings: ModelsSettings,
    consent: Option<Arc<dyn ConsentRegister>>,
}

impl ModelsAsset {
    /// The models of `lake`'s gold, trained with `settings`.
    pub fn new(lake: Lake, settings: ModelsSettings) -> Self {
        Self {
            lake,
            settings,
            consent: None,
        }
    }

    /// Writes lifetime values only for customers `register` allows to be profiled (ADR 0014).
    #[must_use]
    pub fn with_consent(mut self, register: Arc<dyn ConsentRegister>) -> Self {
        self.consent = Some(register);
        self
    }
}

#[async_trait]
impl Asset for ModelsAsset {
    fn key(&self) -> &'static str {
        "models"
    }

    fn description(&self) -> &'static str {
        "forecasts of daily revenue, orders and units; anomalous trading days; customer \
         lifetime value (BG/NBD and Gamma-Gamma); the model registry"
    }

    fn upstream(&self) -> &'static [&'static str] {
        &["gold"]
    }

    fn tables(&self) -> Vec<TableSpec> {
        tables::tables_of(tables::Writer::Models)
    }

    async fn staleness(&self) -> Result<Staleness> {
        staleness_by_mark(&self.lake, &GOLD_MODEL_VERSIONS, MODELS_APP_ID, "trained").await
    }

    async fn materialize(&self, cx: &mut RunContext<'_>) -> Result<bool> {
        let key = self.key();
        let Some(gold) =
            gold_to_follow(&self.lake, &GOLD_MODEL_VERSIONS, MODELS_APP_ID, cx.force).await?
        else {
            cx.run.detail.assets.push(AssetRun::up_to_date(key));
            return Ok(false);
        };
        cx.progress.begin("models (read gold, train, write)", 3);
        let started = Instant::now();
        let consent =
            retail_pipeline::consent::view(self.consent.as_ref(), Purpose::Profiling).await?;
        let inputs = Inputs::read(&self.lake).await?;
        let read_ms = started.elapsed().as_millis();
        let version = self.next_version().await?;
        let settings = self.settings.clone();
        cx.progress.advance(1);
        let trained = tokio::task::spawn_blocking(move || train(&inputs, &settings, version))
            .await
            .map_err(Error::Task)?
            .map_err(Error::transform("models"))?;
        cx.progress.advance(1);
        // Customers without consent to profiling get no score (the model's parameters are
        // fitted on everyone's purchases: a population figure, not a profile).
        let (clv, withheld) = retail_pipeline::consent::keep_allowed(&trained.clv, &consent)
            .map_err(Error::transform("models"))?;
        let marks = [(MODELS_APP_ID.to_owned(), gold)];
        let mut rows = 0;
        for (table, batch) in [
            (GOLD_FORECAST, &trained.forecast),
            (GOLD_FORECAST_BACKTEST, &trained.backtest),
            (GOLD_ANOMALIES, &trained.anomalies),
            (GOLD_CUSTOMER_CLV, &clv),
        ] {
            let mut writer = self.lake.overwriter(&table).await?;
            writer.write(batch.clone()).await?;
            writer.commit(&marks).await?;
            rows += batch.num_rows() as u64;
        }
        let registry = registry_batch(&trained.registry, gold, Utc::now())
            .map_err(Error::transform("models"))?;
        let mut writer = self.lake.appender(&GOLD_MODEL_VERSIONS).await?;
        writer.write(registry).await?;
        writer.commit(&marks).await?;
        cx.progress.advance(1);
        cx.progress.end();
        let detail = json!({
            "model_version": version,
            "read_ms": read_ms,
            "clv_withheld_without_consent": withheld,
            "models": trained.registry.iter().map(|entry| json!({
                "model": entry.model,
                "status": entry.status,
                "training_ms": entry.training_ms,
                "rows": entry.rows,
            })).collect::<Vec<_>>(),
        });
        info!(
            version,
            gold,
            ms = started.elapsed().as_millis(),
            "models trained"
        );
        cx.run.detail.assets.push(AssetRun {
            detail: Some(detail),
            ..AssetRun::materialized(key, rows, Some(gold as u64))
        });
        Ok(true)
    }
}

impl ModelsAsset {
    /// The version the next training gets: one more than the registry's largest.
    async fn next_version(&self) -> Result<i64> {
        if self
            .lake
            .latest_version(&GOLD_MODEL_VERSIONS)
            .await?
            .is_none()
        {
            return Ok(1);
        }
        let batches = self.lake.read_all(&GOLD_MODEL_VERSIONS).await?;
        let largest = batches
            .iter()
            .filter_map(|batch| batch.column_by_name("version"))
            .flat_map(|column| column.as_primitive::<Int64Type>().values().to_vec())
            .max()
            .unwrap_or(0);
        Ok(largest + 1)
    }
}

/// A day of `daily_sales` in one country.
#[derive(Debug, Clone)]
struct DailyRow {
    date: NaiveDate,
    country: String,
    net_revenue: f64,
    gross_revenue: f64,
    returns_amount: f64,
    orders: f64,
    units: f64,
}

/// A fact line, as the models need it.
#[derive(Debug, Clone, Copy)]
struct Line {
    customer: Option<u32>,
    date: NaiveDate,
    quantity: i64,
    unit_price: f64,
    total: f64,
    cancellation: bool,
    quality: f64,
}

/// What the models read from the lake.
#[derive(Debug, Default)]
struct Inputs {
    daily: Vec<DailyRow>,
    lines: Vec<Line>,
    /// Customer ids, indexed by [`Line::customer`].
    customer_ids: Vec<String>,
    /// Current country of each customer id.
    country_of: HashMap<String, String>,
    segment_of: HashMap<String, String>,
    /// Quarantined rows per parsed invoice day.
    quarantined: HashMap<NaiveDate, f64>,
}

fn read_error(
    table: &'static str,
) -> impl Fn(deltalake::datafusion::error::DataFusionError) -> Error {
    move |source| Error::Read {
        table,
        source: Box::new(source),
    }
}

impl Inputs {
    async fn read(lake: &Lake) -> Result<Self> {
        let mut inputs = Self::default();
        let transform = Error::transform("models");
        if lake.latest_version(&GOLD_DAILY_SALES).await?.is_none() {
            return Ok(inputs);
        }
        let mut stream = lake.scan(&GOLD_DAILY_SALES, None).await?;
        while let Some(batch) = stream
            .try_next()
            .await
            .map_err(read_error(GOLD_DAILY_SALES.name))?
        {
            inputs.add_daily(&batch).map_err(&transform)?;
        }
        // Customer keys → ids (every type 2 version) and each id's current country.
        let mut id_of_key: HashMap<i64, u32> = HashMap::new();
        let mut index_of_id: HashMap<String, u32> = HashMap::new();
        for batch in lake.read_all(&GOLD_DIM_CUSTOMER).await? {
            let keys = column(&batch, "customer_key")
                .map_err(&transform)?
                .as_primitive::<Int64Type>();
            let ids = column(&batch, "customer_id")
                .map_err(&transform)?
                .as_string::<i32>();
            let countries = column(&batch, "country_name")
                .map_err(&transform)?
                .as_string::<i32>();
            let current = column(&batch, "is_current")
                .map_err(&transform)?
                .as_boolean();
            for row in 0..batch.num_rows() {
                let id = ids.value(row).to_owned();
                let next = inputs.customer_ids.len() as u32;
                let index = *index_of_id.entry(id.clone()).or_insert_with(|| {
                    inputs.customer_ids.push(id.clone());
                    next
                });
                id_of_key.insert(keys.value(row), index);
                if current.value(row) {
                    inputs
                        .country_of
                        .insert(id, countries.value(row).to_owned());
                }
            }
        }
        if lake
            .latest_version(&tables::GOLD_CUSTOMER_RFM)
            .await?
            .is_some()
        {
            for batch in lake.read_all(&tables::GOLD_CUSTOMER_RFM).await? {
                let ids = column(&batch, "customer_id")
                    .map_err(&transform)?
                    .as_string::<i32>();
                let segments = column(&batch, "segment")
                    .map_err(&transform)?
                    .as_string::<i32>();
                for row in 0..batch.num_rows() {
                    inputs
                        .segment_of
                        .insert(ids.value(row).to_owned(), segments.value(row).to_owned());
                }
            }
        }
        let fact_columns = [
            "customer_key",
            "invoice_date",
            "quantity",
            "unit_price",
            "total_amount",
            "is_cancellation",
            "data_quality_score",
        ];
        let mut stream = lake.scan(&GOLD_FACT_SALES, Some(&fact_columns)).await?;
        while let Some(batch) = stream
            .try_next()
            .await
            .map_err(read_error(GOLD_FACT_SALES.name))?
        {
            inputs.add_lines(&batch, &id_of_key).map_err(&transform)?;
        }
        if lake.latest_version(&SILVER_QUARANTINE).await?.is_some() {
            let mut stream = lake
                .scan(&SILVER_QUARANTINE, Some(&["invoice_date"]))
                .await?;
            while let Some(batch) = stream
                .try_next()
                .await
                .map_err(read_error(SILVER_QUARANTINE.name))?
            {
                let dates = column(&batch, "invoice_date")
                    .map_err(&transform)?
                    .as_string::<i32>();
                for text in dates.iter().flatten() {
                    if let Some(at) = retail_domain::field::parse_invoice_date(text) {
                        *inputs.quarantined.entry(at.date()).or_default() += 1.0;
                    }
                }
            }
        }
        Ok(inputs)
    }

    fn add_daily(&mut self, batch: &RecordBatch) -> std::result::Result<(), ArrowError> {
        let dates = column(batch, "date")?.as_primitive::<Date32Type>();
        let countries = column(batch, "country_name")?.as_string::<i32>();
        let decimal = |name| column(batch, name).map(|c| c.as_primitive::<Decimal128Type>());
        let (net, gross, returns) = (
            decimal("net_revenue")?,
            decimal("gross_revenue")?,
            decimal("returns_amount")?,
        );
        let orders = column(batch, "orders")?.as_primitive::<Int64Type>();
        let units = column(batch, "units")?.as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            self.daily.push(DailyRow {
                date: day(dates.value(row))?,
                country: countries.value(row).to_owned(),
                net_revenue: money(net.value(row)),
                gross_revenue: money(gross.value(row)),
                returns_amount: money(returns.value(row)),
                orders: orders.value(row) as f64,
                units: units.value(row) as f64,
            });
        }
        Ok(())
    }

    fn add_lines(
        &mut self,
        batch: &RecordBatch,
        id_of_key: &HashMap<i64, u32>,
    ) -> std::result::Result<(), ArrowError> {
        let keys = column(batch, "customer_key")?.as_primitive::<Int64Type>();
        let at = column(batch, "invoice_date")?.as_primitive::<TimestampMicrosecondType>();
        let quantity = column(batch, "quantity")?.as_primitive::<Int64Type>();
        let price = column(batch, "unit_price")?.as_primitive::<Decimal128Type>();
        let total = column(batch, "total_amount")?.as_primitive::<Decimal128Type>();
        let cancellation = column(batch, "is_cancellation")?.as_boolean();
        let quality = column(batch, "data_quality_score")?.as_primitive::<Decimal128Type>();
        for row in 0..batch.num_rows() {
            let micros = at.value(row);
            let date = chrono::DateTime::from_timestamp_micros(micros)
                .ok_or_else(|| {
                    ArrowError::InvalidArgumentError(format!("invoice_date {micros} out of range"))
                })?
                .date_naive();
            self.lines.push(Line {
                customer: id_of_key.get(&keys.value(row)).copied(),
                date,
                quantity: quantity.value(row),
                unit_price: money(price.value(row)),
                total: money(total.value(row)),
                cancellation: cancellation.value(row),
                quality: quality.value(row) as f64 / 100.0,
            });
        }
        Ok(())
    }
}

/// One model's registry entry.
#[derive(Debug, Clone, Serialize)]
struct RegistryEntry {
    model: &'static str,
    version: i64,
    status: &'static str,
    training_ms: i64,
    rows: i64,
    parameters: serde_json::Value,
    metrics: serde_json::Value,
}

/// What a training produced: the four tables' content and the registry's entries.
#[derive(Debug)]
struct Trained {
    forecast: RecordBatch,
    backtest: RecordBatch,
    anomalies: RecordBatch,
    clv: RecordBatch,
    registry: Vec<RegistryEntry>,
}

fn train(
    inputs: &Inputs,
    settings: &ModelsSettings,
    version: i64,
) -> std::result::Result<Trained, ArrowError> {
    let started = Instant::now();
    let (forecast, backtest, forecast_entry) = train_forecasts(inputs, settings, version)?;
    let forecast_ms = started.elapsed().as_millis() as i64;
    let started = Instant::now();
    let (anomalies, anomaly_entry) = train_anomalies(inputs, settings, version)?;
    let anomaly_ms = started.elapsed().as_millis() as i64;
    let started = Instant::now();
    let (clv, clv_entry) = train_clv(inputs, settings, version)?;
    let clv_ms = started.elapsed().as_millis() as i64;
    Ok(Trained {
        forecast,
        backtest,
        anomalies,
        clv,
        registry: vec![
            RegistryEntry {
                training_ms: forecast_ms,
                ..forecast_entry
            },
            RegistryEntry {
                training_ms: anomaly_ms,
                ..anomaly_entry
            },
            RegistryEntry {
                training_ms: clv_ms,
                ..clv_entry
            },
        ],
    })
}

fn entry(
    model: &'static str,
    version: i64,
    status: &'static str,
    rows: usize,
    parameters: serde_json::Value,
    metrics: serde_json::Value,
) -> RegistryEntry {
    RegistryEntry {
        model,
        version,
        status,
        training_ms: 0,
        rows: rows as i64,
        parameters,
        metrics,
    }
}

/// The trading days (every date of `daily_sales`) and each series on them: per metric, the
/// total and each of the top countries.
/// Series keyed by (index of the metric in [`METRICS`], index of the country in `top`, `None`
/// for the total).
type SeriesByKey = BTreeMap<(usize, Option<usize>), Vec<f64>>;

/// The top countries by net revenue and each series on the calendar's model days (breaks
/// filled in, see [`forecast::fill_breaks`]): per metric, the total and each top country.
fn daily_series(
    inputs: &Inputs,
    calendar: &TradingCalendar,
    countries: usize,
) -> (Vec<String>, SeriesByKey) {
    let slots = calendar.slots();
    let observed: Vec<bool> = slots.iter().map(|(_, traded)| *traded).collect();
    let position: HashMap<NaiveDate, usize> = slots
        .iter()
        .enumerate()
        .map(|(i, (d, _))| (*d, i))
        .collect();
    let mut revenue_by_country: HashMap<&str, f64> = HashMap::new();
    for row in &inputs.daily {
        *revenue_by_country.entry(&row.country).or_default() += row.net_revenue;
    }
    let mut ranked: Vec<(&str, f64)> = revenue_by_country.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = ranked
        .iter()
        .take(countries)
        .map(|(c, _)| (*c).to_owned())
        .collect();
    let mut series = BTreeMap::new();
    for metric in 0..METRICS.len() {
        for country in std::iter::once(None).chain((0..top.len()).map(Some)) {
            series.insert((metric, country), vec![0.0; slots.len()]);
        }
    }
    for row in &inputs.daily {
        // A sale on a day that is not a model day (a stray Saturday) is left out.
        let Some(at) = position.get(&row.date).copied() else {
            continue;
        };
        let values = [row.net_revenue, row.orders, row.units];
        let country = top.iter().position(|c| *c == row.country);
        for (metric, value) in values.into_iter().enumerate() {
            if let Some(s) = series.get_mut(&(metric, None)) {
                s[at] += value;
            }
            if let Some(country) = country
                && let Some(s) = series.get_mut(&(metric, Some(country)))
            {
                s[at] += value;
            }
        }
    }
    for values in series.values_mut() {
        forecast::fill_breaks(values, &observed, calendar.period());
    }
    (top, series)
}

fn train_forecasts(
    inputs: &Inputs,
    settings: &ModelsSettings,
    version: i64,
) -> std::result::Result<(RecordBatch, RecordBatch, RegistryEntry), ArrowError> {
    let dates: Vec<NaiveDate> = inputs
        .daily
        .iter()
        .map(|row| row.date)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut forecast_rows = ForecastRows::default();
    let mut backtest_rows = BacktestRows::default();
    let Some(calendar) = TradingCalendar::observe(&dates) else {
        let skipped = entry(
            "forecast",
            version,
            "skipped",
            0,
            json!({}),
            json!({"reason": "gold has no sales"}),
        );
        return Ok((forecast_rows.batch()?, backtest_rows.batch()?, skipped));
    };
    let period = calendar.period();
    let (top, series) = daily_series(inputs, &calendar, settings.countries);
    let observed: Vec<bool> = calendar.slots().iter().map(|(_, traded)| *traded).collect();
    let future = calendar.horizon_slots(settings.horizon_days);
    let mut summary = Vec::new();
    let mut failures = Vec::new();
    let no_open_day = !future.iter().any(|(_, open)| *open);
    if no_open_day {
        failures.push(json!({
            "error": format!("no open day in the {} days after the history", settings.horizon_days),
        }));
    }
    for ((metric, country), values) in series.iter().filter(|_| !no_open_day) {
        let country_name = country.map(|c| top[c].clone());
        match forecast::forecast_series(values, &observed, period, future.len(), settings.backtest)
        {
            Ok(result) => {
                summary.push(series_summary(
                    METRICS[*metric],
                    country_name.as_deref(),
                    &result,
                ));
                forecast_rows.add(
                    version,
                    METRICS[*metric],
                    country_name.as_deref(),
                    &future,
                    &result,
                );
                backtest_rows.add(version, METRICS[*metric], country_name.as_deref(), &result);
            }
            Err(error) => failures.push(json!({
                "metric": METRICS[*metric],
                "country_name": country_name,
                "error": error.to_string(),
            })),
        }
    }
    let status = if summary.is_empty() {
        "skipped"
    } else {
        "trained"
    };
    let parameters = json!({
        "candidates": forecast::Model::ALL.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "selection": "lowest backtest MASE per series",
        "backtest": settings.backtest,
        "period_trading_days": period,
        "open_weekdays": calendar.open_weekdays().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "horizon_days": settings.horizon_days,
        "countries": top,
        "trading_days": dates.len(),
        "break_days_filled": observed.iter().filter(|t| !**t).count(),
        "history": [dates.first(), dates.last()],
    });
    let reason = (summary.is_empty())
        .then(|| failures.first().map(|f| f["error"].clone()))
        .flatten();
    let metrics = json!({"series": summary, "failures": failures, "reason": reason});
    let rows = forecast_rows.len();
    Ok((
        forecast_rows.batch()?,
        backtest_rows.batch()?,
        entry("forecast", version, status, rows, parameters, metrics),
    ))
}

fn series_summary(
    metric: &str,
    country: Option<&str>,
    result: &SeriesForecast,
) -> serde_json::Value {
    json!({
        "metric": metric,
        "country_name": country,
        "chosen": result.chosen.name(),
        "backtest": result.chosen_backtest(),
        "baseline": result.baseline(),
    })
}

#[derive(Default)]
struct ForecastRows {
    version: Vec<i64>,
    metric: Vec<String>,
    country: Vec<Option<String>>,
    date: Vec<i32>,
    value: Vec<f64>,
    lower_80: Vec<f64>,
    upper_80: Vec<f64>,
    lower_95: Vec<f64>,
    upper_95: Vec<f64>,
    model: Vec<&'static str>,
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    Date32Type::from_naive_date(date)
}

impl ForecastRows {
    /// The forecast's open days (`future`: the model days of the horizon, each with whether
    /// the shop is expected to trade).
    fn add(
        &mut self,
        version: i64,
        metric: &str,
        country: Option<&str>,
        future: &[(NaiveDate, bool)],
        result: &SeriesForecast,
    ) {
        for (i, (date, open)) in future.iter().enumerate() {
            if !open {
                continue;
            }
            self.version.push(version);
            self.metric.push(metric.to_owned());
            self.country.push(country.map(str::to_owned));
            self.date.push(days_since_epoch(*date));
            self.value.push(result.band.value[i]);
            self.lower_80.push(result.band.lower_80[i]);
            self.upper_80.push(result.band.upper_80[i]);
            self.lower_95.push(result.band.lower_95[i]);
            self.upper_95.push(result.band.upper_95[i]);
            self.model.push(result.chosen.name());
        }
    }

    fn len(&self) -> usize {
        self.version.len()
    }

    fn batch(self) -> std::result::Result<RecordBatch, ArrowError> {
        RecordBatch::try_new(
            GOLD_FORECAST.arrow_schema(),
            vec![
                Arc::new(Int64Array::from(self.version)),
                Arc::new(StringArray::from(self.metric)),
                Arc::new(StringArray::from(self.country)),
                Arc::new(Date32Array::from(self.date)),
                Arc::new(Float64Array::from(self.value)),
                Arc::new(Float64Array::from(self.lower_80)),
                Arc::new(Float64Array::from(self.upper_80)),
                Arc::new(Float64Array::from(self.lower_95)),
                Arc::new(Float64Array::from(self.upper_95)),
                Arc::new(StringArray::from(self.model)),
            ],
        )
    }
}

#[derive(Default)]
struct BacktestRows {
    version: Vec<i64>,
    metric: Vec<String>,
    country: Vec<Option<String>>,
    model: Vec<&'static str>,
    chosen: Vec<bool>,
    mase: Vec<f64>,
    smape: Vec<f64>,
    coverage_80: Vec<f64>,
    coverage_95: Vec<f64>,
    raw_coverage_80: Vec<f64>,
    raw_coverage_95: Vec<f64>,
    scale_80: Vec<f64>,
    scale_95: Vec<f64>,
    days: Vec<i64>,
}

impl BacktestRows {
    fn add(&mut self, version: i64, metric: &str, country: Option<&str>, result: &SeriesForecast) {
        for backtest in &result.backtests {
            self.version.push(version);
            self.metric.push(metric.to_owned());
            self.country.push(country.map(str::to_owned));
            self.model.push(backtest.model.name());
            self.chosen.push(backtest.model == result.chosen);
            self.mase.push(backtest.mase);
            self.smape.push(backtest.smape);
            self.coverage_80.push(backtest.coverage_80);
            self.coverage_95.push(backtest.coverage_95);
            self.raw_coverage_80.push(backtest.raw_coverage_80);
            self.raw_coverage_95.push(backtest.raw_coverage_95);
            self.scale_80.push(backtest.scale_80);
            self.scale_95.push(backtest.scale_95);
            self.days.push(backtest.days as i64);
        }
    }

    fn batch(self) -> std::result::Result<RecordBatch, ArrowError> {
        RecordBatch::try_new(
            GOLD_FORECAST_BACKTEST.arrow_schema(),
            vec![
                Arc::new(Int64Array::from(self.version)),
                Arc::new(StringArray::from(self.metric)),
                Arc::new(StringArray::from(self.country)),
                Arc::new(StringArray::from(self.model)),
                Arc::new(BooleanArray::from(self.chosen)),
                Arc::new(Float64Array::from(self.mase)),
                Arc::new(Float64Array::from(self.smape)),
                Arc::new(Float64Array::from(self.coverage_80)),
                Arc::new(Float64Array::from(self.coverage_95)),
                Arc::new(Float64Array::from(self.raw_coverage_80)),
                Arc::new(Float64Array::from(self.raw_coverage_95)),
                Arc::new(Float64Array::from(self.scale_80)),
                Arc::new(Float64Array::from(self.scale_95)),
                Arc::new(Int64Array::from(self.days)),
            ],
        )
    }
}

/// Each trading day's vector of [`ANOMALY_METRICS`].
fn anomaly_vectors(inputs: &Inputs) -> (Vec<NaiveDate>, Vec<Vec<f64>>) {
    #[derive(Default)]
    struct Day {
        revenue: f64,
        orders: f64,
        gross: f64,
        returns: f64,
        customers: BTreeSet<u32>,
        quality: f64,
        lines: f64,
    }
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    for row in &inputs.daily {
        let day = days.entry(row.date).or_default();
        day.revenue += row.net_revenue;
        day.orders += row.orders;
        day.gross += row.gross_revenue;
        day.returns += row.returns_amount.abs();
    }
    for line in &inputs.lines {
        if let Some(day) = days.get_mut(&line.date) {
            if let Some(customer) = line.customer {
                day.customers.insert(customer);
            }
            day.quality += line.quality;
            day.lines += 1.0;
        }
    }
    let dates: Vec<NaiveDate> = days.keys().copied().collect();
    let rows = days
        .iter()
        .map(|(date, day)| {
            let quarantined = inputs.quarantined.get(date).copied().unwrap_or(0.0);
            let rows = day.lines + quarantined;
            vec![
                day.revenue,
                day.orders,
                day.customers.len() as f64,
                if day.gross > 0.0 {
                    day.returns / day.gross
                } else {
                    0.0
                },
                if day.lines > 0.0 {
                    day.quality / day.lines
                } else {
                    0.0
                },
                if rows > 0.0 { quarantined / rows } else { 0.0 },
                rows,
            ]
        })
        .collect();
    (dates, rows)
}

fn train_anomalies(
    inputs: &Inputs,
    settings: &ModelsSettings,
    version: i64,
) -> std::result::Result<(RecordBatch, RegistryEntry), ArrowError> {
    let (dates, rows) = anomaly_vectors(inputs);
    let weekday: Vec<u32> = dates
        .iter()
        .map(|d| d.weekday().num_days_from_monday())
        .collect();
    let anomaly_settings = anomaly::Settings {
        seed: settings.seed,
        ..settings.anomaly
    };
    let scores = anomaly::detect(&ANOMALY_METRICS, &rows, &weekday, &anomaly_settings);
    let flagged: Vec<&DayScore> = scores.iter().filter(|s| s.anomaly).collect();
    let json_of = |value: &dyn erased::Json| value.json();
    let batch = RecordBatch::try_new(
        GOLD_ANOMALIES.arrow_schema(),
        vec![
            Arc::new(Int64Array::from(vec![version; scores.len()])),
            Arc::new(Date32Array::from(
                dates
                    .iter()
                    .map(|d| days_since_epoch(*d))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            )),
            Arc::new(BooleanArray::from(
                scores.iter().map(|s| s.anomaly).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                scores
                    .iter()
                    .map(|s| json_of(&s.reasons))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                scores
                    .iter()
                    .map(|s| json_of(&s.metrics))
                    .collect::<Vec<_>>(),
            )),
        ],
    )?;
    let status = if scores.is_empty() {
        "skipped"
    } else {
        "trained"
    };
    let entry = entry(
        "anomalies",
        version,
        status,
        scores.len(),
        json!({"metrics": ANOMALY_METRICS, "settings": anomaly_settings}),
        json!({"days": scores.len(), "anomalies": flagged.len()}),
    );
    Ok((batch, entry))
}

mod erased {
    /// A value serialised as a JSON string for a table cell.
    pub(super) trait Json {
        fn json(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

/// Each identified customer's purchases: `(day number, spend)` of lines that are not a
/// cancellation, with quantity > 0 and unit price > 0.
fn purchases(inputs: &Inputs) -> BTreeMap<u32, Vec<(i32, f64)>> {
    let mut by_customer: BTreeMap<u32, Vec<(i32, f64)>> = BTreeMap::new();
    for line in &inputs.lines {
        let Some(customer) = line.customer else {
            continue;
        };
        if line.cancellation || line.quantity <= 0 || line.unit_price <= 0.0 {
            continue;
        }
        by_customer
            .entry(customer)
            .or_default()
            .push((line.date.num_days_from_ce(), line.total));
    }
    by_customer
}

fn train_clv(
    inputs: &Inputs,
    settings: &ModelsSettings,
    version: i64,
) -> std::result::Result<(RecordBatch, RegistryEntry), ArrowError> {
    let end = inputs.lines.iter().map(|l| l.date).max();
    let by_customer = purchases(inputs);
    let mut rows = ClvRows::default();
    let Some(end) = end else {
        let skipped = entry(
            "clv",
            version,
            "skipped",
            0,
            json!({}),
            json!({"reason": "gold has no sales"}),
        );
        return Ok((rows.batch()?, skipped));
    };
    let end_day = end.num_days_from_ce();
    let customers: Vec<(u32, Summary)> = by_customer
        .iter()
        .filter_map(|(c, p)| clv::summarise(p, end_day).map(|s| (*c, s)))
        .collect();
    let summaries: Vec<Summary> = customers.iter().map(|(_, s)| *s).collect();
    let model = match ClvModel::fit(
        &summaries,
        settings.bootstrap,
        settings.seed,
        settings.discount,
        settings.threads,
    ) {
        Ok(model) => model,
        Err(error) => {
            let skipped = entry(
                "clv",
                version,
                "skipped",
                0,
                json!({}),
                json!({"reason": error.to_string()}),
            );
            return Ok((rows.batch()?, skipped));
        }
    };
    for (customer, summary) in &customers {
        let id = &inputs.customer_ids[*customer as usize];
        let predicted = model.predict(summary);
        let finite = [predicted.point, predicted.lower, predicted.upper]
            .iter()
            .all(|p| p.is_finite());
        if !finite {
            let reason = format!(
                "the fitted parameters (BG/NBD {:?}, Gamma-Gamma {:?}) give non-finite \
                 predictions for customer {id}",
                model.bg_nbd.params, model.gamma_gamma.params
            );
            let skipped = entry(
                "clv",
                version,
                "skipped",
                0,
                json!({}),
                json!({"reason": reason}),
            );
            return Ok((ClvRows::default().batch()?, skipped));
        }
        rows.add(version, id, inputs, summary, &predicted);
    }
    let validation = holdout(&by_customer, end_day, settings.holdout_days);
    let parameters = json!({
        "bg_nbd": model.bg_nbd.params,
        "gamma_gamma": model.gamma_gamma.params,
        "bg_nbd_log_likelihood": model.bg_nbd.log_likelihood,
        "converged": model.bg_nbd.converged && model.gamma_gamma.converged,
        "gamma_gamma_log_likelihood": model.gamma_gamma.log_likelihood,
        "customers": model.bg_nbd.customers,
        "repeat_customers": model.gamma_gamma.customers,
        "observation_end": end,
        "discount_monthly": settings.discount,
        "bootstrap_replicates": model.replicates.len(),
        "interval_level": model.level,
        "time_unit": "day",
    });
    let entry = entry(
        "clv",
        version,
        "trained",
        rows.len(),
        parameters,
        json!({ "holdout": validation }),
    );
    Ok((rows.batch()?, entry))
}

/// The calibration/holdout check: BG/NBD fitted on the purchases until `holdout_days` before
/// the end, predicting each customer's purchase days in the rest, against what they did and
/// against a baseline that carries each customer's calibration rate (frequency / T) forward.
fn holdout(
    by_customer: &BTreeMap<u32, Vec<(i32, f64)>>,
    end_day: i32,
    holdout_days: u32,
) -> serde_json::Value {
    let Ok(holdout_days) = i32::try_from(holdout_days) else {
        return json!({"error": "the holdout is too long"});
    };
    let calibration_end = end_day.saturating_sub(holdout_days);
    let cases: Vec<(Summary, usize)> = by_customer
        .values()
        .filter_map(|p| {
            clv::summarise(p, calibration_end)
                .map(|s| (s, clv::purchase_days_between(p, calibration_end, end_day)))
        })
        .collect();
    let summaries: Vec<Summary> = cases.iter().map(|(s, _)| *s).collect();
    let fit = match clv::BgNbd::fit(&summaries, None) {
        Ok(fit) => fit,
        Err(error) => return json!({"error": error.to_string()}),
    };
    let duration = f64::from(holdout_days);
    let mut groups: BTreeMap<usize, (usize, f64, f64, f64)> = BTreeMap::new();
    let (mut predicted_total, mut actual_total, mut baseline_total) = (0.0, 0.0, 0.0);
    let (mut model_error, mut baseline_error) = (0.0, 0.0);
    for (s, actual) in &cases {
        let predicted = fit.params.expected_purchases(s, duration);
        let baseline = if s.t > 0.0 {
            s.frequency / s.t * duration
        } else {
            0.0
        };
        let actual = *actual as f64;
        predicted_total += predicted;
        actual_total += actual;
        baseline_total += baseline;
        model_error += (predicted - actual).abs();
        baseline_error += (baseline - actual).abs();
        let group = (s.frequency as usize).min(7);
        let entry = groups.entry(group).or_default();
        entry.0 += 1;
        entry.1 += predicted;
        entry.2 += actual;
        entry.3 += baseline;
    }
    let n = cases.len().max(1) as f64;
    json!({
        "calibration_end": day_of(calibration_end),
        "observation_end": day_of(end_day),
        "holdout_days": holdout_days,
        "customers": cases.len(),
        "bg_nbd": fit.params,
        "predicted_purchases": predicted_total,
        "actual_purchases": actual_total,
        "baseline_purchases": baseline_total,
        "mae_per_customer": model_error / n,
        "baseline_mae_per_customer": baseline_error / n,
        "by_calibration_frequency": groups.iter().map(|(group, (count, predicted, actual, baseline))| json!({
            "frequency": if *group == 7 { "7+".to_owned() } else { group.to_string() },
            "customers": count,
            "mean_predicted": predicted / *count as f64,
            "mean_actual": actual / *count as f64,
            "mean_baseline": baseline / *count as f64,
        })).collect::<Vec<_>>(),
    })
}

fn day_of(days_from_ce: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days_from_ce)
}

#[derive(Default)]
struct ClvRows {
    version: Vec<i64>,
    customer: Vec<String>,
    country: Vec<String>,
    segment: Vec<Option<String>>,
    summary: [Vec<f64>; 4],
    predicted: Vec<[f64; 21]>,
    churn: Vec<f64>,
}

impl ClvRows {
    fn add(&mut self, version: i64, id: &str, inputs: &Inputs, s: &Summary, p: &clv::Predicted) {
        self.version.push(version);
        self.customer.push(id.to_owned());
        self.country
            .push(inputs.country_of.get(id).cloned().unwrap_or_default());
        self.segment.push(inputs.segment_of.get(id).cloned());
        for (column, value) in
            self.summary
                .iter_mut()
                .zip([s.frequency, s.recency, s.t, s.monetary_value])
        {
            column.push(value);
        }
        let fields = |x: &clv::Prediction| {
            [
                x.probability_alive,
                x.expected_purchases_30d,
                x.expected_purchases_90d,
                x.expected_purchases_365d,
                x.expected_spend,
                x.clv_6m,
                x.clv_12m,
            ]
        };
        let (point, lower, upper) = (fields(&p.point), fields(&p.lower), fields(&p.upper));
        let mut row = [0.0; 21];
        for i in 0..7 {
            row[3 * i] = point[i];
            row[3 * i + 1] = lower[i];
            row[3 * i + 2] = upper[i];
        }
        self.predicted.push(row);
        self.churn.push(1.0 - p.point.probability_alive);
    }

    fn len(&self) -> usize {
        self.version.len()
    }

    fn batch(self) -> std::result::Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(self.version)),
            Arc::new(StringArray::from(self.customer)),
            Arc::new(StringArray::from(self.country)),
            Arc::new(StringArray::from(self.segment)),
        ];
        for column in self.summary {
            columns.push(Arc::new(Float64Array::from(column)));
        }
        for i in 0..21 {
            columns.push(Arc::new(Float64Array::from(
                self.predicted.iter().map(|row| row[i]).collect::<Vec<_>>(),
            )));
        }
        columns.push(Arc::new(Float64Array::from(self.churn)));
        RecordBatch::try_new(GOLD_CUSTOMER_CLV.arrow_schema(), columns)
    }
}

fn registry_batch(
    entries: &[RegistryEntry],
    gold: i64,
    at: chrono::DateTime<Utc>,
) -> std::result::Result<RecordBatch, ArrowError> {
    let text = |f: &dyn Fn(&RegistryEntry) -> String| {
        Arc::new(StringArray::from(entries.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let int = |f: &dyn Fn(&RegistryEntry) -> i64| {
        Arc::new(Int64Array::from(entries.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    RecordBatch::try_new(
        GOLD_MODEL_VERSIONS.arrow_schema(),
        vec![
            text(&|e| e.model.to_owned()),
            int(&|e| e.version),
            text(&|e| e.status.to_owned()),
            int(&|_| gold),
            Arc::new(
                TimestampMicrosecondArray::from(vec![at.timestamp_micros(); entries.len()])
                    .with_timezone("UTC"),
            ),
            int(&|e| e.training_ms),
            int(&|e| e.rows),
            text(&|e| e.parameters.to_string()),
            text(&|e| e.metrics.to_string()),
        ],
    )
}
