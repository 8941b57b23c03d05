//! `retail bench`: the pipeline end to end in a scratch lake, timed stage by stage.
//!
//! The measured work is exactly what a user runs: ingestion of the inputs into bronze, then the
//! silver and gold stages. With two or more input files the newest one is held back and
//! ingested afterwards, to measure an incremental run after one new day of data.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use retail_ingest::generate::{GenerateOptions, write_daily_csv_files};
use retail_pipeline::{NoProgress, RunOptions, RunRecord};
use serde::Serialize;

use crate::Platform;
use crate::config::Config;

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
    total_seconds: f64,
    rows_per_second: f64,
    incremental: Option<Incremental>,
    peak_memory_mib: Option<f64>,
    cores: usize,
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
    let result = measure(base, args, &work_dir).await;
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
    let platform = Platform::build(&config)?;

    let started = Instant::now();
    let ingestion = platform.ingest.ingest_paths(&files, &NoProgress).await?;
    let ingest_seconds = started.elapsed().as_secs_f64();
    let silver_started = Instant::now();
    let silver = stage(
        &platform,
        RunOptions {
            silver: true,
            gold: false,
            force_gold: false,
        },
    )
    .await?;
    let silver_seconds = silver_started.elapsed().as_secs_f64();
    let gold_started = Instant::now();
    stage(
        &platform,
        RunOptions {
            silver: false,
            gold: true,
            force_gold: false,
        },
    )
    .await?;
    let gold_seconds = gold_started.elapsed().as_secs_f64();
    let total_seconds = started.elapsed().as_secs_f64();

    let incremental = match held_back {
        Some(file) => {
            let started = Instant::now();
            let ingestion = platform
                .ingest
                .ingest_paths(std::slice::from_ref(&file), &NoProgress)
                .await?;
            let ingest_seconds = started.elapsed().as_secs_f64();
            let started = Instant::now();
            stage(&platform, RunOptions::default()).await?;
            Some(Incremental {
                file,
                rows: ingestion.rows_out,
                ingest_seconds,
                pipeline_seconds: started.elapsed().as_secs_f64(),
            })
        }
        None => None,
    };
    Ok(Measurement {
        inputs: files.len(),
        bronze_rows: ingestion.rows_out,
        silver_rows: silver.rows_out,
        ingest_seconds,
        silver_seconds,
        gold_seconds,
        total_seconds,
        rows_per_second: ingestion.rows_out as f64 / total_seconds,
        incremental,
        peak_memory_mib: peak_memory_mib(),
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    })
}

async fn stage(platform: &Platform, options: RunOptions) -> anyhow::Result<RunRecord> {
    Ok(platform.pipeline.run(options, &NoProgress).await?)
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
    if let Some(peak) = m.peak_memory_mib {
        println!("  peak memory        {peak:>8.0} MiB");
    }
}
