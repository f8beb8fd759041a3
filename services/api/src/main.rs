//! `cybervpn-api`: the api as a separately deployed service.

/// mimalloc keeps small per-thread heaps where glibc holds a multi-MiB arena per worker thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cybervpn_api::cli::main(cybervpn_api::Mode::Service).await
}
