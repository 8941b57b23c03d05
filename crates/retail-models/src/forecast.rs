//! Daily forecasts on a trading-day calendar, with candidate models chosen per series by a
//! rolling-origin backtest.
//!
//! **Closed days.** The shop does not trade every day. A series holds only the days the shop
//! traded ([`TradingCalendar`]); models see consecutive trading days, so a Saturday or the
//! Christmas break is a day that does not exist, not a day of zero sales. The seasonal period
//! is the number of weekdays the shop trades on (6: no Saturdays). Future days are open unless
//! their weekday never traded, or the same calendar date one year earlier fell inside the
//! history on a weekday that normally trades and had no sale (the Christmas break).

use std::collections::BTreeSet;

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::prelude::*;
use chrono::{Datelike as _, Days, Months, NaiveDate, Weekday};
use serde::Serialize;

use crate::{Error, Result};

/// Normal quantiles of the two interval levels.
const Z80: f64 = 1.281_551_565_544_600_5;
const Z95: f64 = 1.959_963_984_540_054;

/// The days the shop trades, learnt from the days it traded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradingCalendar {
    open_weekdays: Vec<Weekday>,
    closures: BTreeSet<NaiveDate>,
    first: NaiveDate,
    last: NaiveDate,
}

impl TradingCalendar {
    /// The calendar of a history whose trading days are `open` (any order, not empty).
    pub fn observe(open: &[NaiveDate]) -> Option<Self> {
        let first = *open.iter().min()?;
        let last = *open.iter().max()?;
        let traded: BTreeSet<NaiveDate> = open.iter().copied().collect();
        let mut open_weekdays: Vec<Weekday> = traded.iter().map(NaiveDate::weekday).collect();
        open_weekdays.sort_by_key(Weekday::num_days_from_monday);
        open_weekdays.dedup();
        let closures = first
            .iter_days()
            .take_while(|day| *day <= last)
            .filter(|day| open_weekdays.contains(&day.weekday()) && !traded.contains(day))
            .collect();
        Some(Self {
            open_weekdays,
            closures,
            first,
            last,
        })
    }

    /// Trading days per week: the seasonal period of a daily series.
    pub fn period(&self) -> usize {
        self.open_weekdays.len()
    }

    /// The weekdays the shop trades on.
    pub fn open_weekdays(&self) -> &[Weekday] {
        &self.open_weekdays
    }

    /// Whether the shop is expected to trade on `day` (after the history).
    pub fn is_open(&self, day: NaiveDate) -> bool {
        if !self.open_weekdays.contains(&day.weekday()) {
            return false;
        }
        let year_before = day.checked_sub_months(Months::new(12));
        !year_before.is_some_and(|before| self.closures.contains(&before))
    }

    /// The days in the `horizon` calendar days after the history, each with whether it is
    /// open.
    pub fn horizon(&self, horizon: u32) -> Vec<(NaiveDate, bool)> {
        (1..=u64::from(horizon))
            .filter_map(|n| self.last.checked_add_days(Days::new(n)))
            .map(|day| (day, self.is_open(day)))
            .collect()
    }

    /// The first day of the history.
    pub fn first(&self) -> NaiveDate {
        self.first
    }
}

/// A candidate model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// The value of the same trading weekday one week earlier; the baseline.
    SeasonalNaive,
    /// Exponential smoothing (augurs' AutoETS, no seasonal component, chosen by AICc among
    /// additive and multiplicative errors, none or additive (damped) trend).
    Ets,
    /// MSTL with the weekly period, its trend and remainder forecast by AutoETS (augurs).
    Mstl,
    /// [`Model::Ets`] on the logarithm of the series (only when every value is above 0);
    /// the forecast and its interval bounds are transformed back with `exp`, so the point is
    /// the median and the intervals keep their levels.
    EtsLog,
    /// [`Model::Mstl`] on the logarithm of the series, transformed back likewise.
    MstlLog,
}

impl Model {
    /// Every candidate, the baseline first.
    pub const ALL: [Self; 5] = [
        Self::SeasonalNaive,
        Self::Ets,
        Self::Mstl,
        Self::EtsLog,
        Self::MstlLog,
    ];

    /// Its name in tables and answers.
    pub fn name(self) -> &'static str {
        match self {
            Self::SeasonalNaive => "seasonal_naive",
            Self::Ets => "ets",
            Self::Mstl => "mstl",
            Self::EtsLog => "ets_log",
            Self::MstlLog => "mstl_log",
        }
    }

    /// The model of a name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|model| model.name() == name)
    }

    /// Forecasts `h` trading days after `history` (seasonal `period`), with 80 % and 95 %
    /// normal intervals.
    ///
    /// # Errors
    ///
    /// [`Error::Fit`] when the series is too short for the model or the model fails.
    pub fn forecast(self, history: &[f64], h: usize, period: usize) -> Result<Band> {
        let fail = |error: &dyn std::fmt::Display| Error::Fit(format!("{}: {error}", self.name()));
        match self {
            Self::SeasonalNaive => seasonal_naive(history, h, period),
            Self::Ets => {
                let fitted = AutoETS::non_seasonal().fit(history).map_err(|e| fail(&e))?;
                let f80 = fitted.predict(h, 0.8).map_err(|e| fail(&e))?;
                let f95 = fitted.predict(h, 0.95).map_err(|e| fail(&e))?;
                Band::from_forecasts(f80, f95).ok_or_else(|| fail(&"no intervals"))
            }
            Self::Mstl => {
                let fitted =
                    MSTLModel::new(vec![period], AutoETS::non_seasonal().into_trend_model())
                        .fit(history)
                        .map_err(|e| fail(&e))?;
                let f80 = fitted.predict(h, 0.8).map_err(|e| fail(&e))?;
                let f95 = fitted.predict(h, 0.95).map_err(|e| fail(&e))?;
                Band::from_forecasts(f80, f95).ok_or_else(|| fail(&"no intervals"))
            }
            Self::EtsLog | Self::MstlLog => {
                if history.iter().any(|v| *v <= 0.0) {
                    return Err(fail(&"the series has values at or below 0"));
                }
                let logs: Vec<f64> = history.iter().map(|v| v.ln()).collect();
                let inner = if self == Self::EtsLog {
                    Self::Ets
                } else {
                    Self::Mstl
                };
                let band = inner.forecast(&logs, h, period)?;
                let back = |values: Vec<f64>| values.into_iter().map(f64::exp).collect();
                Ok(Band {
                    value: back(band.value),
                    lower_80: back(band.lower_80),
                    upper_80: back(band.upper_80),
                    lower_95: back(band.lower_95),
                    upper_95: back(band.upper_95),
                })
            }
        }
    }
}

/// A forecast with its intervals, one value per future trading day.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Band {
    /// Point forecasts.
    pub value: Vec<f64>,
    /// 80 % interval, lower bound.
    pub lower_80: Vec<f64>,
    /// 80 % interval, upper bound.
    pub upper_80: Vec<f64>,
    /// 95 % interval, lower bound.
    pub lower_95: Vec<f64>,
    /// 95 % interval, upper bound.
    pub upper_95: Vec<f64>,
}

impl Band {
    fn from_forecasts(f80: Forecast, f95: Forecast) -> Option<Self> {
        let i80 = f80.intervals?;
        let i95 = f95.intervals?;
        let band = Self {
            value: f80.point,
            lower_80: i80.lower,
            upper_80: i80.upper,
            lower_95: i95.lower,
            upper_95: i95.upper,
        };
        band.value
            .iter()
            .chain(&band.lower_95)
            .chain(&band.upper_95)
            .all(|v| v.is_finite())
            .then_some(band)
    }

    /// Whether every value and bound is a finite number.
    pub fn is_finite(&self) -> bool {
        [
            &self.value,
            &self.lower_80,
            &self.upper_80,
            &self.lower_95,
            &self.upper_95,
        ]
        .iter()
        .all(|values| values.iter().all(|v| v.is_finite()))
    }

    /// Number of days.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether it has no day.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

/// The seasonal naive forecast: ŷ(T+h) = y(T+h−m(k+1)), k = ⌊(h−1)/m⌋; intervals from the
/// standard deviation σ of the in-sample seasonal differences, σₕ = σ·√(k+1).
fn seasonal_naive(history: &[f64], h: usize, period: usize) -> Result<Band> {
    let n = history.len();
    if period == 0 || n <= period {
        return Err(Error::Fit(format!(
            "seasonal_naive: {n} days is not more than one season of {period}"
        )));
    }
    let differences: Vec<f64> = (period..n)
        .map(|t| history[t] - history[t - period])
        .collect();
    let mean = differences.iter().sum::<f64>() / differences.len() as f64;
    let sigma = (differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>()
        / differences.len() as f64)
        .sqrt();
    let mut band = Band::default();
    for step in 1..=h {
        let seasons = (step - 1) / period;
        let value = history[n - period + (step - 1) % period];
        let width = sigma * ((seasons + 1) as f64).sqrt();
        band.value.push(value);
        band.lower_80.push(value - Z80 * width);
        band.upper_80.push(value + Z80 * width);
        band.lower_95.push(value - Z95 * width);
        band.upper_95.push(value + Z95 * width);
    }
    Ok(band)
}

/// How a model did in the rolling-origin backtest of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backtest {
    /// The model.
    pub model: Model,
    /// Mean absolute scaled error: the mean over origins of (mean |error| over the horizon /
    /// the mean |y(t) − y(t−m)| of that origin's training days).
    pub mase: f64,
    /// Symmetric MAPE in percent: mean of 200·|error| / (|actual| + |forecast|), 0 when both
    /// are 0.
    pub smape: f64,
    /// Share of held-out days inside the calibrated 80 % interval, each origin's interval
    /// calibrated on the other origins (cross-validated, so not fitted to the days it scores).
    pub coverage_80: f64,
    /// The same for the calibrated 95 % interval.
    pub coverage_95: f64,
    /// Share of held-out days inside the model's own 80 % interval, before calibration.
    pub raw_coverage_80: f64,
    /// The same for the model's own 95 % interval.
    pub raw_coverage_95: f64,
    /// The factor applied to each side of the model's 80 % interval, calibrated on every
    /// origin: the forecast's intervals use it.
    pub scale_80: f64,
    /// The factor applied to the 95 % interval.
    pub scale_95: f64,
    /// Held-out days scored.
    pub days: usize,
}

/// One held-out day: the actual value and the model's forecast of it.
#[derive(Debug, Clone, Copy)]
struct Scored {
    origin: usize,
    actual: f64,
    value: f64,
    lower_80: f64,
    upper_80: f64,
    lower_95: f64,
    upper_95: f64,
}

impl Scored {
    /// The factor by which the interval's side facing the actual value must grow (or may
    /// shrink) to reach it.
    fn needed(&self, lower: f64, upper: f64) -> f64 {
        let (error, side) = if self.actual >= self.value {
            (self.actual - self.value, upper - self.value)
        } else {
            (self.value - self.actual, self.value - lower)
        };
        if side > 0.0 {
            error / side
        } else if error > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    }

    fn inside(&self, lower: f64, upper: f64, scale: f64) -> bool {
        self.value - scale * (self.value - lower) <= self.actual
            && self.actual <= self.value + scale * (upper - self.value)
    }
}

/// The interval calibration: the `level` quantile (type 7) of the factors the held-out days
/// needed, so that a share `level` of them would have been inside.
fn calibrate(days: &[&Scored], level: f64, interval: impl Fn(&Scored) -> (f64, f64)) -> f64 {
    let mut needed: Vec<f64> = days
        .iter()
        .map(|day| {
            let (lower, upper) = interval(day);
            day.needed(lower, upper)
        })
        .collect();
    needed.sort_by(f64::total_cmp);
    let scale = crate::clv::percentile(&needed, level);
    if scale.is_finite() { scale } else { 1.0 }
}

fn interval_80(day: &Scored) -> (f64, f64) {
    (day.lower_80, day.upper_80)
}

fn interval_95(day: &Scored) -> (f64, f64) {
    (day.lower_95, day.upper_95)
}

/// The backtest's shape: `origins` forecasts of `horizon` trading days, the last ending at the
/// end of the series, each origin `horizon` days after the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BacktestPlan {
    /// Forecast origins.
    pub origins: usize,
    /// Trading days forecast from each origin.
    pub horizon: usize,
}

impl Default for BacktestPlan {
    fn default() -> Self {
        Self {
            origins: 4,
            horizon: 30,
        }
    }
}

/// Backtests `model` on `series` with `plan`.
///
/// # Errors
///
/// [`Error::Fit`] when the series is too short for the plan (each training part needs four
/// seasons) or the model fails at an origin.
pub fn backtest(
    model: Model,
    series: &[f64],
    period: usize,
    plan: BacktestPlan,
) -> Result<Backtest> {
    let held_out = plan.origins * plan.horizon;
    if series.len() < held_out + 4 * period.max(1) {
        return Err(Error::Fit(format!(
            "{} trading days are too few for a backtest of {} origins of {} days",
            series.len(),
            plan.origins,
            plan.horizon
        )));
    }
    let (mut mase, mut smape) = (0.0, 0.0);
    let mut scored = Vec::with_capacity(held_out);
    for origin in 0..plan.origins {
        let end = series.len() - held_out + origin * plan.horizon;
        let train = &series[..end];
        let actual = &series[end..end + plan.horizon];
        let band = model.forecast(train, plan.horizon, period)?;
        if !band.is_finite() {
            return Err(Error::Fit(format!(
                "{}: a forecast is not a finite number",
                model.name()
            )));
        }
        let scale = (period..train.len())
            .map(|t| (train[t] - train[t - period]).abs())
            .sum::<f64>()
            / (train.len() - period) as f64;
        let mae = actual
            .iter()
            .zip(&band.value)
            .map(|(a, f)| (a - f).abs())
            .sum::<f64>()
            / actual.len() as f64;
        mase += if scale > 0.0 { mae / scale } else { 0.0 };
        for (i, a) in actual.iter().enumerate() {
            let f = band.value[i];
            let denominator = a.abs() + f.abs();
            smape += if denominator > 0.0 {
                200.0 * (a - f).abs() / denominator
            } else {
                0.0
            };
            scored.push(Scored {
                origin,
                actual: *a,
                value: f,
                lower_80: band.lower_80[i],
                upper_80: band.upper_80[i],
                lower_95: band.lower_95[i],
                upper_95: band.upper_95[i],
            });
        }
    }
    let days = scored.len();
    let share = |count: usize| count as f64 / days as f64;
    let raw_80 = scored
        .iter()
        .filter(|d| d.inside(d.lower_80, d.upper_80, 1.0))
        .count();
    let raw_95 = scored
        .iter()
        .filter(|d| d.inside(d.lower_95, d.upper_95, 1.0))
        .count();
    // Each origin's intervals calibrated on the other origins' days.
    let (mut in80, mut in95) = (0, 0);
    for origin in 0..plan.origins {
        let others: Vec<&Scored> = scored.iter().filter(|d| d.origin != origin).collect();
        let (s80, s95) = if others.is_empty() {
            (1.0, 1.0)
        } else {
            (
                calibrate(&others, 0.8, interval_80),
                calibrate(&others, 0.95, interval_95),
            )
        };
        for day in scored.iter().filter(|d| d.origin == origin) {
            in80 += usize::from(day.inside(day.lower_80, day.upper_80, s80));
            in95 += usize::from(day.inside(day.lower_95, day.upper_95, s95));
        }
    }
    let all: Vec<&Scored> = scored.iter().collect();
    Ok(Backtest {
        model,
        mase: mase / plan.origins as f64,
        smape: smape / days as f64,
        coverage_80: share(in80),
        coverage_95: share(in95),
        raw_coverage_80: share(raw_80),
        raw_coverage_95: share(raw_95),
        scale_80: calibrate(&all, 0.8, interval_80),
        scale_95: calibrate(&all, 0.95, interval_95),
        days,
    })
}

impl Band {
    /// The band with each side of its intervals scaled around the point.
    fn scaled(mut self, scale_80: f64, scale_95: f64) -> Self {
        for i in 0..self.value.len() {
            let v = self.value[i];
            self.lower_80[i] = v - scale_80 * (v - self.lower_80[i]);
            self.upper_80[i] = v + scale_80 * (self.upper_80[i] - v);
            self.lower_95[i] = v - scale_95 * (v - self.lower_95[i]);
            self.upper_95[i] = v + scale_95 * (self.upper_95[i] - v);
        }
        self
    }
}

/// A series' forecast: every candidate's backtest, the model chosen (lowest MASE; the baseline
/// on a tie) and its forecast refitted on the whole series, its intervals scaled by the
/// calibration of its backtest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesForecast {
    /// The candidates' backtests, in [`Model::ALL`] order (a failed candidate is absent).
    pub backtests: Vec<Backtest>,
    /// The model chosen.
    pub chosen: Model,
    /// Its forecast, one value per future trading day.
    pub band: Band,
}

impl SeriesForecast {
    /// The backtest of the chosen model.
    pub fn chosen_backtest(&self) -> Option<&Backtest> {
        self.backtests.iter().find(|b| b.model == self.chosen)
    }

    /// The backtest of the seasonal naive baseline.
    pub fn baseline(&self) -> Option<&Backtest> {
        self.backtests
            .iter()
            .find(|b| b.model == Model::SeasonalNaive)
    }
}

/// Backtests every candidate on `series` and forecasts `h` trading days with the best.
///
/// # Errors
///
/// [`Error::Fit`] when no candidate can be backtested and fitted.
pub fn forecast_series(
    series: &[f64],
    period: usize,
    h: usize,
    plan: BacktestPlan,
) -> Result<SeriesForecast> {
    let mut first_error = None;
    let backtests: Vec<Backtest> = Model::ALL
        .into_iter()
        .filter_map(|model| match backtest(model, series, period, plan) {
            Ok(backtest) => Some(backtest),
            Err(error) => {
                first_error.get_or_insert(error);
                None
            }
        })
        .collect();
    if backtests.is_empty()
        && let Some(error) = first_error
    {
        return Err(error);
    }
    let mut ranked: Vec<&Backtest> = backtests.iter().collect();
    ranked.sort_by(|a, b| a.mase.total_cmp(&b.mase).then(a.model.cmp(&b.model)));
    for candidate in ranked {
        if let Ok(band) = candidate.model.forecast(series, h, period)
            && band.is_finite()
        {
            return Ok(SeriesForecast {
                chosen: candidate.model,
                backtests: backtests.clone(),
                band: band.scaled(candidate.scale_80, candidate.scale_95),
            });
        }
    }
    Err(Error::Fit(format!(
        "no model could forecast a series of {} trading days",
        series.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn saturdays_and_last_years_break_are_closed_other_days_open() {
        // Trading every day but Saturday from 2010-12-01 to 2011-12-09, closed 2010-12-24 to
        // 2011-01-03.
        let open: Vec<NaiveDate> = day(2010, 12, 1)
            .iter_days()
            .take_while(|d| *d <= day(2011, 12, 9))
            .filter(|d| d.weekday() != Weekday::Sat)
            .filter(|d| !(day(2010, 12, 24) <= *d && *d <= day(2011, 1, 3)))
            .collect();
        let calendar = TradingCalendar::observe(&open).expect("days");
        assert_eq!(calendar.period(), 6);
        assert!(!calendar.is_open(day(2011, 12, 10)), "a Saturday");
        assert!(calendar.is_open(day(2011, 12, 12)));
        assert!(!calendar.is_open(day(2011, 12, 27)), "closed a year before");
        assert!(calendar.is_open(day(2012, 1, 4)));
        let horizon = calendar.horizon(30);
        assert_eq!(horizon.len(), 30);
        assert_eq!(horizon[0], (day(2011, 12, 10), false));
    }

    #[test]
    fn the_seasonal_naive_repeats_the_last_week_and_widens_each_week() {
        let history: Vec<f64> = (0..24)
            .map(|t| f64::from(t % 6) * 10.0 + f64::from((t * 7) % 5))
            .collect();
        let band = seasonal_naive(&history, 12, 6).expect("forecast");
        assert_eq!(&band.value[..6], &history[18..24]);
        assert_eq!(&band.value[6..], &history[18..24]);
        let width = |i: usize| band.upper_95[i] - band.lower_95[i];
        assert!((width(6) / width(0) - 2f64.sqrt()).abs() < 1e-12);
        assert!(band.lower_80[0] > band.lower_95[0]);
    }

    /// A weekly pattern with a trend and noise: the models that see the trend beat the
    /// baseline, which is chosen only when it is best.
    #[test]
    fn the_backtest_chooses_a_model_that_beats_the_baseline_on_a_trended_weekly_series() {
        let pattern = [5.0, 9.0, 7.0, 6.0, 3.0, 8.0];
        let mut state = 7u64;
        let series: Vec<f64> = (0..300)
            .map(|t| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let noise = ((state >> 33) as f64 / f64::from(1u32 << 31)) - 0.5;
                100.0 + 0.5 * t as f64 + 10.0 * pattern[t % 6] + 8.0 * noise
            })
            .collect();
        let result = forecast_series(&series, 6, 30, BacktestPlan::default()).expect("forecast");
        assert_eq!(result.band.len(), 30);
        let chosen = result.chosen_backtest().expect("chosen");
        let baseline = result.baseline().expect("baseline");
        assert_ne!(result.chosen, Model::SeasonalNaive);
        assert!(chosen.mase < baseline.mase, "{chosen:?} vs {baseline:?}");
        assert!(chosen.coverage_95 > 0.7, "{chosen:?}");
        assert_eq!(chosen.days, 120);
    }

    #[test]
    fn a_series_too_short_for_the_backtest_is_a_clear_error() {
        let error = backtest(Model::Ets, &[1.0; 30], 6, BacktestPlan::default()).unwrap_err();
        assert!(error.to_string().contains("too few"), "{error}");
    }
}
