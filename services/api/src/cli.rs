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
    match cli.command.unwrap_or(Command::Serve { migrate: false }) {
        Command::Serve { migrate } => {
            config.database.migrate |= migrate;
            crate::serve(Arc::new(config), mode).await
        }
        Command::Migrate => crate::migrate(&config).await,
    }
}
