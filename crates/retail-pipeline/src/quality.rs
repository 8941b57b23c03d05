//! Table-level data quality of a run: completeness, accuracy, consistency, timeliness, validity.

use retail_metadata::{Consistency, QualityReport, Timeliness};

use crate::silver::SilverStats;

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        1.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Builds the quality report of a run from what the silver pass counted and, when gold was
/// built, the cross-row consistency measured there.
pub fn quality_report(
    run_id: &str,
    stats: &SilverStats,
    consistency: Option<Consistency>,
) -> QualityReport {
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
            lag_hours: (newest_ingested_at - newest_invoice_date.and_utc()).num_seconds() as f64
                / 3600.0,
        }),
        _ => None,
    };
    QualityReport {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
        let report = quality_report("r", &stats, None);
        assert!((report.completeness - 70.0 / 72.0).abs() < 1e-12);
        assert!((report.accuracy - 23.0 / 24.0).abs() < 1e-12);
        assert!((report.validity - 15.0 / 16.0).abs() < 1e-12);
        assert!((report.mean_score - 7.9 / 8.0).abs() < 1e-12);
        assert!((report.quarantine_rate - 0.2).abs() < 1e-12);
        assert!(report.to_text().contains("malformed_record"));
    }
}
