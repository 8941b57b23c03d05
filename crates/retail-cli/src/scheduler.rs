//! `retail scheduler`: run the schedules and sensors of `[scheduler]` apart from the API, look
//! at them, or run one tick now.

use clap::Subcommand;
use retail_app::{App, Config, Role};
use retail_services::scheduler::{SchedulerStatus, TickReport};

#[derive(Debug, Subcommand)]
pub(crate) enum SchedulerCommand {
    /// The schedules (last and next tick), the sensors (files by state, pending runs) and who
    /// holds the scheduler's lease.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Take the lease, look at every schedule and sensor once, run what is due (waiting for
    /// it), and release the lease: for a system cron, or to see what a tick would do.
    Tick {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `retail scheduler` (no subcommand: the loop until SIGTERM or Ctrl-C) or one of its
/// subcommands.
pub(crate) async fn run(config: Config, command: Option<SchedulerCommand>) -> anyhow::Result<()> {
    match command {
        None => {
            if config.scheduler.schedules.is_empty() && config.scheduler.sensors.is_empty() {
                anyhow::bail!(
                    "[scheduler] has no schedules and no sensors: nothing to run (see \
                     config/retail.example.toml)"
                );
            }
            let app = App::build(config, Role::Server).await?;
            eprintln!(
                "running {} schedule(s) and {} sensor(s) while this process holds the \
                 scheduler's lease; Ctrl-C stops",
                app.config.scheduler.schedules.len(),
                app.config.scheduler.sensors.len()
            );
            app.schedule_until(retail_app::shutdown_signal()).await
        }
        Some(SchedulerCommand::Status { json }) => {
            let app = App::build(config, Role::Cli).await?;
            let status = app.services.scheduler.status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(())
        }
        Some(SchedulerCommand::Tick { json }) => {
            let app = App::build(config, Role::Cli).await?;
            let scheduler = &app.services.scheduler;
            let holder = retail_app::scheduling::holder_name();
            if !scheduler.hold_lease(&holder).await? {
                let status = scheduler.status().await?;
                let by = status.lease.map(|l| l.holder).unwrap_or_default();
                anyhow::bail!(
                    "another scheduler holds the lease ({by}); it runs the schedules and sensors"
                );
            }
            let report = scheduler.tick().await;
            scheduler.release_lease(&holder).await?;
            let report = report?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_tick(&report);
            }
            Ok(())
        }
    }
}

fn print_status(status: &SchedulerStatus) {
    match (&status.lease, status.lease_held) {
        (Some(lease), true) => println!(
            "lease: held by {} since {} (until {})",
            lease.holder,
            lease.acquired_at.format("%Y-%m-%d %H:%M:%S UTC"),
            lease.expires_at.format("%H:%M:%S UTC")
        ),
        (Some(lease), false) => println!("lease: free (lapsed; last held by {})", lease.holder),
        (None, _) => println!("lease: free"),
    }
    if status.schedules.is_empty() && status.sensors.is_empty() {
        println!("no schedules and no sensors ([scheduler] in the configuration)");
    }
    let time = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(
            || "-".to_owned(),
            |at| at.format("%Y-%m-%d %H:%M UTC").to_string(),
        )
    };
    for schedule in &status.schedules {
        println!(
            "schedule {:<16} {:<14} {:<16} catch-up {:<5} last {}  next {}  assets {}",
            schedule.name,
            schedule.cron,
            schedule.timezone,
            schedule.catch_up,
            time(schedule.last_tick),
            time(schedule.next_tick),
            assets(&schedule.assets)
        );
    }
    for sensor in &status.sensors {
        let files: Vec<String> = sensor
            .files
            .iter()
            .map(|(state, count)| format!("{count} {state}"))
            .collect();
        println!(
            "sensor   {:<16} {:?} {}  assets {}{}{}",
            sensor.name,
            sensor.kind,
            sensor.watches,
            assets(&sensor.assets),
            if files.is_empty() {
                String::new()
            } else {
                format!("  files: {}", files.join(", "))
            },
            if sensor.run_pending {
                "  (run pending)"
            } else {
                ""
            }
        );
        for failed in &sensor.failed_files {
            println!("         failed {}: {}", failed.file, failed.error);
        }
    }
}

fn assets(assets: &[String]) -> String {
    if assets.is_empty() {
        "(all)".to_owned()
    } else {
        assets.join(",")
    }
}

fn print_tick(report: &TickReport) {
    if report.runs.is_empty() && report.ingested_files.is_empty() && report.failed_files.is_empty()
    {
        println!("nothing was due");
    }
    for file in &report.ingested_files {
        println!("ingested {file}");
    }
    for (file, error) in &report.failed_files {
        println!("failed   {file}: {error}");
    }
    for (by, run, status) in &report.runs {
        println!("run {run} ({by}): {}", status.as_str());
    }
    if report.passed_over > 0 {
        println!(
            "{} missed tick(s) passed over by the catch-up rules",
            report.passed_over
        );
    }
    for by in &report.deferred {
        println!("deferred {by}: another run or ingestion held the pipeline");
    }
    for problem in &report.problems {
        println!("problem: {problem}");
    }
}
