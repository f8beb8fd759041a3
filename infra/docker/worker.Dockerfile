# syntax=docker/dockerfile:1.7
# cybervpn-worker: relays the outbox to the queue, provisions the Remnawave panel, runs the periodic jobs, delivers
# notifications.
#
# Build from the repository root:  docker build -f infra/docker/worker.Dockerfile -t cybervpn/worker .
# Ports: 9091 (HTTP /health and /metrics only; keep it on the internal network)
# Volume: /var/lib/cybervpn/backups (daily database backups; the bot reads them to send them to the admin chats)
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
RUN cargo build --release --locked --workspace --bin cybervpn-worker \
 && install -D -m 0755 target/release/cybervpn-worker /out/cybervpn-worker

# Debian 13 (trixie) rather than the builder's 12: it packages pg_dump 17, the major version of the Compose
# PostgreSQL (pg_dump refuses servers newer than itself). The bookworm-built binary runs unchanged on it.
FROM debian:trixie-slim AS runtime
# ca-certificates: the Telegram, panel and gateway clients verify TLS against the system roots.
# postgresql-client-17: pg_dump for the daily database backup (docs/runbooks/restore.md).
# /var/lib/cybervpn/backups: the backup volume's mount point, owned by the service user so a new named volume is.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-client-17 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 cybervpn \
 && useradd --system --uid 10001 --gid cybervpn --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin cybervpn \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/cybervpn/backups
COPY --chmod=0755 infra/docker/entrypoint.sh /usr/local/bin/entrypoint
COPY --chmod=0755 infra/docker/healthcheck.sh /usr/local/bin/healthcheck
COPY --from=builder /out/cybervpn-worker /usr/local/bin/cybervpn-worker
ENV CYBERVPN_WORKER_LISTEN=0.0.0.0:9091 \
    CYBERVPN_BACKUP_DIR=/var/lib/cybervpn/backups \
    CYBERVPN_LOG_FORMAT=json
USER 10001:10001
EXPOSE 9091
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["healthcheck", "CYBERVPN_WORKER_LISTEN", "/health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["entrypoint", "cybervpn-worker"]
