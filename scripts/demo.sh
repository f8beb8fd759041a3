#!/usr/bin/env bash
# `make demo`: the standalone platform plus the panel fake, and a customer provisioned end to end.
#
# Starts `cybervpn-panel-fake` and `cybervpn` (SQLite in a temporary data dir, worker and scheduler
# in-process), creates a staff admin and a customer, extends the customer by 30 days through the admin API,
# and shows the panel user the worker created. Everything stops on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

API_PORT="${DEMO_API_PORT:-8080}"
PANEL_PORT="${DEMO_PANEL_PORT:-3010}"
TOKEN="demo-panel-token"
SECRET="demo-webhook-secret-0123456789abcdef"
API="http://127.0.0.1:${API_PORT}"
PANEL="http://127.0.0.1:${PANEL_PORT}"
DATA="$(mktemp -d)"

cargo build --bin cybervpn --bin cybervpn-panel-fake
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT INT TERM

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

target/debug/cybervpn-panel-fake --listen "127.0.0.1:${PANEL_PORT}" --token "$TOKEN" \
  --webhook-url "${API}/api/v1/webhooks/remnawave" --webhook-secret "$SECRET" &
pids+=($!)

export CYBERVPN_DATA_DIR="$DATA" CYBERVPN_API_LISTEN="127.0.0.1:${API_PORT}" CYBERVPN_LOG_FORMAT=pretty \
  CYBERVPN_LOG_LEVEL="${CYBERVPN_LOG_LEVEL:-warn}" REMNAWAVE_URL="$PANEL" REMNAWAVE_TOKEN="$TOKEN" \
  REMNAWAVE_WEBHOOK_SECRET="$SECRET" REMNAWAVE_SQUADS="Default-Squad"
target/debug/cybervpn serve &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fs "${API}/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "${API}/health" >/dev/null || { echo "the api did not start" >&2; exit 1; }

password="$(target/debug/cybervpn admin create --email admin@demo.local --role super_admin)"
staff="$(curl -fs -H 'content-type: application/json' \
  -d "{\"email\":\"admin@demo.local\",\"password\":\"${password}\"}" \
  "${API}/api/v1/admin/auth/login" | json "['access_token']")"
customer="$(curl -fs -H 'content-type: application/json' \
  -d '{"email":"neo@demo.local","password":"follow the white rabbit"}' \
  "${API}/api/v1/auth/register" | json "['id']")"
echo "customer ${customer} registered; extending by 30 days through the admin API"
curl -fs -X POST -H "authorization: Bearer ${staff}" -H 'content-type: application/json' \
  -d '{"days":30}' "${API}/api/v1/users/${customer}/extend" >/dev/null

username="cv_${customer//-/}"
for _ in $(seq 1 100); do
  if user="$(curl -fs -H "authorization: Bearer ${TOKEN}" -H 'x-forwarded-for: 127.0.0.1' \
    -H 'x-forwarded-proto: https' "${PANEL}/api/users/by-username/${username}")"; then
    echo "panel user provisioned through outbox -> queue -> worker:"
    echo "$user" | python3 -m json.tool
    break
  fi
  sleep 0.2
done
echo
echo "api: ${API} (docs at ${API}/docs)   panel fake: ${PANEL}   admin token: ${staff:0:24}…"
echo "Ctrl-C stops both."
wait
