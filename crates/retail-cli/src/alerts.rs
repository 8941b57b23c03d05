//! `retail alerts`: what the alert manager tracks, acknowledgements and silences, on the
//! metadata store the configuration names (the same state `retail serve` and its API use).

use clap::Subcommand;
use retail_app::App;
use retail_services::alerts::SilenceRequest;

#[derive(Debug, Subcommand)]
pub(crate) enum AlertsCommand {
    /// The alerts the manager tracks (firing first) and the active silences.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an alert: a critical alert acknowledged before its route's escalation time
    /// does not go to the next tier.
    Ack {
        /// The alert's fingerprint (from `retail alerts list`).
        fingerprint: String,
        /// Who acknowledges (default: cli:$USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Silence the alerts matching every --matcher for --minutes, or end a silence now
    /// (--expire ID).
    Silence {
        /// `name="value"`, `name!="value"` or `name=~"a|b"`; repeat for more (all must match).
        #[arg(long = "matcher", required_unless_present = "expire")]
        matchers: Vec<String>,
        /// How long, in minutes (1 to 43200).
        #[arg(long, default_value_t = 60)]
        minutes: u32,
        /// Why (required for a new silence).
        #[arg(long, required_unless_present = "expire", default_value = "")]
        comment: String,
        /// Who silences (default: cli:$USER).
        #[arg(long)]
        by: Option<String>,
        /// End the silence of this id now instead.
        #[arg(long, conflicts_with_all = ["matchers"])]
        expire: Option<String>,
    },
}

fn who(by: Option<String>) -> String {
    by.unwrap_or_else(|| {
        std::env::var("USER").map_or_else(|_| "cli".to_owned(), |user| format!("cli:{user}"))
    })
}

/// Runs one `retail alerts` command.
pub(crate) async fn run(app: &App, command: AlertsCommand) -> anyhow::Result<()> {
    let alerts = &app.services.alerts;
    match command {
        AlertsCommand::List { json } => {
            let tracked = alerts.alerts().await?;
            let silences = alerts.silences().await?;
            if json {
                let both = serde_json::json!({ "alerts": tracked, "silences": silences });
                println!("{}", serde_json::to_string_pretty(&both)?);
                return Ok(());
            }
            if tracked.is_empty() {
                println!("no alerts");
            }
            for alert in &tracked {
                let state = match (alert.muted, &alert.acknowledged_by) {
                    (Some(muted), _) => format!("{} ({muted})", alert.status),
                    (None, Some(by)) => format!("{} (acknowledged by {by})", alert.status),
                    (None, None) => alert.status.to_owned(),
                };
                println!(
                    "{}  {:<22} {:<8} {:<22} since {}  → {}{}",
                    alert.fingerprint,
                    alert.labels.get("alertname").map_or("", String::as_str),
                    alert.labels.get("severity").map_or("", String::as_str),
                    state,
                    alert.starts_at.format("%Y-%m-%d %H:%M UTC"),
                    alert.receiver.as_deref().unwrap_or("(no route)"),
                    if alert.escalated { ", escalated" } else { "" },
                );
                if let Some(summary) = alert.annotations.get("summary") {
                    println!("    {summary}");
                }
            }
            for silence in &silences {
                println!(
                    "silence {}  {}  until {}  by {}: {}",
                    silence.id,
                    silence.matchers.join(", "),
                    silence.ends_at.format("%Y-%m-%d %H:%M UTC"),
                    silence.created_by,
                    silence.comment
                );
            }
            Ok(())
        }
        AlertsCommand::Ack { fingerprint, by } => {
            let alert = alerts.acknowledge(&fingerprint, &who(by)).await?;
            println!(
                "acknowledged {} ({})",
                alert.fingerprint,
                alert.labels.get("alertname").map_or("", String::as_str)
            );
            Ok(())
        }
        AlertsCommand::Silence {
            matchers,
            minutes,
            comment,
            by,
            expire,
        } => {
            if let Some(id) = expire {
                alerts.expire_silence(&id).await?;
                println!("silence {id} expired");
                return Ok(());
            }
            let silence = alerts
                .silence(
                    SilenceRequest {
                        matchers,
                        minutes,
                        comment,
                    },
                    &who(by),
                )
                .await?;
            println!(
                "silence {} until {}",
                silence.id,
                silence.ends_at.format("%Y-%m-%d %H:%M UTC")
            );
            Ok(())
        }
    }
}
