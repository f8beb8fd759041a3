# CyberVPN — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help run demo test infra-test lint fmt docs openapi bench services build release deny

help: ## List targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

run: ## Run the whole platform in one process on SQLite (./data), serving http://127.0.0.1:8080
	$(CARGO) run --bin cybervpn

demo: ## Standalone platform + panel fake: a customer provisioned end to end (Ctrl-C stops)
	bash scripts/demo.sh

test: services ## Run the full test suite (needs PostgreSQL and Redis on 127.0.0.1; `make services` starts them)
	@command -v cargo-nextest >/dev/null || $(CARGO) install --locked cargo-nextest
	$(CARGO) nextest run --workspace --no-fail-fast
	$(CARGO) test --workspace --doc
	$(MAKE) infra-test

infra-test: ## Validate infra/ and .github/workflows with their tools (hadolint, Compose schema, caddy, promtool, amtool, scraped metrics)
	bash infra/tests/run.sh

lint: ## cargo fmt --check and clippy -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

docs: ## Regenerate docs/openapi.json and docs/rbac.md from the code
	UPDATE_OPENAPI=1 UPDATE_DOCS=1 $(CARGO) nextest run --workspace -E 'test(openapi_document_matches) | test(rbac_document_matches)'

openapi: docs ## Alias of `docs`

bench: ## Benchmark the release build (wrk on standalone and PostgreSQL; jobs/s, a 100k-user reconcile; webhook ingest vs pgbench; analytics reports at 1M customers); appends to docs/benchmarks.md (BENCH_ONLY=http|jobs|webhooks|analytics)
	bash scripts/bench.sh

services: ## Start local PostgreSQL and Redis if they are down
	@bash scripts/services.sh

build: ## Debug build of every binary
	$(CARGO) build --workspace --bins

release: ## Release build of every binary
	$(CARGO) build --workspace --bins --release

deny: ## Check advisories, licenses and bans (needs cargo-deny)
	cargo deny check
