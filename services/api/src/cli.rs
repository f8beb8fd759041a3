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
}

/// Parses the command line, loads and validates configuration, starts logging, and runs the command.
pub async fn main(mode: Mode) -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    cybervpn_telemetry::init_logging(&config.log)?;
    apply_mode(&mut config, mode)?;
    match cli.command.unwrap_or(Command::Serve { migrate: false }) {
        Command::Serve { migrate } => {
            config.database.migrate |= migrate;
            crate::serve(Arc::new(config), mode).await
        }
        Command::Migrate => crate::migrate(&config).await,
    }
}

/// Standalone always runs on SQLite in `data_dir` with in-process state; the service needs a real database.
fn apply_mode(config: &mut Config, mode: Mode) -> anyhow::Result<()> {
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
        }
        Mode::Service => anyhow::ensure!(
            config.database.url.is_some(),
            "invalid configuration key `database.url`: required by cybervpn-api (set DATABASE_URL); \
             the `cybervpn` binary runs on SQLite without it"
        ),
    }
    Ok(())
}
