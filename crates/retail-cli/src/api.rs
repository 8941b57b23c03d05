//! `retail serve`, `retail users ...` and `retail keys ...`.

use std::io::Read as _;

use anyhow::Context as _;
use clap::Subcommand;
use retail_app::{App, Config, Role};

/// `retail users ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Create a user; the password is read from standard input, so it never lands in shell
    /// history: `printf '%s' "$PASSWORD" | retail users create --username ana --role
    /// data_analyst --password-stdin`.
    Create {
        /// The user name (letters, digits, '.', '_', '-', '@').
        #[arg(long)]
        username: String,
        /// A role: data_analyst, data_engineer, admin, or one of api.roles_file.
        #[arg(long)]
        role: String,
        /// Read the password (at least 12 characters) from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users (never their passwords).
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: logins are refused and their refresh tokens revoked.
    Disable {
        /// The user name.
        #[arg(long)]
        username: String,
    },
}

/// `retail keys ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create an API key for a machine client; the key is printed once and only its hash kept.
    Create {
        /// A name for people (what uses the key).
        #[arg(long)]
        name: String,
        /// The role the key acts with.
        #[arg(long)]
        role: String,
    },
    /// List API keys (never the keys).
    List,
    /// Revoke an API key by id.
    Revoke {
        /// The key's id (the part after `rk_`).
        #[arg(long)]
        id: String,
    },
}

/// The end of `retail demo`: an admin API key for this demo, printed once, then the API.
pub(crate) async fn serve_demo(config: Config) -> anyhow::Result<()> {
    let app = App::build(config, Role::Server).await?;
    let (_, key) = app
        .services
        .access
        .create_key(
            &format!("demo {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S")),
            "admin",
        )
        .await?;
    let listen = app.config.api.listen.clone();
    println!();
    println!("API key for this demo (admin; revoke with `retail keys revoke`): {key}");
    println!("try:");
    println!(
        "  curl -H 'X-API-Key: {key}' 'http://{listen}/api/v2/analytics/top-products?limit=5'"
    );
    println!("  open http://{listen}/docs for every endpoint; Ctrl-C stops the server");
    serve_app(&app, None).await
}

/// `retail serve`.
pub(crate) async fn serve(config: Config, listen: Option<String>) -> anyhow::Result<()> {
    // Checked before anything is opened: a refused start changes nothing.
    serving_address(&config, listen.as_deref())?;
    let app = App::build(config, Role::Server).await?;
    serve_app(&app, listen).await
}

/// Where the API will listen, once the settings allow serving there.
pub(crate) fn serving_address(
    config: &Config,
    listen: Option<&str>,
) -> anyhow::Result<std::net::SocketAddr> {
    let listen = listen.unwrap_or(&config.api.listen);
    let address: std::net::SocketAddr = listen.parse().with_context(|| {
        format!("--listen must be an address such as 127.0.0.1:8080, not {listen:?}")
    })?;
    if let Some(problem) = config.api.serving_problem(address) {
        anyhow::bail!("{problem}");
    }
    Ok(address)
}

async fn serve_app(app: &App, listen: Option<String>) -> anyhow::Result<()> {
    let address = serving_address(&app.config, listen.as_deref())?;
    if app.config.api.jwt_secret.is_empty() {
        tracing::warn!(
            "api.jwt_secret is not set: tokens are signed with a random secret and stop working \
             when the process restarts (set RETAIL__API__JWT_SECRET)"
        );
    }
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    eprintln!("serving the API on http://{address} (docs at http://{address}/docs)");
    app.serve(listener).await
}

fn read_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from standard input")?;
    Ok(password.trim_end_matches(['\n', '\r']).to_owned())
}

pub(crate) async fn users(command: UsersCommand, config: Config) -> anyhow::Result<()> {
    let app = App::build(config, Role::Cli).await?;
    let access = &app.services.access;
    match command {
        UsersCommand::Create {
            username,
            role,
            password_stdin: _,
        } => {
            let password = read_password()?;
            access.create_user(&username, &role, &password).await?;
            println!("created user {username} with role {role}");
        }
        UsersCommand::List { json } => {
            let users = access.users().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                for user in users {
                    println!(
                        "{:<24} {:<16} {}{}",
                        user.username,
                        user.role,
                        user.created_at.to_rfc3339(),
                        if user.disabled { "  (disabled)" } else { "" }
                    );
                }
            }
        }
        UsersCommand::Disable { username } => {
            access.disable_user(&username).await?;
            println!("disabled user {username}");
        }
    }
    Ok(())
}

pub(crate) async fn keys(command: KeysCommand, config: Config) -> anyhow::Result<()> {
    let app = App::build(config, Role::Cli).await?;
    let access = &app.services.access;
    match command {
        KeysCommand::Create { name, role } => {
            let (id, key) = access.create_key(&name, &role).await?;
            eprintln!("created API key {id} ({name}, role {role}); it is shown only now:");
            println!("{key}");
        }
        KeysCommand::List => {
            for key in access.keys().await? {
                println!(
                    "{:<14} {:<24} {:<16}{}",
                    key.id,
                    key.name,
                    key.role,
                    if key.revoked { "  (revoked)" } else { "" }
                );
            }
        }
        KeysCommand::Revoke { id } => {
            access.revoke_key(&id).await?;
            println!("revoked API key {id}");
        }
    }
    Ok(())
}
