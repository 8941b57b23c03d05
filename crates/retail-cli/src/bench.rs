//! `retail bench`: the pipeline end to end in a scratch lake, timed stage by stage.
//!
//! The measured work is exactly what a user runs: ingestion of the inputs into bronze, then the
//! silver and gold stages, then the models trained on gold (each model's training time as the
//! registry records it). With two or more input files the newest one is held back and
//! ingested afterwards, to measure an incremental run after one new day of data.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use retail_app::{App, Config, Role};
use retail_domain::progress::NoProgress;
use retail_ingest::generate::{GenerateOptions, write_daily_csv_files};
use retail_services::{RunRecord, RunRequest};
use serde::Serialize;

use retail_warehouse::{Catalogue, Params, PostgresWarehouse, QueryResult, Warehouse as _};

/// Options of `retail bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Files, directories or globs to measure on (e.g. the 305 daily files of Online Retail).
    #[arg(long)]
    data: Vec<String>,
    /// Without --data: rows of synthetic data to generate first (not timed).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Scratch directory (default: a fresh one under the system temp dir, removed afterwards).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the scratch directory.
    #[arg(long)]
    keep: bool,
    /// Do not hold back the newest file for the incremental measurement.
    #[arg(long)]
    no_incremental: bool,
    /// Also measure the warehouse: catalogue query latency on the embedded backend and, when
    /// warehouse.postgres_url is set, the PostgreSQL load (full and after the new day) and
    /// query latency there, in a scratch schema dropped afterwards.
    #[arg(long)]
    warehouse: bool,
    /// Runs of each catalogue query (after three warm-up runs).
    #[arg(long, default_value_t = 30)]
    query_runs: usize,
    /// Also measure search latency under load: keyword, semantic and hybrid searches of a fixed
    /// set of shop queries, from --search-clients concurrent clients in this process, for
    /// --search-seconds each.
    #[arg(long)]
    search: bool,
    /// Concurrent clients of the search load.
    #[arg(long, default_value_t = 2)]
    search_clients: usize,
    /// Seconds of load per search mode.
    #[arg(long, default_value_t = 10)]
    search_seconds: u64,
    /// Print the measurements as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Measurement {
    inputs: usize,
    bronze_rows: u64,
    silver_rows: u64,
    ingest_seconds: f64,
    silver_seconds: f64,
    gold_seconds: f64,
    /// The models asset (reading gold, training, writing), when it is enabled.
    models_seconds: Option<f64>,
    /// Each model's training time (ms) and status, from the run record.
    models: Vec<ModelTime>,
    /// The recommendations asset (read gold, fit, write), when it is enabled.
    recommendations_seconds: Option<f64>,
    /// The search index's first build (read gold, embeddings, index), when search is enabled.
    search_index: Option<SearchIndexBuild>,
    /// Search latency under load (`--search`).
    search_latency: Vec<SearchLatency>,
    total_seconds: f64,
    rows_per_second: f64,
    incremental: Option<Incremental>,
    warehouse: Option<WarehouseBench>,
    peak_memory_mib: Option<f64>,
    cores: usize,
}

#[derive(Debug, Default, Serialize)]
struct WarehouseBench {
    /// Full load into PostgreSQL: seconds in all, seconds of the fact table's COPY (with the
    /// index builds of its new partitions), fact rows.
    postgres_load_seconds: Option<f64>,
    postgres_copy_seconds: Option<f64>,
    postgres_fact_rows: Option<u64>,
    /// Fact rows per second of COPY.
    postgres_fact_rows_per_second: Option<f64>,
    /// The load after the new day: seconds and rows copied.
    postgres_incremental_seconds: Option<f64>,
    postgres_incremental_rows: Option<u64>,
    /// Catalogue query latency: (query, backend, median ms, p95 ms, rows).
    queries: Vec<QueryLatency>,
}

#[derive(Debug, Serialize)]
struct QueryLatency {
    query: String,
    backend: &'static str,
    median_ms: f64,
    p95_ms: f64,
    rows: usize,
}

#[derive(Debug, Serialize)]
struct SearchIndexBuild {
    seconds: f64,
    documents: u64,
    bytes: u64,
    /// Documents the catch-up after the new day wrote (incremental), of all.
    incremental_written: Option<u64>,
    incremental_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
struct SearchLatency {
    mode: &'static str,
    clients: usize,
    requests: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct ModelTime {
    model: String,
    status: String,
    training_ms: i64,
    rows: i64,
}

#[derive(Debug, Serialize)]
struct Incremental {
    file: String,
    rows: u64,
    ingest_seconds: f64,
    pipeline_seconds: f64,
}

/// Peak resident memory of this process, from `/proc/self/status` (Linux).
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub(crate) async fn run(base: &Config, args: &BenchArgs) -> anyhow::Result<()> {
    let work_dir = args.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("retail-bench-{}", std::process::id()))
    });
    if work_dir.join("lake").exists() {
        anyhow::bail!(
            "{} already holds a lake: give an empty --work-dir",
            work_dir.display()
        );
    }
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create {}", work_dir.display()))?;
    let result = Box::pin(measure(base, args, &work_dir)).await;
    if !args.keep && args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    let measurement = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&measurement)?);
    } else {
        print_measurement(&measurement);
    }
    Ok(())
}

async fn measure(
    base: &Config,
    args: &BenchArgs,
    work_dir: &std::path::Path,
) -> anyhow::Result<Measurement> {
    let inputs = if args.data.is_empty() {
        let out = work_dir.join("generated");
        eprintln!(
            "generating {} synthetic rows into {} (not timed)",
            args.rows,
            out.display()
        );
        let options = GenerateOptions {
            rows: args.rows,
            ..GenerateOptions::default()
        };
        write_daily_csv_files(&out, &options).context("cannot generate data")?;
        vec![out.display().to_string()]
    } else {
        args.data.clone()
    };
    let mut files: Vec<String> = retail_ingest::resolve_inputs(&inputs)?
        .into_iter()
        .map(|path| path.display().to_string())
        .collect();
    let held_back = if args.no_incremental || files.len() < 2 {
        None
    } else {
        files.pop()
    };

    let mut config = base.clone();
    config.lake.root = work_dir.join("lake").display().to_string();
    config.metadata.path = work_dir.join("retail.db").display().to_string();
    config.metadata.url = String::new();
    // PostgreSQL is measured in a scratch schema of its own below, never the configured one.
    config.warehouse.backend = retail_warehouse::Backend::Embedded;
    let app = App::build(config, Role::Cli).await?;

    let started = Instant::now();
    let ingestion = app
        .services
        .ingest
        .ingest_files(&files, "bench", &NoProgress)
        .await?;
    let ingest_seconds = started.elapsed().as_secs_f64();
    let silver_started = Instant::now();
    let silver = stage(&app, &["silver"]).await?;
    let silver_seconds = silver_started.elapsed().as_secs_f64();
    let gold_started = Instant::now();
    stage(&app, &["gold"]).await?;
    let gold_seconds = gold_started.elapsed().as_secs_f64();
    let (models_seconds, models) = if base.models.enabled {
        let models_started = Instant::now();
        let run = stage(&app, &["models"]).await?;
        (
            Some(models_started.elapsed().as_secs_f64()),
            model_times(&run),
        )
    } else {
        (None, Vec::new())
    };
    let recommendations_seconds = if base.recommendations.enabled {
        let started = Instant::now();
        stage(&app, &["recommendations"]).await?;
        Some(started.elapsed().as_secs_f64())
    } else {
        None
    };
    let mut search_index = if base.search.enabled {
        let started = Instant::now();
        let run = stage(&app, &["search"]).await?;
        let seconds = started.elapsed().as_secs_f64();
        let detail = asset_detail(&run, "search");
        Some(SearchIndexBuild {
            seconds,
            documents: detail["documents"].as_u64().unwrap_or(0),
            bytes: detail["bytes"].as_u64().unwrap_or(0),
            incremental_written: None,
            incremental_seconds: None,
        })
    } else {
        None
    };
    let total_seconds = started.elapsed().as_secs_f64();
    let search_latency = if args.search && base.search.enabled {
        eprintln!("timing searches under load");
        search_latencies(&app, args.search_clients.max(1), args.search_seconds).await?
    } else {
        Vec::new()
    };

    let mut warehouse = None;
    let postgres = if args.warehouse && !base.warehouse.postgres_url.trim().is_empty() {
        let mut settings = base.warehouse.clone();
        settings.postgres_schema = format!("bench_{}", std::process::id());
        let pg = retail_app::warehouses::postgres(&settings, &base.tls, false).await?;
        pg.drop_schema().await?;
        pg.migrate().await?;
        Some(pg)
    } else {
        None
    };
    if args.warehouse {
        let mut bench = WarehouseBench::default();
        if let Some(pg) = &postgres {
            eprintln!("loading PostgreSQL");
            let report = pg.load(&app.lake).await?;
            let (facts, fact_copy_seconds) = report
                .tables
                .iter()
                .find(|t| t.table == "fact_sales")
                .map_or((0, 0.0), |t| (t.rows_copied, t.copy_seconds));
            bench.postgres_load_seconds = Some(report.seconds);
            bench.postgres_copy_seconds = Some(fact_copy_seconds);
            bench.postgres_fact_rows = Some(facts);
            bench.postgres_fact_rows_per_second = Some(facts as f64 / fact_copy_seconds);
        }
        eprintln!("timing catalogue queries");
        bench.queries = query_latencies(&app, postgres.as_ref(), args.query_runs).await?;
        warehouse = Some(bench);
    }

    let incremental = match held_back {
        Some(file) => {
            let started = Instant::now();
            let ingestion = app
                .services
                .ingest
                .ingest_files(std::slice::from_ref(&file), "bench", &NoProgress)
                .await?;
            let ingest_seconds = started.elapsed().as_secs_f64();
            let started = Instant::now();
            let run = stage(&app, &[]).await?;
            let pipeline_seconds = started.elapsed().as_secs_f64();
            if let Some(build) = search_index.as_mut() {
                let detail = asset_detail(&run, "search");
                build.incremental_written = detail["written"].as_u64();
                build.incremental_seconds = (|| {
                    Some(
                        (detail["read_ms"].as_u64()?
                            + detail["embed_ms"].as_u64()?
                            + detail["index_ms"].as_u64()?) as f64
                            / 1000.0,
                    )
                })();
            }
            if let (Some(pg), Some(bench)) = (&postgres, warehouse.as_mut()) {
                let report = pg.load(&app.lake).await?;
                bench.postgres_incremental_seconds = Some(report.seconds);
                bench.postgres_incremental_rows = Some(report.rows_copied());
            }
            Some(Incremental {
                file,
                rows: ingestion.rows_out,
                ingest_seconds,
                pipeline_seconds,
            })
        }
        None => None,
    };
    if let Some(pg) = &postgres {
        pg.drop_schema().await?;
    }
    Ok(Measurement {
        inputs: files.len(),
        bronze_rows: ingestion.rows_out,
        silver_rows: silver.rows_out,
        ingest_seconds,
        silver_seconds,
        gold_seconds,
        models_seconds,
        models,
        recommendations_seconds,
        search_index,
        search_latency,
        total_seconds,
        rows_per_second: ingestion.rows_out as f64 / total_seconds,
        incremental,
        warehouse,
        peak_memory_mib: peak_memory_mib(),
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    })
}

/// Each model's training time, from the models asset's record in `run`.
fn model_times(run: &RunRecord) -> Vec<ModelTime> {
    run.detail
        .assets
        .iter()
        .filter(|asset| asset.asset == "models")
        .filter_map(|asset| asset.detail.as_ref())
        .filter_map(|detail| detail["models"].as_array())
        .flatten()
        .map(|model| ModelTime {
            model: model["model"].as_str().unwrap_or_default().to_owned(),
            status: model["status"].as_str().unwrap_or_default().to_owned(),
            training_ms: model["training_ms"].as_i64().unwrap_or_default(),
            rows: model["rows"].as_i64().unwrap_or_default(),
        })
        .collect()
}

/// The detail an asset recorded in `run` (`Null` when none).
fn asset_detail(run: &RunRecord, key: &str) -> serde_json::Value {
    run.detail
        .assets
        .iter()
        .find(|asset| asset.asset == key)
        .and_then(|asset| asset.detail.clone())
        .unwrap_or(serde_json::Value::Null)
}

/// Shop queries: words, typos, codes, and descriptions of needs.
pub(crate) const SEARCH_QUERIES: [&str; 30] = [
    "red retrospot",
    "chrismas lights",
    "white hanging heart",
    "lunch bag",
    "jumbo bag",
    "cake stand",
    "tea set",
    "vintage doily",
    "paper chain kit",
    "alarm clock",
    "hot water bottle",
    "party bunting",
    "heart of wicker",
    "gifts for a tea party",
    "regency teacup",
    "glass star",
    "christmas decorations",
    "kids garden set",
    "baking set",
    "retrospot umbrella",
    "doormat",
    "lantern",
    "candle holder",
    "85123A",
    "notebook",
    "wall art",
    "childrens apron",
    "lovebird",
    "jam making set",
    "spaceboy",
];

/// p50 and p99 of searches in each mode, `clients` concurrent clients for `seconds` each.
async fn search_latencies(
    app: &App,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Vec<SearchLatency>> {
    let mut out = Vec::new();
    for mode in ["keyword", "semantic", "hybrid"] {
        let query = |index: usize| retail_services::search::SearchQuery {
            q: SEARCH_QUERIES[index % SEARCH_QUERIES.len()].to_owned(),
            mode: Some(mode.to_owned()),
            ..Default::default()
        };
        // Warm up: every query once.
        for index in 0..SEARCH_QUERIES.len() {
            app.services.search.search(&query(index)).await?;
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for client in 0..clients {
            let search = std::sync::Arc::clone(&app.services.search);
            tasks.push(tokio::spawn(async move {
                let mut timings = Vec::new();
                let mut index = client * 7;
                while Instant::now() < deadline {
                    let q = query(index);
                    let at = Instant::now();
                    search.search(&q).await?;
                    timings.push(at.elapsed().as_secs_f64() * 1000.0);
                    index += 1;
                }
                anyhow::Ok(timings)
            }));
        }
        let mut timings = Vec::new();
        for task in tasks {
            timings.extend(task.await??);
        }
        let elapsed = started.elapsed().as_secs_f64();
        timings.sort_by(f64::total_cmp);
        let at =
            |share: f64| timings[((timings.len() as f64 * share) as usize).min(timings.len() - 1)];
        out.push(SearchLatency {
            mode,
            clients,
            requests: timings.len(),
            per_second: timings.len() as f64 / elapsed,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
        });
    }
    Ok(out)
}

/// Runs these assets (none: every asset) and returns the run.
async fn stage(app: &App, assets: &[&str]) -> anyhow::Result<RunRecord> {
    let request = RunRequest {
        assets: assets.iter().map(|a| (*a).to_owned()).collect(),
        force: false,
        requested_by: "bench".to_owned(),
        ..RunRequest::default()
    };
    Ok(app.services.pipeline.run(request, &NoProgress).await?)
}

fn print_measurement(m: &Measurement) {
    println!(
        "end to end on {} files, {} bronze rows, {} cores",
        m.inputs, m.bronze_rows, m.cores
    );
    println!("  ingest to bronze   {:>8.3} s", m.ingest_seconds);
    println!(
        "  bronze to silver   {:>8.3} s   ({} silver rows)",
        m.silver_seconds, m.silver_rows
    );
    println!("  silver to gold     {:>8.3} s", m.gold_seconds);
    if let Some(seconds) = m.models_seconds {
        println!("  gold to models     {seconds:>8.3} s   (read gold, train, write)");
        for model in &m.models {
            println!(
                "    {:<10} {:>8.3} s training, {} ({} rows)",
                model.model,
                model.training_ms as f64 / 1000.0,
                model.status,
                model.rows
            );
        }
    }
    if let Some(seconds) = m.recommendations_seconds {
        println!("  recommendations    {seconds:>8.3} s   (read gold, fit, write)");
    }
    if let Some(index) = &m.search_index {
        println!(
            "  search index       {:>8.3} s   ({} documents, {:.1} MiB)",
            index.seconds,
            index.documents,
            index.bytes as f64 / 1_048_576.0
        );
    }
    println!(
        "  total              {:>8.3} s   ({:.0} rows/s)",
        m.total_seconds, m.rows_per_second
    );
    if let Some(inc) = &m.incremental {
        println!(
            "  incremental: {} rows of {}: ingest {:.3} s, pipeline {:.3} s",
            inc.rows, inc.file, inc.ingest_seconds, inc.pipeline_seconds
        );
    }
    if let Some(index) = &m.search_index
        && let (Some(written), Some(seconds)) =
            (index.incremental_written, index.incremental_seconds)
    {
        println!(
            "  search index after the new day: {seconds:.3} s, {written} of {} documents written",
            index.documents
        );
    }
    if !m.search_latency.is_empty() {
        println!("  search latency under load (p50 / p99 ms, requests per second):");
        for l in &m.search_latency {
            println!(
                "    {:<9} {:>7.2} {:>7.2}  {:>8.0}/s  ({} clients, {} requests)",
                l.mode, l.p50_ms, l.p99_ms, l.per_second, l.clients, l.requests
            );
        }
    }
    if let Some(w) = &m.warehouse {
        if let (Some(load), Some(copy), Some(rows), Some(rate)) = (
            w.postgres_load_seconds,
            w.postgres_copy_seconds,
            w.postgres_fact_rows,
            w.postgres_fact_rows_per_second,
        ) {
            println!(
                "  postgres load      {load:>8.3} s   (fact COPY + index build {copy:.3} s, {rows} facts, {rate:.0} facts/s)"
            );
        }
        if let (Some(seconds), Some(rows)) =
            (w.postgres_incremental_seconds, w.postgres_incremental_rows)
        {
            println!("  postgres load after the new day: {seconds:.3} s, {rows} rows copied");
        }
        println!("  catalogue query latency (median / p95 ms, rows):");
        for q in &w.queries {
            println!(
                "    {:<18} {:<9} {:>7.2} {:>7.2}  {}",
                q.query, q.backend, q.median_ms, q.p95_ms, q.rows
            );
        }
    }
    if let Some(peak) = m.peak_memory_mib {
        println!("  peak memory        {peak:>8.0} MiB");
    }
}

/// Median and 95th percentile latency of each catalogue query, with parameters that exist in
/// the data (the most frequent customer, the best-selling product).
async fn query_latencies(
    app: &App,
    postgres: Option<&PostgresWarehouse>,
    runs: usize,
) -> anyhow::Result<Vec<QueryLatency>> {
    let embedded = retail_app::warehouses::embedded(&app.lake);
    let first = |result: QueryResult| {
        result
            .rows
            .first()
            .and_then(|row| row.first())
            .map(ToString::to_string)
            .unwrap_or_default()
    };
    let customer = first(
        embedded
            .sql(
                "SELECT customer_id FROM customer_rfm ORDER BY frequency DESC, customer_id LIMIT 1",
            )
            .await?,
    );
    let product = first(
        embedded
            .sql("SELECT stock_code FROM product_monthly ORDER BY units_sold DESC, stock_code LIMIT 1")
            .await?,
    );
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("sales_summary", vec![]),
        (
            "sales_summary",
            vec![
                ("from", "2011-03-01"),
                ("to", "2011-03-31"),
                ("country", "France"),
            ],
        ),
        ("revenue_trend", vec![("grain", "week")]),
        ("top_products", vec![("limit", "10")]),
        (
            "top_products",
            vec![
                ("from", "2011-11-01"),
                ("to", "2011-11-30"),
                ("limit", "10"),
            ],
        ),
        ("returns", vec![]),
        ("rfm_segments", vec![]),
        ("cohort_retention", vec![]),
        ("geography", vec![]),
        ("customer_profile", vec![("customer_id", customer.as_str())]),
        ("customer_history", vec![("customer_id", customer.as_str())]),
        ("product_profile", vec![("stock_code", product.as_str())]),
        ("product_history", vec![("stock_code", product.as_str())]),
    ];
    let mut latencies = Vec::new();
    for (name, raw) in &cases {
        let query = Catalogue::get(name)?;
        let params = Params::parse(query, raw.iter().copied())?;
        let label = if raw.is_empty() {
            (*name).to_owned()
        } else {
            format!("{name}*")
        };
        let mut timings = Vec::new();
        let mut rows = 0;
        for run in 0..runs + 3 {
            let started = Instant::now();
            rows = embedded.query(query, &params).await?.rows.len();
            if run >= 3 {
                timings.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        latencies.push(latency(&label, "embedded", timings, rows));
        if let Some(pg) = postgres {
            let mut timings = Vec::new();
            for run in 0..runs + 3 {
                let started = Instant::now();
                rows = pg.query(query, &params).await?.rows.len();
                if run >= 3 {
                    timings.push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            latencies.push(latency(&label, "postgres", timings, rows));
        }
    }
    Ok(latencies)
}

fn latency(query: &str, backend: &'static str, mut timings: Vec<f64>, rows: usize) -> QueryLatency {
    timings.sort_by(f64::total_cmp);
    let at = |q: f64| {
        timings
            .get(((timings.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    QueryLatency {
        query: query.to_owned(),
        backend,
        median_ms: at(0.5),
        p95_ms: at(0.95),
        rows,
    }
}
