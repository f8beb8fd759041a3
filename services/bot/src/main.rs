//! `cybervpn-bot`: the Telegram bot, until SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

/// CyberVPN Telegram bot.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (environment variables override it).
    #[arg(long, env = "CYBERVPN_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = cybervpn_config::Config::load(cli.config.as_deref(), std::env::vars())
        .context("configuration")?;
    cybervpn_telemetry::init_logging(&config.log).context("logging")?;
    cybervpn_bot::run(config).await
}
