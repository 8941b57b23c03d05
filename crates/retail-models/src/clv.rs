//! Customer lifetime value: the BG/NBD model of repeat purchases (Fader, Hardie and Lee, 2005,
//! "Counting your customers the easy way") and the Gamma-Gamma model of spend (Fader, Hardie and
//! Lee, 2005, "RFM and CLV"), both fitted by maximum likelihood without a penalty.
//!
//! The summary is the standard one (as `lifetimes`' `summary_data_from_transaction_data` with
//! daily periods): per customer, purchases are grouped by calendar day;
//! `frequency` = purchase days − 1, `recency` = days from the first to the last purchase day,
//! `T` = days from the first purchase day to the end of observation, `monetary_value` = the mean
//! spend of the repeat purchase days (0 when there are none). Which lines are purchases is the
//! caller's business (the asset: identified customer, not a cancellation, quantity > 0, unit
//! price > 0).

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;

use crate::optimize::{hyp2f1, ln_gamma, nelder_mead};
use crate::stats::percentile;
use crate::{Error, Result};

/// Days in a month for CLV, as `lifetimes` counts them.
pub const DAYS_PER_MONTH: f64 = 30.0;

/// One customer's summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Purchase days − 1.
    pub frequency: f64,
    /// Days from the first to the last purchase day.
    pub recency: f64,
    /// Days from the first purchase day to the end of observation.
    #[serde(rename = "T")]
    pub t: f64,
    /// The mean spend of the repeat purchase days; 0 without any.
    pub monetary_value: f64,
}

/// Summarises one customer's purchases (`(day, spend)`, days as any integer count, in any
/// order), observed until `end`. `None` when no purchase is on or before `end`.
pub fn summarise(purchases: &[(i32, f64)], end: i32) -> Option<Summary> {
    let mut days: Vec<(i32, f64)> = purchases
        .iter()
        .copied()
        .filter(|(day, _)| *day <= end)
        .collect();
    days.sort_by_key(|(day, _)| *day);
    let mut by_day: Vec<(i32, f64)> = Vec::new();
    for (day, spend) in days {
        match by_day.last_mut() {
            Some((last, total)) if *last == day => *total += spend,
            _ => by_day.push((day, spend)),
        }
    }
    let (first, _) = *by_day.first()?;
    let (last, _) = *by_day.last()?;
    let repeats = &by_day[1..];
    let monetary_value = if repeats.is_empty() {
        0.0
    } else {
        repeats.iter().map(|(_, spend)| spend).sum::<f64>() / repeats.len() as f64
    };
    Some(Summary {
        frequency: repeats.len() as f64,
        recency: f64::from(last - first),
        t: f64::from(end - first),
        monetary_value,
    })
}

/// The purchase days of `purchases` after `start` and on or before `end`: a customer's actual
/// repeat purchases in a holdout period.
pub fn purchase_days_between(purchases: &[(i32, f64)], start: i32, end: i32) -> usize {
    let mut days: Vec<i32> = purchases
        .iter()
        .map(|(day, _)| *day)
        .filter(|day| *day > start && *day <= end)
        .collect();
    days.sort_unstable();
    days.dedup();
    days.len()
}

/// The BG/NBD model's parameters: purchase rates are Gamma(`r`, `alpha`) across customers, the
/// probability of dropping out after a purchase is Beta(`a`, `b`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BgNbd {
    /// Shape of the purchase-rate Gamma.
    pub r: f64,
    /// Scale (in days) of the purchase-rate Gamma.
    pub alpha: f64,
    /// Beta's first shape.
    pub a: f64,
    /// Beta's second shape.
    pub b: f64,
}

/// The Gamma-Gamma model's parameters: spend per purchase is Gamma(`p`, ν) with ν Gamma(`q`,
/// `v`) across customers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GammaGamma {
    /// Shape of the spend Gamma.
    pub p: f64,
    /// Shape of ν's Gamma.
    pub q: f64,
    /// Rate of ν's Gamma.
    pub v: f64,
}

/// A fit: the parameters, the mean log-likelihood per customer at them, and the iterations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fit<P> {
    /// The maximum-likelihood parameters.
    pub params: P,
    /// Mean log-likelihood per customer.
    pub log_likelihood: f64,
    /// Optimiser iterations.
    pub iterations: usize,
    /// Customers the fit used.
    pub customers: usize,
    /// Whether the optimiser met its tolerance before its iteration limit.
    pub converged: bool,
}

const TOLERANCE: f64 = 1e-10;
const MAX_ITERATIONS: usize = 20_000;

impl BgNbd {
    /// One customer's log-likelihood.
    pub fn log_likelihood(&self, s: &Summary) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = s.frequency;
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        let a3 = -(r + x) * (alpha + s.t).ln();
        if x > 0.0 {
            let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + s.recency).ln();
            let max = a3.max(a4);
            a1 + a2 + max + ((a3 - max).exp() + (a4 - max).exp()).ln()
        } else {
            a1 + a2 + a3
        }
    }

    /// Fits by maximum likelihood (Nelder–Mead on the logarithms of the four parameters,
    /// starting at 1, 1, 1, 1, or at `start`).
    ///
    /// # Errors
    ///
    /// [`Error::Fit`] without customers, or when the likelihood has no finite optimum.
    pub fn fit(summaries: &[Summary], start: Option<Self>) -> Result<Fit<Self>> {
        Self::fit_weighted(summaries, &vec![1.0; summaries.len()], start)
    }

    /// As [`BgNbd::fit`], each customer counted `weights[i]` times (a bootstrap sample).
    fn fit_weighted(
        summaries: &[Summary],
        weights: &[f64],
        start: Option<Self>,
    ) -> Result<Fit<Self>> {
        if summaries.is_empty() {
            return Err(Error::Fit("BG/NBD: no customers to fit".into()));
        }
        if summaries
            .iter()
            .any(|s| s.frequency.fract() != 0.0 || s.frequency < 0.0)
        {
            return Err(Error::Fit(
                "BG/NBD: frequencies must be whole numbers of purchase days".into(),
            ));
        }
        // Frequencies are whole numbers of days, so ln Γ(y + x) − ln Γ(y) = Σ_{i<x} ln(y + i):
        // sums shared by every customer of a frequency, computed once per evaluation.
        let frequency: Vec<usize> = summaries.iter().map(|s| s.frequency as usize).collect();
        let largest = frequency.iter().copied().max().unwrap_or(0);
        let total: f64 = weights.iter().sum();
        let objective = |x: &[f64]| {
            let (r, alpha, a, b) = (x[0].exp(), x[1].exp(), x[2].exp(), x[3].exp());
            let mut sum_r = vec![0.0; largest + 1];
            let mut sum_b = vec![0.0; largest + 1];
            let mut sum_ab = vec![0.0; largest + 1];
            for i in 1..=largest {
                let k = (i - 1) as f64;
                sum_r[i] = sum_r[i - 1] + (r + k).ln();
                sum_b[i] = sum_b[i - 1] + (b + k).ln();
                sum_ab[i] = sum_ab[i - 1] + (a + b + k).ln();
            }
            let (ln_alpha, ln_a) = (alpha.ln(), a.ln());
            let mut ll = 0.0;
            for ((s, n), w) in summaries.iter().zip(&frequency).zip(weights) {
                if *w == 0.0 {
                    continue;
                }
                let xf = s.frequency;
                let a1a2 = sum_r[*n] + r * ln_alpha + sum_b[*n] - sum_ab[*n];
                let a3 = -(r + xf) * (alpha + s.t).ln();
                let value = if *n > 0 {
                    let a4 = ln_a - (b + xf - 1.0).ln() - (r + xf) * (alpha + s.recency).ln();
                    let max = a3.max(a4);
                    a1a2 + max + ((a3 - max).exp() + (a4 - max).exp()).ln()
                } else {
                    a1a2 + a3
                };
                ll += w * value;
            }
            -ll / total
        };
        let start = start.map_or(vec![0.0; 4], |p| {
            vec![p.r.ln(), p.alpha.ln(), p.a.ln(), p.b.ln()]
        });
        let found = nelder_mead(objective, &start, TOLERANCE, MAX_ITERATIONS);
        if !found.value.is_finite() {
            return Err(Error::Fit(
                "BG/NBD: the likelihood has no finite optimum".into(),
            ));
        }
        Ok(Fit {
            params: Self {
                r: found.x[0].exp(),
                alpha: found.x[1].exp(),
                a: found.x[2].exp(),
                b: found.x[3].exp(),
            },
            log_likelihood: -found.value,
            iterations: found.iterations,
            customers: summaries.len(),
            converged: found.converged,
        })
    }

    /// The probability that the customer is still active at the end of observation.
    pub fn probability_alive(&self, s: &Summary) -> f64 {
        if s.frequency == 0.0 {
            return 1.0;
        }
        let Self { r, alpha, a, b } = *self;
        let x = s.frequency;
        let ratio = ((alpha + s.t) / (alpha + s.recency)).ln() * (r + x);
        1.0 / (1.0 + (a / (b + x - 1.0)) * ratio.exp())
    }

    /// The expected number of purchases in the `t` days after the end of observation.
    pub fn expected_purchases(&self, s: &Summary, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let Self { r, alpha, a, b } = *self;
        let x = s.frequency;
        let big_t = s.t;
        let hyp_term = hyp2f1(r + x, b + x, a + b + x - 1.0, t / (alpha + big_t + t));
        let first = (a + b + x - 1.0) / (a - 1.0);
        let second = 1.0 - ((alpha + big_t) / (alpha + big_t + t)).powf(r + x) * hyp_term;
        let numerator = first * second;
        let denominator = if x > 0.0 {
            1.0 + (a / (b + x - 1.0)) * ((alpha + big_t) / (alpha + s.recency)).powf(r + x)
        } else {
            1.0
        };
        numerator / denominator
    }
}

impl GammaGamma {
    /// One repeat customer's log-likelihood (`frequency` > 0, `monetary_value` > 0).
    pub fn log_likelihood(&self, s: &Summary) -> f64 {
        let Self { p, q, v } = *self;
        let x = s.frequency;
        let m = s.monetary_value;
        ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q)
            + q * v.ln()
            + (p * x - 1.0) * m.ln()
            + (p * x) * x.ln()
            - (p * x + q) * (x * m + v).ln()
    }

    /// Fits on the repeat customers of `summaries` (`frequency` > 0 and `monetary_value` > 0),
    /// from 1, 1, 1 or `start`.
    ///
    /// # Errors
    ///
    /// [`Error::Fit`] without repeat customers or without a finite optimum.
    pub fn fit(summaries: &[Summary], start: Option<Self>) -> Result<Fit<Self>> {
        Self::fit_weighted(summaries, &vec![1.0; summaries.len()], start)
    }

    /// As [`GammaGamma::fit`], each customer counted `weights[i]` times.
    fn fit_weighted(
        summaries: &[Summary],
        weights: &[f64],
        start: Option<Self>,
    ) -> Result<Fit<Self>> {
        // (frequency, ln m, ln x, m, weight) of the repeat customers.
        let repeat: Vec<(usize, f64, f64, f64, f64)> = summaries
            .iter()
            .zip(weights)
            .filter(|(s, w)| s.frequency > 0.0 && s.monetary_value > 0.0 && **w > 0.0)
            .map(|(s, w)| {
                (
                    s.frequency as usize,
                    s.monetary_value.ln(),
                    s.frequency.ln(),
                    s.monetary_value,
                    *w,
                )
            })
            .collect();
        if repeat.is_empty() {
            return Err(Error::Fit("Gamma-Gamma: no repeat customers to fit".into()));
        }
        let customers = repeat.len();
        let largest = repeat.iter().map(|r| r.0).max().unwrap_or(0);
        let mut present = vec![false; largest + 1];
        for r in &repeat {
            present[r.0] = true;
        }
        let total: f64 = repeat.iter().map(|r| r.4).sum();
        let objective = |x: &[f64]| {
            let (p, q, v) = (x[0].exp(), x[1].exp(), x[2].exp());
            // ln Γ(px + q) − ln Γ(px) − ln Γ(q), once per frequency present.
            let ln_gamma_q = ln_gamma(q);
            let per_frequency: Vec<f64> = (0..=largest)
                .map(|n| {
                    if present[n] {
                        let px = p * n as f64;
                        ln_gamma(px + q) - ln_gamma(px) - ln_gamma_q
                    } else {
                        0.0
                    }
                })
                .collect();
            let q_ln_v = q * v.ln();
            let ll: f64 = repeat
                .iter()
                .map(|(n, ln_m, ln_x, m, w)| {
                    let xf = *n as f64;
                    let px = p * xf;
                    w * (per_frequency[*n] + q_ln_v + (px - 1.0) * ln_m + px * ln_x
                        - (px + q) * (xf * m + v).ln())
                })
                .sum();
            -ll / total
        };
        let start = start.map_or(vec![0.0; 3], |g| vec![g.p.ln(), g.q.ln(), g.v.ln()]);
        let found = nelder_mead(objective, &start, TOLERANCE, MAX_ITERATIONS);
        if !found.value.is_finite() {
            return Err(Error::Fit(
                "Gamma-Gamma: the likelihood has no finite optimum".into(),
            ));
        }
        if found.x[1].exp() <= 1.0 {
            return Err(Error::Fit(format!(
                "Gamma-Gamma: q = {:.4} is not above 1, so the mean spend is not defined",
                found.x[1].exp()
            )));
        }
        Ok(Fit {
            params: Self {
                p: found.x[0].exp(),
                q: found.x[1].exp(),
                v: found.x[2].exp(),
            },
            log_likelihood: -found.value,
            iterations: found.iterations,
            customers,
            converged: found.converged,
        })
    }

    /// The expected mean spend of the customer's future purchases (the population's mean for
    /// a customer without repeat purchases).
    pub fn expected_spend(&self, s: &Summary) -> f64 {
        let Self { p, q, v } = *self;
        if s.frequency > 0.0 && s.monetary_value > 0.0 {
            p * (v + s.frequency * s.monetary_value) / (p * s.frequency + q - 1.0)
        } else {
            p * v / (q - 1.0)
        }
    }
}

/// What the models say about one customer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    /// Probability of being active.
    pub probability_alive: f64,
    /// Expected purchases (days with a purchase) in the next 30 days.
    pub expected_purchases_30d: f64,
    /// ... in the next 90 days.
    pub expected_purchases_90d: f64,
    /// ... in the next 365 days.
    pub expected_purchases_365d: f64,
    /// Expected mean spend per purchase.
    pub expected_spend: f64,
    /// Discounted value of the next 6 months.
    pub clv_6m: f64,
    /// Discounted value of the next 12 months.
    pub clv_12m: f64,
}

impl Prediction {
    /// The predictions of `bg` and `gg` for `s`. CLV over n months (30 days each) with the
    /// monthly `discount` d is, as `lifetimes`' `customer_lifetime_value`: Σᵢ₌₁ⁿ spend ·
    /// (E(purchases by 30i days) − E(purchases by 30(i−1) days)) / (1 + d)ⁱ; the expected
    /// purchases by each month end are computed once for both horizons and the 30- and 90-day
    /// expectations.
    pub fn of(bg: &BgNbd, gg: &GammaGamma, s: &Summary, discount: f64) -> Self {
        let spend = gg.expected_spend(s);
        let by_month: Vec<f64> = (1..=12u32)
            .map(|month| bg.expected_purchases(s, f64::from(month) * DAYS_PER_MONTH))
            .collect();
        let mut value = 0.0;
        let mut before = 0.0;
        let mut clv_6m = 0.0;
        for (i, by) in by_month.iter().enumerate() {
            value += spend * (by - before) / (1.0 + discount).powi(i as i32 + 1);
            before = *by;
            if i == 5 {
                clv_6m = value;
            }
        }
        Self {
            probability_alive: bg.probability_alive(s),
            expected_purchases_30d: by_month[0],
            expected_purchases_90d: by_month[2],
            expected_purchases_365d: bg.expected_purchases(s, 365.0),
            expected_spend: spend,
            clv_6m,
            clv_12m: value,
        }
    }

    /// Whether every field is a finite number.
    pub fn is_finite(&self) -> bool {
        self.fields().iter().all(|v| v.is_finite())
    }

    fn fields(&self) -> [f64; 7] {
        [
            self.probability_alive,
            self.expected_purchases_30d,
            self.expected_purchases_90d,
            self.expected_purchases_365d,
            self.expected_spend,
            self.clv_6m,
            self.clv_12m,
        ]
    }

    fn from_fields(f: [f64; 7]) -> Self {
        Self {
            probability_alive: f[0],
            expected_purchases_30d: f[1],
            expected_purchases_90d: f[2],
            expected_purchases_365d: f[3],
            expected_spend: f[4],
            clv_6m: f[5],
            clv_12m: f[6],
        }
    }
}

/// A customer's predictions with their bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Predicted {
    /// At the maximum-likelihood parameters.
    pub point: Prediction,
    /// The lower bound of the interval, field by field.
    pub lower: Prediction,
    /// The upper bound.
    pub upper: Prediction,
}

/// The fitted pair of models and the bootstrap replicates of their parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClvModel {
    /// The BG/NBD fit.
    pub bg_nbd: Fit<BgNbd>,
    /// The Gamma-Gamma fit.
    pub gamma_gamma: Fit<GammaGamma>,
    /// Parameter pairs refitted on customers resampled with replacement.
    pub replicates: Vec<(BgNbd, GammaGamma)>,
    /// The monthly discount rate.
    pub discount: f64,
    /// The interval's level (0.9: from the 5th to the 95th percentile of the replicates).
    pub level: f64,
}

impl ClvModel {
    /// Fits both models on `summaries`, then `bootstrap` replicates (customers resampled with
    /// replacement from a generator seeded with `seed`, refitted from the full fit), on up to
    /// `threads` threads.
    ///
    /// # Errors
    ///
    /// [`Error::Fit`] when either model cannot be fitted on the full data.
    pub fn fit(
        summaries: &[Summary],
        bootstrap: usize,
        seed: u64,
        discount: f64,
        threads: usize,
    ) -> Result<Self> {
        let bg_nbd = BgNbd::fit(summaries, None)?;
        let gamma_gamma = GammaGamma::fit(summaries, None)?;
        let threads = threads.clamp(1, bootstrap.max(1));
        let seeds: Vec<u64> = {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..bootstrap).map(|_| rng.random()).collect()
        };
        let replicates = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|thread| {
                    let seeds = &seeds;
                    scope.spawn(move || {
                        seeds
                            .iter()
                            .skip(thread)
                            .step_by(threads)
                            .filter_map(|seed| {
                                replicate(summaries, *seed, bg_nbd.params, gamma_gamma.params)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| handle.join().unwrap_or_default())
                .collect::<Vec<_>>()
        });
        Ok(Self {
            bg_nbd,
            gamma_gamma,
            replicates,
            discount,
            level: 0.9,
        })
    }

    /// The predictions for `s` with their interval (the replicates' percentiles).
    pub fn predict(&self, s: &Summary) -> Predicted {
        let point = Prediction::of(
            &self.bg_nbd.params,
            &self.gamma_gamma.params,
            s,
            self.discount,
        );
        if self.replicates.is_empty() {
            return Predicted {
                point,
                lower: point,
                upper: point,
            };
        }
        // A replicate whose prediction is not a number for this customer (a Beta shape a near
        // 1) is left out of its interval.
        let draws: Vec<[f64; 7]> = self
            .replicates
            .iter()
            .map(|(bg, gg)| Prediction::of(bg, gg, s, self.discount))
            .filter(Prediction::is_finite)
            .map(|p| p.fields())
            .collect();
        if draws.is_empty() {
            return Predicted {
                point,
                lower: point,
                upper: point,
            };
        }
        let tail = (1.0 - self.level) / 2.0;
        let mut lower = [0.0; 7];
        let mut upper = [0.0; 7];
        for field in 0..7 {
            let mut values: Vec<f64> = draws.iter().map(|d| d[field]).collect();
            values.sort_by(f64::total_cmp);
            lower[field] = percentile(&values, tail);
            upper[field] = percentile(&values, 1.0 - tail);
        }
        Predicted {
            point,
            lower: Prediction::from_fields(lower),
            upper: Prediction::from_fields(upper),
        }
    }
}

fn replicate(
    summaries: &[Summary],
    seed: u64,
    bg: BgNbd,
    gg: GammaGamma,
) -> Option<(BgNbd, GammaGamma)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = summaries.len();
    let mut weights = vec![0.0; n];
    for _ in 0..n {
        weights[rng.random_range(0..n)] += 1.0;
    }
    let bg = BgNbd::fit_weighted(summaries, &weights, Some(bg)).ok()?;
    let gg = GammaGamma::fit_weighted(summaries, &weights, Some(gg)).ok()?;
    Some((bg.params, gg.params))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CLV over `months` months of 30 days with a monthly `discount` rate, as `lifetimes`'
    /// `customer_lifetime_value`: Σᵢ spend · (E(purchases by 30i) − E(purchases by 30(i−1))) /
    /// (1 + discount)ⁱ.
    fn lifetime_value(bg: &BgNbd, gg: &GammaGamma, s: &Summary, months: u32, discount: f64) -> f64 {
        let spend = gg.expected_spend(s);
        let mut value = 0.0;
        let mut before = 0.0;
        for month in 1..=months {
            let by = bg.expected_purchases(s, f64::from(month) * DAYS_PER_MONTH);
            value += spend * (by - before) / (1.0 + discount).powi(month as i32);
            before = by;
        }
        value
    }

    #[test]
    fn the_summary_groups_purchases_by_day_and_averages_the_repeat_days() {
        // Day 0 twice (one purchase day), day 10, day 30 twice; end at day 40; a purchase
        // after the end is not seen.
        let purchases = [
            (0, 5.0),
            (0, 7.0),
            (10, 20.0),
            (30, 4.0),
            (30, 6.0),
            (50, 99.0),
        ];
        let s = summarise(&purchases, 40).expect("purchases");
        assert_eq!(s.frequency, 2.0);
        assert_eq!(s.recency, 30.0);
        assert_eq!(s.t, 40.0);
        assert_eq!(s.monetary_value, 15.0);
        let one = summarise(&[(3, 8.0)], 40).expect("one purchase");
        assert_eq!(
            (one.frequency, one.recency, one.t, one.monetary_value),
            (0.0, 0.0, 37.0, 0.0)
        );
        assert!(summarise(&[(41, 1.0)], 40).is_none());
        assert_eq!(purchase_days_between(&purchases, 10, 50), 2);
    }

    /// Customers drawn from the BG/NBD process itself with known parameters: the fit finds
    /// them back.
    #[test]
    fn bg_nbd_recovers_the_parameters_it_simulated_from() {
        let truth = BgNbd {
            r: 0.8,
            alpha: 40.0,
            a: 0.6,
            b: 2.5,
        };
        let summaries = simulate(&truth, 6_000, 365.0, 7);
        let fit = BgNbd::fit(&summaries, None).expect("fit");
        let found = fit.params;
        assert!((found.r - truth.r).abs() / truth.r < 0.15, "{found:?}");
        assert!(
            (found.alpha - truth.alpha).abs() / truth.alpha < 0.2,
            "{found:?}"
        );
        assert!((found.a - truth.a).abs() / truth.a < 0.35, "{found:?}");
        assert!((found.b - truth.b).abs() / truth.b < 0.45, "{found:?}");
        // The fitted model predicts the simulated customers' next year in total.
        let expected: f64 = summaries
            .iter()
            .map(|s| found.expected_purchases(s, 30.0))
            .sum();
        assert!(expected > 0.0);
    }

    /// The expectation is consistent with the probability of being alive: a customer who
    /// bought often long ago is less likely alive and expected to buy less than one who
    /// bought as often recently.
    #[test]
    fn recent_buyers_are_more_alive_and_expected_to_buy_more() {
        let model = BgNbd {
            r: 0.8,
            alpha: 40.0,
            a: 0.6,
            b: 2.5,
        };
        let recent = Summary {
            frequency: 5.0,
            recency: 300.0,
            t: 310.0,
            monetary_value: 20.0,
        };
        let lapsed = Summary {
            recency: 60.0,
            ..recent
        };
        assert!(model.probability_alive(&recent) > 0.9);
        assert!(model.probability_alive(&lapsed) < 0.2);
        assert!(model.expected_purchases(&recent, 90.0) > model.expected_purchases(&lapsed, 90.0));
        assert!(model.expected_purchases(&recent, 365.0) > model.expected_purchases(&recent, 90.0));
    }

    #[test]
    fn gamma_gamma_recovers_the_parameters_it_simulated_from() {
        let truth = GammaGamma {
            p: 6.0,
            q: 4.0,
            v: 15.0,
        };
        let mut rng = StdRng::seed_from_u64(11);
        let summaries: Vec<Summary> = (0..4_000)
            .map(|_| {
                let nu = gamma(&mut rng, truth.q) / truth.v;
                let x = rng.random_range(1..8u32);
                let mean =
                    (0..x).map(|_| gamma(&mut rng, truth.p) / nu).sum::<f64>() / f64::from(x);
                Summary {
                    frequency: f64::from(x),
                    recency: 0.0,
                    t: 0.0,
                    monetary_value: mean,
                }
            })
            .collect();
        let found = GammaGamma::fit(&summaries, None).expect("fit").params;
        assert!((found.p - truth.p).abs() / truth.p < 0.2, "{found:?}");
        assert!((found.q - truth.q).abs() / truth.q < 0.25, "{found:?}");
        assert!((found.v - truth.v).abs() / truth.v < 0.35, "{found:?}");
    }

    #[test]
    fn the_bootstrap_interval_surrounds_the_point_and_is_reproducible() {
        let truth = BgNbd {
            r: 0.8,
            alpha: 40.0,
            a: 0.6,
            b: 2.5,
        };
        let mut summaries = simulate(&truth, 1_500, 365.0, 3);
        for (i, s) in summaries.iter_mut().enumerate() {
            s.monetary_value = if s.frequency > 0.0 {
                10.0 + (i % 17) as f64
            } else {
                0.0
            };
        }
        let model = ClvModel::fit(&summaries, 12, 5, 0.01, 2).expect("fit");
        assert_eq!(model.replicates.len(), 12);
        let again = ClvModel::fit(&summaries, 12, 5, 0.01, 1).expect("fit");
        let mut first = model.replicates.clone();
        let mut second = again.replicates;
        first.sort_by(|x, y| x.0.r.total_cmp(&y.0.r));
        second.sort_by(|x, y| x.0.r.total_cmp(&y.0.r));
        assert_eq!(
            first, second,
            "same seed, same replicates, whatever the threads"
        );
        let s = summaries
            .iter()
            .find(|s| s.frequency > 2.0)
            .expect("a repeat buyer");
        let predicted = model.predict(s);
        assert!(predicted.lower.clv_12m <= predicted.upper.clv_12m);
        assert!(predicted.lower.clv_12m < predicted.point.clv_12m * 1.2);
        assert!(predicted.upper.clv_12m > predicted.point.clv_12m * 0.8);
        assert!(predicted.point.clv_12m > predicted.point.clv_6m);
        let (bg, gg) = (model.bg_nbd.params, model.gamma_gamma.params);
        assert!((predicted.point.clv_6m - lifetime_value(&bg, &gg, s, 6, 0.01)).abs() < 1e-9);
        assert!((predicted.point.clv_12m - lifetime_value(&bg, &gg, s, 12, 0.01)).abs() < 1e-9);
    }

    /// Marsaglia and Tsang's Gamma(shape, 1) sampler.
    fn gamma(rng: &mut StdRng, shape: f64) -> f64 {
        if shape < 1.0 {
            let u: f64 = rng.random();
            return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = normal(rng);
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u: f64 = rng.random();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    fn normal(rng: &mut StdRng) -> f64 {
        let u1: f64 = rng.random::<f64>().max(1e-300);
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Customers from the BG/NBD story: each buys at a Gamma rate and, after each purchase,
    /// drops out with a Beta probability; observed for `days` from their first purchase.
    fn simulate(model: &BgNbd, customers: usize, days: f64, seed: u64) -> Vec<Summary> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..customers)
            .map(|_| {
                let rate = gamma(&mut rng, model.r) / model.alpha;
                let ga = gamma(&mut rng, model.a);
                let gb = gamma(&mut rng, model.b);
                let dropout = ga / (ga + gb);
                let t = rng.random_range(days / 4.0..days).floor();
                let mut now = 0.0;
                let mut x = 0.0;
                let mut last = 0.0;
                loop {
                    let u: f64 = rng.random::<f64>().max(1e-300);
                    now += -u.ln() / rate;
                    if now > t {
                        break;
                    }
                    x += 1.0;
                    last = now;
                    if rng.random::<f64>() < dropout {
                        break;
                    }
                }
                Summary {
                    frequency: x,
                    recency: last,
                    t,
                    monetary_value: 0.0,
                }
            })
            .collect()
    }
}
