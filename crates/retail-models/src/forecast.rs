//! Daily forecasts on a trading-day calendar, with candidate models chosen per series by a
//! rolling-origin backtest.
//!
//! **Closed days.** The shop does not trade every day ([`TradingCalendar`]). A weekday on which
//! it does not trade (Saturday) does not exist in a series: models see the open weekdays only,
//! and the seasonal period is their number (6). A break (a run of days without trade that
//! includes an open weekday: the Christmas break, a bank holiday) keeps its days in the series,
//! filled with the same weekday's value a week earlier ([`fill_breaks`]) so that the weekly
//! pattern stays aligned, and they are never scored. In the horizon, a day is closed when its
//! weekday is not open or the same date one year earlier was in a break; the models forecast
//! every open weekday and the closed days are dropped from the answer.

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
    traded: BTreeSet<NaiveDate>,
    breaks: BTreeSet<NaiveDate>,
    first: NaiveDate,
    last: NaiveDate,
}

impl TradingCalendar {
    /// The calendar of a history whose trading days are `open` (any order, not empty).
    ///
    /// A weekday is open when the shop traded on at least half of its occurrences in the
    /// history (a stray Saturday sale does not make Saturdays open). A **break** is a run of
    /// consecutive days without trade that includes an open weekday (the Christmas break, a
    /// bank holiday); every day of the run is in it.
    pub fn observe(open: &[NaiveDate]) -> Option<Self> {
        let first = *open.iter().min()?;
        let last = *open.iter().max()?;
        let traded: BTreeSet<NaiveDate> = open.iter().copied().collect();
        let days: Vec<NaiveDate> = first.iter_days().take_while(|day| *day <= last).collect();
        let mut open_weekdays: Vec<Weekday> = Vec::new();
        for weekday in (0..7).filter_map(|n| Weekday::try_from(n).ok()) {
            let occurrences = days.iter().filter(|d| d.weekday() == weekday).count();
            let trading = traded.iter().filter(|d| d.weekday() == weekday).count();
            if trading > 0 && trading * 2 >= occurrences {
                open_weekdays.push(weekday);
            }
        }
        let mut breaks = BTreeSet::new();
        let mut run: Vec<NaiveDate> = Vec::new();
        for day in days.iter().chain(std::iter::once(&(last + Days::new(1)))) {
            if traded.contains(day) || *day > last {
                if run.iter().any(|d| open_weekdays.contains(&d.weekday())) {
                    breaks.extend(run.iter().copied());
                }
                run.clear();
            } else {
                run.push(*day);
            }
        }
        Some(Self {
            open_weekdays,
            traded,
            breaks,
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

    /// The model's days of the history: every day of an open weekday, each with whether the
    /// shop traded. A week always has [`TradingCalendar::period`] of them, so the weekly
    /// pattern stays aligned across breaks; the days of a break are filled in by the caller
    /// and not scored.
    pub fn slots(&self) -> Vec<(NaiveDate, bool)> {
        self.first
            .iter_days()
            .take_while(|day| *day <= self.last)
            .filter(|day| self.open_weekdays.contains(&day.weekday()))
            .map(|day| (day, self.traded.contains(&day)))
            .collect()
    }

    /// Whether the shop is expected to trade on `day` (after the history): its weekday is
    /// open and the same date one year earlier was not in a break.
    pub fn is_open(&self, day: NaiveDate) -> bool {
        if !self.open_weekdays.contains(&day.weekday()) {
            return false;
        }
        let year_before = day.checked_sub_months(Months::new(12));
        !year_before.is_some_and(|before| self.breaks.contains(&before))
    }

    /// The model's days in the `horizon` calendar days after the history (the open weekdays),
    /// each with whether the shop is expected to trade.
    pub fn horizon_slots(&self, horizon: u32) -> Vec<(NaiveDate, bool)> {
        (1..=u64::from(horizon))
            .filter_map(|n| self.last.checked_add_days(Days::new(n)))
            .filter(|day| self.open_weekdays.contains(&day.weekday()))
            .map(|day| (day, self.is_open(day)))
            .collect()
    }

    /// The first day of the history.
    pub fn first(&self) -> NaiveDate {
        self.first
    }

    /// The last day of the history.
    pub fn last(&self) -> NaiveDate {
        self.last
    }
}

/// Fills the slots where the shop did not trade with the value of the same weekday one week
/// earlier (0 in the first week), so that models see whole weeks.
pub fn fill_breaks(values: &mut [f64], observed: &[bool], period: usize) {
    for t in 0..values.len() {
        if !observed[t] {
            values[t] = if t >= period { values[t - period] } else { 0.0 };
        }
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
    let scale = crate::stats::percentile(&needed, level);
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

/// Backtests `model` on `series` with `plan`; only held-out days where `observed` is true
/// (the shop traded) are scored.
///
/// # Errors
///
/// [`Error::Fit`] when the plan is empty, the series is too short for it (each training part
/// needs four seasons), no held-out day was a trading day, or the model fails at an origin.
pub fn backtest(
    model: Model,
    series: &[f64],
    observed: &[bool],
    period: usize,
    plan: BacktestPlan,
) -> Result<Backtest> {
    if plan.origins == 0 || plan.horizon == 0 {
        return Err(Error::Fit(
            "a backtest needs at least one origin and one day ahead".into(),
        ));
    }
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
        let scored_days: Vec<usize> = (0..plan.horizon).filter(|i| observed[end + i]).collect();
        let mae = scored_days
            .iter()
            .map(|i| (actual[*i] - band.value[*i]).abs())
            .sum::<f64>()
            / scored_days.len().max(1) as f64;
        mase += if scale > 0.0 {
            mae / scale
        } else if mae > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        for i in scored_days {
            let a = &actual[i];
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
    if days == 0 {
        return Err(Error::Fit("no held-out day was a trading day".into()));
    }
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
    observed: &[bool],
    period: usize,
    h: usize,
    plan: BacktestPlan,
) -> Result<SeriesForecast> {
    let mut first_error = None;
    let backtests: Vec<Backtest> = Model::ALL
        .into_iter()
        .filter_map(
            |model| match backtest(model, series, observed, period, plan) {
                Ok(backtest) => Some(backtest),
                Err(error) => {
                    first_error.get_or_insert(error);
                    None
                }
            },
        )
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
        // A stray Saturday sale does not open Saturdays.
        let mut open = open;
        open.push(day(2011, 6, 4));
        let calendar = TradingCalendar::observe(&open).expect("days");
        assert_eq!(calendar.period(), 6);
        assert!(!calendar.is_open(day(2011, 12, 10)), "a Saturday");
        assert!(calendar.is_open(day(2011, 12, 12)));
        assert!(!calendar.is_open(day(2011, 12, 27)), "closed a year before");
        assert!(
            !calendar.is_open(day(2011, 12, 25)),
            "in last year's break, a Saturday then"
        );
        assert!(
            !calendar.is_open(day(2012, 1, 1)),
            "in last year's break, a Saturday then"
        );
        assert!(calendar.is_open(day(2012, 1, 4)));
        let horizon = calendar.horizon_slots(30);
        assert_eq!(horizon.len(), 25, "30 days less five Saturdays");
        assert_eq!(horizon[0], (day(2011, 12, 11), true));
        // The history's model days: every open weekday, the break's days not traded.
        let slots = calendar.slots();
        let weeks = slots.len() / 6;
        assert!(slots.len() - weeks * 6 < 6);
        let untraded: Vec<NaiveDate> = slots.iter().filter(|(_, t)| !t).map(|(d, _)| *d).collect();
        assert_eq!(
            untraded.len(),
            9,
            "2010-12-24 to 2011-01-03 less two Saturdays: {untraded:?}"
        );
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
        let observed = vec![true; series.len()];
        let result =
            forecast_series(&series, &observed, 6, 30, BacktestPlan::default()).expect("forecast");
        assert_eq!(result.band.len(), 30);
        let chosen = result.chosen_backtest().expect("chosen");
        let baseline = result.baseline().expect("baseline");
        assert_ne!(result.chosen, Model::SeasonalNaive);
        assert!(chosen.mase < baseline.mase, "{chosen:?} vs {baseline:?}");
        assert!(chosen.coverage_95 > 0.7, "{chosen:?}");
        assert_eq!(chosen.days, 120);
    }

    /// Days of a break are filled with the same weekday a week before, and a held-out day
    /// that was not a trading day is never scored: whatever it holds, the backtest is the same.
    #[test]
    fn break_days_are_filled_and_never_scored() {
        let mut values: Vec<f64> = (0..200)
            .map(|t| 50.0 + f64::from(t % 6) * 5.0 + f64::from((t * 13) % 7))
            .collect();
        let mut observed = vec![true; values.len()];
        for t in [20, 21, 22, 150, 151, 190] {
            observed[t] = false;
            values[t] = 1e9;
        }
        let mut filled = values.clone();
        fill_breaks(&mut filled, &observed, 6);
        assert_eq!(filled[20], filled[14]);
        assert_eq!(filled[22], filled[16]);
        let plan = BacktestPlan {
            origins: 2,
            horizon: 30,
        };
        let first = backtest(Model::SeasonalNaive, &filled, &observed, 6, plan).expect("backtest");
        filled[190] = -5.0;
        let second = backtest(Model::SeasonalNaive, &filled, &observed, 6, plan).expect("backtest");
        assert_eq!(
            first.days, 57,
            "60 held-out days less three that were not traded"
        );
        assert_eq!(first.mase, second.mase);
        assert_eq!(first.coverage_95, second.coverage_95);
        let none = BacktestPlan {
            origins: 0,
            horizon: 30,
        };
        assert!(backtest(Model::SeasonalNaive, &filled, &observed, 6, none).is_err());
    }

    #[test]
    fn a_series_too_short_for_the_backtest_is_a_clear_error() {
        let error = backtest(
            Model::Ets,
            &[1.0; 30],
            &[true; 30],
            6,
            BacktestPlan::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("too few"), "{error}");
    }
}
