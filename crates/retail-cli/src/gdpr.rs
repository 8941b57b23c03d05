//! `retail gdpr`: erase a customer everywhere, and read the reports the audit trail keeps.

use clap::Subcommand;
use retail_app::{App, Config, Role};
use retail_services::ErasureReport;

#[derive(Debug, Subcommand)]
pub(crate) enum GdprCommand {
    /// Erase a customer everywhere: bronze (raw text of malformed rows too), silver,
    /// quarantine, duplicates, changes, gold and its history, the models' per-customer tables,
    /// the warehouse, the search index; then the files and log entries that held them, so time
    /// travel cannot bring them back. Prints the report (also kept in the audit trail). Run it
    /// again for the same customer to finish an erasure that stopped half-way.
    Forget {
        /// The customer's id as the data has it (17850; 17850.0 is the same customer).
        #[arg(long)]
        customer: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The report of one erasure request.
    Status {
        /// The request's id (erasure-...), as `forget` printed it.
        request: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The latest erasure requests, newest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `retail gdpr` command.
pub(crate) async fn run(command: GdprCommand, config: Config) -> anyhow::Result<()> {
    let app = App::build(config, Role::Cli).await?;
    let gdpr = &app.services.gdpr;
    match command {
        GdprCommand::Forget { customer, json } => {
            let (actor, source) = crate::audit::who_and_where();
            eprintln!("erasing the customer (silver, lake, gold, followers, history) ...");
            let report = gdpr.forget(&customer, &actor, &source).await?;
            print_report(&report, json)?;
        }
        GdprCommand::Status { request, json } => {
            let Some(report) = gdpr.erasure(&request).await? else {
                anyhow::bail!("no erasure request {request:?}: `retail gdpr list` shows them");
            };
            print_report(&report, json)?;
            if report.status != "succeeded" {
                anyhow::bail!(
                    "the erasure failed: run `retail gdpr forget` for the same customer again"
                );
            }
        }
        GdprCommand::List { limit, json } => {
            let reports = gdpr.erasures(limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else if reports.is_empty() {
                println!("no erasure requests");
            } else {
                for report in reports {
                    println!(
                        "{}  {}  {:<9}  {:>7.1} s  {}",
                        report.request_id,
                        report.started_at,
                        report.status,
                        report.seconds,
                        report.requested_by
                    );
                }
            }
        }
    }
    Ok(())
}

fn print_report(report: &ErasureReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!("request        {}", report.request_id);
    println!("status         {}", report.status);
    if let Some(error) = &report.error {
        println!("error          {error}");
    }
    println!(
        "requested by   {} at {}",
        report.requested_by, report.started_at
    );
    if let Some(subject) = &report.subject {
        println!("subject        {subject} (keyed hash)");
    }
    println!("took           {:.1} s", report.seconds);
    println!("rows removed");
    let version = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    for table in &report.tables {
        println!(
            "  {:<42} {:>7}  version {} -> {}",
            table.table,
            table.rows,
            version(table.version_before),
            version(table.version_after)
        );
    }
    for follower in &report.followers {
        println!("  {:<42} {:>7}", follower.follower, follower.rows);
    }
    println!("rebuilt by runs {}", report.runs.join(", "));
    println!(
        "history purged {} data files ({} bytes), {} log files in {} tables",
        report.files_removed,
        report.bytes_removed,
        report.log_files_removed,
        report.purged.len()
    );
    Ok(())
}
