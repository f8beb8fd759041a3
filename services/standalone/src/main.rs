//! `cybervpn`: the whole platform in one process on SQLite, migrating on start.
//!
//! Serves the api and runs the worker and the scheduler in-process on the in-process queue, and the Telegram
//! bot too when `TELEGRAM_BOT_TOKEN` is set (over loopback gRPC, like the separately deployed bot).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bot: cybervpn_api::Companion = Box::new(|embedded| {
        Box::pin(async move {
            let metrics = cybervpn_telemetry::Metrics::new()?;
            cybervpn_bot::run_with(
                embedded.config,
                metrics,
                Some(embedded.queue),
                embedded.shutdown,
            )
            .await
        })
    });
    cybervpn_api::cli::main_with(cybervpn_api::Mode::Standalone, Some(bot)).await
}
