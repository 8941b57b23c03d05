//! `retail audit`: verify the audit trail's chain and read it; and the audit of the command
//! line itself (every command that changes something is recorded with its outcome).

use anyhow::Context as _;
use clap::Subcommand;
use retail_app::{App, Config, Role};
use retail_domain::audit::{AuditEvent, Outcome, parse_head};
use retail_services::audit::AuditFilter;

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Prove the chain is intact: every entry's hash recomputed, every link and number checked.
    /// Prints the head (SEQ:HASH); keep it elsewhere and pass it as --expect-head later to
    /// prove nothing up to it was rewritten since. Exits 1 at the first altered or missing
    /// entry, naming it.
    Verify {
        /// A head an earlier verification printed, as SEQ:HASH.
        #[arg(long, value_parser = parse_head)]
        expect_head: Option<(i64, String)>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Entries of the trail, oldest first.
    List {
        /// Only this actor, exactly (user:alice, key:ID, cli:root, anonymous).
        #[arg(long)]
        actor: Option<String>,
        /// Only this action (auth.login), or an area ending with a dot (auth.).
        #[arg(long)]
        action: Option<String>,
        /// Only entries whose target holds this text (a customer id, a path).
        #[arg(long)]
        target: Option<String>,
        /// Only this outcome.
        #[arg(long, value_parser = ["success", "failure", "denied"])]
        outcome: Option<String>,
        /// Only entries recorded at or after this time, in UTC: 2026-12-02T11:30:24Z.
        #[arg(long, value_parser = utc_time)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only entries numbered above this.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn utc_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    retail_domain::audit::parse_utc_time(text).ok_or_else(|| {
        format!("{text:?} is not a time in UTC such as 2026-12-02T11:30:24Z (years 1900 to 2100)")
    })
}

/// Runs one `retail audit` command.
pub(crate) async fn run(command: AuditCommand, config: Config) -> anyhow::Result<()> {
    let app = App::build(config, Role::Cli).await?;
    let audit = &app.services.audit;
    match command {
        AuditCommand::Verify { expect_head, json } => {
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let check = audit
                .verify(expect_head, &|read| {
                    if terminal {
                        eprint!("\r{read} entries checked");
                    }
                })
                .await?;
            if terminal && check.verified > 0 {
                eprintln!();
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&check)?);
            } else {
                println!("entries verified  {}", check.verified);
                match &check.head {
                    Some((seq, hash)) => println!("head              {seq}:{hash}"),
                    None => println!("head              (the trail is empty)"),
                }
            }
            match check.problem {
                None => {
                    if !json {
                        println!("the chain is intact");
                    }
                    Ok(())
                }
                Some(problem) => anyhow::bail!("{problem}"),
            }
        }
        AuditCommand::List {
            actor,
            action,
            target,
            outcome,
            since,
            after,
            limit,
            json,
        } => {
            let filter = AuditFilter {
                after_seq: after,
                limit,
                actor,
                action,
                target_contains: target,
                outcome: outcome.as_deref().and_then(Outcome::parse),
                since,
                until: None,
            };
            for entry in audit.entries(&filter).await? {
                if json {
                    println!("{}", serde_json::to_string(&entry)?);
                } else {
                    println!(
                        "{:>6}  {}  {:<8} {:<20} {:<22} {}  ({})",
                        entry.seq,
                        entry.at,
                        entry.event.outcome.as_str(),
                        entry.event.actor,
                        entry.event.action,
                        entry.event.target,
                        entry.event.source
                    );
                }
            }
            Ok(())
        }
    }
}

/// Subcommands that only read or that work outside the platform (a scratch lake, generated
/// files): not audited. Every other command is, so a new command is audited unless it is
/// listed here.
const NOT_AUDITED: &[&str] = &[
    "config.print",
    "config.check",
    "lake.keys.generate",
    "lake.keys.status",
    "generate",
    "bench",
    "models.report",
    "search.query",
    "search.bench-vectors",
    "recommend.evaluate",
    "quality.report",
    "pipeline.status",
    "pipeline.runs",
    "pipeline.assets",
    "warehouse.query",
    "warehouse.status",
    "warehouse.catalogue",
    "stream.status",
    "alerts.list",
    "users.list",
    "keys.list",
    "audit.list",
    "audit.verify",
    // An erasure records its own entry (`gdpr.forget`, with its report): the command line
    // holds the customer's id, which the trail must not keep.
    "gdpr.forget",
    "gdpr.status",
    "gdpr.list",
    "serve",
];

/// The audit action of a command line (`cli.pipeline.run`), or `None` when it is not
/// audited.
pub(crate) fn action_of(matches: &clap::ArgMatches) -> Option<String> {
    let mut names = Vec::new();
    let mut at = matches;
    while let Some((name, sub)) = at.subcommand() {
        names.push(name);
        at = sub;
    }
    let path = names.join(".");
    (!path.is_empty() && !NOT_AUDITED.contains(&path.as_str())).then(|| format!("cli.{path}"))
}

/// The operating-system user and host running the command: `cli:<user>`, `cli@<host>`.
pub(crate) fn who_and_where() -> (String, String) {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    (
        format!("cli:{user}"),
        format!("cli@{}", retail_app::host_name()),
    )
}

/// Records a finished command in the audit trail of `config`'s metadata store (a SQLite store
/// the command never created is left uncreated). A trail that
/// cannot be written is reported on standard error (the command's own outcome stands).
pub(crate) async fn record_command(config: &Config, action: String, result: &anyhow::Result<()>) {
    // A command refused before it opened anything changed nothing and leaves no store behind.
    if !config.metadata.is_postgres() && !std::path::Path::new(&config.metadata.path).exists() {
        return;
    }
    let (actor, source) = who_and_where();
    let target = retail_domain::audit::truncated(
        &std::env::args().collect::<Vec<_>>().join(" "),
        retail_domain::audit::MAX_TARGET_BYTES,
    );
    let (outcome, detail) = match result {
        Ok(()) => (Outcome::Success, serde_json::json!({})),
        Err(error) => (
            Outcome::Failure,
            serde_json::json!({ "error": format!("{error:#}") }),
        ),
    };
    let event = AuditEvent {
        actor,
        action,
        target,
        source,
        outcome,
        detail: detail.to_string(),
    };
    let recorded = async {
        let lake = retail_app::open_lake(config).await?;
        let store = retail_app::open_store(config, &lake).await?;
        store
            .append_audit(&event)
            .await
            .context("cannot append to the audit trail")
    };
    if let Err(error) = recorded.await {
        eprintln!("warning: the command was not recorded in the audit trail: {error:#}");
    }
}
