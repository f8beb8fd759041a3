# syntax=docker/dockerfile:1.7
# cybervpn-bot: the Telegram bot; reaches data only through the api's gRPC.
#
# Build from the repository root:  docker build -f infra/docker/bot.Dockerfile -t cybervpn/bot .
# Ports: 9092 (HTTP /health, /metrics and, in webhook mode, the Telegram webhook path; only that path may be proxied)
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
RUN cargo build --release --locked --workspace --bin cybervpn-bot \
 && install -D -m 0755 target/release/cybervpn-bot /out/cybervpn-bot

FROM debian:bookworm-slim AS runtime
# ca-certificates: the Telegram, panel and gateway clients verify TLS against the system roots.
# /var/lib/cybervpn/backups: where the worker's backup volume is mounted read-only (the bot sends the files to the
# admin chats); owned by the service user, as in the worker image, whichever container creates the volume.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 cybervpn \
 && useradd --system --uid 10001 --gid cybervpn --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin cybervpn \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/cybervpn/backups
COPY --chmod=0755 infra/docker/entrypoint.sh /usr/local/bin/entrypoint
COPY --chmod=0755 infra/docker/healthcheck.sh /usr/local/bin/healthcheck
COPY --from=builder /out/cybervpn-bot /usr/local/bin/cybervpn-bot
ENV CYBERVPN_BOT_LISTEN=0.0.0.0:9092 \
    CYBERVPN_LOG_FORMAT=json
USER 10001:10001
EXPOSE 9092
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["healthcheck", "CYBERVPN_BOT_LISTEN", "/health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["entrypoint", "cybervpn-bot"]
