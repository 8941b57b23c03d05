//! Anomalous trading days: an isolation forest over each day's vector of metrics (Liu, Ting and
//! Zhou, 2008), and each metric's seasonal residual scored on its own.
//!
//! - **Seasonal residual**: a metric's expected value on a day is the median of its values on
//!   the previous `weeks` trading days with the same weekday (at least 3 of them); the residual
//!   is value − expected, divided by max(|expected|, 1) for a level metric (revenue, orders,
//!   customers, rows); its robust z is residual / scale, the scale being 1.4826 · the MAD of
//!   all that metric's residuals (1.2533 · their mean absolute deviation when the MAD is 0),
//!   |z| capped at 1,000.
//! - **Isolation forest** over each day's vector of z (0 before a day has an expected value):
//!   `trees` trees, each grown on `sample` days drawn without replacement (a generator seeded
//!   with `seed`), splitting on a uniformly chosen metric (among those that vary in the node) at
//!   a uniform value between its minimum and maximum, to depth ⌈log₂ sample⌉. A day's score is
//!   2^(−E(h) / c(sample)), h its path length (plus c(n) at a leaf of n days), c(n) = 2H(n−1) −
//!   2(n−1)/n, H(i) = ln i + 0.5772156649 (and c(2) = 1, c(1) = 0, as scikit-learn has them).
//!   Scores near 1 are anomalies, below 0.5 normal.
//! - A day is an **anomaly** when its forest score is at least `score_threshold`. It names the
//!   metrics whose |z| is at least `explain_z` (at least the one with the largest |z|), with
//!   value, expected value and z. Every metric's z is kept for every day, so a single metric's
//!   outliers can be read on their own.

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;

use crate::stats::median;

/// The detector's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Settings {
    /// Trees in the forest.
    pub trees: usize,
    /// Days per tree.
    pub sample: usize,
    /// The generator's seed.
    pub seed: u64,
    /// Same-weekday days before a day that make its expected value.
    pub weeks: usize,
    /// The forest's score that makes an anomaly.
    pub score_threshold: f64,
    /// The |z| from which a metric is named in the explanation.
    pub explain_z: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            trees: 200,
            sample: 256,
            seed: 42,
            weeks: 8,
            score_threshold: 0.55,
            explain_z: 3.0,
        }
    }
}

/// One metric's part in a day's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricScore {
    /// The metric's name.
    pub metric: String,
    /// Its value that day.
    pub value: f64,
    /// The median of the same weekday before (`None` without three of them).
    pub expected: Option<f64>,
    /// The robust z of the residual.
    pub z: Option<f64>,
}

/// A day's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayScore {
    /// The day's index in the input.
    pub index: usize,
    /// The isolation forest's score.
    pub score: f64,
    /// Whether it is an anomaly.
    pub anomaly: bool,
    /// The metrics that made it unusual, largest |z| first.
    pub reasons: Vec<MetricScore>,
    /// Every metric's score.
    pub metrics: Vec<MetricScore>,
}

/// A metric of the daily vector and how its residual is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// A level (revenue, orders, rows): the residual is relative, (value − expected) /
    /// max(|expected|, 1), so a quiet month and a busy one are compared alike. Otherwise a
    /// share: the residual is value − expected.
    pub relative: bool,
}

/// The largest |z| reported (a metric constant until that day has an infinite one).
const Z_CAP: f64 = 1_000.0;

/// Scores each day of `rows` (one vector of `metrics.len()` values per trading day, in date
/// order); `weekday[i]` is day i's weekday (any integer label).
///
/// The forest is grown on the days' vectors of robust z (0 where a day has no expected value
/// yet), so it sees how far each day is from what its weekday usually is, in every metric at
/// once.
pub fn detect(
    metrics: &[Metric],
    rows: &[Vec<f64>],
    weekday: &[u32],
    settings: &Settings,
) -> Vec<DayScore> {
    let columns = metrics.len();
    let mut residuals: Vec<Vec<Option<(f64, f64)>>> = Vec::with_capacity(columns);
    for (column, metric) in metrics.iter().enumerate() {
        let values: Vec<f64> = rows.iter().map(|row| row[column]).collect();
        residuals.push(seasonal_residuals(
            &values,
            weekday,
            settings.weeks,
            metric.relative,
        ));
    }
    let scales: Vec<f64> = residuals
        .iter()
        .map(|column| {
            let values: Vec<f64> = column.iter().flatten().map(|(r, _)| *r).collect();
            robust_scale(&values)
        })
        .collect();
    let z = |column: usize, index: usize| -> Option<f64> {
        residuals[column][index].map(|(r, _)| {
            if scales[column] > 0.0 {
                (r / scales[column]).clamp(-Z_CAP, Z_CAP)
            } else if r == 0.0 {
                0.0
            } else {
                Z_CAP.copysign(r)
            }
        })
    };
    let vectors: Vec<Vec<f64>> = (0..rows.len())
        .map(|index| {
            (0..columns)
                .map(|column| z(column, index).unwrap_or(0.0))
                .collect()
        })
        .collect();
    let forest = IsolationForest::grow(&vectors, settings.trees, settings.sample, settings.seed);
    rows.iter()
        .enumerate()
        .map(|(index, row)| {
            let score = forest.score(&vectors[index]);
            let metrics: Vec<MetricScore> = metrics
                .iter()
                .enumerate()
                .map(|(column, metric)| MetricScore {
                    metric: metric.name.to_owned(),
                    value: row[column],
                    expected: residuals[column][index].map(|(_, expected)| expected),
                    z: z(column, index),
                })
                .collect();
            let largest = metrics
                .iter()
                .filter_map(|m| m.z.map(f64::abs))
                .fold(0.0, f64::max);
            let anomaly = score >= settings.score_threshold;
            let mut reasons: Vec<MetricScore> = metrics
                .iter()
                .filter(|m| {
                    m.z.is_some_and(|z| {
                        z.abs() >= settings.explain_z || (largest > 0.0 && z.abs() == largest)
                    })
                })
                .cloned()
                .collect();
            reasons.sort_by(|a, b| {
                b.z.unwrap_or(0.0)
                    .abs()
                    .total_cmp(&a.z.unwrap_or(0.0).abs())
            });
            DayScore {
                index,
                score,
                anomaly,
                reasons: if anomaly { reasons } else { Vec::new() },
                metrics,
            }
        })
        .collect()
}

/// Each day's (residual, expected): the value minus the median of the previous `weeks` days
/// with the same weekday; `None` with fewer than three of them.
fn seasonal_residuals(
    values: &[f64],
    weekday: &[u32],
    weeks: usize,
    relative: bool,
) -> Vec<Option<(f64, f64)>> {
    (0..values.len())
        .map(|i| {
            let mut before: Vec<f64> = (0..i)
                .rev()
                .filter(|j| weekday[*j] == weekday[i])
                .take(weeks)
                .map(|j| values[j])
                .collect();
            if before.len() < 3 {
                return None;
            }
            let expected = median(&mut before);
            let residual = values[i] - expected;
            Some(if relative {
                (residual / expected.abs().max(1.0), expected)
            } else {
                (residual, expected)
            })
        })
        .collect()
}

/// 1.4826 · the median absolute deviation from the median; when more than half the values
/// are equal (the MAD is 0: a share that is usually 0), 1.2533 · the mean absolute deviation
/// from the median instead (both estimate the standard deviation of a normal sample).
fn robust_scale(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    let centre = median(&mut sorted);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    let mean_deviation = deviations.iter().sum::<f64>() / deviations.len() as f64;
    let mad = median(&mut deviations);
    if mad > 0.0 {
        1.4826 * mad
    } else {
        1.2533 * mean_deviation
    }
}

/// The average path length of an unsuccessful search in a binary search tree of `n` points.
fn average_path(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_9) - 2.0 * (n - 1.0) / n
        }
    }
}

#[derive(Debug)]
enum Node {
    Leaf(usize),
    Split {
        column: usize,
        value: f64,
        left: Box<Node>,
        right: Box<Node>,
    },
}

/// An isolation forest.
#[derive(Debug)]
pub struct IsolationForest {
    trees: Vec<Node>,
    sample: usize,
}

impl IsolationForest {
    /// Grows `trees` trees on samples of `sample` rows (all rows when fewer).
    pub fn grow(rows: &[Vec<f64>], trees: usize, sample_size: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let size = sample_size.min(rows.len());
        let limit = (size.max(2) as f64).log2().ceil() as usize;
        let trees = (0..trees)
            .map(|_| {
                let picked: Vec<usize> = sample(&mut rng, rows.len(), size).into_vec();
                grow(rows, picked, 0, limit, &mut rng)
            })
            .collect();
        Self {
            trees,
            sample: size,
        }
    }

    /// The anomaly score of `row`.
    pub fn score(&self, row: &[f64]) -> f64 {
        if self.trees.is_empty() || self.sample < 2 {
            return 0.5;
        }
        let mean = self
            .trees
            .iter()
            .map(|tree| path_length(tree, row, 0))
            .sum::<f64>()
            / self.trees.len() as f64;
        2f64.powf(-mean / average_path(self.sample))
    }
}

fn grow(
    rows: &[Vec<f64>],
    picked: Vec<usize>,
    depth: usize,
    limit: usize,
    rng: &mut StdRng,
) -> Node {
    if depth >= limit || picked.len() <= 1 {
        return Node::Leaf(picked.len());
    }
    let columns = rows[picked[0]].len();
    // A column with a spread, chosen uniformly among those that have one.
    let spread: Vec<(usize, f64, f64)> = (0..columns)
        .filter_map(|column| {
            let (min, max) = picked
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), i| {
                    (lo.min(rows[*i][column]), hi.max(rows[*i][column]))
                });
            (max > min).then_some((column, min, max))
        })
        .collect();
    if spread.is_empty() {
        return Node::Leaf(picked.len());
    }
    let (column, min, max) = spread[rng.random_range(0..spread.len())];
    let value = rng.random_range(min..max);
    let (left, right): (Vec<usize>, Vec<usize>) =
        picked.into_iter().partition(|i| rows[*i][column] < value);
    Node::Split {
        column,
        value,
        left: Box::new(grow(rows, left, depth + 1, limit, rng)),
        right: Box::new(grow(rows, right, depth + 1, limit, rng)),
    }
}

fn path_length(node: &Node, row: &[f64], depth: usize) -> f64 {
    match node {
        Node::Leaf(size) => depth as f64 + average_path(*size),
        Node::Split {
            column,
            value,
            left,
            right,
        } => {
            if row[*column] < *value {
                path_length(left, row, depth + 1)
            } else {
                path_length(right, row, depth + 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 300 ordinary days of a weekly pattern with noise and six planted days: the planted
    /// days are found and named by the metric planted.
    #[test]
    fn planted_days_are_found_and_named_by_their_metric() {
        let mut rng = StdRng::seed_from_u64(1);
        let names = ["revenue", "orders", "return_share"];
        let metrics = [
            Metric {
                name: "revenue",
                relative: true,
            },
            Metric {
                name: "orders",
                relative: true,
            },
            Metric {
                name: "return_share",
                relative: false,
            },
        ];
        let weekday: Vec<u32> = (0..300).map(|i| i % 6).collect();
        let mut rows: Vec<Vec<f64>> = (0..300)
            .map(|i| {
                let w = f64::from(weekday[i]);
                vec![
                    1000.0 + 100.0 * w + rng.random_range(-50.0..50.0),
                    60.0 + 5.0 * w + rng.random_range(-4.0..4.0),
                    0.02 + rng.random_range(-0.005..0.005),
                ]
            })
            .collect();
        let planted = [
            (60, 0, 4.0),
            (120, 1, 3.0),
            (180, 2, 8.0),
            (200, 0, 0.2),
            (250, 1, 0.1),
            (290, 2, 6.0),
        ];
        for (day, column, factor) in planted {
            rows[day][column] *= factor;
        }
        let scores = detect(&metrics, &rows, &weekday, &Settings::default());
        let found: Vec<usize> = scores
            .iter()
            .filter(|s| s.anomaly)
            .map(|s| s.index)
            .collect();
        let expected: Vec<usize> = planted.iter().map(|(day, _, _)| *day).collect();
        assert_eq!(found, expected);
        for (day, column, _) in planted {
            assert_eq!(scores[day].reasons[0].metric, names[column], "day {day}");
        }
        assert!(scores[180].score > scores[181].score);
    }

    #[test]
    fn the_forest_scores_an_outlier_above_the_crowd() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut rows: Vec<Vec<f64>> = (0..500)
            .map(|_| vec![rng.random_range(0.0..1.0), rng.random_range(0.0..1.0)])
            .collect();
        rows.push(vec![5.0, 5.0]);
        let forest = IsolationForest::grow(&rows, 100, 256, 3);
        assert!(forest.score(&rows[500]) > 0.7);
        assert!(forest.score(&[0.5, 0.5]) < 0.5);
        assert!((average_path(256) - 10.244_770_920_116_851).abs() < 1e-9);
    }
}
