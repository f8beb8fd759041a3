//! `cybervpn`: the whole platform in one process on SQLite, migrating on start.
//!
//! Today it serves the api; the worker, scheduler and bot join this process as they are built.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cybervpn_api::cli::main(cybervpn_api::Mode::Standalone).await
}
