//! `cybervpn-scheduler`: enqueues periodic jobs until SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

/// CyberVPN scheduler.
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
    let tracing = cybervpn_telemetry::init(&config.log, &config.telemetry, "cybervpn-scheduler")
        .context("logging")?;
    let result = cybervpn_scheduler::run(config).await;
    tracing.shutdown().await;
    result
}
