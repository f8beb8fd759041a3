#!/usr/bin/env bash
# Benchmarks the release build of the api with wrk and appends the results to docs/benchmarks.md.
#
#   Scenario A  standalone: target/release/cybervpn on a fresh SQLite data dir.
#   Scenario B  postgres:   target/release/cybervpn-api serve --migrate on a fresh PostgreSQL database
#                           (and a private Redis key prefix).
#
# For each: idle RSS after start-up and warm-up, `wrk --latency` against GET /health and GET /api/v1/plans,
# RSS after load. Everything it creates (servers, database, Redis keys, temp dir) is removed on exit.
#
#   Jobs        the worker's `bench_jobs` example (release): no-op jobs/s through the Redis queue, provisioning
#               jobs/s against the panel fake, and a full reconcile of 100,000 panel users (target ≤ 60 s).
#
#   Webhooks    webhook ingest: cybervpn-api serve --migrate on a fresh PostgreSQL database seeded with
#               BENCH_WEBHOOK_PAYMENTS customers, each with a pending CryptoBot payment; wrk posts signed
#               `invoice_paid` deliveries for them to POST /api/v1/webhooks/cryptobot, half of them repeats of
#               earlier ones (scripts/bench/cryptobot_webhooks.{py,lua}). Deliveries/s against pgbench's
#               single-row INSERT TPS on the same PostgreSQL server, same client count (target ≥ 50 %). Fails if a
#               delivery gets a non-2xx answer or takes another path than credit / already completed.
#
#   Analytics   the admin analytics reports: cybervpn-api serve on a fresh PostgreSQL database seeded by
#               scripts/bench/analytics_seed.sql with BENCH_ANALYTICS_CUSTOMERS customers (1.5 payments each,
#               trials and subscriptions, over two years); BENCH_ANALYTICS_REQUESTS sequential requests to each
#               report over 30 days by day, a year by week and two years by month: p50 / p95 per report and
#               period (target p95 ≤ 200 ms), and which indexes the reports used.
#
# Environment: BENCH_DURATION (default 20s), BENCH_CONNECTIONS (default 64), BENCH_THREADS (default 2),
# BENCH_NOOP_JOBS (default 20000), BENCH_PROVISION_JOBS (default 2000), BENCH_RECONCILE_USERS (default 100000),
# BENCH_WEBHOOK_PAYMENTS (default 100000), BENCH_ANALYTICS_CUSTOMERS (default 1000000), BENCH_ANALYTICS_REQUESTS
# (default 50), BENCH_ONLY (`http`, `jobs`, `webhooks` or `analytics` runs only those benchmarks; default `all`),
# CARGO (default cargo),
# CARGO_TARGET_DIR (where the release binaries are built; default ./target).
set -euo pipefail

# The whole script is one `{ … }` block, so bash parses all of it before running any: editing this file
# (or checking out another version) while a run is in progress cannot break that run.
# shellcheck disable=SC2317  # (the final `exit` inside the block confuses shellcheck's reachability check)
{
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION="${BENCH_DURATION:-20s}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
THREADS="${BENCH_THREADS:-2}"
NOOP_JOBS="${BENCH_NOOP_JOBS:-20000}"
PROVISION_JOBS="${BENCH_PROVISION_JOBS:-2000}"
RECONCILE_USERS="${BENCH_RECONCILE_USERS:-100000}"
WEBHOOK_PAYMENTS="${BENCH_WEBHOOK_PAYMENTS:-100000}"
ANALYTICS_CUSTOMERS="${BENCH_ANALYTICS_CUSTOMERS:-1000000}"
ANALYTICS_REQUESTS="${BENCH_ANALYTICS_REQUESTS:-50}"
ONLY="${BENCH_ONLY:-all}"
CARGO="${CARGO:-cargo}"
# Where cargo puts the release build: CARGO_TARGET_DIR when set (cargo reads it too), else ./target.
RELEASE_DIR="${CARGO_TARGET_DIR:-target}/release"
PG_URL_BASE="postgres://postgres@127.0.0.1:5432"
REDIS_URL="redis://127.0.0.1:6379"
RESULTS_MD="docs/benchmarks.md"
ENDPOINTS=(/health /api/v1/plans)

log() { printf '\033[36m[bench]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[bench] %s\033[0m\n' "$*" >&2; exit 1; }

if ! [[ "$CONNECTIONS" =~ ^[0-9]+$ && "$THREADS" =~ ^[0-9]+$ ]] || ((THREADS < 1 || CONNECTIONS < THREADS)); then
  die "BENCH_CONNECTIONS ($CONNECTIONS) must be a number ≥ BENCH_THREADS ($THREADS) ≥ 1"
fi
if ! [[ "$NOOP_JOBS" =~ ^[0-9]+$ && "$PROVISION_JOBS" =~ ^[0-9]+$ && "$RECONCILE_USERS" =~ ^[0-9]+$ ]]; then
  die "BENCH_NOOP_JOBS, BENCH_PROVISION_JOBS and BENCH_RECONCILE_USERS must be numbers (0 skips one)"
fi
case "$ONLY" in
  all | http | jobs | webhooks | analytics) ;;
  *) die "BENCH_ONLY must be http, jobs, webhooks or analytics (or all, the default), not ${ONLY}" ;;
esac

# Whether the benchmarks of kind $1 (http, jobs, webhooks, analytics) run.
wants() { [ "$ONLY" = all ] || [ "$ONLY" = "$1" ]; }

# A wrk duration ("20s", "2m", "1h", "20") in whole seconds; empty if it is not one.
duration_secs() {
  awk -v d="$1" 'BEGIN {
    if (d !~ /^[0-9]+[smh]?$/) exit
    n = d + 0; u = d; sub(/^[0-9]+/, "", u)
    printf "%d", n * (u == "m" ? 60 : u == "h" ? 3600 : 1)
  }'
}

if wants analytics; then
  if ! [[ "$ANALYTICS_CUSTOMERS" =~ ^[0-9]+$ && "$ANALYTICS_REQUESTS" =~ ^[0-9]+$ ]] ||
    ((ANALYTICS_CUSTOMERS < 1000 || ANALYTICS_REQUESTS < 1)); then
    die "BENCH_ANALYTICS_CUSTOMERS (${ANALYTICS_CUSTOMERS}) must be a number ≥ 1000 and BENCH_ANALYTICS_REQUESTS (${ANALYTICS_REQUESTS}) ≥ 1"
  fi
fi

if wants webhooks; then
  if ! [[ "$WEBHOOK_PAYMENTS" =~ ^[0-9]+$ ]] || ((WEBHOOK_PAYMENTS < 1000)); then
    die "BENCH_WEBHOOK_PAYMENTS (${WEBHOOK_PAYMENTS}) must be a number ≥ 1000"
  fi
  [ "$(duration_secs "$DURATION")" -gt 0 ] 2>/dev/null ||
    die "BENCH_DURATION (${DURATION}) must be whole seconds, minutes or hours (20s, 2m, 1h) for pgbench -T"
fi

# ---------------------------------------------------------------------------------------------- tools
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  log "installing $* (apt-get)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

missing=()
if wants http || wants webhooks; then command -v wrk >/dev/null || missing+=(wrk); fi
if wants webhooks; then command -v python3 >/dev/null || missing+=(python3); fi
command -v curl >/dev/null || missing+=(curl)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v redis-cli >/dev/null || missing+=(redis-tools)
if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
# pgbench ships with the PostgreSQL server package (Debian's pg_wrapper answers `command -v` without it).
if wants webhooks && ! pgbench --version >/dev/null 2>&1; then
  die "pgbench is missing: it comes with the PostgreSQL server package (postgresql-NN on Debian)"
fi

# ------------------------------------------------------------------------------------------- cleanup
WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/cybervpn-bench.XXXXXX")"
RUN_ID="$(date +%s)_${RANDOM}"
DB_NAME="cybervpn_bench_${RUN_ID}"
REDIS_PREFIX="bench:${RUN_ID}:"
CREATED_DBS=()
SERVER_PID=""
SERVER_LOG=""

stop_server() {
  local pid="$SERVER_PID"
  [ -n "$pid" ] || return 0
  SERVER_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "server $pid ignored SIGTERM for 10 s, killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  if [ "$status" -ne 0 ] && [ -n "$SERVER_LOG" ] && [ -s "$SERVER_LOG" ]; then
    log "last lines of $(basename "$SERVER_LOG"):"
    tail -n 30 "$SERVER_LOG" >&2
  fi
  stop_server
  for db in "${CREATED_DBS[@]}"; do
    psql -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 \
      -c "DROP DATABASE IF EXISTS \"${db}\" WITH (FORCE)" >/dev/null ||
      log "could not drop database ${db}: drop it by hand"
  done
  if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "${REDIS_PREFIX}*" |
      xargs -r -n 100 redis-cli -h 127.0.0.1 -p 6379 del >/dev/null
  fi
  rm -rf "$WORK_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------------------------------- helpers
# A TCP port on 127.0.0.1 nobody listens on, scanning up from 18080.
free_port() {
  local port
  for port in $(seq 18080 18999); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free port in 18080-18999"
}

# Resident set size of a process in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# 31234.5 → "31,235".
fmt_int() { awk -v n="$1" 'BEGIN { s = sprintf("%.0f", n); while (s ~ /[0-9]{4}/) sub(/[0-9]{3}($|,)/, ",&", s); print s }'; }

# KiB → "12.3 MiB".
fmt_mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# Creates PostgreSQL database $1, dropped on exit.
create_db() {
  psql -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$1\"" >/dev/null
  CREATED_DBS+=("$1")
}

# The api service refuses to start without token signing / encryption keys: generate throwaway ones into
# AUTH_ENV (`keys generate` prints them as CYBERVPN_AUTH_…=… lines); they live only in this process's memory.
load_auth_env() {
  local keys line
  AUTH_ENV=()
  if keys="$("${RELEASE_DIR}"/cybervpn-api keys generate 2>/dev/null)"; then
    while IFS= read -r line; do
      case "$line" in CYBERVPN_AUTH_*=*) AUTH_ENV+=("$line") ;; esac
    done <<<"$keys"
  fi
}

# Starts a server in the background (env assignments first, then the command), logging to $1.
start_server() {
  SERVER_LOG="$1"
  shift
  env "$@" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
}

wait_healthy() {
  local base="$1"
  for _ in $(seq 1 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited during start-up"
    if curl -fsS -o /dev/null --max-time 1 "${base}/health" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "${base}/health did not answer within 30 s"
}

warm_up() {
  local base="$1" plans
  for _ in 1 2 3; do
    for path in "${ENDPOINTS[@]}"; do
      curl -fsS -o /dev/null --max-time 5 "${base}${path}" || die "warm-up GET ${path} failed"
    done
  done
  plans="$(curl -fsS --max-time 5 "${base}/api/v1/plans" | grep -o '"code":' | wc -l || true)"
  if [ "$plans" -ne 16 ]; then log "warning: /api/v1/plans lists ${plans} plans, expected 16"; fi
  sleep 1
}

# wrk latency ("850.12us", "1.23ms", "1.02s", "2.00m") → milliseconds with two decimals.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000; else if (u != "ms") { print "?"; exit }
    printf "%.2f", n
  }'
}

# CPU clock ticks, as "machine_user_sys machine_total steal wrk server": the whole machine from /proc/stat
# (user+nice+system; total adds idle, iowait, irq, softirq and steal), this shell's reaped children (wrk,
# run in the foreground) and the server process.
cpu_sample() {
  local machine children server
  machine="$(awk '/^cpu / { print $2 + $3 + $4, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9 }' /proc/stat)"
  children="$(awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat")"
  server="$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/${SERVER_PID}/stat")"
  echo "$machine $children $server"
}

# Two cpu_sample outputs → "server 48% / wrk 45% / other 3% / steal 0%" (shares of the whole machine).
cpu_shares() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    total = y[2] - x[2]; if (total <= 0) { print "?"; exit }
    wrk = y[4] - x[4]; server = y[5] - x[5]; other = (y[1] - x[1]) - wrk - server; if (other < 0) other = 0
    printf "server %.0f%% / wrk %.0f%% / other %.0f%% / steal %.0f%%", 100 * server / total, 100 * wrk / total,
      100 * other / total, 100 * (y[3] - x[3]) / total
  }'
}

ROWS=()
NOTES=()
NOISE=()
CPU_LINES=()
PLANS_RESULTS=()

# Runs wrk against one endpoint and appends a table row. Args: scenario, base url, path, idle RSS KiB.
run_wrk() {
  local scenario="$1" base="$2" path="$3" idle_kib="$4" out rps p50 p99 non2xx sockerr after_kib before shares other
  out="${WORK_DIR}/wrk-${scenario}-${path//\//_}.txt"
  log "wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION} --latency ${base}${path}"
  before="$(cpu_sample)"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${base}${path}" | tee "$out" >&2
  kill -0 "$SERVER_PID" 2>/dev/null || die "the server died under load"
  shares="$(cpu_shares "$before" "$(cpu_sample)")"
  log "CPU during load: ${shares}"
  CPU_LINES+=("${scenario} \`${path}\`: ${shares}")
  other="$(sed -n 's/.*other \([0-9]*\)%.*/\1/p' <<<"$shares")"
  if [ "${other:-0}" -ge 10 ]; then
    NOISE+=("${scenario} ${path}: other processes took ${other}% of the machine's CPU during the run: numbers are noisy")
  fi
  after_kib="$(rss_kib "$SERVER_PID")"

  rps="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")"
  p50="$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")"
  p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")"
  [ -n "$rps" ] || die "could not parse wrk output for ${path}"
  non2xx="$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$out")"
  sockerr="$(sed -n 's/^ *Socket errors: *//p' "$out")"
  if [ -n "$non2xx" ]; then NOTES+=("${scenario} ${path}: ${non2xx} non-2xx/3xx responses"); fi
  if [ -n "$sockerr" ]; then NOTES+=("${scenario} ${path}: socket errors (${sockerr})"); fi

  ROWS+=("| ${scenario} | \`GET ${path}\` | $(fmt_int "$rps") | ${p50} ms | ${p99} ms | $(fmt_mib "$idle_kib") | $(fmt_mib "$after_kib") |")
  if [ "$path" = "/api/v1/plans" ]; then
    PLANS_RESULTS+=("${scenario} ${rps} ${p99} ${idle_kib}")
  fi
}

AUTH_ROWS=()
AUTH_VERDICTS=()

# Sign-in under load (issue 3): login throughput against this machine's raw Argon2id rate, /auth/me with a
# valid token, and /api/v1/plans latency while a login flood runs. Arg: base url.
run_auth() {
  local base="$1" email password token raw out login_rps login_p99 me_rps me_p50 me_p99 flood_p99 flood_rps
  email="bench-${RANDOM}${RANDOM}@example.com"
  password="bench passphrase ${RANDOM}${RANDOM}"
  curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
    -d "{\"email\":\"${email}\",\"password\":\"${password}\"}" "${base}/api/v1/auth/register" \
    || die "could not register the bench account"
  token="$(curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"email\":\"${email}\",\"password\":\"${password}\"}" "${base}/api/v1/auth/login" \
    | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')"
  [ -n "$token" ] || die "could not sign the bench account in"

  log "raw Argon2id verification rate ($(nproc) threads, 10 s)"
  raw="$("${RELEASE_DIR}"/examples/hash_rate "$(nproc)" 10)"
  log "raw Argon2id: ${raw} verifications/s"

  out="${WORK_DIR}/wrk-login.txt"
  log "wrk login flood: -t2 -c8 -d${DURATION}"
  BENCH_EMAIL="$email" BENCH_PASSWORD="$password" \
    wrk -t2 -c8 -d"$DURATION" --latency -s scripts/bench/login.lua "${base}/api/v1/auth/login" | tee "$out" >&2
  login_rps="$(awk '/^Requests\/sec:/ { printf "%.1f", $2 }' "$out")"
  login_p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")"
  if grep -q 'Non-2xx' "$out"; then NOTES+=("postgres login flood: $(grep 'Non-2xx' "$out" | tr -s ' ')"); fi

  out="${WORK_DIR}/wrk-me.txt"
  log "wrk /api/v1/auth/me: -t${THREADS} -c${CONNECTIONS} -d${DURATION}"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer ${token}" \
    "${base}/api/v1/auth/me" | tee "$out" >&2
  me_rps="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")"
  me_p50="$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")"
  me_p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")"
  if grep -q 'Non-2xx' "$out"; then NOTES+=("postgres /auth/me: $(grep 'Non-2xx' "$out" | tr -s ' ')"); fi

  log "GET /api/v1/plans while a login flood runs"
  BENCH_EMAIL="$email" BENCH_PASSWORD="$password" \
    wrk -t1 -c8 -d"$DURATION" -s scripts/bench/login.lua "${base}/api/v1/auth/login" >"${WORK_DIR}/wrk-flood.txt" &
  local flood_pid=$!
  out="${WORK_DIR}/wrk-plans-flood.txt"
  wrk -t1 -c16 -d"$DURATION" --latency "${base}/api/v1/plans" | tee "$out" >&2
  wait "$flood_pid" || true
  flood_rps="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")"
  flood_p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")"

  AUTH_ROWS+=("| raw Argon2id verify (m=19 MiB, t=2, p=1), $(nproc) threads | $(fmt_int "$raw") /s | — | — |")
  AUTH_ROWS+=("| \`POST /api/v1/auth/login\` (wrk -c8) | ${login_rps} req/s | — | ${login_p99} ms |")
  AUTH_ROWS+=("| \`GET /api/v1/auth/me\` (wrk -c${CONNECTIONS}) | $(fmt_int "$me_rps") req/s | ${me_p50} ms | ${me_p99} ms |")
  AUTH_ROWS+=("| \`GET /api/v1/plans\` (wrk -c16) during a login flood | $(fmt_int "$flood_rps") req/s | — | ${flood_p99} ms |")
  AUTH_VERDICTS+=("$(awk -v l="$login_rps" -v r="$raw" -v m="$me_rps" -v mp="$me_p99" -v fp="$flood_p99" 'BEGIN {
    printf "login at %.0f%% of the raw Argon2id rate %s (target ≥ 90%%); /auth/me %s req/s (≥ 20,000) and p99 %s (≤ 5 ms); plans p99 during the flood %s (≤ 10 ms)",
      100 * l / r, (l >= 0.9 * r ? "✅" : "❌"), (m >= 20000 ? "✅" : "❌"), (mp + 0 <= 5 ? "✅" : "❌"), (fp + 0 <= 10 ? "✅" : "❌")
  }')")
}

run_scenario() {
  local scenario="$1" port="$2" base idle_kib
  base="http://127.0.0.1:${port}"
  wait_healthy "$base"
  warm_up "$base"
  idle_kib="$(rss_kib "$SERVER_PID")"
  log "${scenario}: pid ${SERVER_PID}, idle RSS $(fmt_mib "$idle_kib")"
  for path in "${ENDPOINTS[@]}"; do
    run_wrk "$scenario" "$base" "$path" "$idle_kib"
  done
  if [ "$scenario" = postgres ]; then run_auth "$base"; fi
  stop_server
}

JOB_ROWS=()
JOB_VERDICTS=()
JOB_CPU=""
JOB_NOISE=()

# The `bench <name> key=value …` line of the job benchmarks' output $1: the value of key $3 on line $2.
bench_field() {
  awk -v name="$2" -v key="$3" '$1 == "bench" && $2 == name {
    for (i = 3; i <= NF; i++) { eq = index($i, "="); if (substr($i, 1, eq - 1) == key) print substr($i, eq + 1) }
  }' "$1"
}

# CPU clock ticks, as "machine_user_sys machine_total steal children services": the whole machine from
# /proc/stat, this shell's reaped children (the job benchmark, run in the foreground), and every `postgres` and
# `redis-server` process with its reaped children (the postmaster reaps the benchmark's finished backends).
jobs_cpu_sample() {
  local machine children
  machine="$(awk '/^cpu / { print $2 + $3 + $4, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9 }' /proc/stat)"
  children="$(awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat")"
  echo "$machine $children $(services_ticks)"
}

# CPU clock ticks of every `postgres` and `redis-server` process with its reaped children.
services_ticks() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk '{
    comm = $0; sub(/^[^(]*\(/, "", comm); sub(/\) [A-Za-z] .*$/, "", comm)
    if (comm != "postgres" && comm != "redis-server") next
    rest = $0; sub(/^.*\) /, "", rest); split(rest, f, " ")
    ticks += f[12] + f[13] + f[14] + f[15]
  } END { print ticks + 0 }'
}

# Job throughput and the full reconcile (issue 5), by the worker's `bench_jobs` example: it makes its own fresh
# PostgreSQL databases, Redis prefixes and panel fake, and removes them when it ends. Time is measured inside it.
run_jobs() {
  local out before after shares other secs
  out="${WORK_DIR}/bench-jobs.txt"
  log "job benchmarks: ${NOOP_JOBS} no-op jobs, ${PROVISION_JOBS} provisioning jobs, reconcile of ${RECONCILE_USERS} panel users"
  before="$(jobs_cpu_sample)"
  "${RELEASE_DIR}"/examples/bench_jobs --noop-jobs "$NOOP_JOBS" --provision-jobs "$PROVISION_JOBS" \
    --reconcile-users "$RECONCILE_USERS" | tee "$out" >&2
  after="$(jobs_cpu_sample)"
  # PostgreSQL and Redis work for the benchmark (other sessions' queries on them would count too).
  shares="$(awk -v a="$before" -v b="$after" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    total = y[2] - x[2]; if (total <= 0) { print "?"; exit }
    bench = y[4] - x[4]; services = y[5] - x[5]; other = (y[1] - x[1]) - bench - services; if (other < 0) other = 0
    printf "bench_jobs %.0f%% / PostgreSQL + Redis %.0f%% / other %.0f%% / steal %.0f%%", 100 * bench / total,
      100 * services / total, 100 * other / total, 100 * (y[3] - x[3]) / total
  }')"
  log "CPU during the job benchmarks: ${shares}"
  JOB_CPU="$shares"
  other="$(sed -n 's/.*other \([0-9]*\)%.*/\1/p' <<<"$shares")"
  if [ "${other:-0}" -ge 10 ]; then
    JOB_NOISE+=("other processes took ${other}% of the machine's CPU during the job benchmarks: numbers are noisy")
  fi

  local jobs push_secs push_rate total_secs rate concurrency producers
  if [ "$NOOP_JOBS" -gt 0 ]; then
    jobs="$(bench_field "$out" noop jobs)"
    [ -n "$jobs" ] || die "could not parse the no-op job benchmark"
    producers="$(bench_field "$out" noop producers)"
    concurrency="$(bench_field "$out" noop concurrency)"
    push_secs="$(bench_field "$out" noop push_secs)"
    push_rate="$(bench_field "$out" noop push_per_sec)"
    total_secs="$(bench_field "$out" noop total_secs)"
    rate="$(bench_field "$out" noop per_sec)"
    JOB_ROWS+=("| no-op jobs pushed to the Redis queue (${producers} concurrent producers) | $(fmt_int "$jobs") | ${push_secs} s | $(fmt_int "$push_rate") pushes/s |")
    JOB_ROWS+=("| no-op jobs, first push to all handled (worker concurrency ${concurrency}) | $(fmt_int "$jobs") | ${total_secs} s | $(fmt_int "$rate") jobs/s |")
  fi
  if [ "$PROVISION_JOBS" -gt 0 ]; then
    jobs="$(bench_field "$out" provision jobs)"
    [ -n "$jobs" ] || die "could not parse the provisioning job benchmark"
    concurrency="$(bench_field "$out" provision concurrency)"
    secs="$(bench_field "$out" provision secs)"
    rate="$(bench_field "$out" provision per_sec)"
    JOB_ROWS+=("| \`ProvisionSubscription\` jobs against the panel fake, new users (worker concurrency ${concurrency}) | $(fmt_int "$jobs") | ${secs} s | $(fmt_int "$rate") jobs/s |")
  fi
  if [ "$RECONCILE_USERS" -gt 0 ]; then
    local users repaired orphans repairs_secs
    users="$(bench_field "$out" reconcile panel_users)"
    [ -n "$users" ] || die "could not parse the reconcile benchmark"
    repaired="$(bench_field "$out" reconcile repaired)"
    orphans="$(bench_field "$out" reconcile orphans)"
    secs="$(bench_field "$out" reconcile secs)"
    repairs_secs="$(bench_field "$out" reconcile repairs_secs)"
    JOB_ROWS+=("| \`FullReconcile\` of $(fmt_int "$users") panel users against as many subscriptions, push to report | $(fmt_int "$users") | ${secs} s | $(fmt_int "$(awk -v n="$users" -v s="$secs" 'BEGIN { print n / s }')") users/s |")
    # The worker applies the repairs while the reconcile still runs; this is only the tail after its report.
    JOB_ROWS+=("| the repairs it queued (running alongside it), last one done after its report | $(fmt_int "$repaired") | +${repairs_secs} s | — |")
    JOB_VERDICTS+=("full reconcile of $(fmt_int "$users") panel users in $(awk -v s="$secs" 'BEGIN {
      printf "%.1f s %s", s, (s <= 60 ? "✅" : "❌")
    }') (target ≤ 60 s); $(fmt_int "$repaired") drifted users queued for repair, $(fmt_int "$orphans") orphans")
  fi
}

WEBHOOK_ROWS=()
WEBHOOK_CPU=()
WEBHOOK_VERDICTS=()
WEBHOOK_NOISE=()

# CPU clock ticks, as "machine_user_sys machine_total steal children server services": cpu_sample's, plus every
# PostgreSQL and Redis process (services_ticks); server is 0 when none runs.
ingest_cpu_sample() {
  local machine children server=0
  machine="$(awk '/^cpu / { print $2 + $3 + $4, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9 }' /proc/stat)"
  children="$(awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat")"
  if [ -n "$SERVER_PID" ]; then server="$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/${SERVER_PID}/stat")"; fi
  echo "$machine $children $server $(services_ticks)"
}

# Two ingest_cpu_sample outputs → "api 40% / PostgreSQL + Redis 30% / wrk 25% / other 2% / steal 0%" (shares of
# the whole machine). Args: before, after, name of the load generator (the foreground child), name of the
# server ("" when none ran).
ingest_cpu_shares() {
  awk -v a="$1" -v b="$2" -v gen="$3" -v srv="$4" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    total = y[2] - x[2]; if (total <= 0) { print "?"; exit }
    g = y[4] - x[4]; s = y[5] - x[5]; db = y[6] - x[6]
    other = (y[1] - x[1]) - g - s - db; if (other < 0) other = 0
    if (srv != "") printf "%s %.0f%% / ", srv, 100 * s / total
    printf "PostgreSQL + Redis %.0f%% / %s %.0f%% / other %.0f%% / steal %.0f%%", 100 * db / total, gen,
      100 * g / total, 100 * other / total, 100 * (y[3] - x[3]) / total
  }'
}

# Flags a load during which other processes took 10 % or more of the machine. Args: what ran, its CPU shares.
flag_noise() {
  local other
  other="$(sed -n 's/.*other \([0-9]*\)%.*/\1/p' <<<"$2")"
  if [ "${other:-0}" -ge 10 ]; then
    WEBHOOK_NOISE+=("other processes took ${other}% of the machine's CPU during $1: numbers are noisy")
  fi
}

# A fresh start for the next load: dirty buffers written now, not by a checkpoint in the middle of it.
checkpoint() { psql -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -c CHECKPOINT >/dev/null; }

# The api's webhooks_received_total{source="cryptobot"} counters, as "outcome count" lines. Arg: base url.
cryptobot_outcomes() {
  curl -fsS --max-time 5 "$1/metrics" | awk 'index($0, "webhooks_received_total{") == 1 && /source="cryptobot"/ {
    if (match($0, /outcome="[^"]*"/)) print substr($0, RSTART + 9, RLENGTH - 10), $NF
  }'
}

# Webhook ingest: signed CryptoBot `invoice_paid` deliveries, half of them repeats, against pgbench's single-row
# INSERT rate on the same PostgreSQL server with as many clients.
run_webhooks() {
  local secs pg_db api_db out before shares tps pg_latency token base deliveries lag lines
  secs="$(duration_secs "$DURATION")"
  pg_db="cybervpn_bench_${RUN_ID}_pgbench"
  api_db="cybervpn_bench_${RUN_ID}_webhooks"

  # The baseline: one uuid-keyed row per transaction, through TCP like the api's connections.
  log "webhooks: pgbench baseline (single-row INSERT) on database ${pg_db}"
  create_db "$pg_db"
  psql -q -h 127.0.0.1 -U postgres -d "$pg_db" -v ON_ERROR_STOP=1 \
    -c "CREATE TABLE t (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), v bigint, at timestamptz DEFAULT now())" >/dev/null
  printf 'INSERT INTO t (v) VALUES (1);\n' >"${WORK_DIR}/insert.sql"
  checkpoint
  out="${WORK_DIR}/pgbench.txt"
  log "pgbench -n -c${CONNECTIONS} -j${THREADS} -T${secs} -f insert.sql"
  before="$(ingest_cpu_sample)"
  pgbench -h 127.0.0.1 -U postgres -n -c "$CONNECTIONS" -j "$THREADS" -T "$secs" -f "${WORK_DIR}/insert.sql" \
    "$pg_db" 2>&1 | tee "$out" >&2
  shares="$(ingest_cpu_shares "$before" "$(ingest_cpu_sample)" pgbench "")"
  log "CPU during pgbench: ${shares}"
  WEBHOOK_CPU+=("pgbench: ${shares}")
  flag_noise pgbench "$shares"
  tps="$(awk '/^tps = / && /without initial connection time/ { printf "%.0f", $3 }' "$out")"
  pg_latency="$(awk '/^latency average = / { printf "%.2f", $4 }' "$out")"
  [[ -n "$tps" && "$tps" -gt 0 ]] || die "could not parse pgbench's tps"
  if grep -Eq '^number of failed transactions: [1-9]' "$out"; then
    die "pgbench: $(grep '^number of failed transactions' "$out")"
  fi

  # The api, with a CryptoBot app token only this run knows.
  log "webhooks: creating database ${api_db}"
  create_db "$api_db"
  token="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
  token="bench:${token}"
  load_auth_env
  PORT="$(free_port)"
  base="http://127.0.0.1:${PORT}"
  log "webhooks: cybervpn-api (PostgreSQL + Redis) on 127.0.0.1:${PORT}"
  start_server "${WORK_DIR}/webhooks-api.log" \
    "${AUTH_ENV[@]}" \
    DATABASE_URL="${PG_URL_BASE}/${api_db}" \
    REDIS_URL="$REDIS_URL" \
    CYBERVPN_REDIS_KEY_PREFIX="$REDIS_PREFIX" \
    CRYPTOBOT_TOKEN="$token" \
    CYBERVPN_API_LISTEN="127.0.0.1:${PORT}" \
    CYBERVPN_LOG_LEVEL=warn \
    "${RELEASE_DIR}"/cybervpn-api serve --migrate
  wait_healthy "$base"
  warm_up "$base"

  # One customer per payment (no two deliveries wait for one customer's lock), on the pro_30 plan at its USD
  # price, each payment with its CryptoBot invoice as `POST /api/v1/payments` leaves it.
  log "webhooks: seeding $(fmt_int "$WEBHOOK_PAYMENTS") customers with a pending CryptoBot payment each"
  psql -q -h 127.0.0.1 -U postgres -d "$api_db" -v ON_ERROR_STOP=1 -v n="$WEBHOOK_PAYMENTS" >/dev/null <<'SQL'
BEGIN;
CREATE TEMP TABLE bench_seed ON COMMIT DROP AS
  SELECT i, gen_random_uuid() AS customer_id, gen_random_uuid() AS payment_id FROM generate_series(1, :n) AS i;
INSERT INTO customers (id, telegram_id, username, status, language, created_at, updated_at)
  SELECT customer_id, 9000000000 + i, 'bench_' || i, 'active', 'en', now() - interval '1 day', now() - interval '1 day'
  FROM bench_seed;
INSERT INTO payments (id, customer_id, plan_id, amount_minor, currency, status, provider, provider_payment_id, days,
                      invoice_url, expires_at, created_at, updated_at)
  SELECT s.payment_id, s.customer_id, p.id, pp.amount_minor, pp.currency, 'pending', 'cryptobot', (5000000 + s.i)::text,
         p.duration_days, 'https://t.me/CryptoBot?start=IV' || md5(s.payment_id::text), now() + interval '1 hour',
         now() - interval '5 minutes', now() - interval '5 minutes'
  FROM bench_seed s
  CROSS JOIN plans p
  JOIN plan_prices pp ON pp.plan_id = p.id AND pp.currency = 'USD'
  WHERE p.code = 'pro_30';
COMMIT;
ANALYZE customers;
ANALYZE payments;
SQL

  # One signed delivery per payment, in invoice order.
  deliveries="${WORK_DIR}/cryptobot-deliveries.tsv"
  psql -h 127.0.0.1 -U postgres -d "$api_db" -v ON_ERROR_STOP=1 -At -F $'\t' -c "
    SELECT id, provider_payment_id, amount_minor, currency, invoice_url FROM payments
    WHERE provider = 'cryptobot' AND status = 'pending' ORDER BY provider_payment_id::bigint" |
    BENCH_CRYPTOBOT_TOKEN="$token" python3 scripts/bench/cryptobot_webhooks.py >"$deliveries"
  lines="$(wc -l <"$deliveries")"
  [ "$lines" -eq "$WEBHOOK_PAYMENTS" ] ||
    die "expected ${WEBHOOK_PAYMENTS} signed deliveries, made ${lines} (is the pro_30 plan priced in USD?)"
  [ -z "$(cryptobot_outcomes "$base")" ] || die "the api counted webhooks before the run"

  # Each thread repeats the delivery it sent `lag` new deliveries earlier: 4 times what it has in flight.
  lag=$((4 * CONNECTIONS / THREADS))
  out="${WORK_DIR}/wrk-webhooks.txt"
  checkpoint
  log "wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION} --latency POST /api/v1/webhooks/cryptobot (repeat lag ${lag})"
  before="$(ingest_cpu_sample)"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench/cryptobot_webhooks.lua \
    "${base}/api/v1/webhooks/cryptobot" -- "$deliveries" "$THREADS" "$lag" | tee "$out" >&2
  kill -0 "$SERVER_PID" 2>/dev/null || die "the api died under load"
  shares="$(ingest_cpu_shares "$before" "$(ingest_cpu_sample)" wrk api)"
  log "CPU during the deliveries: ${shares}"
  WEBHOOK_CPU+=("webhook deliveries: ${shares}")
  flag_noise "the webhook deliveries" "$shares"
  # Requests wrk abandoned at the deadline may still be in the api: let them finish before counting.
  sleep 2

  local rps p50 p99 summary non2xx exhausted sockerr outcomes applied duplicate others completed subscriptions total
  rps="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")"
  p50="$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")"
  p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")"
  summary="$(grep '^webhooks ' "$out" || true)"
  [[ -n "$rps" && -n "$summary" ]] || die "could not parse wrk's output for the webhook deliveries"
  non2xx="$(sed -n 's/.* non2xx=\([0-9]*\).*/\1/p' <<<"$summary")"
  exhausted="$(sed -n 's/.* exhausted=\([0-9]*\).*/\1/p' <<<"$summary")"
  sockerr="$(sed -n 's/^ *Socket errors: *//p' "$out")"
  outcomes="$(cryptobot_outcomes "$base")"
  log "webhooks_received_total{source=\"cryptobot\"}: $(tr '\n' ' ' <<<"$outcomes")"
  applied="$(awk '$1 == "applied" { print $2 }' <<<"$outcomes")"
  duplicate="$(awk '$1 == "duplicate" { print $2 }' <<<"$outcomes")"
  others="$(awk '$1 != "applied" && $1 != "duplicate" { printf "%s%s=%s", sep, $1, $2; sep = ", " }' <<<"$outcomes")"
  read -r completed subscriptions < <(psql -h 127.0.0.1 -U postgres -d "$api_db" -At -F ' ' -c "
    SELECT (SELECT count(*) FROM payments WHERE status = 'completed'), (SELECT count(*) FROM subscriptions)")
  stop_server

  # Anything else and the run measured another path than the one it reports.
  [ "${non2xx:-1}" -eq 0 ] || die "${non2xx} webhook deliveries were answered with a non-2xx status"
  [ -z "$sockerr" ] || die "socket errors during the webhook deliveries (${sockerr}): some got no answer"
  [ -z "$others" ] || die "deliveries took other paths than credit or duplicate: ${others}"
  [ "${exhausted:-0}" -eq 0 ] ||
    die "the wrk threads ran out of payments (${exhausted} extra repeats): raise BENCH_WEBHOOK_PAYMENTS"
  applied="${applied:-0}"
  duplicate="${duplicate:-0}"
  total=$((applied + duplicate))
  ((total > 0)) || die "the api counted no webhook deliveries"
  [[ "$completed" -eq "$applied" && "$subscriptions" -eq "$applied" ]] ||
    die "${applied} deliveries credited, but ${completed} payments are completed and ${subscriptions} subscriptions exist"
  awk -v a="$applied" -v t="$total" 'BEGIN { exit !(a / t >= 0.45 && a / t <= 0.55) }' ||
    die "credited ${applied} of ${total} deliveries: not half of them"

  WEBHOOK_ROWS+=("| pgbench \`INSERT INTO t (v) VALUES (1)\` (-c${CONNECTIONS} -j${THREADS}, -T${secs}) | $(fmt_int "$tps") TPS | ${pg_latency} ms (mean) | — |")
  WEBHOOK_ROWS+=("| \`POST /api/v1/webhooks/cryptobot\` (wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}) | $(fmt_int "$rps") deliveries/s | ${p50} ms | ${p99} ms |")
  WEBHOOK_VERDICTS+=("$(awk -v a="$applied" -v d="$duplicate" -v t="$total" -v r="$rps" \
    -v af="$(fmt_int "$applied")" -v df="$(fmt_int "$duplicate")" 'BEGIN {
    printf "mix (the api'"'"'s `webhooks_received_total{source=\"cryptobot\"}`): %s credited (%.1f %%, %.0f/s), %s duplicates (%.1f %%); every answer 2xx, every credit a completed payment and a new subscription",
      af, 100 * a / t, r * a / t, df, 100 * d / t
  }')")
  WEBHOOK_VERDICTS+=("$(awk -v r="$rps" -v t="$tps" 'BEGIN {
    printf "webhook ingest at %.0f%% of pgbench'"'"'s single-row INSERT TPS %s (target ≥ 50%%)", 100 * r / t, (r >= 0.5 * t ? "✅" : "❌")
  }')")
}

ANALYTICS_ROWS=()
ANALYTICS_FACTS=()
ANALYTICS_VERDICTS=()
ANALYTICS_NOISE=()
ANALYTICS_CPU=""

# Nearest-rank percentile $2 (0-100) of the numbers in file $1, one per line.
percentile() {
  sort -n "$1" | awk -v q="$2" '{ v[NR] = $1 } END {
    if (NR == 0) { print "?"; exit }
    r = int(q * NR / 100); if (r < q * NR / 100) r++; if (r < 1) r = 1
    printf "%.1f", v[r]
  }'
}

# The admin analytics reports (issue 8): each report over 30 days by day, a year by week and two years by month,
# against two years of a business with ANALYTICS_CUSTOMERS customers. One client, sequential requests: the
# latency a staff member waits for a dashboard.
run_analytics() {
  local db payments started seed_secs facts email password token base to before shares other
  db="cybervpn_bench_${RUN_ID}_analytics"
  payments=$((ANALYTICS_CUSTOMERS * 3 / 2))
  log "analytics: creating database ${db}"
  create_db "$db"
  load_auth_env
  env "${AUTH_ENV[@]}" DATABASE_URL="${PG_URL_BASE}/${db}" CYBERVPN_LOG_LEVEL=warn \
    "${RELEASE_DIR}"/cybervpn-api migrate >/dev/null 2>&1 || die "cybervpn-api migrate failed on ${db}"
  log "analytics: seeding $(fmt_int "$ANALYTICS_CUSTOMERS") customers and $(fmt_int "$payments") payments over two years"
  started="$(date +%s.%N)"
  psql -q -h 127.0.0.1 -U postgres -d "$db" -v ON_ERROR_STOP=1 -v customers="$ANALYTICS_CUSTOMERS" \
    -v payments="$payments" -f scripts/bench/analytics_seed.sql >/dev/null
  seed_secs="$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')"
  facts="$(psql -h 127.0.0.1 -U postgres -d "$db" -At -F ' ' -c "
    SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM payments), (SELECT count(*) FROM subscriptions),
           (SELECT count(*) FROM trials), pg_size_pretty(pg_database_size(current_database()))")"
  local n_customers n_payments n_subscriptions n_trials size
  read -r n_customers n_payments n_subscriptions n_trials size <<<"$facts"
  log "analytics: seeded in ${seed_secs} s: ${n_customers} customers, ${n_payments} payments, ${n_subscriptions} subscriptions, ${n_trials} trials (${size})"
  ANALYTICS_FACTS+=("$(fmt_int "$n_customers") customers, $(fmt_int "$n_payments") payments, $(fmt_int "$n_subscriptions") subscriptions, $(fmt_int "$n_trials") trials over two years (${size} on disk with indexes; seeded in ${seed_secs} s)")

  # An operator: the lowest role holding `view_analytics`.
  email="analyst-${RUN_ID}@bench.example.com"
  password="$(env "${AUTH_ENV[@]}" DATABASE_URL="${PG_URL_BASE}/${db}" CYBERVPN_LOG_LEVEL=warn \
    "${RELEASE_DIR}"/cybervpn-api admin create --email "$email" --role operator 2>/dev/null)" ||
    die "could not create the analyst's staff account"
  PORT="$(free_port)"
  base="http://127.0.0.1:${PORT}"
  log "analytics: cybervpn-api (PostgreSQL + Redis) on 127.0.0.1:${PORT}"
  start_server "${WORK_DIR}/analytics-api.log" \
    "${AUTH_ENV[@]}" \
    DATABASE_URL="${PG_URL_BASE}/${db}" \
    REDIS_URL="$REDIS_URL" \
    CYBERVPN_REDIS_KEY_PREFIX="$REDIS_PREFIX" \
    CYBERVPN_API_LISTEN="127.0.0.1:${PORT}" \
    CYBERVPN_LOG_LEVEL=warn \
    "${RELEASE_DIR}"/cybervpn-api serve
  wait_healthy "$base"
  token="$(curl -fsS --max-time 10 -H 'content-type: application/json' \
    -d "{\"email\":\"${email}\",\"password\":\"${password}\"}" "${base}/api/v1/admin/auth/login" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')"
  [ -n "$token" ] || die "the analyst could not sign in"

  # Only the reports' own index scans from here on.
  sleep 1
  psql -q -h 127.0.0.1 -U postgres -d "$db" -c 'SELECT pg_stat_reset()' >/dev/null
  to="$(date -u -d tomorrow +%F)"
  before="$(ingest_cpu_sample)"
  local report range days granularity from url out codes buckets p50 p95 max
  for report in revenue payments growth conversions subscriptions; do
    for range in "30 day" "365 week" "730 month"; do
      read -r days granularity <<<"$range"
      from="$(date -u -d "${to} - ${days} days" +%F)"
      url="${base}/api/v1/admin/analytics/${report}?from=${from}&to=${to}&granularity=${granularity}"
      out="${WORK_DIR}/analytics-${report}-${days}.txt"
      for _ in 1 2 3; do
        curl -fsS -o "${WORK_DIR}/analytics-body.json" --max-time 30 -H "authorization: Bearer ${token}" "$url" ||
          die "warm-up GET ${url#"$base"} failed"
      done
      buckets="$(grep -o '"start":' "${WORK_DIR}/analytics-body.json" | wc -l)"
      for _ in $(seq 1 "$ANALYTICS_REQUESTS"); do
        curl -sS -o /dev/null --max-time 30 -w '%{http_code} %{time_total}\n' \
          -H "authorization: Bearer ${token}" "$url"
      done >"$out"
      codes="$(awk '$1 != 200' "$out" | wc -l)"
      [ "$codes" -eq 0 ] || die "${codes} of the requests to ${url#"$base"} did not answer 200"
      awk '{ print $2 * 1000 }' "$out" >"${out}.ms"
      p50="$(percentile "${out}.ms" 50)"
      p95="$(percentile "${out}.ms" 95)"
      max="$(percentile "${out}.ms" 100)"
      log "analytics: ${report} over ${days} days by ${granularity}: p50 ${p50} ms, p95 ${p95} ms, max ${max} ms"
      ANALYTICS_ROWS+=("| \`GET /api/v1/admin/analytics/${report}\` | ${days} days by ${granularity} (${buckets} buckets) | ${p50} ms | ${p95} ms | ${max} ms | $(awk -v p="$p95" 'BEGIN { print (p <= 200 ? "✅" : "❌") }') |")
    done
  done
  shares="$(ingest_cpu_shares "$before" "$(ingest_cpu_sample)" curl api)"
  ANALYTICS_CPU="$shares"
  other="$(sed -n 's/.*other \([0-9]*\)%.*/\1/p' <<<"$shares")"
  if [ "${other:-0}" -ge 10 ]; then
    ANALYTICS_NOISE+=("other processes took ${other}% of the machine's CPU during the analytics requests: numbers are noisy")
  fi
  stop_server

  # The statistics collector flushes each backend's counters when it goes idle.
  sleep 1
  local used
  used="$(psql -h 127.0.0.1 -U postgres -d "$db" -At -F ' ' -c "
    SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE idx_scan > 0 AND indexrelname LIKE 'ix\_%' ORDER BY indexrelname" |
    awk '{ printf "%s`%s` %s", sep, $1, $2; sep = ", " }')"
  ANALYTICS_FACTS+=("scans of the \`ix_\` indexes during the requests (\`pg_stat_user_indexes.idx_scan\`): ${used:-none}")
  local misses
  misses="$(printf '%s\n' "${ANALYTICS_ROWS[@]}" | grep -c '❌' || true)"
  if [ "$misses" -eq 0 ]; then
    ANALYTICS_VERDICTS+=("every report and period within p95 ≤ 200 ms ✅")
  else
    ANALYTICS_VERDICTS+=("${misses} of ${#ANALYTICS_ROWS[@]} report × period combinations over p95 200 ms ❌")
  fi
}

# ------------------------------------------------------------------------------------------------ run
log "making sure PostgreSQL and Redis are up"
bash scripts/services.sh

if wants http || wants webhooks || wants analytics; then
  log "building the release binaries"
  bins=(--bin cybervpn-api)
  if wants http; then bins=(--bin cybervpn "${bins[@]}"); fi
  "$CARGO" build --release "${bins[@]}"
fi
if wants http; then
  # Separately, so the benchmarked binaries are the production build: the example's dev-dependencies would
  # otherwise change the features they are compiled with.
  "$CARGO" build --release --example hash_rate
fi
if wants jobs; then
  # Its own build: the example's dev-dependencies (testkit, panel fake) must not change the features the
  # benchmarked binaries are compiled with.
  log "building the job benchmark (release)"
  "$CARGO" build --release -p cybervpn-worker --example bench_jobs
fi

if wants http; then
  # Scenario A: standalone on SQLite.
  PORT="$(free_port)"
  mkdir -p "${WORK_DIR}/data"
  log "scenario A: standalone (SQLite) on 127.0.0.1:${PORT}"
  start_server "${WORK_DIR}/standalone.log" \
    CYBERVPN_DATA_DIR="${WORK_DIR}/data" \
    CYBERVPN_API_LISTEN="127.0.0.1:${PORT}" \
    CYBERVPN_LOG_LEVEL=warn \
    "${RELEASE_DIR}"/cybervpn
  run_scenario standalone "$PORT"

  # Scenario B: cybervpn-api on PostgreSQL and Redis.
  log "scenario B: creating database ${DB_NAME}"
  create_db "$DB_NAME"
  load_auth_env
  PORT="$(free_port)"
  log "scenario B: cybervpn-api (PostgreSQL + Redis) on 127.0.0.1:${PORT}"
  start_server "${WORK_DIR}/api.log" \
    "${AUTH_ENV[@]}" \
    DATABASE_URL="${PG_URL_BASE}/${DB_NAME}" \
    REDIS_URL="$REDIS_URL" \
    CYBERVPN_REDIS_KEY_PREFIX="$REDIS_PREFIX" \
    CYBERVPN_AUTH_IP_REQUESTS_PER_MINUTE=100000000 \
    CYBERVPN_AUTH_ACCOUNT_REQUESTS_PER_MINUTE=100000000 \
    CYBERVPN_API_LISTEN="127.0.0.1:${PORT}" \
    CYBERVPN_LOG_LEVEL=warn \
    "${RELEASE_DIR}"/cybervpn-api serve --migrate
  run_scenario postgres "$PORT"
fi

if wants jobs; then run_jobs; fi

if wants webhooks; then run_webhooks; fi

if wants analytics; then run_analytics; fi

# --------------------------------------------------------------------------------------------- report
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
# Dirty: tracked changes or untracked files, other than the results file this script writes.
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain 2>/dev/null | grep -vF "$RESULTS_MD" || true)" ]; then
  commit="${commit}-dirty"
fi
cpu="$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
cores="$(nproc)"
mem="$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
kernel="$(uname -r)"

verdicts=()
for result in "${PLANS_RESULTS[@]}"; do
  read -r scenario rps p99 idle_kib <<<"$result"
  verdict="$(awk -v r="$rps" -v p="$p99" -v k="$idle_kib" 'BEGIN {
    printf "req/s %s (target ≥ 30,000), p99 %s (≤ 5 ms), idle RSS %s (≤ 25 MB = 23.8 MiB)",
      (r >= 30000 ? "✅" : "❌"), (p + 0 <= 5 ? "✅" : "❌"), (k * 1024 <= 25e6 ? "✅" : "❌")
  }')"
  verdicts+=("${scenario}: ${verdict}")
done

if [ ! -f "$RESULTS_MD" ]; then
  mkdir -p "$(dirname "$RESULTS_MD")"
  cat >"$RESULTS_MD" <<'EOF'
# Benchmarks

`make bench` (`scripts/bench.sh`) builds the release binaries and load-tests them with
[wrk](https://github.com/wg/wrk) on this machine, then appends one section per run below.

What is measured, for two deployments:

- **standalone** — `target/release/cybervpn` on a fresh SQLite data directory (the all-in-one binary);
- **postgres** — `target/release/cybervpn-api serve --migrate` on a fresh PostgreSQL database, with Redis.

For each: the server's resident memory (`VmRSS`) once it has started and answered a few warm-up requests
(*idle RSS*), then `wrk -t2 -c64 -d20s --latency` against `GET /health` and `GET /api/v1/plans` (the
16-plan catalogue as JSON): requests per second and the 50th / 99th percentile latency, and the RSS after
that load. `BENCH_DURATION` and `BENCH_CONNECTIONS` override the duration and the connection count.

Then the jobs, by the worker's `bench_jobs` example (`services/worker/examples/bench_jobs.rs`, release build)
on a fresh PostgreSQL database, a private Redis key prefix and the panel fake on loopback, with the worker's
shipped concurrency (4 jobs of a type at once):

- **no-op jobs** — 20,000 jobs of a bench-only type pushed by 8 concurrent producers while a worker consumes
  them: the push rate, and jobs/s from the first push until every job was handled. That worker looks for jobs
  every 100 ms when idle, not every second as shipped: apalis-redis 1.0 moves all due jobs to the ready list
  with one Lua `unpack`, which fails beyond about 8,000 elements, so a queue with more jobs due at one fetch
  stops consuming for good — and the producers push more than that in a second;
- **provisioning** — 2,000 customers with a live subscription and their `ProvisionSubscription` jobs waiting
  in Redis; `cybervpn_worker::start` (what `cybervpn-worker` runs) creates their panel users: jobs/s from the
  worker's start until every job succeeded;
- **full reconcile** — 100,000 panel users tagged `CYBERVPN`, each matching one of 100,000 subscriptions, 1 % of
  them with a drifted expiry: the time from pushing `FullReconcile` until its `reconcile` report is stored, then
  how long the repairs it queued took.

`BENCH_NOOP_JOBS`, `BENCH_PROVISION_JOBS` and `BENCH_RECONCILE_USERS` change the counts (0 skips one).

Then webhook ingest: `cybervpn-api serve --migrate` with a CryptoBot app token, on a fresh PostgreSQL database
seeded with 100,000 customers (`BENCH_WEBHOOK_PAYMENTS`), each with a pending CryptoBot payment for the `pro_30`
plan as `POST /api/v1/payments` leaves it. `wrk -t2 -c64 -d20s` posts `invoice_paid` updates for those payments
to `POST /api/v1/webhooks/cryptobot`: the body Crypto Pay sends for a paid fiat invoice, with its
`crypto-pay-api-signature` (signed beforehand by `scripts/bench/cryptobot_webhooks.py`, sent by
`scripts/bench/cryptobot_webhooks.lua`).

- Each wrk thread sends its own payments: 128 first deliveries (4 × its connections), then alternately the next
  payment's first delivery and a byte-identical repeat of the one sent 128 first deliveries earlier, long
  answered by then (a thread has 32 requests in flight). So half of the deliveries credit a payment (lock it and
  its customer, complete it, start a subscription, queue its provisioning and the customer's notice, commit) and
  half find it already completed, as a gateway's retries do; the api's `webhooks_received_total{source="cryptobot"}`
  counter gives the actual mix.
- The run fails, and records nothing, if a delivery gets a non-2xx answer or a socket error, takes another path
  (`review`, `unknown`, …), if the completed payments and new subscriptions in the database differ from the
  credited count, or if the mix is more than 5 points off half and half (a thread that runs out of payments only
  repeats: raise `BENCH_WEBHOOK_PAYMENTS`).
- The yardstick is `pgbench -n -c64 -j2`, as long, on a throwaway database of the same PostgreSQL server: one
  `INSERT INTO t (v) VALUES (1)` per transaction into a table with a `gen_random_uuid()` primary key and a
  `now()` default, i.e. what the server commits when each transaction writes one row. A `CHECKPOINT` precedes
  each of the two loads.

Then the admin analytics reports (`GET /api/v1/admin/analytics/{revenue,payments,growth,conversions,subscriptions}`):
`cybervpn-api serve` on a fresh PostgreSQL database that `scripts/bench/analytics_seed.sql` fills with two years
of a growing business — 1,000,000 customers (`BENCH_ANALYTICS_CUSTOMERS`), 1.5 payments per customer in every
status, 400,000 trials and 600,000 subscriptions — then `VACUUM ANALYZE`. An operator (the lowest role holding
`view_analytics`) asks each report for the 30 days up to the end of today by day, the last 365 days by week and
the last 730 days by month: 3 warm-up requests, then 50 (`BENCH_ANALYTICS_REQUESTS`) one after another from one
client (`curl`, its `time_total`), the latency a staff member waits for a dashboard. The section lists p50, p95
and the slowest request per report and period, and which indexes the reports used (`pg_stat_user_indexes`).

`BENCH_ONLY=http`, `BENCH_ONLY=jobs`, `BENCH_ONLY=webhooks` or `BENCH_ONLY=analytics` runs only that part.

Targets (on a 2-core machine):

- `GET /api/v1/plans` ≥ 30,000 req/s with p99 ≤ 5 ms;
- idle RSS of the api ≤ 25 MB;
- a full reconcile of 100,000 panel users ≤ 60 s;
- webhook ingest ≥ 50 % of pgbench's single-row INSERT TPS on the same machine;
- each analytics report p95 ≤ 200 ms at 1,000,000 customers, for every period above.

wrk runs on the same machine as the server, so the numbers are a floor: the load generator takes a
good share of the CPU. Each section lists how the CPU was shared during each load (server / wrk / other
processes / hypervisor steal) and flags a run where other processes took 10 % or more as noisy: rerun it
on a quiet machine before drawing conclusions. The job benchmarks share the cores with PostgreSQL, Redis
and the panel fake, which all work for them; their CPU line says how much went elsewhere. So do the webhook
deliveries and pgbench: their CPU lines split the machine between the api, PostgreSQL + Redis and the load
generator.
EOF
fi

# Backticks below are markdown code spans, not command substitutions.
# shellcheck disable=SC2016
{
  printf '\n## %s UTC — %s\n\n' "$(date -u '+%Y-%m-%d %H:%M')" "$commit"
  printf -- '- Machine: %s, %s cores (`nproc`), %s RAM, kernel %s\n' "$cpu" "$cores" "$mem" "$kernel"
  printf -- '- Commit: `%s`\n' "$commit"
  if wants http; then
    printf -- '- Load: `wrk -t%s -c%s -d%s --latency`; wrk runs on the same %s cores as the server, so the server gets roughly half the machine\n' \
      "$THREADS" "$CONNECTIONS" "$DURATION" "$cores"
    printf '\n| scenario | endpoint | req/s | p50 | p99 | idle RSS | RSS after load |\n'
    printf '| --- | --- | ---: | ---: | ---: | ---: | ---: |\n'
    printf '%s\n' "${ROWS[@]}"
    printf '\n- CPU share of the whole machine during each load (server / wrk / other processes / hypervisor steal):\n'
    for line in "${CPU_LINES[@]}"; do printf -- '  - %s\n' "$line"; done
    for verdict in "${verdicts[@]}"; do printf -- '- `GET /api/v1/plans`, %s\n' "$verdict"; done
    if ((${#NOTES[@]})); then
      for note in "${NOTES[@]}"; do printf -- '- ⚠️ %s\n' "$note"; done
    else
      printf -- '- No non-2xx responses and no socket errors.\n'
    fi
    if ((${#NOISE[@]})); then
      for note in "${NOISE[@]}"; do printf -- '- ⚠️ %s\n' "$note"; done
    fi
    if ((${#AUTH_ROWS[@]})); then
      printf '\nSign-in (postgres scenario; rate limits raised so the flood measures hashing, not the limiter):\n\n'
      printf '| measurement | throughput | p50 | p99 |\n| --- | ---: | ---: | ---: |\n'
      printf '%s\n' "${AUTH_ROWS[@]}"
      for verdict in "${AUTH_VERDICTS[@]}"; do printf -- '- %s\n' "$verdict"; done
    fi
  fi
  if ((${#JOB_ROWS[@]})); then
    printf '\nJobs (`bench_jobs`: worker concurrency as shipped, fresh PostgreSQL database, Redis, panel fake on loopback; all on these %s cores):\n\n' "$cores"
    printf '| measurement | count | time | throughput |\n| --- | ---: | ---: | ---: |\n'
    printf '%s\n' "${JOB_ROWS[@]}"
    printf '\n- CPU share of the whole machine during the job benchmarks: %s\n' "$JOB_CPU"
    for verdict in "${JOB_VERDICTS[@]}"; do printf -- '- %s\n' "$verdict"; done
    if [ "$NOOP_JOBS" -gt 0 ]; then
      printf -- '- The no-op worker looks for jobs every 100 ms when idle (1 s as shipped): see the introduction.\n'
    fi
    if ((${#JOB_NOISE[@]})); then
      for note in "${JOB_NOISE[@]}"; do printf -- '- ⚠️ %s\n' "$note"; done
    fi
  fi
  if ((${#ANALYTICS_ROWS[@]})); then
    printf '\nAnalytics reports (`cybervpn-api` on a fresh PostgreSQL database seeded by `scripts/bench/analytics_seed.sql`: %s; an operator sends %s requests per row one after another after 3 warm-ups, `curl` time_total; all on these %s cores):\n\n' \
      "${ANALYTICS_FACTS[0]}" "$ANALYTICS_REQUESTS" "$cores"
    printf '| report | period | p50 | p95 | max | p95 ≤ 200 ms |\n| --- | --- | ---: | ---: | ---: | :---: |\n'
    printf '%s\n' "${ANALYTICS_ROWS[@]}"
    printf '\n- CPU share of the whole machine during the requests (api / PostgreSQL + Redis / curl / other processes / hypervisor steal): %s\n' "$ANALYTICS_CPU"
    for line in "${ANALYTICS_FACTS[@]:1}" "${ANALYTICS_VERDICTS[@]}"; do printf -- '- %s\n' "$line"; done
    if ((${#ANALYTICS_NOISE[@]})); then
      for note in "${ANALYTICS_NOISE[@]}"; do printf -- '- ⚠️ %s\n' "$note"; done
    fi
  fi
  if ((${#WEBHOOK_ROWS[@]})); then
    printf '\nWebhook ingest (signed CryptoBot `invoice_paid` deliveries, half of them repeats, to `cybervpn-api` on a fresh PostgreSQL database with %s pending payments; pgbench on a throwaway database of the same server; all on these %s cores):\n\n' \
      "$(fmt_int "$WEBHOOK_PAYMENTS")" "$cores"
    printf '| measurement | throughput | p50 | p99 |\n| --- | ---: | ---: | ---: |\n'
    printf '%s\n' "${WEBHOOK_ROWS[@]}"
    printf '\n- CPU share of the whole machine during each load (%s):\n' "server / PostgreSQL + Redis / load generator / other processes / hypervisor steal"
    for line in "${WEBHOOK_CPU[@]}"; do printf -- '  - %s\n' "$line"; done
    for line in "${WEBHOOK_VERDICTS[@]}"; do printf -- '- %s\n' "$line"; done
    if ((${#WEBHOOK_NOISE[@]})); then
      for note in "${WEBHOOK_NOISE[@]}"; do printf -- '- ⚠️ %s\n' "$note"; done
    fi
  fi
} >>"$RESULTS_MD"

log "results appended to ${RESULTS_MD}:"
awk '/^## / { section = "" } { section = section $0 "\n" } END { printf "%s", section }' "$RESULTS_MD" >&2
exit 0
}
