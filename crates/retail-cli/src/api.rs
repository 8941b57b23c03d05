//! `retail serve`, `retail users ...` and `retail keys ...`.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use retail_api::{ApiConfig, AppState, AuthService, Policy};
use retail_lake::Lake;
use retail_pipeline::MetadataStore;
use retail_warehouse::AnyWarehouse;

use crate::config::Config;

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

pub(crate) fn policy(config: &ApiConfig) -> anyhow::Result<Policy> {
    if config.roles_file.is_empty() {
        return Ok(Policy::default());
    }
    let text = std::fs::read_to_string(&config.roles_file)
        .with_context(|| format!("cannot read api.roles_file {}", config.roles_file))?;
    Policy::with_file_text(&text)
        .map_err(|error| anyhow::anyhow!("invalid api.roles_file {}: {error}", config.roles_file))
}

pub(crate) fn auth(config: &Config) -> anyhow::Result<AuthService> {
    Ok(AuthService::open(
        Some(Path::new(&config.metadata.path)),
        &config.api.jwt_secret,
        config.api.access_token_minutes,
        config.api.refresh_token_days,
    )?)
}

/// The end of `retail demo`: an admin API key for this demo, printed once, then the API.
pub(crate) async fn serve_demo(config: &Config) -> anyhow::Result<()> {
    let (_, key) = auth(config)?.create_key(
        &format!("demo {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S")),
        "admin",
    )?;
    let listen = config.api.listen.clone();
    println!();
    println!("API key for this demo (admin; revoke with `retail keys revoke`): {key}");
    println!("try:");
    println!(
        "  curl -H 'X-API-Key: {key}' 'http://{listen}/api/v2/analytics/top-products?limit=5'"
    );
    println!("  open http://{listen}/docs for every endpoint; Ctrl-C stops the server");
    serve(config, None).await
}

/// `retail serve`.
pub(crate) async fn serve(config: &Config, listen: Option<String>) -> anyhow::Result<()> {
    let listen = listen.unwrap_or_else(|| config.api.listen.clone());
    let address: std::net::SocketAddr = listen.parse().with_context(|| {
        format!("--listen must be an address such as 127.0.0.1:8080, not {listen:?}")
    })?;
    if config.api.jwt_secret.is_empty() {
        tracing::warn!(
            "api.jwt_secret is not set: tokens are signed with a random secret and stop working \
             when the process restarts (set RETAIL__API__JWT_SECRET)"
        );
    }
    let lake = Lake::new(&config.lake).context("cannot open the lake")?;
    let store =
        Arc::new(MetadataStore::open(&config.metadata).context("cannot open the metadata store")?);
    let warehouse = AnyWarehouse::open(&config.warehouse, lake.clone())
        .await
        .context("cannot open the warehouse")?;
    let state = AppState::new(
        config.api.clone(),
        lake,
        store,
        warehouse,
        auth(config)?,
        policy(&config.api)?,
    );
    let state = if config.api.redis_url.is_empty() {
        state
    } else {
        state
            .with_redis(&config.api.redis_url)
            .await
            .context("cannot use api.redis_url")?
    };
    eprintln!("serving the API on http://{address} (docs at http://{address}/docs)");
    retail_api::serve(state, address).await
}

pub(crate) fn users(command: UsersCommand, config: &Config) -> anyhow::Result<()> {
    let auth = auth(config)?;
    match command {
        UsersCommand::Create {
            username,
            role,
            password_stdin: _,
        } => {
            let policy = policy(&config.api)?;
            if !policy.has_role(&role) {
                bail!(
                    "unknown role {role:?}; roles: {}",
                    policy.role_names().join(", ")
                );
            }
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            auth.create_user(&username, &role, password)?;
            println!("created user {username} with role {role}");
        }
        UsersCommand::List { json } => {
            let users = auth.users()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                for user in users {
                    println!(
                        "{:<24} {:<16} {}{}",
                        user.username,
                        user.role,
                        user.created_at,
                        if user.disabled { "  (disabled)" } else { "" }
                    );
                }
            }
        }
        UsersCommand::Disable { username } => {
            auth.disable_user(&username)?;
            println!("disabled user {username}");
        }
    }
    Ok(())
}

pub(crate) fn keys(command: KeysCommand, config: &Config) -> anyhow::Result<()> {
    let auth = auth(config)?;
    match command {
        KeysCommand::Create { name, role } => {
            let policy = policy(&config.api)?;
            if !policy.has_role(&role) {
                bail!(
                    "unknown role {role:?}; roles: {}",
                    policy.role_names().join(", ")
                );
            }
            let (id, key) = auth.create_key(&name, &role)?;
            eprintln!("created API key {id} ({name}, role {role}); it is shown only now:");
            println!("{key}");
        }
        KeysCommand::List => {
            for key in auth.keys()? {
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
            auth.revoke_key(&id)?;
            println!("revoked API key {id}");
        }
    }
    Ok(())
}
