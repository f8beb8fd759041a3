//! `cybervpn-worker`: runs background jobs until SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

/// CyberVPN background worker.
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
    let tracing = cybervpn_telemetry::init(&config.log, &config.telemetry, "cybervpn-worker")
        .context("logging")?;
    let result = cybervpn_worker::run(config).await;
    tracing.shutdown().await;
    result
}
