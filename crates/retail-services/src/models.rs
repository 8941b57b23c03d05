//! [`ModelsService`]: what the models asset wrote to gold (forecasts, anomalies, customer
//! lifetime value, the model registry), read from the lake and kept in memory until one of its
//! tables moves (checked at most once a second).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use retail_domain::ports::ConsentRegister;
use retail_domain::privacy::ConsentView;
use retail_lake::Lake;
use retail_lake::arrow::array::RecordBatch;
use retail_lake::schema::{
    GOLD_ANOMALIES, GOLD_CUSTOMER_CLV, GOLD_FORECAST, GOLD_FORECAST_BACKTEST, GOLD_MODEL_VERSIONS,
    MODEL_TABLES, TableSpec,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::columns::Columns;
use crate::tables::TableCache;
use crate::{Error, Result};

pub use retail_lake::schema::FORECAST_METRICS;

/// The most customers one page of `/api/v2/analytics/clv` holds.
pub const MAX_CLV_LIMIT: usize = 1_000;

/// What the models predict, as trained on gold.
#[async_trait]
pub trait ModelsService: Send + Sync {
    /// A metric's daily forecast for `horizon_days` calendar days, in total or for a country.
    async fn forecast(&self, query: &ForecastQuery) -> Result<ForecastAnswer>;
    /// The trading days scored between two dates (inclusive), only anomalies unless `all`; a
    /// reversed period selects nothing, as everywhere in the API.
    async fn anomalies(&self, query: &AnomalyQuery) -> Result<AnomaliesAnswer>;
    /// Customers ranked by 12-month CLV, filtered by country and segment.
    async fn clv(&self, query: &ClvQuery) -> Result<ClvPage>;
    /// One customer's predictions; `None` when the models do not know them.
    async fn customer_value(&self, customer_id: &str) -> Result<Option<CustomerValue>>;
    /// Every model version trained, newest first.
    async fn models(&self) -> Result<Vec<ModelVersion>>;
    /// Every candidate's backtest on every series of the current forecast.
    async fn backtests(&self) -> Result<Vec<SeriesBacktest>>;
}

/// One candidate's backtest on one series.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesBacktest {
    /// The metric.
    pub metric: String,
    /// The country; absent for the total.
    pub country_name: Option<String>,
    /// Whether the series' forecast uses this model.
    pub chosen: bool,
    /// How it did.
    pub score: BacktestScore,
}

/// `GET /api/v2/analytics/forecast`'s parameters.
#[derive(Debug, Clone)]
pub struct ForecastQuery {
    /// `revenue`, `orders` or `units`.
    pub metric: String,
    /// Calendar days (1 to 90).
    pub horizon_days: u32,
    /// A country's name; `None` for the total.
    pub country: Option<String>,
}

/// One forecast day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForecastPoint {
    /// The day.
    pub date: NaiveDate,
    /// The point forecast.
    pub value: f64,
    /// 80 % prediction interval, lower bound.
    pub lower_80: f64,
    /// 80 % prediction interval, upper bound.
    pub upper_80: f64,
    /// 95 % prediction interval, lower bound.
    pub lower_95: f64,
    /// 95 % prediction interval, upper bound.
    pub upper_95: f64,
}

/// A model's rolling-origin backtest on one series.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BacktestScore {
    /// The model.
    pub model: String,
    /// Mean absolute scaled error (scaled by the in-sample seasonal naive error).
    pub mase: f64,
    /// Symmetric mean absolute percentage error, in percent.
    pub smape: f64,
    /// Share of held-out days inside the calibrated 80 % interval (each origin's interval
    /// calibrated on the other origins).
    pub coverage_80: f64,
    /// Share of held-out days inside the calibrated 95 % interval.
    pub coverage_95: f64,
    /// Share inside the model's own 80 % interval, before calibration.
    pub raw_coverage_80: f64,
    /// Share inside the model's own 95 % interval, before calibration.
    pub raw_coverage_95: f64,
    /// The calibration factor of the 80 % interval's sides.
    pub scale_80: f64,
    /// The calibration factor of the 95 % interval's sides.
    pub scale_95: f64,
    /// Held-out trading days scored.
    pub days: i64,
}

/// A forecast with the model that made it and how well it did on held-out days.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForecastAnswer {
    /// The metric.
    pub metric: String,
    /// The country; absent for the total.
    pub country_name: Option<String>,
    /// Calendar days asked for.
    pub horizon_days: u32,
    /// The model chosen for this series by the backtest.
    pub model: String,
    /// The model version that made the forecast (see `/api/v2/models`).
    pub model_version: i64,
    /// The gold version it was trained on.
    pub gold_version: i64,
    /// The last day of the history.
    pub history_end: NaiveDate,
    /// The chosen model's backtest.
    pub backtest: BacktestScore,
    /// The seasonal naive baseline's backtest.
    pub baseline: Option<BacktestScore>,
    /// Days in the horizon the shop is expected to be closed (no forecast: closed, not zero).
    pub closed_days: Vec<NaiveDate>,
    /// One point per open day.
    pub points: Vec<ForecastPoint>,
}

/// `GET /api/v2/analytics/anomalies`'s parameters.
#[derive(Debug, Clone, Default)]
pub struct AnomalyQuery {
    /// First day (inclusive).
    pub from: Option<NaiveDate>,
    /// Last day (inclusive).
    pub to: Option<NaiveDate>,
    /// Every scored day, not only anomalies.
    pub all: bool,
}

/// A scored trading day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnomalyDay {
    /// The day.
    pub date: NaiveDate,
    /// The isolation forest's score (above 0.5: easier than usual to isolate).
    pub score: f64,
    /// Whether it is an anomaly.
    pub is_anomaly: bool,
    /// The metrics that made it unusual: `metric`, `value`, `expected`, `z`, largest |z| first.
    #[schema(value_type = Vec<Object>)]
    pub reasons: serde_json::Value,
    /// Every metric's value, expected value and z.
    #[schema(value_type = Vec<Object>)]
    pub metrics: serde_json::Value,
}

/// Scored days.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnomaliesAnswer {
    /// The model version that scored them.
    pub model_version: i64,
    /// The days, oldest first.
    pub days: Vec<AnomalyDay>,
}

/// `GET /api/v2/analytics/clv`'s parameters.
#[derive(Debug, Clone, Default)]
pub struct ClvQuery {
    /// Only customers of this country.
    pub country: Option<String>,
    /// Only customers of this RFM segment.
    pub segment: Option<String>,
    /// Customers per page (1 to 1,000).
    pub limit: usize,
    /// Customers skipped.
    pub offset: usize,
}

/// A prediction with its bootstrap interval.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Estimate {
    /// At the fitted parameters.
    pub value: f64,
    /// Lower bound (5th percentile over the parameter bootstrap).
    pub lower: f64,
    /// Upper bound (95th percentile).
    pub upper: f64,
}

/// A customer's summary and predictions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerValue {
    /// The customer.
    pub customer_id: String,
    /// Current country.
    pub country_name: String,
    /// RFM segment.
    pub segment: Option<String>,
    /// Purchase days − 1.
    pub frequency: f64,
    /// Days from the first to the last purchase day.
    pub recency: f64,
    /// Days from the first purchase day to the end of observation.
    #[serde(rename = "T")]
    pub t: f64,
    /// Mean spend of the repeat purchase days.
    pub monetary_value: f64,
    /// Probability of still being a customer.
    pub probability_alive: Estimate,
    /// Expected purchase days in the next 30 days.
    pub expected_purchases_30d: Estimate,
    /// ... 90 days.
    pub expected_purchases_90d: Estimate,
    /// ... 365 days.
    pub expected_purchases_365d: Estimate,
    /// Expected spend per purchase day.
    pub expected_spend: Estimate,
    /// Discounted value of the next 6 months.
    pub clv_6m: Estimate,
    /// Discounted value of the next 12 months.
    pub clv_12m: Estimate,
    /// 1 − probability alive.
    pub churn_risk: f64,
    /// The model version that made the predictions.
    pub model_version: i64,
}

/// A page of customers by value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClvPage {
    /// The model version.
    pub model_version: i64,
    /// Customers that match the filters.
    pub total: usize,
    /// This page, highest 12-month CLV first.
    pub customers: Vec<CustomerValue>,
}

/// A trained model version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelVersion {
    /// `forecast`, `anomalies` or `clv`.
    pub model: String,
    /// The version.
    pub version: i64,
    /// `trained`, or `skipped` (the reason is in `metrics`).
    pub status: String,
    /// The gold version it was trained on.
    pub gold_version: i64,
    /// When.
    pub trained_at: DateTime<Utc>,
    /// Training time in milliseconds.
    pub training_ms: i64,
    /// Rows of predictions written.
    pub rows: i64,
    /// The fitted parameters (BG/NBD `r`, `alpha`, `a`, `b`; Gamma-Gamma `p`, `q`, `v`; ...).
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// Accuracy on held-out data.
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
}

#[derive(Debug, Clone)]
struct ForecastRow {
    version: i64,
    metric: String,
    country: Option<String>,
    point: ForecastPoint,
    model: String,
}

/// The tables, as last read.
#[derive(Debug, Default)]
struct Snapshot {
    forecast: Vec<ForecastRow>,
    backtest: Vec<SeriesBacktest>,
    anomalies: Vec<(i64, AnomalyDay)>,
    customers: Vec<CustomerValue>,
    by_customer: HashMap<String, usize>,
    models: Vec<ModelVersion>,
}

/// [`ModelsService`] over the lake's model tables.
#[derive(Debug)]
pub struct LakeModels {
    tables: TableCache<Snapshot>,
    consent: Option<Arc<dyn ConsentRegister>>,
}

impl LakeModels {
    /// The models of `lake`.
    pub fn new(lake: Lake) -> Self {
        Self {
            tables: TableCache::new(lake, &MODEL_TABLES),
            consent: None,
        }
    }

    /// Answers lifetime values only for customers `register` allows to be profiled: a
    /// withdrawal counts at once, before the models asset runs again (ADR 0014).
    #[must_use]
    pub fn with_consent(mut self, register: Arc<dyn ConsentRegister>) -> Self {
        self.consent = Some(register);
        self
    }

    async fn profiling(&self) -> Result<ConsentView> {
        crate::consent::profiling(self.consent.as_ref()).await
    }

    async fn snapshot(&self) -> Result<Arc<Snapshot>> {
        self.tables.get(|versions| self.load(versions)).await
    }

    async fn read(&self, table: &TableSpec, version: Option<u64>) -> Result<Vec<RecordBatch>> {
        self.tables.read(table, version).await
    }

    async fn load(&self, versions: Vec<Option<u64>>) -> Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        for batch in self.read(&GOLD_FORECAST, versions[0]).await? {
            let c = Columns(&batch);
            for row in 0..batch.num_rows() {
                snapshot.forecast.push(ForecastRow {
                    version: c.int("model_version", row)?,
                    metric: c.text("metric", row)?,
                    country: c.text_opt("country_name", row)?,
                    model: c.text("model", row)?,
                    point: ForecastPoint {
                        date: c.date("date", row)?,
                        value: c.float("value", row)?,
                        lower_80: c.float("lower_80", row)?,
                        upper_80: c.float("upper_80", row)?,
                        lower_95: c.float("lower_95", row)?,
                        upper_95: c.float("upper_95", row)?,
                    },
                });
            }
        }
        snapshot.forecast.sort_by_key(|row| row.point.date);
        for batch in self.read(&GOLD_FORECAST_BACKTEST, versions[1]).await? {
            let c = Columns(&batch);
            for row in 0..batch.num_rows() {
                snapshot.backtest.push(SeriesBacktest {
                    metric: c.text("metric", row)?,
                    country_name: c.text_opt("country_name", row)?,
                    chosen: c.bool("chosen", row)?,
                    score: BacktestScore {
                        model: c.text("model", row)?,
                        mase: c.float("mase", row)?,
                        smape: c.float("smape", row)?,
                        coverage_80: c.float("coverage_80", row)?,
                        coverage_95: c.float("coverage_95", row)?,
                        raw_coverage_80: c.float("raw_coverage_80", row)?,
                        raw_coverage_95: c.float("raw_coverage_95", row)?,
                        scale_80: c.float("scale_80", row)?,
                        scale_95: c.float("scale_95", row)?,
                        days: c.int("days", row)?,
                    },
                });
            }
        }
        for batch in self.read(&GOLD_ANOMALIES, versions[2]).await? {
            let c = Columns(&batch);
            for row in 0..batch.num_rows() {
                snapshot.anomalies.push((
                    c.int("model_version", row)?,
                    AnomalyDay {
                        date: c.date("date", row)?,
                        score: c.float("score", row)?,
                        is_anomaly: c.bool("is_anomaly", row)?,
                        reasons: c.json("reasons", row)?,
                        metrics: c.json("metrics", row)?,
                    },
                ));
            }
        }
        snapshot.anomalies.sort_by_key(|(_, day)| day.date);
        for batch in self.read(&GOLD_CUSTOMER_CLV, versions[3]).await? {
            let c = Columns(&batch);
            for row in 0..batch.num_rows() {
                snapshot.customers.push(CustomerValue {
                    customer_id: c.text("customer_id", row)?,
                    country_name: c.text("country_name", row)?,
                    segment: c.text_opt("segment", row)?,
                    frequency: c.float("frequency", row)?,
                    recency: c.float("recency", row)?,
                    t: c.float("t", row)?,
                    monetary_value: c.float("monetary_value", row)?,
                    probability_alive: c.estimate("probability_alive", row)?,
                    expected_purchases_30d: c.estimate("expected_purchases_30d", row)?,
                    expected_purchases_90d: c.estimate("expected_purchases_90d", row)?,
                    expected_purchases_365d: c.estimate("expected_purchases_365d", row)?,
                    expected_spend: c.estimate("expected_spend", row)?,
                    clv_6m: c.estimate("clv_6m", row)?,
                    clv_12m: c.estimate("clv_12m", row)?,
                    churn_risk: c.float("churn_risk", row)?,
                    model_version: c.int("model_version", row)?,
                });
            }
        }
        snapshot.customers.sort_by(|a, b| {
            b.clv_12m
                .value
                .total_cmp(&a.clv_12m.value)
                .then_with(|| a.customer_id.cmp(&b.customer_id))
        });
        snapshot.by_customer = snapshot
            .customers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.customer_id.clone(), i))
            .collect();
        for batch in self.read(&GOLD_MODEL_VERSIONS, versions[4]).await? {
            let c = Columns(&batch);
            for row in 0..batch.num_rows() {
                snapshot.models.push(ModelVersion {
                    model: c.text("model", row)?,
                    version: c.int("version", row)?,
                    status: c.text("status", row)?,
                    gold_version: c.int("gold_version", row)?,
                    trained_at: c.timestamp("trained_at", row)?,
                    training_ms: c.int("training_ms", row)?,
                    rows: c.int("rows", row)?,
                    parameters: c.json("parameters", row)?,
                    metrics: c.json("metrics", row)?,
                });
            }
        }
        snapshot.models.sort_by(|a, b| {
            b.version
                .cmp(&a.version)
                .then_with(|| a.model.cmp(&b.model))
        });
        Ok(snapshot)
    }
}

fn not_trained(what: &str) -> Error {
    Error::not_found(format!(
        "no {what} yet: the models asset has not been trained on gold (run the pipeline, or \
         `retail pipeline run --asset models`)"
    ))
}

impl Snapshot {
    /// The newest registry entry of `model`, if it was trained; else the `404` that says why.
    fn trained(&self, model: &str, what: &str) -> Result<&ModelVersion> {
        let entry = self
            .models
            .iter()
            .find(|m| m.model == model)
            .ok_or_else(|| not_trained(what))?;
        if entry.status == "trained" {
            Ok(entry)
        } else {
            Err(Error::not_found(format!(
                "no {what}: model version {} was skipped: {}",
                entry.version,
                entry.metrics["reason"]
                    .as_str()
                    .unwrap_or("it could not be fitted")
            )))
        }
    }
}

#[async_trait]
impl ModelsService for LakeModels {
    async fn forecast(&self, query: &ForecastQuery) -> Result<ForecastAnswer> {
        if !FORECAST_METRICS.contains(&query.metric.as_str()) {
            return Err(Error::invalid(format!(
                "metric must be one of {}, not {:?}",
                FORECAST_METRICS.join(", "),
                query.metric
            )));
        }
        if !(1..=90).contains(&query.horizon_days) {
            return Err(Error::invalid(format!(
                "horizon must be 1 to 90 days, not {}",
                query.horizon_days
            )));
        }
        let snapshot = self.snapshot().await?;
        let registry = snapshot
            .models
            .iter()
            .find(|m| m.model == "forecast")
            .ok_or_else(|| not_trained("forecast"))?;
        if registry.status != "trained" {
            return Err(Error::not_found(format!(
                "no forecast: model version {} was skipped: {}",
                registry.version,
                registry.metrics["reason"]
                    .as_str()
                    .unwrap_or("no series could be fitted")
            )));
        }
        let history_end = registry.parameters["history"][1]
            .as_str()
            .and_then(|text| text.parse::<NaiveDate>().ok())
            .ok_or_else(|| not_trained("forecast"))?;
        let series: Vec<&ForecastRow> = snapshot
            .forecast
            .iter()
            .filter(|row| row.metric == query.metric && row.country == query.country)
            .collect();
        let Some(first) = series.first() else {
            let mut countries: Vec<&str> = snapshot
                .forecast
                .iter()
                .filter_map(|row| row.country.as_deref())
                .collect();
            countries.sort_unstable();
            countries.dedup();
            return Err(Error::not_found(format!(
                "no forecast for country {:?}; forecast countries: {}",
                query.country.as_deref().unwrap_or("(all)"),
                countries.join(", ")
            )));
        };
        let last = history_end + chrono::Days::new(u64::from(query.horizon_days));
        let points: Vec<ForecastPoint> = series
            .iter()
            .filter(|row| row.point.date <= last)
            .map(|row| row.point.clone())
            .collect();
        let open: std::collections::BTreeSet<NaiveDate> = points.iter().map(|p| p.date).collect();
        let closed_days = history_end
            .iter_days()
            .skip(1)
            .take_while(|day| *day <= last)
            .filter(|day| !open.contains(day))
            .collect();
        let scores = |chosen: bool, model: Option<&str>| {
            snapshot
                .backtest
                .iter()
                .find(|row| {
                    row.metric == query.metric
                        && row.country_name == query.country
                        && (if chosen {
                            row.chosen
                        } else {
                            Some(row.score.model.as_str()) == model
                        })
                })
                .map(|row| row.score.clone())
        };
        Ok(ForecastAnswer {
            metric: query.metric.clone(),
            country_name: query.country.clone(),
            horizon_days: query.horizon_days,
            model: first.model.clone(),
            model_version: first.version,
            gold_version: registry.gold_version,
            history_end,
            backtest: scores(true, None).ok_or_else(|| not_trained("forecast backtest"))?,
            baseline: scores(false, Some("seasonal_naive")),
            closed_days,
            points,
        })
    }

    async fn anomalies(&self, query: &AnomalyQuery) -> Result<AnomaliesAnswer> {
        let snapshot = self.snapshot().await?;
        snapshot.trained("anomalies", "anomaly scores")?;
        let Some((version, _)) = snapshot.anomalies.first() else {
            return Err(not_trained("anomaly scores"));
        };
        Ok(AnomaliesAnswer {
            model_version: *version,
            days: snapshot
                .anomalies
                .iter()
                .map(|(_, day)| day)
                .filter(|day| query.all || day.is_anomaly)
                .filter(|day| query.from.is_none_or(|from| day.date >= from))
                .filter(|day| query.to.is_none_or(|to| day.date <= to))
                .cloned()
                .collect(),
        })
    }

    async fn clv(&self, query: &ClvQuery) -> Result<ClvPage> {
        if !(1..=MAX_CLV_LIMIT).contains(&query.limit) {
            return Err(Error::invalid(format!(
                "limit must be 1 to {MAX_CLV_LIMIT}, not {}",
                query.limit
            )));
        }
        let snapshot = self.snapshot().await?;
        snapshot.trained("clv", "customer lifetime values")?;
        let Some(first) = snapshot.customers.first() else {
            return Err(not_trained("customer lifetime values"));
        };
        let consent = self.profiling().await?;
        let matching: Vec<&CustomerValue> = snapshot
            .customers
            .iter()
            .filter(|c| consent.allows(&c.customer_id))
            .filter(|c| {
                query
                    .country
                    .as_ref()
                    .is_none_or(|country| c.country_name == *country)
            })
            .filter(|c| query.segment.is_none() || c.segment == query.segment)
            .collect();
        Ok(ClvPage {
            model_version: first.model_version,
            total: matching.len(),
            customers: matching
                .into_iter()
                .skip(query.offset)
                .take(query.limit)
                .cloned()
                .collect(),
        })
    }

    async fn customer_value(&self, customer_id: &str) -> Result<Option<CustomerValue>> {
        let snapshot = self.snapshot().await?;
        if !self.profiling().await?.allows(customer_id) {
            return Ok(None);
        }
        Ok(snapshot
            .by_customer
            .get(customer_id)
            .map(|i| snapshot.customers[*i].clone()))
    }

    async fn models(&self) -> Result<Vec<ModelVersion>> {
        Ok(self.snapshot().await?.models.clone())
    }

    async fn backtests(&self) -> Result<Vec<SeriesBacktest>> {
        Ok(self.snapshot().await?.backtest.clone())
    }
}
