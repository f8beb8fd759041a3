# syntax=docker/dockerfile:1.7
# cybervpn-api: the REST api (/api/v1, /health, /ready, /metrics, /docs) and the internal gRPC server for the bot.
#
# Build from the repository root:  docker build -f infra/docker/api.Dockerfile -t cybervpn/api .
# Ports: 8080 50051 (8080 HTTP api, health and metrics; 50051 gRPC for the bot, served when CYBERVPN_GRPC_BOT_TOKEN
# is set)
#
# Stages: `chef` (toolchain + cargo-chef) → `planner` (dependency recipe) → `builder` (dependencies cooked in
# their own layer, rebuilt only when Cargo.toml/Cargo.lock change; then the binary) → `runtime` (Debian slim,
# CA certificates, the binary, a bash health probe; no compiler, no sources, no secrets; runs as uid 10001).
# Configuration comes from the environment at run time (docs/config.example.toml); nothing secret is baked in.

FROM rust:1.95.0-bookworm AS chef
# The image's toolchain is the one rust-toolchain.toml pins (infra/tests checks they match); naming it here stops
# rustup from fetching the clippy/rustfmt components the toolchain file lists for developers.
ENV RUSTUP_TOOLCHAIN=1.95.0 \
    CARGO_INCREMENTAL=0 \
    CARGO_TERM_COLOR=never
RUN cargo install cargo-chef --locked --version 0.1.77
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# The whole workspace's dependencies, with the same feature resolution as the --workspace build below, so the
# five images share this layer.
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --workspace --bin cybervpn-api \
 && install -D -m 0755 target/release/cybervpn-api /out/cybervpn-api

FROM debian:bookworm-slim AS runtime
# ca-certificates: the Telegram, panel and gateway clients verify TLS against the system roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 cybervpn \
 && useradd --system --uid 10001 --gid cybervpn --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin cybervpn
COPY --chmod=0755 infra/docker/entrypoint.sh /usr/local/bin/entrypoint
COPY --chmod=0755 infra/docker/healthcheck.sh /usr/local/bin/healthcheck
COPY --from=builder /out/cybervpn-api /usr/local/bin/cybervpn-api
ENV CYBERVPN_API_LISTEN=0.0.0.0:8080 \
    CYBERVPN_GRPC_LISTEN=0.0.0.0:50051 \
    CYBERVPN_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["healthcheck", "CYBERVPN_API_LISTEN", "/health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["entrypoint", "cybervpn-api"]
CMD ["serve"]
