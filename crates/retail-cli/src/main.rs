//! `retail`: the one binary of the retail data platform.

mod api;
mod bench;
mod config;
mod progress;
mod report;
mod warehouse;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use retail_ingest::generate::{GenerateOptions, write_daily_csv_files};
use retail_lake::Lake;
use retail_pipeline::{
    IngestOptions, IngestService, MetadataStore, PipelineService, RunKind, RunOptions, RunRecord,
};
use retail_telemetry::tracing_setup::{self, LogFormat};

use crate::config::Config;
use crate::progress::TerminalProgress;

/// mimalloc returns freed memory to the system more readily than the platform allocator, so
/// the memory of one pipeline stage is not still held while the next one runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The retail data platform: files to a bronze / silver / gold Delta lakehouse with measured
/// data quality.
///
/// Tables live under ./data/lake by default (see `retail config print`). Typical use:
///
///   retail ingest data/*.csv      # land files in bronze
///   retail pipeline run           # bring silver and gold up to date
///   retail quality report         # what the latest run measured
#[derive(Debug, Parser)]
#[command(name = "retail", version, verbatim_doc_comment)]
struct Cli {
    /// A TOML config file (see config/retail.example.toml). Default: none, or RETAIL_CONFIG.
    #[arg(long, global = true, env = "RETAIL_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter, overriding telemetry.log_level (e.g. warn, debug, retail_pipeline=debug).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Land CSV, XLSX, Parquet or JSON-lines files in bronze.
    ///
    /// Takes files, directories (read recursively) and glob patterns. Every record lands in
    /// bronze/retail_transactions with its lineage; malformed records keep their raw text and
    /// parse error. A file whose content was ingested before is skipped. Every input is checked
    /// before anything is written: a bad file changes nothing.
    Ingest {
        /// Files, directories or glob patterns (quote globs to keep the shell from expanding them).
        #[arg(required = true)]
        paths: Vec<String>,
        /// Print the run record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run and inspect the bronze → silver → gold pipeline.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Data quality of pipeline runs.
    #[command(subcommand)]
    Quality(QualityCommand),
    /// Write synthetic transactions in the Online Retail CSV shape, one file per day.
    Generate(GenerateArgs),
    /// Run the whole platform on the embedded profile in one go: ingest, pipeline, summary,
    /// then serve the API (with a fresh admin API key printed once) until Ctrl-C.
    ///
    /// Without --data it first generates synthetic data (see `retail generate`).
    Demo {
        /// Files, directories or globs to ingest instead of generated data.
        #[arg(long)]
        data: Vec<String>,
        /// Rows to generate when no --data is given.
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        /// Stop after the summary instead of serving the API.
        #[arg(long)]
        no_serve: bool,
    },
    /// Measure the pipeline end to end on real or generated data, in a scratch lake.
    Bench(bench::BenchArgs),
    /// The warehouse: load PostgreSQL from gold, run catalogue queries, show what it holds.
    #[command(subcommand)]
    Warehouse(warehouse::WarehouseCommand),
    /// Serve the HTTP API (health, readiness, metrics, OpenAPI and docs, auth, analytics).
    ///
    /// Listens on api.listen (127.0.0.1:8080) unless --listen says otherwise; stops gracefully
    /// on SIGTERM or Ctrl-C. Create the first admin with `retail users create`.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Manage API users.
    #[command(subcommand)]
    Users(api::UsersCommand),
    /// Manage API keys for machine clients.
    #[command(subcommand)]
    Keys(api::KeysCommand),
    /// Apply pending migrations to the PostgreSQL warehouse schema (also done at start-up of
    /// every command that uses it).
    Migrate,
    /// Show or check the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Bring silver and gold up to date with bronze (incremental; does nothing when current).
    Run {
        /// Which stages to run.
        #[arg(long, value_enum, default_value_t = StageArg::All)]
        stage: StageArg,
        /// Rebuild every gold table from all of silver, even when it is current.
        #[arg(long)]
        force_gold: bool,
        /// Print the run record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Tables, their versions and rows, whether the pipeline is current, the latest run.
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recorded runs, newest first.
    Runs {
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only runs of this kind.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The asset graph: every table and the assets it is computed from.
    Assets,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StageArg {
    All,
    Silver,
    Gold,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Ingest,
    Pipeline,
}

#[derive(Debug, Subcommand)]
enum QualityCommand {
    /// The quality report of the latest pipeline run that processed data (or of --run).
    Report {
        /// A run id (see `retail pipeline runs`).
        #[arg(long)]
        run: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also write the JSON report to this file.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Rows in all.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    /// Seed: the same seed and options give byte-identical files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First day (YYYY-MM-DD).
    #[arg(long, default_value = "2010-12-01")]
    start: chrono::NaiveDate,
    /// Days covered.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Directory to write into (created when missing).
    #[arg(long, default_value = "./data/generated")]
    out: PathBuf,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration as TOML (secrets masked).
    Print,
    /// Check the configuration and say where the lake and the metadata store are.
    Check,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let format = match config.telemetry.log_format.as_str() {
        "json" => LogFormat::Json,
        "text" => LogFormat::Pretty,
        _ if std::io::stderr().is_terminal() => LogFormat::Pretty,
        _ => LogFormat::Json,
    };
    let level = cli
        .log_level
        .clone()
        .unwrap_or_else(|| config.telemetry.log_level.clone());
    tracing_setup::init(&level, format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The services of the embedded profile, built from the configuration.
pub(crate) struct Platform {
    pub(crate) lake: Lake,
    pub(crate) store: Arc<MetadataStore>,
    pub(crate) ingest: IngestService,
    pub(crate) pipeline: PipelineService,
}

impl Platform {
    pub(crate) fn build(config: &Config) -> anyhow::Result<Self> {
        let lake = Lake::new(&config.lake).context("cannot open the lake")?;
        let store = Arc::new(
            MetadataStore::open(&config.metadata).context("cannot open the metadata store")?,
        );
        let ingest = IngestService::new(
            lake.clone(),
            Arc::clone(&store),
            IngestOptions {
                commit_rows: config.ingest.commit_rows,
            },
        );
        let pipeline = PipelineService::new(lake.clone(), Arc::clone(&store));
        Ok(Self {
            lake,
            store,
            ingest,
            pipeline,
        })
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Config(ConfigCommand::Print) => {
            print!("{}", config.to_masked_toml());
            Ok(())
        }
        Command::Config(ConfigCommand::Check) => {
            let platform = Platform::build(&config)?;
            println!("configuration is valid");
            println!("lake root       {}", platform.lake.root());
            println!("metadata store  {}", config.metadata.path);
            Ok(())
        }
        Command::Generate(args) => generate(&args),
        Command::Ingest { paths, json } => {
            let platform = Platform::build(&config)?;
            let run = platform
                .ingest
                .ingest_paths(&paths, &TerminalProgress::new())
                .await?;
            print_run(&run, json)
        }
        Command::Pipeline(command) => pipeline(command, &config).await,
        Command::Quality(QualityCommand::Report { run, json, output }) => {
            let platform = Platform::build(&config)?;
            report::quality_report(&platform, run.as_deref(), json, output.as_deref())
        }
        Command::Demo {
            data,
            rows,
            no_serve,
        } => {
            demo(&config, data, rows).await?;
            if no_serve {
                return Ok(());
            }
            api::serve_demo(&config).await
        }
        Command::Bench(args) => Box::pin(bench::run(&config, &args)).await,
        Command::Warehouse(command) => warehouse::run(command, &config).await,
        Command::Migrate => warehouse::migrate(&config).await,
        Command::Serve { listen } => api::serve(&config, listen).await,
        Command::Users(command) => api::users(command, &config),
        Command::Keys(command) => api::keys(command, &config),
    }
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let options = GenerateOptions {
        rows: args.rows,
        seed: args.seed,
        start: args.start,
        days: args.days,
    };
    let summary = write_daily_csv_files(&args.out, &options)
        .with_context(|| format!("cannot write generated files to {}", args.out.display()))?;
    println!(
        "wrote {} rows ({} invoices, {} deliberately bad rows) in {} daily files to {}",
        summary.rows,
        summary.invoices,
        summary.bad_rows,
        summary.files,
        args.out.display()
    );
    Ok(())
}

async fn pipeline(command: PipelineCommand, config: &Config) -> anyhow::Result<()> {
    let platform = Platform::build(config)?;
    match command {
        PipelineCommand::Run {
            stage,
            force_gold,
            json,
        } => {
            let options = RunOptions {
                silver: matches!(stage, StageArg::All | StageArg::Silver),
                gold: matches!(stage, StageArg::All | StageArg::Gold),
                force_gold,
            };
            let run = platform
                .pipeline
                .run(options, &TerminalProgress::new())
                .await?;
            print_run(&run, json)?;
            // The warehouse asset comes after gold.
            if options.gold
                && let Some(load) = warehouse::load_if_postgres(config, &platform.lake).await?
            {
                if json {
                    println!("{}", serde_json::to_string_pretty(&load)?);
                } else {
                    print!("{}", warehouse::load_text(&load));
                }
            }
            Ok(())
        }
        PipelineCommand::Status { json } => {
            let status = platform.pipeline.status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", report::status_text(&status));
            }
            Ok(())
        }
        PipelineCommand::Runs { limit, kind, json } => {
            let kind = kind.map(|kind| match kind {
                KindArg::Ingest => RunKind::Ingest,
                KindArg::Pipeline => RunKind::Pipeline,
            });
            let runs = platform.store.runs(kind, limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                print!("{}", report::runs_text(&runs));
            }
            Ok(())
        }
        PipelineCommand::Assets => {
            print!("{}", report::assets_text());
            Ok(())
        }
    }
}

fn print_run(run: &RunRecord, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(run)?);
    } else {
        print!("{}", report::run_text(run));
    }
    Ok(())
}

async fn demo(config: &Config, data: Vec<String>, rows: u64) -> anyhow::Result<()> {
    let platform = Platform::build(config)?;
    let inputs = if data.is_empty() {
        let out = PathBuf::from("./data/generated");
        println!(
            "no --data given: generating {rows} synthetic rows into {}",
            out.display()
        );
        generate(&GenerateArgs {
            rows,
            seed: 42,
            start: chrono::NaiveDate::from_ymd_opt(2010, 12, 1).expect("valid date"),
            days: 365,
            out: out.clone(),
        })?;
        vec![out.display().to_string()]
    } else {
        data
    };
    let progress = TerminalProgress::new();
    let ingestion = platform.ingest.ingest_paths(&inputs, &progress).await?;
    print!("{}", report::run_text(&ingestion));
    let run = platform
        .pipeline
        .run(RunOptions::default(), &progress)
        .await?;
    print!("{}", report::run_text(&run));
    print!("{}", report::summary_text(&platform).await?);
    if platform.pipeline.reconciliation().await?.bronze == 0 {
        bail!("the lake holds no data: the inputs had no records");
    }
    Ok(())
}
