//! Command line shared by `cybervpn-api` and the standalone `cybervpn` binary.

use std::{path::PathBuf, sync::Arc};

use clap::{Parser, Subcommand};
use cybervpn_config::Config;

use crate::Mode;

/// Command line of the api binaries.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// TOML configuration file (environment variables override it).
    #[arg(long, global = true, env = "CYBERVPN_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP api.
    Serve {
        /// Apply pending migrations before serving.
        #[arg(long)]
        migrate: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage staff accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage signing and encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// Staff account commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a staff account and print its one-time password on stdout.
    Create {
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// super_admin, admin, operator, support or viewer.
        #[arg(long)]
        role: String,
        /// Display handle; derived from the email when absent.
        #[arg(long)]
        username: Option<String>,
    },
}

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new token signing key and encryption key (PASERK) for the configuration.
    Generate,
}

/// Parses the command line, loads and validates configuration, starts logging, and runs the command.
pub async fn main(mode: Mode) -> anyhow::Result<()> {
    main_with(mode, None).await
}

/// [`main`], with `companion` (the bot) running beside the api in standalone mode when a bot token is set.
pub async fn main_with(mode: Mode, companion: Option<crate::Companion>) -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    let command = cli.command.unwrap_or(Command::Serve { migrate: false });
    // Only the server exports traces; one-shot commands just log.
    let telemetry = match command {
        Command::Serve { .. } => config.telemetry.clone(),
        _ => cybervpn_config::TelemetryConfig::default(),
    };
    let service = match mode {
        Mode::Service => "cybervpn-api",
        Mode::Standalone => "cybervpn",
    };
    let tracing = cybervpn_telemetry::init(&config.log, &telemetry, service)?;
    let result = run(config, command, mode, companion).await;
    tracing.shutdown().await;
    result
}

async fn run(
    mut config: Config,
    command: Command,
    mode: Mode,
    companion: Option<crate::Companion>,
) -> anyhow::Result<()> {
    apply_mode(&mut config, mode, !matches!(command, Command::Keys(_)))?;
    match command {
        Command::Serve { migrate } => {
            config.database.migrate |= migrate;
            let companion = companion.filter(|_| config.telegram.bot_token.is_some());
            crate::serve(Arc::new(config), mode, companion).await
        }
        Command::Migrate => crate::migrate(&config).await,
        Command::Admin(AdminCommand::Create {
            email,
            role,
            username,
        }) => {
            let password =
                crate::create_staff(&config, mode, &email, &role, username.as_deref()).await?;
            println!("{password}");
            Ok(())
        }
        Command::Keys(KeysCommand::Generate) => {
            let (keys, signing) = cybervpn_auth::TokenKeys::generate()?;
            let (_, encryption) = cybervpn_auth::SecretBox::generate();
            println!("CYBERVPN_AUTH_TOKEN_SIGNING_KEY={signing}");
            println!("CYBERVPN_AUTH_ENCRYPTION_KEY={encryption}");
            println!("# public key, for auth.previous_public_keys after the next rotation:");
            println!("# {}", keys.public_paserk());
            Ok(())
        }
    }
}

/// Standalone always runs on SQLite in `data_dir` with in-process state; the service needs a real database.
fn apply_mode(config: &mut Config, mode: Mode, needs_database: bool) -> anyhow::Result<()> {
    match mode {
        Mode::Standalone => {
            if config.database.url.take().is_some() {
                tracing::warn!(
                    "standalone mode ignores database.url: it runs on SQLite in data_dir"
                );
            }
            if config.redis.url.take().is_some() {
                tracing::warn!("standalone mode ignores redis.url: it keeps its state in-process");
            }
            // The in-process bot reaches the api over loopback gRPC, with a token made for this run.
            if config.telegram.bot_token.is_some() && config.grpc.bot_token.is_none() {
                let token = format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                );
                config.grpc.bot_token = Some(cybervpn_config::Secret::new(token));
                config.grpc.listen = "127.0.0.1:0".to_owned();
            }
            // SQLite has one writer; a few connections serve reads, and each costs page cache.
            config.database.max_connections = config.database.max_connections.min(4);
            config.database.min_connections = config.database.min_connections.min(1);
        }
        Mode::Service => anyhow::ensure!(
            config.database.url.is_some() || !needs_database,
            "invalid configuration key `database.url`: required by cybervpn-api (set DATABASE_URL); \
             the `cybervpn` binary runs on SQLite without it"
        ),
    }
    Ok(())
}
