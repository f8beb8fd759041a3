#!/bin/sh
# Renders alertmanager.yml with the Telegram secrets from the environment, then runs the given command.
#
#   render.sh SOURCE_DIR TARGET_DIR [COMMAND...]
#
# Copies SOURCE_DIR's alertmanager.yml and templates/ to TARGET_DIR, replacing ${ALERTMANAGER_TELEGRAM_BOT_TOKEN}
# and ${ALERTMANAGER_TELEGRAM_CHAT_ID}. POSIX sh and sed only: it runs in the busybox-based Alertmanager image and
# in infra/tests/run.sh. The values are checked first, so they can neither break the YAML nor the sed expression.
set -eu

src="$1"
dst="$2"
shift 2

token="${ALERTMANAGER_TELEGRAM_BOT_TOKEN:?ALERTMANAGER_TELEGRAM_BOT_TOKEN is not set}"
chat="${ALERTMANAGER_TELEGRAM_CHAT_ID:?ALERTMANAGER_TELEGRAM_CHAT_ID is not set}"
if ! printf '%s' "$token" | grep -Eq '^[0-9]+:[A-Za-z0-9_-]+$'; then
  echo "render.sh: ALERTMANAGER_TELEGRAM_BOT_TOKEN must look like 123456:ABC-def_ghi" >&2
  exit 1
fi
if ! printf '%s' "$chat" | grep -Eq '^-?[0-9]+$'; then
  echo "render.sh: ALERTMANAGER_TELEGRAM_CHAT_ID must be a numeric chat id" >&2
  exit 1
fi

mkdir -p "$dst/templates"
cp "$src"/templates/*.tmpl "$dst/templates/"
sed -e "s|\${ALERTMANAGER_TELEGRAM_BOT_TOKEN}|$token|g" \
    -e "s|\${ALERTMANAGER_TELEGRAM_CHAT_ID}|$chat|g" \
    "$src/alertmanager.yml" > "$dst/alertmanager.yml"
chmod 600 "$dst/alertmanager.yml"

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
