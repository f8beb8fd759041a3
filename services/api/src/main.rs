//! `cybervpn-api`: the api as a separately deployed service.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cybervpn_api::cli::main(cybervpn_api::Mode::Service).await
}
