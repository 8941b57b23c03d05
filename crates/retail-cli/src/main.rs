//! `retail`: the one binary of the retail data platform.

mod alerts;
mod api;
mod audit;
mod bench;
mod gdpr;
mod models;
mod progress;
mod report;
mod scheduler;
mod search;
mod stream;
mod warehouse;

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use retail_app::{App, Config, Role};
use retail_ingest::generate::{GenerateOptions, planted_anomalies, write_daily_csv_files};
use retail_services::{RunKind, RunRecord, RunRequest, RunStatus};
use retail_telemetry::tracing_setup;

use crate::progress::TerminalProgress;

/// mimalloc, set up by [`retail_alloc::configure`] for the command's lifetime: long-running
/// ones hand freed memory back at once (see ADR 0006).
#[global_allocator]
static GLOBAL: retail_alloc::Allocator = retail_alloc::Allocator;

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
    /// Land CSV, JSON, JSON-lines, XLSX or Parquet files in bronze.
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
    /// The models trained on gold: forecasts, anomalies, customer lifetime value.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// The search index of products, customers and invoices.
    #[command(subcommand)]
    Search(SearchCommand),
    /// Recommendations: association rules, item-to-item, "for you".
    #[command(subcommand)]
    Recommend(RecommendCommand),
    /// Alerts: list what fires, acknowledge, silence.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// The audit trail: verify its chain, read it.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// GDPR: erase a customer everywhere, read the erasures' reports.
    #[command(subcommand)]
    Gdpr(gdpr::GdprCommand),
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
    /// Lake maintenance.
    #[command(subcommand)]
    Lake(LakeCommand),
    /// Consume streams (Kafka topics, RabbitMQ queues and streams) into bronze, exactly once.
    #[command(subcommand)]
    Stream(Box<stream::StreamCommand>),
    /// Serve the HTTP API (health, readiness, metrics, OpenAPI and docs, auth, analytics).
    ///
    /// Listens on api.listen (127.0.0.1:8080) unless --listen says otherwise; stops gracefully
    /// on SIGTERM or Ctrl-C. Create the first admin with `retail users create`.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run the cron schedules and sensors of [scheduler] apart from the API (while this process
    /// holds the scheduler's lease, until SIGTERM or Ctrl-C), or look at them, or run one tick.
    ///
    /// `retail serve` runs them too (scheduler.enabled); with several processes, the one
    /// holding the lease in the metadata store runs them and another takes over within
    /// scheduler.lease_seconds plus a tick when it dies.
    Scheduler {
        #[command(subcommand)]
        command: Option<scheduler::SchedulerCommand>,
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
    /// Bring the assets up to date: silver with bronze, gold with silver, then every follower
    /// of gold (the PostgreSQL warehouse when that is the backend). Incremental; does nothing
    /// when current.
    Run {
        /// Which stage to run: silver alone, gold and its followers, or everything.
        #[arg(long, value_enum, default_value_t = StageArg::All)]
        stage: StageArg,
        /// Run exactly these assets instead (see `retail pipeline assets`); repeatable.
        #[arg(long = "asset", value_name = "KEY", conflicts_with = "stage")]
        assets: Vec<String>,
        /// Rebuild every gold table from all of silver (and reload its followers), even when
        /// it is current.
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
        /// Only runs that ended so (or are still running).
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only runs that went through this asset (gold: the asset or a table it writes), or
        /// recorded this table or follower.
        #[arg(long)]
        asset: Option<String>,
        /// Who asked, exactly (cli, api:alice, schedule:nightly), or a prefix ending with ':'.
        #[arg(long)]
        requested_by: Option<String>,
        /// Started at or after this time (UTC, e.g. 2026-12-02T11:30:24Z).
        #[arg(long, value_parser = parse_utc)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Started before this time (UTC).
        #[arg(long, value_parser = parse_utc)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Only runs that built this invoice month of gold (2011-03): incremental and backfill
        /// runs that recomputed it, full builds, and backfills that asked for it.
        #[arg(long, value_parser = parse_month)]
        partition: Option<String>,
        /// The next page: runs after this run id (the last one printed).
        #[arg(long)]
        before: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The asset graph: every asset, what it is computed from and the tables it writes.
    Assets,
    /// Re-materialise gold's invoice months (and then the assets downstream of gold).
    ///
    /// The months are taken in order, --partitions-per-run at a time, each group one pipeline
    /// run of gold that rebuilds those months (its checks evaluated as in any run); each
    /// month's state is recorded (`retail pipeline partitions --backfill ID`). A failed run
    /// stops the backfill: fix the cause and `--resume ID` takes every month not yet done.
    /// Holds the pipeline while it runs. Exits with 1 when the backfill fails.
    Backfill {
        /// The first invoice month (YYYY-MM).
        #[arg(long, value_parser = parse_month, requires = "to", required_unless_present = "resume")]
        from: Option<String>,
        /// The last invoice month, included (YYYY-MM).
        #[arg(long, value_parser = parse_month, requires = "from")]
        to: Option<String>,
        /// Months per pipeline run: more is faster, fewer is finer when a run fails.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=120))]
        partitions_per_run: u32,
        /// Take up the failed backfill with this id instead.
        #[arg(long, value_name = "ID", conflicts_with_all = ["from", "to"])]
        resume: Option<String>,
        /// Print the backfill's record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Partitions, in order, a page at a time: gold's invoice months (each with the run that
    /// last built it and its fact rows) or a backfill's (each with its state).
    Partitions {
        /// A backfill's months instead of gold's.
        #[arg(long, value_name = "ID")]
        backfill: Option<String>,
        /// Only partitions in this state.
        #[arg(long, value_enum)]
        status: Option<PartitionStatusArg>,
        /// The next page: partitions after this one (the last one printed).
        #[arg(long, value_parser = parse_month)]
        after: Option<String>,
        /// How many to show (1 to 1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Column-level lineage: from the source columns through bronze, silver and gold to the
    /// warehouse, the catalogue queries and the API answers that use them.
    ///
    /// With no argument: every dataset and its columns. With a dataset (gold.fact_sales): the
    /// edges into and out of its columns. With a column, DATASET.COLUMN
    /// (gold.fact_sales.total_amount, api/v1/sales.rows.total_amount): what it is made from
    /// and what is made from it, nearest first. DIRECT edges carry values (IDENTITY,
    /// TRANSFORMATION, AGGREGATION); INDIRECT ones decide rows (FILTER, JOIN, GROUP_BY, SORT,
    /// WINDOW, CONDITIONAL), and an edge into `*` decides the rows of the whole dataset.
    Lineage {
        /// A column (DATASET.COLUMN) or a dataset.
        target: Option<String>,
        /// Which way: what it is made from, what is made from it, or both (for a dataset: the
        /// edges into its columns, out of them, or both).
        #[arg(long, value_enum, default_value_t = DirectionArg::Both)]
        direction: DirectionArg,
        /// With a column: only edges this many steps away or nearer.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        depth: Option<u32>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DirectionArg {
    Upstream,
    Downstream,
    Both,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PartitionStatusArg {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// An invoice month as the command line takes it: `2011-03`.
fn parse_month(text: &str) -> Result<String, String> {
    retail_services::invoice_month(text)
        .map(|_| text.to_owned())
        .map_err(|error| error.to_string())
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
    Backfill,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum StatusArg {
    Running,
    Succeeded,
    UpToDate,
    Failed,
}

/// A time in UTC as the audit trail writes it.
fn parse_utc(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    retail_domain::audit::parse_utc_time(text)
        .ok_or_else(|| format!("{text:?} is not a time in UTC such as 2026-12-02T11:30:24Z"))
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// The newest models: registry, every series' backtest beside the seasonal naive
    /// baseline, the top anomalies, the customer models' parameters and holdout check.
    Report {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Anomalies listed (largest score first).
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
}

#[derive(Debug, Subcommand)]
enum SearchCommand {
    /// Rebuild the index from gold from scratch (every pipeline run updates it incrementally).
    Rebuild {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Search, as `GET /api/v1/search` does.
    Query {
        /// The words.
        q: String,
        /// product, customer or invoice.
        #[arg(long = "type", default_value = "product")]
        kind: String,
        /// keyword, semantic or hybrid.
        #[arg(long, default_value = "keyword")]
        mode: String,
        /// Only this country.
        #[arg(long)]
        country: Option<String>,
        /// Results (1 to 100).
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// The cursor a previous page printed.
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure semantic search's nearest-neighbour lookup, exact and through the IVF index, on
    /// catalogues grown from the trained embeddings (real products plus noisy copies): latency
    /// p50/p99, build time, and the IVF index's recall. This is what chose `search.ann_above`.
    BenchVectors {
        /// Catalogue sizes (products), comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "4000,16000,32000,64000,256000"
        )]
        sizes: Vec<usize>,
        /// Noise of a grown product around the real one it copies (per-vector norm).
        #[arg(long, default_value_t = 0.5)]
        noise: f32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RecommendCommand {
    /// Hit rate and NDCG of "for you" on held-out purchases, beside the best-seller baseline:
    /// train on purchases up to --cutoff, recommend --k products to every customer who bought
    /// something new until --until, count those they bought.
    Evaluate {
        /// Last day of training.
        #[arg(long, default_value = "2011-09-30")]
        cutoff: chrono::NaiveDate,
        /// Last day of the held-out period.
        #[arg(long, default_value = "2011-12-31")]
        until: chrono::NaiveDate,
        /// Products recommended per customer.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
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
    /// Trading days made unusual on purpose, to validate anomaly detection (a surge, a drop
    /// or a burst of bad rows, in turn); printed with their dates.
    #[arg(long, default_value_t = 0)]
    anomaly_days: u32,
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
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    retail_alloc::configure(lifetime(&cli.command));
    let audited = audit::action_of(&matches);
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
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
    // Settings that name where their secret lives (file:, env:, aws-sm:) are read now, once.
    let config = if config.has_secret_references() {
        match runtime.block_on(config.resolve_secrets()) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("error: {error:#}");
                return std::process::ExitCode::from(2);
            }
        }
    } else {
        config
    };
    // Inside the runtime: a gRPC span exporter keeps its connection on it.
    let options = config
        .telemetry
        .options(cli.log_level.clone(), std::io::stderr().is_terminal());
    let _spans = match runtime.block_on(async { tracing_setup::init(&options) }) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        let result = Box::pin(run(cli.command, config.clone())).await;
        if let Some(action) = audited {
            audit::record_command(&config, action, &result).await;
        }
        result
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Whether a command runs for hours (memory freed goes back to the system at once) or does one
/// piece of work and exits (ADR 0006).
fn lifetime(command: &Command) -> retail_alloc::Lifetime {
    match command {
        Command::Serve { .. }
        | Command::Scheduler { command: None }
        | Command::Demo { .. }
        | Command::Stream(_) => retail_alloc::Lifetime::LongRunning,
        _ => retail_alloc::Lifetime::Batch,
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Config(ConfigCommand::Print) => {
            print!("{}", config.to_masked_toml());
            Ok(())
        }
        Command::Config(ConfigCommand::Check) => {
            let app = App::build(config, Role::Cli).await?;
            println!("configuration is valid");
            println!("lake root       {}", app.lake.root());
            println!(
                "metadata store  {} ({})",
                app.store.location(),
                app.store.backend()
            );
            println!("warehouse       {}", app.warehouse.backend());
            Ok(())
        }
        Command::Generate(args) => generate(&args),
        Command::Ingest { paths, json } => {
            let app = App::build(config, Role::Cli).await?;
            let run = app
                .services
                .ingest
                .ingest_files(&paths, "cli", &TerminalProgress::new())
                .await?;
            print_run(&run, json)
        }
        Command::Pipeline(command) => pipeline(command, config).await,
        Command::Alerts(command) => {
            let app = App::build(config, Role::Cli).await?;
            alerts::run(&app, command).await
        }
        Command::Audit(command) => audit::run(command, config).await,
        Command::Gdpr(command) => gdpr::run(command, config).await,
        Command::Models(ModelsCommand::Report { json, top }) => {
            let app = App::build(config, Role::Cli).await?;
            models::report(&app, json, top).await
        }
        Command::Search(SearchCommand::Rebuild { json }) => {
            let app = App::build(config, Role::Cli).await?;
            search::rebuild(&app, json).await
        }
        Command::Search(SearchCommand::BenchVectors { sizes, noise, json }) => {
            let app = App::build(config, Role::Cli).await?;
            search::bench_vectors(&app, &sizes, noise, json).await
        }
        Command::Search(SearchCommand::Query {
            q,
            kind,
            mode,
            country,
            limit,
            cursor,
            json,
        }) => {
            let app = App::build(config, Role::Cli).await?;
            let query = retail_services::search::SearchQuery {
                q,
                kind: Some(kind),
                mode: Some(mode),
                country,
                limit: Some(limit),
                cursor,
                ..Default::default()
            };
            search::query(&app, query, json).await
        }
        Command::Recommend(RecommendCommand::Evaluate {
            cutoff,
            until,
            k,
            json,
        }) => {
            let app = App::build(config, Role::Cli).await?;
            search::evaluate(&app, cutoff, until, k, json).await
        }
        Command::Quality(QualityCommand::Report { run, json, output }) => {
            let app = App::build(config, Role::Cli).await?;
            report::quality_report(&app, run.as_deref(), json, output.as_deref()).await
        }
        Command::Demo {
            data,
            rows,
            no_serve,
        } => {
            if !no_serve {
                api::serving_address(&config, None)?;
            }
            demo(config.clone(), data, rows).await?;
            if no_serve {
                return Ok(());
            }
            api::serve_demo(config).await
        }
        Command::Bench(args) => Box::pin(bench::run(&config, &args)).await,
        Command::Warehouse(command) => warehouse::run(command, config).await,
        Command::Migrate => warehouse::migrate(config).await,
        Command::Lake(LakeCommand::Vacuum {
            retention_hours,
            dry_run,
            json,
        }) => vacuum(&config, retention_hours, dry_run, json).await,
        Command::Lake(LakeCommand::Keys(command)) => lake_keys(&config, command).await,
        Command::Stream(command) => Box::pin(stream::stream(*command, config)).await,
        Command::Serve { listen } => api::serve(config, listen).await,
        Command::Scheduler { command } => Box::pin(scheduler::run(config, command)).await,
        Command::Users(command) => api::users(command, config).await,
        Command::Keys(command) => api::keys(command, config).await,
    }
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let options = GenerateOptions {
        rows: args.rows,
        seed: args.seed,
        start: args.start,
        days: args.days,
        anomaly_days: args.anomaly_days,
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
    for planted in planted_anomalies(&options) {
        println!("planted anomaly: {} {:?}", planted.date, planted.kind);
    }
    Ok(())
}

/// The run request of `retail pipeline run`.
fn run_request(app: &App, stage: StageArg, assets: Vec<String>, force: bool) -> RunRequest {
    let assets = if !assets.is_empty() {
        assets
    } else {
        match stage {
            StageArg::All => Vec::new(),
            StageArg::Silver => vec!["silver".to_owned()],
            StageArg::Gold => app.services.pipeline.with_downstream("gold"),
        }
    };
    RunRequest {
        assets,
        force,
        requested_by: "cli".to_owned(),
        ..RunRequest::default()
    }
}

async fn pipeline(command: PipelineCommand, config: Config) -> anyhow::Result<()> {
    let app = App::build(config, Role::Cli).await?;
    let pipeline = &app.services.pipeline;
    match command {
        PipelineCommand::Run {
            stage,
            assets,
            force_gold,
            json,
        } => {
            let request = run_request(&app, stage, assets, force_gold);
            let run = pipeline.run(request, &TerminalProgress::new()).await?;
            print_run(&run, json)
        }
        PipelineCommand::Status { json } => {
            let status = pipeline.status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", report::status_text(&status));
            }
            Ok(())
        }
        PipelineCommand::Runs {
            limit,
            kind,
            status,
            asset,
            requested_by,
            since,
            until,
            partition,
            before,
            json,
        } => {
            let kind = kind.map(|kind| match kind {
                KindArg::Ingest => RunKind::Ingest,
                KindArg::Pipeline => RunKind::Pipeline,
                KindArg::Backfill => RunKind::Backfill,
            });
            let status = status.map(|status| match status {
                StatusArg::Running => RunStatus::Running,
                StatusArg::Succeeded => RunStatus::Succeeded,
                StatusArg::UpToDate => RunStatus::UpToDate,
                StatusArg::Failed => RunStatus::Failed,
            });
            let filter = retail_services::RunFilter {
                kind,
                status,
                assets: asset.into_iter().collect(),
                requested_by,
                since,
                until,
                partition,
                before,
                limit,
            };
            let runs = pipeline.runs(filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                print!("{}", report::runs_text(&runs));
            }
            Ok(())
        }
        PipelineCommand::Assets => {
            print!("{}", report::assets_text(&pipeline.assets()));
            Ok(())
        }
        PipelineCommand::Backfill {
            from,
            to,
            partitions_per_run,
            resume,
            json,
        } => {
            let progress = TerminalProgress::new();
            let backfill = match (resume, from, to) {
                (Some(id), _, _) => pipeline.resume_backfill(&id, "cli", &progress).await?,
                (None, Some(from), Some(to)) => {
                    let request = retail_services::BackfillRequest {
                        partitions: retail_services::months_between(&from, &to)?,
                        partitions_per_run,
                        requested_by: "cli".to_owned(),
                    };
                    pipeline.backfill(request, &progress).await?
                }
                _ => bail!("give --from and --to, or --resume ID"),
            };
            let summary = pipeline.backfill_summary(&backfill.run_id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", report::backfill_text(&summary));
            }
            if let Some(error) = &backfill.error {
                bail!(
                    "backfill {} failed: {error}\nfix the cause, then: retail pipeline backfill --resume {}",
                    backfill.run_id,
                    backfill.run_id
                );
            }
            Ok(())
        }
        PipelineCommand::Partitions {
            backfill,
            status,
            after,
            limit,
            json,
        } => {
            let scope = match backfill {
                Some(id) => retail_services::PartitionScope::Backfill(id),
                None => retail_services::PartitionScope::Asset("gold".to_owned()),
            };
            let status = status.map(|status| match status {
                PartitionStatusArg::Pending => retail_services::PartitionStatus::Pending,
                PartitionStatusArg::Running => retail_services::PartitionStatus::Running,
                PartitionStatusArg::Succeeded => retail_services::PartitionStatus::Succeeded,
                PartitionStatusArg::Failed => retail_services::PartitionStatus::Failed,
            });
            let filter = retail_services::PartitionFilter {
                status,
                after,
                limit: usize::try_from(limit).unwrap_or(1000),
            };
            let page = pipeline.partitions(scope, filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print!("{}", report::partitions_text(&page));
            }
            Ok(())
        }
        PipelineCommand::Lineage {
            target,
            direction,
            depth,
            json,
        } => lineage(&app, target, direction, depth, json).await,
    }
}

async fn lineage(
    app: &App,
    target: Option<String>,
    direction: DirectionArg,
    depth: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    use retail_domain::lineage::Direction;
    let service = &app.services.lineage;
    let Some(target) = target else {
        let lineage = service.lineage().await?;
        return emit(json, &*lineage, || {
            report::datasets_text(&lineage.datasets, lineage.edges.len())
        });
    };
    let direction = match direction {
        DirectionArg::Upstream => Direction::Upstream,
        DirectionArg::Downstream => Direction::Downstream,
        DirectionArg::Both => Direction::Both,
    };
    if service.lineage().await?.dataset(&target).is_some() {
        let (dataset, edges) = service.dataset(&target, direction).await?;
        return emit(json, &edges, || {
            report::dataset_edges_text(&dataset, &edges)
        });
    }
    let mut walk = service.column(&target, direction).await?;
    if let Some(depth) = depth {
        let depth = depth as usize;
        walk.upstream.retain(|hop| hop.hops <= depth);
        walk.downstream.retain(|hop| hop.hops <= depth);
    }
    emit(json, &walk, || report::column_lineage_text(&walk))
}

/// Prints `value` as JSON, or the text `text` makes.
fn emit<T: serde::Serialize + ?Sized>(
    json: bool,
    value: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text());
    }
    Ok(())
}

fn print_run(run: &RunRecord, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(run)?);
    } else {
        print!("{}", report::run_text(run));
    }
    Ok(())
}

/// `retail lake ...`.
#[derive(Debug, Subcommand)]
enum LakeCommand {
    /// Remove data files that no table version within the retention references.
    ///
    /// Files a rewrite removed from a table more than lake.vacuum_retention_hours (168) ago,
    /// and files no commit ever referenced (left by a failed write) older than that. Table
    /// versions and progress marks do not change; time travel to versions whose files are
    /// gone stops working. Pipeline runs end with the same vacuum (without the orphan search),
    /// at most once every 10 minutes, unless lake.vacuum_after_runs is false.
    Vacuum {
        /// Keep files removed less than this many hours ago (at least 1; default
        /// lake.vacuum_retention_hours).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        retention_hours: Option<u64>,
        /// Count what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the outcome per table as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The keys of the lake's encryption at rest (lake.encryption.master_key; ADR 0016).
    #[command(subcommand)]
    Keys(LakeKeysCommand),
}

/// `retail lake keys ...`.
#[derive(Debug, Subcommand)]
enum LakeKeysCommand {
    /// Print a new random master key (64 hex digits) to keep in a secret store and set as
    /// lake.encryption.master_key. Nothing is written.
    Generate,
    /// Show the lake's data keys: which is current and the fingerprint of the master key
    /// wrapping each (opening them all with the configured master keys).
    Status {
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a data key and make it current: files written from now on are sealed under it,
    /// older files stay readable under theirs. Running processes learn the new key from the
    /// first file they read under it.
    RotateDataKey,
    /// Wrap every data key under lake.encryption.master_key. Rotating the master key: set the
    /// new key as master_key and the old one in previous_master_keys on every process, run
    /// this, then remove the old key.
    Rewrap,
}

async fn lake_keys(config: &Config, command: LakeKeysCommand) -> anyhow::Result<()> {
    if let LakeKeysCommand::Generate = command {
        println!("{}", retail_lake::encryption::MasterKey::generate()?);
        return Ok(());
    }
    let lake = retail_app::open_lake(config).await?;
    let Some(keyring) = lake.keyring() else {
        anyhow::bail!("the lake is not encrypted: lake.encryption.master_key is not set");
    };
    match command {
        LakeKeysCommand::Generate => unreachable!("answered above"),
        LakeKeysCommand::Status { json } => {
            let status = keyring.status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
                return Ok(());
            }
            println!("master key {} (configured)", status.master);
            for (id, created, master) in &status.keys {
                let current = if *id == status.current {
                    " (current)"
                } else {
                    ""
                };
                println!("data key {id}{current}: made {created}, wrapped by master key {master}");
            }
        }
        LakeKeysCommand::RotateDataKey => {
            let id = keyring.rotate_data_key().await?;
            println!("data key {id} is now current; files written from now on are sealed under it");
        }
        LakeKeysCommand::Rewrap => {
            let count = keyring.rewrap().await?;
            let master = keyring.status().await?.master;
            println!(
                "{count} data keys wrapped anew; every data key is now wrapped by master key {master}"
            );
        }
    }
    Ok(())
}

async fn vacuum(
    config: &Config,
    retention_hours: Option<u64>,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let lake = retail_app::open_lake(config).await?;
    let mut settings = config.lake.clone();
    if let Some(hours) = retention_hours {
        settings.vacuum_retention_hours = hours;
    }
    let retention = settings.vacuum_retention();
    let tables = lake.vacuum_all(retention, true, dry_run).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tables)?);
        return Ok(());
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for table in tables.iter().filter(|t| t.files > 0) {
        println!(
            "{:<36} {verb} {} files, {:.1} MiB",
            table.table,
            table.files,
            table.bytes as f64 / 1_048_576.0
        );
    }
    let files: usize = tables.iter().map(|t| t.files).sum();
    let bytes: u64 = tables.iter().map(|t| t.bytes).sum();
    println!(
        "{verb} {files} files ({:.1} MiB) from {} tables, keeping files removed less than {} h ago",
        bytes as f64 / 1_048_576.0,
        tables.len(),
        retention.as_secs() / 3600
    );
    Ok(())
}

async fn demo(config: Config, data: Vec<String>, rows: u64) -> anyhow::Result<()> {
    let app = App::build(config, Role::Cli).await?;
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
            anomaly_days: 0,
            out: out.clone(),
        })?;
        vec![out.display().to_string()]
    } else {
        data
    };
    let progress = TerminalProgress::new();
    let ingestion = app
        .services
        .ingest
        .ingest_files(&inputs, "cli", &progress)
        .await?;
    print!("{}", report::run_text(&ingestion));
    let run = app
        .services
        .pipeline
        .run(
            RunRequest {
                requested_by: "cli".to_owned(),
                ..RunRequest::default()
            },
            &progress,
        )
        .await?;
    print!("{}", report::run_text(&run));
    print!("{}", report::summary_text(&app).await?);
    if run.detail.reconciliation.is_none_or(|r| r.bronze == 0) {
        bail!("the lake holds no data: the inputs had no records");
    }
    Ok(())
}
