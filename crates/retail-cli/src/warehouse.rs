//! `retail warehouse ...` and `retail migrate`: the warehouse from the command line.

use std::fmt::Write as _;

use clap::{Subcommand, ValueEnum};
use retail_app::warehouses::{self, Status};
use retail_app::{App, Config, Role};
use retail_services::RunRequest;
use retail_warehouse::{Backend, Catalogue, Params, QueryResult};

use crate::progress::TerminalProgress;

/// `retail warehouse ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum WarehouseCommand {
    /// Load gold into the PostgreSQL warehouse (warehouse.backend = postgres): runs the asset
    /// `warehouse/postgres` alone, recorded like any run.
    ///
    /// Applies pending migrations first. Tables whose gold version is already loaded are skipped;
    /// fact_sales, daily_sales and product_monthly rewrite only the days (months) whose content
    /// changed; the rest are replaced. One transaction: a failed load leaves the previous state.
    /// The materialized views are then refreshed concurrently. `retail pipeline run` does this
    /// after gold when the backend is postgres.
    Load {
        /// Print the load report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What the warehouse holds: migrations, partitions, indexes, views and the loaded gold
    /// versions (PostgreSQL), or the gold versions it reads (embedded).
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a query of the catalogue, e.g.
    /// `retail warehouse query top_products -p from=2011-01-01 -p limit=5`.
    Query {
        /// The query's name (see `retail warehouse catalogue`).
        name: String,
        /// A parameter as NAME=VALUE; repeat for several.
        #[arg(short = 'p', long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Run on this backend instead of the configured one.
        #[arg(long, value_enum)]
        backend: Option<BackendArg>,
        /// Print rows as JSON (money rounded to cents, as the API serves it).
        #[arg(long)]
        json: bool,
    },
    /// List the queries of the catalogue and their parameters.
    Catalogue,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum BackendArg {
    Embedded,
    Postgres,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

/// `retail migrate`.
pub(crate) async fn migrate(config: Config) -> anyhow::Result<()> {
    let schema = &config.warehouse.postgres_schema;
    match warehouses::migrate(&config).await? {
        None => println!(
            "the embedded warehouse has no schema to migrate (warehouse.backend = embedded)"
        ),
        Some(applied) if applied.is_empty() => println!("warehouse schema {schema} is up to date"),
        Some(applied) => println!("applied migrations {applied:?} to schema {schema}"),
    }
    Ok(())
}

/// A warehouse load's report (an asset's detail) for a terminal.
pub(crate) fn load_text(report: &serde_json::Value) -> String {
    let mut out = String::new();
    let Some(tables) = report.get("tables").and_then(serde_json::Value::as_array) else {
        return out;
    };
    let number = |value: &serde_json::Value, key: &str| {
        value
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let _ = writeln!(
        out,
        "    load: {:.2} s (copy {:.2} s)",
        report
            .get("seconds")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0),
        report
            .get("copy_seconds")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    );
    for table in tables {
        let action = table
            .get("action")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        let detail = match action {
            "slices" => format!(
                "{} of {} slices rewritten, {} rows deleted, {} copied ({} of gold read)",
                number(table, "slices_rewritten"),
                number(table, "slices"),
                number(table, "rows_deleted"),
                number(table, "rows_copied"),
                number(table, "rows_read")
            ),
            "replaced" => format!("replaced: {} rows", number(table, "rows_copied")),
            other => other.to_owned(),
        };
        let _ = writeln!(
            out,
            "      {:<18} gold v{:<4} {detail}",
            table
                .get("table")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(""),
            number(table, "gold_version")
        );
    }
    if let Some(created) = report
        .get("partitions_created")
        .and_then(serde_json::Value::as_array)
        .filter(|p| !p.is_empty())
    {
        let names: Vec<&str> = created
            .iter()
            .filter_map(serde_json::Value::as_str)
            .collect();
        let _ = writeln!(out, "      partitions created: {}", names.join(", "));
    }
    out
}

/// `retail warehouse ...`.
pub(crate) async fn run(command: WarehouseCommand, config: Config) -> anyhow::Result<()> {
    match command {
        WarehouseCommand::Load { json } => {
            if config.warehouse.backend != Backend::Postgres {
                println!(
                    "the embedded warehouse reads gold directly: nothing to load \
                     (set warehouse.backend = postgres to load PostgreSQL)"
                );
                return Ok(());
            }
            let app = App::build(config, Role::Cli).await?;
            let run = app
                .services
                .pipeline
                .run(
                    RunRequest {
                        assets: vec!["warehouse/postgres".to_owned()],
                        force: false,
                        requested_by: "cli".to_owned(),
                        ..RunRequest::default()
                    },
                    &TerminalProgress::new(),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                print!("{}", crate::report::run_text(&run));
            }
            Ok(())
        }
        WarehouseCommand::Status { json } => status(&config, json).await,
        WarehouseCommand::Query {
            name,
            params,
            backend,
            json,
        } => {
            let query = Catalogue::get(&name)?;
            let params =
                Params::parse(query, params.iter().map(|(n, v)| (n.as_str(), v.as_str())))?;
            let backend = match backend {
                Some(BackendArg::Embedded) => Backend::Embedded,
                Some(BackendArg::Postgres) => Backend::Postgres,
                None => config.warehouse.backend,
            };
            let started = std::time::Instant::now();
            let result = warehouses::open(&config, backend)
                .await?
                .query(query, &params)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                print!("{}", table_text(&result));
                eprintln!(
                    "{} rows from the {backend} warehouse in {:.1} ms",
                    result.rows.len(),
                    started.elapsed().as_secs_f64() * 1000.0
                );
            }
            Ok(())
        }
        WarehouseCommand::Catalogue => {
            for query in Catalogue::queries() {
                println!("{}\n    {}", query.name, query.description);
                for param in query.params {
                    let default = param
                        .default
                        .map(|d| format!(" (default {d})"))
                        .unwrap_or_default();
                    let required = if param.required { " (required)" } else { "" };
                    println!(
                        "    -p {}=<{}>{required}{default}: {}",
                        param.name, param.kind, param.description
                    );
                }
            }
            Ok(())
        }
    }
}

async fn status(config: &Config, json: bool) -> anyhow::Result<()> {
    match warehouses::status(config).await? {
        Status::Embedded { gold_versions } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"backend": "embedded", "gold_versions": gold_versions})
                );
            } else {
                println!("embedded warehouse over gold (versions {gold_versions:?})");
            }
        }
        Status::Postgres(objects) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&objects)?);
                return Ok(());
            }
            println!(
                "PostgreSQL schema {} (migrations {:?})",
                config.warehouse.postgres_schema,
                objects.migrations.iter().map(|m| m.0).collect::<Vec<_>>()
            );
            println!("loaded from gold:");
            for (table, version, rows) in &objects.loaded {
                println!("  {table:<18} gold v{version:<4} {rows} rows");
            }
            println!("fact_sales partitions:");
            for (name, bound) in &objects.partitions {
                println!("  {name:<22} {bound}");
            }
            println!("indexes:");
            for (_, definition) in &objects.indexes {
                println!("  {definition}");
            }
            println!(
                "materialized views:{}",
                if objects.views_current {
                    ""
                } else {
                    " (behind the loaded tables: the next load refreshes them)"
                }
            );
            for (name, populated) in &objects.views {
                println!(
                    "  {name}{}",
                    if *populated { "" } else { " (not populated)" }
                );
            }
        }
    }
    Ok(())
}

/// A result as an aligned text table.
pub(crate) fn table_text(result: &QueryResult) -> String {
    let cells: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| row.iter().map(ToString::to_string).collect())
        .collect();
    let widths: Vec<usize> = result
        .columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([name.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |values: &[String], out: &mut String| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&result.columns, &mut out);
    line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
        &mut out,
    );
    for row in &cells {
        line(row, &mut out);
    }
    out
}
