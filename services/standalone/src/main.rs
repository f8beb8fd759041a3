//! `cybervpn`: the whole platform in one process on SQLite, migrating on start.
//!
//! Serves the api and runs the worker and the scheduler in-process on the in-process queue; the bot joins
//! this process when it is built.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cybervpn_api::cli::main(cybervpn_api::Mode::Standalone).await
}
