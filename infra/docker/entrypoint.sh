#!/bin/bash
# Entrypoint of every CyberVPN image: unsets environment variables that are set but empty, then runs the command.
#
# Compose passes optional settings as `${VAR:-}`, which sets them to "" when the operator left them out. The
# services treat a set variable as configured (an empty gateway token is a startup error), so here an empty value
# means "not configured", exactly as if the variable were absent.
set -euo pipefail

for name in $(compgen -e); do
  if [[ -z "${!name}" ]]; then
    unset "$name"
  fi
done
exec "$@"
