//! Text renderings of runs, status, the asset graph, quality and headline figures.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use retail_app::App;
use retail_domain::lineage::{ColumnLineage, Dataset, Edge};
use retail_lake::arrow::array::{AsArray as _, RecordBatch};
use retail_lake::arrow::datatypes::{Decimal128Type, Int64Type};
use retail_lake::schema::{self as tables, TableSpec};
use retail_services::{
    AssetInfo, BackfillSummary, PartitionState, PipelineStatus, RunKind, RunRecord,
};
use rust_decimal::Decimal;

fn kind(run: &RunRecord) -> &'static str {
    match run.kind {
        RunKind::Ingest => "ingestion",
        RunKind::Pipeline => "pipeline run",
        RunKind::Backfill => "backfill",
    }
}

/// Describes one run for a terminal.
pub(crate) fn run_text(run: &RunRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} {} in {} ms",
        kind(run),
        run.run_id,
        run.status.as_str(),
        run.duration_ms.unwrap_or(0)
    );
    if let Some(error) = &run.error {
        let _ = writeln!(out, "  error: {error}");
    }
    match run.kind {
        RunKind::Ingest => {
            for file in &run.detail.files {
                if file.skipped {
                    let _ = writeln!(out, "  skipped {} (content already ingested)", file.path);
                }
            }
            let ingested = run.detail.files.iter().filter(|f| !f.skipped).count();
            let malformed: u64 = run.detail.files.iter().map(|f| f.malformed).sum();
            let skipped = run.detail.files.len() - ingested;
            let _ = writeln!(
                out,
                "  {} rows from {ingested} files into bronze ({malformed} malformed kept), {skipped} files skipped",
                run.rows_out
            );
        }
        RunKind::Backfill => {
            let _ = writeln!(
                out,
                "  months {} ({} per run); runs: {}",
                run.detail.partitions.join(", "),
                run.detail.partitions_per_run.unwrap_or(1),
                run.detail.runs.join(", ")
            );
        }
        RunKind::Pipeline => {
            if let Some((after, to)) = run.detail.bronze_versions {
                let from = after.map_or("the start".to_owned(), |v| format!("version {v}"));
                let _ = writeln!(out, "  bronze after {from} up to version {to}");
            }
            let _ = writeln!(
                out,
                "  read {} bronze rows: {} to silver, {} quarantined, {} duplicates",
                run.rows_in, run.rows_out, run.quarantined, run.duplicates
            );
            if let Some(quality) = &run.detail.quality {
                for (reason, rows) in &quality.quarantine_by_reason {
                    let _ = writeln!(out, "    quarantined {reason:<22} {rows}");
                }
            }
            for asset in &run.detail.assets {
                let version = asset
                    .version
                    .map_or(String::new(), |v| format!(" (version {v})"));
                let attempts = if asset.attempts > 1 {
                    format!(" after {} attempts", asset.attempts)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "  {:<40} {:<12} {:>9} rows{version}{attempts}",
                    asset.asset, asset.status, asset.rows
                );
                if let Some(detail) = &asset.detail {
                    out.push_str(&crate::warehouse::load_text(detail));
                }
            }
            if run.status == retail_metadata::RunStatus::UpToDate {
                let _ = writeln!(out, "  nothing new: every table was already up to date");
            }
            if let Some(reconciliation) = &run.detail.reconciliation {
                let _ = writeln!(out, "  reconciliation: {reconciliation}");
            }
        }
    }
    out
}

/// Describes a backfill and the states of its months.
pub(crate) fn backfill_text(summary: &BackfillSummary) -> String {
    let mut out = run_text(&summary.backfill);
    let counts: Vec<String> = summary
        .partitions
        .iter()
        .map(|(status, count)| format!("{count} {status}"))
        .collect();
    let _ = writeln!(out, "  months: {}", counts.join(", "));
    let _ = writeln!(
        out,
        "  each month: retail pipeline partitions --backfill {}",
        summary.backfill.run_id
    );
    out
}

/// Lists the lineage's datasets, one line each, in the order data flows.
pub(crate) fn datasets_text(datasets: &[Dataset], edges: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<9}  {:<48}  {:>7}  produced by",
        "layer", "dataset", "columns"
    );
    for dataset in datasets {
        let _ = writeln!(
            out,
            "{:<9}  {:<48}  {:>7}  {}",
            dataset.layer,
            dataset.name,
            dataset.columns.len(),
            dataset.produced_by
        );
    }
    let _ = writeln!(
        out,
        "{} datasets, {edges} edges; `retail pipeline lineage DATASET` lists a dataset's edges, \
         `retail pipeline lineage DATASET.COLUMN` walks a column",
        datasets.len()
    );
    out
}

fn edge_line(out: &mut String, hops: Option<usize>, edge: &Edge) {
    let hops = hops.map_or_else(String::new, |h| format!("{h:>3}  "));
    let how = format!("{}/{}", edge.kind.as_str(), edge.subtype.as_str());
    let _ = write!(out, "  {hops}{} -> {}  {how}", edge.from, edge.to);
    if !edge.description.is_empty() {
        let _ = write!(out, "  ({})", edge.description);
    }
    out.push('\n');
}

/// A dataset's columns and the edges into and out of them.
pub(crate) fn dataset_edges_text(dataset: &Dataset, edges: &[Edge]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}, produced by {}): {}",
        dataset.name,
        dataset.layer,
        dataset.produced_by,
        dataset.columns.join(", ")
    );
    let _ = writeln!(out, "inputs:");
    for edge in edges.iter().filter(|e| e.to.dataset == dataset.name) {
        edge_line(&mut out, None, edge);
    }
    let _ = writeln!(out, "used by:");
    for edge in edges.iter().filter(|e| e.from.dataset == dataset.name) {
        edge_line(&mut out, None, edge);
    }
    out
}

/// A column's lineage, nearest edges first, with their distance.
pub(crate) fn column_lineage_text(walk: &ColumnLineage) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", walk.column);
    for (title, hops) in [
        ("made from (upstream)", &walk.upstream),
        ("used by (downstream)", &walk.downstream),
    ] {
        if hops.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{title}: {} edges\n  hop", hops.len());
        for hop in hops {
            edge_line(&mut out, Some(hop.hops), &hop.edge);
        }
    }
    if walk.upstream.is_empty() && walk.downstream.is_empty() {
        let _ = writeln!(
            out,
            "  (no edges this way: a source column, or set by the platform)"
        );
    }
    out
}

/// Lists partitions, one line each.
pub(crate) fn partitions_text(page: &[PartitionState]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<9}  {:<9}  {:<36}  {:>8}  {:>10}  {:<20}",
        "partition", "status", "run", "attempts", "rows", "updated (UTC)"
    );
    for partition in page {
        let _ = writeln!(
            out,
            "{:<9}  {:<9}  {:<36}  {:>8}  {:>10}  {:<20}",
            partition.partition,
            partition.status.as_str(),
            partition.run_id.as_deref().unwrap_or("-"),
            partition.attempts,
            partition
                .rows
                .map_or_else(|| "-".to_owned(), |rows| rows.to_string()),
            partition.updated_at.format("%Y-%m-%d %H:%M:%S")
        );
        if let Some(error) = &partition.error {
            let _ = writeln!(out, "    error: {error}");
        }
    }
    if page.is_empty() {
        let _ = writeln!(out, "(no partitions)");
    }
    out
}

/// Lists runs, one line each.
pub(crate) fn runs_text(runs: &[RunRecord]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<36}  {:<9}  {:<10}  {:<20}  {:>8}  {:>9}  {:>9}  {:>8}  {:>8}",
        "run", "kind", "status", "started (UTC)", "ms", "rows in", "rows out", "quarant.", "dupl."
    );
    for run in runs {
        let _ = writeln!(
            out,
            "{:<36}  {:<9}  {:<10}  {:<20}  {:>8}  {:>9}  {:>9}  {:>8}  {:>8}",
            run.run_id,
            match run.kind {
                RunKind::Ingest => "ingest",
                RunKind::Pipeline => "pipeline",
                RunKind::Backfill => "backfill",
            },
            run.status.as_str(),
            run.started_at.format("%Y-%m-%d %H:%M:%S"),
            run.duration_ms.unwrap_or(0),
            run.rows_in,
            run.rows_out,
            run.quarantined,
            run.duplicates
        );
        if let Some(error) = &run.error {
            let _ = writeln!(out, "    error: {error}");
        }
    }
    if runs.is_empty() {
        let _ = writeln!(out, "(no runs recorded yet)");
    }
    out
}

/// Describes where the pipeline stands.
pub(crate) fn status_text(status: &PipelineStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:>8} {:>10} {:>11}",
        "table", "version", "rows", "built from"
    );
    for table in status
        .tables
        .iter()
        .filter(|t| !t.table.contains("/history_"))
    {
        let _ = writeln!(
            out,
            "{:<40} {:>8} {:>10} {:>11}",
            table.table,
            table.version.map_or("-".to_owned(), |v| v.to_string()),
            table.rows,
            table.built_from.map_or("-".to_owned(), |v| v.to_string())
        );
    }
    let flag = |current: bool| {
        if current {
            "up to date"
        } else {
            "behind (run `retail pipeline run`)"
        }
    };
    for asset in &status.assets {
        let state = match &asset.staleness {
            retail_services::Staleness::UpToDate => "up to date".to_owned(),
            retail_services::Staleness::Stale(why) => format!("behind: {why}"),
            retail_services::Staleness::Missing => "never materialized".to_owned(),
        };
        let _ = writeln!(out, "asset {:<22} {state}", asset.asset);
    }
    let _ = writeln!(out, "silver: {}", flag(status.silver_up_to_date));
    let _ = writeln!(out, "gold:   {}", flag(status.gold_up_to_date));
    for freshness in &status.freshness {
        let behind = freshness.behind_since.map_or_else(String::new, |at| {
            format!(", behind since {}", at.format("%Y-%m-%d %H:%M:%S UTC"))
        });
        let _ = writeln!(
            out,
            "freshness {:<18} lag {} min (limit {} min{behind}){}",
            freshness.asset,
            freshness.lag_seconds / 60,
            freshness.max_lag_minutes,
            if freshness.breached { ": BREACHED" } else { "" }
        );
    }
    let _ = writeln!(out, "reconciliation: {}", status.reconciliation);
    match &status.latest_run {
        Some(run) => {
            let _ = writeln!(
                out,
                "latest run: {} {} at {}",
                run.run_id,
                run.status.as_str(),
                run.started_at.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
        None => {
            let _ = writeln!(out, "latest run: none");
        }
    }
    out
}

/// Lists the asset graph.
pub(crate) fn assets_text(assets: &[AssetInfo]) -> String {
    let mut out = String::new();
    for asset in assets {
        let upstream = asset
            .upstream
            .iter()
            .map(|u| {
                if *u == "bronze" {
                    "bronze (ingestion)"
                } else {
                    u
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "{:<22} <- {upstream}", asset.key);
        let _ = writeln!(out, "    {}", asset.description);
        for table in &asset.tables {
            let _ = writeln!(out, "    writes {table}");
        }
    }
    out
}

/// Prints (and optionally writes) the quality report of a run.
pub(crate) async fn quality_report(
    app: &App,
    run_id: Option<&str>,
    json: bool,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let run = match run_id {
        Some(id) => app
            .store
            .run(id)
            .await?
            .with_context(|| format!("no run with id {id}"))?,
        None => app
            .store
            .runs(Some(RunKind::Pipeline), 1000)
            .await?
            .into_iter()
            .find(|run| run.detail.quality.is_some())
            .context("no pipeline run has processed data yet: run `retail pipeline run` first")?,
    };
    let Some(quality) = &run.detail.quality else {
        bail!(
            "run {} processed no data, so it has no quality report",
            run.run_id
        );
    };
    let encoded = serde_json::to_string_pretty(quality)?;
    if let Some(output) = output {
        std::fs::write(output, &encoded)
            .with_context(|| format!("cannot write {}", output.display()))?;
    }
    if json {
        println!("{encoded}");
    } else {
        print!("{}", quality.to_text());
    }
    Ok(())
}

fn sum_decimal(batches: &[RecordBatch], column: &str) -> Decimal {
    let total: i128 = batches
        .iter()
        .filter_map(|b| b.column_by_name(column))
        .map(|c| {
            c.as_primitive::<Decimal128Type>()
                .iter()
                .flatten()
                .sum::<i128>()
        })
        .sum();
    Decimal::from_i128_with_scale(total, 3)
}

fn sum_int(batches: &[RecordBatch], column: &str) -> i64 {
    batches
        .iter()
        .filter_map(|b| b.column_by_name(column))
        .map(|c| c.as_primitive::<Int64Type>().iter().flatten().sum::<i64>())
        .sum()
}

async fn rows_of(app: &App, table: &TableSpec) -> anyhow::Result<u64> {
    Ok(app.lake.count_rows(table).await?)
}

/// Headline figures of the lake, from the gold tables.
pub(crate) async fn summary_text(app: &App) -> anyhow::Result<String> {
    let mut out = String::new();
    let reconciliation = app.services.pipeline.status().await?.reconciliation;
    let _ = writeln!(out, "\nlake at {}", app.lake.root());
    for table in tables::public_tables() {
        let _ = writeln!(
            out,
            "  {:<40} {:>9} rows   {}",
            table.name,
            rows_of(app, &table).await?,
            app.lake.table_url(&table)
        );
    }
    let _ = writeln!(out, "reconciliation: {reconciliation}");
    if app.lake.open(&tables::GOLD_DAILY_SALES).await?.is_none() {
        return Ok(out);
    }
    let daily = app.lake.read_all(&tables::GOLD_DAILY_SALES).await?;
    let customers = app.lake.count_rows(&tables::GOLD_CUSTOMER_RFM).await?;
    let _ = writeln!(out, "headline figures (gold):");
    let _ = writeln!(
        out,
        "  net revenue      {}",
        sum_decimal(&daily, "net_revenue")
    );
    let _ = writeln!(
        out,
        "  gross revenue    {}",
        sum_decimal(&daily, "gross_revenue")
    );
    let _ = writeln!(
        out,
        "  returns          {}",
        sum_decimal(&daily, "returns_amount")
    );
    let _ = writeln!(out, "  units sold       {}", sum_int(&daily, "units"));
    let _ = writeln!(out, "  lines            {}", sum_int(&daily, "lines"));
    let _ = writeln!(out, "  customers (RFM)  {customers}");
    let _ = writeln!(
        out,
        "  products         {}",
        rows_of(app, &tables::GOLD_DIM_PRODUCT).await?
    );
    let _ = writeln!(
        out,
        "  countries        {}",
        rows_of(app, &tables::GOLD_DIM_COUNTRY).await?
    );
    let _ = writeln!(
        out,
        "  days             {}",
        rows_of(app, &tables::GOLD_DIM_DATE).await?
    );
    Ok(out)
}
