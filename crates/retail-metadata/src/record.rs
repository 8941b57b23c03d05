//! What a run leaves behind: its record, the reconciliation of the lake's counts and the data
//! quality report. These are the platform's account of its own work, as stored and as served.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use retail_domain::error::error_chain;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What kind of work a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Records landed in bronze (files, an HTTP request, a stream's checkpoint interval).
    Ingest,
    /// Assets materialised (silver, gold, the warehouse, ...).
    Pipeline,
    /// Partitions of an asset re-materialised by a series of pipeline runs.
    Backfill,
}

impl RunKind {
    /// Returns the kind as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Pipeline => "pipeline",
            Self::Backfill => "backfill",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "ingest" => Self::Ingest,
            "backfill" => Self::Backfill,
            _ => Self::Pipeline,
        }
    }
}

/// How a run ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still going.
    Running,
    /// Finished and wrote what it had to.
    Succeeded,
    /// Found nothing new: changed nothing.
    UpToDate,
    /// Stopped by an error (or by the death of its process); every table is at its last good
    /// version.
    Failed,
}

impl RunStatus {
    /// Returns the status as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::UpToDate => "up_to_date",
            Self::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "succeeded" => Self::Succeeded,
            "up_to_date" => Self::UpToDate,
            "failed" => Self::Failed,
            _ => Self::Running,
        }
    }

    /// Whether the run is over.
    pub fn is_finished(self) -> bool {
        self != Self::Running
    }
}

/// What happened to one asset in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssetRun {
    /// The asset: a table name (`silver/retail_transactions`) or a follower
    /// (`warehouse/postgres`).
    pub asset: String,
    /// `materialized`, `up_to_date` or `failed`.
    pub status: String,
    /// Rows written (for an overwrite: rows in the table).
    pub rows: u64,
    /// The table version written, if any.
    pub version: Option<u64>,
    /// Attempts made (more than one when a transient failure was retried).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub attempts: u32,
    /// What the asset reports beyond rows (a warehouse load's tables and partitions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

fn one() -> u32 {
    1
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if takes a reference
fn is_one(value: &u32) -> bool {
    *value == 1
}

impl AssetRun {
    /// An asset that wrote `rows` rows, making table version `version`.
    pub fn materialized(asset: impl Into<String>, rows: u64, version: Option<u64>) -> Self {
        Self {
            asset: asset.into(),
            status: "materialized".to_owned(),
            rows,
            version,
            attempts: 1,
            detail: None,
        }
    }

    /// An asset that had nothing to do.
    pub fn up_to_date(asset: impl Into<String>) -> Self {
        Self {
            asset: asset.into(),
            status: "up_to_date".to_owned(),
            rows: 0,
            version: None,
            attempts: 1,
            detail: None,
        }
    }
}

/// The verdict of one asset check in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// The asset it followed.
    pub asset: String,
    /// The table it read.
    pub table: String,
    /// `row_count`, `not_null`, `unique`, `accepted_values`, `relationship`, `freshness`,
    /// `reconciliation` or `drift`.
    pub kind: String,
    /// `warn` or `error`.
    pub severity: String,
    /// Whether it held.
    pub passed: bool,
    /// The rows that broke it (for `row_count`, 1 when the count is out of bounds).
    pub observed: u64,
    /// What it found, in words (counts, the first offending values).
    pub detail: String,
    /// The figure it measured, for checks that measure one: `freshness` the age in hours,
    /// `reconciliation` the difference, `drift` the statistic later runs compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// Table counts that must add up after a run:
/// bronze = silver + quarantine + duplicates + updates + 2 × deletes.
///
/// An applied update removed one silver row (its replacement is a silver row or a duplicate
/// of its own); an applied delete removed one silver row and is itself a bronze row that
/// became no silver row, so it counts twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reconciliation {
    /// Rows in bronze.
    pub bronze: u64,
    /// Rows in silver.
    pub silver: u64,
    /// Rows in quarantine.
    pub quarantine: u64,
    /// Rows counted as duplicates.
    pub duplicates: u64,
    /// Updates applied to silver.
    #[serde(default)]
    pub updates: u64,
    /// Deletes applied to silver.
    #[serde(default)]
    pub deletes: u64,
}

impl Reconciliation {
    /// Returns true when every bronze row is accounted for.
    pub fn balances(&self) -> bool {
        self.bronze
            == self.silver + self.quarantine + self.duplicates + self.updates + 2 * self.deletes
    }
}

impl std::fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bronze {} = silver {} + quarantine {} + duplicates {}",
            self.bronze, self.silver, self.quarantine, self.duplicates,
        )?;
        if self.updates > 0 || self.deletes > 0 {
            write!(
                f,
                " + updates {} + 2 × deletes {}",
                self.updates, self.deletes
            )?;
        }
        write!(
            f,
            " ({})",
            if self.balances() {
                "balanced"
            } else {
                "NOT BALANCED"
            }
        )
    }
}

/// Cross-row consistency of silver, each a share of 0.0 to 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Consistency {
    /// Invoices with one customer (or none) and one country.
    pub invoices_with_one_customer_and_country: f64,
    /// Cancellation lines with a negative quantity.
    pub cancellations_with_negative_quantity: f64,
    /// Stock codes with at most one description.
    pub stock_codes_with_one_description: f64,
    /// The mean of the three.
    pub overall: f64,
}

/// How fresh the data is: the lag between the newest invoice and its ingestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Timeliness {
    /// The newest invoice date among the run's silver rows (shop-local time, no zone).
    #[schema(value_type = String, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?$")]
    pub newest_invoice_date: NaiveDateTime,
    /// The newest ingestion time among the run's bronze rows.
    pub newest_ingested_at: DateTime<Utc>,
    /// The lag in hours (shop-local time read as UTC).
    pub lag_hours: f64,
}

/// The quality report of one pipeline run. Shares are from 0.0 to 1.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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

impl QualityReport {
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

/// Details of a run that are kept as one JSON document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    /// What happened to each asset.
    pub assets: Vec<AssetRun>,
    /// Bronze versions processed: (after, up to and including).
    pub bronze_versions: Option<(Option<u64>, u64)>,
    /// Table counts after the run.
    pub reconciliation: Option<Reconciliation>,
    /// The run's data quality report.
    pub quality: Option<QualityReport>,
    /// Sources ingested and skipped (ingestion runs): files, requests, stream intervals.
    pub files: Vec<FileOutcome>,
    /// How gold was built: `full` (from all of silver) or `incremental`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold_build: Option<String>,
    /// Where a gold build took its silver rows from: `silver_stage` (the rows this run's
    /// silver stage wrote, when they are the whole of silver at the version gold builds from)
    /// or `lake` (read back from the silver table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold_silver_from: Option<String>,
    /// The invoice months (`YYYY-MM`) an incremental gold build recomputed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gold_months: Vec<String>,
    /// SHA-256 (hex) of the caller's idempotency key, for records ingested under one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Who or what started the run: `cli`, `api:<user>`, `schedule:<name>`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The assets asked for (empty: every asset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selection: Vec<String>,
    /// The asset checks evaluated, in order (pipeline runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// The partitions asked for: a backfill's, or those of one of its runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
    /// The backfill a pipeline run belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<String>,
    /// A backfill's pipeline runs, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
    /// Rows of each partition the run (re)built: gold's fact rows by invoice month.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partition_rows: BTreeMap<String, u64>,
    /// How many partitions a backfill gives each of its runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions_per_run: Option<u32>,
}

/// What became of one source unit (a file, a request body, a stream interval) in an ingestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileOutcome {
    /// The file's path as given, or `api:<request>` / `kafka:<topic>/<partition>`.
    pub path: String,
    /// SHA-256 of a file's content (empty for other sources).
    pub checksum: String,
    /// Rows it added to bronze (0 when skipped).
    pub rows: u64,
    /// Malformed rows among them.
    pub malformed: u64,
    /// True when the content had been ingested before.
    pub skipped: bool,
    /// Records left out because they name a customer erased earlier (GDPR; not in `rows`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub erased: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Which runs to list, newest first (by start, then id). Every given condition must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs of this kind.
    pub kind: Option<RunKind>,
    /// Only runs that ended so (or are still `running`).
    pub status: Option<RunStatus>,
    /// Only runs that recorded one of these among their assets (an asset's key and the tables
    /// it writes: silver and gold record their tables, the others their key); empty: any.
    pub assets: Vec<String>,
    /// Who asked, exactly (`cli`, `api:alice`, `schedule:nightly`), or every name it starts
    /// when it ends with `:` (`schedule:`).
    pub requested_by: Option<String>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Started before.
    pub until: Option<DateTime<Utc>>,
    /// Only runs that (re)built this partition (`2011-03`): incremental and backfill runs of
    /// gold that recomputed the month, full builds of gold, and backfills that asked for it.
    pub partition: Option<String>,
    /// Only runs after this one in the order: the next page after a page that ended with it.
    pub before: Option<String>,
    /// At most this many.
    pub limit: usize,
}

impl Default for RunFilter {
    fn default() -> Self {
        Self {
            kind: None,
            status: None,
            assets: Vec::new(),
            requested_by: None,
            since: None,
            until: None,
            partition: None,
            before: None,
            limit: 20,
        }
    }
}

/// One recorded run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunRecord {
    /// Unique id (UUID v7: sorts by start time).
    pub run_id: String,
    /// Ingestion or pipeline.
    pub kind: RunKind,
    /// How it ended.
    pub status: RunStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// How long it took.
    pub duration_ms: Option<u64>,
    /// Rows read (bronze rows for a pipeline run, source rows for an ingestion).
    pub rows_in: u64,
    /// Rows written to silver (pipeline) or bronze (ingestion).
    pub rows_out: u64,
    /// Rows quarantined.
    pub quarantined: u64,
    /// Rows dropped as duplicates.
    pub duplicates: u64,
    /// The error chain of a failed run.
    pub error: Option<String>,
    /// Everything else.
    pub detail: RunDetail,
}

impl RunRecord {
    /// Starts a record for a run beginning now.
    pub fn start(kind: RunKind) -> Self {
        Self {
            run_id: uuid::Uuid::now_v7().to_string(),
            kind,
            status: RunStatus::Running,
            started_at: crate::now(),
            finished_at: None,
            duration_ms: None,
            rows_in: 0,
            rows_out: 0,
            quarantined: 0,
            duplicates: 0,
            error: None,
            detail: RunDetail::default(),
        }
    }

    /// Marks the run finished with a status.
    pub fn finish(&mut self, status: RunStatus) {
        let now = crate::now();
        self.status = status;
        self.finished_at = Some(now);
        self.duration_ms = u64::try_from((now - self.started_at).num_milliseconds()).ok();
    }

    /// Marks the run failed with the chain of `error`'s causes.
    pub fn fail(&mut self, error: &dyn std::error::Error) {
        self.error = Some(error_chain(error));
        self.finish(RunStatus::Failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_record_without_the_newer_fields_still_reads() {
        let old = r#"{"assets":[{"asset":"gold/dim_date","status":"materialized","rows":3,
            "version":2}],"bronze_versions":null,"reconciliation":{"bronze":3,"silver":3,
            "quarantine":0,"duplicates":0},"quality":null,"files":[]}"#;
        let detail: RunDetail = serde_json::from_str(old).unwrap();
        assert_eq!(detail.assets[0].attempts, 1);
        assert!(detail.reconciliation.unwrap().balances());
        assert!(detail.requested_by.is_none());
    }

    #[test]
    fn reconciliation_counts_a_delete_twice() {
        let counts = Reconciliation {
            bronze: 10,
            silver: 6,
            quarantine: 1,
            duplicates: 0,
            updates: 1,
            deletes: 1,
        };
        assert!(counts.balances(), "{counts}");
        assert!(counts.to_string().contains("2 × deletes 1"));
    }
}
