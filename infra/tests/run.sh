#!/usr/bin/env bash
# Validates every deployment file under infra/ (and .github/workflows) with the real tool for it.
#
#   bash infra/tests/run.sh          (`make infra-test`; `make test` runs it after the cargo tests)
#
# Installs what is missing first, from the project's own files: Debian packages (caddy, prometheus for promtool,
# prometheus-alertmanager for amtool, postgresql-client, redis-tools, shellcheck) and a Python venv under
# target/infra-venv from infra/tests/requirements.txt (check-jsonschema, hadolint, promql-parser, PyYAML). Every
# check runs even when an earlier one failed; the script exits non-zero if any failed. The metrics check runs the
# debug binaries (built if missing) and needs PostgreSQL and Redis on 127.0.0.1 (scripts/services.sh starts them).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
VENV="$ROOT/target/infra-venv"
REQUIREMENTS="$ROOT/infra/tests/requirements.txt"
export PYTHONDONTWRITEBYTECODE=1

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# --- tools --------------------------------------------------------------------------------------------------
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pair in caddy:caddy promtool:prometheus amtool:prometheus-alertmanager psql:postgresql-client \
  pg_isready:postgresql-client redis-cli:redis-tools shellcheck:shellcheck; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  # policy-rc.d or no init: the packaged prometheus/alertmanager services must not start (only the CLIs are used).
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$stamp" ]; then
  say "creating the Python venv target/infra-venv"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$stamp" >"$VENV/.requirements"
fi
PY="$VENV/bin/python"

say "tools"
caddy version | head -1 | sed 's/^/  caddy /'
promtool --version 2>&1 | head -1 | sed 's/^/  /'
amtool --version 2>&1 | head -1 | sed 's/^/  /'
shellcheck --version | sed -n 's/^version: /  shellcheck /p'
"$VENV/bin/hadolint" --version | sed 's/^/  /'
"$VENV/bin/check-jsonschema" --version | sed 's/^/  /'
"$PY" -c 'import importlib.metadata as m; print("  promql-parser", m.version("promql-parser"), "/ PyYAML", m.version("PyYAML"))'

# --- checks -------------------------------------------------------------------------------------------------
passed=0
failed=()
check() {
  local name="$1"
  shift
  say "$name"
  if "$@"; then
    passed=$((passed + 1))
    echo "  ok"
  else
    failed+=("$name")
    echo "  FAILED: $name"
  fi
}

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# The documented example values, for files that read the environment.
# shellcheck source=/dev/null
example_env() { (set -a && . "$ROOT/infra/.env.example" && set +a && "$@"); }

check "Shell scripts: shellcheck" \
  shellcheck infra/tests/run.sh infra/docker/entrypoint.sh infra/docker/healthcheck.sh infra/alertmanager/render.sh
check "Dockerfiles: hadolint" \
  "$VENV/bin/hadolint" --config infra/docker/.hadolint.yaml infra/docker/*.Dockerfile
check "Dockerfiles: project rules, health probe and entrypoint" "$PY" infra/tests/check_dockerfiles.py

check "Compose: Compose Specification schema (as written)" \
  "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec infra/compose.yaml
check "Compose: profiles, dependencies, healthchecks, limits, ports, variables" \
  "$PY" infra/tests/check_compose.py "$TMP/compose.rendered.yaml"
check "Compose: Compose Specification schema (interpolated with .env.example)" \
  "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$TMP/compose.rendered.yaml"

caddy_validate() {
  XDG_DATA_HOME="$TMP/caddy" XDG_CONFIG_HOME="$TMP/caddy" \
    example_env caddy validate --config infra/caddy/Caddyfile --adapter caddyfile >"$TMP/caddy-validate.log" 2>&1 \
    || { cat "$TMP/caddy-validate.log"; return 1; }
  tail -1 "$TMP/caddy-validate.log" | sed 's/^/  /'
}
caddy_fmt() { caddy fmt infra/caddy/Caddyfile | diff -u infra/caddy/Caddyfile - >&2; }
check "Caddy: caddy validate" caddy_validate
check "Caddy: caddy fmt (file is formatted)" caddy_fmt
check "Caddy: routing on loopback" "$PY" infra/tests/check_caddy.py

check "Prometheus: promtool check config" promtool check config infra/prometheus/prometheus.yml
check "Prometheus: promtool check rules" promtool check rules infra/prometheus/rules/*.yml
check "Prometheus: promtool test rules (each alert fires, and stays quiet when healthy)" \
  promtool test rules infra/prometheus/tests/*.yml

alertmanager_check() {
  example_env sh infra/alertmanager/render.sh infra/alertmanager "$TMP/alertmanager" &&
    amtool check-config "$TMP/alertmanager/alertmanager.yml" &&
    (cd "$TMP/alertmanager" && amtool template render --template.glob='templates/*.tmpl' \
      --template.text='{{ template "cybervpn.telegram.message" . }}' >/dev/null) &&
    [ "$(amtool config routes test --config.file="$TMP/alertmanager/alertmanager.yml" severity=critical \
      alertname=PaidButNotProvisioned 2>/dev/null)" = "telegram" ]
}
check "Alertmanager: render, amtool check-config, template, routing" alertmanager_check

check "Grafana: provisioning and dashboards" "$PY" infra/tests/check_dashboards.py

# CYBERVPN_BIN_DIR points the metrics check at binaries built elsewhere (used as they are, never rebuilt).
binaries_ready() {
  local bin
  [ -z "${CYBERVPN_BIN_DIR:-}" ] || return 0
  for bin in cybervpn cybervpn-api cybervpn-bot cybervpn-worker cybervpn-scheduler cybervpn-panel-fake; do
    [ -x "target/debug/$bin" ] || return 1
    # Stale if any source is newer than the binary.
    [ -z "$(find crates services migrations proto Cargo.toml Cargo.lock -newer "target/debug/$bin" \
      \( -name '*.rs' -o -name '*.toml' -o -name '*.proto' -o -name Cargo.lock \) -print -quit)" ] || return 1
  done
}
metrics_check() {
  if ! binaries_ready; then
    echo "  building the binaries (missing or older than the sources)"
    nice -n 10 cargo build --workspace --bins --quiet
  fi
  bash scripts/services.sh
  "$PY" infra/tests/check_metrics.py
}
check "Metrics: dashboards and alert rules query what the services export (scraped)" metrics_check

check "GitHub workflows: GitHub workflow schema" \
  "$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
check "GitHub workflows: jobs, matrix, aggregator" "$PY" infra/tests/check_workflows.py

say "summary"
for name in "${failed[@]}"; do echo "  FAILED: $name"; done
echo "infra: ${passed} passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
