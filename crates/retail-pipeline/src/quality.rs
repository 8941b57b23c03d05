//! Table-level data quality of a run: completeness, accuracy, consistency, timeliness, validity.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::gold::Consistency;
use crate::silver::SilverStats;

/// How fresh the data is: the lag between the newest invoice and its ingestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeliness {
    /// The newest invoice date among the run's silver rows (shop-local time).
    pub newest_invoice_date: NaiveDateTime,
    /// The newest ingestion time among the run's bronze rows.
    pub newest_ingested_at: DateTime<Utc>,
    /// The lag in hours (shop-local time read as UTC).
    pub lag_hours: f64,
}

/// The quality report of one pipeline run. Shares are from 0.0 to 1.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// The run it describes.
    pub run_id: String,
    /// Bronze rows the run processed.
    pub rows_checked: u64,
    /// Present business fields over all fields of well-formed bronze rows.
    pub completeness: f64,
    /// Passed accuracy checks (price > 0, quantity ≠ 0, customer id ≥ 5 characters) over all
    /// checks of the new silver rows.
    pub accuracy: f64,
    /// Passed validity checks (well-formed email, country with an ISO code) over all checks.
    pub validity: f64,
    /// Cross-row consistency of the whole silver table after the run, when gold was built.
    pub consistency: Option<Consistency>,
    /// Freshness, when the run produced silver rows.
    pub timeliness: Option<Timeliness>,
    /// Mean row quality score of the new silver rows.
    pub mean_score: f64,
    /// New silver rows per score (`"1.00"` → rows).
    pub score_distribution: BTreeMap<String, u64>,
    /// Share of processed rows that were quarantined.
    pub quarantine_rate: f64,
    /// Quarantined rows per reason code.
    pub quarantine_by_reason: BTreeMap<String, u64>,
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        1.0
    } else {
        numerator as f64 / denominator as f64
    }
}

impl QualityReport {
    /// Builds the report from what the silver pass counted and, when gold was built, the
    /// cross-row consistency measured there.
    pub fn from_stats(run_id: &str, stats: &SilverStats, consistency: Option<Consistency>) -> Self {
        let malformed = stats
            .quarantine_by_reason
            .get("malformed_record")
            .copied()
            .unwrap_or(0);
        let well_formed = stats
            .bronze_rows
            .saturating_sub(malformed)
            .saturating_sub(stats.deletes);
        let score_total: f64 = stats
            .score_distribution
            .iter()
            .map(|(score, rows)| score.parse::<f64>().unwrap_or(0.0) * *rows as f64)
            .sum();
        let timeliness = match (stats.newest_invoice_date, stats.newest_ingested_at) {
            (Some(newest_invoice_date), Some(newest_ingested_at)) => Some(Timeliness {
                newest_invoice_date,
                newest_ingested_at,
                lag_hours: (newest_ingested_at - newest_invoice_date.and_utc()).num_seconds()
                    as f64
                    / 3600.0,
            }),
            _ => None,
        };
        Self {
            run_id: run_id.to_owned(),
            rows_checked: stats.bronze_rows,
            completeness: ratio(stats.present_fields, well_formed * 8),
            accuracy: ratio(stats.accuracy_passed, stats.silver_rows * 3),
            validity: ratio(stats.validity_passed, stats.silver_rows * 2),
            consistency,
            timeliness,
            mean_score: if stats.silver_rows == 0 {
                0.0
            } else {
                score_total / stats.silver_rows as f64
            },
            score_distribution: stats.score_distribution.clone(),
            quarantine_rate: if stats.bronze_rows == 0 {
                0.0
            } else {
                stats.quarantined_rows as f64 / stats.bronze_rows as f64
            },
            quarantine_by_reason: stats.quarantine_by_reason.clone(),
        }
    }

    /// Renders the report as aligned text for a terminal.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let percent = |share: f64| format!("{:.2}%", share * 100.0);
        let _ = writeln!(out, "data quality of run {}", self.run_id);
        let _ = writeln!(out, "  rows checked     {}", self.rows_checked);
        let _ = writeln!(out, "  completeness     {}", percent(self.completeness));
        let _ = writeln!(out, "  accuracy         {}", percent(self.accuracy));
        let _ = writeln!(out, "  validity         {}", percent(self.validity));
        match &self.consistency {
            Some(c) => {
                let _ = writeln!(out, "  consistency      {}", percent(c.overall));
                let _ = writeln!(
                    out,
                    "    invoices with one customer and country  {}",
                    percent(c.invoices_with_one_customer_and_country)
                );
                let _ = writeln!(
                    out,
                    "    cancellations with negative quantity     {}",
                    percent(c.cancellations_with_negative_quantity)
                );
                let _ = writeln!(
                    out,
                    "    stock codes with one description         {}",
                    percent(c.stock_codes_with_one_description)
                );
            }
            None => {
                let _ = writeln!(out, "  consistency      (gold not built in this run)");
            }
        }
        match &self.timeliness {
            Some(t) => {
                let _ = writeln!(
                    out,
                    "  timeliness       newest invoice {} ingested {} (lag {:.1} days)",
                    t.newest_invoice_date,
                    t.newest_ingested_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    t.lag_hours / 24.0
                );
            }
            None => {
                let _ = writeln!(out, "  timeliness       (no new silver rows)");
            }
        }
        let _ = writeln!(out, "  mean row score   {:.4}", self.mean_score);
        let _ = writeln!(out, "  score distribution");
        for (score, rows) in self.score_distribution.iter().rev() {
            let _ = writeln!(out, "    {score}  {rows}");
        }
        let _ = writeln!(out, "  quarantine rate  {}", percent(self.quarantine_rate));
        for (reason, rows) in &self.quarantine_by_reason {
            let _ = writeln!(out, "    {reason:<22} {rows}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_the_counts_of_the_silver_pass() {
        let stats = SilverStats {
            bronze_rows: 10,
            silver_rows: 8,
            quarantined_rows: 2,
            duplicate_rows: 0,
            updates: 0,
            deletes: 0,
            quarantine_by_reason: BTreeMap::from([("malformed_record".to_owned(), 1)]),
            present_fields: 70,
            accuracy_passed: 23,
            validity_passed: 15,
            score_distribution: BTreeMap::from([("1.00".to_owned(), 6), ("0.95".to_owned(), 2)]),
            newest_invoice_date: None,
            newest_ingested_at: None,
        };
        let report = QualityReport::from_stats("r", &stats, None);
        assert!((report.completeness - 70.0 / 72.0).abs() < 1e-12);
        assert!((report.accuracy - 23.0 / 24.0).abs() < 1e-12);
        assert!((report.validity - 15.0 / 16.0).abs() < 1e-12);
        assert!((report.mean_score - 7.9 / 8.0).abs() < 1e-12);
        assert!((report.quarantine_rate - 0.2).abs() < 1e-12);
        assert!(report.to_text().contains("malformed_record"));
    }
}
